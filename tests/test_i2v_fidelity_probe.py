"""benchmarks/i2v_fidelity_probe.py: the denoiser's one-step estimate of frame 0 and the sampler settings."""

import json

import pytest
import torch

from anyframe.evaluation.harness import Conditioning
from anyframe.pipelines import build_world_pipeline
from anyframe.world.suite import sample_suite


@pytest.fixture(scope="module")
def probe(load_script):
    return load_script("benchmarks/i2v_fidelity_probe.py")


@pytest.fixture(scope="module")
def case():
    case = sample_suite(1, "train", seed=70_000, tasks=("ti2v",), prefix="flashi2v")[0]
    return case, Conditioning.of(case)


def test_frame_replacement_keeps_its_image_at_every_sigma_a_flashi2v_model_estimates_it(probe, case):
    replacement = build_world_pipeline("tiny", seed=0)
    out = probe.teacher_forced(replacement, *case, [0.5, 1.0])
    assert out["0.5"] == out["1"] == out["autoencoder"]  # re-imposed: the (random) autoencoder's reconstruction
    flash = build_world_pipeline("tiny", seed=0, method="flashi2v")  # φ and the Fourier embedding start at zero
    out = probe.teacher_forced(flash, *case, [0.05, 1.0])
    assert out["1"] != out["0.05"] and out["0.05"] != out["autoencoder"]  # the estimate, not the image put back


def test_the_exact_velocity_gives_back_the_autoencoders_frame_at_every_sigma(probe, case, monkeypatch):
    """The probe's noising and one-step estimate agree: a denoiser that knew the clip (v = (x − x₀)/σ, the flow's
    target ε − x₀) reproduces x₀, so every σ scores the autoencoder's reconstruction; a wrong sign or σ would not."""
    flash = build_world_pipeline("tiny", seed=0, method="flashi2v")
    x0 = probe.PipelineEncoders(flash).encode_video(probe.clip_tensor(case[1].clip)).float()
    monkeypatch.setattr(flash, "branch_velocity", lambda state: lambda x, t, branches: [(x - x0) / t.view(-1, 1, 1, 1, 1)])
    out = probe.teacher_forced(flash, *case, [0.3, 1.0])
    assert out["0.3"] == pytest.approx(out["autoencoder"], abs=0.05)
    assert out["1"] == pytest.approx(out["autoencoder"], abs=0.05)


def test_the_script_writes_its_tables(probe, tmp_path):
    folder = tmp_path / "flash"
    build_world_pipeline("tiny", seed=0, method="flashi2v").save_pretrained(folder)
    args = ["--model", f"fresh={folder}", "--n", "1", "--sigmas", "0.5", "--setting", "benchmark sampling",
            "--setting", "detail 0.5", "--out", str(tmp_path), "--name", "p", "--cache", str(tmp_path / "cache")]
    assert probe.main(args + ["--only-measure"]) == 0
    assert not (tmp_path / "p.json").exists() and len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert probe.main(args) == 0
    results = json.loads((tmp_path / "p.json").read_text())["results"]["fresh"]
    assert set(results["teacher_forced"]) == {"autoencoder", "0.5"}
    assert set(results["sampler"]) == {"benchmark sampling", "detail 0.5"}
    assert "| fresh | detail 0.5 |" in (tmp_path / "p.md").read_text()


def test_the_cache_is_read_back_for_the_same_weights_and_settings_only(probe, tmp_path, monkeypatch):
    folder = tmp_path / "flash"
    build_world_pipeline("tiny", seed=0, method="flashi2v").save_pretrained(folder)
    args = ["--model", f"m={folder}", "--n", "1", "--sigmas", "0.5", "--setting", "benchmark sampling",
            "--out", str(tmp_path), "--name", "p", "--cache", str(tmp_path / "cache")]
    assert probe.main(args) == 0
    first = (tmp_path / "p.json").read_text()

    def fail(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(probe, "teacher_forced", fail)
    assert probe.main(args) == 0  # the same weights and settings: read back, not measured
    assert json.loads((tmp_path / "p.json").read_text())["results"] == json.loads(first)["results"]
    with pytest.raises(AssertionError, match="measured again"):  # other σs: a different key
        probe.main(args[:4] + ["--sigmas", "0.3"] + args[6:])


def test_switching_off_a_flashi2v_path_changes_the_video_only_in_its_setting(probe, tmp_path):
    folder = tmp_path / "flash"
    pipe = build_world_pipeline("tiny", seed=0, method="flashi2v", method_options={"shift_init": 1.0})
    torch.manual_seed(0)
    with torch.no_grad():  # a fresh backbone's zero-initialised output layers answer every input with 0
        for p in pipe.transformer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pipe.save_pretrained(folder)
    settings = ["benchmark sampling", "without the shift", "without the Fourier path"]
    args = ["--model", f"m={folder}", "--n", "1", "--sigmas", "1", "--out", str(tmp_path), "--name", "p",
            "--cache", str(tmp_path / "cache")]
    assert probe.main(args + [a for s in settings for a in ("--setting", s)]) == 0
    first = json.loads((tmp_path / "p.json").read_text())["results"]["m"]["sampler"]
    # the shift starts at −s: without it frame 0 changes; the Fourier embedding starts at zero: no change, which
    # also says the shift, dropped by the setting before it, is back
    assert first["without the shift"]["first_frame_psnr"] != first["benchmark sampling"]["first_frame_psnr"]
    assert first["without the Fourier path"] == first["benchmark sampling"]
