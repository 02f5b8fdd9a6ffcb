"""Fine-tuning a Wan backbone through the training recipe (tiny random Wan, CPU): LoRA trains only its
adapters, resumes exactly, exports an adapter that reloads (into our pipeline and into diffusers'
WanPipeline); full fine-tuning exports a pipeline; gradient checkpointing changes nothing but memory."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from anyframe.errors import AnyframeInputError
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import build_components, export_checkpoint, train

CONFIG = Path(__file__).parents[2] / "configs" / "wan-tiny-lora.yaml"
SMALL = ["data.world.num_clips=8", "train.log_every=1", "train.export=false"]


def _cfg(tmp_path, *overrides):
    return load_config(CONFIG, [*SMALL, f"output_dir={tmp_path}", *overrides])


def _losses(run):
    return [m["loss"] for m in read_metrics(run) if "loss" in m]


def test_lora_trains_only_adapters_resumes_exactly_and_reloads(tmp_path):
    common = ["train.steps=4", "train.checkpoint_every=2"]
    train(_cfg(tmp_path / "straight", *common, "train.export=true"), progress=False)
    train(_cfg(tmp_path / "resumed", *common), progress=False, stop_after=2)
    train(_cfg(tmp_path / "resumed", *common), resume="latest", progress=False)
    for part in ("model", "ema", "optimizer"):
        a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000004" / f"{part}.safetensors")
        b = load_file(tmp_path / "resumed" / "checkpoints" / "step-00000004" / f"{part}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "resumed")

    # the checkpoint holds the adapters only: q/k/v/o of both attentions and the FFN of every block
    model = load_file(tmp_path / "straight" / "checkpoints" / "step-00000004" / "model.safetensors")
    assert model and all(".lora_A." in k or ".lora_B." in k for k in model)
    targets = {k.split(".lora_")[0].removeprefix("transformer.") for k in model}
    for block in (0, 1):
        for name in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0",
                     "ffn.net.0.proj", "ffn.net.2"):
            assert f"blocks.{block}.{name}" in targets
    assert any(v.abs().sum() > 0 for k, v in model.items() if ".lora_B." in k)  # B starts at zero: it trained

    # the export is the adapter: the recipe's (frozen) base + this file is the fine-tuned model
    cfg = _cfg(tmp_path / "x", *common)
    base = build_components(cfg)
    lora_dir = tmp_path / "straight" / "lora"
    exported = load_file(lora_dir / "pytorch_lora_weights.safetensors")
    assert exported.keys() == {k.replace(".default", "") for k in model}

    from anyframe.pipelines import build_wan_pipeline
    from anyframe.world import world_vocabulary

    def generate(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe("a red circle moves left", num_frames=9, height=32, width=32, num_inference_steps=2, seed=0,
                    output_type="latent", max_sequence_length=16).frames

    plain = build_wan_pipeline("tiny", seed=0, vocabulary=world_vocabulary())
    before = generate(plain)
    plain.load_lora(lora_dir)
    after = generate(plain)
    assert (after - before).abs().max() > 1e-4  # the adapter changes the model
    # and it is the recipe's own (EMA) model: export_checkpoint of the same step gives the same adapter
    again = export_checkpoint(tmp_path / "straight" / "checkpoints" / "step-00000004", tmp_path / "again")
    redone = load_file(again / "pytorch_lora_weights.safetensors")
    assert all(torch.equal(redone[k], exported[k]) for k in exported)
    assert base.transformer.peft_config["default"].r == 8

    # diffusers' own WanPipeline loads the same file
    from diffusers import WanPipeline

    reference = WanPipeline(**{k: v for k, v in plain.components.items() if k in ("transformer", "vae", "text_encoder",
                                                                                  "tokenizer", "scheduler")})
    fresh = build_wan_pipeline("tiny", seed=0, vocabulary=world_vocabulary())
    reference.transformer = fresh.transformer
    reference.load_lora_weights(str(lora_dir))
    got = dict(fresh.transformer.named_parameters())
    for name, param in plain.transformer.named_parameters():
        if "lora_" in name:
            assert torch.equal(got[name], param), name


def test_full_fine_tuning_exports_a_wan_pipeline(tmp_path):
    cfg = _cfg(tmp_path, "lora.enabled=false", "train.steps=2", "train.export=true", "optim.lr=1e-2")
    before = build_components(cfg).transformer.state_dict()
    result = train(cfg, progress=False)
    from anyframe.models.wan import WanBackbone
    from anyframe.pipelines import AnyFramePipeline

    pipe = AnyFramePipeline.from_pretrained(result.pipeline_dir)
    assert isinstance(pipe.transformer, WanBackbone)
    after = pipe.transformer.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > 0.9 * len(before)  # every weight trains (EMA-averaged, so not exactly all)


def test_gradient_checkpointing_gives_the_same_run(tmp_path, monkeypatch):
    common = ["train.steps=2"]
    train(_cfg(tmp_path / "plain", *common), progress=False)
    import torch.utils.checkpoint

    calls, checkpoint = [], torch.utils.checkpoint.checkpoint

    def counted(*args, **kwargs):
        calls.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counted)
    train(_cfg(tmp_path / "ckpt", *common, "train.gradient_checkpointing=true"), progress=False)
    assert len(calls) == 2 * 2  # every WanTransformerBlock, every step: checkpointing is on
    a = load_file(tmp_path / "plain" / "checkpoints" / "step-00000002" / "model.safetensors")
    b = load_file(tmp_path / "ckpt" / "checkpoints" / "step-00000002" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    assert _losses(tmp_path / "plain") == pytest.approx(_losses(tmp_path / "ckpt"), abs=1e-6)


def test_lora_targets_that_match_nothing_are_a_config_error(tmp_path):
    with pytest.raises(AnyframeInputError, match="lora.target_modules"):
        build_components(_cfg(tmp_path, "lora.target_modules=[nope]"))


def test_flashi2v_on_wan_with_lora_trains_its_layers_and_exports_them(tmp_path):
    cfg = _cfg(tmp_path, "conditioning.method=flashi2v", "conditioning.clean_timestep=false", "train.steps=3",
               "train.export=true", "optim.lr=1e-2")
    result = train(cfg, progress=False)
    model = load_file(tmp_path / "checkpoints" / "step-00000003" / "model.safetensors")
    assert model["conditioning.shift.conv_out.weight"].abs().sum() > 0  # φ (zero at start) trained with the LoRA
    assert any(".lora_B." in k for k in model)
    from anyframe.conditioning import FlashI2V
    from anyframe.pipelines import build_wan_pipeline
    from anyframe.world import world_vocabulary

    pipe = build_wan_pipeline("tiny", seed=0, vocabulary=world_vocabulary())  # the base: frame replacement
    pipe.load_lora(result.pipeline_dir)  # the adapter and the method it was trained with
    assert isinstance(pipe.conditioning, FlashI2V) and pipe.conditioning.shift.conv_out.weight.abs().sum() > 0


def test_wan_i2v_fine_tunes_through_the_recipe(tmp_path):
    """Wan's own I2V conditioning trains from pixel clips: the first frame through the VAE (zeros elsewhere),
    the pixel mask and CLIP tokens, computed per batch as at inference."""
    common = ["conditioning.method=wan_i2v", "conditioning.clean_timestep=false", "model.backbone.in_channels=36",
              "model.backbone.image_dim=4", "train.steps=2", "train.export=true"]
    result = train(_cfg(tmp_path / "run", *common), progress=False)
    losses = _losses(tmp_path / "run")
    assert losses and None not in losses  # (a NaN or infinite loss is logged as null)
    model = load_file(tmp_path / "run" / "checkpoints" / "step-00000002" / "model.safetensors")
    assert any("attn2.add_k_proj.lora_B" in k for k in model)  # the image cross-attention adapts too
    assert (result.pipeline_dir / "pytorch_lora_weights.safetensors").is_file()

    # the batch condition is the inference condition: the same clip's first frame, the same encoders
    from PIL import Image

    from anyframe.conditioning import WanI2V
    from anyframe.pipelines import GenerationRequest, Keyframe, PipelineEncoders

    pipe = build_components(_cfg(tmp_path / "x", *common))
    assert isinstance(pipe.conditioning, WanI2V)
    torch.manual_seed(0)
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    condition, image = pipe.conditioning.training_condition(video, PipelineEncoders(pipe))
    first = ((video[0, :, 0].permute(1, 2, 0) + 1) / 2 * 255).round().to(torch.uint8).numpy()
    request = pipe.validate(GenerationRequest(prompt="", keyframes=[Keyframe(Image.fromarray(first), 0)],
                                              num_frames=9, height=32, width=32))
    text = pipe.encode_text([""])
    state = pipe.conditioning.encode(request, PipelineEncoders(pipe, request, torch.zeros(1, 16, 3, 4, 4), text, text))
    torch.testing.assert_close(condition, state.condition, atol=2e-2, rtol=0)  # (the frame was rounded to 8 bits)
    torch.testing.assert_close(image, state.image_embeds, atol=1e-5, rtol=0)

    with pytest.raises(AnyframeInputError, match="latent cache"):
        train(_cfg(tmp_path / "cached", *common, f"data.cache_dir={tmp_path / 'cache'}"), progress=False)
