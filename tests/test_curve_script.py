"""The default model's quality curve: what a point keeps from a standard-suite report."""

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def curve(load_script):
    return load_script("benchmarks/default_model_curve.py")


def _report(path: Path, presence: np.ndarray, n: int = 320) -> Path:
    cases = [{"id": f"c{i}", "task": "t2v", "scores": {"presence": float(p)}} for i, p in enumerate(presence)]
    cases += [{"id": f"x{i}", "task": "edit", "scores": {}} for i in range(n - len(cases))]
    by_task = {"t2v": {"presence": float(presence.mean())}}
    path.write_text(json.dumps({"cases": cases, "by_task": by_task, "metrics": {}}))
    return path


def test_a_point_keeps_each_targets_interval_and_the_plot_draws_old_points_without(curve, tmp_path):
    presence = np.random.default_rng(0).uniform(0, 1, 40)
    point = curve._point(_report(tmp_path / "r.json", presence))
    low, high = point["intervals"]["t2v/presence"]
    assert low < presence.mean() < high and high - low < 0.4
    assert "ti2v/motion_direction" not in point["intervals"]  # no cases scored it: no interval, not a made-up one
    old = {"by_task": point["by_task"], "metrics": {}}  # a point added before intervals were kept
    curve._plot({"100": old, "200": point}, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="not a full standard-suite report"):
        curve._point(_report(tmp_path / "small.json", presence, n=40))
