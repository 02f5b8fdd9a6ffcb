"""Real videos listed in a JSONL manifest, decoded with PyAV, bucketed by aspect ratio and length.

Each manifest line is ``{"video": path, "caption": str, ...}``; a relative path is read from the
manifest's folder, and any other keys travel in the sample's ``meta``. Every video is probed once at
construction (frame count, size, frame rate), so unusable files are skipped up front, with one
warning that counts them, instead of failing mid-epoch.

Clip sampling: ``stride`` takes every ``stride``-th source frame; ``fps`` resamples to a target rate
(the step is ``source_fps / fps``, a float, and frame indices are rounded). Spatially, a frame is
resized to *cover* its bucket's ``H × W`` (aspect kept, bilinear with antialiasing), then cropped.
All randomness comes from ``numpy.random.default_rng([seed, epoch, index])``: an item is the same
clip for the same seed, epoch and index, in any process and any order.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from anyframe.data.base import VideoSample
from anyframe.errors import AnyframeInputError
from anyframe.io import read_jsonl

# Why a video was skipped at construction, in the order the warning lists them.
SKIP_REASONS = ("missing", "corrupt", "no video stream", "too short")

# What PyAV raises for a file it cannot read (InvalidDataError and friends are FFmpegErrors; some
# container-level failures surface as OSError or ValueError).
_DECODE_ERRORS = (av.error.FFmpegError, OSError, ValueError)


@dataclass(frozen=True)
class VideoProbe:
    """What construction learns about a video without decoding it."""

    frames: int
    height: int
    width: int
    fps: float | None  # the stream's average rate; None when the container does not say


@dataclass(frozen=True)
class _Item:
    path: Path
    caption: str
    extra: dict  # the manifest line's other keys
    probe: VideoProbe
    step: float  # source frames per output frame
    bucket: tuple[int, int, int]  # (T, H, W) of the output clip


class _SkipVideo(Exception):
    """A video that construction leaves out; ``reason`` is one of :data:`SKIP_REASONS`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------ manifest


def read_manifest(manifest: str | os.PathLike) -> list[tuple[Path, str, dict]]:
    """Parse a JSONL manifest → ``(video path, caption, other keys)`` per non-blank line.

    Raises :class:`AnyframeInputError` naming the manifest and line for anything malformed.
    """
    manifest = Path(manifest)
    entries = []
    for where, record in read_jsonl(manifest, "manifest"):
        video, caption = record.pop("video", None), record.pop("caption", None)
        if not isinstance(video, str) or not video:
            raise AnyframeInputError(f"{where}: needs a \"video\" path (a non-empty string)")
        if not isinstance(caption, str):
            raise AnyframeInputError(f"{where}: needs a \"caption\" string")
        path = Path(video)
        entries.append((path if path.is_absolute() else manifest.parent / path, caption, record))
    if not entries:
        raise AnyframeInputError(f"manifest lists no videos: {manifest}")
    return entries


# ------------------------------------------------------------------------------------ decoding


def probe_video(path: Path) -> VideoProbe:
    """Frame count, size and average frame rate of the first video stream, without decoding.

    Raises :class:`_SkipVideo` for a missing, unreadable or video-less file.
    """
    if not path.is_file():
        raise _SkipVideo("missing")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _SkipVideo("no video stream")
            stream = container.streams.video[0]
            frames = stream.frames
            if not frames:
                # Containers without a frame count (mkv, webm, some streams): count the packets,
                # which is one per frame for video; the flush packet at the end has no data.
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            rate = stream.average_rate or stream.guessed_rate
            return VideoProbe(frames, stream.height, stream.width, float(rate) if rate else None)
    except _DECODE_ERRORS:
        raise _SkipVideo("corrupt") from None


def decode_frames(path: Path, indices: list[int]) -> np.ndarray:
    """Decode the frames at ``indices`` (sorted, may repeat) → ``uint8 [len(indices), H, W, 3]``.

    Decodes from the start and stops after the last wanted frame: frame indices are positions in
    decode order, the same count :func:`probe_video` makes. Raises PyAV's error for an unreadable
    file and ``ValueError`` if the video has fewer frames than the indices need.
    """
    wanted = Counter(indices)
    last = max(indices)
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threading: a large speed-up for real resolutions
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                rgb = frame.to_ndarray(format="rgb24")
                frames.extend([rgb] * wanted[position])
            if position >= last:
                break
    if len(frames) != len(indices):
        raise ValueError(f"{path} has fewer frames than probed (needed frame {last})")
    return np.stack(frames)


def resize_cover_crop(
    video: Tensor, height: int, width: int, rng: np.random.Generator | None
) -> tuple[Tensor, tuple[int, int]]:
    """``[T, 3, h, w]`` → ``[T, 3, height, width]``: scale to cover (aspect kept), then crop.

    ``rng`` None crops the centre; otherwise the crop offset is drawn from it. Also returns the crop's
    ``(top, left)`` in the resized frame (a micro condition).
    """
    h, w = video.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        video = F.interpolate(video, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    if rng is None:
        top, left = (new_h - height) // 2, (new_w - width) // 2
    else:
        top, left = int(rng.integers(new_h - height + 1)), int(rng.integers(new_w - width + 1))
    return video[..., top : top + height, left : left + width], (top, left)


def closest_bucket(height: int, width: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio ``H / W`` is closest to the video's in log space (the first on ties)."""
    aspect = math.log(height / width)
    return min(buckets, key=lambda hw: abs(math.log(hw[0] / hw[1]) - aspect))


def frames_needed(length: int, step: float) -> float:
    """Source frames a clip of ``length`` output frames spans at ``step`` source frames per output frame."""
    return (length - 1) * step + 1


def clip_indices(start: float, length: int, step: float) -> list[int]:
    """Source frame indices of a clip: ``start + k·step`` rounded half up (not to even, which would
    turn a steady ``x.5`` offset into uneven gaps)."""
    return [math.floor(start + k * step + 0.5) for k in range(length)]


# ------------------------------------------------------------------------------------- dataset


class ManifestVideoDataset:
    """Clips from the videos of a JSONL manifest → :class:`VideoSample` ``video [T, 3, H, W]`` in [−1, 1].

    ``size`` (H, W) is the output resolution, or ``buckets`` a list of candidate resolutions: each
    video goes to the one nearest its aspect ratio. ``lengths`` are candidate frame counts (default
    ``[num_frames]``): each video gives the longest clip it can. ``bucket(index)`` is ``(T, H, W)``;
    items of one bucket collate together. ``crop="random"`` draws the clip's start frame and crop
    offset per ``(seed, epoch, index)``; call :meth:`set_epoch` each epoch.

    Videos that are missing, unreadable, without a video stream or too short for the shortest length
    are skipped (counted in ``stats``, one warning). A video that fails to decode later is replaced
    by the next item of its bucket and counted in ``decode_failures``.
    """

    def __init__(
        self,
        *,
        manifest: str | os.PathLike,
        num_frames: int,
        stride: int | None = None,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        buckets: list[tuple[int, int]] | None = None,
        lengths: list[int] | None = None,
        crop: Literal["center", "random"] = "center",
        seed: int = 0,
    ):
        if stride is not None and fps is not None:
            raise AnyframeInputError("give stride or fps, not both")
        if stride is not None and stride < 1:
            raise AnyframeInputError(f"stride must be ≥ 1, got {stride}")
        if fps is not None and not fps > 0:
            raise AnyframeInputError(f"fps must be > 0, got {fps}")
        if crop not in ("center", "random"):
            raise AnyframeInputError(f"crop must be 'center' or 'random', got {crop!r}")
        self.resolutions = [tuple(b) for b in buckets] if buckets is not None else [tuple(size)] if size else []
        if not self.resolutions or any(len(r) != 2 or min(r) < 1 for r in self.resolutions):
            raise AnyframeInputError(f"give size=(H, W) or buckets=[(H, W), ...], positive; got {size=} {buckets=}")
        # Longest first: a video takes the first length it can supply.
        self.lengths = sorted(set(lengths if lengths is not None else [num_frames]), reverse=True)
        if not self.lengths or self.lengths[-1] < 1:
            raise AnyframeInputError(f"frame counts must be ≥ 1, got {lengths or num_frames}")
        self.manifest = Path(manifest)
        self.fps = fps
        self.stride = None if fps is not None else stride or 1
        self.crop, self.seed, self.epoch = crop, seed, 0
        self.decode_failures = 0

        entries = read_manifest(self.manifest)
        self.stats: dict[str, int] = dict.fromkeys(SKIP_REASONS, 0)
        self._items: list[_Item] = []
        for path, caption, extra in entries:
            try:
                self._items.append(self._plan(path, caption, extra))
            except _SkipVideo as skip:
                self.stats[skip.reason] += 1
        skipped = sum(self.stats.values())
        summary = ", ".join(f"{n} {reason}" for reason, n in self.stats.items() if n)
        summary = f"skipped {skipped} of {len(entries)} videos ({summary})"
        if not self._items:
            raise AnyframeInputError(f"no usable videos in {self.manifest}: {summary}")
        if skipped:
            warnings.warn(f"ManifestVideoDataset: {summary}", stacklevel=2)
        # Items per bucket, in index order: where a failed decode falls back to.
        self._members: dict[tuple[int, int, int], list[int]] = {}
        for index, item in enumerate(self._items):
            self._members.setdefault(item.bucket, []).append(index)

    def _plan(self, path: Path, caption: str, extra: dict) -> _Item:
        """Probe one video and fix its step, length and resolution."""
        probe = probe_video(path)
        if self.fps is None:
            step = float(self.stride)
        elif probe.fps is None:
            raise _SkipVideo("corrupt")  # no frame rate to resample from
        else:
            step = probe.fps / self.fps
        length = next((n for n in self.lengths if frames_needed(n, step) <= probe.frames), None)
        if length is None:
            raise _SkipVideo("too short")
        height, width = closest_bucket(probe.height, probe.width, self.resolutions)
        return _Item(path, caption, extra, probe, step, (length, height, width))

    def __len__(self) -> int:
        return len(self._items)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random crops (a no-op for ``crop="center"``)."""
        self.epoch = epoch

    def bucket(self, index: int) -> tuple[int, int, int]:
        """``(T, H, W)`` of the item's clip."""
        return self._items[index].bucket

    def __getitem__(self, index: int) -> VideoSample:
        if not 0 <= index < len(self._items):
            raise IndexError(index)
        members = self._members[self._items[index].bucket]
        first = members.index(index)
        # On a decode failure, try the bucket's next items in turn (same shape, so the batch still
        # collates), deterministically, so that every worker and every rerun sees the same data.
        for candidate in members[first:] + members[:first]:
            try:
                return self._load(candidate, np.random.default_rng([self.seed, self.epoch, index]))
            except _DECODE_ERRORS as exc:
                self.decode_failures += 1
                path = self._items[candidate].path
                warnings.warn(f"ManifestVideoDataset: cannot decode {path} ({exc}); using another clip")
        raise AnyframeInputError(f"every video of bucket {self._items[index].bucket} failed to decode")

    def _load(self, index: int, rng: np.random.Generator) -> VideoSample:
        item = self._items[index]
        length, height, width = item.bucket
        slack = item.probe.frames - frames_needed(length, item.step)
        start = slack / 2 if self.crop == "center" else rng.uniform(0, slack)
        indices = clip_indices(start, length, item.step)
        frames = torch.from_numpy(decode_frames(item.path, indices)).permute(0, 3, 1, 2).float()
        frames, crop = resize_cover_crop(frames, height, width, None if self.crop == "center" else rng)
        # Bilinear weights are convex: the clamp only absorbs float rounding at 0 and 255.
        video = (frames / 127.5 - 1.0).clamp(-1.0, 1.0).contiguous()
        meta = {
            **item.extra,  # the manifest's own keys; ours below take precedence
            "video": str(item.path),
            "frame_indices": indices,
            "source_fps": item.probe.fps,
            "index": index,  # the item actually loaded (another one after a decode failure)
            # STIV / SDXL micro conditions: the sampling stride, the source size, the crop offset
            "stride": float(item.step),
            "original_size": (item.probe.height, item.probe.width),
            "crop": crop,
        }
        return VideoSample(video=video, caption=item.caption, meta=meta)
