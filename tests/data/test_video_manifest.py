"""ManifestVideoDataset: manifest parsing, probing and skipping, stride/fps sampling, crops, buckets."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from anyframe.data import ManifestVideoDataset, collate
from anyframe.errors import AnyframeInputError
from anyframe.io import read_video, write_mp4

# A uniform grey frame survives libx264 at crf 12 within ±2 levels (measured ≤ 1); neighbouring
# frames of grey_ramp are 10 levels apart, so a tolerance of 4 identifies each frame uniquely.
GREY_TOLERANCE = 4


def grey_ramp(t: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Frame i is uniform grey 10·i: a frame's brightness tells its source index (t ≤ 26)."""
    return np.repeat(np.arange(t, dtype=np.uint8)[:, None, None, None] * 10, h * w * 3).reshape(t, h, w, 3)


def moving_block(t: int, h: int = 32, w: int = 48) -> np.ndarray:
    """A white 8×8 block moving right over a horizontal gradient: frames differ, columns differ."""
    gradient = np.linspace(30, 160, w, dtype=np.float32)
    frames = np.broadcast_to(gradient[None, None, :, None], (t, h, w, 3)).copy()
    for i in range(t):
        x = (2 * i) % (w - 8)
        frames[i, h // 2 - 4 : h // 2 + 4, x : x + 8] = 255
    return frames.astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """libx264 / yuv420p mp4 (sizes must be even)."""
    return write_mp4(frames, path, fps=fps)


def write_manifest(folder: Path, records: list[dict | str], name: str = "manifest.jsonl") -> Path:
    """One line per record: dicts as JSON, strings verbatim (for malformed lines)."""
    path = folder / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def grey_levels(video: torch.Tensor) -> np.ndarray:
    """Mean 0..255 level of each frame of a [T, 3, H, W] clip in [−1, 1]."""
    return ((video.mean(dim=(1, 2, 3)) + 1) * 127.5).numpy()


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] → float [T, 3, H, W] in [−1, 1], as the dataset maps pixels."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


# ---------------------------------------------------------------------------------- clips


def test_clip_shape_range_and_pixels(tmp_path):
    frames = moving_block(12)
    write_video(tmp_path / "v.mp4", frames)
    manifest = write_manifest(tmp_path, [{"video": "v.mp4", "caption": "a block moves right", "source": "synthetic"}])
    ds = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 48))
    assert len(ds) == 1 and ds.bucket(0) == (4, 32, 48)
    sample = ds[0]
    assert sample.video.dtype == torch.float32 and sample.video.shape == (4, 3, 32, 48)
    assert sample.video.min() >= -1 and sample.video.max() <= 1
    assert sample.video.min() < -0.5 and sample.video.max() > 0.9  # the whole range is used, not squashed
    assert sample.caption == "a block moves right"
    # centre window of 12 frames: 4..7; at the native size the pixels are exactly the decoded frames
    assert sample.meta["frame_indices"] == [4, 5, 6, 7]
    assert sample.meta["source_fps"] == 10.0
    assert sample.meta["video"] == str(tmp_path / "v.mp4") and sample.meta["source"] == "synthetic"
    assert torch.equal(sample.video, as_tensor(read_video(tmp_path / "v.mp4")[4:8]))
    with pytest.raises(IndexError):
        ds[1]


def test_absolute_paths_and_blank_lines(tmp_path):
    write_video(tmp_path / "v.mp4", moving_block(4))
    other = tmp_path / "lists"
    other.mkdir()
    manifest = write_manifest(other, [{"video": str(tmp_path / "v.mp4"), "caption": "c"}, ""])
    ds = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 48))
    assert len(ds) == 1 and ds[0].video.shape == (4, 3, 32, 48)


def test_stride_picks_every_nth_frame(tmp_path):
    write_video(tmp_path / "ramp.mp4", grey_ramp(20))
    manifest = write_manifest(tmp_path, [{"video": "ramp.mp4", "caption": "ramp"}])
    sample = ManifestVideoDataset(manifest=manifest, num_frames=4, stride=3, size=(32, 48))[0]
    # 4 frames at stride 3 span 10 of 20 source frames; the centred window starts at 5
    assert sample.meta["frame_indices"] == [5, 8, 11, 14]
    np.testing.assert_allclose(grey_levels(sample.video), [50, 80, 110, 140], atol=GREY_TOLERANCE)


def test_fps_resamples_with_a_fractional_step(tmp_path):
    write_video(tmp_path / "ramp.mp4", grey_ramp(20), fps=10)
    manifest = write_manifest(tmp_path, [{"video": "ramp.mp4", "caption": "ramp"}])
    sample = ManifestVideoDataset(manifest=manifest, num_frames=4, fps=4, size=(32, 48))[0]
    # step 10/4 = 2.5: the clip spans 3·2.5 + 1 = 8.5 frames, slack 11.5, start 5.75 →
    # 5.75, 8.25, 10.75, 13.25 rounded
    assert sample.meta["frame_indices"] == [6, 8, 11, 13]
    assert sample.meta["source_fps"] == 10.0
    np.testing.assert_allclose(grey_levels(sample.video), [60, 80, 110, 130], atol=GREY_TOLERANCE)
    # a target rate equal to the source's is stride 1
    same = ManifestVideoDataset(manifest=manifest, num_frames=4, fps=10, size=(32, 48))[0]
    assert same.meta["frame_indices"] == [8, 9, 10, 11]


def test_stride_and_fps_are_exclusive(tmp_path):
    write_video(tmp_path / "v.mp4", moving_block(4))
    manifest = write_manifest(tmp_path, [{"video": "v.mp4", "caption": "c"}])
    with pytest.raises(AnyframeInputError, match="stride or fps"):
        ManifestVideoDataset(manifest=manifest, num_frames=4, stride=2, fps=5, size=(32, 48))
    with pytest.raises(AnyframeInputError, match="size"):
        ManifestVideoDataset(manifest=manifest, num_frames=4)


def test_resize_covers_the_target_keeping_aspect(tmp_path):
    # 64×96 with a dark→bright edge a third of the way across (column 32). Covering 32×32 scales by
    # 1/2 (→ 32×48) and crops columns 8..40, so the edge lands at column 8; stretching to 32×32
    # instead would put it at 10.7, squeezing it would keep it at 10.7 too.
    frames = np.full((4, 64, 96, 3), 230, np.uint8)
    frames[:, :, :32] = 20
    write_video(tmp_path / "edge.mp4", frames)
    manifest = write_manifest(tmp_path, [{"video": "edge.mp4", "caption": "edge"}])
    video = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 32))[0].video
    assert video.shape == (4, 3, 32, 32)
    columns = (video.mean(dim=(0, 1, 2)) + 1) * 127.5
    assert (columns[:7] < 40).all() and (columns[10:] > 210).all()


def test_downscaling_is_antialiased(tmp_path):
    # One-pixel grey stripes shrunk 3×: an antialiased resize averages them towards mid-grey (±11
    # left, as the filter spans an odd number of stripes); plain bilinear samples every third column
    # and keeps full-contrast stripes, ±100 (aliasing).
    frames = np.zeros((4, 48, 96, 3), np.uint8)
    frames[:, :, 1::2] = 200
    write_video(tmp_path / "stripes.mp4", frames)
    manifest = write_manifest(tmp_path, [{"video": "stripes.mp4", "caption": "stripes"}])
    video = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(16, 32))[0].video
    columns = (video.mean(dim=(0, 1, 2)) + 1) * 127.5
    assert columns[2:-2].std() < 30 and abs(columns.mean() - 100) < 10


def rolling_noise(t: int, h: int, w: int) -> np.ndarray:
    """Grey noise shifted one pixel right and down per frame: every crop offset and frame look different."""
    noise = np.random.default_rng(0).integers(30, 226, (h, w), dtype=np.uint8)
    frames = np.stack([np.roll(noise, (i, i), axis=(0, 1)) for i in range(t)])
    return np.repeat(frames[..., None], 3, axis=-1)


@pytest.mark.parametrize(("h", "w"), [(32, 64), (64, 32)])
def test_centre_and_random_crops(tmp_path, h, w):
    write_video(tmp_path / "v.mp4", rolling_noise(20, h, w))
    decoded = as_tensor(read_video(tmp_path / "v.mp4"))
    manifest = write_manifest(tmp_path, [{"video": "v.mp4", "caption": "c"}])

    # the video already covers 32×32 at scale 1, so crops are exact windows of the decoded frames
    centre = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 32))[0]
    assert centre.meta["frame_indices"] == [8, 9, 10, 11]
    top, left = (h - 32) // 2, (w - 32) // 2
    assert torch.equal(centre.video, decoded[8:12, :, top : top + 32, left : left + 32])

    def random_sample(seed: int, epoch: int = 0):
        ds = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 32), crop="random", seed=seed)
        ds.set_epoch(epoch)
        return ds[0]

    def window_of(sample) -> tuple[int, int, int]:
        """(first frame, top, left) of the decoded window the clip is exactly equal to."""
        start = sample.meta["frame_indices"][0]
        assert sample.meta["frame_indices"] == list(range(start, start + 4))
        clip = decoded[start : start + 4]
        found = [
            (start, y, x)
            for y in range(h - 31)
            for x in range(w - 31)
            if torch.equal(sample.video, clip[..., y : y + 32, x : x + 32])
        ]
        assert len(found) == 1
        return found[0]

    a = window_of(random_sample(0))
    assert a == window_of(random_sample(0))  # deterministic for equal (seed, epoch, index)
    assert a != window_of(random_sample(1)) and a != window_of(random_sample(0, epoch=1))
    draws = [window_of(random_sample(k)) for k in range(8)]
    # both the start frame and the crop offset along the long side are drawn
    assert len({d[0] for d in draws}) > 2 and len({d[1:] for d in draws}) > 2


# -------------------------------------------------------------------------------- buckets


def test_aspect_ratio_buckets_and_collation(tmp_path):
    sizes = {"wide": (32, 64), "tall": (64, 32), "square": (48, 48), "wideish": (40, 60), "squareish": (50, 70)}
    for name, (h, w) in sizes.items():
        write_video(tmp_path / f"{name}.mp4", moving_block(4, h, w))
    manifest = write_manifest(tmp_path, [{"video": f"{n}.mp4", "caption": n} for n in sizes])
    ds = ManifestVideoDataset(manifest=manifest, num_frames=4, buckets=[(32, 64), (64, 32), (32, 32)])
    # In log space the boundary between H/W = 0.5 and 1 is √0.5 ≈ 0.707: 40×60 (0.67) is wide, 50×70
    # (0.71) square, although H/W compared linearly (boundary 0.75) would call both wide.
    assert [ds.bucket(i) for i in range(5)] == [(4, 32, 64), (4, 64, 32), (4, 32, 32), (4, 32, 64), (4, 32, 32)]
    samples = [ds[i] for i in range(5)]
    for i, sample in enumerate(samples):
        assert sample.video.shape == (4, 3, *ds.bucket(i)[1:])
    assert collate([samples[0], samples[3]]).video.shape == (2, 4, 3, 32, 64)
    with pytest.raises(ValueError, match="bucket"):
        collate([samples[0], samples[1]])


def test_length_buckets_take_the_longest_clip(tmp_path):
    for n in (5, 9, 20, 3):
        write_video(tmp_path / f"n{n}.mp4", moving_block(n))
    manifest = write_manifest(tmp_path, [{"video": f"n{n}.mp4", "caption": str(n)} for n in (5, 9, 20, 3)])
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 videos \(1 too short\)"):
        ds = ManifestVideoDataset(manifest=manifest, num_frames=4, lengths=[4, 8, 16], size=(32, 48))
    assert [ds.bucket(i) for i in range(len(ds))] == [(4, 32, 48), (8, 32, 48), (16, 32, 48)]
    assert [ds[i].video.shape[0] for i in range(len(ds))] == [4, 8, 16]
    # with stride 2 a clip of n frames needs 2n − 1 source frames
    with pytest.warns(UserWarning, match=r"skipped 2 of 4"):
        strided = ManifestVideoDataset(manifest=manifest, num_frames=4, lengths=[4, 8], stride=2, size=(32, 48))
    assert [strided.bucket(i)[0] for i in range(len(strided))] == [4, 8]


# ---------------------------------------------------------------------------------- skips


def write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)


def test_unusable_videos_are_skipped_and_counted_once(tmp_path):
    write_video(tmp_path / "good.mp4", moving_block(6))
    write_video(tmp_path / "short.mp4", moving_block(3))
    (tmp_path / "x.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    write_audio_only(tmp_path / "sound.wav")
    names = ["good.mp4", "x.mp4", "missing.mp4", "short.mp4", "sound.wav"]
    manifest = write_manifest(tmp_path, [{"video": n, "caption": n} for n in names])
    with pytest.warns(UserWarning) as record:
        ds = ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 48))
    messages = [str(w.message) for w in record if "ManifestVideoDataset" in str(w.message)]
    assert messages == [
        "ManifestVideoDataset: skipped 4 of 5 videos (1 missing, 1 corrupt, 1 no video stream, 1 too short)"
    ]
    assert ds.stats == {"missing": 1, "corrupt": 1, "no video stream": 1, "too short": 1}
    assert len(ds) == 1 and ds[0].caption == "good.mp4"


def test_no_usable_video_is_an_error(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    manifest = write_manifest(tmp_path, [{"video": "x.mp4", "caption": "c"}, {"video": "gone.mp4", "caption": "c"}])
    with pytest.raises(AnyframeInputError, match=r"no usable videos.*1 missing, 1 corrupt"):
        ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 48))


def test_mkv_without_frame_count_is_counted_by_packets(tmp_path):
    # Matroska stores no frame count (stream.frames == 0): the probe counts packets instead.
    path = tmp_path / "v.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in grey_ramp(9):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    manifest = write_manifest(tmp_path, [{"video": "v.mkv", "caption": "c"}])
    sample = ManifestVideoDataset(manifest=manifest, num_frames=3, stride=4, size=(32, 48))[0]
    assert sample.meta["frame_indices"] == [0, 4, 8]  # exactly 9 frames: no slack
    np.testing.assert_allclose(grey_levels(sample.video), [0, 40, 80], atol=GREY_TOLERANCE)
    with pytest.raises(AnyframeInputError, match="too short"):
        ManifestVideoDataset(manifest=manifest, num_frames=4, stride=3, size=(32, 48))  # needs 10


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"caption": "no video"}', '"video"'),
        ('{"video": "v.mp4"}', '"caption"'),
        ('{"video": "v.mp4", "caption": 3}', '"caption"'),
        ('["v.mp4", "c"]', "JSON object"),
    ],
)
def test_malformed_line_names_the_line(tmp_path, line, match):
    write_video(tmp_path / "v.mp4", moving_block(4))
    manifest = write_manifest(tmp_path, [{"video": "v.mp4", "caption": "ok"}, "", line])
    with pytest.raises(AnyframeInputError, match=match) as info:
        ManifestVideoDataset(manifest=manifest, num_frames=4, size=(32, 48))
    assert f"{manifest}, line 3" in str(info.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(AnyframeInputError, match="manifest not found"):
        ManifestVideoDataset(manifest=tmp_path / "nope.jsonl", num_frames=4, size=(32, 48))


# ------------------------------------------------------------------------ decode failures


def test_decode_failure_falls_back_within_the_bucket(tmp_path):
    for i in range(3):
        write_video(tmp_path / f"v{i}.mp4", grey_ramp(4) + np.uint8(100 + 40 * i))
    write_video(tmp_path / "other.mp4", moving_block(4, 64, 32))
    names = ["v0.mp4", "other.mp4", "v1.mp4", "v2.mp4"]
    manifest = write_manifest(tmp_path, [{"video": n, "caption": n} for n in names])
    ds = ManifestVideoDataset(manifest=manifest, num_frames=4, buckets=[(32, 48), (64, 32)])
    assert ds.decode_failures == 0

    (tmp_path / "v1.mp4").write_bytes(b"corrupted after probing")
    with pytest.warns(UserWarning, match="cannot decode"):
        sample = ds[2]
    # the next item of the same bucket (v2), not the next index (other.mp4, another bucket)
    assert sample.caption == "v2.mp4" and sample.meta["index"] == 3 and ds.decode_failures == 1
    assert sample.video.shape == (4, 3, 32, 48)
    with pytest.warns(UserWarning):
        assert torch.equal(ds[2].video, sample.video)  # deterministic
    assert ds.decode_failures == 2

    # a file that now has fewer frames than probed falls back too, wrapping round the bucket
    write_video(tmp_path / "v2.mp4", grey_ramp(2))
    with pytest.warns(UserWarning):
        wrapped = ds[3]
    assert wrapped.caption == "v0.mp4" and ds.decode_failures == 3

    (tmp_path / "v0.mp4").unlink()
    with pytest.warns(UserWarning), pytest.raises(AnyframeInputError, match="every video of bucket"):
        ds[0]
    assert ds[1].caption == "other.mp4"  # the other bucket is unaffected
