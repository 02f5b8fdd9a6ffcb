"""AlignFormer (ReasonDiff §3.3): one predicted latent per frame from an anchor latent and per-frame narratives.

Multi-stage Temporal Anchor Attention (MTAA), as anyframe reads it: the anchor latent ``c_i`` (the condition
image's latent frame) is cut into tokens, one per latent pixel (``φ_proj``: a linear map of its C channels, plus a
fixed 2D sinusoidal position), and given the temporal position of its frame ``i``. For every frame ``j`` those
anchor tokens are the queries of two stages of cross-attention whose keys and values are frame ``j``'s narrative
tokens plus ``j``'s temporal position (eq. 3–5):

- stage 1 (*coarse*): the anchor tokens first attend to one another (the image as a whole), then to the
  narrative of frame ``j``;
- stage 2 (*fine*): the result attends to the narrative again, refining each anchor token by the words that
  concern it, then an MLP.

Each sub-layer is a pre-norm residual; the output projection (width → C) is zero-initialised, so an untrained
AlignFormer predicts zeros. The reference implementation (pzrain/ReasonDiff, ``wan_video_rmod.py``) stacks the same
kind of layer (image self-attention in the first only, image → text cross-attention, MLP); we write our own
with ``torch.nn.MultiheadAttention`` — no library ships this block.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal(positions: Tensor, dim: int) -> Tensor:
    """``[..., dim]`` sin/cos features of (float) ``positions`` (the transformer's fixed positional encoding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] * freqs
    out = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return out if dim % 2 == 0 else torch.cat([out, torch.zeros_like(out[..., :1])], dim=-1)


class _CrossStage(nn.Module):
    def __init__(self, width: int, heads: int, self_attention: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True) if self_attention else None
        self.norm_self = nn.LayerNorm(width) if self_attention else None
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.cross = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, q: Tensor, kv: Tensor, ignore: Tensor | None) -> Tensor:
        if self.self_attn is not None:
            h = self.norm_self(q)
            q = q + self.self_attn(h, h, h, need_weights=False)[0]
        k = self.norm_kv(kv)
        return q + self.cross(self.norm_q(q), k, k, key_padding_mask=ignore, need_weights=False)[0]


class AlignFormer(nn.Module):
    """``forward(anchor [B, C, h, w], anchor_frame [B], text [B, T, L, D_text], text_mask [B, T, L]) → [B, C, T, h, w]``.

    Args:
        latent_channels: C, the latents' channels (in and out).
        text_dim: the width of the narrative embeddings (the text encoder's).
        width, heads: the attention width and heads.
    """

    def __init__(self, latent_channels: int, text_dim: int, width: int = 128, heads: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.latent_channels, self.width = latent_channels, width
        self.anchor_in = nn.Linear(latent_channels, width)
        self.text_in = nn.Linear(text_dim, width)
        self.coarse = _CrossStage(width, heads, self_attention=True)
        self.fine = _CrossStage(width, heads, self_attention=False)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.norm_out = nn.LayerNorm(width)
        self.out = nn.Linear(width, latent_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _spatial(self, h: int, w: int, device) -> Tensor:
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        half = self.width // 2
        return torch.cat([sinusoidal(ys.flatten(), half), sinusoidal(xs.flatten(), self.width - half)], dim=-1)

    def forward(self, anchor: Tensor, anchor_frame: Tensor, text: Tensor, text_mask: Tensor | None = None) -> Tensor:
        b, c, h, w = anchor.shape
        t, length = text.shape[1], text.shape[2]
        tokens = self.anchor_in(anchor.flatten(2).transpose(1, 2))  # [B, N, W]
        tokens = tokens + self._spatial(h, w, anchor.device).to(tokens) \
            + sinusoidal(anchor_frame.to(anchor.device), self.width)[:, None].to(tokens)
        frames = torch.arange(t, device=anchor.device)
        kv = self.text_in(text) + sinusoidal(frames, self.width)[None, :, None].to(tokens)  # [B, T, L, W]
        q = tokens[:, None].expand(b, t, h * w, self.width).reshape(b * t, h * w, self.width)
        kv = kv.reshape(b * t, length, self.width)
        ignore = None
        if text_mask is not None:
            ignore = ~text_mask.reshape(b * t, length).bool()
            ignore[ignore.all(1)] = False  # (a frame with no real token: attend to all rather than to none)
        q = self.coarse(q, kv, ignore)
        q = self.fine(q, kv, ignore)
        q = q + self.mlp(self.norm_mlp(q))
        out = self.out(self.norm_out(q))  # [B·T, N, C]
        return out.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
