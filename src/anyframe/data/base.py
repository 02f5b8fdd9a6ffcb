"""The dataset protocol: what every training data source yields.

A dataset is map-style (``len`` and ``[index]``) and yields :class:`VideoSample` (pixels) or
:class:`LatentSample` (pre-encoded, from the latent cache). Datasets whose items differ in size
expose ``bucket(index)``: items in one bucket have the same shape and can be batched together.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class VideoSample:
    """One training clip."""

    video: Tensor  # [T, 3, H, W] float in [-1, 1]
    caption: str
    frame_captions: list[str] | None = None  # T per-frame narratives (ReasonDiff format)
    masks: Tensor | None = None  # [K, T, H, W] float in {0, 1}, one clip per object
    regional_captions: list[str] | None = None  # K captions, one per mask (JDM)
    meta: dict = field(default_factory=dict)


@dataclass
class LatentSample:
    """One pre-encoded training clip (see ``anyframe.data.latent_cache``)."""

    latents: Tensor  # [C, T, h, w], normalised autoencoder latents
    text_embeds: Tensor  # [L, D]
    text_mask: Tensor  # [L] bool
    caption: str
    meta: dict = field(default_factory=dict)


@runtime_checkable
class VideoDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> VideoSample | LatentSample: ...


def bucket_of(dataset, index: int) -> Hashable:
    """The item's bucket key; datasets without ``bucket`` are one bucket."""
    bucket = getattr(dataset, "bucket", None)
    return None if bucket is None else bucket(index)


@dataclass
class VideoBatch:
    """A collated batch of :class:`VideoSample`."""

    video: Tensor  # [B, T, 3, H, W]
    captions: list[str]
    frame_captions: list[list[str] | None]
    masks: list[Tensor | None]
    regional_captions: list[list[str] | None]
    meta: list[dict]


@dataclass
class LatentBatch:
    """A collated batch of :class:`LatentSample`."""

    latents: Tensor  # [B, C, T, h, w]
    text_embeds: Tensor  # [B, L, D]
    text_mask: Tensor  # [B, L]
    captions: list[str]
    meta: list[dict]


def collate(samples: Sequence[VideoSample | LatentSample]) -> VideoBatch | LatentBatch:
    """Stack samples of one bucket (same shapes)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    if isinstance(samples[0], LatentSample):
        return LatentBatch(
            latents=torch.stack([s.latents for s in samples]),
            text_embeds=torch.stack([s.text_embeds for s in samples]),
            text_mask=torch.stack([s.text_mask for s in samples]),
            captions=[s.caption for s in samples],
            meta=[s.meta for s in samples],
        )
    shapes = {tuple(s.video.shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"a batch mixes clip shapes {sorted(shapes)}: batch within one bucket")
    return VideoBatch(
        video=torch.stack([s.video for s in samples]),
        captions=[s.caption for s in samples],
        frame_captions=[s.frame_captions for s in samples],
        masks=[s.masks for s in samples],
        regional_captions=[s.regional_captions for s in samples],
        meta=[s.meta for s in samples],
    )
