"""What a run writes besides checkpoints: sample filmstrips and the exported pipeline (or LoRA) folder.

Every export is atomic: it is written to a temporary folder beside its target (``.pipeline.XXXXXXXX``; for a
pipeline, by :meth:`AnyFramePipeline.save_pretrained` itself) and renamed into place, so a run killed while exporting leaves no partial ``pipeline/`` (the next run removes
the temporary; resuming a finished run whose export is missing writes it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import WanPipeline
from diffusers.training_utils import EMAModel
from peft.utils import get_peft_model_state_dict
from PIL import Image
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from anyframe.conditioning import Denoiser
from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_dir, atomic_path, filmstrip, to_uint8
from anyframe.models.dit import STIVTransformer
from anyframe.pipelines import AnyFramePipeline
from anyframe.training.build import build_components
from anyframe.training.checkpoint import load_resumable
from anyframe.training.config import RecipeConfig
from anyframe.training.state import _full, with_denoiser_names


def ema_state_dict(model: torch.nn.Module, ema: EMAModel | None) -> dict[str, torch.Tensor]:
    """The backbone's full state dict with the EMA weights in place of the parameters.

    A collective under FSDP: every rank must call it. Works the same for plain and DDP models.
    """
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if ema is not None:
        names = [name for name, p in accelerator_free_named_parameters(model) if p.requires_grad]
        for name, shadow in zip(names, ema.shadow_params):
            state[name] = _full(shadow).detach().cpu()
    return state


def accelerator_free_named_parameters(model: torch.nn.Module):
    """Parameter names without DDP's ``module.`` prefix (the names of the state dict above); EMA shadows the
    trainable ones, in this order."""
    inner = model.module if hasattr(model, "module") else model
    return inner.named_parameters()


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def unsharded_copy(pipe: AnyFramePipeline, state: dict[str, torch.Tensor]) -> tuple[STIVTransformer, torch.nn.Module]:
    """A fresh, unwrapped backbone and conditioning method holding the denoiser ``state``
    (``transformer.*``, ``conditioning.*``), for sampling and export on one process."""
    copies = []
    for module, prefix in ((pipe.transformer, "transformer."), (pipe.conditioning, "conditioning.")):
        config = {k: v for k, v in module.config.items() if not k.startswith("_")}
        copy = type(module)(**config)
        if getattr(module, "peft_config", None):  # LoRA: the same adapters, so the state's names fit
            for name, adapter in module.peft_config.items():
                copy.add_adapter(adapter, adapter_name=name)
        copy.load_state_dict(_sub_state(state, prefix))
        if _dtype_of(copy) != _dtype_of(module):
            copy.to(_dtype_of(module))
        copies.append(copy.eval())
    return copies[0], copies[1]


def _dtype_of(module: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _pipeline_with(pipe: AnyFramePipeline, transformer: STIVTransformer, conditioning) -> AnyFramePipeline:
    return AnyFramePipeline(**{**pipe.components, "transformer": transformer, "conditioning": conditioning})


@torch.no_grad()
def write_samples(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], cfg: RecipeConfig, path: Path) -> None:
    """A filmstrip per sample prompt, stacked vertically, from the given (EMA) weights."""
    sampler = _pipeline_with(pipe, *unsharded_copy(pipe, state))
    sampler.set_progress_bar_config(disable=True)
    out = sampler(list(cfg.sample.prompts), num_inference_steps=cfg.sample.steps,
                  guidance_scale=cfg.sample.guidance_scale, seed=cfg.seed)
    strips = [filmstrip(to_uint8(clip)) for clip in out.frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(strips, axis=0)).save(tmp, format="PNG")


def export_checkpoint(checkpoint: str | Path, out: str | Path, ema: bool = True) -> Path:
    """The pipeline folder of a checkpoint (its EMA weights, or the raw ones with ``ema=False``), built by
    the recipe the checkpoint records — for a run stopped at a checkpoint, or any step of one. The
    recipe's ``init`` is skipped (the checkpoint holds every weight); its ``model.pretrained`` / ``model.vae``
    folders must exist (they give the frozen encoders)."""
    _, ckpt = load_resumable(str(checkpoint), Path(checkpoint).parent, require=("config",), flag="--checkpoint")
    ckpt = with_denoiser_names(ckpt)
    try:
        cfg = RecipeConfig.model_validate(ckpt.state["config"])
    except ValueError as exc:
        raise AnyframeInputError(f"{checkpoint}: its recorded recipe is not valid: {' '.join(str(exc).split())}") from None
    pipe = build_components(cfg.model_copy(update={"init": type(cfg.init)()}))
    denoiser = Denoiser(pipe.transformer, pipe.conditioning)
    state = {**denoiser.state_dict(), **ckpt.model}  # (a LoRA checkpoint: the frozen weights from the recipe)
    if ema:
        if ckpt.ema is None:
            raise AnyframeInputError(f"{checkpoint} holds no EMA weights (export the raw ones with ema=False / --raw)")
        names = [name for name, p in denoiser.named_parameters() if p.requires_grad]
        shadow = ckpt.ema.get("shadow_params") if isinstance(ckpt.ema, dict) else None
        if not isinstance(shadow, list) or len(shadow) != len(names):
            count = len(shadow) if isinstance(shadow, list) else "no"
            raise AnyframeInputError(f"{checkpoint}: {count} EMA tensors for {len(names)} parameters")
        state.update(zip(names, shadow))
    try:
        return export_model(pipe, state, Path(out), lora=cfg.lora.enabled)
    except RuntimeError as exc:  # load_state_dict: the recipe does not build this checkpoint's model
        raise AnyframeInputError(f"{checkpoint} does not fit its recorded recipe: {' '.join(str(exc).split())[:300]}") from None


def export_pipeline(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], path: Path) -> Path:
    """Save the pipeline folder (EMA weights) that ``anyframe generate --model`` loads. (Atomically:
    :meth:`AnyFramePipeline.save_pretrained` writes a temporary folder beside ``path`` and renames it.)"""
    _pipeline_with(pipe, *unsharded_copy(pipe, state)).save_pretrained(path)
    return path


ADAPTED_LAYERS = "adapted_layers.safetensors"


def export_lora(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], path: Path) -> Path:
    """Save a LoRA fine-tune (EMA weights): the adapter in diffusers' LoRA format (``transformer.*`` keys in
    ``pytorch_lora_weights.safetensors``, which ``AnyFramePipeline.load_lora`` and diffusers'
    ``WanPipeline.load_lora_weights`` both read), if the method has its own layers ``conditioning/``, and if it
    added or reshaped backbone layers (trained in full: ``build.add_lora``) those whole, in ``ADAPTED_LAYERS``
    (``transformer.<name>`` keys)."""
    transformer, conditioning = unsharded_copy(pipe, state)
    layers = get_peft_model_state_dict(transformer)
    whole = [n for n, p in pipe.transformer.named_parameters() if p.requires_grad and "lora_" not in n]
    own = transformer.state_dict()
    with atomic_dir(path) as tmp:
        # the classmethod only formats and writes the file: any pipeline's LoRA layout is the same
        WanPipeline.save_lora_weights(tmp, transformer_lora_layers=layers, safe_serialization=True)
        if whole or any(True for _ in conditioning.parameters()):  # (whole: the method adapts the backbone on load)
            conditioning.save_pretrained(tmp / "conditioning")
        if whole:
            save_file({f"transformer.{n}": own[n].contiguous() for n in whole}, str(tmp / ADAPTED_LAYERS))
    return path


def export_model(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], path: Path, lora: bool) -> Path:
    """The export of a run: the adapter (LoRA runs) or the whole pipeline folder."""
    return export_lora(pipe, state, path) if lora else export_pipeline(pipe, state, path)
