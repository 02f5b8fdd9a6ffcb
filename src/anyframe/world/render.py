"""The shapes world's renderer: a :class:`~anyframe.world.scene.Trajectory` → RGB frames and per-object masks.

Every shape is a signed distance function (negative inside, in pixels) evaluated at pixel centres;
its coverage ``clip(0.5 − sdf, 0, 1)`` is a one-pixel anti-aliasing ramp. All work is vectorised over
frames — one ``[T, H, W]`` array per object — on pixel grids that are built once per canvas size.

Conventions:

* Pixel ``(i, j)`` (row, column) covers ``[j, j + 1] × [i, i + 1]`` of the screen, its centre is
  ``(j + 0.5, i + 0.5)``; ``y`` grows downwards (as in :mod:`anyframe.world.scene`).
* A positive angle turns a shape clockwise on screen (the sample coordinates are rotated by −angle).
* Objects are drawn in scene order: a later object is in front. ``masks[n]`` is object ``n``'s
  *visible* coverage — its filled shape times the transmittance of every object drawn after it — so
  the masks of all objects sum to at most 1 at every pixel, and the frame is exactly
  ``Σₙ masks[n] · paintₙ + (1 − Σₙ masks[n]) · background``.
* Pattern backgrounds are drawn in world coordinates (screen + camera offset): a camera pan is seen
  as the background moving the other way. Solid backgrounds cannot show a pan.
* Sizes given "at 32 px" scale with the canvas (``scene.size / 32``), like every size in
  :mod:`anyframe.world.vocab`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anyframe.world import vocab
from anyframe.world.scene import Scene, Trajectory, simulate

# ---------------------------------------------------------------------------------------- constants

# Shape proportions, as multiples of the trajectory radius r. Areas at equal r (in r²): circle π ≈ 3.14,
# square 1.7² = 2.89, cross 2.31, triangle √3 ≈ 1.73, diamond 2·1.2·0.7 = 1.68 — within 1.9× of each other,
# so a "large" shape of any kind is bigger than a "small" one of any other kind (size steps are 2.25× in area).
SQUARE_HALF_SIDE = 0.85
TRIANGLE_CIRCUMRADIUS = 2 / math.sqrt(3)  # side 2r: an equilateral triangle of circumradius r would be
# 2.4× smaller than the circle; this one is as wide as the circle and still centred on its centroid
# The diamond is a rhombus taller than wide: a square turned 45° would be a diamond, so a rotating square
# (vocab.ROTATION_TURNS) could not be told from a diamond by any rotation-invariant reader (the oracle).
DIAMOND_HALF_HEIGHT = 1.2
DIAMOND_HALF_WIDTH = 0.7
CROSS_HALF_THICKNESS = 0.35

OUTLINE_WIDTH = 1.6  # px at 32: the ring lies inside the filled shape, so no colour falls outside the mask
STRIPE_PERIOD = 4.0  # px at 32, measured across the (diagonal) stripes
STRIPE_DARKEN = 0.5  # the dark stripes are the object's colour times this
PATTERN_PERIOD = 8.0  # px at 32
GRID_LINE_WIDTH = 1.0  # px at 32
DOT_RADIUS = 1.5  # px at 32
GRAIN_SIGMA = 12.0  # grey levels; one noise value per pixel, added to all three channels (hue is kept)

# Pattern backgrounds: (base, feature) colours. Both dark (every channel < 110, the objects' colours are
# bright and saturated), so a pattern never reads as an object; slightly tinted so patterns differ.
PATTERN_TONES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "checker": ((28, 30, 38), (64, 66, 80)),
    "stripes": ((30, 26, 40), (72, 62, 92)),
    "grid": ((22, 30, 32), (66, 90, 94)),
    "dots": ((32, 26, 24), (96, 80, 62)),
}


def pixelate_factor(size: int) -> int:
    """Block size of the ``pixelated`` style: 1/4 resolution from 64 px up, 1/2 below. (At 32 px a 1/4
    resolution leaves 8×8 blocks, where a small shape is a single block and its identity is gone:
    a style must change the look, not destroy the content.)"""
    return 4 if size >= 64 else 2


# ------------------------------------------------------------------------------------------ result


@dataclass
class Rendering:
    """A rendered clip with exact per-object ground truth."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    masks: np.ndarray  # float32 [N, T, H, W]: visible coverage in [0, 1]; objects in scene order
    trajectory: Trajectory


# ------------------------------------------------------------------------------------------ grids


@functools.lru_cache(maxsize=32)
def _grid(size: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a canvas of ``size`` px sampled every ``factor`` px, in grid units
    (one unit = one sample): ``xs`` float32 [1, 1, W'] and ``ys`` float32 [1, H', 1],
    W' = H' = ⌈size / factor⌉.

    Broadcasting shapes keep every coordinate-only operation on a row or a column, not on the full grid.
    """
    n = -(-size // factor)
    centres = np.arange(n, dtype=np.float32) + np.float32(0.5)
    xs, ys = centres.reshape(1, 1, n), centres.reshape(1, n, 1)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def _coverage(sdf: np.ndarray) -> np.ndarray:
    """``clip(0.5 − sdf, 0, 1)``, in place on ``sdf`` (a fresh array from an SDF function)."""
    np.subtract(np.float32(0.5), sdf, out=sdf)
    return np.clip(sdf, 0.0, 1.0, out=sdf)


# ------------------------------------------------------------------------------------------ shapes
# Each SDF takes local coordinates u (→ right) and v (↓ down) — broadcastable to [T, H, W], e.g.
# u [T, 1, W] and v [T, H, 1] when unrotated — and the radius r [T, 1, 1], all in grid units, and
# returns a fresh float32 [T, H, W] signed distance. Polygons use the max of their edges' half-plane
# distances: exact on the edges and inside, slightly sharp outside the corners — all a one-pixel ramp needs.


def _sdf_circle(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.sqrt(u * u + v * v) - r


def _sdf_square(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) - r * np.float32(SQUARE_HALF_SIDE)


def _sdf_triangle(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Pointing up (tip at v = −R), centroid at the origin; edge normals (0, 1) and (±√3/2, −1/2);
    # the inradius is R/2.
    slanted = np.abs(u) * np.float32(math.sqrt(3) / 2) - v * np.float32(0.5)
    return np.maximum(slanted, v) - r * np.float32(TRIANGLE_CIRCUMRADIUS / 2)


def _sdf_diamond(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    # distance to the rhombus's edge lines |u|/w + |v|/h = 1 (exact along the edges, approximate at the tips)
    h, w = np.float32(DIAMOND_HALF_HEIGHT), np.float32(DIAMOND_HALF_WIDTH)
    return (np.abs(u) * h + np.abs(v) * w - r * h * w) * np.float32(1 / math.hypot(DIAMOND_HALF_HEIGHT, DIAMOND_HALF_WIDTH))


def _sdf_cross(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    arm, half = r, r * np.float32(CROSS_HALF_THICKNESS)
    return np.minimum(np.maximum(au - arm, av - half), np.maximum(au - half, av - arm))


# shape → (SDF, order of rotational symmetry; 0 = any angle)
SHAPE_SDFS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "circle": (_sdf_circle, 0),
    "square": (_sdf_square, 4),
    "triangle": (_sdf_triangle, 3),
    "diamond": (_sdf_diamond, 2),
    "cross": (_sdf_cross, 4),
}


def _local_coords(
    xs: np.ndarray, ys: np.ndarray, cx: np.ndarray, cy: np.ndarray, angle: np.ndarray, symmetry: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates relative to the object's centre, rotated by −angle.

    ``cx``, ``cy``, ``angle``: float32 [T] (grid units, radians). Returns ``u``, ``v`` broadcastable to
    [T, H, W]: [T, 1, W] and [T, H, 1] when no rotation is needed (an angle that is a multiple of
    2π/symmetry leaves the shape unchanged), full [T, H, W] otherwise.
    """
    dx = xs - cx[:, None, None]  # [T, 1, W]
    dy = ys - cy[:, None, None]  # [T, H, 1]
    if symmetry == 0:
        return dx, dy
    period = 2 * math.pi / symmetry
    rem = np.remainder(angle.astype(np.float64), period)
    if np.all(np.minimum(rem, period - rem) < 1e-6):
        return dx, dy
    c = np.cos(angle).astype(np.float32)[:, None, None]
    s = np.sin(angle).astype(np.float32)[:, None, None]
    return c * dx + s * dy, c * dy - s * dx


# --------------------------------------------------------------------------------------- patterns
# Pattern weights in [0, 1] (0: base tone, 1: feature tone) from world coordinates wx [T, 1, W] and
# wy [T, H, 1] in px. Edges lie on whole pixels (a still pattern is crisp) and on the 4-px blocks of
# the pixelated style (a block is one cell, not a blend of two).


def _band(x: np.ndarray, period: float) -> np.ndarray:
    """Anti-aliased square wave: 1 where ``x mod period`` is in ``[0, period / 2)``, else 0."""
    phase = x * np.float32(1 / period) - np.float32(0.25)  # 0 at the middle of an "on" half
    dist = np.abs(phase - np.round(phase)) * np.float32(period)  # to that middle, in [0, period / 2]
    return _coverage(dist - np.float32(period / 4))


def _pattern_checker(wx: np.ndarray, wy: np.ndarray, k: float) -> np.ndarray:
    period = PATTERN_PERIOD * k
    bx, by = _band(wx, period), _band(wy, period)
    return bx + by - 2 * bx * by  # soft XOR: a cell is "on" when exactly one of its bands is


def _pattern_stripes(wx: np.ndarray, wy: np.ndarray, k: float) -> np.ndarray:
    # Diagonal (↘) stripes, so horizontal and vertical pans both move them; the striped *style* runs ↗.
    return _band((wx - wy) * np.float32(1 / math.sqrt(2)), PATTERN_PERIOD * k)


def _pattern_grid(wx: np.ndarray, wy: np.ndarray, k: float) -> np.ndarray:
    period, width = PATTERN_PERIOD * k, GRID_LINE_WIDTH * k

    def lines(x: np.ndarray) -> np.ndarray:  # lines on [m·period, m·period + width)
        phase = (x - np.float32(width / 2)) * np.float32(1 / period)
        return _coverage(np.abs(phase - np.round(phase)) * np.float32(period) - np.float32(width / 2))

    return np.maximum(lines(wx), lines(wy))


def _pattern_dots(wx: np.ndarray, wy: np.ndarray, k: float) -> np.ndarray:
    period = PATTERN_PERIOD * k
    px, py = wx * np.float32(1 / period), wy * np.float32(1 / period)
    dx, dy = (px - np.round(px)) * np.float32(period), (py - np.round(py)) * np.float32(period)
    return _coverage(np.sqrt(dx * dx + dy * dy) - np.float32(DOT_RADIUS * k))


PATTERNS: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "checker": _pattern_checker,
    "stripes": _pattern_stripes,
    "grid": _pattern_grid,
    "dots": _pattern_dots,
}


def _block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor × factor`` blocks of axes 1, 2 of ``arr`` [T, H, W] (edge-padded to a multiple)."""
    t, h, w = arr.shape
    hh, ww = -(-h // factor), -(-w // factor)
    if (hh * factor, ww * factor) != (h, w):
        arr = np.pad(arr, ((0, 0), (0, hh * factor - h), (0, ww * factor - w)), mode="edge")
    return arr.reshape(t, hh, factor, ww, factor).mean(axis=(2, 4), dtype=np.float32)


def _background(scene: Scene, camera: np.ndarray, factor: int) -> np.ndarray:
    """The background, float32 [T, H, W, 3] (patterns under a pan), [1, H, W, 3] (still patterns) or
    [1, 1, 1, 3] (solids), on the grid of ``factor`` px.

    The ``pixelated`` style (factor > 1) averages the full-resolution pattern over each block, like a
    mosaic: sampled once per block, an 8-px pattern at 1/4 resolution is at its Nyquist limit and
    comes out as grey or as aliased flicker during a pan.
    """
    if scene.background in vocab.SOLID_BACKGROUNDS:
        return np.asarray(vocab.SOLID_BACKGROUNDS[scene.background], dtype=np.float32).reshape(1, 1, 1, 3)
    xs, ys = _grid(scene.size, 1)
    cam = camera.astype(np.float32)  # [T, 2]
    if scene.pan == "none":
        cam = cam[:1]  # a still camera: one background for every frame
    wx = xs + cam[:, 0, None, None]  # [T, 1, W]
    wy = ys + cam[:, 1, None, None]  # [T, H, 1]
    weight = PATTERNS[scene.background](wx, wy, scene.size / vocab.REFERENCE_CANVAS)
    if factor > 1:
        weight = _block_mean(weight, factor)
    base, feature = (np.asarray(c, dtype=np.float32) for c in PATTERN_TONES[scene.background])
    return base + weight[..., None] * (feature - base)


# ---------------------------------------------------------------------------------------- objects

_COLOR_TABLE = np.asarray(list(vocab.COLORS.values()), dtype=np.float32)  # [K, 3]
_COLOR_INDEX = {name: i for i, name in enumerate(vocab.COLORS)}


def _object_colors(names: list[str]) -> np.ndarray:
    """float32 [T, 3] RGB of one object's per-frame colour names."""
    return _COLOR_TABLE[[_COLOR_INDEX[c] for c in names]]


def _stripe_weight(u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """float32 [T, H, W] in [0, 1]: 1 on the dark ↗ stripes, in object-local coordinates (they move and
    turn with the object)."""
    return _band((u + v) * np.float32(1 / math.sqrt(2)), period)  # the centre sits on a stripe edge


def _draw_object(
    scene: Scene, traj: Trajectory, n: int, factor: int, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Object ``n``'s filled coverage (alpha, float32 [T, H, W], 0 on invisible frames) and its paint:
    the colour it shows where it is drawn, float32 [T, 1, 1, 3] (a plain fill) or [T, H, W, 3]."""
    xs, ys = _grid(scene.size, factor)
    k = scene.size / vocab.REFERENCE_CANVAS / factor  # grid units per px at 32
    inv = np.float32(1 / factor)
    cx, cy = traj.x[n].astype(np.float32) * inv, traj.y[n].astype(np.float32) * inv
    r = (traj.radius[n].astype(np.float32) * inv)[:, None, None]
    sdf_fn, symmetry = SHAPE_SDFS[scene.objects[n].shape]
    # Stripes have no symmetry of their own: a striped object needs its true local frame.
    u, v = _local_coords(xs, ys, cx, cy, traj.angle[n], 1 if scene.style == "striped" else symmetry)
    sdf = sdf_fn(u, v, r)
    color = _object_colors(traj.color[n])[:, None, None, :]  # [T, 1, 1, 3]

    paint = color
    if scene.style == "outline":
        # Ring = the fill minus the fill eroded by the outline width; inside the ring the object shows the
        # background, so an outlined object still hides what is behind it (its mask is its filled shape).
        inner = _coverage(sdf + np.float32(OUTLINE_WIDTH * k))
        alpha = _coverage(sdf)
        hollow = (inner / np.maximum(alpha, np.float32(1e-6)))[..., None]  # [T, H, W, 1], inner ≤ alpha
        paint = color + hollow * (background - color)
    else:
        alpha = _coverage(sdf)
        if scene.style == "striped":
            dark = _stripe_weight(u, v, STRIPE_PERIOD * k)
            paint = color * (1 - np.float32(1 - STRIPE_DARKEN) * dark)[..., None]
    visible = traj.visible[n]
    if not visible.all():
        alpha *= visible.astype(np.float32)[:, None, None]
    return alpha, paint


# ---------------------------------------------------------------------------------------- frames


def _grain(scene: Scene, shape: tuple[int, int, int]) -> np.ndarray:
    """Zero-mean Gaussian grain, float32 [T, H, W, 1], σ = GRAIN_SIGMA; deterministic per scene and frame
    (a frame's noise does not depend on how many frames the clip has)."""
    digest = hashlib.blake2b(scene.to_json().encode(), digest_size=8).digest()
    seed = int.from_bytes(digest, "little")
    t, h, w = shape
    noise = np.empty((t, h, w, 1), dtype=np.float32)
    for i in range(t):
        np.random.default_rng([seed, i]).standard_normal((h, w, 1), dtype=np.float32, out=noise[i])
    return noise * np.float32(GRAIN_SIGMA)


def _upsample(arr: np.ndarray, factor: int, size: int, axes: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of the two spatial ``axes`` by ``factor``, cropped to ``size``."""
    if factor == 1:
        return arr
    index = [slice(None)] * arr.ndim
    for axis in axes:
        arr = np.repeat(arr, factor, axis=axis)
        index[axis] = slice(0, size)
    return np.ascontiguousarray(arr[tuple(index)])


def render(scene: Scene, trajectory: Trajectory | None = None) -> Rendering:
    """Draw ``scene`` (simulated unless its ``trajectory`` is given).

    Returns frames uint8 [T, H, W, 3] and masks float32 [N, T, H, W] (H = W = scene.size, T = scene.frames,
    N objects in scene order). Deterministic: the same scene gives bit-identical frames (the ``grain``
    noise is seeded from the scene's JSON and the frame index; no global RNG).
    """
    traj = simulate(scene) if trajectory is None else trajectory
    n_obj, t = len(scene.objects), scene.frames
    if traj.x.shape != (n_obj, t) or traj.num_frames != t:
        raise ValueError(f"trajectory is {traj.x.shape} (objects, frames), scene needs {(n_obj, t)}")
    factor = pixelate_factor(scene.size) if scene.style == "pixelated" else 1
    xs, ys = _grid(scene.size, factor)
    h, w = ys.shape[1], xs.shape[2]

    background = _background(scene, traj.camera, factor)
    frames = np.zeros((t, h, w, 3), dtype=np.float32)
    masks = np.zeros((n_obj, t, h, w), dtype=np.float32)
    transmit: np.ndarray | None = None  # [T, H, W]: what the objects in front let through (None: all of it)
    for n in reversed(range(n_obj)):  # front to back: each mask is its alpha times what lies in front
        if not traj.visible[n].any():
            continue
        alpha, paint = _draw_object(scene, traj, n, factor, background)
        if transmit is None:
            masks[n] = alpha
            transmit = 1 - alpha
        else:
            np.multiply(alpha, transmit, out=masks[n])
            transmit *= 1 - alpha
        frames += masks[n][..., None] * paint
    frames += background if transmit is None else transmit[..., None] * background

    frames = _upsample(frames, factor, scene.size, (1, 2))
    masks = _upsample(masks, factor, scene.size, (2, 3))
    if scene.style == "grain":
        frames += _grain(scene, frames.shape[:3])
    # Round half up; the clip only matters for grain (a composite of 0..255 colours stays in range).
    np.add(frames, np.float32(0.5), out=frames)
    np.clip(frames, 0.0, 255.0, out=frames)
    return Rendering(frames=frames.astype(np.uint8), masks=masks, trajectory=traj)
