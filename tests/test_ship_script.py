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


def test_the_card_says_when_a_sweeps_gain_did_not_hold_on_the_whole_suite(ship):
    metrics = lambda p: {"presence": p, "color_binding": 0.3, "motion_direction": 0.2}  # noqa: E731
    sweep = {"n": 40, "task": "t2v", "step": 100,
             "rows": [{"setting": "default", "metrics": metrics(0.40)}, {"setting": "guidance 12", "metrics": metrics(0.48)}]}
    assert "guidance scale or step count can help" in "\n".join(ship.gap_lines(None, sweep))
    check = {"reports": {"7.5": {}, "12": {}}, "rows": [{"versus_first": {"12": {"verdict": "same"}}},
                                                        {"versus_first": {"12": {"verdict": "worse"}}}]}
    text = "\n".join(ship.gap_lines(None, sweep, check))
    assert "Nor is it the step count or guidance scale" in text and "better on 0, worse on 1" in text and "did not hold" in text
    check["rows"][0]["versus_first"]["12"]["verdict"] = "better"
    assert "guidance scale or step count can help" in "\n".join(ship.gap_lines(None, sweep, check))


def test_the_card_reads_a_sweeps_gain_by_its_interval_when_the_cases_are_kept(ship):
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)
    cases = lambda values: {"presence": {f"c{i}": float(v) for i, v in enumerate(values)}}  # noqa: E731
    row = lambda setting, values: {"setting": setting, "metrics": {"presence": float(np.mean(values))},  # noqa: E731
                                   "cases": cases(values)}
    error = rng.normal(0, 0.5, 40)
    noisy = base + 0.08 + error - error.mean()  # a mean gain above the old 0.05 rule, case by case all over the place
    sweep = {"n": 40, "task": "t2v", "step": 100, "rows": [row("default", base), row("guidance 12", noisy)]}
    text = "\n".join(ship.gap_lines(None, sweep))
    assert "Nor is it the step count or guidance scale" in text and "95 % intervals" in text
    sweep["rows"][1] = row("guidance 12", base + 0.08)  # the same gain on every case
    text = "\n".join(ship.gap_lines(None, sweep))
    assert "guidance scale or step count can help" in text and "+0.080 [+0.080, +0.080] (presence, guidance 12)" in text


def test_the_card_says_what_the_cooldown_bought(ship):
    row = lambda task, verdict, delta: {"task": task, "measure": "presence", "key": "presence", "versus_first": {  # noqa: E731
        "cool": {"verdict": verdict, "delta": delta, "interval": {"low": delta - 0.05, "high": delta + 0.05}}}}
    result = {"reports": {"constant": {}, "cool": {}}, "rows": [row("t2v", "better", 0.07), row("ti2v", "same", -0.02)]}
    loss = {"rows": [{"relative": -0.05}, {"relative": -0.099}]}
    text = "\n".join(ship.cooldown_lines(result, loss))
    assert "A cooldown helps" in text and "better on 1 targets (t2v presence +0.070 [+0.020, +0.120])" in text
    assert "worse on 0, not distinguishable on 1." in text and "10 % lower" in text
    result["rows"][1] = row("ti2v", "worse", -0.05)
    text = "\n".join(ship.cooldown_lines(result))
    assert "The cooldown" in text and "worse on 1 (ti2v presence -0.050 [-0.100, +0.000])" in text and "loss" not in text
    # nothing distinguishable: the largest moves are still shown, with their intervals
    result["rows"] = [row("t2v", "same", 0.03), row("ti2v", "same", -0.06)]
    text = "\n".join(ship.cooldown_lines(result))
    assert "The cooldown" in text and "largest moves, 95 % intervals: ti2v presence -0.060 [-0.110, -0.010], t2v" in text
    assert ship.cooldown_lines(None) == []


def test_the_card_says_what_renormalisation_does(ship):
    row = lambda task, verdicts: {"task": task, "measure": "m", "key": "presence", "versus_first": {  # noqa: E731
        k: {"verdict": v, "delta": d} for k, (v, d) in verdicts.items()}}
    result = {"reports": {"full": {}, "none": {}, "auto": {}},
              "rows": [row("ti2v", {"none": ("better", 0.05), "auto": ("better", 0.05)}),
                       row("t2v", {"none": ("worse", -0.1), "auto": ("same", 0.0)})]}
    text = "\n".join(ship.renorm_lines(result))
    assert "against full" in text
    assert "none: better on 1 (ti2v m +0.050), worse on 1 (t2v m -0.100), not distinguishable on 0;" in text
    assert "auto: better on 1 (ti2v m +0.050), worse on 0, not distinguishable on 1; largest moves" in text
    assert ship.renorm_lines(None) == []


def test_the_targets_table_has_intervals_and_the_fresh_cases(ship):
    def report(prefix, presence):
        cases = [{"id": f"{prefix}{i}", "task": "t2v", "scores": {"presence": p}} for i, p in enumerate(presence)]
        return {"by_task": {"t2v": {"presence": sum(presence) / len(presence)}}, "cases": cases}

    reports = {"standard": report("s", [0.0, 1.0] * 20)}
    rows = {line.split(" | ")[1]: line for line in ship.target_table(reports, None) if line.startswith("| t2v")}
    assert "fresh cases" not in "\n".join(ship.target_table(reports, None))
    low, high = (float(x) for x in rows["presence"].split(" | ")[4].strip("[]").split(", "))
    assert low < 0.5 < high and high - low < 0.5  # the interval of 40 cases scoring 0 or 1, around their mean
    reports["fresh"] = dict(report("f", [1.0] * 40), command="anyframe eval --suite fresh.jsonl")
    table = "\n".join(ship.target_table(reports, None))
    assert "| fresh cases |" in table and "`anyframe eval --suite fresh.jsonl`" in table
    assert "| 0.500 ✗ |" in table and "| 1.000 [1.000, 1.000] |" in table
    reports["ood"] = report("o", [0.0] * 20)  # the gap, beside the fresh cases
    table = "\n".join(ship.target_table(reports, None))
    assert "| fresh cases | `ood` suite | autoencoder ceiling |" in table and "no target there yet" in table
    assert "| 1.000 [1.000, 1.000] | 0.000 [0.000, 0.000] | — |" in table


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
    card = ship.card("m", [*stages, ft], {}, 28.0, "cpu", ae_line=ae_line)
    assert f"fine-tune from step {stages[-1]['steps']:,}" in card and "finetune_curve.png" in card
    assert "200 steps of `configs/world-s-refiner.yaml`" in card and ae_line in card
    # a card from its own training.json reads back the same
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "training.json").write_text(json.dumps({"stages": [*stages, ft], "autoencoder_line": ae_line}))
    assert ship.base_stages(tmp_path / "shipped") == ([*stages, ft], ae_line)
    with pytest.raises(SystemExit, match="neither training.json nor a model card"):
        ship.base_stages(tmp_path / "ft")


def test_the_card_reads_the_binding_swap(ship):
    interval = {"paired": True, "cases": 60, "low": 0.2, "high": 0.45}
    binding = {"rows": [
        {"kind": "t2v-colour", "model": "truth (the renders)", "margin": 0.68, "margin_interval": None, "twin_difference": 1.0},
        {"kind": "t2v-colour", "model": "ship", "margin": 0.017, "margin_interval": None, "twin_difference": 0.12},
        {"kind": "t2v-colour", "model": "refiner", "margin": 0.328, "margin_interval": interval, "twin_difference": 0.93}]}
    text = "\n".join(ship.binding_lines(binding))
    assert "truth" not in text and "ship +0.017 (clips differ 0.12×" in text and "refiner +0.328 [+0.200, +0.450]" in text
    assert ship.binding_lines(None) == []
