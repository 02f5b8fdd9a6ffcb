"""Wan I2V / FLF2V conditioning: Wan2.1's own image-to-video (and first-last-frame) scheme, as a method.

What diffusers' ``WanImageToVideoPipeline`` does, expressed in anyframe's protocol so that guidance,
samplers and the pipeline loop are shared:

- the pixel clip with the keyframe images at their frames and zeros elsewhere is encoded by the causal
  VAE (``Encoders.condition_video``, ``[B, C, T_lat, h, w]``);
- a mask at *pixel* resolution says which frames are given: 1 at keyframes, 0 elsewhere; frame 0's entry
  is repeated r times (the causal VAE's first latent frame holds one pixel frame) and the mask folded
  into ``r`` channels per latent frame (``[B, r, T_lat, h, w]``);
- the backbone sees ``[x, mask, condition]`` on channels (Wan I2V's ``in_channels = 2C + r = 36``) and the
  CLIP tokens of the image(s) as the context-token group ``image`` (diffusers' ``encoder_hidden_states_image``).

Unlike frame replacement, a keyframe at any *pixel* frame is expressed exactly (the mask resolves the 4
pixel frames inside a latent frame). Branches without the image (JIT-CFG's unconditional pass) see zero
condition channels and zero CLIP tokens — the dropped-image state of fine-tuning with image dropout.
(Wan's released I2V models were trained without it: use text-only CFG, ``guidance_mode="cfg"``, which is
what diffusers' pipeline does.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from PIL import Image
from torch import Tensor

from anyframe.conditioning.base import (
    ConditioningMethod,
    ConditionState,
    Encoders,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
    check_dropout_rates,
)
from anyframe.conditioning.registry import register_method
from anyframe.flow.guidance import Branch
from anyframe.io import to_uint8


@dataclass
class WanI2VState(ConditionState):
    condition: Tensor | None = None  # [B, r + C, T_lat, h, w]: the mask channels, then the condition latents
    image_embeds: Tensor | None = None  # [B·K, N, D] CLIP tokens, or None (a model without image_dim)

    @property
    def has_image(self) -> bool:
        return self.condition is not None


def pixel_mask_channels(pixel_frame_mask: Tensor, temporal_compression: int, height: int, width: int) -> Tensor:
    """``[B, T_pix]`` → ``[B, r, T_lat, h, w]``: Wan's I2V mask (frame 0 repeated r times, then folded)."""
    r = temporal_compression
    b, t = pixel_frame_mask.shape
    mask = pixel_frame_mask.to(torch.float32)[:, None, :, None, None].expand(b, 1, t, height, width)
    mask = torch.cat([mask[:, :, :1].repeat_interleave(r, dim=2), mask[:, :, 1:]], dim=2)  # [B, 1, T + r − 1, h, w]
    return mask.reshape(b, -1, r, height, width).transpose(1, 2)


def condition_channels(latents: Tensor, pixel_frame_mask: Tensor, temporal_compression: int) -> Tensor:
    """The backbone's extra input ``[B, r + C, T_lat, h, w]``: the folded pixel mask, then the condition clip's
    latents ``[B, C, T_lat, h, w]`` (the same at inference and in training)."""
    h, w = latents.shape[-2:]
    mask = pixel_mask_channels(pixel_frame_mask, temporal_compression, h, w).to(latents)
    if mask.shape[2] != latents.shape[2]:
        raise ValueError(f"the pixel mask folds into {mask.shape[2]} latent frames; the condition has {latents.shape[2]}")
    return torch.cat([mask, latents], dim=1)


@register_method
class WanI2V(ConditioningMethod):
    """Wan2.1 I2V / FLF2V conditioning (see the module doc).

    Args:
        latent_channels: C (read from the backbone).
        temporal_compression: r, the VAE's pixel frames per latent frame (Wan: 4; read from the backbone).
        text_dropout, image_dropout: training dropout probabilities.
    """

    name = "wan_i2v"
    summary = "Wan2.1's own image-to-video and first-last-frame conditioning"
    request_fields = frozenset({"keyframes"})
    backbone_options = ("latent_channels", "temporal_compression")
    batch_fields = frozenset({"pixels"})

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 16,
        temporal_compression: int = 4,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
    ):
        super().__init__()
        check_dropout_rates(text_dropout, image_dropout)

    @classmethod
    def for_backbone(cls, backbone, **options) -> WanI2V:
        c = backbone.latent_channels
        r = options.pop("temporal_compression", None) or (backbone.config.in_channels - 2 * c)
        if backbone.config.in_channels != 2 * c + r:
            raise ValueError(f"a Wan I2V backbone takes 2·C + r input channels; this one takes {backbone.config.in_channels}")
        return cls(latent_channels=c, temporal_compression=r, **options)

    @property
    def extra_in_channels(self) -> int:
        return self.config.temporal_compression + self.config.latent_channels

    # ---------------------------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> WanI2VState:
        state = WanI2VState.of(encoders)
        if not request.keyframes:
            return state
        noise = encoders.noise
        latents, pixel_mask = encoders.condition_video(request.keyframes, request.num_frames)
        condition = condition_channels(latents.to(noise.device, noise.dtype), pixel_mask.to(noise.device),
                                       self.config.temporal_compression)
        state.condition = condition.expand(noise.shape[0], -1, -1, -1, -1)
        image = encoders.image_tokens(request.keyframes)
        if image is not None:
            state.image_embeds = image.to(noise.device).repeat(noise.shape[0], 1, 1)
        return state

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: WanI2VState, branch: Branch) -> ModelInputs:
        with_image = branch.image and state.has_image
        extra = state.condition if with_image else x.new_zeros(x.shape[0], self.extra_in_channels, *x.shape[2:])
        inputs = inputs.with_extra_channels(extra)
        image = state.image_embeds
        if image is None:
            return inputs
        return inputs.with_context_tokens("image", image if with_image else torch.zeros_like(image))

    # ---------------------------------------------------------------------------------- training

    @torch.no_grad()
    def training_condition(self, pixels: Tensor, encoders) -> tuple[Tensor, Tensor | None]:
        """Wan I2V's training condition from pixel clips ``[B, 3, T, H, W]``: the first frame given (FLF2V: first
        and last), encoded as at inference — the clip with those frames and zeros elsewhere through the VAE,
        the pixel mask folded into channels — and the image encoder's tokens of those frames (None without one)."""
        b, _, t = pixels.shape[:3]
        frames = encoders.image_token_frames(list(range(t)))  # the frames given: the first (FLF2V: and the last)
        mask = torch.zeros(b, t, dtype=torch.bool, device=pixels.device)
        mask[:, frames] = True
        latents = encoders.encode_video(pixels * mask[:, None, :, None, None].to(pixels.dtype)).float()
        condition = condition_channels(latents, mask, self.config.temporal_compression)
        uint8 = to_uint8(((pixels[:, :, frames].permute(0, 2, 3, 4, 1) + 1) / 2).clamp(0, 1).cpu().numpy())
        image = encoders.image_tokens_of([Image.fromarray(f) for clip in uint8 for f in clip])
        return condition, image

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        if batch.pixels is None or batch.encoders is None:
            raise ValueError("Wan I2V training needs the batch's pixels and the pipeline's encoders")
        x0 = batch.latents
        b = x0.shape[0]
        condition, image = self.training_condition(batch.pixels, batch.encoders)
        keep = ~inputs.drop_image
        model_inputs = inputs.model_inputs.with_extra_channels(condition.to(x0) * keep.to(x0.dtype).view(b, 1, 1, 1, 1))
        if image is not None:
            image = image.cpu()
            per_sample = image.shape[0] // b
            image = image * keep.repeat_interleave(per_sample).to(image.dtype).view(-1, 1, 1)
            model_inputs = model_inputs.with_context_tokens("image", image)
        tasks = ["t2v" if d else "ti2v" for d in inputs.drop_image.tolist()]
        return replace(inputs, model_inputs=model_inputs, info={**inputs.info, "tasks": tasks})
