"""LoRA fine-tuning of the STIV backbone (a world model): the recipe trains only the adapters on every
attention's q/k/v/o and the feed-forward, resumes exactly, and exports an adapter that ``--lora`` loads onto
the base model folder."""

from pathlib import Path

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

