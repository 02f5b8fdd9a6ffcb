"""LoRA fine-tuning of the STIV backbone (a world model): the recipe trains only the adapters on every
attention's q/k/v/o and the feed-forward, resumes exactly, and exports an adapter that ``--lora`` loads onto
the base model folder."""

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from anyframe.pipelines import load_pipeline
from anyframe.training.config import load_config
from anyframe.training.recipe import train

TOY = Path(__file__).parents[2] / "configs" / "toy.yaml"
SMALL = ["data.toy.num_clips=8", "train.log_every=1", "train.checkpoint_every=2"]


def _latents(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe("a red square moves right", num_frames=8, height=16, width=16, num_inference_steps=2, seed=0,
                output_type="latent").frames


def test_a_stiv_lora_trains_its_adapters_resumes_exactly_and_loads_onto_its_base(tmp_path):
    base = train(load_config(TOY, [*SMALL, f"output_dir={tmp_path / 'base'}", "train.steps=3",
                                         "optim.lr=1e-2", "optim.warmup_steps=0", "ema.enabled=false"]),
                 progress=False).pipeline_dir
    lora = [*SMALL, f"model.pretrained={base}", "model.preset=null", "lora.enabled=true", "lora.rank=4",
            "optim.lr=1e-2", "optim.warmup_steps=0", "ema.decay=0.5", "train.steps=4"]
    result = train(load_config(TOY, [*lora, f"output_dir={tmp_path / 'straight'}"]), progress=False)
    resumed = load_config(TOY, [*lora, f"output_dir={tmp_path / 'resumed'}"])
    train(resumed, progress=False, stop_after=2)
    train(resumed, resume="latest", progress=False)
    for part in ("model", "ema", "optimizer"):
        a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000004" / f"{part}.safetensors")
        b = load_file(tmp_path / "resumed" / "checkpoints" / "step-00000004" / f"{part}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part

    # only adapters train, on the backbone's default targets in every block
    model = load_file(tmp_path / "straight" / "checkpoints" / "step-00000004" / "model.safetensors")
    assert model and all(".lora_A." in k or ".lora_B." in k for k in model)
    targets = {k.split(".lora_")[0].removeprefix("transformer.").split(".", 2)[-1] for k in model if ".blocks." in k}
    assert {"spatial_attn.to_q", "temporal_attn.to_out", "cross_attn.to_v", "ffn.fc1", "ffn.fc2"} <= targets, targets

    # the export is the adapter (diffusers' LoRA format) and it loads onto the base folder
    assert result.pipeline_dir.name == "lora"
    pipe = load_pipeline(base, "float32")
    before = _latents(pipe)
    pipe.load_lora(result.pipeline_dir)
    after = _latents(pipe)
    assert (after - before).abs().max() > 1e-4  # the adapter changes the model
    exported = load_file(result.pipeline_dir / "pytorch_lora_weights.safetensors")
    loaded = {n: p for n, p in pipe.transformer.named_parameters() if "lora_" in n}
    assert len(loaded) == len(exported)
    adapter = next(iter(pipe.transformer.peft_config))  # diffusers names it
    for key, value in exported.items():  # transformer.<module>.lora_A.weight → <module>.lora_A.<adapter>.weight
        name = key.removeprefix("transformer.").replace(".weight", f".{adapter}.weight")
        assert torch.equal(loaded[name], value.to(loaded[name].dtype)), key



def test_a_lora_of_a_method_that_adds_channels_trains_them_whole_and_loads_them(tmp_path):
    """Channel concat inflates the patch embedding with zero columns: a LoRA run that froze it would keep the
    condition image out of the model for good. The adapted layers train in full (no adapter on them), are
    exported beside the adapter, and ``load_lora`` adapts the base backbone and loads them."""
    from anyframe.pipelines import Keyframe

    base = train(load_config(TOY, [*SMALL, f"output_dir={tmp_path / 'base'}", "train.steps=2"]),
                 progress=False).pipeline_dir
    cfg = load_config(TOY, [*SMALL, f"model.pretrained={base}", "model.preset=null", "lora.enabled=true",
                            "lora.rank=4", "conditioning.method=channel_concat", "optim.lr=1e-2",
                            "optim.warmup_steps=0", "ema.enabled=false", "train.steps=3",
                            f"output_dir={tmp_path / 'concat'}"])
    result = train(cfg, progress=False)
    model = load_file(tmp_path / "concat" / "checkpoints" / "step-00000003" / "model.safetensors")
    whole = [k for k in model if "lora_" not in k]
    assert whole == ["transformer.patch_embed.weight"], whole  # trained in full, no adapter on it
    adapted = load_file(result.pipeline_dir / "adapted_layers.safetensors")
    weight = adapted["transformer.patch_embed.weight"]
    base_in = load_pipeline(base, "float32").transformer.patch_embed.weight.shape[1]
    assert weight.shape[1] > base_in and weight[:, base_in:].abs().max() > 0  # the new channels learned

    pipe = load_pipeline(base, "float32")
    pipe.set_progress_bar_config(disable=True)
    before = pipe.transformer
    pipe.load_lora(result.pipeline_dir)
    assert pipe.transformer is not before and before.patch_embed.weight.shape[1] == base_in  # a copy, adapted
    assert torch.equal(pipe.transformer.patch_embed.weight, weight)
    assert pipe.conditioning.name == "channel_concat"
    image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    def sample(img):
        return pipe("a red square moves right", keyframes=[Keyframe(img, 0)], num_frames=8, height=16, width=16,
                    num_inference_steps=2, seed=0, output_type="latent").frames

    # the image reaches the model through the learned channels (concat does not re-impose it)
    assert (sample(image) - sample(255 - image)).abs().max() > 1e-4


def test_a_lora_that_lacks_its_methods_adapted_layers_is_refused(tmp_path):
    import shutil

    import pytest

    from anyframe.errors import AnyframeInputError

    base = train(load_config(TOY, [*SMALL, f"output_dir={tmp_path / 'base'}", "train.steps=1"]),
                 progress=False).pipeline_dir
    cfg = load_config(TOY, [*SMALL, f"model.pretrained={base}", "model.preset=null", "lora.enabled=true",
                            "lora.rank=2", "conditioning.method=channel_concat", "train.steps=1",
                            f"output_dir={tmp_path / 'concat'}"])
    lora = train(cfg, progress=False).pipeline_dir
    broken = tmp_path / "broken"
    shutil.copytree(lora, broken)
    (broken / "adapted_layers.safetensors").unlink()
    pipe = load_pipeline(base, "float32")
    transformer = pipe.transformer
    with pytest.raises(AnyframeInputError, match="adds backbone layers"):
        pipe.load_lora(broken)
    assert pipe.transformer is transformer and not getattr(transformer, "peft_config", None)  # left as it was
    pipe.load_lora(lora)  # and the whole folder still loads
