"""Classifier-free guidance as wrappers around a velocity function.

A *branch* says which conditions a forward pass sees: the text (or the negative prompt / empty text
when off) and the image condition (keyframes, reference image...). A :class:`Guidance` names the
branches it needs and combines their velocities. :func:`guided_velocity` turns a function that
evaluates several branches in **one batched forward** into a plain ``velocity(x, σ)``.

    v = guided_velocity(branch_velocity, JITCFG(7.5, renorm="full"))
    v(x, sigma)   # two passes (T,I) and (∅,∅), batched as one forward

Formulas (STIV §2.3.2, App. D):
- CFG (text only, the image kept in both passes): ``v(∅,I) + s·(v(T,I) − v(∅,I))``
- JIT-CFG: ``v(∅,∅) + s·(v(T,I) − v(∅,∅))``
- separate scales (InstructPix2Pix, 3 passes): ``v(∅,∅) + s_I·(v(∅,I) − v(∅,∅)) + s_T·(v(T,I) − v(∅,I))``
- renormalisation: rescale the guided velocity to the norm of the conditional one ``‖v(T,I)‖``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Branch:
    """Which conditions one forward pass sees."""

    text: bool
    image: bool


FULL = Branch(text=True, image=True)
UNCOND = Branch(text=False, image=False)
IMAGE_ONLY = Branch(text=False, image=True)

RENORM_MODES = ("full", "clamp")
# what a request may ask for: a mode, or ``auto`` — chosen per request by :func:`resolve_renorm`
RENORM_CHOICES = (*RENORM_MODES, "auto")
# ``renorm`` not given: the model's own (the pipeline's ``sampling_defaults``); ``None`` already means none
MODEL_DEFAULT = "default"


def resolve_renorm(renorm: str | None, with_frames: bool) -> str | None:
    """``auto`` → ``full`` for a prompt-only request, ``None`` when frames are given (on the world model
    renormalisation lifts text-to-video presence — beyond the 95 % interval of its 40 cases — while with keyframes
    its point estimates are lower on motion and identity, within their intervals:
    ``docs/experiments.md#archived-renorm_full_suite``); any other value is returned as it is."""
    if renorm != "auto":
        return renorm
    return None if with_frames else "full"


def renormalize(
    guided: Tensor,
    conditional: Tensor,
    mode: str = "full",
    max_ratio: float = 1.0,
    mask: Tensor | None = None,
    eps: float = 1e-12,
) -> Tensor:
    """CFG renormalisation, per sample.

    ``mode="full"`` (STIV, App. D): ``ṽ = ‖v_c‖ · v̂ / ‖v̂‖`` — always the conditional norm.
    ``mode="clamp"`` (Lumina-Next): rescale only where ``‖v̂‖ > max_ratio·‖v_c‖``, down to that bound.

    Args:
        guided, conditional: ``[B, ...]``.
        mask: optional, broadcastable to ``guided``; the norms are taken over elements where it is 1
            (e.g. the generated frames only: the velocity at replaced frames is discarded anyway and
            must not steer the scale). The scale factor is applied to the whole sample.
    """
    if mode not in RENORM_MODES:
        raise ValueError(f"unknown renorm mode {mode!r} ({' | '.join(RENORM_MODES)})")
    g, c = guided.float(), conditional.float()
    if mask is not None:
        m = mask.to(g.dtype).expand_as(g)
        g_norm = (g * m).flatten(1).norm(dim=1)
        c_norm = (c * m).flatten(1).norm(dim=1)
    else:
        g_norm = g.flatten(1).norm(dim=1)
        c_norm = c.flatten(1).norm(dim=1)
    if mode == "full":
        factor = c_norm / g_norm.clamp_min(eps)
    else:
        bound = c_norm * max_ratio
        factor = torch.where(g_norm > bound, bound / g_norm.clamp_min(eps), torch.ones_like(g_norm))
    factor = factor.view(-1, *([1] * (guided.ndim - 1)))
    return (g * factor).to(guided.dtype)


class Guidance(ABC):
    """Names the branches it needs and combines their velocities into one."""

    branches: tuple[Branch, ...]

    @abstractmethod
    def combine(self, velocities: Mapping[Branch, Tensor], norm_mask: Tensor | None = None) -> Tensor:
        """``velocities[branch]`` is ``[B, ...]`` for every branch in :attr:`branches`."""


class NoGuidance(Guidance):
    """One conditional pass."""

    branches = (FULL,)

    def combine(self, velocities, norm_mask=None):
        return velocities[FULL]


class _Scaled(Guidance):
    """Guidance with one scale and optional renormalisation; subclasses give the formula."""

    def __init__(self, scale: float, renorm: str | None = None, renorm_max_ratio: float = 1.0):
        if renorm is not None and renorm not in RENORM_MODES:
            raise ValueError(f"unknown renorm mode {renorm!r} ({' | '.join(RENORM_MODES)})")
        self.scale = float(scale)
        self.renorm = renorm
        self.renorm_max_ratio = renorm_max_ratio

    @abstractmethod
    def _guided(self, v: Mapping[Branch, Tensor]) -> Tensor: ...

    def combine(self, velocities, norm_mask=None):
        guided = self._guided(velocities)
        if self.renorm is None:
            return guided
        return renormalize(guided, velocities[FULL], self.renorm, self.renorm_max_ratio, norm_mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, renorm={self.renorm!r})"


class CFG(_Scaled):
    """Plain CFG on the text: the unconditional pass keeps the image condition and drops the text
    (or uses the negative prompt). Without an image condition it is ordinary T2V CFG."""

    branches = (FULL, IMAGE_ONLY)

    def _guided(self, v):
        return v[IMAGE_ONLY] + self.scale * (v[FULL] - v[IMAGE_ONLY])


class JITCFG(_Scaled):
    """STIV's joint image–text CFG: the unconditional pass drops text *and* image together."""

    branches = (FULL, UNCOND)

    def _guided(self, v):
        return v[UNCOND] + self.scale * (v[FULL] - v[UNCOND])


class TextImageCFG(_Scaled):
    """Separate text and image scales, three passes (InstructPix2Pix / Brooks et al.)."""

    branches = (FULL, IMAGE_ONLY, UNCOND)

    def __init__(self, scale: float, image_scale: float, renorm: str | None = None, renorm_max_ratio: float = 1.0):
        super().__init__(scale, renorm, renorm_max_ratio)
        self.image_scale = float(image_scale)

    def _guided(self, v):
        return (
            v[UNCOND]
            + self.image_scale * (v[IMAGE_ONLY] - v[UNCOND])
            + self.scale * (v[FULL] - v[IMAGE_ONLY])
        )

    def __repr__(self) -> str:
        return f"TextImageCFG(scale={self.scale}, image_scale={self.image_scale}, renorm={self.renorm!r})"


class Renormalized(Guidance):
    """Renormalise any guidance's output to the conditional norm (for guidances without a renorm flag)."""

    def __init__(self, inner: Guidance, mode: str = "full", max_ratio: float = 1.0):
        self.inner, self.mode, self.max_ratio = inner, mode, max_ratio
        self.branches = inner.branches

    def combine(self, velocities, norm_mask=None):
        return renormalize(
            self.inner.combine(velocities, norm_mask), velocities[FULL], self.mode, self.max_ratio, norm_mask
        )


GUIDANCE_MODES = ("none", "cfg", "jit", "text-image")


def make_guidance(
    mode: str = "jit",
    scale: float = 7.5,
    image_scale: float | None = None,
    renorm: str | None = "full",
    renorm_max_ratio: float = 1.0,
) -> Guidance:
    """Build a guidance from CLI-style names. A scale of 1 (or mode ``none``) means one conditional pass."""
    if mode not in GUIDANCE_MODES:
        raise ValueError(f"unknown guidance mode {mode!r} ({' | '.join(GUIDANCE_MODES)})")
    if mode == "none" or (mode != "text-image" and scale == 1.0):
        return NoGuidance()
    if mode == "cfg":
        return CFG(scale, renorm, renorm_max_ratio)
    if mode == "jit":
        return JITCFG(scale, renorm, renorm_max_ratio)
    return TextImageCFG(scale, image_scale if image_scale is not None else 1.0, renorm, renorm_max_ratio)


BranchVelocity = Callable[[Tensor, Tensor, Sequence[Branch]], Sequence[Tensor]]
"""``f(x [B, ...], sigma [B], branches) -> one velocity [B, ...] per branch``, computed in one batch."""


def guided_velocity(
    branch_velocity: BranchVelocity,
    guidance: Guidance,
    norm_mask: Tensor | None = None,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap a batched multi-branch velocity function into a guided ``velocity(x, sigma)``."""

    def velocity(x: Tensor, sigma: Tensor) -> Tensor:
        outs = branch_velocity(x, sigma, guidance.branches)
        return guidance.combine(dict(zip(guidance.branches, outs)), norm_mask)

    return velocity
