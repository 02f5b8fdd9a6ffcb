"""Flicker of the clip's static background, beyond the truth's own: ``temporal_flicker``."""

from __future__ import annotations

import cv2
import numpy as np

from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth


def _static_region(truth: Truth, reading: Reading) -> np.ndarray:
    """bool [T, H, W]: pixels no true object and no detection covers (dilated by 2k px)."""
    t_len, h, w, _ = reading.frames.shape
    cover = truth.rendering.masks.sum(axis=0) > 0.02 if truth.n else np.zeros((t_len, h, w), bool)
    cover = cover.copy()
    for t, frame in enumerate(reading.detections):
        for d in frame:
            cover[t] |= d.mask
    r = max(1, round(2 * truth.k))
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    cover = np.stack([cv2.dilate(c.astype(np.uint8), kernel).astype(bool) for c in cover])
    return ~cover


def temporal_flicker(truth: Truth, reading: Reading) -> tuple[float | None, float | None]:
    """(temporal_flicker, temporal_flicker_raw) — see the package docstring."""
    static = _static_region(truth, reading)
    clip = reading.frames.astype(np.float32)
    ref = truth.rendering.frames.astype(np.float32)
    mad_c, mad_t = [], []
    for t in range(clip.shape[0] - 1):
        region = static[t] & static[t + 1]
        if region.sum() < 8:
            continue
        mad_c.append(float(np.abs(clip[t + 1] - clip[t])[region].mean()))
        mad_t.append(float(np.abs(ref[t + 1] - ref[t])[region].mean()))
    if not mad_c:
        return None, None
    mc, mt = float(np.mean(mad_c)), float(np.mean(mad_t))
    return (255 - max(0.0, mc - mt)) / 255, (255 - mc) / 255
