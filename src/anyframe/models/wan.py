"""Wan2.1 through diffusers as an anyframe backbone.

:class:`WanBackbone` *is* diffusers' ``WanTransformer3DModel`` (a subclass with the same weights, config
and modules, so ``from_pretrained``, ``from_single_file``, peft LoRA, FSDP and gradient checkpointing all
work unchanged) whose ``forward`` also takes the keyword arguments of anyframe's backbone protocol
(see ``STIVTransformer.forward``):

- ``timestep``: ``[B]`` or per latent frame ``[B, T]``; per-frame σ are expanded to per-token timesteps,
  the ``[B, seq_len]`` form diffusers' Wan forward accepts (Wan2.2's ``expand_timesteps``);
- ``extra_channels``: concatenated after the latents on channels (Wan I2V's ``[latents, mask, condition]``);
- ``added_embeddings``: ``[B, D, T', H', W']`` added to the patch embedding (FlashI2V's Fourier features);
- ``encoder_hidden_states_image``: CLIP tokens (Wan I2V / FLF2V), passed through;
- ``encoder_attention_mask`` and ``micro_conditions`` are accepted and ignored: Wan attends to every text
  position (padding positions are zero embeddings, :data:`TEXT_PADDING`) and has no micro conditions.

Everything else is diffusers' own forward, called unchanged — that is what makes parity with
``WanPipeline`` exact. The causal video VAE (``AutoencoderKLWan``) compresses time by 4: a clip has
``1 + 4k`` frames and ``1 + k`` latent frames; :func:`latent_frame_index` maps pixel frames to latent frames.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

TEXT_PADDING = "zeros"
"""Wan's text convention: prompts are padded to a fixed length (512) with zero embeddings, and the backbone
attends to all of it (no attention mask) — so padding is never trimmed."""

WAN_MAX_TEXT_LENGTH = 512  # WanPipeline's max_sequence_length

# ------------------------------------------------------------------------------------------------
#                                       Named sizes
# ------------------------------------------------------------------------------------------------

WAN_TRANSFORMERS: dict[str, dict] = {
    # Tests (the sizes diffusers' own Wan tests use).
    "tiny": dict(num_attention_heads=2, attention_head_dim=12, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
                 rope_max_seq_len=32),
    # Wan2.1-T2V-1.3B / Wan2.1-T2V-14B (the I2V/FLF2V 14B models add in_channels=36, image_dim=1280).
    "1.3B": dict(num_attention_heads=12, attention_head_dim=128, text_dim=4096, freq_dim=256, ffn_dim=8960,
                 num_layers=30),
    "14B": dict(num_attention_heads=40, attention_head_dim=128, text_dim=4096, freq_dim=256, ffn_dim=13824,
                num_layers=40),
}


class WanBackbone(WanTransformer3DModel):
    """diffusers' ``WanTransformer3DModel`` speaking anyframe's backbone protocol (see the module doc)."""

    text_padding = TEXT_PADDING
    text_max_length = WAN_MAX_TEXT_LENGTH
    default_video_size = (81, 480, 832)  # frames, height, width: Wan2.1's 480p default (diffusers' too)
    # diffusers' WanPipeline: 50 steps, text CFG 5.0 (the image, if any, in both branches), no renormalisation
    sampling_defaults = dict(num_inference_steps=50, guidance_scale=5.0, guidance_mode="cfg", renorm=None)

    @property
    def latent_channels(self) -> int:
        """C of the video latents (the output; I2V models take more input channels)."""
        return int(self.config.out_channels or self.config.in_channels)

    @property
    def token_dim(self) -> int:
        return int(self.config.num_attention_heads * self.config.attention_head_dim)

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_attention_mask: Tensor | None = None,
        micro_conditions: Tensor | None = None,
        extra_channels: Tensor | None = None,
        added_embeddings: Tensor | None = None,
        encoder_hidden_states_image: Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict | None = None,
    ):
        """Predict the velocity.

        Args:
            hidden_states: ``[B, C, T, H, W]`` latents.
            timestep: ``[B]``, per latent frame ``[B, T]``, or per token ``[B, T'·H'·W'']``; ``σ · 1000``.
            encoder_hidden_states: ``[B, L, text_dim]`` (zero past each prompt, see :data:`TEXT_PADDING`).
            extra_channels: ``[B, C_extra, T, H, W]``, concatenated after ``hidden_states``.
            added_embeddings: ``[B, D, T', H', W']``, added to the patch embedding.
            encoder_hidden_states_image: ``[B·K, N, image_dim]`` CLIP tokens of K images per sample.
        """
        if extra_channels is not None:
            hidden_states = torch.cat([hidden_states, extra_channels.to(hidden_states.dtype)], dim=1)
        p_t, p_h, p_w = self.config.patch_size
        t, h, w = hidden_states.shape[2] // p_t, hidden_states.shape[3] // p_h, hidden_states.shape[4] // p_w
        if timestep.ndim == 2 and timestep.shape[1] == t:
            timestep = timestep.repeat_interleave(h * w, dim=1)  # per frame → per token (tokens are t-major)
        hook = None
        if added_embeddings is not None:
            # The patch embedding's output [B, D, T', H', W'] is where the added embeddings go; a hook keeps
            # diffusers' forward (and so parity) untouched.
            hook = self.patch_embedding.register_forward_hook(lambda _m, _i, out: out + added_embeddings.to(out.dtype))
        try:
            return super().forward(
                hidden_states=hidden_states,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                encoder_hidden_states_image=encoder_hidden_states_image,
                return_dict=return_dict,
                attention_kwargs=attention_kwargs,
            )
        finally:
            if hook is not None:
                hook.remove()


def cast_like_from_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``model.to(dtype)``, except the parameters diffusers keeps in float32 when it loads with
    ``torch_dtype`` (``_keep_in_fp32_modules``: Wan's RoPE, time embedder, modulation tables and norms) — so a
    model built in code runs as the same model loaded from disk would."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    model.to(dtype)
    for name, param in model.named_parameters():
        if any(k in name.split(".") for k in keep):
            param.data = param.data.float()
    return model


def build_wan(size: str = "tiny", **overrides) -> WanBackbone:
    """A randomly initialised Wan backbone of a named size (``overrides``: any config field, e.g.
    ``in_channels=36, image_dim=1280`` for an I2V model)."""
    if size not in WAN_TRANSFORMERS:
        raise ValueError(f"unknown Wan size {size!r} ({', '.join(WAN_TRANSFORMERS)})")
    return WanBackbone(**{**WAN_TRANSFORMERS[size], **overrides})


# ------------------------------------------------------------------------------------------------
#                              The causal VAE's frame mapping
# ------------------------------------------------------------------------------------------------


def num_latent_frames(num_frames: int, temporal_compression: int) -> int:
    """Latent frames of a clip: ``1 + (T − 1) / r`` for a causal VAE (``T = 1 + r·k``); ``T`` for r = 1."""
    if temporal_compression == 1:
        return num_frames
    if num_frames < 1 or (num_frames - 1) % temporal_compression:
        raise ValueError(f"num_frames must be 1 + {temporal_compression}·k, got {num_frames}")
    return (num_frames - 1) // temporal_compression + 1


def latent_frame_index(pixel_index: int, temporal_compression: int) -> int:
    """The latent frame holding pixel frame ``pixel_index`` (≥ 0): a causal VAE encodes frame 0 alone and
    then chunks of r frames, so pixel frames ``r·(j−1)+1 … r·j`` share latent frame j."""
    if pixel_index < 0:
        raise ValueError(f"pixel_index must be >= 0, got {pixel_index}")
    return 0 if pixel_index == 0 else (pixel_index - 1) // temporal_compression + 1


def pixel_frames_of(latent_index: int, temporal_compression: int) -> range:
    """The pixel frames latent frame ``latent_index`` covers (the inverse of :func:`latent_frame_index`)."""
    if latent_index == 0:
        return range(0, 1)
    return range(temporal_compression * (latent_index - 1) + 1, temporal_compression * latent_index + 1)


# ------------------------------------------------------------------------------------------------
#                        Tiny random components for tests (nothing downloaded)
# ------------------------------------------------------------------------------------------------


def build_wan_vae(size: str = "tiny") -> AutoencoderKLWan:
    """``tiny``: the config diffusers' Wan tests use (8× spatial, 4× temporal, 16 latent channels);
    ``2.1``: Wan2.1's VAE."""
    if size == "tiny":
        return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True]).eval()
    if size == "2.1":
        return AutoencoderKLWan().eval()
    raise ValueError(f"unknown Wan VAE size {size!r} (tiny | 2.1)")


def build_umt5_encoder(vocab_size: int, d_model: int = 32) -> UMT5EncoderModel:
    """A tiny randomly initialised UMT5 encoder (Wan's text encoder family)."""
    config = UMT5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
                        decoder_start_token_id=0, is_encoder_decoder=False, use_cache=False)
    return UMT5EncoderModel(config).eval()


def build_clip_vision(image_size: int = 32) -> tuple[CLIPVisionModel, CLIPImageProcessorPil]:
    """A tiny CLIP vision tower and its processor (Wan I2V's image encoder family; ``image_dim`` = 4)."""
    config = CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, intermediate_size=16, patch_size=1)
    return CLIPVisionModel(config).eval(), CLIPImageProcessorPil(crop_size=image_size, size=image_size)


def tiny_wan_components(kind: str = "t2v", seed: int = 0, image_size: int = 32, text_length: int = 16,
                        vocabulary=None, **backbone_overrides) -> dict:
    """The components of a tiny random Wan pipeline, as ``WanPipeline(**c)`` / ``WanImageToVideoPipeline(**c)``
    take them (``kind``: ``t2v`` | ``i2v`` | ``flf2v``): for tests and smoke runs, built in code.
    ``vocabulary``: the word tokenizer's (default: a small general one)."""
    if kind not in ("t2v", "i2v", "flf2v"):
        raise ValueError(f"unknown Wan pipeline kind {kind!r} (t2v | i2v | flf2v)")
    from diffusers import UniPCMultistepScheduler

    from anyframe.models.text_encoder import build_word_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(max_length=text_length) if vocabulary is None else \
        build_word_tokenizer(vocabulary, max_length=text_length)
    text_encoder = build_umt5_encoder(len(tokenizer))
    vae = build_wan_vae("tiny")
    extra = {}
    if kind != "t2v":
        # as Wan2.1's I2V/FLF2V configs: image tokens through their own key/value projections (width = inner dim)
        inner = WAN_TRANSFORMERS["tiny"]["num_attention_heads"] * WAN_TRANSFORMERS["tiny"]["attention_head_dim"]
        extra = dict(in_channels=2 * 16 + 4, image_dim=4, added_kv_proj_dim=inner)
        if kind == "flf2v":
            extra["pos_embed_seq_len"] = 2 * (image_size * image_size + 1)  # two images' CLIP tokens
    transformer = build_wan("tiny", **{**extra, **backbone_overrides}).eval()
    components = dict(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
    )
    if kind != "t2v":
        components["image_encoder"], components["image_processor"] = build_clip_vision(image_size)
    return components
