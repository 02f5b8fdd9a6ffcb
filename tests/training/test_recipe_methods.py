"""The recipe with each conditioning method: FlashI2V's own layers train, resume exactly and export;
channel concat widens the backbone; options of another method are config errors; checkpoints written
before the denoiser wrapper still resume."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from anyframe.errors import AnyframeInputError
from anyframe.training.checkpoint import load_checkpoint, save_checkpoint
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import export_checkpoint, train

CONFIG = Path(__file__).parents[2] / "configs" / "toy.yaml"
SMALL = ["data.toy.num_clips=16", "data.batch_size=4", "train.log_every=2", "train.export=false",
         "optim.schedule=constant", "optim.lr=3e-3"]


def _cfg(tmp_path, *overrides):
    return load_config(CONFIG, [*SMALL, f"output_dir={tmp_path}", *overrides])


def _losses(run):
    return [m["loss"] for m in read_metrics(run) if "loss" in m]


def test_flashi2v_layers_train_resume_exactly_and_export(tmp_path):
    common = ["conditioning.method=flashi2v", "train.steps=6", "train.checkpoint_every=3", "train.log_every=3"]
    train(_cfg(tmp_path / "straight", *common, "train.export=true"), progress=False)
    train(_cfg(tmp_path / "resumed", *common), progress=False, stop_after=3)
    train(_cfg(tmp_path / "resumed", *common), resume="latest", progress=False)
    for part in ("model", "ema", "optimizer"):
        a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000006" / f"{part}.safetensors")
        b = load_file(tmp_path / "resumed" / "checkpoints" / "step-00000006" / f"{part}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "resumed")

    model = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-00000006").model
    assert model["conditioning.shift.conv_out.weight"].abs().sum() > 0  # φ left zero: it trained
    assert model["conditioning.fourier_embed.zero_proj.weight"].abs().sum() > 0

    from anyframe.conditioning import FlashI2V
    from anyframe.pipelines import AnyFramePipeline

    pipe = AnyFramePipeline.from_pretrained(tmp_path / "straight" / "pipeline")
    assert isinstance(pipe.conditioning, FlashI2V)
    assert pipe.conditioning.shift.conv_out.weight.abs().sum() > 0  # the export carries the method's layers

    # a recipe continuing from that pipeline starts from its layers, not fresh zeros
    from anyframe.training.recipe import build_components

    cont = build_components(_cfg(tmp_path / "cont", "conditioning.method=flashi2v", "model.preset=null",
                                 f"model.pretrained={tmp_path / 'straight' / 'pipeline'}"))
    assert torch.equal(cont.conditioning.shift.conv_out.weight, pipe.conditioning.shift.conv_out.weight)


def test_flashi2v_variants_and_channel_concat_build_and_train(tmp_path):
    for name, overrides in {
        "shift": ["conditioning.method=flashi2v", "conditioning.fourier=false"],
        "fourier": ["conditioning.method=flashi2v", "conditioning.latent_shift=false"],
        "concat": ["conditioning.method=channel_concat"],
    }.items():
        result = train(_cfg(tmp_path / name, *overrides, "train.steps=2", "train.export=true"), progress=False)
        from anyframe.pipelines import AnyFramePipeline

        pipe = AnyFramePipeline.from_pretrained(result.pipeline_dir)
        if name == "concat":
            assert pipe.transformer.config.extra_in_channels == pipe.transformer.config.in_channels + 1
        else:
            assert (pipe.conditioning.shift is None) == (name == "fourier")
            assert (pipe.conditioning.fourier_embed is None) == (name == "shift")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["conditioning.method=flashi2v", "conditioning.task_weights.t2v=1"], "task_weights does not apply to the flashi2v"),
        (["conditioning.method=flashi2v", "conditioning.clean_timestep=true"], "clean_timestep"),
        (["conditioning.fourier=false"], "fourier does not apply to the frame_replacement"),
        (["conditioning.method=flashi2v", "conditioning.fourier=false", "conditioning.latent_shift=false"], "both"),
        (["conditioning.method=flashi2v", "conditioning.detail_range=[0.9,0.1]"], "detail_range"),
        (["conditioning.method=wan"], "conditioning.method"),
    ],
)
def test_options_of_another_method_are_config_errors(tmp_path, overrides, message):
    with pytest.raises(AnyframeInputError, match=message):
        _cfg(tmp_path, *overrides)


def test_a_checkpoint_from_before_the_denoiser_wrapper_resumes_exactly(tmp_path):
    # Checkpoints used to name the bare backbone's parameters (no "transformer." prefix).
    common = ["train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=3"]
    train(_cfg(tmp_path / "straight", *common), progress=False)
    ckpt = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-00000002")
    strip = len("transformer.")
    ckpt.model = {k[strip:]: v for k, v in ckpt.model.items()}
    ckpt.optimizer = {
        "state": {k[strip:]: v for k, v in ckpt.optimizer["state"].items()},
        "param_groups": [{**g, "params": [p[strip:] for p in g["params"]]} for g in ckpt.optimizer["param_groups"]],
    }
    save_checkpoint(ckpt, tmp_path / "legacy" / "checkpoints", keep=2)
    assert not any(k.startswith("transformer.") for k in load_checkpoint(tmp_path / "legacy" / "checkpoints" / "step-00000002").model)
    train(_cfg(tmp_path / "legacy", *common), resume="latest", progress=False)
    a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000004" / "model.safetensors")
    b = load_file(tmp_path / "legacy" / "checkpoints" / "step-00000004" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)



@pytest.mark.parametrize("method", ["frame_replacement", "flashi2v"])
def test_export_a_checkpoint_equals_the_recipe_export(tmp_path, method, capsys):
    from anyframe.cli import main
    from anyframe.pipelines import AnyFramePipeline

    result = train(_cfg(tmp_path / "run", f"conditioning.method={method}", "train.steps=4", "train.checkpoint_every=4",
                        "train.export=true"), progress=False)
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000004"
    with pytest.raises(SystemExit) as info:
        main(["model", "export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "exported")])
    assert info.value.code in (0, None)
    a = AnyFramePipeline.from_pretrained(result.pipeline_dir)
    b = AnyFramePipeline.from_pretrained(tmp_path / "exported")
    for part in ("transformer", "conditioning"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), part
    raw = AnyFramePipeline.from_pretrained(export_checkpoint(ckpt, tmp_path / "raw", ema=False)).transformer.state_dict()
    ema = b.transformer.state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in ema)  # --raw gives the raw weights, not the EMA
    capsys.readouterr()
    # an existing folder, or a folder that is not a checkpoint: one error line, exit code 2
    for args in (["--checkpoint", str(ckpt), "--out", str(tmp_path / "exported")],
                 ["--checkpoint", str(tmp_path), "--out", str(tmp_path / "x")]):
        with pytest.raises(SystemExit) as info:
            main(["model", "export", *args])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith("error:") and "Traceback" not in err


def test_a_text_refiner_joins_a_pretrained_pipeline_as_the_identity(tmp_path):
    from anyframe.pipelines import AnyFramePipeline
    from anyframe.training.recipe import build_components

    base = train(_cfg(tmp_path / "base", "train.steps=2", "train.export=true"), progress=False)
    pipe = AnyFramePipeline.from_pretrained(base.pipeline_dir)
    grown = build_components(_cfg(tmp_path / "grown", "model.preset=null", f"model.pretrained={base.pipeline_dir}",
                                  "model.backbone.text_refiner_layers=2"))
    assert grown.transformer.config.text_refiner_layers == 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 4, 8, 8, generator=g)
    text = torch.randn(2, 5, pipe.transformer.config.text_dim, generator=g)
    a = pipe.transformer(x, torch.tensor([500.0, 100.0]), text).sample
    b = grown.transformer(x, torch.tensor([500.0, 100.0]), text).sample
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # it trains, and the export carries it
    result = train(_cfg(tmp_path / "tuned", "model.preset=null", f"model.pretrained={base.pipeline_dir}",
                        "model.backbone.text_refiner_layers=2", "train.steps=3", "train.export=true"), progress=False)
    tuned = AnyFramePipeline.from_pretrained(result.pipeline_dir).transformer
    assert tuned.text_refiner[0].attn.to_out.weight.abs().sum() > 0
    # other overrides of a pretrained backbone are one clear error
    with pytest.raises(AnyframeInputError, match="may only set text_refiner_layers"):
        _cfg(tmp_path / "bad", "model.preset=null", f"model.pretrained={base.pipeline_dir}", "model.backbone.num_layers=4")
