"""Oracle step 1–2 (:mod:`anyframe.world.oracle`): each pixel's background and the colour painted over it —
the background model, the paints of the vocabulary's colours, and per-pixel colour and coverage."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from anyframe.world import vocab

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
    reach = np.ones((2 * max(1, round(2 * k)) + 1,) * 2, np.uint8)  # square: diagonal neighbours count
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
    """Name every pixel's colour (see the package docstring for α and tan θ).

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
