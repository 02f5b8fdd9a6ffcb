"""Oracle step 6 (:mod:`anyframe.world.oracle`): a clip's rendering style from its image statistics."""

from __future__ import annotations

import math

import cv2
import numpy as np

from anyframe.world.oracle.colors import DARK_LEVEL, PixelColors
from anyframe.world.oracle.detect import Detection, _sandwiched_stripes, block_factor, detect, stripe_fraction


def _grain_level(frames: np.ndarray) -> float:
    """Median over frames of the median |pixel − its 3 × 3 median| (mean over channels) on dark pixels: the
    grain style's per-pixel noise (σ = 12 → ≈ 6–10); 0 on clean renders, whose patterns are piecewise
    constant (a 3 × 3 median keeps a pattern's cells, and the lines it removes are a minority of pixels)."""
    levels = []
    for frame in frames:
        med = cv2.medianBlur(frame, 3).astype(np.int16)
        diff = np.abs(frame.astype(np.int16) - med).mean(axis=-1)
        dark = frame.max(axis=-1) < DARK_LEVEL
        if dark.sum() >= 10:
            levels.append(float(np.median(diff[dark])))
    return float(np.median(levels)) if levels else 0.0


def style_statistics(
    frames: np.ndarray, detections: list[list[Detection]] | None = None, pixels: PixelColors | None = None
) -> dict[str, float]:
    """The image statistics :func:`classify_style` decides on (``detections`` / ``pixels`` from
    ``detect(frames, return_pixels=True)`` when already computed):

    - ``block``: :func:`block_factor` (pixelated: 2 or 4);
    - ``grain``: :func:`_grain_level` (at the block resolution);
    - ``interior``: area-weighted mean of the detections' interior coverage (hollow outlines < 1);
    - ``stripes``: :func:`_sandwiched_stripes`;
    - ``stripe_fraction``: :func:`stripe_fraction` (a looser stripe measure, for clips of tiny objects).
    """
    f = block_factor(frames)
    if detections is None or pixels is None:
        detections, pixels = detect(frames, return_pixels=True)
    vals, weights = [], []
    for frame in detections:
        for d in frame:
            if not math.isnan(d.interior):
                vals.append(d.interior)
                weights.append(d.area)
    return {
        "block": float(f),
        "grain": _grain_level(np.ascontiguousarray(frames[:, ::f, ::f])),
        "interior": float(np.average(vals, weights=weights)) if vals else 1.0,
        "stripes": _sandwiched_stripes(pixels),
        "stripe_fraction": stripe_fraction(pixels),
    }


def classify_style(
    frames: np.ndarray, detections: list[list[Detection]] | None = None, pixels: PixelColors | None = None
) -> str:
    """The clip's style (one of vocab.STYLES) from :func:`style_statistics`, in this order: uniform blocks →
    ``pixelated``; grain level ≥ 3 → ``grain``; sandwiched stripes ≥ 0.12 (or ≥ 0.06 with a stripe fraction
    ≥ 0.12 and a solid interior ≥ 0.85: tiny striped objects) → ``striped``; interior
    coverage < 0.965 → ``outline``; else ``flat``. The thresholds sit between the ranges measured on 60
    renders per style at 32 and 64 px (stripes: flat ≤ 0.02, outline ≤ 0.11, striped ≥ 0.14 but for
    the tiniest objects; interior: flat ≥ 0.974, outline 5–95 % 0.29–0.97, striped 0.88–1). An outlined
    shape too thin to have an inside (a small cross or diamond) is indistinguishable from a flat one."""
    st = style_statistics(frames, detections, pixels)
    if st["block"] > 1:
        return "pixelated"
    if st["grain"] >= 3.0:
        return "grain"
    tiny_stripes = st["stripes"] >= 0.06 and st["stripe_fraction"] >= 0.12 and st["interior"] >= 0.85
    if st["stripes"] >= 0.12 or tiny_stripes:
        return "striped"
    if st["interior"] < 0.965:
        return "outline"
    return "flat"
