"""benchmarks/compare_reports.py: reports of any suite side by side, with intervals."""

import json
import sys

import numpy as np
import pytest


@pytest.fixture()
def compare(load_script, tmp_path, monkeypatch):
    module = load_script("benchmarks/compare_reports.py")
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")

    def run(*argv):
        monkeypatch.setattr(sys, "argv", ["compare_reports.py", *argv])
        module.main()
        return (tmp_path / "results" / "x.md").read_text()
    return run


def _report(path, presence, task="t2v"):
    cases = [{"id": f"c{i}", "task": task, "scores": {"presence": float(p)}} for i, p in enumerate(presence)]
    path.write_text(json.dumps({"cases": cases, "by_task": {task: {"presence": float(np.mean(presence))}}}))
    return f"{path}"


def test_two_small_reports_of_another_suite_are_compared_with_their_intervals(compare, tmp_path, capsys):
    base = np.random.default_rng(0).uniform(0, 1, 20)  # e.g. the ood suite's 20 T2V cases
    a, b = _report(tmp_path / "a.json", base), _report(tmp_path / "b.json", base + 0.2)
    text = compare("--name", "x", "--report", f"old={a}", "--report", f"new={b}")
    assert "Reports (20 cases each)" in text
    row = next(line for line in text.splitlines() if line.startswith("| t2v | presence"))
    assert "+0.200 [+0.200, +0.200] (better)" in row
    assert "**new** against old: better on 1, worse on 0" in text
    empty = _report(tmp_path / "e.json", base, task="edit")  # no case of a target's task
    with pytest.raises(SystemExit, match="no scored case of a target's task"):
        compare("--name", "x", "--report", f"old={a}", "--report", f"e={empty}")
