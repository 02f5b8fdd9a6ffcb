"""Training-σ distributions and the timestep shift."""

from __future__ import annotations

import torch
from torch import Tensor

TIMESTEP_SCALE = 1000.0
"""Backbones take ``timestep = σ · TIMESTEP_SCALE`` (diffusers' ``num_train_timesteps``)."""


def shift_sigmas(sigma: Tensor, shift: float) -> Tensor:
    """SD3 / Wan timestep shift ``σ' = s·σ / (1 + (s − 1)·σ)``; ``s > 1`` spends more time at high noise."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * sigma / (1 + (shift - 1) * sigma)


def sample_training_sigmas(
    batch_size: int,
    generator: torch.Generator | None = None,
    distribution: str = "logit_normal",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    num_frames: int | None = None,
) -> Tensor:
    """Draw training σ in (0, 1): ``[B]``, or ``[B, T]`` independent per frame when ``num_frames`` is given.

    ``logit_normal``: σ = sigmoid(N(mean, std)) (SD3); ``uniform``: σ ~ U(0, 1). The shift is applied after.
    Draws on the generator's device (use a CPU generator for reproducibility across devices).
    """
    shape = (batch_size,) if num_frames is None else (batch_size, num_frames)
    device = generator.device if generator is not None else "cpu"
    if distribution == "logit_normal":
        u = torch.randn(shape, generator=generator, device=device) * logit_std + logit_mean
        sigma = torch.sigmoid(u)
    elif distribution == "uniform":
        sigma = torch.rand(shape, generator=generator, device=device)
    else:
        raise ValueError(f"unknown sigma distribution {distribution!r} (logit_normal | uniform)")
    return shift_sigmas(sigma, shift) if shift != 1.0 else sigma
