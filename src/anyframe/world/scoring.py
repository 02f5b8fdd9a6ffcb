"""The shapes world's oracle, part 2: score a clip against the scene it should show.

    scores = score_clip(frames, scene)                                   # every applicable key
    scores = score_clip(frames, scene, keys=["presence", "event"], keyframes={0: image})

The truth is the scene program's simulation and render (:func:`truth_of`: frames, and per-object
visible-coverage masks). The clip is read by :mod:`anyframe.world.oracle` (detections → tracks) and is
compared pixel by pixel with the truth only where a key says so (keyframe fidelity, flicker). The scene
may come from a program or from a parsed prompt turned into one; a prompt-only (t2v) clip need not put
objects where the program does, so every content key matches objects by what they look like and how
they move, not where they are (spatial_relation and keyframe fidelity are the position-bound keys).

Conventions
-----------
* ``k = H / 32``: distances and speeds of the vocabulary are "px at 32 px" and scale with the canvas.
* *Clean* frames of a true object (:attr:`Truth.clean`): it is visible, ≥ 90 % of its analytic area
  (``AREA_PER_R2[shape] · r²``) shows in its truth mask (neither occluded nor cut by the canvas edge), that
  area is readable (≥ MIN_READABLE_PX pixels at the analysed resolution: blocks for the pixelated style),
  and no other object *of the same colour* touches it (two such objects read as one blob). *Isolated*
  frames: clean, and no other object at all touches it (its centroid is then exact). Where a key needs to
  see an object it uses clean frames only: scoring is tolerant exactly where the truth itself is hidden,
  and an object the truth shows clean in fewer than two frames (no track can form) is not scored (nor
  matched).
* Tracks with ≥ MIN_MATCH_TRACK (2) detections can be matched; *substantial* tracks (≥ MIN_TRACK = 3) count
  as objects.
* *Matching* (:func:`match_objects`): true objects ↔ tracks one-to-one (Hungarian) on ``2·(1 − colour
  agreement) + 1·(1 − shape agreement) + 0.5·position term + 0.5·motion term + 1·(1 − coverage)``, no
  match above MAX_MATCH_COST. Colour agreement: share of the track's detections (where the object is
  visible) in the object's true colour *at that frame*; shape agreement: the track's confidence-weighted
  vote share of the true shape; position / motion terms (0..1): mean distance to the true centre /
  (canvas / 2), mean error of per-frame displacement / 2k; coverage: share of the object's clean frames
  the track is detected in. Appearance dominates; position and motion break ties between look-alikes.
* *Appearance chains* (:func:`object_chains`): a matched object's matched-track detections, completed at
  other frames by confident, similar-sized, unclaimed detections of its true colour nearest to its last
  position — ungated, so they follow an object through shuffled or jittered frames and split tracks.

Keys (in [0, 1], higher is better, unless stated; ``None`` when not applicable)
-------------------------------------------------------------------------------
``presence``
    mean over objects with a clean frame of ``1[matched ∧ colour agreement ≥ 0.5 ∧ the track's shape vote
    is the true shape ∧ coverage ≥ 0.5]`` — shape *and* colour must both be right.
``color_binding`` (≥ 2 objects)
    a second matching, shape first (``1·(1 − shape agreement) + 0.5·(1 − colour agreement) +
    0.25·position``): the track that carries an object's shape must carry its colour — mean over objects of
    ``1[that track's shape vote is the object's shape, coverage ≥ 0.5, colour agreement ≥ 0.5]``.
    Swapping two objects' colours scores 0 for both.
``count``
    ``K`` substantial tracks, ``N`` true objects, ``N_eff`` objects with ≥ min(3, visible frames) clean
    frames (the ones a reader can count): 1 if ``N_eff ≤ K ≤ N``, ``K / N_eff`` when fewer (missing objects),
    ``N / K`` when more (extra objects).
``motion_direction``
    per matched object, over windows ``[t, t + w]`` (``w = max(2, T // 4)``) where it is clean at both ends
    in the truth, its true screen velocity is constant inside (no bounce, collision or stop) and its track
    is detected within a frame of both ends: true displacement ``D`` vs detected ``D̂`` (screen space: a
    camera pan is in the truth already). A window passes iff ``|D| ≤ 0.3 k w`` (still) and
    ``|D̂| ≤ 0.3 k w + 1.5 k``, or (moving) ``angle(D̂, D) ≤ 22.5°`` (half the angle between neighbouring
    directions) and ``|D̂| ≥ 0.4 |D|``. Key: mean over objects of their passing fraction (an unmatched
    object with windows: 0). Objects are found by their looks, so moving the wrong object fails: the
    right one stands still (or moves the other way), the wrong one moves.
``spatial_relation`` (≥ 2 objects)
    for every pair of matched objects and frame where both are clean and both tracks detected: on each axis
    where the true offset ``|Δ| > 0.5 (r_a + r_b) + k``, the detected offset must have the same SIGN (a
    mirrored clip fails — VBench's scorer ignores the sign). Mean over (pair, frame) of ``1[every such axis
    agrees]``; a pair with an unmatched object fails its checks.
``event`` (scenes with an event the truth shows: the object clean before and after it)
    ``positive × negative``, on appearance chains. *positive*: mean over checkable events of 1 when it
    happens within ±2 frames of the true frame — ``change_color``: the chain's colours are best explained
    by the old colour before and the new one after a change frame t̂ (≤ 25 % of detections disagreeing; an
    unseen gap around the true frame counts as the change frame), and the two objects touch around it
    (where the truth shows the other one); ``stop``: the chain's per-frame velocity is best explained by the
    true velocity before and after a change frame t̂ and fits after it within 0.5 k px/frame, plus the
    contact; ``appear`` / ``disappear``: the chain's first / last detection in the object's colour (within
    the truth's own first clean frame after an appearance / last before a disappearance). *negative*: mean
    over objects of 1 when nothing happens that the scene does not say — ≥ 80 % of the chain (at frames
    where the truth shows the object) in one colour without a colour change, seen from its first clean frame (±2) without an appearance, until its last (±2) without a
    disappearance.
``identity_persistence``
    per object with ≥ 2 clean frames: the share of its clean frames (minus those where its track is hidden
    under another detection in the clip) in which its matched track has a detection of its true colour;
    mean over objects (unmatched: 0). Splits, swaps and shuffled frames fail.
``keyframe_psnr`` (dB, capped at PSNR_CAP = 100) and ``keyframe_ssim`` (with ``keyframes``)
    means over the keyframes of ``10 log10(255² / MSE)`` (MSE over all pixels and channels) and of
    :func:`ssim` (Gaussian window σ = 1.5, 11 × 11, per RGB channel).
``dynamic_degree`` (scenes where something moves)
    ``min(1, D̂ / (0.85 D))`` (:func:`dynamic_speeds`): ``D̂`` and ``D`` the chains' and the truth's mean
    displacement per frame, ``|c(t + w) − c(t)| / w``, over the same (object, t) pairs; 85 % of the true
    motion counts as full (coarse pixelated centroids under-measure). A frozen clip scores 0. Extra keys:
    ``dynamic_degree_px`` (``D̂`` in px/frame at the clip's resolution), ``dynamic_degree_flow`` (mean over
    frame pairs of the mean of the top 5 % OpenCV DIS optical-flow magnitudes, px/frame — VBench also
    takes the top 5 %) and ``dynamic_degree_flow_ratio`` (``min(1, flow / flow of the truth)``).
``motion_smoothness``
    ``1 − clip((R − 0.5 k) / 1.5 k, 0, 1)``, ``R`` the mean over chains (weighted by their triples) of the
    median ``|c(t+1) − 2c(t) + c(t−1)|`` over consecutive triples of confident detections. Motion in the
    world is piecewise linear: the median ignores the few bounce frames, 0.5 k px is above the centroid
    noise of true renders; shuffled frames or a ±2k-px shake score ≈ 0.
``trajectory_monotone`` (scenes where something moves)
    per matched object, over consecutive frames (t, t + 1) where it is clean in the truth, moves at least
    0.3 k px/frame there, and its chain has a confident centroid at both: the step must not go back along
    the true direction of motion, ``(ĉ(t+1) − ĉ(t)) · v̂ ≥ −MONOTONE_SLACK·k``; mean over objects of the
    passing fraction (an unmatched object with such frames: 0). Interpolation's "the path between the
    endpoints is monotone": a clip that goes back and forth, or reverses, fails.
``temporal_flicker``
    VBench's ``(255 − MAD) / 255`` on static regions — pixels no true object and no detection covers
    (dilated by 2k px) in either of two consecutive frames — with MAD taken as the *excess* of the clip's
    mean absolute frame difference there over the true render's (grain noise and a pan are in the truth,
    not flicker): ``(255 − max(0, MAD_clip − MAD_truth)) / 255``. Extra key ``temporal_flicker_raw``:
    VBench's ``(255 − MAD_clip) / 255``.
``mask_iou`` (with ``masks`` ``[K, T, H, W]``)
    predicted masks (≥ 0.5) ↔ true visible masks (≥ 0.5) matched by the Hungarian algorithm on IoU; per
    true object ``Σ_t |P ∩ G| / Σ_t |P ∪ G|`` (unmatched: 0), mean over objects that are ever visible.
``style`` (scenes whose true render shows its style)
    ``1[oracle.classify_style(clip) == scene.style]``; ``None`` where the truth's own render is classified
    otherwise (:attr:`Truth.style_legible`: e.g. one small outlined cross has no inside and looks flat) —
    about 1 % of the built-in cases.
``edit_accuracy`` (with ``edit_source``; ``scene`` is the edit's target)
    ``change × preserve``, objects paired across source and target by id. *change*: mean over what the
    two programs differ in — an added object present (presence × its motion score), a removed object absent
    (no unmatched substantial track with its colour and shape), a recoloured object present in its new
    colour, a re-moved object's motion score against the target, a new style classified; *preserve*: mean
    over each unchanged object's presence × motion score, the count and (unless changed) the style. Style
    terms only where the target's true render shows its style.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.oracle import AREA_PER_R2, Detection, PixelColors, Track, classify_style, detect, track
from anyframe.world.render import Rendering, pixelate_factor, render
from anyframe.world.scene import Scene, Trajectory

KEYS: tuple[str, ...] = (
    "presence", "color_binding", "count", "motion_direction", "spatial_relation", "event",
    "identity_persistence", "keyframe_psnr", "keyframe_ssim", "dynamic_degree", "motion_smoothness",
    "temporal_flicker", "mask_iou", "style", "edit_accuracy", "trajectory_monotone",
)  # fmt: skip
EXTRA_KEYS: dict[str, str] = {
    "dynamic_degree": ("dynamic_degree_px", "dynamic_degree_flow", "dynamic_degree_flow_ratio"),
    "temporal_flicker": ("temporal_flicker_raw",),
}  # type: ignore[assignment]

PSNR_CAP = 100.0
DYNAMIC_TOLERANCE = 0.85  # this share of the true displacement already counts as the full dynamics: coarse
# centroids (the pixelated style reads 2–4 px blocks) under-measure small motions by up to ≈ 15 %
MIN_TRACK = 3  # detections a track needs to count as an object
MIN_MATCH_TRACK = 2  # detections a track needs to be matched (an object may be apart for two frames only)
MAX_MATCH_COST = 3.0  # above: no match (e.g. right shape but wrong colour *and* elsewhere)
CLEAN_AREA = 0.9  # visible share of the analytic area for a clean frame
MIN_READABLE_PX = 4.0  # analytic area (px at the analysed resolution) below which an object cannot be read
EVENT_TOLERANCE = 2  # frames
ANGLE_TOLERANCE = 22.5  # degrees: half the angle between neighbouring directions
CHAIN_CONFIDENCE = 0.3  # detections below are merged / half-hidden: their centroids are not the object's
MONOTONE_SLACK = 0.3  # px at 32: a step may go back this far along the motion (centroid noise)
SMOOTH_FLOOR, SMOOTH_SCALE = 0.5, 1.5  # px at 32: acceleration noise floor of true renders; range to 0


# ------------------------------------------------------------------------------------------ truth


@dataclass
class Truth:
    """What the clip should show: the scene, its simulation and render, and where objects are clean."""

    scene: Scene
    traj: Trajectory
    rendering: Rendering
    clean: np.ndarray  # bool [N, T]
    isolated: np.ndarray  # bool [N, T]: clean and no other object at all within a pixel (exact centroid)
    k: float

    @property
    def n(self) -> int:
        return len(self.scene.objects)

    def position(self, i: int) -> np.ndarray:
        """float [T, 2] screen centre of object i."""
        return np.stack([self.traj.x[i], self.traj.y[i]], axis=-1)

    def color_index(self, i: int) -> list[str]:
        return self.traj.color[i]

    @property
    def readable(self) -> np.ndarray:
        """bool [N]: objects the truth shows clean in at least MIN_MATCH_TRACK frames — one clean glimpse
        cannot make a track, so such an object is neither matched nor scored."""
        return self.clean.sum(axis=1) >= MIN_MATCH_TRACK

    @functools.cached_property
    def style_legible(self) -> bool:
        """Whether the true render shows its style: a single small outlined cross (too thin to have an
        inside) looks flat, a tiny striped object may carry one stripe. Where the truth cannot show the
        style, no clip is scored on it."""
        return classify_style(self.rendering.frames) == self.scene.style


def truth_of(scene: Scene) -> Truth:
    """Simulate and render ``scene`` and find every object's clean frames (module docstring)."""
    rendering = render(scene)
    traj = rendering.trajectory
    n, t_len = traj.x.shape
    k = scene.size / vocab.REFERENCE_CANVAS
    masks = rendering.masks
    clean = np.zeros((n, t_len), bool)
    isolated = np.zeros((n, t_len), bool)
    if n:
        # the pixelated style is read at block resolution: "touching" is within a block there, and an
        # object needs MIN_READABLE_PX blocks to be read at all
        f = pixelate_factor(scene.size) if scene.style == "pixelated" else 1
        expected = np.array([AREA_PER_R2[o.shape] for o in scene.objects])[:, None] * traj.radius**2
        shown = masks.sum(axis=(2, 3))
        clean = traj.visible & (shown >= CLEAN_AREA * expected) & (expected >= MIN_READABLE_PX * f * f)
        isolated = clean.copy()
        kernel = np.ones((2 * f + 1, 2 * f + 1), np.uint8)
        present = masks > 0.05
        for i in range(n):
            for t in np.nonzero(clean[i])[0]:
                near = cv2.dilate(present[i, t].astype(np.uint8), kernel).astype(bool)
                touching = [j for j in range(n) if j != i and present[j, t][near].any()]
                isolated[i, t] = not touching
                if any(traj.color[j][t] == traj.color[i][t] for j in touching):
                    clean[i, t] = False
    return Truth(scene, traj, rendering, clean, isolated, k)


# ------------------------------------------------------------------------------------------ reading


@dataclass
class Reading:
    """What the oracle sees in the clip."""

    frames: np.ndarray
    detections: list[list[Detection]]
    tracks: list[Track]  # tracks with ≥ MIN_MATCH_TRACK detections (the ones matched to objects)
    all_tracks: list[Track]
    k: float
    hidden: dict[int, set[int]] = field(default_factory=dict)  # track id → frames under another detection
    pixels: PixelColors | None = None

    def detection_at(self, tr: Track, t: int) -> Detection | None:
        idx = np.nonzero(tr.frames == t)[0]
        return tr.detections[int(idx[0])] if len(idx) else None


def read_clip(frames: np.ndarray) -> Reading:
    """Detect and track (oracle), keep substantial tracks, and note where each track is hidden."""
    dets, pixels = detect(frames, return_pixels=True)
    tracks = track(dets, canvas=frames.shape[1])
    k = frames.shape[1] / vocab.REFERENCE_CANVAS
    substantial = [tr for tr in tracks if len(tr) >= MIN_MATCH_TRACK]
    hidden: dict[int, set[int]] = {}
    for tr in substantial:
        gone = set()
        for t in range(int(tr.frames[0]), int(tr.frames[-1]) + 1):
            if t in set(tr.frames.tolist()):
                continue
            p = tr.position(t)
            x, y = int(p[0]), int(p[1])
            for d in dets[t]:
                if 0 <= y < d.mask.shape[0] and 0 <= x < d.mask.shape[1] and d.mask[y, x]:
                    gone.add(t)
                    break
        hidden[tr.id] = gone
    return Reading(frames, dets, substantial, tracks, k, hidden, pixels)


# ------------------------------------------------------------------------------------------ matching


def _colour_agreement(truth: Truth, i: int, tr: Track) -> float:
    """Share of the track's detections, at frames where object i is visible, in i's true colour then."""
    vis = truth.traj.visible[i]
    hits = [c == truth.traj.color[i][int(t)] for t, c in zip(tr.frames, tr.colors) if vis[int(t)]]
    return float(np.mean(hits)) if hits else 0.0


def _shape_agreement(tr: Track, shape: str) -> float:
    return float(tr.shape_agreement[vocab.SHAPES.index(shape)])


def _coverage(truth: Truth, i: int, tr: Track) -> float:
    """Share of object i's clean frames (else visible frames) at which the track has a detection."""
    frames = np.nonzero(truth.clean[i])[0]
    if not len(frames):
        frames = np.nonzero(truth.traj.visible[i])[0]
    if not len(frames):
        return 0.0
    return float(np.isin(frames, tr.frames).mean())


def _position_term(truth: Truth, i: int, tr: Track) -> float:
    """min(1, mean distance between the track's detections and the true centre / (canvas / 2))."""
    p = truth.position(i)[tr.frames]
    return min(1.0, float(np.linalg.norm(tr.centroids - p, axis=1).mean()) / (truth.scene.size / 2))


def _motion_term(truth: Truth, i: int, tr: Track) -> float:
    """min(1, mean |detected − true| per-frame displacement / (2 k)) over consecutive detections."""
    if len(tr) < 2:
        return 1.0
    f = tr.frames
    step = f[1:] - f[:-1]
    ok = step == 1
    if not ok.any():
        return 1.0
    det = (tr.centroids[1:] - tr.centroids[:-1])[ok]
    pos = truth.position(i)
    true = (pos[f[1:]] - pos[f[:-1]])[ok]
    return min(1.0, float(np.linalg.norm(det - true, axis=1).mean()) / (2 * truth.k))


def _hungarian(cost: np.ndarray, limit: float) -> dict[int, int]:
    """Minimum-cost one-to-one assignment of rows to columns; pairs costing more than ``limit`` (or inf)
    are dropped."""
    if cost.size == 0:
        return {}
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))
    return {int(i): int(j) for i, j in zip(rows, cols) if np.isfinite(cost[i, j]) and cost[i, j] <= limit}


def match_objects(truth: Truth, reading: Reading) -> dict[int, int]:
    """True object index → index into ``reading.tracks`` (see the module docstring for the cost).

    Colour agreement: :func:`_colour_agreement`; shape agreement: the track's confidence-weighted share
    of the true shape; position term: :func:`_position_term`; motion term: :func:`_motion_term`;
    coverage: :func:`_coverage`.
    """
    n, m = truth.n, len(reading.tracks)
    cost = np.full((n, m), np.inf)
    for i, o in enumerate(truth.scene.objects):
        if not truth.readable[i]:
            continue  # the truth never shows it whole and apart: nothing to match it by
        for j, tr in enumerate(reading.tracks):
            cost[i, j] = (
                2.0 * (1 - _colour_agreement(truth, i, tr))
                + 1.0 * (1 - _shape_agreement(tr, o.shape))
                + 0.5 * _position_term(truth, i, tr)
                + 0.5 * _motion_term(truth, i, tr)
                + 1.0 * (1 - _coverage(truth, i, tr))
            )
    return _hungarian(cost, MAX_MATCH_COST)


def match_by_shape(truth: Truth, reading: Reading) -> dict[int, int]:
    """The colour_binding matching: shape first (``1·(1 − shape agreement) + 0.5·(1 − colour agreement) +
    0.25·position term``), so the track that carries an object's shape is the one judged for its colour."""
    n, m = truth.n, len(reading.tracks)
    cost = np.full((n, m), np.inf)
    for i, o in enumerate(truth.scene.objects):
        if not truth.readable[i]:
            continue
        for j, tr in enumerate(reading.tracks):
            cost[i, j] = (
                1.0 * (1 - _shape_agreement(tr, o.shape))
                + 0.5 * (1 - _colour_agreement(truth, i, tr))
                + 0.25 * _position_term(truth, i, tr)
            )
    return _hungarian(cost, np.inf)


@dataclass
class Chain:
    """An object followed by appearance (:func:`object_chains`): per frame a detection or None."""

    dets: list[Detection | None]

    @property
    def centroids(self) -> np.ndarray:
        """float [T, 2], NaN where the chain has no detection."""
        rows = [d.centroid if d is not None else (np.nan, np.nan) for d in self.dets]
        return np.array(rows, dtype=np.float64)

    @property
    def frames(self) -> np.ndarray:
        return np.array([t for t, d in enumerate(self.dets) if d is not None], dtype=int)

    def position(self, t: int) -> np.ndarray | None:
        """Centroid at t, interpolated between the nearest detections around it (None outside the chain)."""
        f = self.frames
        if not len(f) or t < f[0] or t > f[-1]:
            return None
        c = self.centroids[f]
        return np.array([np.interp(t, f, c[:, 0]), np.interp(t, f, c[:, 1])])


def object_chains(truth: Truth, reading: Reading, match: dict[int, int]) -> dict[int, Chain]:
    """Matched object index → its *appearance chain*: the matched track's detection where it has one, else
    the detection of the object's true colour at that frame, not claimed by any matched track, nearest to
    the chain's previous centroid (the only such detection, before the chain has one). Unlike a track, a
    chain is not gated by distance: it follows an object through shuffled or jittered frames (what
    motion_smoothness and dynamic_degree measure) and across a track that split (what events need)."""
    t_len = reading.frames.shape[0]
    claimed = {id(d) for j in match.values() for d in reading.tracks[j].detections}
    out = {}
    for i, j in match.items():
        tr = reading.tracks[j]
        own = {int(t): d for t, d in zip(tr.frames, tr.detections)}
        typical = float(np.median(tr.areas))
        dets: list[Detection | None] = []
        last = None
        for t in range(t_len):
            d = own.get(t)
            if d is None:
                colour = truth.traj.color[i][t]
                cands = [
                    c for c in reading.detections[t]
                    if c.color == colour and id(c) not in claimed and c.confidence >= CHAIN_CONFIDENCE
                    and 0.5 <= c.area / typical <= 2.0
                ]  # fmt: skip
                if cands and last is not None:
                    d = min(cands, key=lambda c: np.hypot(*(np.asarray(c.centroid) - last)))
                elif len(cands) == 1:
                    d = cands[0]
            dets.append(d)
            if d is not None:
                last = np.asarray(d.centroid)
        out[i] = Chain(dets)
    return out


# ------------------------------------------------------------------------------------------ metrics


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def presence_verdicts(truth: Truth, reading: Reading, match: dict[int, int]) -> dict[int, str]:
    """Object index → ``ok``, ``no track``, or what its track gets wrong, ``+``-joined from ``colour``,
    ``shape`` and ``coverage`` (see ``presence`` in the module docstring); objects never clean are left out."""
    out = {}
    for i, o in enumerate(truth.scene.objects):
        if not truth.readable[i]:
            continue
        j = match.get(i)
        if j is None:
            out[i] = "no track"
            continue
        tr = reading.tracks[j]
        wrong = [name for name, bad in (("colour", _colour_agreement(truth, i, tr) < 0.5), ("shape", tr.shape != o.shape),
                                        ("coverage", _coverage(truth, i, tr) < 0.5)) if bad]
        out[i] = "+".join(wrong) or "ok"
    return out


def presence_per_object(truth: Truth, reading: Reading, match: dict[int, int]) -> dict[int, float]:
    """Object index → 1/0 (see ``presence`` in the module docstring); objects never clean are left out."""
    return {i: float(v == "ok") for i, v in presence_verdicts(truth, reading, match).items()}


def presence(truth: Truth, reading: Reading, match: dict[int, int]) -> float | None:
    return _mean(list(presence_per_object(truth, reading, match).values()))


def color_binding(truth: Truth, reading: Reading) -> float | None:
    """Presence's test (right shape, colour and coverage) under the shape-first matching."""
    if truth.n < 2:
        return None
    return _mean(list(presence_per_object(truth, reading, match_by_shape(truth, reading)).values()))


def count(truth: Truth, reading: Reading) -> float | None:
    n = truth.n
    k = sum(len(tr) >= MIN_TRACK for tr in reading.tracks)
    visible = truth.traj.visible.sum(axis=1)
    n_eff = int(sum(truth.clean[i].sum() >= min(3, visible[i]) and visible[i] > 0 for i in range(n)))
    if n == 0:
        return 1.0 if k == 0 else 0.0
    if k < n_eff:
        return k / n_eff
    if k > n:
        return n / k
    return 1.0


def _velocity_changes(truth: Truth, i: int) -> np.ndarray:
    """bool [T]: True at frames t where object i's screen velocity from t−1 to t differs from that from t to
    t+1 (a bounce, collision or stop) — constant-velocity windows must not contain such a frame inside."""
    p = truth.position(i)
    v = p[1:] - p[:-1]  # [T−1]
    change = np.zeros(len(p), bool)
    if len(v) >= 2:
        change[1:-1] = np.linalg.norm(v[1:] - v[:-1], axis=1) > 1e-6
    return change


def _window(truth: Truth) -> int:
    return max(2, truth.traj.num_frames // 4)


def _nearest_detection(tr: Track, t: int) -> np.ndarray | None:
    """The track's centroid at t, or at t ± 1 shifted by its local velocity; None if none within a frame."""
    idx = np.nonzero(np.abs(tr.frames - t) <= 1)[0]
    if not len(idx):
        return None
    j = idx[np.argmin(np.abs(tr.frames[idx] - t))]
    if tr.frames[j] == t:
        return tr.centroids[j]
    return tr.position(t)


@dataclass
class MotionWindow:
    """One window of :func:`motion_direction`: object ``i`` from frame ``t`` to ``t + w``. ``outcome`` is
    ``pass``, ``angle`` (moved, but more than :data:`ANGLE_TOLERANCE` off), ``short`` (right way, under 0.4 of
    the true distance), ``angle+short``, ``moved`` (should stay still), ``unmatched`` (no track for the
    object: the whole window fails) or ``undetected`` (the track misses an end; not counted)."""

    i: int
    t: int
    outcome: str
    angle: float | None = None  # degrees between the true and the detected displacement
    length_ratio: float | None = None  # |detected| / |true|

    @property
    def counted(self) -> bool:
        return self.outcome != "undetected"

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def motion_windows(truth: Truth, reading: Reading, match: dict[int, int]) -> list[MotionWindow]:
    """Every constant-velocity window of every object, with its verdict (see ``motion_direction``)."""
    w = _window(truth)
    k = truth.k
    out = []
    for i in range(truth.n):
        p = truth.position(i)
        changes = _velocity_changes(truth, i)
        windows = [
            t for t in range(truth.traj.num_frames - w)
            if truth.clean[i, t] and truth.clean[i, t + w] and not changes[t + 1 : t + w].any()
        ]
        j = match.get(i)
        for t in windows:
            if j is None:
                out.append(MotionWindow(i, t, "unmatched"))
                continue
            tr = reading.tracks[j]
            a, b = _nearest_detection(tr, t), _nearest_detection(tr, t + w)
            if a is None or b is None:
                out.append(MotionWindow(i, t, "undetected"))
                continue
            d_true, d_det = p[t + w] - p[t], b - a
            still = 0.3 * k * w
            if np.linalg.norm(d_true) <= still:
                out.append(MotionWindow(i, t, "pass" if np.linalg.norm(d_det) <= still + 1.5 * k else "moved"))
                continue
            cos = float(d_true @ d_det) / (np.linalg.norm(d_true) * max(np.linalg.norm(d_det), 1e-9))
            angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
            ratio = float(np.linalg.norm(d_det) / np.linalg.norm(d_true))
            short = np.linalg.norm(d_det) < 0.4 * np.linalg.norm(d_true)
            wrong = [name for name, bad in (("angle", angle > ANGLE_TOLERANCE), ("short", short)) if bad]
            out.append(MotionWindow(i, t, "+".join(wrong) or "pass", angle, ratio))
    return out


def motion_per_object(truth: Truth, reading: Reading, match: dict[int, int]) -> dict[int, float]:
    """Object index → passing fraction of its windows (see ``motion_direction``); an unmatched object
    scores 0, an object whose windows all miss a detection scores 0."""
    by_object: dict[int, list[MotionWindow]] = {}
    for win in motion_windows(truth, reading, match):
        by_object.setdefault(win.i, []).append(win)
    out = {}
    for i, wins in by_object.items():
        counted = [float(win.passed) for win in wins if win.counted]
        out[i] = float(np.mean(counted)) if counted else 0.0
    return out


def motion_direction(truth: Truth, reading: Reading, match: dict[int, int]) -> float | None:
    return _mean(list(motion_per_object(truth, reading, match).values()))


def spatial_relation(truth: Truth, reading: Reading, match: dict[int, int]) -> float | None:
    if truth.n < 2:
        return None
    k = truth.k
    checks = []
    for a in range(truth.n):
        for b in range(a + 1, truth.n):
            ja, jb = match.get(a), match.get(b)
            margin = 0.5 * (truth.traj.radius[a] + truth.traj.radius[b]) + k  # [T]
            both = truth.clean[a] & truth.clean[b] & truth.readable[a] & truth.readable[b]
            for t in np.nonzero(both)[0]:
                d_true = truth.position(b)[t] - truth.position(a)[t]
                axes = np.abs(d_true) > margin[t]
                if not axes.any():
                    continue
                if ja is None or jb is None:
                    checks.append(0.0)
                    continue
                da = reading.detection_at(reading.tracks[ja], int(t))
                db = reading.detection_at(reading.tracks[jb], int(t))
                if da is None or db is None:
                    continue
                d_det = np.asarray(db.centroid) - np.asarray(da.centroid)
                checks.append(float(np.all(np.sign(d_det[axes]) == np.sign(d_true[axes]))))
    return _mean(checks)


def _change_frame(before_bad: np.ndarray, after_bad: np.ndarray) -> tuple[int, int]:
    """Best change index τ (0..K) for per-detection error indicators: minimise Σ before_bad[:τ] +
    Σ after_bad[τ:]; returns (τ, errors)."""
    cb = np.concatenate([[0], np.cumsum(before_bad)])
    ca = np.concatenate([np.cumsum(after_bad[::-1])[::-1], [0]])
    errors = cb + ca
    tau = int(np.argmin(errors))
    return tau, int(errors[tau])


def _contact(ca: Chain, cb: Chain, t: int, k: float, detections: list[list[Detection]]) -> bool:
    """Whether two chains touch within ±EVENT_TOLERANCE frames of t: centroid distance ≤ 1.25 × the sum of
    their equivalent radii + 1.5 k, or their masks come within 1.5 k px of each other, or one's (interpolated)
    centre lies on the other's mask (hidden), or — both unseen — one detection's mask holds both (interpolated)
    centres, within 1.5 k px (merged into one blob; an interpolated centre misses a rebound)."""
    for s in range(t - EVENT_TOLERANCE, t + EVENT_TOLERANCE + 1):
        if s < 0 or s >= len(ca.dets):
            continue
        da, db = ca.dets[s], cb.dets[s]
        if da is not None and db is not None:
            reach = 1.25 * (math.sqrt(da.area / math.pi) + math.sqrt(db.area / math.pi)) + 1.5 * k
            if np.hypot(*(np.asarray(da.centroid) - np.asarray(db.centroid))) <= reach:
                return True
            # or their masks come within 1.5 k px (elongated shapes touch with distant centroids)
            r = int(math.ceil(1.5 * k))
            near = cv2.dilate(da.mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
            if (near & db.mask).any():
                return True
        for mine, other in ((ca, db), (cb, da)):
            p = mine.position(s)
            if other is not None and p is not None and _on_mask(p, other.mask):
                return True
        if da is None and db is None:  # both unseen: merged into one blob (e.g. two objects of one colour)
            pa, pb = ca.position(s), cb.position(s)
            if pa is not None and pb is not None and any(
                _on_mask(pa, d.mask, 1.5 * k) and _on_mask(pb, d.mask, 1.5 * k) for d in detections[s]
            ):
                return True
    return False


def _on_mask(p: np.ndarray, mask: np.ndarray, within: float = 0.0) -> bool:
    """Whether the point p = (x, y) lies on the mask, or within ``within`` px of a mask pixel."""
    if within <= 0:
        x, y = int(p[0]), int(p[1])
        h, w = mask.shape
        return 0 <= y < h and 0 <= x < w and bool(mask[y, x])
    ys, xs = np.nonzero(mask)
    return bool(len(xs)) and float(np.min(np.hypot(xs + 0.5 - p[0], ys + 0.5 - p[1]))) <= within


def _checkable(truth: Truth, i: int, lo: int, hi: int, need: int = 1) -> bool:
    """Whether object i is clean in at least ``need`` frames of [lo, hi] (clipped to the clip)."""
    lo, hi = max(lo, 0), min(hi, truth.traj.num_frames - 1)
    return lo <= hi and int(truth.clean[i, lo : hi + 1].sum()) >= need


def event(truth: Truth, reading: Reading, match: dict[int, int], chains: dict[int, Chain]) -> float | None:
    """``positive × negative`` (module docstring), on the objects' appearance chains. An event the truth
    itself does not show (the object not clean on both sides of it) is not checked."""
    scene, traj = truth.scene, truth.traj
    if not scene.events:
        return None
    index = {o.id: i for i, o in enumerate(scene.objects)}
    tol = EVENT_TOLERANCE
    positive = []
    for e, f in zip(scene.events, traj.event_frames):
        if f is None:
            continue
        i = index[e.object]
        if not truth.readable[i]:
            continue
        if e.type == "collision":
            need_after = 2 if e.effect == "stop" else 1
            if not (_checkable(truth, i, f - 4, f - 1) and _checkable(truth, i, f + 1, f + 5, need_after)):
                continue
        elif e.type == "appear" and not _checkable(truth, i, f, f + 4):
            continue
        elif e.type == "disappear" and not _checkable(truth, i, f - 4, f - 1):
            continue
        ch = chains.get(i)
        if ch is None or not len(ch.frames):
            positive.append(0.0)
            continue
        frames = ch.frames
        if e.type == "collision":
            if e.effect == "change_color":
                old = traj.color[i][max(f - 1, 0)]
                cols = np.array([ch.dets[t].color for t in frames])
                tau, errors = _change_frame(cols != old, cols != e.color)
                ok = 0 < tau < len(frames) and errors <= 0.25 * len(frames)
                # the change happened somewhere after the last old-coloured sighting: if the object was
                # unseen in between, the true frame only has to fall in that gap
                t_hat = int(frames[tau]) if tau < len(frames) else traj.num_frames
                if ok and frames[tau - 1] + 1 <= f <= t_hat:
                    t_hat = f
            else:
                ok, t_hat = _stop_fit(truth, i, ch, f)
            # the contact is checked where the truth shows the other object around the event
            o = index[e.other]
            other = chains.get(o)
            touch = not truth.readable[o] or not _checkable(truth, o, f - tol, f + tol) or (
                other is not None and _contact(ch, other, t_hat, truth.k, reading.detections)
            )
            ok = ok and abs(t_hat - f) <= tol and touch
            positive.append(float(ok))
        else:
            # the object is where the chain shows its colour (a track may run on into another object)
            own = [int(t) for t in frames if ch.dets[t].color == traj.color[i][t]]
            if not own:
                positive.append(0.0)
            elif e.type == "appear":
                after = np.nonzero(truth.clean[i, f:])[0]
                late = f + (int(after[0]) if len(after) else 0)
                positive.append(float(f - tol <= own[0] <= late + tol))
            else:  # disappear: the last detection is at f − 1
                before = np.nonzero(truth.clean[i, :f])[0]
                early = int(before[-1]) + 1 if len(before) else f
                positive.append(float(min(early, f) - tol <= own[-1] + 1 <= f + tol))
    negative = []
    recoloured = {e.object for e in scene.events if e.type == "collision" and e.effect == "change_color"}
    appears = {e.object for e in scene.events if e.type == "appear"}
    disappears = {e.object for e in scene.events if e.type == "disappear"}
    for i, o in enumerate(scene.objects):
        clean = np.nonzero(truth.clean[i])[0]
        if not truth.readable[i]:
            continue
        ch = chains.get(i)
        if ch is None or not len(ch.frames):
            negative.append(0.0)
            continue
        frames = ch.frames
        if o.id not in recoloured:  # while the truth shows it
            seen = [t for t in frames if truth.traj.visible[i, t]] or list(frames)
            _, counts = np.unique([ch.dets[t].color for t in seen], return_counts=True)
            negative.append(float(counts.max() >= 0.8 * len(seen)))
        if o.id not in appears:
            negative.append(float(frames[0] <= clean[0] + tol))
        if o.id not in disappears:
            negative.append(float(frames[-1] >= clean[-1] - tol))
    if not positive:
        return None  # the truth shows none of the scene's events: nothing to check a clip against
    pos = float(np.mean(positive))
    neg = float(np.mean(negative)) if negative else 1.0
    return pos * neg


def _stop_fit(truth: Truth, i: int, ch: Chain, f: int) -> tuple[bool, int]:
    """Change point of a stop: the frame τ that best splits the chain's per-frame velocities into the true
    velocity before the event and the true velocity after it; ok when those after τ fit within 0.5 k. Only
    velocities between clean frames count; among equally good τ (an unseen gap) the one nearest ``f``."""
    p = truth.position(i)
    v_true = p[1:] - p[:-1]  # [T−1]
    c = ch.centroids
    v_det = c[1:] - c[:-1]
    # only velocities between frames where the truth shows the object clean: elsewhere it is occluded or
    # merged with a neighbour, and the chain's centroid is not the object's
    clean = truth.clean[i]
    have = ~np.isnan(v_det[:, 0]) & clean[:-1] & clean[1:]
    if have.sum() < 2:
        return False, -100
    t0 = np.nonzero(have)[0]  # velocity from t0 to t0 + 1
    v = v_det[have]
    err_b = np.linalg.norm(v - v_true[0], axis=1)
    err_a = np.linalg.norm(v - v_true[-1], axis=1)
    costs = np.array([float(err_b[t0 < tau].sum() + err_a[t0 >= tau].sum()) for tau in range(truth.traj.num_frames)])
    # change frames the chain cannot tell apart (an unseen gap) tie: the one nearest the true frame counts
    ties = np.nonzero(costs <= costs.min() + 1e-9)[0]
    best = int(ties[np.argmin(np.abs(ties - f))])
    fit_after = err_a[t0 >= best]
    ok = len(fit_after) > 0 and float(fit_after.mean()) <= 0.5 * truth.k
    return ok, int(best)


def identity_persistence(truth: Truth, reading: Reading, match: dict[int, int]) -> float | None:
    vals = []
    for i in range(truth.n):
        clean = np.nonzero(truth.clean[i])[0]
        if len(clean) < 2:
            continue
        j = match.get(i)
        if j is None:
            vals.append(0.0)
            continue
        tr = reading.tracks[j]
        hidden = reading.hidden.get(tr.id, set())
        eligible = [int(t) for t in clean if int(t) not in hidden]
        if not eligible:
            continue
        hits = 0
        for t in eligible:
            d = reading.detection_at(tr, t)
            hits += d is not None and d.color == truth.traj.color[i][t]
        vals.append(hits / len(eligible))
    return _mean(vals)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """``10 log10(255² / MSE)`` over all pixels and channels, capped at :data:`PSNR_CAP` (identical → cap)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) of two uint8 images [H, W, 3]: per channel with a Gaussian window (σ = 1.5,
    11 × 11, reflected borders), ``C1 = (0.01·255)², C2 = (0.03·255)²``; the mean of the SSIM map, averaged
    over the channels."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def keyframe_fidelity(frames: np.ndarray, keyframes: dict[int, np.ndarray]) -> tuple[float, float]:
    """(mean PSNR, mean SSIM) over the keyframes."""
    ps, ss = [], []
    for t, img in sorted(keyframes.items()):
        t = int(t)
        img = np.asarray(img)
        if not 0 <= t < frames.shape[0]:
            raise AnyframeInputError(f"keyframe index {t} outside the clip's {frames.shape[0]} frames")
        if img.shape != frames.shape[1:]:
            raise AnyframeInputError(f"keyframe {t} is {img.shape}, the clip's frames are {frames.shape[1:]}")
        ps.append(psnr(frames[t], img))
        ss.append(ssim(frames[t], img))
    return float(np.mean(ps)), float(np.mean(ss))


def dynamic_speeds(truth: Truth, chains: dict[int, Chain]) -> tuple[float | None, float | None]:
    """(clip, truth) mean displacement in px per frame, ``|c(t + w) − c(t)| / w`` with ``w = _window``
    (a window, not a single frame, so that a coarse centroid — the pixelated style's blocks — does not
    count as motion or hide it), over the same (object, t) pairs: the object is isolated in the truth
    (clean, and no other object touching: its centroid is exact) at t and t + w and its chain has a
    centroid at both — or, failing any such pair, clean at both ends, or else single frames."""
    w_max = min(_window(truth), truth.traj.num_frames - 1)
    # the best evidence first: isolated ends a window apart; then clean ends; then single frames
    for w, strict in ((w_max, True), (w_max, False), (1, False)):
        if w < 1:
            break
        clip, true = [], []
        for i, ch in chains.items():
            chain = ch.centroids
            p = truth.position(i)
            vis = truth.isolated[i] if strict else truth.clean[i]
            ok = vis[w:] & vis[:-w] & ~np.isnan(chain[w:, 0]) & ~np.isnan(chain[:-w, 0])
            clip.extend((np.linalg.norm(chain[w:] - chain[:-w], axis=1)[ok] / w).tolist())
            true.extend((np.linalg.norm(p[w:] - p[:-w], axis=1)[ok] / w).tolist())
        if clip:
            return float(np.mean(clip)), float(np.mean(true))
    return None, None


FLOW_UPSCALE = 2  # DIS works on ≥ 8-px patches: a 32-px clip is upscaled (and its flow scaled back)


def flow_magnitude(frames: np.ndarray) -> float:
    """Mean over consecutive frame pairs of the mean of the top 5 % DIS optical-flow magnitudes (px / frame
    at the clip's resolution). Frames are converted to grey and upscaled ×FLOW_UPSCALE (nearest) for DIS."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    if FLOW_UPSCALE > 1:
        up = FLOW_UPSCALE
        grey = [cv2.resize(g, None, fx=up, fy=up, interpolation=cv2.INTER_NEAREST) for g in grey]
    mags = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = dis.calc(a, b, None)
        mag = np.linalg.norm(flow, axis=-1).ravel() / FLOW_UPSCALE
        top = np.sort(mag)[-max(1, mag.size // 20) :]
        mags.append(float(top.mean()))
    return float(np.mean(mags)) if mags else 0.0


def trajectory_monotone(truth: Truth, match: dict[int, int], chains: dict[int, Chain]) -> float | None:
    """See the module docstring."""
    k = truth.k
    vals = []
    for i in range(truth.n):
        p = truth.position(i)
        v = p[1:] - p[:-1]
        speed = np.linalg.norm(v, axis=1)
        pairs = np.nonzero(truth.clean[i, :-1] & truth.clean[i, 1:] & (speed >= 0.3 * k))[0]
        if not truth.readable[i] or not len(pairs):
            continue
        ch = chains.get(i)
        if match.get(i) is None or ch is None:
            vals.append(0.0)
            continue
        sure = [d is not None and d.confidence >= CHAIN_CONFIDENCE for d in ch.dets]
        c = ch.centroids
        hits = [float(np.dot(c[t + 1] - c[t], v[t] / speed[t]) >= -MONOTONE_SLACK * k)
                for t in pairs if sure[t] and sure[t + 1]]
        if hits:
            vals.append(float(np.mean(hits)))
    return _mean(vals)


def motion_smoothness(chains: dict[int, Chain], k: float) -> float | None:
    """``1 − clip((R − SMOOTH_FLOOR·k) / (SMOOTH_SCALE·k), 0, 1)``, R = mean over objects (weighted by their
    number of triples) of the median ``|c(t+1) − 2c(t) + c(t−1)|`` over the chain's consecutive triples of
    confident detections (≥ CHAIN_CONFIDENCE: merged or half-hidden objects have no reliable centroid)."""
    per, weights = [], []
    for ch in chains.values():
        chain = ch.centroids
        sure = np.array([d is not None and d.confidence >= CHAIN_CONFIDENCE for d in ch.dets])
        acc = np.linalg.norm(chain[2:] - 2 * chain[1:-1] + chain[:-2], axis=1)
        acc = acc[~np.isnan(acc) & sure[2:] & sure[1:-1] & sure[:-2]]
        if len(acc):
            per.append(float(np.median(acc)))
            weights.append(len(acc))
    if not per:
        return None
    r = float(np.average(per, weights=weights)) / k
    return 1.0 - min(1.0, max(0.0, (r - SMOOTH_FLOOR) / SMOOTH_SCALE))


def _static_region(truth: Truth, reading: Reading) -> np.ndarray:
    """bool [T, H, W]: pixels no true object and no detection covers (dilated by 2k px)."""
    t_len, h, w, _ = reading.frames.shape
    cover = truth.rendering.masks.sum(axis=0) > 0.02 if truth.n else np.zeros((t_len, h, w), bool)
    cover = cover.copy()
    for t, frame in enumerate(reading.detections):
        for d in frame:
            cover[t] |= d.mask
    r = max(1, int(round(2 * truth.k)))
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    cover = np.stack([cv2.dilate(c.astype(np.uint8), kernel).astype(bool) for c in cover])
    return ~cover


def temporal_flicker(truth: Truth, reading: Reading) -> tuple[float | None, float | None]:
    """(temporal_flicker, temporal_flicker_raw) — see the module docstring."""
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


def mask_iou(truth: Truth, masks: np.ndarray) -> float | None:
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[1:] != truth.rendering.masks.shape[1:]:
        raise AnyframeInputError(
            f"masks must be [K, T, H, W] with T, H, W = {truth.rendering.masks.shape[1:]}, got {masks.shape}"
        )
    if truth.n == 0:
        return None
    pred = masks >= 0.5
    gt = truth.rendering.masks >= 0.5
    inter = np.einsum("kthw,nthw->nk", pred.astype(np.float32), gt.astype(np.float32))
    union = pred.sum(axis=(1, 2, 3))[None, :] + gt.sum(axis=(1, 2, 3))[:, None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)  # [N, K]
    vals = np.zeros(truth.n)
    if masks.shape[0]:
        rows, cols = linear_sum_assignment(-iou)
        vals[rows] = iou[rows, cols]
    keep = gt.sum(axis=(1, 2, 3)) > 0
    return float(vals[keep].mean()) if keep.any() else None


def _removed_absent(obj, reading: Reading, match: dict[int, int]) -> float:
    """1 when no unmatched substantial track looks like the removed object (its colour and shape)."""
    matched = set(match.values())
    for j, tr in enumerate(reading.tracks):
        if j not in matched and tr.color == obj.color and tr.shape == obj.shape:
            return 0.0
    return 1.0


def edit_accuracy(
    truth: Truth,
    reading: Reading,
    match: dict[int, int],
    source: Scene,
    style: str,
    count_score: float | None,
) -> float:
    """``change × preserve`` (module docstring). Objects are paired across source and target by id."""
    target = truth.scene
    src = {o.id: o for o in source.objects}
    pres = presence_per_object(truth, reading, match)
    motion = motion_per_object(truth, reading, match)
    change, preserve = [], []
    for i, o in enumerate(target.objects):
        p = pres.get(i, 1.0)  # an object the truth never shows cleanly cannot be checked
        m = motion.get(i, 1.0)
        old = src.get(o.id)
        if old is None:
            change.append(p * m)
        elif old.color != o.color:
            change.append(p)
        elif old.motion != o.motion:
            change.append(m)
        else:
            preserve.append(p * m)
    kept = {o.id for o in target.objects}
    for o in source.objects:
        if o.id not in kept:
            change.append(_removed_absent(o, reading, match))
    if truth.style_legible:
        (change if source.style != target.style else preserve).append(float(style == target.style))
    if count_score is not None:
        preserve.append(count_score)
    c = float(np.mean(change)) if change else 1.0
    q = float(np.mean(preserve)) if preserve else 1.0
    return c * q


# ------------------------------------------------------------------------------------------ entry point

_NEEDS_READING = set(KEYS) - {"keyframe_psnr", "keyframe_ssim", "mask_iou"}


def score_clip(
    frames: np.ndarray,
    scene: Scene,
    keys: Sequence[str] | None = None,
    keyframes: dict[int, np.ndarray] | None = None,
    masks: np.ndarray | None = None,
    edit_source: Scene | None = None,
) -> dict[str, float | None]:
    """Score ``frames`` (uint8 [T, H, W, 3], T = scene.frames, H = W = scene.size) against ``scene``.

    ``keys``: which of :data:`KEYS` to compute (default all); ``dynamic_degree`` and ``temporal_flicker``
    also add their extra keys (:data:`EXTRA_KEYS`). A key that does not apply is ``None``:
    ``color_binding`` / ``spatial_relation`` with fewer than two objects, ``event`` without events,
    ``keyframe_*`` without ``keyframes`` ({frame index: uint8 [H, W, 3]}), ``mask_iou`` without ``masks``
    (float / bool [K, T, H, W]), ``edit_accuracy`` without ``edit_source`` (the source scene of an edit whose
    target is ``scene``), ``dynamic_degree`` when nothing moves in the truth, and any key whose objects the
    truth never shows cleanly. Definitions: the module docstring.
    """
    frames = np.asarray(frames)
    want = list(KEYS) if keys is None else list(keys)
    unknown = [key for key in want if key not in KEYS]
    if unknown:
        raise AnyframeInputError(f"unknown score keys {unknown}; expected some of {KEYS}")
    expected = (scene.frames, scene.size, scene.size, 3)
    if frames.shape != expected:
        raise AnyframeInputError(f"clip is {frames.shape}, the scene needs {expected} (T, H, W, 3)")
    if frames.dtype != np.uint8:
        raise AnyframeInputError(f"clip must be uint8, got {frames.dtype}")
    truth = truth_of(scene)
    reading = read_clip(frames) if _NEEDS_READING & set(want) else None
    match = match_objects(truth, reading) if reading is not None else {}
    out: dict[str, float | None] = {}
    cache: dict[str, object] = {}

    def style_pred() -> str:
        if "style" not in cache:
            cache["style"] = classify_style(frames, reading.detections, reading.pixels)
        return cache["style"]  # type: ignore[return-value]

    def chains() -> dict[int, Chain]:
        if "chains" not in cache:
            cache["chains"] = object_chains(truth, reading, match)
        return cache["chains"]  # type: ignore[return-value]

    def count_score() -> float | None:
        if "count" not in cache:
            cache["count"] = count(truth, reading)
        return cache["count"]  # type: ignore[return-value]

    for key in want:
        if key == "presence":
            out[key] = presence(truth, reading, match)
        elif key == "color_binding":
            out[key] = color_binding(truth, reading)
        elif key == "count":
            out[key] = count_score()
        elif key == "motion_direction":
            out[key] = motion_direction(truth, reading, match)
        elif key == "spatial_relation":
            out[key] = spatial_relation(truth, reading, match)
        elif key == "event":
            out[key] = event(truth, reading, match, chains())
        elif key == "identity_persistence":
            out[key] = identity_persistence(truth, reading, match)
        elif key in ("keyframe_psnr", "keyframe_ssim"):
            if not keyframes:
                out[key] = None
            else:
                if "fidelity" not in cache:
                    cache["fidelity"] = keyframe_fidelity(frames, keyframes)
                ps, ss = cache["fidelity"]  # type: ignore[misc]
                out[key] = ps if key == "keyframe_psnr" else ss
        elif key == "dynamic_degree":
            d_clip, d_true = dynamic_speeds(truth, chains())
            moving = d_true is not None and d_true > 0.05 * truth.k
            out[key] = min(1.0, d_clip / (DYNAMIC_TOLERANCE * d_true)) if moving else None
            out["dynamic_degree_px"] = d_clip
            flow = flow_magnitude(frames)
            out["dynamic_degree_flow"] = flow
            flow_true = flow_magnitude(truth.rendering.frames)
            moving_flow = flow_true > 0.05 * truth.k
            out["dynamic_degree_flow_ratio"] = min(1.0, flow / flow_true) if moving_flow else None
        elif key == "motion_smoothness":
            out[key] = motion_smoothness(chains(), truth.k)
        elif key == "trajectory_monotone":
            out[key] = trajectory_monotone(truth, match, chains())
        elif key == "temporal_flicker":
            out[key], out["temporal_flicker_raw"] = temporal_flicker(truth, reading)
        elif key == "mask_iou":
            out[key] = None if masks is None else mask_iou(truth, masks)
        elif key == "style":
            out[key] = float(style_pred() == scene.style) if truth.style_legible else None
        elif key == "edit_accuracy":
            out[key] = (
                None if edit_source is None
                else edit_accuracy(truth, reading, match, edit_source, style_pred(), count_score())
            )  # fmt: skip
    return out
