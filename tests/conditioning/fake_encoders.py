"""A stand-in for the pipeline's encoders in method unit tests: given latents instead of images (a per-frame
autoencoder, so latent frame = pixel frame), and requests whose keyframes carry only their frame index."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from anyframe.models.text_encoder import TextCondition
from anyframe.pipelines import GenerationRequest, Keyframe


@dataclass
class TensorEncoders:
    noise: Tensor
    text: TextCondition
    null_text: TextCondition
    keyframe_latents_given: Tensor | None = None  # [B, C, K, h, w], one per keyframe, in the request's order
    micro_conditions: Tensor | None = None
    temporal_compression: int = 1

    def latent_index(self, pixel_index: int) -> int:
        return pixel_index

    def keyframe_latents(self, keyframes) -> Tensor:
        return self.keyframe_latents_given[:, :, : len(keyframes)]


def request(indices=(), num_frames: int = 8, **options) -> GenerationRequest:
    """A resolved request with keyframes at ``indices`` (their images are not read by TensorEncoders)."""
    return GenerationRequest(prompt="p", keyframes=[Keyframe(None, i) for i in indices], num_frames=num_frames,
                             options=options)


def encode(method, noise, text, null_text, keyframe_latents=None, indices=(), **options):
    """``method.encode`` of a request with keyframes at ``indices`` whose latents are ``keyframe_latents``."""
    encoders = TensorEncoders(noise, text, null_text, keyframe_latents)
    return method.encode(request(indices, noise.shape[2], **options), encoders)


__all__ = ["TensorEncoders", "request", "encode", "torch"]
