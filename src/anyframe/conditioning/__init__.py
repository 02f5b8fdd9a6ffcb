"""Conditioning methods: one file each, behind one protocol (see ``base``)."""

from anyframe.conditioning.base import (
    ConditionInputs,
    ConditioningMethod,
    ConditionState,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
)
from anyframe.conditioning.frame_replacement import FrameReplacement, FrameReplacementState
from anyframe.conditioning.tasks import TASKS, TaskMixture

__all__ = [
    "ConditioningMethod", "ConditionInputs", "ConditionState", "ModelInputs", "TrainingBatch", "TrainingInputs",
    "FrameReplacement", "FrameReplacementState", "TaskMixture", "TASKS",
]
