"""Conditioning methods: one file each, behind one protocol (see ``base``)."""

from anyframe.conditioning.base import (
    ConditionInputs,
    ConditioningMethod,
    Denoiser,
    ConditionState,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
)
from anyframe.conditioning.channel_concat import ChannelConcat
from anyframe.conditioning.flashi2v import FlashI2V
from anyframe.conditioning.frame_replacement import FrameReplacement, FrameReplacementState
from anyframe.conditioning.tasks import TASKS, TaskMixture

METHODS = {"frame_replacement": FrameReplacement, "channel_concat": ChannelConcat, "flashi2v": FlashI2V}


def build_method(name: str, backbone, **options) -> ConditioningMethod:
    """A conditioning method by name, sized for ``backbone`` (latent channels, token width, patch)."""
    if name not in METHODS:
        raise ValueError(f"unknown conditioning method {name!r} ({', '.join(METHODS)})")
    cfg = backbone.config
    if name == "channel_concat":
        options = {"latent_channels": cfg.in_channels, **options}
    elif name == "flashi2v":
        options = {"latent_channels": cfg.in_channels, "hidden_size": cfg.hidden_size,
                   "patch_size": tuple(cfg.patch_size), **options}
    return METHODS[name](**options)


__all__ = [
    "METHODS", "build_method",
    "ConditioningMethod", "ConditionInputs", "ConditionState", "ModelInputs", "TrainingBatch", "TrainingInputs",
    "Denoiser", "FrameReplacement", "FrameReplacementState", "ChannelConcat", "FlashI2V", "TaskMixture", "TASKS",
]
