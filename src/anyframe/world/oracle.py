"""The shapes world's oracle, part 1: read any clip — detect objects per frame and track them.

    detections = detect(frames)          # per frame: [Detection(shape, color, box, mask, centroid, ...)]
    tracks = track(detections)           # [Track(id, frames, centroids, shapes, colors, areas)]
    style = classify_style(frames)       # flat | outline | striped | grain | pixelated

Nothing here looks at a scene program: the oracle reads uint8 frames ``[T, H, W, 3]`` — a true render
or a model's imperfect clip — and reports what it sees; :mod:`anyframe.world.scoring` compares that
with the scene the clip should show. ``k = H / 32`` scales every distance given "at 32 px".

1. Background (:func:`background_model`). Objects are painted in the bright, saturated colours of
   :data:`vocab.COLORS` (the ``striped`` style also at half brightness); backgrounds and patterns are
   dark (< 110 in every channel). *Sure background* pixels are dark with no bright pixel within 2k px;
   each pixel's background ``B`` is a small Gaussian average of nearby sure-background pixels (the
   nearest one inside objects), and each frame's two background tones (a pattern's cells) are kept for
   object rims.

2. Pixels → colours (:func:`pixel_colors`). Every pixel ``p`` is read as a mix ``p ≈ B + α (P − B)`` of
   its background and one *paint* ``P`` — a vocabulary colour ``C`` or its dark stripe ``C / 2``:
   ``α = (p − B)·(P − B) / |P − B|²`` is the paint's coverage and ``tan θ = |p − B − α (P − B)| /
   (α |P − B|)`` how far off the paint's direction the pixel points. Seen from the background, an
   anti-aliased edge pixel points exactly like its paint whatever its coverage, so colours are named by
   direction (a perceptual distance that ignores brightness and mixing) and membership by coverage: a
   pixel is *core* of colour c when its best-pointing paint is C with α ≥ 0.5, tan θ ≤ 0.45 and
   ``|p − B| ≥ 30`` (above grain noise), *stripe* when it is C / 2 (or a mix of C and C / 2).

3. Colours → objects (:func:`detect`). A clip of uniform f × f blocks (the ``pixelated`` style) is read
   at block resolution — it is a flat render there. Per frame and colour, the core pixels (plus, in a
   clip that :func:`stripe_fraction` finds striped, the stripe pixels within a band's width of them)
   form a mask; its 8-connected components with at least ``MIN_CORE_PX · k²`` core pixels are objects,
   minus the seams and mis-read rims at other objects' edges (:func:`_drop_slivers`). Holes are filled
   (the ``outline`` style draws a ring). A soft coverage patch (member α, 1 in holes, rim α from
   :func:`_rim_alpha`) gives the area and the centroid.

4. Shapes (:func:`shape_residuals`). Analysis by synthesis, rotation invariant by construction and exact
   at a few pixels: each of the five shapes is drawn with the renderer's own signed distance function and
   anti-aliasing at the centroid, with the radius that gives the observed area and at rotations around
   the orientation its moments give, and compared with the coverage patch (relative squared error). The
   posterior is ``softmax(−residual / SHAPE_TEMPERATURE)``; the confidence is the posterior of the best
   shape times ``exp(−max(0, residual − FIT_RESIDUAL) / FIT_SCALE)`` (a merged blob fits no shape),
   halved at the canvas edge and against another object. Measured on clean objects (fully inside, no
   other object within reach) of rendered training scenes: 100 % at 32 and 64 px in the flat, outline,
   striped and grain styles, ≥ 99 % pixelated (tests/world/test_oracle.py; :func:`calibration_report`
   recomputes every calibrated constant).

5. Tracking (:func:`track`): Hungarian assignment frame to frame on predicted position, colour, shape and
   area, with fragments, merged blobs and hidden objects handled explicitly, and a final stitching pass.

6. Style (:func:`classify_style`) from image statistics (:func:`style_statistics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.world import vocab
from anyframe.world.render import (
    CROSS_HALF_THICKNESS,
    DIAMOND_HALF_HEIGHT,
    DIAMOND_HALF_WIDTH,
    SHAPE_SDFS,
    SQUARE_HALF_SIDE,
    TRIANGLE_CIRCUMRADIUS,
)

COLOR_NAMES: tuple[str, ...] = tuple(vocab.COLORS)
_FULL = np.asarray([vocab.COLORS[c] for c in COLOR_NAMES], dtype=np.float32)  # [K, 3]
_PAINTS = np.concatenate([_FULL, 0.5 * _FULL])  # [2K, 3]: full colours, then the striped style's dark stripe
_K = len(COLOR_NAMES)

DARK_LEVEL = 110.0  # backgrounds and patterns stay below this in every channel; object colours are far above
CORE_ALPHA = 0.5  # a pixel belongs to a paint when it covers at least half of it
MAX_TAN = 0.45  # ≈ 24°: how far off its paint's direction (seen from the background) a member pixel may point
FULL_BIAS = 0.05  # tan θ head start of a full paint over a half one (a half-covered rim is a stripe too)
MIN_CONTRAST = 30.0  # |p − B| of a member pixel, grey levels (the grain style's σ is 12)
RIM_MIN_ALPHA = 0.08  # rim pixels with less coverage count as background (grain noise is ≈ ±0.08 there)
MIN_CORE_PX = 3.0  # core pixels of an object at 32 px (× k²): a small shrinking diamond keeps ≈ 5
# a clip whose stripe_fraction or _sandwiched_stripes reaches these is read as striped: its dark stripe pixels
# join their objects (flat clips stay below 0.07 / 0.02; an outlined clip taken for striped loses little)
STRIPED_FRACTION, STRIPED_SANDWICH = 0.12, 0.09
# calibration_report(): 95 % of clean objects fit their shape with residual ≤ 0.07, merged blobs ≈ 0.26
FIT_RESIDUAL, FIT_SCALE = 0.05, 0.1
SHAPE_TEMPERATURE = 0.02  # residual scale of the shape posterior (calibration_report)
MAX_GAP = 6  # frames a track may go unseen, not hidden under another detection, before it ends
MAX_HIDDEN = 12  # frames a track may stay hidden under other objects' masks
GATE = 3.5  # px at 32: the largest jump from a track's predicted position to its next detection
GATE_PER_GAP = 1.5  # px at 32 added to the gate per missed frame


# ------------------------------------------------------------------------------------------ pixels


def background_image(frames: np.ndarray) -> np.ndarray:
    """Per-pixel background estimate, float32 ``[T, H, W, 3]`` (see :func:`background_model`)."""
    return background_model(frames)[0]


def _two_tones(pixels: np.ndarray) -> np.ndarray:
    """The two main colours of background pixels ``[M, 3]`` (a pattern's base and feature tones; twice
    nearly the same colour for a solid background): 2-means along luminance, float32 ``[2, 3]``."""
    lum = pixels.mean(axis=1)
    lo, hi = np.percentile(lum, [2, 98])
    centres = np.stack([pixels[lum <= lo].mean(0), pixels[lum >= hi].mean(0)])
    for _ in range(4):
        near = ((pixels[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in (0, 1):
            if (near == j).any():
                centres[j] = pixels[near == j].mean(0)
    return centres.astype(np.float32)


def background_model(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel background estimate, float32 ``[T, H, W, 3]``, and each frame's two background tones
    (:func:`_two_tones` of its sure-background pixels), float32 ``[T, 2, 3]``.

    *Sure background* pixels are dark (max channel < :data:`DARK_LEVEL`) with no bright pixel within
    ``≈ k`` px (k = canvas / 32: that excludes anti-aliased rims and the striped style's dark bands, whose
    pixels all have a bright neighbour). The estimate at a pixel is a small Gaussian average (σ = 0.8 k)
    of nearby sure-background pixels (it tames the grain style's noise but keeps a pattern's cells);
    where none is near, the value of the nearest one (so an object's inside sees the background just
    outside it). A frame without sure background falls back to its darkest pixels' median.
    """
    frames = np.asarray(frames)
    t_len, h, w, _ = frames.shape
    k = math.sqrt(h * w) / vocab.REFERENCE_CANVAS
    f = frames.astype(np.float32)
    bright = (f.max(axis=-1) >= DARK_LEVEL).astype(np.uint8)
    reach = np.ones((2 * max(1, int(round(2 * k))) + 1,) * 2, np.uint8)  # square: diagonal neighbours count
    sigma = 0.8 * k
    out = np.empty_like(f)
    tones = np.empty((t_len, 2, 3), np.float32)
    for t in range(t_len):
        sure = cv2.dilate(bright[t], reach) == 0
        if sure.sum() < 4:
            v = f[t].max(axis=-1).ravel()
            out[t] = np.median(f[t].reshape(-1, 3)[v <= np.percentile(v, 25)], axis=0)
            tones[t] = out[t, 0, 0]
            continue
        tones[t] = _two_tones(f[t][sure])
        wgt = cv2.GaussianBlur(sure.astype(np.float32), (0, 0), sigma)
        num = cv2.GaussianBlur(f[t] * sure[..., None], (0, 0), sigma)
        est = num / np.maximum(wgt, 1e-6)[..., None]
        far = wgt < 0.15
        if far.any():
            _, lab = cv2.distanceTransformWithLabels(
                (~sure).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
            )
            sy, sx = np.nonzero(sure)
            # labels number the zero (sure) pixels in row-major order, starting at 1
            idx = lab[far] - 1
            est[far] = f[t, sy[idx], sx[idx]]
        out[t] = est
    return out, tones


@dataclass
class PixelColors:
    """Per-pixel reading of a clip (all ``[T, H, W]``)."""

    label: np.ndarray  # int8: colour index into COLOR_NAMES, −1 background
    alpha: np.ndarray  # float32: coverage of the pixel's paint (full or stripe), 0 for background
    core: np.ndarray  # bool: a full paint with α ≥ 0.5
    stripe: np.ndarray  # bool: a half (stripe) paint with α ≥ 0.5, not core


def pixel_colors(frames: np.ndarray, background: np.ndarray | None = None) -> PixelColors:
    """Name every pixel's colour (see the module docstring for α and tan θ).

    ``frames`` uint8 [T, H, W, 3]; ``background`` float32 [T, H, W, 3] (default :func:`background_image`).
    """
    bg = background_image(frames) if background is None else background
    t, h, w, _ = frames.shape
    bgp = bg.reshape(t, h * w, 1, 3)
    e = frames.astype(np.float32).reshape(t, h * w, 3) - bgp[:, :, 0]  # [T, P, 3]
    d = _PAINTS[None, None] - bgp  # [T, P, 2K, 3]
    dd = np.maximum((d * d).sum(-1), 1.0)  # [T, P, 2K]
    proj = np.einsum("tpc,tpkc->tpk", e, d)  # [T, P, 2K]
    alpha = proj / dd
    ee = (e * e).sum(-1)[..., None]  # [T, P, 1]
    # |e − α d|² = |e|² − proj²/|d|²; tan² θ = that / (α² |d|²)
    perp2 = np.maximum(ee - proj * alpha, 0.0)
    tan2 = perp2 / np.maximum(alpha * alpha * dd, 1e-6)
    # A member must also stand out from the background by more than noise (the grain style's σ = 12 per
    # channel; a half paint on a light background can be that close to it).
    ok = (alpha >= CORE_ALPHA) & (tan2 <= MAX_TAN**2) & (ee >= MIN_CONTRAST**2)
    # The best-pointing paint wins, full or half (a yellow stripe is also half an orange); a full paint
    # wins ties (a half-covered rim pixel on a black background is exactly a full stripe pixel too).
    bias = np.concatenate([np.full(_K, -FULL_BIAS), np.zeros(_K)]).astype(np.float32)
    score = np.where(ok, np.sqrt(tan2) + bias, np.inf)
    best = score.argmin(-1)
    best_ok = np.isfinite(np.take_along_axis(score, best[..., None], -1)[..., 0])
    full_ok = best_ok & (best < _K)
    half_ok = best_ok & (best >= _K)
    label = np.where(best_ok, best % _K, -1)
    a = np.where(best_ok, np.take_along_axis(alpha, best[..., None], -1)[..., 0], 0.0)
    # Pixels on the border between a stripe and the full colour mix two paints of one colour: fit
    # p − B = a (C − B) + b (C/2 − B), a, b ≥ 0, where the two paints are not parallel (light backgrounds).
    rest = ~(full_ok | half_ok)
    if rest.any():
        d1, d2 = d[:, :, :_K], d[:, :, _K:]  # [T, P, K, 3]
        g11, g22 = dd[..., :_K], dd[..., _K:]
        g12 = (d1 * d2).sum(-1)
        det = g11 * g22 - g12 * g12
        well = det > 0.04 * g11 * g22  # sin² of the angle between the paints ≥ 0.04
        r1, r2 = proj[..., :_K], proj[..., _K:]
        sdet = np.where(well, det, 1.0)
        ca = (g22 * r1 - g12 * r2) / sdet
        cb = (g11 * r2 - g12 * r1) / sdet
        fit = ca[..., None] * d1 + cb[..., None] * d2  # [T, P, K, 3]
        res2 = ((e[:, :, None, :] - fit) ** 2).sum(-1)
        fit2 = np.maximum((fit * fit).sum(-1), 1e-6)
        good = well & (ca >= 0) & (cb >= 0) & (ca + cb >= CORE_ALPHA) & (res2 <= MAX_TAN**2 * fit2)
        good &= rest[..., None] & (ee >= MIN_CONTRAST**2)
        mscore = np.where(good, res2 / fit2, np.inf)
        mix_best = mscore.argmin(-1)
        mix_ok = np.isfinite(np.take_along_axis(mscore, mix_best[..., None], -1)[..., 0])
        cov = np.take_along_axis(ca + cb, mix_best[..., None], -1)[..., 0]
        label = np.where(mix_ok, mix_best, label)
        a = np.where(mix_ok, np.minimum(cov, 1.0), a)
        half_ok = half_ok | mix_ok
    label = label.astype(np.int8)
    a = a.astype(np.float32)
    shape = (t, h, w)
    return PixelColors(label.reshape(shape), a.reshape(shape), full_ok.reshape(shape), half_ok.reshape(shape))


def _paint_alpha(pixels: np.ndarray, bg: np.ndarray, paint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage α and tan θ of ``paint`` [3] for ``pixels`` float32 [P, 3] over their backgrounds ``bg``
    [P, 3]."""
    e = pixels - bg
    d = paint - bg
    dd = np.maximum((d * d).sum(-1), 1.0)
    proj = (e * d).sum(-1)
    alpha = proj / dd
    perp2 = np.maximum((e * e).sum(-1) - proj * alpha, 0.0)
    tan = np.sqrt(perp2 / np.maximum(alpha * alpha * dd, 1e-6))
    return alpha, tan


def _rim_alpha(
    pixels: np.ndarray, local_bg: np.ndarray, tones: np.ndarray, paint: np.ndarray, half_too: bool = False
) -> np.ndarray:
    """Coverage in [0, 0.5] of ``paint`` [3] in an object's rim ``pixels`` [P, 3] (pixels that are not
    members, so at most half covered). A rim pixel mixes the paint with the background *under it*, which
    on a pattern may be either tone: of the local estimate and the two tones ``[2, 3]``, the background
    that explains the pixel with the smallest residual ``|p − B − clip(α, 0, 1)(P − B)|`` is used; coverage
    below :data:`RIM_MIN_ALPHA` or pointing off the paint (tan θ > 0.8) counts as none. With ``half_too``
    (a striped clip) the paint may also be the dark stripe ``P / 2``, whichever fits better: an edge through
    a dark band is as covered as one through a bright band."""
    cands = np.concatenate([local_bg[:, None, :], np.broadcast_to(tones[None], (len(pixels), 2, 3))], axis=1)
    paints = [paint, 0.5 * paint] if half_too else [paint]
    cands = np.concatenate([cands] * len(paints), axis=1)  # [P, 3·n, 3]
    paint_rows = np.repeat(np.stack(paints), 3, axis=0)  # [3·n, 3]
    e = pixels[:, None, :] - cands
    d = paint_rows[None] - cands
    dd = np.maximum((d * d).sum(-1), 1.0)
    alpha = (e * d).sum(-1) / dd
    a_clip = np.clip(alpha, 0.0, 1.0)
    resid = ((e - a_clip[..., None] * d) ** 2).sum(-1)
    j = resid.argmin(1)
    rows = np.arange(len(pixels))
    a = alpha[rows, j]
    perp2 = np.maximum((e[rows, j] ** 2).sum(-1) - a * a * dd[rows, j], 0.0)
    tan = np.sqrt(perp2 / np.maximum(a * a * dd[rows, j], 1e-6))
    return np.where((tan <= 0.8) & (a >= RIM_MIN_ALPHA), np.minimum(a, 0.5), 0.0).astype(np.float32)


# ------------------------------------------------------------------------------------------ shapes

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


# ------------------------------------------------------------------------------------------ detection


@dataclass
class Detection:
    """One object seen in one frame. Coordinates in pixels, x → right, y ↓ down; pixel (i, j) covers
    ``[j, j + 1] × [i, i + 1]``."""

    shape: str
    color: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive) of the filled mask
    mask: np.ndarray  # bool [H, W]: filled object mask (holes of the outline style filled)
    centroid: tuple[float, float]  # coverage-weighted (x, y)
    area: float  # soft area, px² (Σ of the coverage weights)
    confidence: float  # in [0, 1]
    shape_probs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # posterior over vocab.SHAPES
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))  # shape_residuals, per vocab.SHAPES
    touches_edge: bool = False  # the mask reaches the canvas border (the shape may be cut)
    touches_other: bool = False  # the mask borders another object's pixels (may be occluded / merged)
    patch: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # soft coverage around
    # the object at the analysed resolution (1/f for pixelated clips), origin ``patch_origin`` (x, y) there
    patch_origin: tuple[int, int] = (0, 0)
    interior: float = 1.0  # mean paint coverage over the filled mask's interior pixels (holes count 0):
    # < 1 when the object is hollow (outline style); NaN without interior pixels


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` uint8 {0, 1} with every region not connected to the border filled in."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)


_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32)


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def stripe_fraction(pix: PixelColors, close_k: np.ndarray | None = None) -> float:
    """How striped a clip looks: (stripe pixels inside a closing of their colour's core pixels) /
    (core pixels), over every frame and colour. The striped style's dark bands sit between bright
    ones and are bridged by the closing (≈ 0.25–0.7 on renders); a flat object's half-covered rim only
    in its concave corners (< 0.07), an outline's inner rim a little more (< 0.18)."""
    t_len, h, w = pix.label.shape
    if close_k is None:
        k = math.sqrt(h * w) / vocab.REFERENCE_CANVAS
        close_k = _kernel(2 * int(round(2 * k)) + 1)
    inside = core_total = 0
    for t in range(t_len):
        for c in np.unique(pix.label[t][pix.core[t]]):
            is_c = pix.label[t] == c
            core_c = (is_c & pix.core[t]).astype(np.uint8)
            closed = cv2.morphologyEx(core_c, cv2.MORPH_CLOSE, close_k) > 0
            inside += int((is_c & pix.stripe[t] & closed).sum())
            core_total += int(core_c.sum())
    return inside / max(core_total, 1)


def block_factor(frames: np.ndarray) -> int:
    """The pixelated style's block size: 4 or 2 when every frame is made of uniform f × f blocks (within
    2 grey levels), else 1. A frame without structure (uniform) does not count as pixelated."""
    t, h, w, _ = frames.shape
    f16 = frames.astype(np.int16)
    for f in (4, 2):
        if h % f or w % f or h < 4 * f:
            continue
        blocks = f16.reshape(t, h // f, f, w // f, f, 3)
        spread = blocks.max(axis=(2, 4)) - blocks.min(axis=(2, 4))  # [T, h/f, w/f, 3]
        varied = (f16.max(axis=(1, 2)) - f16.min(axis=(1, 2))).max() > 8
        if varied and (spread.max(axis=-1) <= 2).mean() >= 0.99:
            return f
    return 1


def detect(frames: np.ndarray, return_pixels: bool = False):
    """Detect the objects of every frame.

    ``frames`` uint8 [T, H, W, 3] (any content). Returns ``list`` (per frame) of ``list[Detection]``;
    with ``return_pixels`` also the :class:`PixelColors` used (at the analysed resolution). A clip made of
    uniform blocks (the pixelated style, :func:`block_factor`) is analysed at block resolution — it *is*
    a flat render at that resolution — and the detections are scaled back to the frame's pixels.
    See the module docstring for the method.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {frames.shape}")
    frames = frames.astype(np.uint8, copy=False)
    f = block_factor(frames)
    if f == 1:
        dets, pix = _detect(frames)
    else:
        small, pix = _detect(frames[:, ::f, ::f])
        dets = [[_upscale(d, f) for d in frame] for frame in small]
    return (dets, pix) if return_pixels else dets


def _upscale(d: Detection, f: int) -> Detection:
    """A detection made at 1/f resolution, in full-resolution pixels (block (i, j) covers f × f pixels)."""
    x0, y0, x1, y1 = d.box
    return Detection(
        shape=d.shape, color=d.color, box=(x0 * f, y0 * f, x1 * f, y1 * f),
        mask=np.repeat(np.repeat(d.mask, f, axis=0), f, axis=1),
        centroid=(d.centroid[0] * f, d.centroid[1] * f), area=d.area * f * f, confidence=d.confidence,
        shape_probs=d.shape_probs, residuals=d.residuals, touches_edge=d.touches_edge,
        touches_other=d.touches_other, patch=d.patch, patch_origin=d.patch_origin, interior=d.interior,
    )


def _interior_coverage(
    filled: np.ndarray, member: np.ndarray, alpha: np.ndarray, kernel: np.ndarray, others: np.ndarray
) -> float:
    """Mean paint coverage over the pixels whose 4-neighbours are all in the filled mask: 1 for a solid
    object, less for a hollow one (filled holes count 0, the partly hollow centre of a thin outlined
    shape its coverage); pixels of other objects in front of it (a hole that is not one) do not count;
    NaN when the object has no interior pixel."""
    grown = cv2.dilate(others.astype(np.uint8), kernel).astype(bool)
    inner = cv2.erode(filled.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    inner &= ~grown
    if not inner.any():
        return float("nan")
    cov = np.where(member[inner], np.clip(alpha[inner], 0.0, 1.0), 0.0)
    return float(cov.mean())


def _drop_slivers(
    cands: list[tuple[int, np.ndarray]], ring_k: np.ndarray, frame: np.ndarray, bg: np.ndarray
) -> list:
    """Remove components that are edges of other objects, not objects. Only components without an interior
    pixel (their erosion by a 3 × 3 cross is empty) are candidates; among them:

    - *seams* where two objects of different colours meet (a red and a yellow edge pixel mix to orange, a
      red and a blue one to purple): at least a quarter of the pixels border a bigger component of one
      colour and a quarter a bigger one of another;
    - *rims* mis-named because the background under them was misjudged (pixelated blocks, pattern tones):
      bordering one bigger component of another colour along a quarter of the pixels, and pointing that
      colour's way from the background (median tan θ ≤ 0.6 for its paint) — a tiny object of its own in
      front of another object points its own way and is kept.
    """
    out = []
    for c, comp in cands:
        comp8 = comp.astype(np.uint8)
        if cv2.erode(comp8, ring_k, borderType=cv2.BORDER_CONSTANT, borderValue=0).any():
            out.append((c, comp))
            continue
        grown = cv2.dilate(comp8, ring_k).astype(bool)
        neighbours = set()
        for c2, comp2 in cands:
            # only a bigger neighbour makes this an edge of it (a seam's own seams are smaller still)
            if c2 == c or not (grown & comp2).any() or comp2.sum() < comp.sum():
                continue
            touching = cv2.dilate(comp2.astype(np.uint8), ring_k).astype(bool) & comp
            if touching.sum() >= comp.sum() / 4:
                neighbours.add(c2)
        if len(neighbours) >= 2:
            continue
        if len(neighbours) == 1:
            ys, xs = np.nonzero(comp)
            (c2,) = neighbours
            alpha, tan = _paint_alpha(frame[ys, xs], bg[ys, xs], _FULL[c2])
            if float(np.median(np.where(alpha > 0, tan, np.inf))) <= 0.6:
                continue
        out.append((c, comp))
    return out


def _detect(frames: np.ndarray) -> tuple[list[list[Detection]], PixelColors]:
    """:func:`detect` at the analysed resolution (steps 1–4 of the module docstring)."""
    t_len, h, w, _ = frames.shape
    bg, tones = background_model(frames)
    pix = pixel_colors(frames, bg)
    k = math.sqrt(h * w) / vocab.REFERENCE_CANVAS  # canvas scale
    min_core = MIN_CORE_PX * k * k
    close_k = _kernel(2 * int(round(2 * k)) + 1)  # bridges the striped style's 2-px (at 32) dark bands
    striped = stripe_fraction(pix, close_k) >= STRIPED_FRACTION
    striped = striped or _sandwiched_stripes(pix) >= STRIPED_SANDWICH
    band = max(1, int(round(2 * k)))  # the striped style's dark band: 2 px at 32
    grow_k = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    ring_k = _kernel(3)
    rim_k = _kernel(5)  # an anti-aliased rim can be two pixels wide where an edge runs diagonally
    fr = frames.astype(np.float32)
    out: list[list[Detection]] = []
    for t in range(t_len):
        label, core, stripe = pix.label[t], pix.core[t], pix.stripe[t]
        present = np.unique(label[label >= 0])
        cands = []  # (colour index, member mask bool [H, W])
        for c in present:
            is_c = label == c
            core_c = (is_c & core).astype(np.uint8)
            if core_c.sum() < min_core:
                continue
            member = core_c.copy()
            stripe_c = is_c & stripe
            if striped and stripe_c.any():
                # Stripe pixels next to the colour's core (the dark bands of the striped style, at most a
                # band's width away), minus isolated ones (noise on a light background can look like a
                # dark stripe of white): a band pixel has at least 3 member neighbours.
                near = stripe_c & (cv2.dilate(core_c, grow_k) > 0)
                member |= near.astype(np.uint8)
                support = cv2.filter2D(member, cv2.CV_16S, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT)
                isolated = near & (support < 3) & ~core_c.astype(bool)
                member[isolated] = 0
            n, lab, stats, _ = cv2.connectedComponentsWithStats(member, connectivity=8)
            for i in range(1, n):
                comp = lab == i
                if (comp & core.astype(bool)).sum() < min_core:
                    continue
                cands.append((int(c), comp))
        any_obj = np.zeros((h, w), bool)
        for _, comp in cands:
            any_obj |= comp
        cands = _drop_slivers(cands, ring_k, fr[t], bg[t])
        dets = []
        for c, comp in cands:
            filled = _fill_holes(comp.astype(np.uint8)).astype(bool)
            # the rim: neighbours that partly show this colour (anti-aliasing), for a soft mask
            ring = cv2.dilate(filled.astype(np.uint8), rim_k).astype(bool) & ~filled
            others = any_obj & ~comp
            # soft coverage: a member pixel's α (anti-aliased edge pixels count partly, which matters for
            # shapes a few pixels wide), 1 in filled holes
            weights = filled.astype(np.float32)
            weights[comp] = np.clip(pix.alpha[t][comp], 0.5, 1.0)
            ry, rx = np.nonzero(ring & ~others)
            if len(ry):
                rim = _rim_alpha(fr[t, ry, rx], bg[t, ry, rx], tones[t], _FULL[c], half_too=striped)
                weights[ry, rx] = rim
            ys, xs = np.nonzero(filled)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            py0, py1, px0, px1 = max(0, y0 - 2), min(h, y1 + 2), max(0, x0 - 2), min(w, x1 + 2)
            sub = weights[py0:py1, px0:px1]
            area = float(sub.sum())
            gy, gx = np.mgrid[py0:py1, px0:px1]
            cx = float((sub * (gx + 0.5)).sum() / area)
            cy = float((sub * (gy + 0.5)).sum() / area)
            touches_edge = bool(y0 == 0 or x0 == 0 or y1 == h or x1 == w)
            touches_other = bool((cv2.dilate(filled.astype(np.uint8), ring_k).astype(bool) & others).any())
            res = shape_residuals(sub, cx - px0, cy - py0)
            probs = shape_posterior(res)
            s = int(np.argmax(probs))
            # the posterior, times how well the best shape fits at all (a blob of two merged objects fits
            # none: residual ≈ 0.26 vs ≤ 0.07 for 95 % of clean objects), halved at the canvas edge or
            # against another object (cut or partly hidden)
            fit = math.exp(-max(0.0, float(res.min()) - FIT_RESIDUAL) / FIT_SCALE)
            conf = float(probs[s]) * fit * (0.5 if touches_edge else 1.0) * (0.5 if touches_other else 1.0)
            dets.append(
                Detection(
                    shape=vocab.SHAPES[s], color=COLOR_NAMES[c], box=(int(x0), int(y0), int(x1), int(y1)),
                    mask=filled, centroid=(cx, cy), area=area, confidence=conf, shape_probs=probs,
                    residuals=res, touches_edge=touches_edge, touches_other=touches_other,
                    patch=sub.copy(), patch_origin=(int(px0), int(py0)),
                    interior=_interior_coverage(filled, comp, pix.alpha[t], ring_k, others),
                )
            )
        out.append(dets)
    return out, pix


# ------------------------------------------------------------------------------------------ classifier

def shape_posterior(residuals: np.ndarray) -> np.ndarray:
    """Posterior over vocab.SHAPES from :func:`shape_residuals`: ``softmax(−residual / SHAPE_TEMPERATURE)``
    (float64 [5])."""
    z = -(residuals - residuals.min()) / SHAPE_TEMPERATURE
    p = np.exp(z)
    return p / p.sum()


# ------------------------------------------------------------------------------------------ tracking


@dataclass
class Track:
    """One object followed through the clip: its detections at increasing frames."""

    id: int
    frames: np.ndarray  # int [K]
    centroids: np.ndarray  # float [K, 2] (x, y)
    shapes: list[str]
    colors: list[str]
    areas: np.ndarray  # float [K]
    detections: list[Detection] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def shape(self) -> str:
        """The track's shape: the largest confidence-weighted sum of the detections' shape posteriors."""
        votes = np.zeros(len(vocab.SHAPES))
        for d in self.detections:
            votes += d.shape_probs * max(d.confidence, 1e-3)
        return vocab.SHAPES[int(votes.argmax())]

    @property
    def shape_agreement(self) -> np.ndarray:
        """float [5]: confidence-weighted share of each shape in the track's detections."""
        votes = np.zeros(len(vocab.SHAPES))
        for d in self.detections:
            votes += d.shape_probs * max(d.confidence, 1e-3)
        return votes / max(votes.sum(), 1e-9)

    @property
    def color(self) -> str:
        """The track's most frequent colour (area-weighted)."""
        votes: dict[str, float] = {}
        for c, a in zip(self.colors, self.areas):
            votes[c] = votes.get(c, 0.0) + float(a)
        return max(votes, key=votes.get)

    def position(self, t: int | np.ndarray) -> np.ndarray:
        """Centroid at frame(s) ``t`` ([2] or [len(t), 2]), linearly interpolated between detections and
        held constant outside the track's span."""
        tt = np.asarray(t, dtype=np.float64)
        x = np.interp(tt, self.frames, self.centroids[:, 0])
        y = np.interp(tt, self.frames, self.centroids[:, 1])
        return np.stack([x, y], axis=-1)


def _velocity(frames: list[int], cents: list[np.ndarray]) -> np.ndarray:
    """Mean velocity (px / frame) over a track's last three detections (zero for a single one)."""
    if len(frames) < 2:
        return np.zeros(2)
    j = max(0, len(frames) - 3)
    dt = frames[-1] - frames[j]
    return (cents[-1] - cents[j]) / max(dt, 1)


def track(detections: Sequence[Sequence[Detection]], canvas: int | None = None) -> list[Track]:
    """Link per-frame detections into tracks (Hungarian assignment frame to frame).

    ``detections``: per frame, that frame's detections (as :func:`detect` returns). ``canvas``: the frame
    side in px (default: from the first mask), which scales distances (k = canvas / 32).

    Per frame, with ĉ_i a track's constant-velocity prediction (mean velocity over its last three
    detections) and c_i its last centroid, the cost of continuing track i with detection j is
    ``D + 1·[colour differs] + 1.5·conf·[shape differs from the track's vote] + 2·|log(area_j / area_i)|``
    with ``D = min(|ĉ_i − c_j|, |c_i − c_j| + 0.5 k) / k``, gated by ``D ≤ GATE + GATE_PER_GAP·(gap − 1) +
    r_eq / 4`` (objects move at most 1.5 + 0.75 (pan) px per frame at 32 px and a bounce or collision
    changes a velocity by at most 3; r_eq the equivalent radius — a partly hidden object's centroid
    shifts). Each frame, in order (:func:`_merged_blobs` first sets aside blobs of two tracks' objects):

    1. tracks continue in their own colour (Hungarian), refusing an area change beyond 1.6×;
    2. unassigned detections that are *fragments* of a track of their colour (:func:`_fragment_host`: an
       object cut in two by one passing in front) are set aside; the remaining tracks may continue in
       another colour (collision events; Hungarian), only between areas within 2.5× (a sliver of another
       colour is not the same object);
    3. fragments merge into their track (area-weighted centroid); other unassigned detections start tracks.

    An unassigned track whose predicted centre lies under some detection's mask is *hidden* (behind or
    merged with another object) and waits without penalty, up to :data:`MAX_HIDDEN` frames; a track missing
    otherwise for more than :data:`MAX_GAP` frames ends. Finally :func:`_stitch` joins a track that ended
    to a later one of its colour that starts where it would have been.
    """
    if canvas is None:
        canvas = next((d.mask.shape[0] for frame in detections for d in frame), vocab.REFERENCE_CANVAS)
    k = canvas / vocab.REFERENCE_CANVAS
    open_tracks: list[dict] = []
    closed: list[dict] = []
    for t, frame in enumerate(detections):
        frame = list(frame)
        still = []
        for tr in open_tracks:
            ok = tr["missing"] <= MAX_GAP and t - tr["frames"][-1] <= MAX_HIDDEN + 1
            (still if ok else closed).append(tr)
        open_tracks = still
        preds = [_predict(tr, t) for tr in open_tracks]
        merged = _merged_blobs(open_tracks, preds, frame)
        n_open = len(open_tracks)
        assigned: dict[int, int] = {}
        # 1. continue tracks in their own colour; 2. let a track change colour, but not to a detection that
        # is a piece of a track of its own colour; 3. merge those pieces into their tracks
        hosts: dict[int, int] = {}
        for recolour in (False, True):
            free_t = [i for i in range(n_open) if i not in assigned]
            free_d = [j for j in range(len(frame)) if j not in assigned.values() and j not in merged]
            if recolour:
                for j in free_d:
                    host = _fragment_host(open_tracks, preds, t, frame[j], k)
                    if host is not None:
                        hosts[j] = host
                free_d = [j for j in free_d if j not in hosts]
            if free_t and free_d:
                cost = np.full((len(free_t), len(free_d)), np.inf)
                for a, i in enumerate(free_t):
                    for b, j in enumerate(free_d):
                        if recolour or frame[j].color == open_tracks[i]["dets"][-1].color:
                            cost[a, b] = _link_cost(
                                open_tracks[i], preds[i], t, frame[j], k, strict=not recolour
                            )
                big = 1e6
                rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
                for a, b in zip(rows, cols):
                    if cost[a, b] < big:
                        assigned[free_t[a]] = free_d[b]
                        _extend(open_tracks[free_t[a]], t, frame[free_d[b]])
        for j, host in hosts.items():
            tr = open_tracks[host]
            if tr["frames"][-1] == t and tr["dets"][-1].color != frame[j].color:
                continue  # its host changed colour this frame: the piece is something else (a new track)
            _absorb(tr, t, frame[j])
            merged.add(j)  # consumed
        for j, d in enumerate(frame):
            if j in assigned.values() or j in merged:
                continue
            tr = {"frames": [], "cents": [], "dets": [], "shape_vote": d.shape, "missing": 0}
            _extend(tr, t, d)
            open_tracks.append(tr)
        for i, tr in enumerate(open_tracks[: len(preds)]):
            if i in assigned or tr["frames"][-1] == t:
                continue
            if not any(_inside(preds[i], d.mask, margin=0) for d in frame):
                tr["missing"] += 1
    closed = _stitch(closed + open_tracks, k)
    closed.sort(key=lambda tr: (tr["frames"][0], tr["cents"][0][0], tr["cents"][0][1]))
    tracks = []
    for n, tr in enumerate(closed):
        dets = tr["dets"]
        tracks.append(
            Track(
                id=n, frames=np.asarray(tr["frames"]), centroids=np.asarray(tr["cents"]),
                shapes=[d.shape for d in dets], colors=[d.color for d in dets],
                areas=np.asarray([d.area for d in dets]), detections=dets,
            )
        )
    return tracks


def _stitch(tracks: list[dict], k: float) -> list[dict]:
    """Join a track that ends to one of its colour that starts later where the first, continued at its
    last velocity, would be (gate as in :func:`track`, growing with the gap, gap ≤ MAX_HIDDEN + 1); the
    closest join first, until none is left. This mends tracks lost while hidden for long."""
    tracks = list(tracks)
    while True:
        best = None
        for a, ta in enumerate(tracks):
            for b, tb in enumerate(tracks):
                gap = tb["frames"][0] - ta["frames"][-1]
                if a == b or gap < 1 or gap > MAX_HIDDEN + 1:
                    continue
                first = tb["dets"][0]
                if first.color != ta["dets"][-1].color:
                    continue
                dist = _distance(ta, _predict(ta, tb["frames"][0]), first, k)
                if dist <= _gate(ta, tb["frames"][0], first, k) and (best is None or dist < best[0]):
                    best = (dist, a, b)
        if best is None:
            return tracks
        _, a, b = best
        ta, tb = tracks[a], tracks[b]
        for key in ("frames", "cents", "dets"):
            ta[key] = ta[key] + tb[key]
        del tracks[b]


def _inside(p: np.ndarray, mask: np.ndarray, margin: int = 1) -> bool:
    """Whether point ``p`` (x, y) lies on ``mask`` or within ``margin`` pixels of it."""
    h, w = mask.shape
    x, y = int(math.floor(p[0])), int(math.floor(p[1]))
    y0, y1, x0, x1 = max(0, y - margin), min(h, y + margin + 1), max(0, x - margin), min(w, x + margin + 1)
    return y0 < y1 and x0 < x1 and bool(mask[y0:y1, x0:x1].any())


def _merged_blobs(tracks: list[dict], preds: list[np.ndarray], frame: list[Detection]) -> set[int]:
    """Detections that cover the predicted centres of two or more tracks of their colour and are bigger
    (1.3×) than any of them: objects of one colour overlapping read as one blob. Such a blob is given to
    none of them (they wait, hidden) and starts no track of its own."""
    out = set()
    for j, d in enumerate(frame):
        covered = [
            tr for tr, p in zip(tracks, preds) if tr["dets"][-1].color == d.color and _inside(p, d.mask)
        ]
        # pieces of one object coming together again are not two objects: the blob must be bigger than
        # the biggest of them
        biggest = max((max(a.area for a in tr["dets"][-3:]) for tr in covered), default=0.0)
        if len(covered) >= 2 and d.area > 1.3 * biggest:
            out.add(j)
    return out


def _predict(tr: dict, t: int) -> np.ndarray:
    return tr["cents"][-1] + _velocity(tr["frames"], tr["cents"]) * (t - tr["frames"][-1])


def _gate(tr: dict, t: int, d: Detection, k: float) -> float:
    gap = max(1, t - tr["frames"][-1])
    radius = math.sqrt(max(d.area, tr["dets"][-1].area) / math.pi) / k
    return GATE + GATE_PER_GAP * (gap - 1) + 0.25 * radius


def _distance(tr: dict, pred: np.ndarray, d: Detection, k: float) -> float:
    c = np.asarray(d.centroid)
    return min(float(np.hypot(*(pred - c))), float(np.hypot(*(tr["cents"][-1] - c))) + 0.5 * k) / k


def _link_cost(tr: dict, pred: np.ndarray, t: int, d: Detection, k: float, strict: bool = False) -> float:
    """Cost of continuing ``tr`` with ``d`` (:func:`track`); ``strict`` (the first, same-colour pass) also
    refuses an area change beyond 1.6× — likely another object of that colour that came near, while the
    track's own object just changed colour (the second pass can still take it) — unless the track's last
    detection was partly hidden (touching another object or a poor shape) and the new one is a larger,
    well-formed shape of the track's own."""
    dist = _distance(tr, pred, d, k)
    if dist > _gate(tr, t, d, k):
        return np.inf
    last = tr["dets"][-1]
    log_ratio = abs(math.log(max(d.area, 1e-3) / max(last.area, 1e-3)))
    # an object coming out from behind another grows back: not refused
    reappearing = (d.area > last.area and (last.touches_other or last.confidence < 0.5)
                   and d.confidence >= 0.5 and d.shape == tr["shape_vote"])
    if strict and log_ratio > math.log(1.6) and not reappearing:
        return np.inf
    recolour = d.color != last.color
    if recolour and log_ratio > math.log(2.5):  # a recolouring collision can half-hide the object
        return np.inf
    conf = min(d.confidence, last.confidence)
    return dist + 1.0 * recolour + 1.5 * conf * (d.shape != tr["shape_vote"]) + 2.0 * log_ratio


def _fragment_host(tracks: list[dict], preds: list[np.ndarray], t: int, d: Detection, k: float) -> int | None:
    """The track an unmatched detection is a fragment of, or None (see :func:`track`): the detection is
    not a confident shape on its own (confidence < 0.5 or bordering another object), and a track of its
    colour has a typical area (the largest of its last three detections) at least 1/0.6 of the
    fragment's, and whose detection at this frame lies within twice its typical equivalent radius + k of
    the fragment (pieces of one object cut by another), or — if it has none yet — whose prediction does,
    within the gate plus that radius."""
    if d.confidence >= 0.5 and not d.touches_other:
        return None  # a well-formed shape on its own is an object (one splitting off a merged blob), no piece
    best, best_dist = None, np.inf
    for i, tr in enumerate(tracks[: len(preds)]):
        typical = max(a.area for a in tr["dets"][-3:])
        if tr["dets"][-1].color != d.color or d.area > 0.6 * typical:
            continue
        r_typ = math.sqrt(typical / math.pi) / k
        if tr["frames"][-1] == t:
            dist = float(np.hypot(*(np.asarray(tr["dets"][-1].centroid) - np.asarray(d.centroid)))) / k
            ok = dist <= 2 * r_typ + 1
        else:
            dist = _distance(tr, preds[i], d, k)
            ok = dist <= _gate(tr, t, d, k) + r_typ
        if ok and dist < best_dist:
            best, best_dist = i, dist
    return best


def _absorb(tr: dict, t: int, d: Detection) -> None:
    """Merge fragment ``d`` into the track's detection at frame t (or make it that detection)."""
    if tr["frames"] and tr["frames"][-1] == t:
        main = tr["dets"][-1]
        area = main.area + d.area
        cx = (main.centroid[0] * main.area + d.centroid[0] * d.area) / area
        cy = (main.centroid[1] * main.area + d.centroid[1] * d.area) / area
        merged = Detection(
            shape=main.shape, color=main.color,
            box=(min(main.box[0], d.box[0]), min(main.box[1], d.box[1]), max(main.box[2], d.box[2]),
                 max(main.box[3], d.box[3])),
            mask=main.mask | d.mask, centroid=(cx, cy), area=area, confidence=min(main.confidence, 0.5),
            shape_probs=main.shape_probs, residuals=main.residuals, touches_edge=main.touches_edge,
            touches_other=True, patch=main.patch, patch_origin=main.patch_origin, interior=main.interior,
        )  # fmt: skip
        tr["dets"][-1] = merged
        tr["cents"][-1] = np.array([cx, cy])
    else:
        _extend(tr, t, d)


def _extend(tr: dict, t: int, d: Detection) -> None:
    tr["frames"].append(t)
    tr["cents"].append(np.asarray(d.centroid, dtype=np.float64))
    tr["dets"].append(d)
    tr["missing"] = 0
    votes = np.zeros(len(vocab.SHAPES))
    for dd in tr["dets"]:
        votes += dd.shape_probs * max(dd.confidence, 1e-3)
    tr["shape_vote"] = vocab.SHAPES[int(votes.argmax())]


# ------------------------------------------------------------------------------------------ style


def _sandwiched_stripes(pix: PixelColors) -> float:
    """(stripe pixels with a core pixel of their colour within 2 px on *both* sides along one of the four
    axes ─ │ ╲ ╱) / (core pixels). The striped style's dark bands lie between bright ones (≈ 0.1–0.55 on
    renders); a flat object's half-covered rim pixels have the background on one side (≤ 0.05)."""
    t_len, h, w = pix.label.shape
    core_lab = np.where(pix.core, pix.label.astype(np.int16), -2)
    padded = np.pad(core_lab, ((0, 0), (2, 2), (2, 2)), constant_values=-3)
    lab = pix.label.astype(np.int16)
    found = np.zeros((t_len, h, w), bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        before = np.zeros_like(found)
        after = np.zeros_like(found)
        for a in (1, 2):
            before |= padded[:, 2 - dy * a : 2 - dy * a + h, 2 - dx * a : 2 - dx * a + w] == lab
            after |= padded[:, 2 + dy * a : 2 + dy * a + h, 2 + dx * a : 2 + dx * a + w] == lab
        found |= before & after
    # ... and not on the object's edge: all 4-neighbours painted (a flat cross's concave corner pixel is
    # sandwiched diagonally but borders the background)
    painted = np.pad(pix.label >= 0, ((0, 0), (1, 1), (1, 1)))
    inside = painted[:, :-2, 1:-1] & painted[:, 2:, 1:-1] & painted[:, 1:-1, :-2] & painted[:, 1:-1, 2:]
    return float((found & inside & pix.stripe).sum() / max(pix.core.sum(), 1))


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


# ------------------------------------------------------------------------------------------ calibration


def calibration_report(
    seeds: Sequence[int] = range(40), sizes: Sequence[int] = (32, 64), split: str = "train"
) -> dict:
    """Recompute what this module's calibrated constants rest on, from renders of ``split`` scenes (each
    seed in every style, at every size). Returns:

    - ``shape_accuracy[style][size]``: shape accuracy on *clean* objects (visible, no other object within
      1.25 (r_a + r_b) + 1 px, fully inside by 1.25 r) — the claim in the module docstring;
    - ``residual_clean`` / ``residual_merged``: percentiles (5, 50, 95, 99) of the best shape residual of
      clean objects and of blobs covering two objects of one colour — FIT_RESIDUAL sits at the clean
      95th percentile, FIT_SCALE below the merged median;
    - ``temperature_loglik``: the mean log posterior of the true shape over clean objects for a grid of
      temperatures. Clean objects are all classified right, so it keeps rising as the temperature falls;
      SHAPE_TEMPERATURE = 0.02 keeps it at ≈ −0.03 (a mean posterior ≈ 0.97 for the true shape) while
      look-alikes a few pixels wide (residuals differing by less than ≈ 0.02) keep a split posterior
      and a low confidence;
    - ``style_statistics[style]``: (min, max) of each :func:`style_statistics` value — the thresholds of
      :func:`classify_style` sit between the ranges.

    The constants in this file were set from ``calibration_report(range(40))`` (and spot checks on other
    seeds); it takes about a minute.
    """
    from dataclasses import replace

    from anyframe.world.render import render
    from anyframe.world.sampling import scene_for_seed

    shape_ok: dict = {}
    clean_res, merged_res, residuals, truths = [], [], [], []
    stats: dict[str, list[dict]] = {s: [] for s in vocab.STYLES}
    for size in sizes:
        for style in vocab.STYLES:
            hits = []
            for seed in seeds:
                scene = replace(scene_for_seed(seed, split, size=size), style=style)
                rendering = render(scene)
                traj = rendering.trajectory
                dets, pix = detect(rendering.frames, return_pixels=True)
                if size == sizes[0]:
                    stats[style].append(style_statistics(rendering.frames, dets, pix))
                reach = 1.25 * traj.radius
                inside = (traj.x - reach >= 0) & (traj.x + reach <= size) & (traj.y - reach >= 0)
                inside &= traj.y + reach <= size
                for t in range(scene.frames):
                    for d in dets[t]:
                        masks_t = rendering.masks[:, t]
                        over = [i for i in range(len(scene.objects)) if (masks_t[i][d.mask] > 0.5).sum() >= 3]
                        if len(over) >= 2 and all(traj.color[i][t] == d.color for i in over):
                            merged_res.append(float(d.residuals.min()))
                    for i, obj in enumerate(scene.objects):
                        apart = all(
                            not traj.visible[j, t]
                            or math.hypot(traj.x[i, t] - traj.x[j, t], traj.y[i, t] - traj.y[j, t])
                            > reach[i, t] + reach[j, t] + 1
                            for j in range(len(scene.objects)) if j != i
                        )  # fmt: skip
                        if not (traj.visible[i, t] and inside[i, t] and apart):
                            continue
                        x, y, r = traj.x[i, t], traj.y[i, t], traj.radius[i, t]
                        near = [d for d in dets[t] if math.dist(d.centroid, (x, y)) < 0.7 * r]
                        if not near:
                            hits.append(False)
                            continue
                        d = near[0]
                        hits.append(d.shape == obj.shape)
                        clean_res.append(float(d.residuals.min()))
                        residuals.append(d.residuals)
                        truths.append(vocab.SHAPES.index(obj.shape))
            shape_ok.setdefault(style, {})[size] = float(np.mean(hits)) if hits else float("nan")
    res = np.array(residuals)
    loglik = {}
    for temp in (0.005, 0.01, 0.02, 0.03, 0.05, 0.08):
        z = -(res - res.min(axis=1, keepdims=True)) / temp
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loglik[temp] = round(float(logp[np.arange(len(truths)), truths].mean()), 4)
    return {
        "shape_accuracy": shape_ok,
        "residual_clean": np.percentile(clean_res, [5, 50, 95, 99]).round(3).tolist(),
        "residual_merged": np.percentile(merged_res, [5, 50, 95, 99]).round(3).tolist() if merged_res else [],
        "temperature_loglik": loglik,
        "style_statistics": {
            style: {key: (min(v[key] for v in vals), max(v[key] for v in vals)) for key in vals[0]}
            for style, vals in stats.items() if vals
        },
    }
