"""The default model's targets and report comparisons."""

from anyframe.evaluation.targets import TARGETS, compare_targets


def _report(**by_task):
    return {"by_task": by_task}


def test_a_comparison_counts_only_differences_beyond_the_noise_floor():
    base = _report(t2v={"presence": 0.40, "motion_direction": 0.20}, ti2v={"keyframe_psnr": 31.0})
    other = _report(t2v={"presence": 0.45, "motion_direction": 0.18}, ti2v={"keyframe_psnr": 29.5})
    rows = {(r["task"], r["key"]): r for r in compare_targets({"a": base, "b": other}, noise=0.03)}
    assert len(rows) == len(TARGETS)
    assert rows["t2v", "presence"]["versus_first"]["b"]["verdict"] == "better"  # +0.05 > 0.03
    assert rows["t2v", "motion_direction"]["versus_first"]["b"]["verdict"] == "same"  # −0.02 within 0.03
    assert rows["ti2v", "keyframe_psnr"]["versus_first"]["b"]["verdict"] == "worse"  # −1.5 dB beyond 1 dB
    assert rows["prediction", "motion_direction"]["values"] == {"a": None, "b": None}
    assert rows["prediction", "motion_direction"]["versus_first"]["b"] is None


def test_same_case_scores_counts_identical_cases_by_task():
    from anyframe.evaluation.targets import same_case_scores

    case = lambda i, task, p: {"id": i, "task": task, "scores": {"presence": p}}  # noqa: E731
    unscored = {"id": "5", "task": "edit", "scores": {}}
    a = {"cases": [case("1", "t2v", 0.5), case("2", "t2v", 0.7), case("3", "ti2v", 1.0), unscored]}
    b = {"cases": [case("1", "t2v", 0.5), case("2", "t2v", 0.6), case("4", "ti2v", 1.0), unscored]}
    assert same_case_scores(a, b) == {"t2v": (1, 2)}  # case 3 only in a, 4 only in b, 5 not scored
