"""The backbone protocol: what STIV's DiT (:class:`~anyframe.models.dit.STIVTransformer`) and Wan
(:class:`~anyframe.models.wan.WanBackbone`) both speak, so a conditioning method is written once, against
tensors, and never touches a backbone's forward.

- :class:`BackboneOutput` — what ``forward`` returns: the velocity and named auxiliary outputs.
- :class:`Backbone` — the protocol itself (written down for readers and type checkers; not runtime-checked).
- :func:`inflate_channels` — the one way to give a backbone more input / output channels: the patch embedding
  and the output projection grow with zero-initialised weights, so the inflated model computes exactly what the
  base model did (and exactly zero on the new output channels).

Conventions shared by every backbone (shapes use C latent channels, T latent frames, T' = T / pt token frames,
H' = H / ph, W' = W / pw, D the token width):

- ``timestep`` is ``σ · 1000``, ``[B]`` or per latent frame ``[B, T]``;
- text comes as ``[B, L, text_dim]`` tokens, or per latent frame as ``[B, T, L, text_dim]``: then each frame's
  cross-attention reads only its own tokens (with a temporal patch pt > 1, token frame j reads the context of
  latent frame j·pt, the first frame of its patch);
- context-token groups (IP-Adapter style: image, style, source tokens) come as ``{name: [B, N, D_name]}``, each
  attended in its own cross-attention branch whose output starts at zero, never through the text refiner nor
  into the pooled text vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from diffusers.utils import BaseOutput
from torch import Tensor, nn


@dataclass
class BackboneOutput(BaseOutput):
    """A backbone's prediction.

    Args:
        sample: ``[B, C_out, T, H, W]`` — the velocity on the latents' C channels, then any extra output
            channels (e.g. a mask velocity).
        aux: named auxiliary outputs of heads that are not channels of the sample (``None``: none).
    """

    sample: Tensor
    aux: dict[str, Tensor] | None = None


class Backbone(Protocol):
    """A video diffusion transformer as anyframe's conditioning methods see it.

    Attributes:
        latent_channels: C, the channels of the video latents (the velocity's; condition channels come on top).
        token_dim: D, the width of the transformer's tokens (what ``added_embeddings`` must match).
        config: the model's (diffusers) config; ``save_pretrained`` / ``from_pretrained`` round-trip it.
        context_groups: the names of the context-token groups the model has (each its own cross-attention
            branch; see :meth:`with_context_group`).
    """

    config: Any

    @property
    def latent_channels(self) -> int: ...

    @property
    def token_dim(self) -> int: ...

    @property
    def context_groups(self) -> tuple[str, ...]: ...

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
    ) -> BackboneOutput | tuple[Tensor]:
        """Predict the velocity.

        Args:
            hidden_states: ``[B, C, T, H, W]`` noisy latents (``C`` may already include condition channels).
            timestep: ``[B]`` or per latent frame ``[B, T]``, ``σ · 1000``.
            encoder_hidden_states: ``[B, L, text_dim]`` text tokens, or per latent frame ``[B, T, L, text_dim]``
                (each frame's cross-attention sees only its own tokens). Where a backbone pools the text into
                its global condition, per-frame text pools per frame: each frame's masked mean.
            encoder_attention_mask: ``[B, L]`` (per frame ``[B, T, L]``), 1 for real tokens; a backbone that
                attends to padding by design (Wan) ignores it.
            micro_conditions: ``[B, 5]`` (STIV's frame stride, original size, crop); ``None`` leaves them out.
            extra_channels: ``[B, C_extra, T, H, W]``, concatenated after ``hidden_states`` on channels.
            added_embeddings: ``[B, D, T', H', W']``, added to the patch embedding.
            context_tokens: ``{name: [B, N, D_name]}``, one entry per context-token group the model has. A group
                the model has but is not given is skipped (contributes 0); an unknown name is a ValueError
                naming the known groups.
            return_dict: a :class:`BackboneOutput`, else the tuple ``(sample,)``.
        """
        ...

    def with_context_group(self, name: str, dim: int) -> Backbone:
        """A copy with a new context-token group ``name`` of token width ``dim``, zero-initialised so the copy
        computes exactly what this model does; the existing weights are kept."""
        ...

    def with_extra_channels(self, extra_in_channels: int = 0, extra_out_channels: int = 0) -> Backbone:
        """A copy with more input / output channels (:func:`inflate_channels`)."""
        ...


# ------------------------------------------------------------------------------------------------
#                                       Channel inflation
# ------------------------------------------------------------------------------------------------


_DIFFUSERS_BOOKKEEPING = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values", "_ignore_files")


def _build_like(backbone: nn.Module, config: dict) -> nn.Module:
    """A fresh model of ``backbone``'s class from ``config`` (its config, changed): constructor arguments,
    plus the ``_``-prefixed entries anyframe records on a config (kept through save / load as diffusers'
    hidden config; diffusers' own bookkeeping entries are its to write)."""
    new = type(backbone)(**{k: v for k, v in config.items() if not k.startswith("_")})
    hidden = {k: v for k, v in config.items() if k.startswith("_") and k not in _DIFFUSERS_BOOKKEEPING}
    if hidden:
        new.register_to_config(**hidden)
    return new


def _load_like(new: nn.Module, state: dict[str, Tensor], backbone: nn.Module) -> nn.Module:
    # assign: each parameter takes its source tensor's dtype and device (a model loaded in bf16 with float32
    # modules stays so), not the fresh model's
    new.load_state_dict(state, assign=True)
    new.to(next(backbone.parameters()).device)  # non-persistent buffers (RoPE tables)
    new.train(backbone.training)
    return new


def inflate_channels(backbone: nn.Module, extra_in_channels: int = 0, extra_out_channels: int = 0):
    """A copy of ``backbone`` with ``extra_in_channels`` more input and ``extra_out_channels`` more output
    channels. The new patch-embedding columns and output-projection rows are zero, so the copy predicts
    exactly what ``backbone`` does on the old channels, whatever the new inputs, and exactly zero on the new
    output channels — until training moves them. The config is updated, so the copy saves and loads.

    The backbone says how through two members (STIV and Wan both have them):

    - ``channel_layers``: the names of its patch embedding (a ``Conv3d`` whose input channels are the
      latents' followed by the extra channels, in ``forward``'s concatenation order) and of its output
      projection (a ``Linear`` whose outputs are ``(pt, ph, pw, C_out)`` flattened — the unpatchify order of
      STIV and of diffusers' Wan alike); new channels go last;
    - ``_config_with_extra_channels(extra_in, extra_out)``: the config of the wider copy.
    """
    if extra_in_channels < 0 or extra_out_channels < 0:
        raise ValueError(f"extra channels must be >= 0, got in={extra_in_channels}, out={extra_out_channels}")
    patch_name, out_name = backbone.channel_layers
    new = _build_like(backbone, backbone._config_with_extra_channels(extra_in_channels, extra_out_channels))
    p = math.prod(backbone.config.patch_size)

    targets = new.state_dict()
    state = {}
    for name, tensor in backbone.state_dict().items():
        target = targets[name]
        if target.shape == tensor.shape:
            state[name] = tensor.clone()
        elif name == f"{patch_name}.weight":  # (D, C_in, pt, ph, pw): the old channels first
            grown = tensor.new_zeros(target.shape)
            grown[:, : tensor.shape[1]] = tensor
            state[name] = grown
        elif name in (f"{out_name}.weight", f"{out_name}.bias"):  # (p·C_out[, D]): per patch position
            c_old, c_new = tensor.shape[0] // p, target.shape[0] // p
            grown = tensor.new_zeros(target.shape)
            grown.view(p, c_new, *target.shape[1:])[:, :c_old] = tensor.view(p, c_old, *tensor.shape[1:])
            state[name] = grown
        else:
            raise RuntimeError(f"unexpected shape change for {name}: {tuple(tensor.shape)} → {tuple(target.shape)}")
    return _load_like(new, state, backbone)


def copy_with_new_modules(backbone: nn.Module, config: dict, new_modules: tuple[str, ...]):
    """A copy of ``backbone`` built from ``config`` (its config, changed) that keeps every weight of
    ``backbone`` and adds fresh ones only where a name contains one of ``new_modules``. The fresh weights are
    as the model's ``__init__`` initialises them (zero where the model's invariants need it), in the
    backbone's dtype; the others keep their dtypes. Serves ``with_context_group`` and ``with_text_refiner``."""
    new = _build_like(backbone, config)
    fresh = new.state_dict()
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    unexpected = [k for k in state if k not in fresh or fresh[k].shape != state[k].shape]
    added = [k for k in fresh if k not in state]
    if unexpected or any(not any(m in k for m in new_modules) for k in added):
        raise RuntimeError(f"unexpected weights: added {added[:3]}, changed or dropped {unexpected[:3]}")
    device, dtype = next(backbone.parameters()).device, backbone.dtype
    for k in added:
        state[k] = fresh[k].to(device=device, dtype=dtype if torch.is_floating_point(fresh[k]) else fresh[k].dtype)
    return _load_like(new, state, backbone)
