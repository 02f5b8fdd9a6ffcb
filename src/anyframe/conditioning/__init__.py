"""Conditioning methods: one file each, behind one protocol (``base``), in one registry (``registry``).

Adding a method is adding a file: a :class:`ConditioningMethod` subclass decorated with
:func:`register_method`, imported below so that its name is known (see ``docs/adding-a-method.md``).
"""

from anyframe.conditioning.base import (
    ConditioningMethod,
    ConditionState,
    Denoiser,
    Encoders,
    ModelInputs,
    NoOptions,
    TrainingBatch,
    TrainingInputs,
)
from anyframe.conditioning.channel_concat import ChannelConcat
from anyframe.conditioning.flashi2v import FlashI2V
from anyframe.conditioning.frame_replacement import FrameReplacement, FrameReplacementState
from anyframe.conditioning.jdm import JointMasks
from anyframe.conditioning.loss_weighting import LossWeighting
from anyframe.conditioning.reasondiff import ReasonDiff
from anyframe.conditioning.registry import METHODS, build_method, method_class, register_method
from anyframe.conditioning.stack import MethodStack
from anyframe.conditioning.tasks import TASKS, TaskMixture
from anyframe.conditioning.wan_i2v import WanI2V

__all__ = [
    "METHODS", "build_method", "method_class", "register_method",
    "ConditioningMethod", "ConditionState", "Encoders", "ModelInputs", "NoOptions", "TrainingBatch", "TrainingInputs",
    "Denoiser", "MethodStack", "FrameReplacement", "FrameReplacementState", "ChannelConcat", "FlashI2V", "WanI2V",
    "LossWeighting", "JointMasks", "ReasonDiff", "TaskMixture", "TASKS",
]
