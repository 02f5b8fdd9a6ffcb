"""Flow matching: the σ path, training-σ sampling and shift, guidance, and the sampling loop.

Nothing here imports a model. Convention (diffusers / Wan / FlashI2V): ``x_σ = (1 − σ)·x0 + σ·ε``,
velocity target ``v = ε − x0``, sampling integrates σ from 1 to 0. Backbones receive
``timestep = σ · 1000`` (diffusers' ``num_train_timesteps``).
"""

from anyframe.flow.guidance import (
    CFG,
    FULL,
    IMAGE_ONLY,
    JITCFG,
    UNCOND,
    Branch,
    Guidance,
    NoGuidance,
    Renormalized,
    TextImageCFG,
    guided_velocity,
    make_guidance,
    renormalize,
)
from anyframe.flow.path import add_noise, flow_matching_loss, velocity_target
from anyframe.flow.sampling import make_scheduler, sample
from anyframe.flow.timesteps import TIMESTEP_SCALE, sample_training_sigmas, shift_sigmas

__all__ = [
    "Branch", "FULL", "UNCOND", "IMAGE_ONLY", "Guidance", "NoGuidance", "CFG", "JITCFG", "TextImageCFG",
    "Renormalized", "renormalize", "guided_velocity", "make_guidance", "add_noise", "velocity_target",
    "flow_matching_loss", "make_scheduler", "sample", "shift_sigmas", "sample_training_sigmas",
    "TIMESTEP_SCALE",
]
