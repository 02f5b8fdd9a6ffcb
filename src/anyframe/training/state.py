"""A run's state beyond its weights: RNG states, EMA shadows under FSDP, and reading older checkpoints."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from torch.distributed.tensor import distribute_tensor

from anyframe.training.checkpoint import Checkpoint
from anyframe.training.config import RecipeConfig


def params_checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor shard (FSDP2) gathered into a plain tensor; plain tensors pass through."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def full_ema_state(ema: EMAModel) -> dict:
    """``ema.state_dict()`` with its shadow parameters gathered into full CPU tensors. A collective under
    FSDP2 (DTensor shards): every rank must call it before the main rank saves."""
    state = ema.state_dict()
    state["shadow_params"] = [_full(t).detach().cpu() for t in state["shadow_params"]]
    return state


def shard_like(tensors: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Full tensors (from a checkpoint) laid out like ``params``: DTensor shards under FSDP2, plain
    tensors on the parameters' device otherwise."""
    return [
        distribute_tensor(t.to(p.device), p.device_mesh, p.placements) if hasattr(p, "device_mesh") else t.to(p.device)
        for t, p in zip(tensors, params)
    ]


# ---------------------------------------------------------------------------------------- RNG


def rng_state(generator: torch.Generator) -> dict:
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def with_current_defaults(config: dict) -> dict:
    """A checkpoint's recipe read by the current schema: options added since it was written take their
    defaults, so they do not count as changes on resume (an unreadable one is compared as it is)."""
    try:
        return RecipeConfig.model_validate(config).to_dict()
    except ValueError:
        return config


def with_denoiser_names(ckpt: Checkpoint) -> Checkpoint:
    """A checkpoint written when the trained module was the bare backbone (before :class:`Denoiser`),
    renamed to the denoiser's parameter names (``transformer.*``); newer checkpoints pass unchanged."""
    if any(name.startswith("transformer.") for name in ckpt.model):
        return ckpt
    ckpt.model = {f"transformer.{k}": v for k, v in ckpt.model.items()}
    if ckpt.optimizer is not None:
        opt = dict(ckpt.optimizer)
        opt["state"] = {f"transformer.{k}": v for k, v in opt.get("state", {}).items()}
        opt["param_groups"] = [
            {**g, "params": [f"transformer.{p}" for p in g["params"]]} for g in opt.get("param_groups", [])
        ]
        ckpt.optimizer = opt
    return ckpt
