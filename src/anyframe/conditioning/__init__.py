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
from anyframe.conditioning.wan_i2v import WanI2V

METHODS = {"frame_replacement": FrameReplacement, "channel_concat": ChannelConcat, "flashi2v": FlashI2V,
           "wan_i2v": WanI2V}


def build_method(name: str, backbone, **options) -> ConditioningMethod:
    """A conditioning method by name, sized for ``backbone`` (latent channels, token width, patch)."""
    if name not in METHODS:
        raise ValueError(f"unknown conditioning method {name!r} ({', '.join(METHODS)})")
    return METHODS[name].for_backbone(backbone, **options)


__all__ = [
    "METHODS", "build_method",
    "ConditioningMethod", "ConditionInputs", "ConditionState", "ModelInputs", "TrainingBatch", "TrainingInputs",
    "Denoiser", "FrameReplacement", "FrameReplacementState", "ChannelConcat", "FlashI2V", "WanI2V", "TaskMixture", "TASKS",
]
