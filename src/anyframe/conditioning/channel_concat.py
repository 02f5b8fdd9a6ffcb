"""Channel concatenation: the I2V paradigm of SVD and Wan2.1 I2V, the baseline FlashI2V argues against.

The condition latents sit at their frames of a condition clip (zeros elsewhere) and a mask channel marks
those frames; both are concatenated to the noisy video on channels (``extra_channels``: C + 1). Every
frame is generated — the conditioned ones too — and every frame is in the loss. Because the denoiser
reads the clean image at full resolution at every step, it can copy it: the leakage the FlashI2V paper
measures (slow motion, colour drift out of domain). The backbone's new input weights start at zero, so
adding the channels to a trained model leaves its velocity unchanged.

Which frames are conditioned in training comes from STIV's task mixture (default: TI2V only); text and
image are dropped independently (a dropped image zeroes the condition and mask channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor

from anyframe.conditioning.base import (
    ConditionInputs,
    ConditioningMethod,
    ConditionState,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
)
from anyframe.conditioning.frame_replacement import keyframe_clip
from anyframe.conditioning.tasks import TaskMixture
from anyframe.flow.guidance import Branch
from anyframe.flow.path import add_noise, velocity_target
from anyframe.flow.timesteps import TIMESTEP_SCALE


@dataclass
class ChannelConcatState(ConditionState):
    clean: Tensor | None = None  # [B, C, T, H, W], condition latents at their frames, 0 elsewhere
    frame_mask: Tensor | None = None  # [B, T] bool

    @property
    def has_image(self) -> bool:
        return self.frame_mask is not None and bool(self.frame_mask.any())


def condition_channels(clean: Tensor, frame_mask: Tensor) -> Tensor:
    """``[B, C + 1, T, H, W]``: the condition latents where ``frame_mask`` [B, T] is set, and the mask."""
    m = frame_mask[:, None, :, None, None].to(clean.dtype)
    mask = m.expand(-1, 1, -1, *clean.shape[-2:])
    return torch.cat([clean * m, mask], dim=1)


class ChannelConcat(ConditioningMethod):
    """Condition latents + a mask channel, concatenated to the input (backbone ``extra_in_channels = C + 1``).

    Args:
        latent_channels: C.
        text_dropout, image_dropout: training dropout probabilities.
        task_weights: :class:`TaskMixture` weights; tasks not named get weight 0 (default: ``{"ti2v": 1}``).
        max_k: the largest k of ``first_k``.
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
        task_weights: dict | None = None,
        max_k: int | None = None,
    ):
        super().__init__()
        self.mixture = TaskMixture.named(task_weights, max_k, default={"ti2v": 1.0})
        self.mixture.weights()  # validate now

    @classmethod
    def for_backbone(cls, backbone, **options) -> ChannelConcat:
        return cls(latent_channels=backbone.latent_channels, **options)

    @property
    def extra_in_channels(self) -> int:
        return self.config.latent_channels + 1

    def adapt_backbone(self, backbone):
        have = backbone.config.extra_in_channels
        if have == self.extra_in_channels:
            return backbone
        if have:
            raise ValueError(f"the backbone has {have} extra input channels; channel concat needs {self.extra_in_channels}")
        return backbone.with_extra_channels(extra_in_channels=self.extra_in_channels)

    # ---------------------------------------------------------------------------------- inference

    def prepare(self, inputs: ConditionInputs) -> ChannelConcatState:
        state = ChannelConcatState(inputs.text, inputs.null_text, inputs.micro_conditions)
        if inputs.keyframe_latents is not None and inputs.keyframe_indices:
            state.clean, state.frame_mask = keyframe_clip(inputs.noise, inputs.keyframe_latents, inputs.keyframe_indices)
        return state

    def model_inputs(self, x: Tensor, sigma: Tensor, state: ChannelConcatState, branch: Branch) -> ModelInputs:
        text = state.text if branch.text else state.null_text
        if branch.image and state.has_image:
            extra = condition_channels(state.clean, state.frame_mask)
        else:
            extra = x.new_zeros(x.shape[0], self.extra_in_channels, *x.shape[2:])
        return ModelInputs.of(x, sigma * TIMESTEP_SCALE, text, state.micro_conditions, extra_channels=extra)

    # ---------------------------------------------------------------------------------- training

    def training_inputs(
        self, batch: TrainingBatch, sigma: Tensor, noise: Tensor, generator: torch.Generator | None = None
    ) -> TrainingInputs:
        x0 = batch.latents
        b, _, t = x0.shape[:3]
        frame_mask, tasks = self.mixture.sample(b, t, generator)
        drop_image, drop_text = self.draw_dropout(b, generator)
        frame_mask = (frame_mask & ~drop_image[:, None]).to(x0.device)
        text = batch.text.select(~drop_text, batch.null_text)
        return TrainingInputs(
            model_inputs=ModelInputs.of(
                add_noise(x0, noise, sigma),  # every frame noised and generated
                sigma * TIMESTEP_SCALE,
                text,
                batch.micro_conditions,
                extra_channels=condition_channels(x0, frame_mask),
            ),
            target=velocity_target(x0, noise),
            info={"tasks": tasks, "drop_image": drop_image, "drop_text": drop_text, "frame_mask": frame_mask},
        )
