"""The evaluation harness and `anyframe eval`: truth scores ~1, random clips score low, reports are complete."""

import json

import numpy as np
import pytest
import torch

from anyframe.cli import main
from anyframe.errors import AnyframeInputError
from anyframe.evaluation.harness import AutoencoderModel, Conditioning, PipelineModel, RandomModel, TruthModel
from anyframe.evaluation.report import UNIT_KEYS, evaluate
from anyframe.io import to_uint8
from anyframe.world.suite import builtin_suite, sample_suite

# Scores on a 0..1 scale that a random clip must fail (dynamic_degree / flicker / style can be high by chance)
CONTENT = ("presence", "color_binding", "count", "motion_direction", "identity_persistence", "keyframe_ssim")


@pytest.fixture(scope="module")
def smoke_reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    reports = evaluate([TruthModel(), RandomModel()], builtin_suite("smoke"), out)
    return out, reports


def test_truth_is_perfect_and_random_is_not(smoke_reports):
    _, (truth, random) = smoke_reports
    for key in UNIT_KEYS:
        value = truth["metrics"].get(key)
        if value is not None:
            assert value >= 0.99, (key, value)
    assert truth["metrics"]["keyframe_psnr"] >= 40
    for key in CONTENT:
        assert random["metrics"][key] <= 0.5, (key, random["metrics"][key])
    assert random["metrics"]["keyframe_psnr"] < 15


def test_reports_are_complete(smoke_reports):
    out, _reports = smoke_reports
    for name in ("truth", "random"):
        folder = out / name
        report = json.loads((folder / "report.json").read_text())
        assert set(report) >= {"metrics", "by_task", "cases"}
        assert len(report["cases"]) == 16 and set(report["by_task"]) == {c.task for c in builtin_suite("smoke")}
        md = (folder / "report.md").read_text()
        assert "![metrics](metrics.png)" in md and (folder / "metrics.png").is_file() and (folder / "tasks.png").is_file()
        assert report["worst"] and all((folder / "worst" / w["filmstrip"]).is_file() for w in report["worst"])
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["models"] == ["truth", "random"]
    assert "truth" in (out / "report.md").read_text()


def test_a_pipeline_runs_every_task_and_edits_are_unsupported(tmp_path):
    from anyframe.pipelines import build_world_pipeline

    build_world_pipeline("tiny", seed=0).save_pretrained(tmp_path / "m")
    cases = sample_suite(8, seed=11)  # one case per task
    [report] = evaluate([PipelineModel(str(tmp_path / "m"), steps=1)], cases, tmp_path / "r")
    assert set(report["unsupported"]) == {c.id for c in cases if c.task == "edit"}
    scored = [c for c in report["cases"] if c["scores"]]
    assert len(scored) == 7 and all("presence" in c["scores"] for c in scored)

    # a setting not given is the model's own (what `anyframe generate` samples with); one given wins
    model = PipelineModel(str(tmp_path / "m"))
    defaults = model.pipe.sampling_defaults
    assert (model.steps, model.guidance, model.guidance_mode, model.renorm) == (
        defaults["num_inference_steps"], defaults["guidance_scale"], defaults["guidance_mode"], defaults["renorm"])
    model = PipelineModel(str(tmp_path / "m"), steps=3, guidance=2.0, guidance_mode="cfg", renorm=None)
    assert (model.steps, model.guidance, model.guidance_mode, model.renorm) == (3, 2.0, "cfg", None)
    assert model.pipe.transformer.dtype == torch.float32

    # --dtype bfloat16: the backbone runs in bf16, the VAE stays float32, and the report names the dtype
    model = PipelineModel(str(tmp_path / "m"), steps=1, dtype="bfloat16")
    assert model.pipe.transformer.dtype == torch.bfloat16 and model.pipe.vae.dtype == torch.float32
    [report] = evaluate([model], [c for c in cases if c.task == "ti2v"], tmp_path / "r16")
    assert report["model"].endswith("(bfloat16)") and report["cases"][0]["scores"]


def test_the_autoencoder_model_is_the_true_clip_through_the_autoencoder(tmp_path):
    import torch

    from anyframe.models.autoencoder import decode_video, encode_video
    from anyframe.pipelines import build_world_pipeline

    pipe = build_world_pipeline("tiny", seed=0)
    pipe.save_pretrained(tmp_path / "m")
    pipe.vae.save_pretrained(tmp_path / "vae")
    case = sample_suite(1, seed=5, tasks=("t2v",))[0]
    cond = Conditioning.of(case)
    video = torch.from_numpy(cond.clip).float().permute(3, 0, 1, 2)[None] / 127.5 - 1
    with torch.no_grad():
        expected = decode_video(pipe.vae, encode_video(pipe.vae, video)).clamp(-1, 1)
    expected = to_uint8((expected[0].permute(1, 2, 3, 0).numpy() + 1) / 2)
    for folder in ("m", "vae"):  # a pipeline folder (its vae/) or an autoencoder folder
        frames = AutoencoderModel(str(tmp_path / folder)).generate(case, cond).frames
        assert frames.shape == cond.clip.shape and np.array_equal(frames, expected)
    assert not np.array_equal(frames, cond.clip)  # an untrained autoencoder is no identity
    with pytest.raises(AnyframeInputError, match="neither a pipeline folder nor an autoencoder folder"):
        AutoencoderModel(str(tmp_path / "nope"))
    from anyframe.models.wan import tiny_wan_components

    tiny_wan_components()["vae"].save_pretrained(tmp_path / "wan-vae")  # causal: 16 frames is no 1 + 4k
    with pytest.raises(AnyframeInputError, match="1 \\+ 4k frames, the case has 16"):
        AutoencoderModel(str(tmp_path / "wan-vae")).generate(case, cond)


def test_eval_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "--model", "truth", "--suite", "smoke", "--n", "4", "--out", str(tmp_path / "r")])
    assert (info.value.code or 0) == 0
    assert len(json.loads((tmp_path / "r" / "report.json").read_text())["cases"]) == 4
    for args, fragment in [(["--model", str(tmp_path / "nope")], "not a pipeline folder"),
                           (["--model", f"autoencoder:{tmp_path / 'nope'}"], "neither a pipeline folder"),
                           (["--model", "truth", "--suite", "galaxy"], "suite not found"),
                           (["--model", "truth", "--n", "0"], "--n"),
                           (["--model", "truth", "--against", "vibes"], "--against"),
                           (["--model", "truth", "--renorm", "half"], "--renorm"),
                           (["--model", "truth", "--guidance-mode", "loud"], "--guidance-mode"),
                           (["--model", "truth", "--dtype", "float16"], "--dtype")]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["eval", *args, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert info.value.code == 2 and fragment in err and err.count("\n") == 1


@pytest.mark.slow  # (CI's second step: ./scripts/test.sh -m slow)
@pytest.mark.parametrize("suite", ["standard", "ood"])
def test_truth_scores_at_least_099_on_the_full_builtin_suites(suite):
    """Every key's mean over the whole built-in suite (320 / 240 cases) is ≥ 0.99 on the true renders (the
    benchmark benchmarks/oracle_calibration.py also breaks it down by task and split)."""
    from anyframe.evaluation.harness import Conditioning
    from anyframe.evaluation.report import run_model

    cases = builtin_suite(suite)
    report = run_model(TruthModel(), cases, {c.id: Conditioning.of(c) for c in cases})
    low = {k: v for k, v in report["metrics"].items() if k in UNIT_KEYS and v is not None and v < 0.99}
    assert not low, low
    assert report["metrics"]["keyframe_psnr"] >= 40


@pytest.mark.slow  # (CI's second step: ./scripts/test.sh -m slow)
def test_truth_scores_high_against_the_prompt_alone(tmp_path):
    cases = [c for c in builtin_suite("smoke") if c.task not in ("edit", "unpaired")]
    truth, random = evaluate([TruthModel(), RandomModel()], cases, tmp_path, against="prompt")
    assert truth["scored_against"] == "prompt"
    for key in ("presence", "color_binding", "count", "style"):
        assert truth["metrics"][key] >= 0.95 and random["metrics"][key] <= 0.5, key
    assert "identity_persistence" not in truth["metrics"]  # a prompt alone cannot check identity


def test_eval_cli_passes_the_sampling_settings_on(tmp_path, monkeypatch):
    from anyframe.evaluation import harness
    from anyframe.pipelines import build_world_pipeline

    build_world_pipeline("tiny", seed=0).save_pretrained(tmp_path / "m")
    seen = []

    def fake_load_model(spec, **kwargs):
        seen.append(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(harness, "load_model", fake_load_model)
    for args in ([], ["--renorm", "none", "--guidance-mode", "cfg", "--guidance", "3", "--steps", "2"], ["--renorm", "clamp"],
                 ["--dtype", "bfloat16"]):
        with pytest.raises(SystemExit):
            main(["eval", "--model", str(tmp_path / "m"), "--suite", "smoke", "--out", str(tmp_path / "r"), *args])
    # nothing given: the model's own settings ("default"); none → no renormalisation; weights in float32 on
    # every host (not generate's auto), so a report reproduces anywhere
    assert [(k["steps"], k["guidance"], k["guidance_mode"], k["renorm"], k["dtype"]) for k in seen] == [
        (None, None, None, "default", "float32"), (2, 3.0, "cfg", None, "float32"), (None, None, None, "clamp", "float32"),
        (None, None, None, "default", "bfloat16")]


def test_a_narrator_places_the_unpaired_image(tmp_path):
    from anyframe.narrators.base import Narrative
    from anyframe.pipelines import build_world_pipeline

    class Scripted:
        name = "scripted"

        def __init__(self):
            self.calls = 0

        def narrate(self, image, prompt, num_frames):
            self.calls += 1
            return Narrative(position=num_frames - 1, descriptions=["x"] * num_frames, backend="scripted")

    build_world_pipeline("tiny", seed=0).save_pretrained(tmp_path / "m")
    [case] = [c for c in sample_suite(8, seed=11) if c.task == "unpaired"]
    narrator = Scripted()
    placed_at = []
    for with_narrator in (narrator, None):
        model = PipelineModel(str(tmp_path / "m"), steps=1, narrator=with_narrator)
        generate = model.pipe.generate

        def spy(request, *args, _generate=generate, **kwargs):
            placed_at.append([k.frame_index for k in request.keyframes])
            return _generate(request, *args, **kwargs)

        model.pipe.generate = spy
        assert model.generate(case, Conditioning.of(case)).frames is not None
    # the image went to the narrator's frame (the last); without a narrator to frame 0
    t = case.scene_program().frames
    assert narrator.calls == 1 and placed_at == [[t - 1], [0]]


def test_eval_with_the_world_clip_adds_a_clip_score_that_ranks_truth_above_random(tmp_path, capsys):
    """``eval --clip``: every case with a prompt (not an edit) gets ``clip_score``; the shipped world CLIP scores
    the true renders above random clips of the same cases (the calibration rows)."""
    from pathlib import Path

    clip = Path(__file__).parents[2] / "checkpoints" / "anyframe-world-clip"
    with pytest.raises(SystemExit) as info:
        main(["eval", "--model", "truth", "--suite", "smoke", "--n", "12", "--clip", str(clip),
              "--out", str(tmp_path / "r")])
    assert (info.value.code or 0) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    scored = [c for c in report["cases"] if "clip_score" in c["scores"]]
    assert scored and all(c["task"] != "edit" and c["prompt"].strip() for c in scored)
    assert all(-1 <= c["scores"]["clip_score"] <= 1 for c in scored)
    random = next(r for r in report["calibration"] if r["model"] == "random")
    assert report["metrics"]["clip_score"] > random["metrics"]["clip_score"] + 0.1
    assert "clip_score" in (tmp_path / "r" / "report.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["eval", "--model", "truth", "--clip", str(tmp_path), "--out", str(tmp_path / "x")])
    assert info.value.code == 2 and "not a CLIP folder" in capsys.readouterr().err
