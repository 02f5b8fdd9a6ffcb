"""Wan I2V / FLF2V conditioning: Wan2.1's own image-to-video (and first-last-frame) scheme, as a method.

What diffusers' ``WanImageToVideoPipeline`` does, expressed in anyframe's protocol so that guidance,
samplers and the pipeline loop are shared:

- the pixel clip with the keyframe images at their frames and zeros elsewhere is encoded by the causal
  VAE (``ConditionInputs.condition_latents``, ``[B, C, T_lat, h, w]``);
- a mask at *pixel* resolution says which frames are given: 1 at keyframes, 0 elsewhere; frame 0's entry
  is repeated r times (the causal VAE's first latent frame holds one pixel frame) and the mask folded
  into ``r`` channels per latent frame (``[B, r, T_lat, h, w]``);
- the backbone sees ``[x, mask, condition]`` on channels (Wan I2V's ``in_channels = 2C + r = 36``) and the
  CLIP tokens of the image(s) through ``encoder_hidden_states_image``.

Unlike frame replacement, a keyframe at any *pixel* frame is expressed exactly (the mask resolves the 4
pixel frames inside a latent frame). Branches without the image (JIT-CFG's unconditional pass) see zero
condition channels and zero CLIP tokens — the dropped-image state of fine-tuning with image dropout.
(Wan's released I2V models were trained without it: use text-only CFG, ``guidance_mode="cfg"``, which is
what diffusers' pipeline does.)
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
from anyframe.flow.guidance import Branch
from anyframe.flow.path import add_noise, velocity_target
from anyframe.flow.timesteps import TIMESTEP_SCALE


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


class WanI2V(ConditioningMethod):
    """Wan2.1 I2V / FLF2V conditioning (see the module doc).

    Args:
        latent_channels: C.
        temporal_compression: r, the VAE's pixel frames per latent frame (Wan: 4).
        text_dropout, image_dropout: training dropout probabilities.
    """

    uses_condition_video = True
    uses_image_embeds = True
    uses_keyframe_latents = False

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 16,
        temporal_compression: int = 4,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
    ):
        super().__init__()

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

    def prepare(self, inputs: ConditionInputs) -> WanI2VState:
        state = WanI2VState(inputs.text, inputs.null_text, inputs.micro_conditions)
        if inputs.condition_latents is None:
            return state
        if inputs.pixel_frame_mask is None:
            raise ValueError("Wan I2V needs the pixel frame mask of its condition clip")
        condition = condition_channels(inputs.condition_latents.to(inputs.noise.dtype), inputs.pixel_frame_mask,
                                       self.config.temporal_compression)
        state.condition = condition.expand(inputs.noise.shape[0], -1, -1, -1, -1)
        state.image_embeds = inputs.image_embeds
        return state

    def model_inputs(self, x: Tensor, sigma: Tensor, state: WanI2VState, branch: Branch) -> ModelInputs:
        text = state.text if branch.text else state.null_text
        with_image = branch.image and state.has_image
        extra = state.condition if with_image else x.new_zeros(x.shape[0], self.extra_in_channels, *x.shape[2:])
        image = state.image_embeds
        if image is not None and not with_image:
            image = torch.zeros_like(image)
        return ModelInputs.of(x, sigma * TIMESTEP_SCALE, text, state.micro_conditions, extra_channels=extra,
                              encoder_hidden_states_image=image)

    # ---------------------------------------------------------------------------------- training

    needs_pixels_in_training = True

    @torch.no_grad()
    def batch_extras(self, pipe, video: Tensor) -> dict:
        """Wan I2V's training condition from the pixel clips: the first frame given (FLF2V: first and last),
        encoded as at inference — the clip with those frames and zeros elsewhere through the VAE, the pixel
        mask folded into channels, and the image encoder's tokens of those frames."""
        from PIL import Image

        from anyframe.io import to_uint8
        from anyframe.models.autoencoder import encode_video

        b, _, t = video.shape[:3]
        frames = pipe.image_token_frames(range(t))  # the frames given: the first (FLF2V: and the last)
        mask = torch.zeros(b, t, dtype=torch.bool, device=video.device)
        mask[:, frames] = True
        latents = encode_video(pipe.vae, video * mask[:, None, :, None, None].to(video.dtype)).float()
        extras = {"condition": condition_channels(latents, mask, self.config.temporal_compression)}
        if pipe.takes_image_tokens:
            pixels = to_uint8(((video[:, :, frames].permute(0, 2, 3, 4, 1) + 1) / 2).clamp(0, 1).cpu().numpy())
            extras["image_embeds"] = pipe.image_tokens([Image.fromarray(f) for clip in pixels for f in clip])
        return extras

    def training_inputs(
        self, batch: TrainingBatch, sigma: Tensor, noise: Tensor, generator: torch.Generator | None = None
    ) -> TrainingInputs:
        """Needs ``batch.extras["condition"]`` (``[B, r + C, T_lat, h, w]``, the mask channels and the condition
        clip's latents, as :meth:`prepare` builds them) and, for a model with ``image_dim``,
        ``batch.extras["image_embeds"]``."""
        if "condition" not in batch.extras:
            raise ValueError("Wan I2V training needs batch.extras['condition'] (mask channels + condition-clip latents)")
        x0 = batch.latents
        b = x0.shape[0]
        drop_image, drop_text = self.draw_dropout(b, generator)
        keep = (~drop_image).to(x0.dtype).view(b, 1, 1, 1, 1)
        condition = batch.extras["condition"].to(x0) * keep
        image = batch.extras.get("image_embeds")
        if image is not None:
            per_sample = image.shape[0] // b
            image = image * (~drop_image).repeat_interleave(per_sample).to(image.dtype).view(-1, 1, 1)
        text = batch.text.select(~drop_text, batch.null_text)
        return TrainingInputs(
            model_inputs=ModelInputs.of(add_noise(x0, noise, sigma), sigma * TIMESTEP_SCALE, text, batch.micro_conditions,
                                        extra_channels=condition, encoder_hidden_states_image=image),
            target=velocity_target(x0, noise),
            info={"tasks": ["t2v" if d else "ti2v" for d in drop_image.tolist()], "drop_image": drop_image,
                  "drop_text": drop_text},
        )
