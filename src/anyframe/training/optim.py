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
    return [{"params": ps, "lr": cfg.lr * scale, "lr_scale": scale} for scale, ps in groups.items()]


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


def _after_phase(schedule, scale: float, steps: int):
    """The LR factor of one parameter group: the schedule's, divided by the group's ``lr_scale`` from step
    ``steps`` on (so every group then trains at the schedule's LR). A function: LambdaLR's state (JSON in our
    checkpoints) skips functions, and this one is rebuilt from the config on resume."""

    def factor(step: int) -> float:
        return schedule(step) if step < steps else schedule(step) / scale

    factor.in_phase = lambda step: step < steps
    return factor


def build_lr_schedule(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """The LR at each step is a function of the step alone, so a resumed run continues the same curve."""
    schedule = _base_schedule(optimizer, cfg, total_steps)
    if not cfg.lr_scale_steps:
        return schedule
    if cfg.lr_scale_steps >= total_steps:
        raise AnyframeInputError(f"optim.lr_scale_steps ({cfg.lr_scale_steps}) must be below train.steps ({total_steps})")
    # diffusers' and transformers' schedules are one LambdaLR with one factor for all groups: rebuild it with a
    # factor per group that drops the group's multiplier after the first phase
    base = schedule.lr_lambdas[0]
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]  # undo the first schedule's factor; LambdaLR applies its own
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [_after_phase(base, g.get("lr_scale", 1.0), cfg.lr_scale_steps) for g in optimizer.param_groups])


def base_lr(schedule, optimizer: torch.optim.Optimizer) -> float:
    """The LR of a parameter without an ``optim.lr_scale`` multiplier, at the schedule's current step (what a
    run logs as ``lr``; a group's own LR is this times its multiplier, during ``lr_scale_steps`` if set)."""
    lr, group, factor = schedule.get_last_lr()[0], optimizer.param_groups[0], schedule.lr_lambdas[0]
    in_phase = getattr(factor, "in_phase", lambda step: True)(schedule.last_epoch)
    return lr / group.get("lr_scale", 1.0) if in_phase else lr


def _base_schedule(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
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
