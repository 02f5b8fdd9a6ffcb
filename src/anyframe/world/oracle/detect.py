"""Oracle step 3 (:mod:`anyframe.world.oracle`): the objects of every frame — how the clip is read
(pixelated blocks, striped bands), colour masks into components, slivers dropped, and each object's soft
coverage, centroid, shape and confidence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from anyframe.world import vocab
from anyframe.world.oracle.colors import (
    _FULL,
    COLOR_NAMES,
    PixelColors,
    _paint_alpha,
    _rim_alpha,
    background_model,
    pixel_colors,
)
from anyframe.world.oracle.shapes import FIT_RESIDUAL, FIT_SCALE, shape_posterior, shape_residuals

MIN_CORE_PX = 3.0  # core pixels of an object at 32 px (× k²): a small shrinking diamond keeps ≈ 5
# a clip whose stripe_fraction or _sandwiched_stripes reaches these is read as striped: its dark stripe pixels
# join their objects (flat clips stay below 0.07 / 0.02; an outlined clip taken for striped loses little)
STRIPED_FRACTION, STRIPED_SANDWICH = 0.12, 0.09


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
        close_k = _kernel(2 * round(2 * k) + 1)
    inside = core_total = 0
    for t in range(t_len):
        for c in np.unique(pix.label[t][pix.core[t]]):
            is_c = pix.label[t] == c
            core_c = (is_c & pix.core[t]).astype(np.uint8)
            closed = cv2.morphologyEx(core_c, cv2.MORPH_CLOSE, close_k) > 0
            inside += int((is_c & pix.stripe[t] & closed).sum())
            core_total += int(core_c.sum())
    return inside / max(core_total, 1)


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
    See the package docstring for the method.
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
    """:func:`detect` at the analysed resolution (steps 1–4 of the package docstring)."""
    t_len, h, w, _ = frames.shape
    bg, tones = background_model(frames)
    pix = pixel_colors(frames, bg)
    k = math.sqrt(h * w) / vocab.REFERENCE_CANVAS  # canvas scale
    min_core = MIN_CORE_PX * k * k
    close_k = _kernel(2 * round(2 * k) + 1)  # bridges the striped style's 2-px (at 32) dark bands
    striped = stripe_fraction(pix, close_k) >= STRIPED_FRACTION
    striped = striped or _sandwiched_stripes(pix) >= STRIPED_SANDWICH
    band = max(1, round(2 * k))  # the striped style's dark band: 2 px at 32
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
            n, lab, _stats, _ = cv2.connectedComponentsWithStats(member, connectivity=8)
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
