"""How much and how well things move: ``dynamic_degree`` (appearance chains and optical flow),
``trajectory_monotone`` and ``motion_smoothness``."""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from anyframe.world.scoring.chains import CHAIN_CONFIDENCE, Chain
from anyframe.world.scoring.motion import _window
from anyframe.world.scoring.objects import _mean
from anyframe.world.scoring.truth import Truth

MONOTONE_SLACK = 0.3  # px at 32: a step may go back this far along the motion (centroid noise)
SMOOTH_FLOOR, SMOOTH_SCALE = 0.5, 1.5  # px at 32: acceleration noise floor of true renders; range to 0


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
    for a, b in itertools.pairwise(grey):
        flow = dis.calc(a, b, None)
        mag = np.linalg.norm(flow, axis=-1).ravel() / FLOW_UPSCALE
        top = np.sort(mag)[-max(1, mag.size // 20) :]
        mags.append(float(top.mean()))
    return float(np.mean(mags)) if mags else 0.0


def trajectory_monotone(truth: Truth, match: dict[int, int], chains: dict[int, Chain]) -> float | None:
    """See the package docstring."""
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
