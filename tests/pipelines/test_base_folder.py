"""Extra model folders that reuse a base folder's autoencoder, text encoder and tokenizer (base_model.json)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from anyframe.errors import AnyframeInputError
from anyframe.pipelines import AnyFramePipeline, build_world_pipeline
from anyframe.pipelines.base_folder import BASE_FILE, write_with_base
from anyframe.pipelines.loading import load_pipeline


@pytest.fixture()
def base_and_tuned(tmp_path):
    base = build_world_pipeline("tiny", seed=0)
    base.save_pretrained(tmp_path / "models" / "base")
    tuned = AnyFramePipeline.from_pretrained(tmp_path / "models" / "base")
    with torch.no_grad():  # a "fine-tune": the transformer moves, the encoders stay the base's
        for p in tuned.transformer.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return tmp_path / "models" / "base", tuned


def _frames(pipe, seed=0):
    return pipe("a red circle moves left", num_frames=8, height=16, width=16, num_inference_steps=3, seed=seed,
                output_type="np").frames


def test_a_folder_with_a_base_loads_the_base_encoders_and_generates_as_the_full_model(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    out = write_with_base(tuned, tmp_path / "models" / "extra", base)
    assert not any((out / n).exists() for n in ("vae", "text_encoder", "tokenizer"))
    assert json.loads((out / BASE_FILE).read_text()) == {"base": "../base", "components": ["vae", "text_encoder",
                                                                                         "tokenizer"]}
    weights = next((out / "transformer").glob("*.safetensors"))
    from safetensors.torch import load_file
    assert {t.dtype for t in load_file(str(weights)).values() if t.is_floating_point()} == {torch.bfloat16}
    loaded = load_pipeline(out, dtype="float32")
    assert loaded.transformer.dtype == torch.float32 and loaded.vae.dtype == torch.float32
    for name in ("vae", "text_encoder"):
        a, b = getattr(loaded, name).state_dict(), AnyFramePipeline.from_pretrained(base).components[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    # the same video as the full-precision fine-tune, up to its weights' bf16 rounding
    reference = tuned.to(torch.float32)
    for p in reference.transformer.parameters():
        p.data = p.data.to(torch.bfloat16).float()
    assert np.allclose(_frames(loaded), _frames(reference), atol=1e-4)
    # moved together, the pair still loads (the base is named relative to the folder)
    shutil.move(tmp_path / "models", tmp_path / "elsewhere")
    assert AnyFramePipeline.from_pretrained(tmp_path / "elsewhere" / "extra").vae is not None


def test_a_missing_or_bad_base_is_one_clear_error(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    out = write_with_base(tuned, tmp_path / "models" / "extra", base)
    lone = tmp_path / "lone"
    shutil.copytree(out, lone)
    with pytest.raises(AnyframeInputError, match="base model ../base is not there"):
        AnyFramePipeline.from_pretrained(lone)
    (lone / BASE_FILE).write_text('{"base": 3}')
    with pytest.raises(AnyframeInputError, match="want"):
        AnyFramePipeline.from_pretrained(lone)
    (lone / BASE_FILE).write_text("{not json")
    with pytest.raises(AnyframeInputError, match=BASE_FILE):
        AnyFramePipeline.from_pretrained(lone)
    with pytest.raises(AnyframeInputError, match="itself based"):
        write_with_base(tuned, tmp_path / "second", out)


def test_a_model_whose_encoders_differ_from_the_base_cannot_share_them(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    with torch.no_grad():
        next(tuned.vae.parameters()).add_(1.0)
    with pytest.raises(AnyframeInputError, match="vae is not the base's"):
        write_with_base(tuned, tmp_path / "extra", base)
    assert not (tmp_path / "extra").exists()


def test_the_cli_writes_a_slim_folder_and_finds_shipped_models_by_name(base_and_tuned, tmp_path, monkeypatch, capsys):
    from anyframe import cli

    def run(args) -> int:
        with pytest.raises(SystemExit) as done:
            cli.main(args)
        return done.value.code

    base, tuned = base_and_tuned
    tuned.save_pretrained(tmp_path / "tuned")
    assert run(["model", "slim", "--model", str(tmp_path / "tuned"), "--base", str(base),
                     "--out", str(base.parent / "extra")]) == 0
    assert "shares vae, text_encoder and tokenizer" in capsys.readouterr().out
    assert run(["model", "slim", "--model", str(tmp_path / "tuned"), "--base", str(base),
                "--out", str(base.parent / "extra")]) == 2  # exists: refused without --force
    monkeypatch.setattr(cli, "default_model_dir", lambda: base)
    assert [p.name for p in cli.shipped_models()] == ["base", "extra"]
    assert cli.model_arg(cli.Path("extra")) == base.parent / "extra"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run(["model", "info", "--model", "extra", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])
