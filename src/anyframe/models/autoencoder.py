"""Per-frame autoencoders: diffusers ``AutoencoderKL`` applied to each frame of a video.

The latent normalisation lives in the autoencoder's own config (``scaling_factor``, ``shift_factor``):
``latent = (z − shift) · scale``, so a pipeline folder carries it.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL
from torch import Tensor

WORLD_AUTOENCODERS: dict[str, dict] = {
    # Tests: 2× downsampling, 4 latent channels.
    "tiny": dict(block_out_channels=(16, 32), layers_per_block=1, latent_channels=4, norm_num_groups=8),
    # World scale: 32×32 px → 8×8×4 latents (4× downsampling).
    "S": dict(block_out_channels=(32, 64, 64), layers_per_block=1, latent_channels=4, norm_num_groups=32),
}


def build_world_autoencoder(
    size: str = "S", sample_size: int = 32, scaling_factor: float = 1.0, shift_factor: float = 0.0
) -> AutoencoderKL:
    """A randomly initialised per-frame ``AutoencoderKL`` for the shapes world."""
    if size not in WORLD_AUTOENCODERS:
        raise ValueError(f"unknown autoencoder size {size!r} ({', '.join(WORLD_AUTOENCODERS)})")
    cfg = WORLD_AUTOENCODERS[size]
    n = len(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        sample_size=sample_size,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        **cfg,
    )


def spatial_compression(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _shift(vae: AutoencoderKL) -> float:
    return float(vae.config.shift_factor or 0.0)


def encode_video(vae: AutoencoderKL, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """``[B, 3, T, H, W]`` in [−1, 1] → normalised latents ``[B, C, T, h, w]``, frame by frame.

    ``sample=False`` takes the posterior mode (deterministic, used for conditioning frames).
    """
    b, _, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w).to(vae.dtype)
    dist = vae.encode(frames).latent_dist
    z = dist.sample(generator) if sample else dist.mode()
    z = (z - _shift(vae)) * vae.config.scaling_factor
    return z.view(b, t, *z.shape[1:]).permute(0, 2, 1, 3, 4)


def decode_video(vae: AutoencoderKL, latents: Tensor) -> Tensor:
    """Normalised latents ``[B, C, T, h, w]`` → video ``[B, 3, T, H, W]`` in [−1, 1] (not clamped)."""
    b, c, t, h, w = latents.shape
    z = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).to(vae.dtype)
    z = z / vae.config.scaling_factor + _shift(vae)
    frames = vae.decode(z).sample
    return frames.view(b, t, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
