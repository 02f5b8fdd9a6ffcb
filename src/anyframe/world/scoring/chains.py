"""Appearance chains: each matched object followed frame by frame by what it looks like, not gated by
distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anyframe.world.oracle import Detection
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth

CHAIN_CONFIDENCE = 0.3  # detections below are merged / half-hidden: their centroids are not the object's


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
