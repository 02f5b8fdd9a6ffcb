"""The STIV backbone: a DiT over video latents with factorized spatial/temporal attention.

STIV (stiv.txt §2.1–2.2, Fig. 2): PixArt-α blocks with
- factorized attention per block: spatial self-attention (2D RoPE), temporal self-attention (1D RoPE),
  cross-attention to text tokens (padding mask), then an FFN;
- QK RMSNorm, and sandwich norm: ``x + gate · LN(F(scale · LN(x) + shift))`` with stateless LayerNorms;
- shared AdaLN (PixArt-α's adaLN-single): one modulation MLP for all blocks, a learned offset per block;
- the singleton condition = timestep + micro conditions + pooled text, each through a stateless
  LayerNorm, then summed.

The backbone knows tensors, not tasks: it speaks :class:`~anyframe.models.backbone.Backbone` — conditioning
methods hand it hidden states (plus optional extra channels), timesteps ``[B]`` or per frame ``[B, T]``, text
tokens (or per-frame text tokens), micro conditions, and named context-token groups (IP-Adapter style: each
group its own zero-initialised cross-attention branch per block).

Layout inside: ``x`` is kept as ``(B, T', N, D)`` — T' temporal tokens, N = H'·W' spatial tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.embeddings import (
    PixArtAlphaTextProjection,
    TimestepEmbedding,
    Timesteps,
    apply_rotary_emb,
    get_1d_rotary_pos_embed,
)
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from anyframe.models.backbone import BackboneOutput, copy_with_new_modules, inflate_channels

MICRO_CONDITIONS = ("frame_stride", "original_height", "original_width", "crop_top", "crop_left")
"""The order of the ``micro_conditions`` columns. ``frame_stride`` holds the stride (or the fps, if a
recipe trains with fps); the original size and crop coordinates are in pixels (SDXL / STIV)."""
_MICRO_GROUPS = (1, 2, 2)  # stride | original size | crop: each group gets its own MLP and LayerNorm


def _stateless_ln(x: Tensor, eps: float = 1e-6) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=eps)


# ------------------------------------------------------------------------------------------------
#                                  Rotary position embeddings
# ------------------------------------------------------------------------------------------------


def _positions(n: int, base: int | None, device) -> Tensor:
    """Token positions ``0..n-1``; with a base length, interpolated into the base range (STIV §2.4)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)
    if base is not None and n != base:
        pos = pos * (base / n)
    return pos


def rope_1d(n: int, head_dim: int, theta: float, base: int | None = None, device=None) -> tuple[Tensor, Tensor]:
    """(cos, sin), each ``[n, head_dim]``, interleaved-pair layout (diffusers ``use_real_unbind_dim=-1``)."""
    return get_1d_rotary_pos_embed(head_dim, _positions(n, base, device), theta=theta, use_real=True)


def rope_2d(
    h: int, w: int, head_dim: int, theta: float, base: tuple[int, int] | None = None, device=None
) -> tuple[Tensor, Tensor]:
    """2D RoPE: half of each head rotates with the row, half with the column. ``[h·w, head_dim]`` each."""
    half = head_dim // 2
    ch, sh = get_1d_rotary_pos_embed(half, _positions(h, base[0] if base else None, device), theta, use_real=True)
    cw, sw = get_1d_rotary_pos_embed(half, _positions(w, base[1] if base else None, device), theta, use_real=True)
    cos = torch.cat([ch[:, None, :].expand(h, w, half), cw[None, :, :].expand(h, w, half)], dim=-1)
    sin = torch.cat([sh[:, None, :].expand(h, w, half), sw[None, :, :].expand(h, w, half)], dim=-1)
    return cos.reshape(h * w, head_dim), sin.reshape(h * w, head_dim)


# ------------------------------------------------------------------------------------------------
#                                          Layers
# ------------------------------------------------------------------------------------------------


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` whose weight takes the input's dtype. Under bf16 autocast q and k arrive in bf16
    while the weight stays fp32, and torch then falls back to an unfused kernel (3–5 % of an S training
    step on one CPU thread, measured); in fp32 this is ``nn.RMSNorm`` exactly (same state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class Attention(nn.Module):
    """Multi-head attention with QK RMSNorm, optional RoPE and key padding mask, on torch SDPA.

    Written here rather than with diffusers' ``Attention`` because factorized video attention needs
    its own token folding and 2D/1D RoPE anyway (diffusers' Wan and CogVideoX do the same).
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, qk_norm: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        kv_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,  # (B, S, D)
        context: Tensor | None = None,  # (B, L, Dc); None: self-attention
        rope: tuple[Tensor, Tensor] | None = None,  # (S, head_dim) each
        key_mask: Tensor | None = None,  # (B, L) bool, True = attend
        context_index: Tensor | None = None,  # (B,) long: query row i reads context row context_index[i]
    ) -> Tensor:
        b, s, _ = x.shape
        ctx = x if context is None else context
        c = ctx.shape[0]  # B, or the number of distinct context rows (context_index)
        q = self.to_q(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, S, hd)
        k = self.to_k(ctx).view(c, ctx.shape[1], self.num_heads, self.head_dim).transpose(1, 2)  # (C, H, L, hd)
        v = self.to_v(ctx).view(c, ctx.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
        q, k = self.norm_q(q), self.norm_k(k)
        if context_index is not None:  # keys and values computed once per distinct context row, then gathered
            k, v = k[context_index], v[context_index]
            key_mask = None if key_mask is None else key_mask[context_index]
        if rope is not None:
            q = apply_rotary_emb(q, rope, use_real_unbind_dim=-1)
            k = apply_rotary_emb(k, rope, use_real_unbind_dim=-1)
        attn_mask = None
        if key_mask is not None:
            # A row with no valid key would give NaN; let it attend everywhere instead.
            key_mask = key_mask | ~key_mask.any(dim=-1, keepdim=True)
            attn_mask = key_mask[:, None, None, :]  # (B, 1, 1, L)
        if q.dtype == torch.bfloat16 and q.device.type == "cpu" and q.requires_grad:
            # torch's CPU attention backward is 2-4x slower in bf16 than in fp32 (measured on an AMX CPU; its
            # forward is not), while bf16 matmuls are ~10x faster: training under CPU bf16 autocast attends in
            # fp32 (autocast would cast the inputs back to bf16: it is off for this one call)
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask)
            out = out.to(q.dtype)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, S, hd)
        return self.to_out(out.transpose(1, 2).reshape(b, s, -1))  # (B, S, D)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TextRefinerBlock(nn.Module):
    """Self-attention over the caption tokens (1D RoPE on the token index, padding masked) and an FFN,
    pre-norm with residuals; both output projections start at zero, so a refiner added to a trained
    model leaves it unchanged.

    Why: a frozen text encoder that does not mix its tokens (the world models' randomly initialised T5:
    a word's output is the same whatever its neighbours, 1 − cosine ≈ 0.0003) hands cross-attention,
    which has no positions of its own, a bag of words, in which "a red circle and a blue square" and
    "a blue circle and a red square" are the same set. Refining the tokens under positions lets the
    blocks tell which word goes with which object (measured: ``benchmarks/results/binding_swap.md``) —
    Lumina-Image 2.0's context refiner, HunyuanVideo's token refiner. Written here: diffusers' versions
    are tied to their own models' attention processors and timestep modulation.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qk_norm: bool):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.norm_ffn = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = FeedForward(dim, mlp_ratio)

    def forward(self, x: Tensor, mask: Tensor | None, rope: tuple[Tensor, Tensor]) -> Tensor:  # x: (B, L, D)
        x = x + self.attn(self.norm_attn(x), rope=rope, key_mask=mask)
        return x + self.ffn(self.norm_ffn(x))


class STIVBlock(nn.Module):
    """Spatial attn → temporal attn → cross attn (text, then each context-token group) → FFN. Self-attentions
    and FFN are modulated (shift, scale, gate from the shared AdaLN + this block's offset) and sandwich-normed.

    Context-token groups (IP-Adapter's decoupled cross-attention): each group has its own attention, whose
    query is the same normed ``x`` the text cross-attention reads and whose keys / values are the group's
    tokens (width ``D_group``); its output is added to ``x`` after the text's. Its output projection starts at
    zero, so an untrained group adds exactly 0."""

    NUM_MODULATIONS = 9  # (shift, scale, gate) × (spatial, temporal, ffn)

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qk_norm: bool,
        sandwich_norm: bool,
        context_groups: dict[str, int] | None = None,
    ):
        super().__init__()
        self.spatial_attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.temporal_attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = Attention(dim, num_heads, qk_norm=qk_norm)
        # sorted: the order the branches add in, the same after a save / load (diffusers sorts config keys)
        groups = context_groups or {}
        self.context_attn = nn.ModuleDict(
            {name: Attention(dim, num_heads, context_dim=groups[name], qk_norm=qk_norm) for name in sorted(groups)}
        )
        self.ffn = FeedForward(dim, mlp_ratio)
        self.sandwich_norm = sandwich_norm
        # adaLN-single: this block's learned offset to the shared modulation.
        self.modulation_offset = nn.Parameter(torch.zeros(self.NUM_MODULATIONS, dim))

    def _post(self, x: Tensor) -> Tensor:
        return _stateless_ln(x) if self.sandwich_norm else x

    def forward(
        self,
        x: Tensor,  # (B, T', N, D)
        modulation: Tensor,  # (B, T' or 1, 9, D)
        context: Tensor,  # (B, L, D), or per token frame (B·T', L, D)
        context_mask: Tensor | None,  # (B, L), or per token frame (B·T', L)
        rope_spatial: tuple[Tensor, Tensor],
        rope_temporal: tuple[Tensor, Tensor],
        context_tokens: dict[str, Tensor] | None = None,  # {group: (B, N_g, D_g)}, groups of this block only
        context_index: Tensor | None = None,  # (B·T',) per-frame text: the row of ``context`` each frame reads
    ) -> Tensor:
        b, t, n, d = x.shape
        mod = (modulation + self.modulation_offset).unsqueeze(3)  # (B, T'|1, 9, 1, D)
        shift_s, scale_s, gate_s, shift_t, scale_t, gate_t, shift_f, scale_f, gate_f = mod.unbind(2)  # (B,T'|1,1,D)

        # Spatial self-attention: fold frames into the batch.
        h = _stateless_ln(x) * (1 + scale_s) + shift_s
        h = self.spatial_attn(h.reshape(b * t, n, d), rope=rope_spatial).view(b, t, n, d)
        x = x + gate_s * self._post(h)

        # Temporal self-attention: fold space into the batch. A single frame (an image) has no
        # temporal attention, so a T2I model is this model with fresh temporal layers (STIV §2.4).
        if t > 1:
            h = _stateless_ln(x) * (1 + scale_t) + shift_t
            h = h.permute(0, 2, 1, 3).reshape(b * n, t, d)  # (B·N, T', D)
            h = self.temporal_attn(h, rope=rope_temporal).view(b, n, t, d).permute(0, 2, 1, 3)
            x = x + gate_t * self._post(h)

        # Cross-attention to the text tokens (PixArt-α: unmodulated, output projection zero-initialised).
        # Text for the whole clip: one query sequence of T'·N tokens per sample. Per-frame text (B·T' context
        # rows): frames fold into the batch, so each frame's tokens read only that frame's text (``context``
        # then holds the distinct rows, and ``context_index`` says which row each frame reads).
        q = self.norm_cross(x)  # (B, T', N, D)
        rows = b * t if context_index is not None else context.shape[0]
        h = self.cross_attn(q.reshape(rows, -1, d), context=context, key_mask=context_mask, context_index=context_index)
        x = x + h.view(b, t, n, d)

        # Context-token groups (IP-Adapter): same query, the group's own keys / values, zero-initialised output.
        for name, attn in self.context_attn.items():
            if context_tokens is not None and name in context_tokens:
                h = attn(q.reshape(b, t * n, d), context=context_tokens[name])  # (B, T'·N, D)
                x = x + h.view(b, t, n, d)

        h = _stateless_ln(x) * (1 + scale_f) + shift_f
        x = x + gate_f * self._post(self.ffn(h))
        return x


# ------------------------------------------------------------------------------------------------
#                                          The model
# ------------------------------------------------------------------------------------------------


class STIVTransformer(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """STIV diffusion transformer over video latents ``[B, C, T, H, W]``.

    Args (config):
        in_channels: latent channels of the video state.
        out_channels: predicted channels (default ``in_channels``).
        extra_in_channels: condition channels concatenated to the input (``extra_channels`` in
            :meth:`forward`); their patch-embedding weights start at zero.
        extra_out_channels: extra predicted channels (e.g. a mask velocity); their output weights start at zero.
        patch_size: ``(pt, ph, pw)``.
        num_layers, hidden_size, num_heads, mlp_ratio: the transformer's size.
        text_dim: width of the text encoder's hidden states.
        sample_size: the latent ``(T, H, W)`` the model is trained at; pipelines use it as the default size.
        rope_theta: RoPE base.
        rope_base_grid: token grid ``(T', H', W')`` that positions are interpolated to (STIV's
            progressive recipe); ``None`` uses plain integer positions.
        use_micro_conditions: embed ``micro_conditions`` (see :data:`MICRO_CONDITIONS`).
        qk_norm, sandwich_norm: STIV's stability tricks (on by default, switchable for ablations).
        text_refiner_layers: :class:`TextRefinerBlock` layers over the projected text tokens before
            the blocks read them (0: none, STIV's own design).
        context_groups: context-token groups, name → token width (``context_tokens`` in :meth:`forward`):
            each block gets a cross-attention branch per group whose output projection starts at zero
            (:class:`STIVBlock`); ``None``: none. Add one to a trained model with :meth:`with_context_group`.
        trained_window: what the model was trained on, recorded by a training run's export (nothing reads it
            in the model): ``{"frames": [16], "sizes": [[32, 32]], "frame_strides": [1.0, 1.0]}`` (frame counts,
            pixel sizes, the lowest and highest frame stride); pipelines refuse requests outside it
            (:meth:`~anyframe.pipelines.request.ModelLimits.check_window`). ``None``: not recorded, not checked.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["STIVBlock"]
    text_padding = "masked"  # padding tokens are masked out of cross-attention (so pipelines may trim them)
    # LoRA's default targets (peft, by name suffix): q/k/v/o of every attention (self, cross, the text refiner's,
    # context groups') and both feed-forward layers
    lora_target_modules = ("to_q", "to_k", "to_v", "to_out", "fc1", "fc2")

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int | None = None,
        extra_in_channels: int = 0,
        extra_out_channels: int = 0,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        num_layers: int = 2,
        hidden_size: int = 64,
        num_heads: int = 2,
        mlp_ratio: float = 4.0,
        text_dim: int = 32,
        sample_size: tuple[int, int, int] = (8, 8, 8),
        rope_theta: float = 10000.0,
        rope_base_grid: tuple[int, int, int] | None = None,
        use_micro_conditions: bool = True,
        qk_norm: bool = True,
        sandwich_norm: bool = True,
        timestep_freq_dim: int = 256,
        text_refiner_layers: int = 0,
        context_groups: dict[str, int] | None = None,
        trained_window: dict | None = None,
    ):
        super().__init__()
        out_channels = out_channels or in_channels
        head_dim = hidden_size // num_heads
        if head_dim % 4:
            raise ValueError(f"head dim {head_dim} must be divisible by 4 for 2D RoPE")
        self.patch_size = tuple(patch_size)
        self.out_channels = out_channels
        pt, ph, pw = self.patch_size
        d = hidden_size

        self.patch_embed = nn.Conv3d(in_channels + extra_in_channels, d, kernel_size=self.patch_size, stride=self.patch_size)
        self.text_proj = PixArtAlphaTextProjection(text_dim, d)  # caption tokens → D (PixArt-α)
        self.text_refiner = nn.ModuleList(
            TextRefinerBlock(d, num_heads, mlp_ratio, qk_norm) for _ in range(text_refiner_layers)
        )

        # Singleton condition: timestep + micro conditions + pooled text, each stateless-LN'd, summed.
        self.time_proj = Timesteps(timestep_freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(timestep_freq_dim, d)
        self.pooled_text_embed = PixArtAlphaTextProjection(text_dim, d, act_fn="silu")
        if use_micro_conditions:
            self.micro_embeds = nn.ModuleList(TimestepEmbedding(timestep_freq_dim * k, d) for k in _MICRO_GROUPS)
        # adaLN-single: ONE modulation MLP shared by all blocks; blocks add their own offsets.
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(d, STIVBlock.NUM_MODULATIONS * d))

        self.blocks = nn.ModuleList(
            STIVBlock(d, num_heads, mlp_ratio, qk_norm, sandwich_norm, context_groups) for _ in range(num_layers)
        )
        self.final_offset = nn.Parameter(torch.zeros(2, d))  # PixArt-α final (shift, scale) table
        self.proj_out = nn.Linear(d, pt * ph * pw * (out_channels + extra_out_channels))
        self.gradient_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def _basic(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(_basic)
        # Patch embedding like a linear layer (DiT); extra condition channels start at zero so that
        # adding them to a trained model leaves its output unchanged.
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        if self.config.extra_in_channels:
            with torch.no_grad():
                w[:, self.config.in_channels :].zero_()
        nn.init.normal_(self.time_embed.linear_1.weight, std=0.02)
        nn.init.normal_(self.time_embed.linear_2.weight, std=0.02)
        # adaLN-Zero: the shared modulation starts at zero, so every gate is 0 and every block is the
        # identity at initialisation (DiT §3.2); the offsets are zero-initialised parameters.
        nn.init.zeros_(self.adaln[-1].weight)
        nn.init.zeros_(self.adaln[-1].bias)
        for block in self.blocks:
            # PixArt-α zero-initialises the cross-attention output so text enters gradually; a context-token
            # group's branch likewise (IP-Adapter), so adding one to a trained model leaves it unchanged.
            for attn in (block.cross_attn, *block.context_attn.values()):
                nn.init.zeros_(attn.to_out.weight)
                nn.init.zeros_(attn.to_out.bias)
        for layer in self.text_refiner:  # identity at initialisation
            for out in (layer.attn.to_out, layer.ffn.fc2):
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)
        # Zero output layer: an untrained model predicts 0.
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    @property
    def latent_channels(self) -> int:
        """C of the video latents (``in_channels``; condition channels come on top)."""
        return int(self.config.in_channels)

    @property
    def token_dim(self) -> int:
        return int(self.config.hidden_size)

    @property
    def context_groups(self) -> tuple[str, ...]:
        """The names of the model's context-token groups (``config.context_groups``' keys), sorted."""
        return tuple(sorted(self.config.context_groups or {}))

    channel_layers = ("patch_embed", "proj_out")  # what :func:`~anyframe.models.backbone.inflate_channels` widens

    # --------------------------------------------------------------------------------------------

    def _singleton_condition(
        self,
        timestep: Tensor,  # (B,) or (B, T')
        pooled_text: Tensor,  # (B, 1 or T', text_dim)
        micro_conditions: Tensor | None,  # (B, 5)
    ) -> Tensor:
        """The singleton condition, ``(B, T' or 1, D)``: per token frame where the timestep or the pooled
        text is."""
        b = pooled_text.shape[0]
        t_flat = timestep.reshape(-1)
        t_emb = self.time_embed(self.time_proj(t_flat).to(pooled_text.dtype))
        t_emb = t_emb.view(b, -1, t_emb.shape[-1])  # (B, T'|1, D)
        cond = _stateless_ln(t_emb) + _stateless_ln(self.pooled_text_embed(pooled_text))  # (B, T'|1, D)
        if self.config.use_micro_conditions and micro_conditions is not None:
            if micro_conditions.shape != (b, len(MICRO_CONDITIONS)):
                raise ValueError(
                    f"micro_conditions must be [B, {len(MICRO_CONDITIONS)}] {MICRO_CONDITIONS}, got {tuple(micro_conditions.shape)}"
                )
            for embed, cols in zip(self.micro_embeds, micro_conditions.split(_MICRO_GROUPS, dim=1)):
                freqs = self.time_proj(cols.reshape(-1).float()).view(b, -1).to(pooled_text.dtype)
                cond = cond + _stateless_ln(embed(freqs))[:, None]
        return cond

    def text_context(self, encoder_hidden_states: Tensor, mask: Tensor | None = None) -> Tensor:
        """The text tokens the blocks' cross-attention reads: projected, then refined. ``[B, L, text_dim]`` →
        ``(B, L, D)``; per frame ``[B, T, L, text_dim]`` → ``(B, T, L, D)``, each frame refined on its own
        (``mask``: ``[B, L]`` or ``[B, T, L]``)."""
        if encoder_hidden_states.ndim == 4:
            b, t = encoder_hidden_states.shape[:2]
            context, _, index = self._distinct_text_context(encoder_hidden_states, mask)
            return context[index].unflatten(0, (b, t))
        context = self.text_proj(encoder_hidden_states)
        if len(self.text_refiner):
            cfg = self.config
            rope = rope_1d(context.shape[1], cfg.hidden_size // cfg.num_heads, cfg.rope_theta, device=context.device)
            for layer in self.text_refiner:
                context = layer(context, mask, rope)
        return context

    def _distinct_text_context(self, text: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        """Per-frame text ``[B, T, L, text_dim]`` → the context of its distinct (tokens, mask) rows ``(U, L, D)``,
        their masks ``(U, L)`` and each frame's row ``(B·T,)``. Per-frame narratives repeat (a world clip's 16
        frame captions hold ~5 distinct ones), so projecting, refining and attending to keys / values once per
        distinct row gives the same values for a third of the work."""
        flat = text.flatten(0, 1)
        flat_mask = None if mask is None else mask.flatten(0, 1)
        key = flat.detach().flatten(1)
        if flat_mask is not None:
            key = torch.cat([key, flat_mask.to(key.dtype)], dim=1)
        distinct, inverse = torch.unique(key, dim=0, return_inverse=True)
        first = torch.full((distinct.shape[0],), key.shape[0], dtype=torch.long, device=key.device)
        first = first.scatter_reduce(0, inverse, torch.arange(key.shape[0], device=key.device), "amin")
        first_mask = None if flat_mask is None else flat_mask[first]
        return self.text_context(flat[first], first_mask), first_mask, inverse

    def _token_timesteps(self, timestep: Tensor, b: int, t: int) -> Tensor:
        """``[B]`` stays ``[B]``; per-frame ``[B, T]`` becomes ``[B, T']`` (mean over a temporal patch)."""
        timestep = torch.as_tensor(timestep, dtype=torch.float32, device=self.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        if timestep.ndim == 1:
            if timestep.shape[0] != b:
                raise ValueError(f"timestep [B] must have B={b}, got {tuple(timestep.shape)}")
            return timestep
        if timestep.shape != (b, t):
            raise ValueError(f"per-frame timestep must be [B, T] = [{b}, {t}], got {tuple(timestep.shape)}")
        pt = self.patch_size[0]
        return timestep.view(b, t // pt, pt).mean(-1)

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
        pooled_text: Tensor | None = None,
    ) -> BackboneOutput | tuple[Tensor]:
        """Predict the velocity (the :class:`~anyframe.models.backbone.Backbone` protocol).

        Args:
            hidden_states: ``[B, C, T, H, W]`` noisy latents (``C = in_channels``).
            timestep: ``[B]`` or per frame ``[B, T]``, in ``[0, 1000]`` (``σ · 1000``).
            encoder_hidden_states: ``[B, L, text_dim]`` text tokens, or per latent frame
                ``[B, T, L, text_dim]``: each frame's cross-attention then reads only its own tokens (frames
                fold into the batch), the text refiner runs on each frame's tokens, and the pooled text is per
                frame too — each frame's masked mean, ``[B, T', text_dim]`` — so the singleton condition
                (and the modulation) is per token frame. With a temporal patch ``pt > 1``, token frame j
                uses the text of latent frame ``j·pt``, the first frame of its patch.
            encoder_attention_mask: ``[B, L]`` (per frame ``[B, T, L]``; a ``[B, L]`` mask with per-frame
                text applies to every frame), 1 for real tokens, 0 for padding.
            micro_conditions: ``[B, 5]`` in :data:`MICRO_CONDITIONS` order; ``None`` leaves them out.
            extra_channels: ``[B, extra_in_channels, T, H, W]`` concatenated to the input.
            added_embeddings: ``[B, D, T', H', W']`` added to the patch embedding (a conditioning
                method's own embedding of its condition, e.g. FlashI2V's Fourier features).
            context_tokens: ``{group: [B, N, D_group]}`` for the model's context-token groups
                (:attr:`context_groups`): each attended in its own cross-attention branch, never through the
                text refiner nor into the pooled text. A group the model has but is not given is skipped
                (contributes 0, as an untrained group does); an unknown name is a ValueError.
            pooled_text: ``[B, text_dim]`` or per frame ``[B, T, text_dim]``; default: the masked mean of
                ``encoder_hidden_states`` (per frame for per-frame text).

        Returns:
            :class:`BackboneOutput` (``return_dict``) or ``(sample,)``; ``sample``:
            ``[B, out_channels + extra_out_channels, T, H, W]``.
        """
        cfg = self.config
        if extra_channels is not None:
            hidden_states = torch.cat([hidden_states, extra_channels], dim=1)
        if hidden_states.ndim != 5:
            raise ValueError(f"hidden_states must be [B, C, T, H, W], got {tuple(hidden_states.shape)}")
        b, c, t, h, w = hidden_states.shape
        pt, ph, pw = self.patch_size
        if c != cfg.in_channels + cfg.extra_in_channels:
            raise ValueError(
                f"expected {cfg.in_channels} + {cfg.extra_in_channels} extra input channels, got {c}"
            )
        if t % pt or h % ph or w % pw:
            raise ValueError(f"latent size {(t, h, w)} is not divisible by the patch size {self.patch_size}")
        tt, hh, ww = t // pt, h // ph, w // pw

        text, mask, pooled_text = self._text_inputs(encoder_hidden_states, encoder_attention_mask, pooled_text, b, t)
        index = None
        if text.ndim == 4:  # frames fold into the batch for cross-attention: (U, L, D) distinct rows, (B·T',) index
            context, mask, index = self._distinct_text_context(text, mask)
        else:
            context = self.text_context(text, mask)  # (B, L, D)
        groups = self._context_tokens(context_tokens, b)

        token_t = self._token_timesteps(timestep, b, t)
        cond = self._singleton_condition(token_t, pooled_text, micro_conditions)  # (B, T'|1, D)
        modulation = self.adaln(cond).unflatten(-1, (STIVBlock.NUM_MODULATIONS, -1))  # (B, T'|1, 9, D)

        x = self.patch_embed(hidden_states)  # (B, D, T', H', W')
        if added_embeddings is not None:
            if added_embeddings.shape != x.shape:
                raise ValueError(f"added_embeddings must be {tuple(x.shape)}, got {tuple(added_embeddings.shape)}")
            x = x + added_embeddings.to(x.dtype)
        x = x.flatten(3).permute(0, 2, 3, 1)  # (B, T', N, D)

        head_dim = cfg.hidden_size // cfg.num_heads
        base = cfg.rope_base_grid
        rope_s = rope_2d(hh, ww, head_dim, cfg.rope_theta, (base[1], base[2]) if base else None, x.device)
        rope_t = rope_1d(tt, head_dim, cfg.rope_theta, base[0] if base else None, x.device)

        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, modulation, context, mask, rope_s, rope_t, groups,
                                                      index)
            else:
                x = block(x, modulation, context, mask, rope_s, rope_t, groups, index)

        shift, scale = (self.final_offset + cond.unsqueeze(2)).unbind(2)  # (B, T'|1, D) each
        x = _stateless_ln(x) * (1 + scale.unsqueeze(2)) + shift.unsqueeze(2)
        x = self.proj_out(x)  # (B, T', N, pt·ph·pw·C_out)

        c_out = cfg.out_channels or cfg.in_channels
        c_out += cfg.extra_out_channels
        x = x.view(b, tt, hh, ww, pt, ph, pw, c_out)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c_out, t, h, w)  # (B, C_out, T, H, W)
        if not return_dict:
            return (x,)
        return BackboneOutput(sample=x)

    def _text_inputs(
        self, text: Tensor, mask: Tensor | None, pooled: Tensor | None, b: int, t: int
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Checked text tokens, bool mask and pooled text: ``(B, L, text_dim)``, ``(B, L)``, ``(B, 1, text_dim)``;
        per frame ``(B, T', L, text_dim)``, ``(B, T', L)``, ``(B, T', text_dim)`` — each token frame's the
        first latent frame of its temporal patch."""
        pt = self.patch_size[0]
        mask = None if mask is None else mask.bool()
        if text.ndim == 4:
            if text.shape[:2] != (b, t):
                raise ValueError(f"per-frame encoder_hidden_states must be [B, T, L, D] = [{b}, {t}, L, D], "
                                 f"got {tuple(text.shape)}")
            text = text[:, ::pt]  # (B, T', L, text_dim)
            if mask is not None:
                if mask.ndim == 2:
                    mask = mask[:, None].expand(-1, t, -1)
                if mask.shape != (b, t, text.shape[2]):
                    raise ValueError(f"a per-frame text mask must be [B, T, L] = [{b}, {t}, {text.shape[2]}], "
                                     f"got {tuple(mask.shape)}")
                mask = mask[:, ::pt]
        elif text.ndim != 3:
            raise ValueError(f"encoder_hidden_states must be [B, L, D] or per frame [B, T, L, D], "
                             f"got {tuple(text.shape)}")
        elif mask is not None and mask.shape != text.shape[:2]:
            raise ValueError(f"encoder_attention_mask must be [B, L] = {list(text.shape[:2])}, "
                             f"got {tuple(mask.shape)}")
        if pooled is None:  # the masked mean over the tokens (of each frame)
            if mask is None:
                pooled = text.mean(-2)
            else:
                m = mask.to(text.dtype)[..., None]
                pooled = (text * m).sum(-2) / m.sum(-2).clamp_min(1.0)
        elif pooled.ndim == 3:
            if pooled.shape[1] != t:
                raise ValueError(f"per-frame pooled_text must be [B, T, text_dim] with T={t}, "
                                 f"got {tuple(pooled.shape)}")
            pooled = pooled[:, ::pt]
        if pooled.ndim == 2:
            pooled = pooled[:, None]  # (B, 1, text_dim)
        return text, mask, pooled

    def _context_tokens(self, context_tokens: dict[str, Tensor] | None, b: int) -> dict[str, Tensor] | None:
        """The given groups' tokens, checked: each a group of the model, ``[B, N, width]``."""
        if not context_tokens:
            return None
        widths = self.config.context_groups or {}
        for name, tokens in context_tokens.items():
            if name not in widths:
                raise ValueError(f"unknown context-token group {name!r}; the model has {sorted(widths) or 'none'}"
                                 " (add one with with_context_group)")
            if tokens.ndim != 3 or tokens.shape[0] != b or tokens.shape[2] != widths[name]:
                raise ValueError(f"context tokens {name!r} must be [B, N, {widths[name]}] with B={b}, "
                                 f"got {tuple(tokens.shape)}")
        return dict(context_tokens)

    # --------------------------------------------------------------------------------------------

    def with_text_refiner(self, num_layers: int) -> STIVTransformer:
        """A copy with ``num_layers`` text-refiner layers: the layers it has keep their weights, new ones
        start as the identity, so the copy computes the same velocity as this model."""
        if num_layers < self.config.text_refiner_layers:
            raise ValueError(f"the model has {self.config.text_refiner_layers} text-refiner layers; cannot drop to {num_layers}")
        return copy_with_new_modules(self, {**self.config, "text_refiner_layers": num_layers}, ("text_refiner.",))

    def with_context_group(self, name: str, dim: int) -> STIVTransformer:
        """A copy with the context-token group ``name`` (tokens of width ``dim``): a new cross-attention branch
        in every block whose output projection is zero, so the copy computes exactly this model's velocity
        (with or without the group's tokens) until the branch is trained; all other weights are kept."""
        groups = dict(self.config.context_groups or {})
        if not name.isidentifier():
            raise ValueError(f"a context-token group name must be an identifier, got {name!r}")
        if name in groups:
            raise ValueError(f"the model already has the context-token group {name!r}")
        if dim < 1:
            raise ValueError(f"token width must be >= 1, got {dim}")
        config = {**self.config, "context_groups": {**groups, name: int(dim)}}
        return copy_with_new_modules(self, config, (f".context_attn.{name}.",))

    def with_extra_channels(self, extra_in_channels: int = 0, extra_out_channels: int = 0) -> STIVTransformer:
        """A copy with more condition input / output channels (:func:`~anyframe.models.backbone.inflate_channels`):
        the new weights are zero, so the copy computes the same velocity as this model (and zeros on the new
        output channels)."""
        return inflate_channels(self, extra_in_channels, extra_out_channels)

    def _config_with_extra_channels(self, extra_in: int, extra_out: int) -> dict:
        return {**self.config, "extra_in_channels": self.config.extra_in_channels + extra_in,
                "extra_out_channels": self.config.extra_out_channels + extra_out}


# ------------------------------------------------------------------------------------------------
#                                        Named sizes
# ------------------------------------------------------------------------------------------------


def stiv_tiny(**kwargs) -> STIVTransformer:
    """For tests: 2 layers, width 32, 2 heads."""
    return STIVTransformer(**{"num_layers": 2, "hidden_size": 32, "num_heads": 2, **kwargs})


def stiv_s(**kwargs) -> STIVTransformer:
    """The world-scale default (shapes world, 32×32 px → 8×8 latents, patch 1×2×2)."""
    return STIVTransformer(**{"num_layers": 8, "hidden_size": 256, "num_heads": 4, **kwargs})


def stiv_xl(**kwargs) -> STIVTransformer:
    """STIV-XL (Table 1: 28 blocks, 1152 wide, 18 heads; "600M" counts the T2I part)."""
    return STIVTransformer(**{"num_layers": 28, "hidden_size": 1152, "num_heads": 18, **kwargs})


def stiv_xxl(**kwargs) -> STIVTransformer:
    """STIV-XXL (Table 1: 38 blocks, 1536 wide, 24 heads; "1.5B")."""
    return STIVTransformer(**{"num_layers": 38, "hidden_size": 1536, "num_heads": 24, **kwargs})


def stiv_m(**kwargs) -> STIVTransformer:
    """STIV-M (Table 1: 46 blocks, 3072 wide, 48 heads; "8.7B")."""
    return STIVTransformer(**{"num_layers": 46, "hidden_size": 3072, "num_heads": 48, **kwargs})


STIV_SIZES: dict[str, Callable[..., STIVTransformer]] = {
    "tiny": stiv_tiny,
    "S": stiv_s,
    "XL": stiv_xl,
    "XXL": stiv_xxl,
    "M": stiv_m,
}


def build_stiv(size: str, **kwargs) -> STIVTransformer:
    """Build a named size; keyword arguments override its config (channels, patch, text width...)."""
    if size not in STIV_SIZES:
        raise ValueError(f"unknown STIV size {size!r} ({', '.join(STIV_SIZES)})")
    return STIV_SIZES[size](**kwargs)
