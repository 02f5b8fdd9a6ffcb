"""Whether each object moves the way the truth does: ``motion_direction``, over windows of constant true
velocity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anyframe.world.oracle import Track
from anyframe.world.scoring.objects import _mean
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth

ANGLE_TOLERANCE = 22.5  # degrees: half the angle between neighbouring directions


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
