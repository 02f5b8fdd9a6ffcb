"""Optimizers (AdamW; transformers' Adafactor) and LR schedules (diffusers' warmup + constant / cosine;
transformers' warmup-stable-decay)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from diffusers.optimization import get_scheduler
from transformers.optimization import Adafactor, get_wsd_schedule

from anyframe.errors import AnyframeInputError
from anyframe.training.config import OptimConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adamw":
        # foreach=False keeps the update order (and so the bits) the same run to run on CPU
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, foreach=False)
    # Adafactor with an external LR (STIV §2.2 switches to it to save memory); beta1 from betas[0].
    return Adafactor(
        params,
        lr=cfg.lr,
        beta1=cfg.betas[0] if cfg.betas[0] > 0 else None,
        weight_decay=cfg.weight_decay,
        scale_parameter=False,
        relative_step=False,
        warmup_init=False,
    )


def build_lr_schedule(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """The LR at each step is a function of the step alone, so a resumed run continues the same curve."""
    if cfg.schedule == "wsd":
        if cfg.warmup_steps + cfg.decay_steps > total_steps:
            raise AnyframeInputError(f"optim.warmup_steps + optim.decay_steps ({cfg.warmup_steps} + {cfg.decay_steps}) "
                                     f"exceed train.steps ({total_steps})")
        # constant until the last decay_steps, then to zero along 1 − √progress (Hägele et al. 2024, "Scaling
        # laws and compute-optimal training beyond fixed training durations": the cooldown shape they found best)
        return get_wsd_schedule(optimizer, num_warmup_steps=cfg.warmup_steps, num_decay_steps=cfg.decay_steps,
                                num_training_steps=total_steps, decay_type="1-sqrt")
    name = "constant_with_warmup" if cfg.schedule == "constant" else "cosine"
    return get_scheduler(name, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps)
