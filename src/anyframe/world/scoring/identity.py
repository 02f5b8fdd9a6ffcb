"""Whether each object stays itself through the clip: ``identity_persistence``."""

from __future__ import annotations

import numpy as np

from anyframe.world.scoring.objects import _mean
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth


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
