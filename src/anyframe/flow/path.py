"""The linear (rectified-flow) path between data and noise, and its loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _broadcast_sigma(sigma: Tensor, like: Tensor) -> Tensor:
    """σ of shape ``[B]`` or per frame ``[B, T]`` → broadcastable to ``[B, C, T, H, W]``."""
    if sigma.ndim == 1:
        return sigma.view(-1, *([1] * (like.ndim - 1)))
    if sigma.ndim == 2 and like.ndim == 5:
        return sigma[:, None, :, None, None]
    raise ValueError(f"sigma must be [B] or [B, T], got {tuple(sigma.shape)} for data {tuple(like.shape)}")


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """``x_σ = (1 − σ)·x0 + σ·ε``; σ is ``[B]`` or per frame ``[B, T]``."""
    s = _broadcast_sigma(sigma, x0).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The flow-matching regression target ``v = ε − x0`` (dx_σ/dσ)."""
    return noise - x0


def object_loss_weights(masks: Sequence[Tensor | None], latent_shape: Sequence[int], object_weight: float) -> Tensor:
    """Per-element loss weights ``[B, 1, T, h, w]``: ``1 + object_weight × coverage``, where coverage is the
    fraction of each latent cell the clip's objects cover (the union of its ``[K, T, H, W]`` masks,
    area-averaged down to the latent grid ``h × w``). A clip without masks (``None``) weighs 1 everywhere.
    Used as :func:`flow_matching_loss`'s mask, so each sample's loss stays a weighted *mean*."""
    b, _, t, h, w = latent_shape
    out = torch.ones(b, 1, t, h, w)
    for i, m in enumerate(masks):
        if m is None:
            continue
        if m.ndim != 4 or m.shape[1] != t:
            raise ValueError(f"masks must be [K, {t}, H, W] for {t} latent frames, got {tuple(m.shape)}")
        if m.shape[0] == 0:
            continue
        union = m.float().amax(0)  # [T, H, W]
        coverage = torch.nn.functional.adaptive_avg_pool2d(union[:, None], (h, w))[:, 0]  # [T, h, w]
        out[i, 0] += object_weight * coverage
    return out


def temporal_difference_loss(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per sample ``[B]``: the mean squared frame-to-frame *change* of the error, ``‖(v̂−v)[t+1] − (v̂−v)[t]‖²``,
    over the pairs of adjacent frames that both count (``mask``, broadcastable to ``[B, C, T, H, W]``, read as
    0/1). An error that stays the same across frames (a wrong background, a static blemish) adds nothing; one
    that moves (an object displaced differently each frame) adds its full weight — the motion the
    per-element loss weighs no more than anything else (VideoJAM's observation). A clip of one frame: 0."""
    err = prediction.float() - target.float()
    if err.shape[2] < 2:
        return err.new_zeros(err.shape[0])
    diff = (err[:, :, 1:] - err[:, :, :-1]) ** 2
    if mask is None:
        return diff.flatten(1).mean(1)
    m = (mask > 0).to(diff.dtype).expand_as(err)
    pairs = m[:, :, 1:] * m[:, :, :-1]
    return (diff * pairs).flatten(1).sum(1) / pairs.flatten(1).sum(1).clamp_min(1.0)


def flow_matching_loss(
    prediction: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Masked, per-sample-weighted mean squared error.

    Args:
        prediction, target: ``[B, ...]``.
        mask: broadcastable to ``prediction``; 1 where the element counts (e.g. 0 on replaced frames).
        weight: ``[B]`` per-sample weights.
        reduction: ``"mean"`` (a scalar: the weighted mean of per-sample losses) or ``"none"`` (``[B]``).

    Each sample's loss is the mean over its *unmasked* elements, so a clip with 4 conditioned frames is
    not down-weighted relative to a text-to-video clip.
    """
    err = (prediction.float() - target.float()) ** 2
    if mask is None:
        per_sample = err.flatten(1).mean(1)
    else:
        m = mask.to(err.dtype).expand_as(err)
        per_sample = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)
    if weight is not None:
        per_sample = per_sample * weight.to(per_sample.dtype)
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"unknown reduction {reduction!r}")
