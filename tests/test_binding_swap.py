"""benchmarks/binding_swap.py: twins differ only in which object a word goes with; identical clips give no margin."""

import json

from anyframe.pipelines import build_world_pipeline


def test_truth_tells_twins_apart_and_identical_clips_cannot(load_script, tmp_path):
    swap = load_script("benchmarks/binding_swap.py")
    for kind in ("t2v-colour", "ti2v-motion"):
        for case, twin in swap.pair_cases(kind, 3, 7600000):
            a, b = case.conditions["prompt"], twin.conditions["prompt"]
            assert a != b and sorted(a.replace(".", " ").split()) == sorted(b.replace(".", " ").split())  # same words
            assert case.seed == twin.seed and case.conditions["keyframes"] == twin.conditions["keyframes"]

    # an untrained pipeline predicts zero velocity: both twins decode the same noise, so whatever its own
    # score, the margin is exactly zero; the renders themselves separate the twins
    build_world_pipeline("tiny", seed=0).save_pretrained(tmp_path / "m")
    assert swap.main(["--model", f"untrained={tmp_path / 'm'}", "--n", "2", "--kinds", "t2v-colour", "ti2v-motion",
                      "--out", str(tmp_path / "r")]) == 0
    rows = json.loads((tmp_path / "r" / "binding_swap.json").read_text())["rows"]
    truth = [r for r in rows if r["model"].startswith("truth")]
    untrained = [r for r in rows if r["model"] == "untrained"]
    assert len(truth) == len(untrained) == 2
    assert all(r["own"] == 1.0 and r["margin"] > 0.2 and r["twin_difference"] == 1.0 for r in truth)
    for r in untrained:
        assert r["clips"] > 0 and r["twin_difference"] == 0.0 and abs(r["margin"]) < 1e-12
    assert any(r["own"] > 0 for r in untrained)  # a score to cancel: the zero margin is not a zero score
    assert "| t2v, colours swapped | color_binding | untrained |" in (tmp_path / "r" / "binding_swap.md").read_text()


def test_bad_model_argument_is_one_line_and_exit_2(load_script, tmp_path, capsys):
    swap = load_script("benchmarks/binding_swap.py")
    assert swap.main(["--model", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LABEL=PATH" in err
    assert not (tmp_path / "r").exists()
