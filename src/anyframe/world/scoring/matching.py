"""True objects matched one-to-one to the clip's tracks: appearance first (:func:`match_objects`), or shape
first (:func:`match_by_shape`, colour binding's matching)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.world import vocab
from anyframe.world.oracle import Track
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth

MAX_MATCH_COST = 3.0  # above: no match (e.g. right shape but wrong colour *and* elsewhere)


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
    """True object index → index into ``reading.tracks`` (see the package docstring for the cost).

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
