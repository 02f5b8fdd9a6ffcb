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
    out, _ = write_with_base(tuned, tmp_path / "models" / "extra", base)
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
    out, _ = write_with_base(tuned, tmp_path / "models" / "extra", base)
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
    assert run(["model", "slim", "--model", str(tmp_path / "tuned"), "--base", str(base), "--lora-rank", "2",
                "--out", str(tmp_path / "extra-lora")]) == 0
    out = capsys.readouterr().out
    assert "shares vae, text_encoder, tokenizer and transformer" in out and "LoRA rank 2: keeps" in out
    assert run(["model", "slim", "--model", str(tmp_path / "tuned"), "--base", str(base), "--lora-rank", "0",
                "--out", str(tmp_path / "extra-0")]) == 2 and not (tmp_path / "extra-0").exists()
    monkeypatch.setattr(cli, "default_model_dir", lambda: base)
    assert [p.name for p in cli.shipped_models()] == ["base", "extra"]
    assert cli.model_arg(cli.Path("extra")) == base.parent / "extra"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run(["model", "info", "--model", "extra", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _concat_fine_tune(base_dir):
    """A fine-tune of the base that adds input channels (channel concat) and moves every weight."""
    from anyframe.conditioning import build_method

    tuned = AnyFramePipeline.from_pretrained(base_dir)
    method = build_method("channel_concat", tuned.transformer)
    tuned.transformer, tuned.conditioning = method.adapt_backbone(tuned.transformer), method
    with torch.no_grad():
        for p in tuned.transformer.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return tuned


def _concat_frames(pipe):
    from anyframe.pipelines import Keyframe

    image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    return pipe("a red circle moves left", keyframes=[Keyframe(image, 0)], num_frames=8, height=16, width=16,
                num_inference_steps=3, seed=0, output_type="latent").frames


def test_a_fine_tune_held_as_a_lora_on_the_base_transformer_generates_as_the_fine_tune(base_and_tuned, tmp_path):
    from safetensors.torch import load_file

    base, _ = base_and_tuned
    torch.manual_seed(0)
    tuned = _concat_fine_tune(base)
    full, _ = write_with_base(tuned, tmp_path / "models" / "full", base)
    exact, lora = write_with_base(tuned, tmp_path / "models" / "exact", base, lora_rank=10_000)  # every rank kept
    assert lora.kept == pytest.approx(1.0) and "patch_embed.weight" in lora.whole  # reshaped: whole
    spec = json.loads((exact / BASE_FILE).read_text())
    assert spec["components"][-1] == "transformer" and spec["lora"] == "lora" and not (exact / "transformer").exists()
    assert {t.dtype for t in load_file(str(exact / "lora" / "pytorch_lora_weights.safetensors")).values()} == {torch.bfloat16}
    a, b = load_pipeline(exact, dtype="float32"), load_pipeline(full, dtype="float32")
    assert a.conditioning.name == "channel_concat" and a.transformer.patch_embed.weight.shape == \
        b.transformer.patch_embed.weight.shape
    x, y = _concat_frames(a), _concat_frames(b)
    assert (x - y).abs().max() / y.abs().max() < 0.02  # the same clip up to bf16 rounding of A, B and the weights
    # a low rank: smaller, keeps less, still loads and generates
    small, low = write_with_base(tuned, tmp_path / "models" / "small", base, lora_rank=1)
    assert low.kept < 0.5
    size = {f: sum(p.stat().st_size for p in f.rglob("*") if p.is_file()) for f in (small, exact, full)}
    assert size[small] < size[exact] and size[small] < size[full]
    assert torch.isfinite(_concat_frames(load_pipeline(small, dtype="float32"))).all()
    # a transformer of another architecture is not a fine-tune of the base's
    other = build_world_pipeline("tiny", seed=1)
    other.transformer = other.transformer.with_extra_channels(2, 0)
    with pytest.raises(AnyframeInputError, match="not a fine-tune of the base's"):
        write_with_base(other, tmp_path / "models" / "other", base, lora_rank=4)
    # a LoRA folder that is not there is one clear error
    (exact / "lora" / "pytorch_lora_weights.safetensors").unlink()
    with pytest.raises(AnyframeInputError, match="has no pytorch_lora_weights"):
        AnyFramePipeline.from_pretrained(exact)
