"""Training runs recover from damage (issue 23): a half-written metrics line, a damaged newest checkpoint,
a killed run's temporaries, a run killed while exporting, a diverging loss. Every case goes through the CLI
in-process (``anyframe.cli.main``); a refused case exits 2 with one ``error:`` line and no traceback."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from anyframe.training.checkpoint import load_checkpoint
from anyframe.training.config import load_config
from anyframe.training.logging import MetricsLogger, read_metrics
from anyframe.training.recipe import train

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "configs" / "toy.yaml"
LORA_CONFIG = ROOT / "configs" / "wan-tiny-lora.yaml"
SMALL = ["data.toy.num_clips=8", "data.batch_size=2", "train.log_every=1", "train.checkpoint_every=2",
         "optim.schedule=constant", "optim.warmup_steps=0", "train.export=false"]


def _sets(*overrides: str) -> list[str]:
    return [a for o in [*SMALL, *overrides] for a in ("--set", o)]


def _train_argv(run: Path, *overrides: str, resume: str | None = "latest") -> list[str]:
    return ["train", "--config", CONFIG, "--quiet", "--output", run, *_sets(*overrides),
            *(["--resume", resume] if resume else [])]


def _cfg(*overrides: str, config: Path = CONFIG):
    return load_config(config, [*SMALL, *overrides])


def _ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:08d}"


def _strict_jsonl(path: Path) -> list[dict]:
    """Every line parses as strict JSON (no NaN/Infinity) and is an object."""
    def refuse(name):
        raise ValueError(f"{name} in {path}")

    text = path.read_text()
    assert text.endswith("\n")
    records = [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    assert all(isinstance(r, dict) for r in records)
    return records


def _ours(recorded) -> list[str]:
    """The messages of the UserWarnings anyframe itself raised."""
    return [str(w.message) for w in recorded if issubclass(w.category, UserWarning) and "anyframe" in w.filename]


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run straight to step 6, and one stopped at step 4 (checkpoints 2 and 4) to damage and resume."""
    root = tmp_path_factory.mktemp("runs")
    train(_cfg("train.steps=6"), output_dir=str(root / "straight"), progress=False)
    train(_cfg("train.steps=6"), output_dir=str(root / "stopped"), progress=False, stop_after=4)
    return root


def _copy_stopped(runs: Path, cli) -> Path:
    run = cli.cwd / "run"
    shutil.copytree(runs / "stopped", run)
    return run


# ------------------------------------------------------------------------------------------ metrics


def test_a_half_written_metrics_line_is_skipped_and_the_resumed_file_is_valid(runs, cli):
    run = _copy_stopped(runs, cli)
    line = len((run / "metrics.jsonl").read_text().splitlines()) + 1
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 0.9')  # killed mid-write: no closing brace, no newline
    with pytest.warns(UserWarning, match=rf"metrics\.jsonl, line {line}: not a complete JSON record"):
        outcome = cli(_train_argv(run, "train.steps=6"))
    assert outcome.code == 0, outcome.err
    records = _strict_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    straight = [r["loss"] for r in read_metrics(runs / "straight") if "loss" in r]
    assert [r["loss"] for r in records if "loss" in r] == straight  # the resume is still exact


def test_read_metrics_skips_a_damaged_line_with_a_warning(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n{"step": 3, "loss": 0.5}\n')
    with pytest.warns(UserWarning, match=r"metrics\.jsonl, line 2"):
        assert [r["step"] for r in read_metrics(tmp_path)] == [1, 3]


def test_non_finite_numbers_are_written_as_null(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": NaN}\n')  # as older versions wrote it
    logger = MetricsLogger(tmp_path, start=1, progress=False)  # a resume rewrites the old line as valid JSON
    logger.log({"step": 2, "loss": 0.5, "grad_norm": float("nan"), "x": [float("inf"), 1.0], "ok": True})
    logger.close()
    records = _strict_jsonl(tmp_path / "metrics.jsonl")
    assert records == [{"step": 1, "loss": None}, {"step": 2, "loss": 0.5, "grad_norm": None, "x": [None, 1.0], "ok": True}]


# -------------------------------------------------------------------------------------- checkpoints


def _truncate_state(path: Path) -> None:
    text = (path / "state.json").read_text()
    (path / "state.json").write_text(text[: len(text) // 2])


def _not_json(path: Path) -> None:
    (path / "state.json").write_bytes(b"\x00\xff not json")


def _missing_key(path: Path) -> None:
    state = json.loads((path / "state.json").read_text())
    del state["lr_schedule"]
    (path / "state.json").write_text(json.dumps(state))


def _no_optimizer_file(path: Path) -> None:
    (path / "optimizer.safetensors").unlink()


def _truncated_model(path: Path) -> None:
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", [_truncate_state, _not_json, _missing_key, _no_optimizer_file, _truncated_model],
                         ids=lambda f: f.__name__.strip("_"))
def test_resume_latest_falls_back_past_a_damaged_newest_checkpoint(runs, cli, damage):
    run = _copy_stopped(runs, cli)
    damage(_ckpt(run, 4))
    with pytest.warns(UserWarning, match=r"step-00000004 is damaged .*resuming from step-00000002"):
        outcome = cli(_train_argv(run, "train.steps=6"))
    assert outcome.code == 0, outcome.err
    # trained on from step 2; the damaged folder was rewritten on the way, and the curve is the same
    assert load_checkpoint(_ckpt(run, 4)).step == 4
    assert _same_weights(_ckpt(run, 6) / "model.safetensors", _ckpt(runs / "straight", 6) / "model.safetensors")


def test_no_readable_checkpoint_is_one_error_line(runs, cli):
    run = _copy_stopped(runs, cli)
    _truncate_state(_ckpt(run, 4))
    _missing_key(_ckpt(run, 2))
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        cli.refuses(_train_argv(run, "train.steps=6"), r"--resume latest: no readable checkpoint",
                    "step-00000004", "step-00000002")
    assert not _ours(recorded)  # the refusal is the one line: no fallback warning before it


def test_an_explicit_damaged_checkpoint_stays_an_error(runs, cli):
    run = _copy_stopped(runs, cli)
    _not_json(_ckpt(run, 4))
    cli.refuses(_train_argv(run, "train.steps=6", resume=str(_ckpt(run, 4))), r"--resume .*step-00000004: cannot read checkpoint")


def test_model_export_of_a_damaged_checkpoint_names_its_own_flag(runs, cli):
    run = _copy_stopped(runs, cli)
    _truncate_state(_ckpt(run, 4))
    outcome = cli.refuses(["model", "export", "--checkpoint", _ckpt(run, 4), "--out", cli.cwd / "exported"],
                          r"--checkpoint .*step-00000004: cannot read checkpoint")
    assert "--resume" not in outcome.err
    outcome = cli.refuses(["model", "export", "--checkpoint", run, "--out", cli.cwd / "exported"],
                          r"--checkpoint .*not a checkpoint folder")
    assert "--resume" not in outcome.err


# -------------------------------------------------------------------------------------- leftovers


def test_a_killed_runs_temporaries_are_removed_and_nothing_else(runs, cli):
    run = _copy_stopped(runs, cli)
    ours = [run / "checkpoints" / ".tmp-step-00000006-4242", run / "checkpoints" / ".old-step-00000004-4242",
            run / ".pipeline.ab12_x9z", run / ".pipeline.old", run / ".lora.k3j4h5g6"]
    our_files = [run / "metrics.jsonl.tmp", run / ".metrics.jsonl.q1w2e3r4.tmp", run / ".config.yaml.abcdefgh.tmp"]
    theirs = [run / "notes.tmp", run / ".pipeline.backup-copy", run / "checkpoints" / "README.tmp",
              run / "checkpoints" / ".tmp-mine"]
    for folder in ours:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
    for file in our_files + theirs[:3]:
        file.write_text("partial")
    theirs[3].mkdir()
    with pytest.warns(UserWarning, match=r"removed what an interrupted run left in .*\.tmp-step-00000006-4242") as rec:
        outcome = cli(_train_argv(run, "train.steps=6"))
    assert outcome.code == 0, outcome.err
    removed = [m for m in _ours(rec) if m.startswith("removed")]
    assert len(removed) == 1 and all(p.name in removed[0] for p in ours + our_files), removed
    assert not any(p.exists() for p in ours + our_files)
    assert all(p.exists() for p in theirs)


# ---------------------------------------------------------------------------- killed while exporting


def test_a_run_killed_while_exporting_finishes_its_export_on_resume(cli):
    run = cli.cwd / "run"
    assert cli(_train_argv(run, "train.steps=4", "train.export=true", resume=None)).code == 0
    exported = (run / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()
    # the kill: the export's temporary folder half-written, no pipeline/
    shutil.rmtree(run / "pipeline")
    partial = run / ".pipeline.zz9y8x7w"
    (partial / "transformer").mkdir(parents=True)
    (partial / "transformer" / "config.json").write_text("{")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        outcome = cli(_train_argv(run, "train.steps=4", "train.export=true"))
    assert outcome.code == 0, outcome.err
    messages = _ours(rec)
    assert len(messages) == 2, messages
    assert "removed what an interrupted run left" in messages[0] and ".pipeline.zz9y8x7w" in messages[0]
    assert "the run had finished training" in messages[1] and "finishing its export" in messages[1]
    assert not partial.exists()
    assert (run / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == exported
    assert "pipeline" in outcome.out
    records = _strict_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert sum("ranks_in_sync" in r for r in records) == 1  # not logged twice
    # with the export written there is nothing left to do, and the error says why
    cli.refuses(_train_argv(run, "train.steps=4", "train.export=true"),
                r"nothing to do: the run finished training at step 4 \(train\.steps\) and its export .*pipeline is written")


def test_an_extended_run_killed_while_exporting_replaces_its_older_export(cli, monkeypatch):
    """The export of an earlier, shorter run in the same folder is not this run's: the resume writes it anew.
    The export is atomic: one that fails midway leaves the previous folder whole and no temporary."""
    from diffusers import DiffusionPipeline

    run = cli.cwd / "run"
    assert cli(_train_argv(run, "train.steps=4", "train.export=true", resume=None)).code == 0
    before = (run / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()
    real = DiffusionPipeline.save_pretrained  # what AnyFramePipeline.save_pretrained calls into its temporary

    def dying(self, path, *args, **kwargs):
        (Path(path) / "model_index.json").write_text("{")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DiffusionPipeline, "save_pretrained", dying)
    with pytest.raises(OSError, match="No space"):  # (a constant schedule: extending the run is no recipe change)
        cli(_train_argv(run, "train.steps=6", "train.export=true"))
    monkeypatch.setattr(DiffusionPipeline, "save_pretrained", real)
    assert (run / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.startswith(".pipeline")]
    with pytest.warns(UserWarning, match="finishing its export"):
        assert cli(_train_argv(run, "train.steps=6", "train.export=true")).code == 0
    after = load_file(run / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors")
    ema = load_checkpoint(_ckpt(run, 6)).ema["shadow_params"]
    from anyframe.models.dit import STIVTransformer

    names = [n for n, _ in STIVTransformer.from_pretrained(run / "pipeline" / "transformer").named_parameters()]
    assert all(torch.equal(after[n], e) for n, e in zip(names, ema))  # the step-6 EMA weights
    assert (run / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() != before


def test_a_lora_run_killed_while_exporting_finishes_its_adapter(tmp_path):
    common = ["data.world.num_clips=8", "train.log_every=1", "train.steps=2", "train.checkpoint_every=2",
              "train.export=true"]
    run = tmp_path / "lora-run"
    train(load_config(LORA_CONFIG, common), output_dir=str(run), progress=False)
    adapter = run / "lora" / "pytorch_lora_weights.safetensors"
    exported = adapter.read_bytes()
    shutil.rmtree(run / "lora")
    with pytest.warns(UserWarning, match="finishing its export"):
        result = train(load_config(LORA_CONFIG, common), resume="latest", output_dir=str(run), progress=False)
    assert result.pipeline_dir == run / "lora" and adapter.read_bytes() == exported


# ------------------------------------------------------------------------------------------ divergence


def test_a_diverging_run_stops_at_the_first_non_finite_loss(cli):
    run = cli.cwd / "run"
    # lr 1e30: step 1 (loss computed before the update) is finite, the update blows the weights up
    outcome = cli(_train_argv(run, "train.steps=6", "train.checkpoint_every=1", "train.export=true", "optim.lr=1e30",
                              "optim.max_grad_norm=1e30", resume=None))
    assert outcome.code == 2 and "Traceback" not in outcome.err
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: training stopped at step 2: the loss is nan "
                                                   "(lower optim.lr, or check the data); the last good checkpoint is "), lines
    assert lines[0].endswith(str(_ckpt(run, 1)))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001"]
    assert all(torch.isfinite(t).all() for t in load_checkpoint(_ckpt(run, 1)).model.values())
    assert not (run / "pipeline").exists()
    assert [r["step"] for r in _strict_jsonl(run / "metrics.jsonl")] == [1]  # the NaN step is not logged


def test_a_nan_at_step_k_is_never_checkpointed_or_exported(cli, monkeypatch):
    from anyframe.training import recipe

    real = recipe.train_step

    def nan_at_3(run):
        terms = real(run)
        return {**terms, "loss": math.nan} if run.step == 3 else terms

    monkeypatch.setattr(recipe, "train_step", nan_at_3)
    run = cli.cwd / "run"
    outcome = cli(_train_argv(run, "train.steps=4", "train.export=true", resume=None))
    assert outcome.code == 2 and "Traceback" not in outcome.err
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "training stopped at step 3: the loss is nan" in lines[0], lines
    assert lines[0].endswith(f"the last good checkpoint is {_ckpt(run, 2)}")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002"]
    assert not (run / "pipeline").exists()
    monkeypatch.setattr(recipe, "train_step", real)  # the data was fine after all: the run resumes from step 2
    assert cli(_train_argv(run, "train.steps=4", "train.export=true")).code == 0
    assert (run / "pipeline").is_dir()
