"""The sampling loop: the same for every conditioning method, driven by a diffusers scheduler."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SchedulerMixin, UniPCMultistepScheduler
from torch import Tensor

SAMPLERS = ("euler", "unipc")


def make_scheduler(name: str = "euler", shift: float = 1.0) -> SchedulerMixin:
    """A diffusers flow-matching scheduler: ``euler`` (FlowMatchEulerDiscrete) or ``unipc`` (UniPC, flow
    variant, as Wan uses it). ``shift`` is the timestep shift ``s·σ / (1 + (s − 1)·σ)``."""
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    if name == "unipc":
        return UniPCMultistepScheduler(
            num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift
        )
    raise ValueError(f"unknown sampler {name!r} ({' | '.join(SAMPLERS)})")


def scheduler_shift(scheduler: SchedulerMixin) -> float:
    cfg = scheduler.config
    return float(cfg.get("shift", cfg.get("flow_shift", 1.0)) or 1.0)


def convert_scheduler(scheduler: SchedulerMixin, name: str) -> SchedulerMixin:
    """The scheduler ``name`` with the same timestep shift as ``scheduler``."""
    return make_scheduler(name, scheduler_shift(scheduler))


def sample(
    velocity: Callable[[Tensor, Tensor], Tensor],
    latents: Tensor,
    scheduler: SchedulerMixin,
    num_inference_steps: int,
    after_step: Callable[[Tensor, Tensor], Tensor] | None = None,
    on_step: Callable[[int, Tensor, Tensor], Tensor | None] | None = None,
) -> Tensor:
    """Integrate σ from 1 to 0.

    Args:
        velocity: ``v(x [B, ...], sigma [B]) -> [B, ...]`` (already guided); ``sigma`` is the scheduler's
            timestep over ``num_train_timesteps``.
        latents: the starting noise ``x_1``.
        scheduler: a diffusers flow scheduler (``sigmas`` has ``num_inference_steps + 1`` entries ending at 0).
        after_step: ``f(x, sigma_next [B]) -> x``: the conditioning method's hook (e.g. re-imposing frames).
        on_step: ``f(step_index, sigma, x) -> x | None`` called after each step (callbacks, progress).
    """
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    sigmas = scheduler.sigmas.to(latents.device, torch.float32)
    batch = latents.shape[0]
    x = latents
    for i, t in enumerate(scheduler.timesteps):
        # The model sees the scheduler's timestep t (as diffusers' pipelines pass it — UniPC rounds it to an
        # integer), as σ = t / num_train_timesteps; the step itself uses the scheduler's exact σ.
        sigma = (t.to(torch.float32) / scheduler.config.num_train_timesteps).expand(batch)
        v = velocity(x, sigma)
        x = scheduler.step(v, t, x, return_dict=False)[0]
        if after_step is not None:
            x = after_step(x, sigmas[i + 1].expand(batch))
        if on_step is not None:
            replaced = on_step(i, sigma, x)
            if replaced is not None:
                x = replaced
    return x
