"""Wan2.1 through diffusers as an anyframe backbone.

:class:`WanBackbone` *is* diffusers' ``WanTransformer3DModel`` (a subclass with the same weights, config
and modules, so ``from_pretrained``, ``from_single_file``, peft LoRA, FSDP and gradient checkpointing all
work unchanged) whose ``forward`` speaks anyframe's backbone protocol
(:class:`~anyframe.models.backbone.Backbone`):

- ``timestep``: ``[B]`` or per latent frame ``[B, T]``; per-frame σ are expanded to per-token timesteps,
  the ``[B, seq_len]`` form diffusers' Wan forward accepts (Wan2.2's ``expand_timesteps``);
- ``encoder_hidden_states``: ``[B, L, text_dim]``, or per latent frame ``[B, T, L, text_dim]``: flattened to
  ``[B, T·L, text_dim]`` for diffusers' forward (its text embedder works token by token) while a wrapper around
  each block's cross-attention processor folds the frames into the batch (:class:`PerFrameCrossAttention`);
- ``extra_channels``: concatenated after the latents on channels (Wan I2V's ``[latents, mask, condition]``);
- ``added_embeddings``: ``[B, D, T', H', W']`` added to the patch embedding (FlashI2V's Fourier features);
- ``context_tokens={"image": tokens}``: CLIP tokens (Wan I2V / FLF2V), passed to diffusers as its
  ``encoder_hidden_states_image`` — the one context-token group a Wan model can have (``config.image_dim``);
- ``encoder_attention_mask`` and ``micro_conditions`` are accepted and ignored: Wan attends to every text
  position (padding positions are zero embeddings, :data:`TEXT_PADDING`) and has no micro conditions.

Everything else is diffusers' own forward, called unchanged — that is what makes parity with
``WanPipeline`` exact. The causal video VAE (``AutoencoderKLWan``) compresses time by 4: a clip has
``1 + 4k`` frames and ``1 + k`` latent frames; :func:`latent_frame_index` maps pixel frames to latent frames.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
    UMT5Config,
    UMT5EncoderModel,
)

from anyframe.models.backbone import BackboneOutput, copy_with_new_modules, inflate_channels

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


@dataclass(frozen=True)
class FrameLayout:
    """How per-frame text lines up with the video tokens during one forward: ``text_frames`` latent frames of
    ``text_length`` tokens each, flattened ``[B, T·L, D]`` after any image tokens; ``token_frames`` (T') token
    frames, token frame j reading latent frame ``j · pt``."""

    text_frames: int
    text_length: int
    token_frames: int
    temporal_patch: int


class PerFrameCrossAttention:
    """A cross-attention processor (``attn2``) wrapping another (diffusers' ``WanAttnProcessor``) while a call
    with per-frame text is in flight: the video tokens ``[B, T'·N, D]`` (t-major, as diffusers lays them out)
    fold into ``[B·T', N, D]``, the context into each frame's own ``[B·T', N_img + L, D]`` — the image tokens,
    shared by every frame, then that frame's text — and the wrapped processor runs on them unchanged. Installed
    and removed by :meth:`WanBackbone.forward` for the call's duration (like its ``added_embeddings`` hook: one
    forward at a time per model); never saved."""

    def __init__(self, inner, layout: FrameLayout):
        self.inner, self.layout = inner, layout

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, rotary_emb=None, **kwargs) -> Tensor:
        lay = self.layout
        b, s, d = hidden_states.shape  # (B, T'·N, D)
        t = lay.token_frames
        num_image = encoder_hidden_states.shape[1] - lay.text_frames * lay.text_length
        image = encoder_hidden_states[:, :num_image]  # (B, N_img, D); N_img = 0 without image tokens
        text = encoder_hidden_states[:, num_image:].unflatten(1, (lay.text_frames, lay.text_length))
        text = text[:, :: lay.temporal_patch]  # (B, T', L, D): each token frame's first latent frame
        context = torch.cat([image[:, None].expand(-1, t, -1, -1), text], dim=2).flatten(0, 1)  # (B·T', N_img+L, D)
        out = self.inner(attn, hidden_states.reshape(b * t, s // t, d), context, attention_mask, rotary_emb, **kwargs)
        return out.reshape(b, s, -1)  # (B, T'·N, D)


@contextmanager
def _per_frame_cross_attention(block, layout: FrameLayout) -> Iterator[None]:
    attn = block.attn2
    inner = attn.processor
    attn.processor = PerFrameCrossAttention(inner, layout)
    try:
        yield
    finally:
        attn.processor = inner


def _run_per_frame(block, layout: FrameLayout, *args):
    with _per_frame_cross_attention(block, layout):
        return block(*args)


class WanBackbone(WanTransformer3DModel):
    """diffusers' ``WanTransformer3DModel`` speaking anyframe's backbone protocol (see the module doc)."""

    text_padding = TEXT_PADDING
    text_max_length = WAN_MAX_TEXT_LENGTH
    default_video_size = (81, 480, 832)  # frames, height, width: Wan2.1's 480p default (diffusers' too)
    # diffusers' WanPipeline: 50 steps, text CFG 5.0 (the image, if any, in both branches), no renormalisation
    sampling_defaults: ClassVar[dict] = dict(num_inference_steps=50, guidance_scale=5.0, guidance_mode="cfg", renorm=None)
    # LoRA's default targets (peft, by name suffix): q/k/v/o of the self- and cross-attention (I2V: also the
    # image key/value projections) and the feed-forward
    lora_target_modules = ("to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj", "ffn.net.0.proj", "ffn.net.2")
    channel_layers = ("patch_embedding", "proj_out")  # what :func:`~anyframe.models.backbone.inflate_channels` widens

    @property
    def latent_channels(self) -> int:
        """C of the video latents (the output, less any extra output channels; I2V models take more input
        channels). Extra output channels added by :func:`~anyframe.models.backbone.inflate_channels` are
        recorded as ``config._extra_out_channels`` (diffusers' config has no field for them; it keeps the
        entry through save / load as hidden config)."""
        out = int(self.config.out_channels or self.config.in_channels)
        return out - int(self.config.get("_extra_out_channels", 0))

    @property
    def token_dim(self) -> int:
        return int(self.config.num_attention_heads * self.config.attention_head_dim)

    @property
    def context_groups(self) -> tuple[str, ...]:
        """``("image",)`` for a model with image tokens (``config.image_dim``: Wan I2V / FLF2V), else ``()``."""
        return ("image",) if self.config.image_dim is not None else ()

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_attention_mask: Tensor | None = None,
        micro_conditions: Tensor | None = None,
        extra_channels: Tensor | None = None,
        added_embeddings: Tensor | None = None,
        context_tokens: dict[str, Tensor] | None = None,
        return_dict: bool = True,
        attention_kwargs: dict | None = None,
    ) -> BackboneOutput | tuple[Tensor]:
        """Predict the velocity (the :class:`~anyframe.models.backbone.Backbone` protocol).

        Args:
            hidden_states: ``[B, C, T, H, W]`` latents.
            timestep: ``[B]``, per latent frame ``[B, T]``, or per token ``[B, T'·H'·W'']``; ``σ · 1000``.
            encoder_hidden_states: ``[B, L, text_dim]`` (zero past each prompt, see :data:`TEXT_PADDING`), or per
                latent frame ``[B, T, L, text_dim]``: each frame's cross-attention then reads only its own text
                (with a temporal patch pt > 1, the text of its patch's first latent frame). Wan pools no text.
            encoder_attention_mask, micro_conditions: ignored (see the module doc).
            extra_channels: ``[B, C_extra, T, H, W]``, concatenated after ``hidden_states``.
            added_embeddings: ``[B, D, T', H', W']``, added to the patch embedding.
            context_tokens: ``{"image": [B·K, N, image_dim]}``, CLIP tokens of K images per sample, for a model
                with ``image_dim`` (:attr:`context_groups`); passed to diffusers as ``encoder_hidden_states_image``.
                Not given: diffusers' image branch attends to an empty set of tokens, which adds 0 (the
                protocol's "missing group is skipped"; checked on CPU, where torch's attention over no keys
                returns 0). Any other name is a ValueError. diffusers splits the image tokens from the
                text assuming 512 text tokens (Wan's padded length, :data:`WAN_MAX_TEXT_LENGTH`).
            attention_kwargs: diffusers' (LoRA scale).

        Returns:
            :class:`BackboneOutput` (``return_dict``) or ``(sample,)``; ``sample``: ``[B, out_channels, T, H, W]``.
        """
        encoder_hidden_states_image = self._image_tokens(context_tokens)
        if extra_channels is not None:
            hidden_states = torch.cat([hidden_states, extra_channels.to(hidden_states.dtype)], dim=1)
        p_t, p_h, p_w = self.config.patch_size
        t, h, w = hidden_states.shape[2] // p_t, hidden_states.shape[3] // p_h, hidden_states.shape[4] // p_w
        if timestep.ndim == 2 and timestep.shape[1] == t:
            timestep = timestep.repeat_interleave(h * w, dim=1)  # per frame → per token (tokens are t-major)
        layout = None
        if encoder_hidden_states.ndim == 4:
            b, num_frames = hidden_states.shape[0], hidden_states.shape[2]
            if encoder_hidden_states.shape[:2] != (b, num_frames):
                raise ValueError(f"per-frame encoder_hidden_states must be [B, T, L, D] = [{b}, {num_frames}, L, D], "
                                 f"got {tuple(encoder_hidden_states.shape)}")
            layout = FrameLayout(text_frames=encoder_hidden_states.shape[1], text_length=encoder_hidden_states.shape[2],
                                 token_frames=t, temporal_patch=p_t)
            encoder_hidden_states = encoder_hidden_states.flatten(1, 2)  # (B, T·L, text_dim): embedded token by token
        with self._patch_embedding_added(added_embeddings), self._per_frame_text(layout):
            out = super().forward(
                hidden_states=hidden_states,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                encoder_hidden_states_image=encoder_hidden_states_image,
                return_dict=False,
                attention_kwargs=attention_kwargs,
            )[0]
        return BackboneOutput(sample=out) if return_dict else (out,)

    def _image_tokens(self, context_tokens: dict[str, Tensor] | None) -> Tensor | None:
        """``context_tokens["image"]``, checked; ``None`` if not given."""
        if not context_tokens:
            return None
        unknown = set(context_tokens) - set(self.context_groups)
        if unknown:
            raise ValueError(f"unknown context-token group(s) {sorted(unknown)}; this Wan model has "
                             f"{list(self.context_groups) or 'none'} (image tokens need config.image_dim)")
        image = context_tokens.get("image")
        if image is not None and (image.ndim != 3 or image.shape[2] != self.config.image_dim):
            raise ValueError(f"image tokens must be [B·K, N, {self.config.image_dim}], got {tuple(image.shape)}")
        return image

    @contextmanager
    def _patch_embedding_added(self, added_embeddings: Tensor | None) -> Iterator[None]:
        """The patch embedding's output [B, D, T', H', W'] is where the added embeddings go; a hook keeps
        diffusers' forward (and so parity) untouched."""
        if added_embeddings is None:
            yield
            return
        hook = self.patch_embedding.register_forward_hook(lambda _m, _i, out: out + added_embeddings.to(out.dtype))
        try:
            yield
        finally:
            hook.remove()

    @contextmanager
    def _per_frame_text(self, layout: FrameLayout | None) -> Iterator[None]:
        """While diffusers' forward runs on per-frame text: each block's cross-attention processor wrapped in
        :class:`PerFrameCrossAttention`. Under gradient checkpointing the wrapping goes into the checkpointed
        function instead, so that the blocks' recomputation in the backward pass folds the frames too."""
        if layout is None:
            yield
            return
        if torch.is_grad_enabled() and self.gradient_checkpointing:  # the condition diffusers' forward checks
            checkpoint = self._gradient_checkpointing_func
            self._gradient_checkpointing_func = lambda block, *args: checkpoint(
                functools.partial(_run_per_frame, block, layout), *args)
            try:
                yield
            finally:
                self._gradient_checkpointing_func = checkpoint
            return
        with ExitStack() as stack:
            for block in self.blocks:
                stack.enter_context(_per_frame_cross_attention(block, layout))
            yield

    # --------------------------------------------------------------------------------------------

    def with_extra_channels(self, extra_in_channels: int = 0, extra_out_channels: int = 0) -> WanBackbone:
        """A copy with more input / output channels (:func:`~anyframe.models.backbone.inflate_channels`): the
        new weights are zero, so the copy computes the same velocity as this model (and zeros on the new
        output channels)."""
        return inflate_channels(self, extra_in_channels, extra_out_channels)

    def _config_with_extra_channels(self, extra_in: int, extra_out: int) -> dict:
        out = int(self.config.out_channels or self.config.in_channels)
        return {**self.config, "in_channels": self.config.in_channels + extra_in, "out_channels": out + extra_out,
                "_extra_out_channels": int(self.config.get("_extra_out_channels", 0)) + extra_out}

    def with_context_group(self, name: str, dim: int) -> WanBackbone:
        """A copy with the ``"image"`` group (the only one diffusers' Wan blocks have), for a model without it:
        ``image_dim = dim`` and, as Wan2.1's I2V configs, image keys / values of the blocks' width.

        diffusers initialises the image branch as ordinary layers (its ``add_k_proj`` / ``add_v_proj`` are
        ``nn.Linear``'s default init, not zero, and the branch shares ``attn2``'s output projection), so a
        diffusers-built I2V model's image branch is live from the start. The copy made here zeroes the new
        ``add_v_proj`` (weight and bias): the image attention then returns exactly 0, so the copy computes this
        model's velocity until training moves the values (the keys get gradients once the values are non-zero).
        """
        if name != "image":
            raise ValueError(f"a Wan backbone can only have the context-token group 'image' (diffusers' image "
                             f"tokens, encoder_hidden_states_image), not {name!r}")
        if "image" in self.context_groups:
            raise ValueError("the model already has the context-token group 'image'")
        config = {**self.config, "image_dim": int(dim), "added_kv_proj_dim": self.token_dim}
        new = copy_with_new_modules(self, config, ("condition_embedder.image_embedder.", ".attn2.add_k_proj.",
                                                   ".attn2.add_v_proj.", ".attn2.norm_added_k."))
        with torch.no_grad():
            for block in new.blocks:
                block.attn2.add_v_proj.weight.zero_()
                block.attn2.add_v_proj.bias.zero_()
        return new


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
        return range(1)
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
