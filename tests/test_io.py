"""Tests for anyframe.io: video / GIF / PNG writers, filmstrips, atomic writes, image loading and fitting."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from anyframe import io as aio
from anyframe.errors import AnyframeInputError

# An honest bound for libx264 at crf 12 on blocky content: measured ≈ 0.005–0.015 per frame (the
# odd, padded size is the worst). A reversed or a constant clip of the pattern below is > 0.1 off.
MP4_MAE_BOUND = 8 / 255

COLOURS = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 210], [230, 220, 50]], dtype=np.float32)


def block_clip(t: int, h: int, w: int) -> np.ndarray:
    """Four big colour blocks (split at pixel 8, an even position, so yuv420 chroma does not straddle
    a block edge), each frame brighter than the one before: frames are distinct and ordered."""
    frames = np.zeros((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        frame = np.zeros((h, w, 3), dtype=np.float32)
        frame[:8, :8], frame[:8, 8:], frame[8:, :8], frame[8:, 8:] = COLOURS
        frames[i] = np.clip(frame * (0.35 + 0.065 * i), 0, 255).astype(np.uint8)
    return frames


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255)


def decode_with_pyav(path: Path) -> tuple[np.ndarray, dict]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.width,
            "height": stream.height,
            "rate": stream.average_rate,
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames), info


def files_in(directory: Path) -> list[str]:
    """Every entry (hidden temporary files included)."""
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------------------------------- mp4


@pytest.mark.parametrize(("h", "w", "enc_h", "enc_w"), [(32, 32, 32, 32), (15, 17, 16, 18)])
def test_mp4_round_trip(tmp_path, h, w, enc_h, enc_w):
    src = block_clip(9, h, w)
    path = tmp_path / "clip.mp4"
    assert aio.write_mp4(src, path, fps=12) == path
    assert files_in(tmp_path) == ["clip.mp4"]

    decoded, info = decode_with_pyav(path)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["height"], info["width"]) == (enc_h, enc_w)
    assert info["rate"] == Fraction(12)
    assert decoded.shape == (9, enc_h, enc_w, 3)

    via_anyframe = aio.read_video(path)
    assert via_anyframe.dtype == np.uint8
    assert via_anyframe.shape == (9, enc_h, enc_w, 3)
    np.testing.assert_array_equal(via_anyframe, decoded)

    content = decoded[:, :h, :w]
    per_frame = [mae(content[i], src[i]) for i in range(9)]
    assert max(per_frame) < MP4_MAE_BOUND, per_frame
    # the bound is meaningful: a writer that reversed the clip or repeated one frame would fail it
    assert mae(content, src[::-1]) > 3 * MP4_MAE_BOUND
    assert mae(content, np.broadcast_to(src[0], src.shape)) > 3 * MP4_MAE_BOUND

    # frame order: decoded frame i is closest to source frame i
    distances = np.abs(content[:, None].astype(np.float64) - src[None].astype(np.float64)).mean(axis=(2, 3, 4))
    assert distances.argmin(axis=1).tolist() == list(range(9))

    if (enc_h, enc_w) != (h, w):  # padding repeats the edge row / column
        assert mae(decoded[:, h, :w], src[:, h - 1]) < MP4_MAE_BOUND
        assert mae(decoded[:, :h, w], src[:, :, w - 1]) < MP4_MAE_BOUND


def test_mp4_accepts_float_frames(tmp_path):
    src = block_clip(4, 16, 16)
    aio.write_mp4(src.astype(np.float32) / 255, tmp_path / "f.mp4")
    decoded = aio.read_video(tmp_path / "f.mp4")
    assert decoded.shape == (4, 16, 16, 3)
    assert mae(decoded, src) < MP4_MAE_BOUND


def test_mp4_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "clip.mp4"
    aio.write_mp4(block_clip(2, 16, 16), target)
    assert aio.read_video(target).shape == (2, 16, 16, 3)


# ------------------------------------------------------------------------------------------- gif


def test_gif_round_trip(tmp_path):
    src = block_clip(6, 15, 17)
    path = tmp_path / "clip.gif"
    assert aio.write_gif(src, path, fps=8) == path
    with Image.open(path) as img:
        assert img.format == "GIF"
        assert img.n_frames == 6
        assert img.size == (17, 15)
        assert img.info.get("loop") == 0
        assert abs(img.info.get("duration") - 125) <= 10  # GIF stores centiseconds: 125 ms → 120
        decoded = []
        for i in range(img.n_frames):
            img.seek(i)
            decoded.append(np.asarray(img.convert("RGB")))
    decoded = np.stack(decoded)
    # four colours per frame fit a GIF palette: (near) lossless, and in order
    assert mae(decoded, src) < 2 / 255
    assert mae(decoded, src[::-1]) > 0.05


# ------------------------------------------------------------------------------------ png frames


def test_png_frames_exact(tmp_path):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, size=(5, 7, 9, 3), dtype=np.uint8)
    out_dir = tmp_path / "frames"
    paths = aio.write_png_frames(src, out_dir)
    names = [f"frame_{i:04d}.png" for i in range(5)]
    assert paths == [out_dir / n for n in names]
    assert files_in(out_dir) == names
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            assert img.format == "PNG"
            assert img.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(img), src[i])


def test_png_frames_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="frames must be"):
        aio.write_png_frames(np.zeros((4, 4, 3), dtype=np.uint8), tmp_path / "frames")
    assert not (tmp_path / "frames").exists()


# ------------------------------------------------------------------------------------- filmstrip


def upscale(frame: np.ndarray, s: int) -> np.ndarray:
    h, w, _ = frame.shape
    ys, xs = np.arange(h * s) // s, np.arange(w * s) // s
    return frame[ys][:, xs]


@pytest.mark.parametrize(
    ("t", "h", "w", "scale", "gap", "shape"),
    [
        (3, 8, 10, 2, 2, (18, 66, 3)),  # border 1
        (1, 4, 4, 1, 5, (6, 6, 3)),  # border max(1, 0) = 1; no gap with one frame
        (2, 32, 32, None, 2, (98, 196, 3)),  # default scale 3 (≥ 96 px tall), border 1
        (4, 16, 16, None, 2, (100, 394, 3)),  # default scale 6, border 3 capped to the 2 px gap
        (4, 16, 16, None, None, (102, 408, 3)),  # default scale 6, border 3, default gap 6
        (2, 5, 3, 4, 0, (20, 24, 3)),  # no gap → no border
    ],
)
def test_filmstrip_shape(t, h, w, scale, gap, shape):
    frames = np.zeros((t, h, w, 3), dtype=np.uint8)
    strip = aio.filmstrip(frames, scale=scale, gap=gap)
    assert strip.shape == shape
    assert strip.dtype == np.uint8


def test_filmstrip_content_and_marked_border():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 200, size=(3, 6, 5, 3), dtype=np.uint8)  # never 255, never a border
    s, gap, b = 2, 2, 1
    hh, ww = 6 * s, 5 * s
    strip = aio.filmstrip(frames, scale=s, gap=gap, marked=(1,))
    assert strip.shape == (hh + 2 * b, 3 * (ww + gap) - gap + 2 * b, 3)

    for i in range(3):
        x0 = b + i * (ww + gap)
        np.testing.assert_array_equal(strip[b : b + hh, x0 : x0 + ww], upscale(frames[i], s))
        ring = np.concatenate(
            [
                strip[:b, x0 - b : x0 + ww + b].reshape(-1, 3),
                strip[b + hh :, x0 - b : x0 + ww + b].reshape(-1, 3),
                strip[:, x0 - b : x0].reshape(-1, 3),
                strip[:, x0 + ww : x0 + ww + b].reshape(-1, 3),
            ]
        )
        if i == 1:
            assert (ring == 255).all(), "a marked frame has a white border"
        else:
            assert (ring == 40).all(), "an unmarked frame sits on the grey background"
    # the gap columns that no border reaches stay grey: right of frame 0, left of frame 2
    assert (strip[:, b + ww] == 40).all()
    assert (strip[:, b + 2 * (ww + gap) - 1] == 40).all()


def test_filmstrip_float_frames():
    frames = np.full((2, 4, 4, 3), 0.5, dtype=np.float32)
    strip = aio.filmstrip(frames, scale=1, gap=1)
    assert (strip[1:5, 1:5] == 128).all()


def test_filmstrip_marked_border_does_not_cover_neighbour():
    frames = np.random.default_rng(2).integers(0, 200, size=(3, 16, 16, 3), dtype=np.uint8)
    strip = aio.filmstrip(frames, marked=(1,))  # default scale 6, border 3, gap 6
    b, ww = 3, 96
    np.testing.assert_array_equal(strip[b : b + 96, b : b + ww], upscale(frames[0], 6))


def test_write_filmstrip_png(tmp_path):
    frames = block_clip(3, 16, 16)
    path = aio.write_filmstrip(frames, tmp_path / "strip.png", scale=2, marked=(0,))
    with Image.open(path) as img:
        arr = np.asarray(img)
    np.testing.assert_array_equal(arr, aio.filmstrip(frames, scale=2, marked=(0,)))
    assert files_in(tmp_path) == ["strip.png"]


# ------------------------------------------------------------------------------- atomic writing


@pytest.fixture
def failing_video_frame(monkeypatch):
    """Replaces av.VideoFrame inside write_mp4: two frames encode, the third raises (midway, with the
    temporary file open and partly written). Returns the call counter."""
    real = av.VideoFrame
    calls = {"n": 0}

    class Failing:
        @staticmethod
        def from_ndarray(array, format):
            calls["n"] += 1
            if calls["n"] > 2:
                raise RuntimeError("disk on fire")
            return real.from_ndarray(array, format=format)

    monkeypatch.setattr(aio.av, "VideoFrame", Failing)
    return calls


def test_mp4_failure_midway_leaves_nothing(tmp_path, failing_video_frame):
    target = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="disk on fire"):
        aio.write_mp4(block_clip(6, 16, 16), target)
    assert failing_video_frame["n"] == 3  # it really failed midway, with the temporary file open
    assert not target.exists()
    assert files_in(tmp_path) == []


def test_mp4_failure_leaves_existing_target_untouched(tmp_path, failing_video_frame):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"the previous video")
    with pytest.raises(RuntimeError):
        aio.write_mp4(block_clip(6, 16, 16), target)
    assert target.read_bytes() == b"the previous video"
    assert files_in(tmp_path) == ["clip.mp4"]


def test_mp4_success_replaces_existing_target(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"the previous video")
    aio.write_mp4(block_clip(3, 16, 16), target)
    assert aio.read_video(target).shape == (3, 16, 16, 3)
    assert files_in(tmp_path) == ["clip.mp4"]


@pytest.mark.parametrize("bad", [np.zeros((4, 16, 16), np.uint8), np.zeros((2, 16, 16, 4), np.uint8)])
def test_mp4_wrong_shape_writes_nothing(tmp_path, bad):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="frames must be"):
        aio.write_mp4(bad, target)
    assert target.read_bytes() == b"old"
    assert files_in(tmp_path) == ["clip.mp4"]


@pytest.mark.parametrize(
    "write",
    [
        lambda frames, path: aio.write_gif(frames, path),
        lambda frames, path: aio.write_filmstrip(frames, path),
    ],
    ids=["gif", "filmstrip"],
)
def test_pil_writers_failure_leaves_nothing(tmp_path, monkeypatch, write):
    def partial_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half a file")
        raise OSError("no space left on device")

    monkeypatch.setattr(Image.Image, "save", partial_save)
    fresh, existing = tmp_path / "new.out", tmp_path / "old.out"
    existing.write_bytes(b"keep me")
    with pytest.raises(OSError, match="no space"):
        write(block_clip(2, 8, 8), fresh)
    with pytest.raises(OSError, match="no space"):
        write(block_clip(2, 8, 8), existing)
    assert existing.read_bytes() == b"keep me"
    assert files_in(tmp_path) == ["old.out"]


def test_atomic_path_block_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(KeyError), aio.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"partial")
        assert tmp.exists() and not target.exists()
        raise KeyError("boom")
    assert files_in(tmp_path) == []

    target.write_bytes(b"original")
    with pytest.raises(KeyError), aio.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyError("boom")
    assert target.read_bytes() == b"original"
    assert files_in(tmp_path) == ["out.bin"]


def test_atomic_path_success(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with aio.atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    assert files_in(target.parent) == ["out.bin"]


# ------------------------------------------------------------------------------------ load_image


def solid(colour, size=(8, 6), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def as_array(img: Image.Image) -> np.ndarray:
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def test_load_png_exact(tmp_path):
    src = np.random.default_rng(3).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    Image.fromarray(src).save(tmp_path / "a.png")
    out = aio.load_image(tmp_path / "a.png")
    assert out.size == (8, 6)
    np.testing.assert_array_equal(as_array(out), src)
    # a str path works too
    np.testing.assert_array_equal(as_array(aio.load_image(str(tmp_path / "a.png"))), src)


def test_load_jpeg(tmp_path):
    solid((200, 60, 30), size=(16, 16)).save(tmp_path / "a.jpg", quality=95)
    out = as_array(aio.load_image(tmp_path / "a.jpg"))
    assert out.shape == (16, 16, 3)
    assert np.abs(out - [200, 60, 30]).max() <= 6


def test_load_webp(tmp_path):
    src = np.random.default_rng(4).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    Image.fromarray(src).save(tmp_path / "a.webp", lossless=True)
    np.testing.assert_array_equal(as_array(aio.load_image(tmp_path / "a.webp")), src)
    solid((30, 180, 90), size=(16, 16)).save(tmp_path / "b.webp", quality=90)
    assert np.abs(as_array(aio.load_image(tmp_path / "b.webp")) - [30, 180, 90]).max() <= 6


def rgba_image() -> Image.Image:
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[0, 0] = (255, 255, 255, 0)  # fully transparent white → black
    arr[0, 1] = (10, 200, 30, 255)  # opaque → unchanged
    arr[0, 2] = (200, 100, 50, 128)  # half transparent → about half
    arr[1] = (90, 90, 250, 0)
    return Image.fromarray(arr, mode="RGBA")


def check_rgba_composite(out: np.ndarray) -> None:
    assert out.shape == (2, 3, 3)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [10, 200, 30]
    assert np.abs(out[0, 2] - [100, 50, 25]).max() <= 1
    assert (out[1] == 0).all()


def test_load_rgba_png_composited_on_black(tmp_path):
    rgba_image().save(tmp_path / "a.png")
    check_rgba_composite(as_array(aio.load_image(tmp_path / "a.png")))


def test_load_rgba_pil_and_array():
    check_rgba_composite(as_array(aio.load_image(rgba_image())))
    check_rgba_composite(as_array(aio.load_image(np.asarray(rgba_image()))))


def test_load_la_composited_on_black(tmp_path):
    Image.fromarray(np.array([[[200, 0], [200, 255]]], dtype=np.uint8), mode="LA").save(tmp_path / "la.png")
    out = as_array(aio.load_image(tmp_path / "la.png"))
    assert out.tolist() == [[[0, 0, 0], [200, 200, 200]]]


def test_load_grayscale(tmp_path):
    src = np.array([[0, 50, 255], [128, 7, 200]], dtype=np.uint8)
    Image.fromarray(src, mode="L").save(tmp_path / "g.png")
    out = as_array(aio.load_image(tmp_path / "g.png"))
    np.testing.assert_array_equal(out, np.stack([src] * 3, axis=-1))


def test_load_palette(tmp_path):
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    img.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P"
    out = as_array(aio.load_image(tmp_path / "p.png"))
    assert out.tolist() == [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]


def test_load_palette_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 255, 255, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    img.info["transparency"] = 0
    img.save(tmp_path / "pt.png", transparency=0)
    out = as_array(aio.load_image(tmp_path / "pt.png"))
    assert out.tolist() == [[[0, 0, 0], [0, 255, 0]]]  # transparent white → black


def test_load_16bit_png_returns_rgb(tmp_path):
    src = np.full((4, 5), 40000, dtype=np.uint16)
    Image.fromarray(src).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as check:
        assert check.mode.startswith("I")
    out = aio.load_image(tmp_path / "g16.png")
    assert out.mode == "RGB" and out.size == (5, 4)


def test_load_16bit_png_scales_to_8bit(tmp_path):
    src = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1028).astype(np.uint16)  # 0..64764
    Image.fromarray(src).save(tmp_path / "g16.png")
    out = as_array(aio.load_image(tmp_path / "g16.png"))
    assert np.abs(out[..., 0] - src.astype(np.float64) / 257).max() <= 1


def test_load_rgb_pil_is_a_copy():
    src = solid((1, 2, 3))
    out = aio.load_image(src)
    out.putpixel((0, 0), (9, 9, 9))
    assert src.getpixel((0, 0)) == (1, 2, 3)


def test_load_arrays():
    rgb = np.random.default_rng(5).integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    out = aio.load_image(rgb)
    assert out.size == (6, 4)
    np.testing.assert_array_equal(as_array(out), rgb)

    gray = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(as_array(aio.load_image(gray)), np.stack([gray] * 3, axis=-1))

    floats = np.array([[[0.0, 0.5, 1.0], [0.25, 0.1, 0.9]]], dtype=np.float32)
    np.testing.assert_array_equal(as_array(aio.load_image(floats)), [[[0, 128, 255], [64, 26, 230]]])

    out_of_range = np.array([[[-0.5, 1.5, 0.2]]], dtype=np.float64)
    np.testing.assert_array_equal(as_array(aio.load_image(out_of_range)), [[[0, 255, 51]]])


@pytest.mark.parametrize("shape", [(4, 4, 2), (4, 4, 5), (2, 4, 4, 3), (7,)])
def test_load_array_bad_shape(shape):
    with pytest.raises(AnyframeInputError, match="image array"):
        aio.load_image(np.zeros(shape, dtype=np.uint8))


def test_load_missing(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(AnyframeInputError, match="not found") as info:
        aio.load_image(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(AnyframeInputError):
        aio.load_image(tmp_path)  # a folder is not an image


def test_load_corrupt_random_bytes(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(np.random.default_rng(6).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(AnyframeInputError) as info:
        aio.load_image(bad)
    assert str(bad) in str(info.value)


def test_load_corrupt_truncated_png(tmp_path):
    noise = np.random.default_rng(7).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    bad = tmp_path / "trunc.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnyframeInputError) as info:
        aio.load_image(bad)
    assert str(bad) in str(info.value)


def test_load_empty_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(AnyframeInputError, match="empty file"):
        aio.load_image(empty)


# ------------------------------------------------------------------------------------- fit_image


def three_bands(w: int, h: int, vertical: bool = False) -> Image.Image:
    """Red first quarter, green middle half, blue last quarter (along x, or along y if vertical)."""
    n = h if vertical else w
    line = np.zeros((n, 3), dtype=np.uint8)
    line[: n // 4] = (255, 0, 0)
    line[n // 4 : n - n // 4] = (0, 255, 0)
    line[n - n // 4 :] = (0, 0, 255)
    arr = np.broadcast_to(line[:, None] if vertical else line[None], (h, w, 3)).copy()
    return Image.fromarray(arr)


@pytest.mark.parametrize("vertical", [False, True], ids=["wide", "tall"])
def test_fit_keeps_the_centre(vertical):
    img = three_bands(32, 64, vertical=True) if vertical else three_bands(64, 32)
    out = aio.fit_image(img, 16, 16)
    assert out.size == (16, 16)
    arr = np.asarray(out).astype(int)
    # the red and blue quarters are cropped away (Lanczos leaves a faint fringe on the edge pixel only)
    assert arr[..., 0].max() <= 20 and arr[..., 2].max() <= 20
    inner = arr[:, 1:-1] if not vertical else arr[1:-1]
    assert (inner[..., 1] >= 250).all()
    assert arr[8, 8].tolist() == [0, 255, 0]


def test_fit_upscales_a_small_image():
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    arr[:, :4] = (255, 0, 0)
    arr[:, 4:] = (0, 0, 255)
    out = aio.fit_image(Image.fromarray(arr), 16, 16)
    assert out.size == (16, 16)
    res = np.asarray(out).astype(int)
    assert (res[:, :6, 0] >= 240).all() and (res[:, :6, 2] <= 15).all()  # left stays red
    assert (res[:, 10:, 2] >= 240).all() and (res[:, 10:, 0] <= 15).all()  # right stays blue


def test_fit_upscales_and_crops():
    # 16×8 (w×h) to 16×16: scaled ×2 to 32×16, the middle 16 columns (all green) kept
    out = aio.fit_image(three_bands(16, 8), 16, 16)
    assert out.size == (16, 16)
    arr = np.asarray(out).astype(int)
    assert (arr[:, 1:-1, 1] >= 240).all()
    assert arr[:, 1:-1, 0].max() <= 15 and arr[:, 1:-1, 2].max() <= 15
    assert arr[..., 0].max() < 128 and arr[..., 2].max() < 128  # only a Lanczos fringe of the cut bands


def test_fit_same_size_is_unchanged():
    src = np.random.default_rng(8).integers(0, 256, size=(12, 20, 3), dtype=np.uint8)
    out = aio.fit_image(Image.fromarray(src), 12, 20)
    np.testing.assert_array_equal(np.asarray(out), src)


@pytest.mark.parametrize("src_wh", [(17, 13), (100, 3), (3, 100), (16, 16), (1, 1), (33, 65), (640, 480)])
@pytest.mark.parametrize("target_hw", [(16, 16), (32, 48), (8, 24), (15, 7)])
def test_fit_exact_size(src_wh, target_hw):
    out = aio.fit_image(Image.new("RGB", src_wh, (10, 20, 30)), *target_hw)
    assert out.size == (target_hw[1], target_hw[0])
    assert np.abs(np.asarray(out).astype(int) - [10, 20, 30]).max() <= 1


# ------------------------------------------------------------------------------------ read_video


def test_read_video_missing(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(AnyframeInputError, match="not found") as info:
        aio.read_video(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("kind", ["random", "empty", "truncated"])
def test_read_video_corrupt(tmp_path, kind):
    bad = tmp_path / "bad.mp4"
    if kind == "random":
        bad.write_bytes(np.random.default_rng(9).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        bad.write_bytes(b"")
    else:
        aio.write_mp4(block_clip(9, 32, 32), tmp_path / "good.mp4")
        data = (tmp_path / "good.mp4").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnyframeInputError, match="cannot decode video") as info:
        aio.read_video(bad)
    assert str(bad) in str(info.value)


def test_read_video_audio_only(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(AnyframeInputError):
        aio.read_video(path)


def test_write_texts_writes_every_file_or_none(tmp_path, monkeypatch):
    a, b = tmp_path / "r.json", tmp_path / "sub" / "r.md"
    aio.write_texts({a: "{}", b: "# r"})
    assert a.read_text() == "{}" and b.read_text() == "# r"
    write_text = Path.write_text

    def failing(self, text, *args, **kwargs):  # the second file's text fails while it is written
        if text == "fail":
            raise RuntimeError("boom")
        return write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(RuntimeError, match="boom"):
        aio.write_texts({a: "new", b: "fail"})
    assert a.read_text() == "{}" and b.read_text() == "# r"  # neither replaced
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["r.json", "r.md", "sub"]  # no temporary left
