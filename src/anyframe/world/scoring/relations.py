"""Whether the objects stand on the right sides of each other: ``spatial_relation``."""

from __future__ import annotations

import numpy as np

from anyframe.world.scoring.objects import _mean
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth


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
