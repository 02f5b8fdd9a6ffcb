"""Whether the scene's objects are in the clip: ``presence``, ``color_binding`` and ``count``."""

from __future__ import annotations

import numpy as np

from anyframe.world.scoring.matching import _colour_agreement, _coverage, match_by_shape
from anyframe.world.scoring.reading import MIN_TRACK, Reading
from anyframe.world.scoring.truth import Truth


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def presence_verdicts(truth: Truth, reading: Reading, match: dict[int, int]) -> dict[int, str]:
    """Object index → ``ok``, ``no track``, or what its track gets wrong, ``+``-joined from ``colour``,
    ``shape`` and ``coverage`` (see ``presence`` in the package docstring); objects never clean are left out."""
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
    """Object index → 1/0 (see ``presence`` in the package docstring); objects never clean are left out."""
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
