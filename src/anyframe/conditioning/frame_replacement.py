"""STIV frame replacement: condition on clean latents at any set of frames (STIV §2.3).

Training: sample a task per example (T2V, TI2V, any frame, first+last, first k), replace those frames
of ``x_σ`` by their clean latents, and exclude them from the loss. The text is dropped 10% of the time
and the image condition 8% (STIV App. E), independently: that is what makes JIT-CFG work.

Inference: the backbone sees the clean latents at the keyframes at every step; the sampler state at
those frames follows the exact path ``(1 − σ)·c + σ·ε``, so a branch that drops the image (JIT-CFG's
unconditional pass) sees the same kind of input as an image-dropped training example, and the final
latents at the keyframes equal the conditioning latents bit for bit.

``clean_timestep=True`` gives the conditioned frames a per-frame σ = 0 (a ``[B, T]`` timestep);
``False`` keeps STIV's shared σ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class by name in the module that defines the
# component (model_index.json records "anyframe.conditioning.frame_replacement"), so it must be here.
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
from anyframe.conditioning.tasks import TaskMixture
from anyframe.flow.guidance import Branch
from anyframe.flow.path import add_noise, velocity_target
from anyframe.flow.timesteps import TIMESTEP_SCALE


@dataclass
class FrameReplacementState(ConditionState):
    clean: Tensor | None = None  # [B, C, T, H, W], the conditioning latents at their frames, 0 elsewhere
    frame_mask: Tensor | None = None  # [B, T] bool, True at conditioned frames
    noise: Tensor | None = None  # [B, C, T, H, W], the starting noise (the path at the keyframes)

    @property
    def has_image(self) -> bool:
        return self.frame_mask is not None and bool(self.frame_mask.any())

    def generated_mask(self) -> Tensor | None:
        if not self.has_image:
            return None
        return (~self.frame_mask)[:, None, :, None, None]


def keyframe_clip(like: Tensor, keyframe_latents: Tensor, indices) -> tuple[Tensor, Tensor]:
    """The keyframe latents ``[B, C, K, H, W]`` placed at their frames of a clip shaped like ``like``
    (zeros elsewhere), and the ``[B, T]`` frame mask."""
    b, _, t = like.shape[:3]
    indices = list(indices)
    if len(set(indices)) != len(indices) or not all(0 <= i < t for i in indices):
        raise ValueError(f"keyframe indices {indices} must be distinct and in [0, {t})")
    clean = torch.zeros_like(like)
    clean[:, :, indices] = keyframe_latents.to(like.dtype)
    mask = torch.zeros(b, t, dtype=torch.bool, device=like.device)
    mask[:, indices] = True
    return clean, mask


def _frames(mask: Tensor) -> Tensor:
    return mask[:, None, :, None, None]  # [B, T] → [B, 1, T, 1, 1]


class FrameReplacement(ConditioningMethod):
    """Frame replacement with STIV's task mixture and text/image condition dropout.

    Args:
        clean_timestep: conditioned frames carry σ = 0 instead of the shared σ.
        text_dropout, image_dropout: training dropout probabilities (STIV: 0.10 and 0.08).
        task_weights: the :class:`TaskMixture` weights, ``{"t2v": 1, "ti2v": 1, ...}``; tasks not named
            get weight 0 (default: every task at weight 1).
        max_k: the largest k of the ``first_k`` (prediction) task; default T // 2.
    """

    @register_to_config
    def __init__(
        self,
        clean_timestep: bool = False,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
        task_weights: dict | None = None,
        max_k: int | None = None,
    ):
        super().__init__()
        self.mixture = TaskMixture.named(task_weights, max_k)
        self.mixture.weights()  # validate now, not at the first training step

    # ---------------------------------------------------------------- inference

    def prepare(self, inputs: ConditionInputs) -> FrameReplacementState:
        noise = inputs.noise
        state = FrameReplacementState(inputs.text, inputs.null_text, inputs.micro_conditions, noise=noise)
        if inputs.keyframe_latents is None or not inputs.keyframe_indices:
            return state
        state.clean, state.frame_mask = keyframe_clip(noise, inputs.keyframe_latents, inputs.keyframe_indices)
        return state

    def _timestep(self, sigma: Tensor, frame_mask: Tensor | None) -> Tensor:
        timestep = sigma * TIMESTEP_SCALE  # [B]
        if self.config.clean_timestep and frame_mask is not None:
            per_frame = timestep[:, None].expand(-1, frame_mask.shape[1])
            return torch.where(frame_mask, torch.zeros_like(per_frame), per_frame)  # [B, T]
        return timestep

    def model_inputs(self, x: Tensor, sigma: Tensor, state: FrameReplacementState, branch: Branch) -> ModelInputs:
        text = state.text if branch.text else state.null_text
        frame_mask = state.frame_mask if (branch.image and state.has_image) else None
        hidden = x if frame_mask is None else torch.where(_frames(frame_mask), state.clean, x)
        return ModelInputs.of(hidden, self._timestep(sigma, frame_mask), text, state.micro_conditions)

    def after_step(self, x: Tensor, sigma_next: Tensor, state: FrameReplacementState) -> Tensor:
        if not state.has_image:
            return x
        path = add_noise(state.clean, state.noise, sigma_next.to(x.dtype))
        return torch.where(_frames(state.frame_mask), path, x)

    def finalize(self, x: Tensor, state: FrameReplacementState) -> Tensor:
        if not state.has_image:
            return x
        return torch.where(_frames(state.frame_mask), state.clean, x)

    # ---------------------------------------------------------------- training

    def training_inputs(
        self, batch: TrainingBatch, sigma: Tensor, noise: Tensor, generator: torch.Generator | None = None
    ) -> TrainingInputs:
        x0 = batch.latents
        b, _, t = x0.shape[:3]
        frame_mask, tasks = self.mixture.sample(b, t, generator)
        drop_image, drop_text = self.draw_dropout(b, generator)
        frame_mask = (frame_mask & ~drop_image[:, None]).to(x0.device)

        x_sigma = add_noise(x0, noise, sigma)
        hidden = torch.where(_frames(frame_mask), x0, x_sigma)
        text = batch.text.select(~drop_text, batch.null_text)
        return TrainingInputs(
            model_inputs=ModelInputs.of(
                hidden, self._timestep(sigma, frame_mask if frame_mask.any() else None), text, batch.micro_conditions
            ),
            target=velocity_target(x0, noise),
            loss_mask=(~_frames(frame_mask)).to(x0.dtype),
            info={"tasks": tasks, "drop_image": drop_image, "drop_text": drop_text, "frame_mask": frame_mask},
        )
