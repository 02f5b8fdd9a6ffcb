"""benchmarks/flashi2v_ablation.py: FlashI2V's own layers measured with flashi2v_probe.py's measures."""

import pytest

from anyframe.evaluation.harness import Conditioning
from anyframe.pipelines import build_world_pipeline
from anyframe.world.suite import sample_suite


def test_layer_scales_of_a_flashi2v_model_and_of_one_without_its_layers(load_script, tmp_path):
    ablation = load_script("benchmarks/flashi2v_ablation.py")
    conds = [Conditioning.of(c) for c in sample_suite(2, "train", seed=70_000, tasks=("ti2v",), prefix="flashi2v")]
    build_world_pipeline("tiny", seed=0, method="flashi2v", method_options={"shift_init": 1.0}).save_pretrained(
        tmp_path / "flash")
    build_world_pipeline("tiny", seed=0).save_pretrained(tmp_path / "replacement")
    layers = ablation.layer_scales(str(tmp_path / "flash"), conds)
    assert set(layers) == {"phi_scale", "phi_corr", "phi_fit", "fourier_scale"}
    # φ(s) = −1·s at the start (zero-initialised MLP): the shift is the image latent itself, negated
    assert layers["phi_scale"] == pytest.approx(1.0, abs=1e-4) and layers["phi_corr"] == pytest.approx(-1.0, abs=1e-4)
    assert layers["fourier_scale"] == 0.0  # the Fourier embedding starts at zero
    assert ablation.layer_scales(str(tmp_path / "replacement"), conds) == {}


def test_the_script_measures_into_its_cache_and_writes_the_tables_from_it(load_script, tmp_path, monkeypatch, capsys):
    ablation = load_script("benchmarks/flashi2v_ablation.py")
    build_world_pipeline("tiny", seed=0, method="flashi2v").save_pretrained(tmp_path / "flash")
    build_world_pipeline("tiny", seed=0).save_pretrained(tmp_path / "replacement")
    args = ["flashi2v_ablation.py", "--model", f"flash={tmp_path / 'flash'}", "--model",
            f"replacement={tmp_path / 'replacement'}", "--n", "1", "--steps", "2", "--reference", "flash",
            "--out", str(tmp_path / "out" / "ablation"), "--cache", str(tmp_path / "cache")]
    monkeypatch.setattr("sys.argv", args[:3] + args[5:] + ["--only-measure"])  # one model, into the cache
    ablation.main()
    assert not (tmp_path / "out").exists() and "flash: ood_style done" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", args)
    ablation.main()
    printed = capsys.readouterr().out
    assert "flash: from" in printed and "replacement: train done" in printed  # the cached one is not measured again
    report = (tmp_path / "out" / "ablation.md").read_text()
    assert "### Differences from flash" in report and "| replacement |" in report
    assert (tmp_path / "out" / "ablation_metrics.png").is_file()
