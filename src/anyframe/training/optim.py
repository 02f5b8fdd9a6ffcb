"""Optimizers (AdamW; transformers' Adafactor) and LR schedules (diffusers' warmup + constant / cosine;
transformers' warmup-stable-decay)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from diffusers.optimization import get_scheduler
from transformers.optimization import Adafactor, get_wsd_schedule

from anyframe.errors import AnyframeInputError
from anyframe.training.config import OptimConfig


def parameter_groups(named: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimConfig) -> list[dict]:
    """The trainable parameters in groups by ``cfg.lr_scale`` (name prefix → LR multiplier; the longest matching
    prefix wins; unmatched parameters: 1), in the parameters' order within each group. A prefix that matches no
    trainable parameter is an error (a typo would otherwise change nothing, silently)."""
    named = [(n, p) for n, p in named if p.requires_grad]
    prefixes = sorted(cfg.lr_scale, key=len, reverse=True)
    unused = [k for k in prefixes if not any(n.startswith(k) for n, _ in named)]
    if unused:
        raise AnyframeInputError(f"optim.lr_scale: no trainable parameter's name starts with {', '.join(unused)} "
                                 f"(names look like {named[0][0] if named else '—'})")
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in named:
        scale = next((cfg.lr_scale[k] for k in prefixes if name.startswith(k)), 1.0)
        groups.setdefault(float(scale), []).append(param)
    return [{"params": ps, "lr": cfg.lr * scale} for scale, ps in groups.items()]


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[tuple[str, torch.nn.Parameter]],
                    cfg: OptimConfig) -> torch.optim.Optimizer:
    """``params``: parameters, or (name, parameter) pairs (needed when ``cfg.lr_scale`` is set)."""
    params = list(params)
    if params and isinstance(params[0], tuple):
        params = parameter_groups(params, cfg)
    elif cfg.lr_scale:
        raise ValueError("optim.lr_scale needs named parameters")
    else:
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
