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

from dataclasses import dataclass, replace

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class by name in the module that defines the
# component (model_index.json records "anyframe.conditioning.frame_replacement"), so it must be here.
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
from anyframe.conditioning.registry import register_method
from anyframe.conditioning.tasks import TaskMixture
from anyframe.flow.guidance import Branch
from anyframe.flow.path import add_noise
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


def encode_keyframe_clip(request, encoders: Encoders) -> tuple[Tensor, Tensor] | tuple[None, None]:
    """The request's keyframes as latent frames at their (latent) frames of the video state: the clean clip
    ``[B, C, T, h, w]`` (zeros elsewhere) and the ``[B, T]`` frame mask; (None, None) without keyframes."""
    if not request.keyframes:
        return None, None
    noise = encoders.noise
    latents = encoders.keyframe_latents(request.keyframes).to(noise.device, noise.dtype)
    indices = [encoders.latent_index(k.frame_index) for k in request.keyframes]
    video = noise[:, : latents.shape[1]]  # (the state may carry other methods' channels after the video's)
    return keyframe_clip(video, latents.expand(noise.shape[0], -1, -1, -1, -1), indices)


def _frames(mask: Tensor) -> Tensor:
    return mask[:, None, :, None, None]  # [B, T] → [B, 1, T, 1, 1]


def replace_frames(x: Tensor, clean: Tensor, frame_mask: Tensor) -> Tensor:
    """``x`` with its first ``clean.shape[1]`` channels replaced by ``clean`` at the masked frames (channels past
    the video's — another method's state — are left alone)."""
    c = clean.shape[1]
    if x.shape[1] == c:
        return torch.where(_frames(frame_mask), clean, x)
    return torch.cat([torch.where(_frames(frame_mask), clean, x[:, :c]), x[:, c:]], dim=1)


@register_method
class FrameReplacement(ConditioningMethod):
    """Frame replacement with STIV's task mixture and text/image condition dropout.

    Args:
        clean_timestep: conditioned frames carry σ = 0 instead of the shared σ.
        text_dropout, image_dropout: training dropout probabilities (STIV: 0.10 and 0.08).
        task_weights: the :class:`TaskMixture` weights, ``{"t2v": 1, "ti2v": 1, ...}``; tasks not named
            get weight 0 (default: every task at weight 1).
        max_k: the largest k of the ``first_k`` (prediction) task; default T // 2.
    """

    name = "frame_replacement"
    summary = "keyframes at any frame by frame replacement (STIV)"
    request_fields = frozenset({"keyframes"})

    @register_to_config
    def __init__(
        self,
        clean_timestep: bool = False,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
        task_weights: dict[str, float] | None = None,
        max_k: int | None = None,
    ):
        super().__init__()
        check_dropout_rates(text_dropout, image_dropout)
        self.mixture = TaskMixture.named(task_weights, max_k)
        self.mixture.weights()  # validate now, not at the first training step

    def check_request(self, request, limits) -> str | None:
        return keyframes_in_distinct_latent_frames(request, limits)

    # ---------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> FrameReplacementState:
        clean, frame_mask = encode_keyframe_clip(request, encoders)
        return FrameReplacementState.of(encoders, noise=encoders.noise, clean=clean, frame_mask=frame_mask)

    def _timestep(self, sigma: Tensor, frame_mask: Tensor | None) -> Tensor:
        timestep = sigma * TIMESTEP_SCALE  # [B]
        if self.config.clean_timestep and frame_mask is not None:
            per_frame = timestep[:, None].expand(-1, frame_mask.shape[1])
            return torch.where(frame_mask, torch.zeros_like(per_frame), per_frame)  # [B, T]
        return timestep

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: FrameReplacementState,
              branch: Branch) -> ModelInputs:
        if not (branch.image and state.has_image):
            return inputs
        hidden = replace_frames(inputs.hidden_states, state.clean, state.frame_mask)
        return replace(inputs, hidden_states=hidden, timestep=self._timestep(sigma, state.frame_mask))

    def after_step(self, x: Tensor, sigma_next: Tensor, state: FrameReplacementState) -> Tensor:
        if not state.has_image:
            return x
        c = state.clean.shape[1]
        path = add_noise(state.clean, state.noise[:, :c], sigma_next.to(x.dtype))
        return replace_frames(x, path, state.frame_mask)

    def finalize(self, x: Tensor, state: FrameReplacementState) -> Tensor:
        if not state.has_image:
            return x
        return replace_frames(x, state.clean, state.frame_mask)

    # ---------------------------------------------------------------- training

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        x0 = batch.latents
        b, _c, t = x0.shape[:3]
        frame_mask, tasks = self.mixture.sample(b, t, generator)
        frame_mask = (frame_mask & ~inputs.drop_image[:, None]).to(x0.device)
        model_inputs = inputs.model_inputs
        if frame_mask.any():
            model_inputs = replace(model_inputs, hidden_states=replace_frames(model_inputs.hidden_states, x0, frame_mask),
                                   timestep=self._timestep(inputs.sigma, frame_mask))
        keep = (~_frames(frame_mask)).to(x0.dtype)  # [B, 1, T, 1, 1]
        out = replace(inputs, model_inputs=model_inputs, info={**inputs.info, "tasks": tasks, "frame_mask": frame_mask})
        return out.with_loss_mask(keep)
