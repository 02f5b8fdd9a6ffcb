"""The default model's targets and report comparisons."""

import pytest

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

    case = lambda i, task, p: {"id": i, "task": task, "scores": {"presence": p}}
    unscored = {"id": "5", "task": "edit", "scores": {}}
    a = {"cases": [case("1", "t2v", 0.5), case("2", "t2v", 0.7), case("3", "ti2v", 1.0), unscored]}
    b = {"cases": [case("1", "t2v", 0.5), case("2", "t2v", 0.6), case("4", "ti2v", 1.0), unscored]}
    assert same_case_scores(a, b) == {"t2v": (1, 2)}  # case 3 only in a, 4 only in b, 5 not scored


def _cases(task, key, values, prefix="c"):
    return {"cases": [{"id": f"{prefix}{i}", "task": task, "scores": {key: v}} for i, v in enumerate(values)]}


def test_intervals_of_a_mean_and_of_a_difference():
    import numpy as np

    from anyframe.evaluation.targets import difference_interval, mean_interval, task_scores

    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, 40).tolist()
    scores = task_scores(_cases("t2v", "presence", values + [None, float("nan")]), "t2v", "presence")
    assert len(scores) == 40  # unscored cases are not counted, as in the report's mean
    low, high = mean_interval(scores)
    assert low < np.mean(values) < high and 0.1 < high - low < 0.4  # ~ ±2 standard errors of 40 uniforms
    wide, narrow = mean_interval(values[:10]), mean_interval(values * 10)
    assert wide[1] - wide[0] > high - low > narrow[1] - narrow[0]
    assert mean_interval([0.5]) is None and mean_interval([1.0] * 5) == (1.0, 1.0)
    # paired: every case moved by 0.1 is a sure difference of 0.1, however spread the cases are
    moved = {i: v + 0.1 for i, v in scores.items()}
    paired = difference_interval(scores, moved)
    assert paired["paired"] and paired["low"] == pytest.approx(0.1) and paired["high"] == pytest.approx(0.1)
    # the same values as another suite's cases (no shared ids): two independent draws, an interval around 0.1
    other = {f"x{i}": v for i, v in moved.items()}
    unpaired = difference_interval(scores, other)
    assert not unpaired["paired"] and unpaired["low"] < 0.1 < unpaired["high"] and unpaired["low"] < 0


def test_a_difference_beyond_the_floor_but_within_case_noise_is_not_counted():
    import numpy as np

    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 40)
    error = rng.normal(0, 0.4, 40)
    noisy = base + 0.06 + error - error.mean()  # +0.06 on average, case by case all over the place
    shifted = base + 0.06  # +0.06 on every case
    reports = {name: _cases("t2v", "presence", v.tolist()) for name, v in
               (("a", base), ("noisy", noisy), ("shifted", shifted))}
    for report in reports.values():
        report["by_task"] = {"t2v": {"presence": float(np.mean([c["scores"]["presence"] for c in report["cases"]]))}}
    row = next(r for r in compare_targets(reports, noise=0.03) if r["key"] == "presence")
    assert row["versus_first"]["noisy"]["delta"] > 0.03 and row["versus_first"]["noisy"]["verdict"] == "same"
    assert row["versus_first"]["shifted"]["delta"] > 0.03 and row["versus_first"]["shifted"]["verdict"] == "better"
    assert row["intervals"]["a"][0] < row["values"]["a"] < row["intervals"]["a"][1]


def test_paired_differences_of_an_ablation_over_the_cases_both_settings_scored():
    import numpy as np

    from anyframe.evaluation.targets import case_scores, format_difference, paired_differences

    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 30)
    report_a = _cases("t2v", "presence", base.tolist())
    # the other setting: +0.2 on every case, one case unscored; a second task only it has
    report_b = _cases("t2v", "presence", (base + 0.2).tolist()[:-1] + [None])
    report_b["cases"] += _cases("ti2v", "presence", [0.5, 0.6], prefix="t")["cases"]
    a, b = case_scores(report_a, ("presence", "color_binding")), case_scores(report_b, ("presence", "color_binding"))
    assert set(a) == {"t2v"} and set(a["t2v"]) == {"presence"}  # no colour binding scored: no empty entry
    assert len(b["t2v"]["presence"]) == 29 and set(b["ti2v"]["presence"]) == {"t0", "t1"}
    d = paired_differences(a["t2v"], b["t2v"])["presence"]
    assert d["delta"] == pytest.approx(0.2)  # over the 29 shared cases, not 30 against 29
    assert d["interval"]["low"] == pytest.approx(0.2) and d["interval"]["paired"] and d["interval"]["cases"] == 29
    assert format_difference(d["delta"], d["interval"]) == "**+0.200 [+0.200, +0.200]**"
    assert format_difference(d["delta"], d["interval"], bold=False) == "+0.200 [+0.200, +0.200]"
    # a spread-out difference of about zero is not bold; nothing shared, nothing returned
    noise = {"presence": {f"c{i}": v for i, v in enumerate(base + rng.normal(0, 0.3, 30))}}
    spread = paired_differences(a["t2v"], noise)["presence"]
    assert spread["interval"]["low"] < 0 < spread["interval"]["high"]
    assert not format_difference(spread["delta"], spread["interval"]).startswith("**")
    assert paired_differences(a["t2v"], {"presence": {"zz": 1.0}}) == {}
    assert format_difference(None, None) == "—"


def test_differences_are_shown_with_each_keys_precision():
    from anyframe.evaluation.targets import difference_digits, format_difference

    assert difference_digits("keyframe_psnr") == 2 and difference_digits("color_error") == 2
    assert difference_digits("presence") == 3
    # temporal_flicker sits near 0.99: a real difference of 3e-4 is not "-0.000" in bold
    interval = {"paired": True, "cases": 40, "low": -0.0006, "high": -0.0001}
    assert format_difference(-0.0003, interval, digits=difference_digits("temporal_flicker")) == "**-0.0003 [-0.0006, -0.0001]**"
