"""Whether an edit changed what it says and kept the rest: ``edit_accuracy``."""

from __future__ import annotations

import numpy as np

from anyframe.world.scene import Scene
from anyframe.world.scoring.motion import motion_per_object
from anyframe.world.scoring.objects import presence_per_object
from anyframe.world.scoring.reading import Reading
from anyframe.world.scoring.truth import Truth


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
    """``change × preserve`` (package docstring). Objects are paired across source and target by id."""
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
