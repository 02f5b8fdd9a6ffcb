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

from dataclasses import dataclass, replace

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor

from anyframe.conditioning.base import (
    ConditioningMethod,
    ConditionState,
    Encoders,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
    check_dropout_rates,
    keyframes_in_distinct_latent_frames,
)
from anyframe.conditioning.frame_replacement import encode_keyframe_clip
from anyframe.conditioning.registry import register_method
from anyframe.conditioning.tasks import TaskMixture
from anyframe.flow.guidance import Branch


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


@register_method
class ChannelConcat(ConditioningMethod):
    """Condition latents + a mask channel, concatenated to the input (backbone ``extra_in_channels = C + 1``).

    Args:
        latent_channels: C (read from the backbone).
        text_dropout, image_dropout: training dropout probabilities.
        task_weights: :class:`TaskMixture` weights; tasks not named get weight 0 (default: ``{"ti2v": 1}``).
        max_k: the largest k of ``first_k``.
    """

    name = "channel_concat"
    summary = "keyframes as condition channels (SVD / Wan I2V style)"
    request_fields = frozenset({"keyframes"})
    backbone_options = ("latent_channels",)

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
        task_weights: dict[str, float] | None = None,
        max_k: int | None = None,
    ):
        super().__init__()
        check_dropout_rates(text_dropout, image_dropout)
        self.mixture = TaskMixture.named(task_weights, max_k, default={"ti2v": 1.0})
        self.mixture.weights()  # validate now

    @classmethod
    def for_backbone(cls, backbone, **options) -> ChannelConcat:
        return cls(latent_channels=backbone.latent_channels, **options)

    @property
    def extra_in_channels(self) -> int:
        return self.config.latent_channels + 1

    def check_request(self, request, limits) -> str | None:
        return keyframes_in_distinct_latent_frames(request, limits)

    # ---------------------------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> ChannelConcatState:
        clean, frame_mask = encode_keyframe_clip(request, encoders)
        return ChannelConcatState.of(encoders, clean=clean, frame_mask=frame_mask)

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: ChannelConcatState,
              branch: Branch) -> ModelInputs:
        if branch.image and state.has_image:
            extra = condition_channels(state.clean, state.frame_mask)
        else:
            extra = x.new_zeros(x.shape[0], self.extra_in_channels, *x.shape[2:])
        return inputs.with_extra_channels(extra)

    # ---------------------------------------------------------------------------------- training

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        x0 = batch.latents
        b, _, t = x0.shape[:3]
        frame_mask, tasks = self.mixture.sample(b, t, generator)
        frame_mask = (frame_mask & ~inputs.drop_image[:, None]).to(x0.device)
        # every frame noised and generated, the conditioned ones too, and every frame in the loss
        return replace(inputs, model_inputs=inputs.model_inputs.with_extra_channels(condition_channels(x0, frame_mask)),
                       info={**inputs.info, "tasks": tasks, "frame_mask": frame_mask})
