"""FlashI2V's trainable parts (uniworld-osp2-flashi2v.txt §4.2–4.3): the latent-shift projection φ, the
Fourier high-frequency extractor, and the Fourier patch embedding.

Written here: no library provides them. Backbone-agnostic — they see latents ``[B, C, T, H, W]`` and
emit either a latent-shaped shift or a token-grid embedding ``[B, D, T', H', W']`` that a backbone adds
to its own patch embedding (STIV here, Wan's ``patch_embedding`` likewise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LatentShiftProjection(nn.Module):
    """φ: ``Conv3d(C→4C, k=(1,3,3)) → SiLU → Conv3d(4C→C, k=(1,3,3))``, per frame (temporal kernel 1).

    The first conv is xavier-initialised, the last is zero: an untrained φ is the zero shift, so adding
    latent shifting to a model leaves its velocity unchanged at the start (the paper's "initialised to
    zero to preserve the initial latent distribution").
    """

    def __init__(self, channels: int, expansion: int = 4):
        super().__init__()
        hidden = channels * expansion
        self.conv_in = nn.Conv3d(channels, hidden, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        self.conv_out = nn.Conv3d(hidden, channels, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        nn.init.xavier_uniform_(self.conv_in.weight.view(hidden, -1))
        nn.init.zeros_(self.conv_in.bias)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, s: Tensor) -> Tensor:
        """``s``: the condition latent ``[B, C, 1, H, W]`` → the shift ``φ(s)``, same shape."""
        return self.conv_out(F.silu(self.conv_in(s)))


def radial_distance(h: int, w: int, device=None) -> Tensor:
    """Distance of each bin of an ``fftshift``-ed ``h × w`` spectrum from its centre (the DC bin)."""
    ys = torch.arange(h, device=device, dtype=torch.float32) - h // 2
    xs = torch.arange(w, device=device, dtype=torch.float32) - w // 2
    return torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)  # [h, w]


@torch.no_grad()
def fourier_high_frequency(latents: Tensor, ratio: Tensor | float) -> Tensor:
    """High-frequency magnitudes of ``latents`` ``[B, C, T, H, W]`` (or ``[B, C, H, W]``), per frame.

    The spectrum (``fft2`` over H, W, ``fftshift``-ed) is cut at the smallest radius whose cumulative
    channel-mean spectral magnitude — summed over bins in order of their distance from the centre —
    reaches ``ratio`` of the total; bins at that radius and beyond are kept (a hard high-pass), and the
    output is the modulus of the inverse transform. ``ratio`` (a float or one per sample ``[B]``) near 0
    keeps almost everything (the output is ``|latents|``); near 1, almost nothing. No gradient.
    """
    squeeze = latents.ndim == 4
    x = latents[:, :, None] if squeeze else latents
    b, _, _, h, w = x.shape
    x = x.float()
    ratio = torch.as_tensor(ratio, dtype=torch.float32, device=x.device).reshape(-1)
    if ratio.numel() == 1:
        ratio = ratio.expand(b)
    if ratio.shape[0] != b:
        raise ValueError(f"ratio must be a scalar or one per sample ({b}), got {ratio.shape[0]}")

    spectrum = torch.fft.fftshift(torch.fft.fft2(x, dim=(-2, -1)), dim=(-2, -1))  # [B, C, T, H, W] complex
    magnitude = spectrum.abs().mean(dim=1)  # channel mean, [B, T, H, W]
    radius = radial_distance(h, w, x.device).flatten()  # [H·W]
    order = torch.argsort(radius, stable=True)
    sorted_radius = radius[order]
    cumulative = magnitude.flatten(2)[..., order].cumsum(-1)  # [B, T, H·W], by increasing radius
    total = cumulative[..., -1:]
    reached = cumulative >= ratio[:, None, None] * total  # monotone along the last axis
    first = reached.float().argmax(-1)  # the first bin where the share is reached
    cutoff = sorted_radius[first]  # [B, T]
    mask = radius.view(1, 1, h, w) >= cutoff[..., None, None]  # [B, T, H, W], high-pass
    filtered = spectrum * mask[:, None]
    out = torch.fft.ifft2(torch.fft.ifftshift(filtered, dim=(-2, -1)), dim=(-2, -1)).abs()
    out = out.to(latents.dtype)
    return out[:, :, 0] if squeeze else out


class FourierEmbedding(nn.Module):
    """The Fourier features' own patch embedding: ``Conv3d(C, D, k=stride=patch)`` (xavier) followed by a
    zero-initialised ``1×1×1`` conv, so an untrained embedding adds nothing to the backbone's tokens."""

    def __init__(self, channels: int, hidden_size: int, patch_size: tuple[int, int, int]):
        super().__init__()
        patch_size = tuple(patch_size)
        self.patch_size = patch_size
        self.proj = nn.Conv3d(channels, hidden_size, kernel_size=patch_size, stride=patch_size)
        self.zero_proj = nn.Conv3d(hidden_size, hidden_size, kernel_size=1)
        nn.init.xavier_uniform_(self.proj.weight.view(hidden_size, -1))
        nn.init.zeros_(self.proj.bias)
        nn.init.zeros_(self.zero_proj.weight)
        nn.init.zeros_(self.zero_proj.bias)

    def forward(self, features: Tensor, num_frames: int) -> Tensor:
        """``features`` ``[B, C, 1, H, W]`` (of the condition image), repeated over ``num_frames`` →
        ``[B, D, T', H', W']`` to add to the patch embedding of the video state."""
        features = features.expand(-1, -1, num_frames, -1, -1)
        if self.patch_size[0] == 1:
            # per-frame patches of identical frames are identical: embed one frame and broadcast
            return self.zero_proj(self.proj(features[:, :, :1])).expand(-1, -1, num_frames, -1, -1)
        return self.zero_proj(self.proj(features.contiguous()))
