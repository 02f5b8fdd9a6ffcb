"""The default model's shipping script: what its card reads from the runs and the benchmark results."""

import json
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def ship(load_script):
    return load_script("scripts/ship_world_model.py")


def _run(folder: Path, records: list[dict], config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_a_cooldown_branch_is_summarised_from_its_start(ship, tmp_path):
    config = {"seed": 3, "optim": {"schedule": "wsd", "decay_steps": 100}, "train": {"steps": 300, "mixed_precision": "bf16"}}
    # two logged windows of 50 steps at 1 and 0.5 steps/s, after branching at step 200
    run = _run(tmp_path / "cool", [{"step": 250, "loss": 0.2, "steps_per_s": 1.0}, {"step": 300, "loss": 0.1, "steps_per_s": 0.5}],
               config)
    branch = ship.cooldown_branch(run)
    assert branch["start"] == 200 and branch["decay_steps"] == 100
    assert "--resume runs/world-s/checkpoints/step-00000200" in branch["command"]
    assert "--set train.mixed_precision=bf16" in branch["command"]
    summary = ship.run_summary(run, since=branch["start"])
    assert summary == {"steps": 300, "wall_s": 150.0, "loss": 0.1, "seed": 3}  # 50 s + 100 s, not 250 s from step 0
    assert ship.run_summary(run, upto=250, since=200)["wall_s"] == 50.0
    constant = _run(tmp_path / "const", [], {"optim": {"schedule": "constant", "decay_steps": 0}, "train": {"steps": 300}})
    with pytest.raises(SystemExit, match="not wsd"):
        ship.cooldown_branch(constant)


def _row(task, label, verdict, delta, interval=None, key="presence"):
    """A ``benchmarks/compare_reports.py`` row: report ``label``'s difference from the first on one target."""
    v = {"verdict": verdict, "delta": delta}
    if interval is not None:
        v["interval"] = {"low": interval[0], "high": interval[1]}
    return {"task": task, "measure": key, "key": key, "versus_first": {label: v}}


def test_a_sweeps_gain_holds_only_if_the_whole_suite_check_agrees(ship):
    metrics = lambda p: {"presence": p, "color_binding": 0.3, "motion_direction": 0.2}
    sweep = {"n": 40, "task": "t2v", "step": 100,
             "rows": [{"setting": "default", "metrics": metrics(0.40)}, {"setting": "guidance 12", "metrics": metrics(0.48)},
                      {"setting": "guidance 3", "metrics": metrics(0.30)}]}
    found = ship.sweep_finding(sweep)
    assert found.settings == ("guidance 12", "guidance 3") and (found.n, found.task, found.step) == (40, "t2v", 100)
    assert found.best.setting == "guidance 12" and found.best.key == "presence" and found.best.interval is None
    assert found.best.delta == pytest.approx(0.08) and found.worst.delta == pytest.approx(-0.10)
    assert found.worst.setting == "guidance 3"
    assert found.gain and found.held is None and found.helps  # means only: a gain of ≥ 0.05, not checked
    check = {"reports": {"7.5": {}, "12": {}}, "rows": [_row("t2v", "12", "same", 0.01), _row("ti2v", "12", "worse", -0.04)]}
    found = ship.sweep_finding(sweep, check)
    assert (len(found.check.better), len(found.check.worse), found.check.same, found.check.targets) == (0, 1, 1, 2)
    assert found.check.label == "12" and found.check.base == "7.5"
    assert found.gain and found.held is False and not found.helps  # the gain did not hold
    check["rows"][0]["versus_first"]["12"]["verdict"] = "better"
    found = ship.sweep_finding(sweep, check)
    assert found.held is True and found.helps
    sweep["rows"][1]["metrics"] = metrics(0.44)  # +0.04: below the means-only rule, whatever the check says
    assert not ship.sweep_finding(sweep, check).helps
    assert ship.sweep_finding(None) is None


def test_a_sweeps_gain_is_read_by_its_interval_when_the_cases_are_kept(ship):
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)
    cases = lambda values: {"presence": {f"c{i}": float(v) for i, v in enumerate(values)}}
    row = lambda setting, values: {"setting": setting, "metrics": {"presence": float(np.mean(values))},
                                   "cases": cases(values)}
    error = rng.normal(0, 0.5, 40)
    noisy = base + 0.08 + error - error.mean()  # a mean gain above the old 0.05 rule, case by case all over the place
    sweep = {"n": 40, "task": "t2v", "step": 100, "rows": [row("default", base), row("guidance 12", noisy)]}
    found = ship.sweep_finding(sweep)
    low, high = found.best.interval
    assert found.best.delta == pytest.approx(0.08) and low < 0 < high and not found.gain and not found.helps
    sweep["rows"][1] = row("guidance 12", base + 0.08)  # the same gain on every case
    found = ship.sweep_finding(sweep)
    assert found.gain and found.helps and (found.best.setting, found.best.key) == ("guidance 12", "presence")
    assert found.best.delta == pytest.approx(0.08) and found.best.interval == pytest.approx((0.08, 0.08))


def test_the_cooldown_finding_counts_what_it_bought(ship):
    row = lambda task, verdict, delta: _row(task, "cool", verdict, delta, (delta - 0.05, delta + 0.05))
    result = {"reports": {"constant": {}, "cool": {}}, "rows": [row("t2v", "better", 0.07), row("ti2v", "same", -0.02)]}
    loss = {"rows": [{"relative": -0.05}, {"relative": -0.099}]}
    found = ship.cooldown_finding(result, loss)
    c = found.comparison
    assert (c.base, c.label, len(c.better), len(c.worse), c.same) == ("constant", "cool", 1, 0, 1) and found.helps
    (move,) = c.better
    assert (move.task, move.measure) == ("t2v", "presence") and move.delta == 0.07
    assert move.interval == pytest.approx((0.02, 0.12))
    assert found.loss_lower == pytest.approx(0.099)  # the last window's loss, relative to the constant-LR run's
    result["rows"][1] = row("ti2v", "worse", -0.05)
    found = ship.cooldown_finding(result)
    assert not found.helps and found.loss_lower is None
    assert [(m.task, m.delta) for m in found.comparison.worse] == [("ti2v", -0.05)]
    # nothing distinguishable: the largest moves by size, with their intervals (PSNR left out: its own scale)
    result["rows"] = [row("t2v", "same", 0.03), row("ti2v", "same", -0.06),
                      _row("ti2v", "cool", "same", 1.5, key="keyframe_psnr")]
    found = ship.cooldown_finding(result)
    assert not found.helps and found.comparison.same == 3
    assert [(m.task, m.delta) for m in found.comparison.largest] == [("ti2v", -0.06), ("t2v", 0.03)]
    assert found.comparison.largest[0].interval == pytest.approx((-0.11, -0.01))
    assert ship.cooldown_finding(None) is None


def test_the_renorm_finding_compares_every_setting_with_the_first(ship):
    def row(task, verdicts):
        return {"task": task, "measure": "m", "key": "presence",
                "versus_first": {k: {"verdict": v, "delta": d} for k, (v, d) in verdicts.items()}}

    result = {"reports": {"full": {}, "none": {}, "auto": {}},
              "rows": [row("ti2v", {"none": ("better", 0.05), "auto": ("better", 0.05)}),
                       row("t2v", {"none": ("worse", -0.1), "auto": ("same", 0.0)})]}
    found = ship.renorm_finding(result)
    assert found.base == "full" and [c.label for c in found.settings] == ["none", "auto"]
    none, auto = found.settings
    assert (len(none.better), len(none.worse), none.same) == (1, 1, 0)
    assert (len(auto.better), len(auto.worse), auto.same) == (1, 0, 1)
    assert [(m.task, m.delta, m.interval) for m in none.worse] == [("t2v", -0.1, None)]
    assert [m.task for m in none.largest] == ["t2v", "ti2v"]
    assert ship.renorm_finding(None) is None


def test_the_targets_table_rows_have_intervals_and_the_fresh_cases(ship):
    def report(prefix, presence):
        cases = [{"id": f"{prefix}{i}", "task": "t2v", "scores": {"presence": p}} for i, p in enumerate(presence)]
        return {"by_task": {"t2v": {"presence": sum(presence) / len(presence)}}, "cases": cases}

    reports = {"standard": report("s", [0.0, 1.0] * 20)}
    rows = {(r.task, r.key): r for r in ship.target_rows(reports, None)}
    presence = rows["t2v", "presence"]
    low, high = presence.interval
    assert low < 0.5 < high and high - low < 0.5  # the interval of 40 cases scoring 0 or 1, around their mean
    assert presence.value == 0.5 and presence.met is False and presence.others == {} and presence.ceiling is None
    assert rows["t2v", "motion_direction"].value is None and rows["t2v", "motion_direction"].met is None
    reports["fresh"] = report("f", [1.0] * 40)
    reports["ood"] = report("o", [0.0] * 20)  # the gap, beside the fresh cases
    presence = {(r.task, r.key): r for r in ship.target_rows(reports, {"t2v": {"presence": 0.9}})}["t2v", "presence"]
    assert list(presence.others) == ["fresh", "ood"]  # the columns' order
    assert presence.others["fresh"] == (1.0, pytest.approx((1.0, 1.0)))
    assert presence.others["ood"] == (0.0, pytest.approx((0.0, 0.0)))
    assert presence.ceiling == 0.9


def test_a_fine_tune_ships_on_the_stages_of_the_shipped_card(ship, tmp_path):
    # a card alone (a folder shipped before training.json) gives its stages back, wall times and losses included
    root = tmp_path / "legacy"
    root.mkdir()
    (root / "README.md").write_text((Path(__file__).parents[1] / "checkpoints" / "anyframe-world-s" / "README.md").read_text())
    stages, ae_line = ship.base_stages(root)
    assert [s["stage"] for s in stages][:3] == ["autoencoder", "T2I", "multitask video"]
    assert all(s["steps"] > 0 and s["wall_s"] > 0 and s["command"].startswith("anyframe ") for s in stages)
    assert [s["video"] for s in stages][:3] == [False, False, True]
    assert ae_line.startswith("Autoencoder reconstruction PSNR")
    # a fine-tune counts its steps on from the base's, and the card says what it is
    run = _run(tmp_path / "ft", [{"step": 100, "loss": 0.2, "steps_per_s": 1.0, "loss/t2v": 0.3},
                                 {"step": 200, "loss": 0.1, "steps_per_s": 0.5, "loss/t2v": 0.2}], {"seed": 1})
    ft = ship.finetune_stage(run, stages[-1]["steps"], "anyframe train --config configs/world-s-refiner.yaml")
    assert ft["steps"] == stages[-1]["steps"] + 200 and ft["finetune_steps"] == 200 and ft["wall_s"] == 300.0
    assert ft["recipe"] == "configs/world-s-refiner.yaml" and ft["seed"] == 1
    assert ft["stage"] == f"fine-tune from step {stages[-1]['steps']:,}"
    assert ship.weights_finding([*stages, ft]) == ship.FineTuneWeights(stages[-1]["steps"], 200, "configs/world-s-refiner.yaml")
    cooled = dict(stages[-1], stage="cooldown from step 30,000", decay_steps=1500)
    assert ship.weights_finding([*stages[:-1], cooled]) == ship.CooldownWeights(1500)
    assert ship.weights_finding(stages[:3]) is None
    # a card from its own training.json reads back the same
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "training.json").write_text(json.dumps({"stages": [*stages, ft], "autoencoder_line": ae_line}))
    assert ship.base_stages(tmp_path / "shipped") == ([*stages, ft], ae_line)
    with pytest.raises(SystemExit, match="neither training.json nor a model card"):
        ship.base_stages(tmp_path / "ft")


def test_the_binding_finding_keeps_the_models_margins(ship):
    interval = {"paired": True, "cases": 60, "low": 0.2, "high": 0.45}
    binding = {"rows": [
        {"kind": "t2v-colour", "model": "truth (the renders)", "margin": 0.68, "margin_interval": None, "twin_difference": 1.0},
        {"kind": "t2v-colour", "model": "ship", "margin": 0.017, "margin_interval": None, "twin_difference": 0.12},
        {"kind": "t2v-colour", "model": "refiner", "margin": 0.328, "margin_interval": interval, "twin_difference": 0.93},
        {"kind": "t2v-motion", "model": "ship", "margin": -0.03, "margin_interval": None, "twin_difference": 0.06}]}
    found = ship.binding_finding(binding)
    assert [kind for kind, _ in found.kinds] == ["t2v-colour", "t2v-motion"]
    colour = dict(found.kinds)["t2v-colour"]
    assert colour == (ship.BindingMargin("ship", 0.017, None, 0.12), ship.BindingMargin("refiner", 0.328, (0.2, 0.45), 0.93))
    assert ship.binding_finding(None) is None


def test_the_motion_content_and_steps_findings(ship):
    motion = {"n": 40, "objects": 1, "rows": [
        {"task": "t2v", "model": "m", "angle_median": 30.2, "within_45": 0.56},
        {"task": "ti2v", "model": "m", "angle_median": 11.0, "within_45": 0.88},
        {"task": "t2v", "model": "autoencoder ceiling", "angle_median": 1.0, "within_45": 1.0}],
        "reverse": {"m": {"true prompt": {"follows the prompt": 1.0},
                          "reversed prompt": {"follows the prompt": 0.44, "follows the image": 0.12, "neither": 0.44}}}}
    found = ship.direction_finding(motion)
    assert (found.t2v_angle, found.t2v_within_45, found.ti2v_angle, found.ti2v_within_45) == (30.2, 0.56, 11.0, 0.88)
    assert found.learned and found.reverse == ship.ReverseFinding(1.0, 0.44, 0.12, 0.44) and not found.reverse.image_wins
    motion["rows"][0]["within_45"] = 0.39
    del motion["reverse"]
    found = ship.direction_finding(motion)
    assert not found.learned and found.reverse is None
    assert ship.direction_finding({"rows": motion["rows"][:1]}) is None and ship.direction_finding(None) is None
    content = {"n": 20, "rows": [
        {"model": "m", "share": {"wrong shape (alone or not)": 0.05, "no track": 0.0}, "tracks_per_object": 1.1},
        {"model": "m", "share": {"wrong shape (alone or not)": 0.18, "wrong colour (alone or not)": 0.1}, "tracks_per_object": 1.6},
        {"model": "autoencoder ceiling", "share": {}, "tracks_per_object": 1.0}]}
    assert ship.content_finding(content) == ship.ContentFinding(20, (0.05, 0.18), (0, 0.1), (0.0, 0), (1.1, 1.6))
    trend = {"t2v/presence": {"verdict": "reachable", "reach_step": 340_000},
             "t2v/motion_direction": {"verdict": "flat", "reach_step": None},
             "ti2v/identity_persistence": {"verdict": "far", "reach_step": None},
             "ti2v/keyframe_psnr": {"verdict": "met", "reach_step": None}}
    found = ship.steps_finding({"trend": trend}, 34_000)
    assert found.fitted and found.reach == (("t2v presence", 10.0),)
    assert found.stuck == (("t2v motion direction", True), ("ti2v identity persistence", False))
    assert ship.steps_finding(None, 34_000) == ship.StepsFinding(fitted=False)


def test_the_card_puts_the_findings_numbers_in_words(ship, tmp_path):
    """The one check on the prose itself: a card rendered from every kind of finding shows their numbers."""
    stages = [dict(stage="T2I", recipe="a.yaml", command="anyframe train", seed=0, steps=1500, wall_s=60.0, loss=0.4, video=False),
              dict(stage="multitask video", recipe="b.yaml", command="anyframe train", seed=0, steps=31500, wall_s=600.0,
                   loss=0.2, video=True),
              dict(stage="fine-tune from step 31,500", recipe="c.yaml", command="anyframe train", seed=1, steps=34000,
                   wall_s=300.0, loss=0.1, video=True, finetune_steps=2500)]
    cases = [{"id": f"s{i}", "task": "t2v", "scores": {"presence": float(i % 2)}} for i in range(40)]
    reports = {"standard": {"by_task": {"t2v": {"presence": 0.5}}, "metrics": {"presence": 0.5}, "cases": cases}}
    sweep = {"n": 40, "task": "t2v", "step": 27500, "rows": [
        {"setting": "default", "metrics": {"presence": 0.40}}, {"setting": "guidance 12", "metrics": {"presence": 0.48}}]}
    check = {"reports": {"7.5": {}, "12": {}}, "rows": [_row("t2v", "12", "worse", -0.04, (-0.07, -0.01))]}
    cool = {"reports": {"constant": {}, "cool": {}}, "rows": [_row("t2v", "cool", "better", 0.07, (0.02, 0.12))]}
    renorm = {"reports": {"full": {}, "none": {}}, "rows": [_row("t2v", "none", "same", -0.102, (-0.202, 0.01))]}
    binding = {"rows": [{"kind": "t2v-colour", "model": "ship", "margin": 0.017,
                         "margin_interval": {"low": -0.09, "high": 0.124}, "twin_difference": 0.12}]}
    text = ship.card("m", stages, reports, 31.0, "cpu", ceiling={"t2v": {"presence": 0.915, "color_binding": 0.886,
                                                                         "motion_direction": 0.993}},
                     sweep=sweep, check=check, cooled=(cool, {"rows": [{"relative": -0.099}]}), renorm=renorm,
                     binding=binding)
    for number in ("2,500", "31,500", "0.91", "0.89", "0.99", "27,500", "+0.080",
                   "+0.070 [+0.020, +0.120]", "10 %", "-0.102 [-0.202, +0.010]", "+0.017 [-0.090, +0.124]", "0.12×",
                   "0.500 ✗"):
        assert number in text, number
