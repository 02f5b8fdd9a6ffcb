"""Oracle step 4 (:mod:`anyframe.world.oracle`): which shape a soft coverage patch shows — residuals by
analysis by synthesis with the renderer's own shapes, and the posterior over vocab.SHAPES."""

from __future__ import annotations

import math

import numpy as np

from anyframe.world import vocab
from anyframe.world.render import (
    CROSS_HALF_THICKNESS,
    DIAMOND_HALF_HEIGHT,
    DIAMOND_HALF_WIDTH,
    SHAPE_SDFS,
    SQUARE_HALF_SIDE,
    TRIANGLE_CIRCUMRADIUS,
)

# calibration_report(): 95 % of clean objects fit their shape with residual ≤ 0.07, merged blobs ≈ 0.26
FIT_RESIDUAL, FIT_SCALE = 0.05, 0.1
SHAPE_TEMPERATURE = 0.02  # residual scale of the shape posterior (calibration_report)

# The renderer's shape areas in units of r² (render.py's proportions): a detection's area gives each shape
# hypothesis its radius.
AREA_PER_R2 = {
    "circle": math.pi,
    "square": (2 * SQUARE_HALF_SIDE) ** 2,
    "triangle": 3 * math.sqrt(3) / 4 * TRIANGLE_CIRCUMRADIUS**2,
    "diamond": 2 * DIAMOND_HALF_HEIGHT * DIAMOND_HALF_WIDTH,
    "cross": 2 * (2 * 2 * CROSS_HALF_THICKNESS) - (2 * CROSS_HALF_THICKNESS) ** 2,
}
_ANGLE_STEPS = np.arange(-2, 3, dtype=np.float64) / 24  # × the symmetry period, around the moment estimate
_SCALES = np.array([0.93, 1.0, 1.07])


def _moment_angles(patch: np.ndarray, cx: float, cy: float) -> dict[str, float]:
    """Each shape hypothesis' rotation (radians, render.py's convention: clockwise on screen) from the
    patch's moments: the diamond's long axis from the second-order moments, the square's and cross's
    4-fold and the triangle's 3-fold orientation from the phase of Σ w (x + iy)ⁿ."""
    ys, xs = np.nonzero(patch > 0)
    w = patch[ys, xs].astype(np.float64)
    z = (xs + 0.5 - cx) + 1j * (ys + 0.5 - cy)
    m2, m3, m4 = (complex((w * z**n).sum()) for n in (2, 3, 4))
    # y grows down, so a clockwise screen rotation by a multiplies z by e^{ia}; at a = 0 the diamond's long
    # axis is vertical (arg m2 = π), a square's corners are diagonal (arg m4 = π), a cross's arms axial
    # (arg m4 = 0), the triangle points up (arg m3 = π/2).
    return {
        "circle": 0.0,
        "square": (np.angle(m4) - math.pi) / 4,
        "triangle": (np.angle(m3) - math.pi / 2) / 3,
        "diamond": (np.angle(m2) - math.pi) / 2,
        "cross": np.angle(m4) / 4,
    }


def shape_residuals(patch: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """How well each shape of vocab.SHAPES explains a soft coverage patch: float64 [5], lower is better.

    ``patch`` float [h, w]: coverage in [0, 1] around one object (0 outside); ``(cx, cy)`` its centroid in
    patch pixels. For each shape, the renderer's own signed distance function is drawn with the
    renderer's anti-aliasing (``clip(0.5 − sdf, 0, 1)``) at the centroid (every shape is centred on its
    centroid), with the radius that gives the patch's area (× 0.93, 1, 1.07) and at 5 rotations around
    the moment estimate (:func:`_moment_angles`, ± 2/24 of the symmetry period); the residual is
    ``min Σ (coverage − patch)² / Σ patch``. Rotation invariant by construction, and exact at any size:
    at a few pixels across a shape is still told by how its edge pixels are covered.
    """
    h, w = patch.shape
    area = float(patch.sum())
    if area <= 0:
        return np.full(len(vocab.SHAPES), np.inf)
    xs = (np.arange(w, dtype=np.float32) + np.float32(0.5 - cx))[None, None, :]
    ys = (np.arange(h, dtype=np.float32) + np.float32(0.5 - cy))[None, :, None]
    angles0 = _moment_angles(patch, cx, cy)
    target = patch.astype(np.float32)[None]
    out = np.empty(len(vocab.SHAPES))
    for i, shape in enumerate(vocab.SHAPES):
        sdf_fn, symmetry = SHAPE_SDFS[shape]
        period = 2 * math.pi / symmetry if symmetry else 0.0
        angles = angles0[shape] + (_ANGLE_STEPS * period if symmetry else np.zeros(1))
        r = math.sqrt(area / AREA_PER_R2[shape]) * _SCALES  # [S]
        a = np.repeat(angles, len(r))
        rr = np.tile(r, len(angles)).astype(np.float32)[:, None, None]
        c = np.cos(a).astype(np.float32)[:, None, None]
        s = np.sin(a).astype(np.float32)[:, None, None]
        u, v = c * xs + s * ys, c * ys - s * xs
        cov = np.clip(np.float32(0.5) - sdf_fn(u, v, rr), 0.0, 1.0)
        out[i] = float(((cov - target) ** 2).sum(axis=(1, 2)).min()) / area
    return out


def shape_posterior(residuals: np.ndarray) -> np.ndarray:
    """Posterior over vocab.SHAPES from :func:`shape_residuals`: ``softmax(−residual / SHAPE_TEMPERATURE)``
    (float64 [5])."""
    z = -(residuals - residuals.min()) / SHAPE_TEMPERATURE
    p = np.exp(z)
    return p / p.sum()
