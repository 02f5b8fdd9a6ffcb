"""Autoencoders: diffusers ``AutoencoderKL`` applied to each frame of a video (world scale), and Wan's
causal video VAE ``AutoencoderKLWan`` (pretrained scale), behind one encode/decode pair.

The latent normalisation lives in the autoencoder's own config (``scaling_factor``, ``shift_factor``):
``latent = (z − shift) · scale``, so a pipeline folder carries it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderKLWan
from torch import Tensor

from anyframe.errors import AnyframeInputError

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


def load_autoencoder(folder) -> AutoencoderKL | AutoencoderKLWan:
    """An autoencoder folder (``config.json`` + safetensors) by the class its config names; a folder that
    is not one is an :class:`~anyframe.errors.AnyframeInputError`."""

    try:
        name = json.loads((Path(folder) / "config.json").read_text()).get("_class_name")
        cls = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLWan": AutoencoderKLWan}[name]
        return cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except KeyError:
        raise AnyframeInputError(f"{folder}: not an AutoencoderKL / AutoencoderKLWan folder") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise AnyframeInputError(f"{folder}: cannot load the autoencoder ({' '.join(str(exc).split())[:200]})") from None


def is_causal_video_vae(vae) -> bool:
    """A video VAE that compresses time (Wan's ``AutoencoderKLWan``) rather than a per-frame ``AutoencoderKL``."""
    return isinstance(vae, AutoencoderKLWan)


def spatial_compression(vae) -> int:
    if is_causal_video_vae(vae):
        return int(vae.config.scale_factor_spatial)
    return 2 ** (len(vae.config.block_out_channels) - 1)


def temporal_compression(vae) -> int:
    """Pixel frames per latent frame: 1 for a per-frame autoencoder, 4 for Wan's causal VAE (whose first
    latent frame holds frame 0 alone, see :func:`anyframe.models.wan.latent_frame_index`)."""
    return int(vae.config.scale_factor_temporal) if is_causal_video_vae(vae) else 1


def latent_channels(vae) -> int:
    return int(vae.config.z_dim) if is_causal_video_vae(vae) else int(vae.config.latent_channels)


def _shift(vae: AutoencoderKL) -> float:
    return float(vae.config.shift_factor or 0.0)


def _wan_stats(vae, like: Tensor) -> tuple[Tensor, Tensor]:
    """Wan's per-channel latent mean and 1/std, shaped [1, C, 1, 1, 1] — computed as diffusers' Wan
    pipelines compute them, so normalised latents match theirs bit for bit."""
    c = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, c, 1, 1, 1).to(like.device, like.dtype)
    inv_std = (1.0 / torch.tensor(vae.config.latents_std)).view(1, c, 1, 1, 1).to(like.device, like.dtype)
    return mean, inv_std


def _retry_tiled_on_oom(vae, run):
    """``run()``; on a GPU out-of-memory error, switch the VAE to tiled (and sliced) decoding and retry once.
    (The usual memory switches of diffusers' VAEs; a user who never runs out pays nothing for them.)"""
    try:
        return run()
    except torch.OutOfMemoryError:
        if getattr(vae, "use_tiling", True) and getattr(vae, "use_slicing", True):
            raise
        warnings.warn("the VAE ran out of memory; retrying with tiling and slicing enabled")
        torch.cuda.empty_cache()
        if hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        if hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        return run()


def encode_video(vae, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """``[B, 3, T, H, W]`` in [−1, 1] → normalised latents ``[B, C, T_latent, h, w]``.

    A per-frame autoencoder encodes frame by frame (``T_latent = T``); Wan's causal VAE encodes the clip
    (``T = 1 + 4k`` → ``1 + k``) and normalises by its per-channel mean and std.
    ``sample=False`` takes the posterior mode (deterministic, used for conditioning frames).
    """
    if is_causal_video_vae(vae):
        dist = _retry_tiled_on_oom(vae, lambda: vae.encode(video.to(vae.dtype)).latent_dist)
        z = dist.sample(generator) if sample else dist.mode()
        mean, inv_std = _wan_stats(vae, z)
        return (z - mean) * inv_std
    b, _, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w).to(vae.dtype)
    dist = vae.encode(frames).latent_dist
    z = dist.sample(generator) if sample else dist.mode()
    z = (z - _shift(vae)) * vae.config.scaling_factor
    return z.view(b, t, *z.shape[1:]).permute(0, 2, 1, 3, 4)


def decode_video(vae, latents: Tensor) -> Tensor:
    """Normalised latents ``[B, C, T_latent, h, w]`` → video ``[B, 3, T, H, W]`` in [−1, 1] (not clamped)."""
    if is_causal_video_vae(vae):
        z = latents.to(vae.dtype)
        mean, inv_std = _wan_stats(vae, z)
        z = z / inv_std + mean
        return _retry_tiled_on_oom(vae, lambda: vae.decode(z).sample)
    b, c, t, h, w = latents.shape
    z = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).to(vae.dtype)
    z = z / vae.config.scaling_factor + _shift(vae)
    frames = vae.decode(z).sample
    return frames.view(b, t, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
