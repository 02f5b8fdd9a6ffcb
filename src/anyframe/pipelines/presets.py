"""Randomly initialised pipelines by name: the world presets (the starting point of training, and of tests) and
a tiny random Wan (tests and CPU smoke runs of the recipe)."""

from __future__ import annotations

import torch

from anyframe.conditioning.registry import build_method
from anyframe.flow.sampling import make_scheduler
from anyframe.models.autoencoder import build_world_autoencoder, spatial_compression
from anyframe.models.dit import build_stiv
from anyframe.models.text_encoder import build_t5_encoder, build_word_tokenizer
from anyframe.models.wan import tiny_wan_components
from anyframe.pipelines.anyframe import AnyFramePipeline
from anyframe.pipelines.wan_folder import default_method
from anyframe.world import world_vocabulary

WORLD_PRESETS = {
    # size: (backbone, autoencoder, text encoder, pixels, frames, tokenizer length)
    # max_length: world captions of up to 4 objects run to ~122 word tokens (95th percentile ~96)
    "tiny": dict(backbone="tiny", autoencoder="tiny", text_encoder="tiny", pixels=16, frames=8, max_length=32),
    "S": dict(backbone="S", autoencoder="S", text_encoder="S", pixels=32, frames=16, max_length=128),
}


def build_world_pipeline(
    size: str = "S",
    seed: int = 0,
    shift: float = 1.0,
    method: str = "frame_replacement",
    method_options: dict | None = None,
    **backbone_kwargs,
) -> AnyFramePipeline:
    """A randomly initialised world-scale pipeline (the starting point of training, and of tests).
    ``method`` names the conditioning method (``anyframe.conditioning.METHODS``); ``method_options`` are
    its constructor's arguments (e.g. ``{"clean_timestep": True}`` for frame replacement)."""
    if size not in WORLD_PRESETS:
        raise ValueError(f"unknown world preset {size!r} ({', '.join(WORLD_PRESETS)})")
    p = WORLD_PRESETS[size]
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(world_vocabulary(), max_length=p["max_length"])
    text_encoder = build_t5_encoder(p["text_encoder"], len(tokenizer))
    vae = build_world_autoencoder(p["autoencoder"], sample_size=p["pixels"])
    latent = p["pixels"] // spatial_compression(vae)
    transformer = build_stiv(
        p["backbone"],
        **{
            "in_channels": vae.config.latent_channels,
            "text_dim": text_encoder.config.d_model,
            "sample_size": (p["frames"], latent, latent),
            **backbone_kwargs,
        },
    )
    conditioning = build_method(method, transformer, **(method_options or {}))
    transformer = conditioning.adapt_backbone(transformer)
    return AnyFramePipeline(
        transformer=transformer.eval(),  # eval, like diffusers' loader: train mode changes attention kernels
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=make_scheduler("euler", shift),
        conditioning=conditioning.eval(),
    )


def build_wan_pipeline(
    size: str = "tiny",
    kind: str = "t2v",
    seed: int = 0,
    method: str | None = None,
    method_options: dict | None = None,
    vocabulary=None,
    **backbone_kwargs,
) -> AnyFramePipeline:
    """A randomly initialised tiny Wan pipeline (tests, CPU smoke runs of the recipe): ``kind`` t2v | i2v |
    flf2v; ``method`` defaults to the backbone's (frame replacement on T2V, Wan I2V on I2V)."""
    if size != "tiny":
        raise ValueError("only the tiny Wan preset is built at random; load real weights with from_pretrained")
    components = tiny_wan_components(kind, seed=seed, vocabulary=vocabulary, **backbone_kwargs)
    transformer = components["transformer"]
    conditioning = default_method(transformer) if method is None else build_method(method, transformer, **(method_options or {}))
    return AnyFramePipeline(**components, conditioning=conditioning.eval())
