"""Whether the scene's events happen when they should, and nothing else happens: ``event``."""

from __future__ import annotations

import math

import cv2
import numpy as np

from anyframe.world.oracle import Detection
from anyframe.world.scoring.chains import Chain
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth

EVENT_TOLERANCE = 2  # frames


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
            r = math.ceil(1.5 * k)
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
    """``positive × negative`` (package docstring), on the objects' appearance chains. An event the truth
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
        elif e.type in ("appear", "disappear"):
            window = (f, f + 4) if e.type == "appear" else (f - 4, f - 1)
            if not _checkable(truth, i, *window):
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
