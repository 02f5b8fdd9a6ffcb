"""FlashI2V: image-to-video by latent shifting and Fourier guidance (uniworld-osp2-flashi2v.txt §4).

The condition image never enters the backbone as a frame or a channel, so the denoiser has no copy of
it to lean on (the paper's "conditional image leakage"). Instead:

- **Latent shifting** (§4.2). With ``s`` the condition latent ``[B, C, 1, H, W]`` and φ a learned
  projection, the flow runs between shifted endpoints: ``z_σ = (1 − σ)·x + σ·ε − φ(s)`` (φ(s) broadcast
  over frames), with the *unchanged* target ``ε − x``. The sampler state here is the unshifted
  ``(1 − σ)·x + σ·ε`` — it starts as ε and ends as the video latent — and the backbone sees it minus
  φ(s); the paper's shifted state differs by the constant φ(s), so the trajectories are the same.
- **Fourier guidance** (§4.3). The high-frequency magnitudes of ``s`` (:func:`fourier_high_frequency`,
  cutoff ratio ~ U[0.05, 0.95] in training, ``detail`` at inference: lower = more detail), repeated over
  frames, go through their own zero-initialised patch embedding, added to the backbone's.

φ's last conv and the Fourier embedding's last conv start at zero: an untrained FlashI2V model computes
its base model's velocity (unless ``shift_init`` starts the shift at −γ₀·s, the paper's eq. 15). ``latent_shift`` / ``fourier`` switch either part off (the paper's ablation).

The image is the clip's first frame. Text is dropped 10% of the time (the paper) and, so that STIV's
JIT-CFG has an unconditional branch to contrast with, the image 8% (STIV's rate; 0 switches it off):
a dropped image means no shift and no Fourier features — a T2V example on the same backbone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor

from anyframe.conditioning.base import (
    ConditioningMethod,
    ConditionState,
    Encoders,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
    check_dropout_rates,
)
from anyframe.conditioning.registry import register_method
from anyframe.flow.guidance import Branch
from anyframe.models.latent_shift import FourierEmbedding, LatentShiftProjection, fourier_high_frequency

DEFAULT_DETAIL = 0.1  # the paper's inference cutoff percentile


@dataclass(frozen=True)
class FlashI2VOptions:
    """Per-request options. ``detail``: the Fourier cutoff ratio in [0, 1] (lower = more of the image's
    high-frequency detail); None: the model's ``default_detail``."""

    detail: float | None = None

    def __post_init__(self):
        if self.detail is not None and not (isinstance(self.detail, (int, float)) and 0.0 <= self.detail <= 1.0):
            raise ValueError(f"detail must be in [0, 1], got {self.detail}")


@dataclass
class FlashI2VState(ConditionState):
    image: Tensor | None = None  # [B, C, 1, H, W], the condition latent s
    detail: float = DEFAULT_DETAIL

    @property
    def has_image(self) -> bool:
        return self.image is not None


@register_method
class FlashI2V(ConditioningMethod):
    """Latent shifting (φ) and Fourier guidance on any backbone whose forward takes ``added_embeddings``.

    Args:
        latent_channels: C of the latents (read from the backbone).
        hidden_size, patch_size: the backbone's token width and patch (for the Fourier patch embedding; read
            from the backbone).
        latent_shift, fourier: the two parts (both = FlashI2V; one = the paper's ablations).
        text_dropout, image_dropout: training dropout probabilities.
        detail_range: the training range of the Fourier cutoff ratio (paper: U[0.05, 0.95]).
        default_detail: the inference ratio when a request gives none (paper: 0.1).
        shift_init: γ₀ of a shift that starts as −γ₀·s (the paper's eq. 15) with a learned gain, beside φ's
            zero-initialised layers; 0 (the default, the paper's final form): φ alone. Issue 27's probe: φ
            alone stays near 0.03 of the image latent's scale (``benchmarks/flashi2v_probe.py``).
        learn_shift_gain: with ``shift_init``, whether the gain is learned (default) or stays γ₀.
    """

    name = "flashi2v"
    summary = "image-to-video by latent shifting and Fourier guidance (FlashI2V)"
    Options = FlashI2VOptions
    request_fields = frozenset({"keyframes"})
    backbone_options = ("latent_channels", "hidden_size", "patch_size")

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        hidden_size: int = 64,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        latent_shift: bool = True,
        fourier: bool = True,
        text_dropout: float = 0.10,
        image_dropout: float = 0.08,
        detail_range: tuple[float, float] = (0.05, 0.95),
        default_detail: float = DEFAULT_DETAIL,
        shift_init: float = 0.0,
        learn_shift_gain: bool = True,
    ):
        super().__init__()
        check_dropout_rates(text_dropout, image_dropout)
        if not (isinstance(shift_init, (int, float)) and math.isfinite(shift_init)):
            raise ValueError(f"shift_init must be a finite number, got {shift_init!r}")
        if shift_init and not latent_shift:
            raise ValueError("shift_init needs latent_shift")
        if not learn_shift_gain and not shift_init:
            raise ValueError("learn_shift_gain: false fixes the gain of a shift_init; give shift_init too")
        if not (latent_shift or fourier):
            raise ValueError("FlashI2V needs latent_shift, fourier or both")
        lo, hi = detail_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"detail_range must satisfy 0 <= lo <= hi <= 1, got {list(detail_range)}")
        self.shift = LatentShiftProjection(latent_channels) if latent_shift else None
        # the paper's eq. 15 before φ replaces it: a shift by −γ·s. With shift_init = γ₀ ≠ 0 the shift starts
        # there, φ(s) = −g·s + MLP(s) with a learned gain g (γ₀ at the start); 0 (the paper's, the default): the
        # zero-initialised MLP alone (no gain parameter, so earlier checkpoints load as they are)
        if shift_init and not learn_shift_gain:  # fixed at γ₀ (issue 27's probe: the learned gain decays)
            self.register_buffer("shift_gain", torch.tensor(float(shift_init)))
        else:
            self.shift_gain = torch.nn.Parameter(torch.tensor(float(shift_init))) if shift_init else None
        self.fourier_embed = FourierEmbedding(latent_channels, hidden_size, tuple(patch_size)) if fourier else None

    @classmethod
    def for_backbone(cls, backbone, **options) -> FlashI2V:
        return cls(latent_channels=backbone.latent_channels, hidden_size=backbone.token_dim,
                   patch_size=tuple(backbone.config.patch_size), **options)

    def check_request(self, request, limits) -> str | None:
        indices = [k.frame_index for k in request.keyframes]
        if indices and indices != [0]:
            return f"FlashI2V conditions on one image at frame 0; got keyframes at {indices}"
        return None

    # ------------------------------------------------------------------------------- the layers

    def phi(self, image: Tensor) -> Tensor:
        """The latent shift φ(s) of the condition latent ``s`` ``[B, C, 1, H, W]`` (what the backbone's input
        is shifted by, on every frame)."""
        shift = self.shift(image)
        if self.shift_gain is not None:
            shift = shift - self.shift_gain.to(image.dtype) * image
        return shift

    def pre_backbone(self, inputs: ModelInputs) -> ModelInputs:
        mi = inputs.method_inputs
        if "flashi2v_image" not in mi:
            return inputs
        image, present = mi["flashi2v_image"], mi["flashi2v_present"].view(-1, 1, 1, 1, 1)
        hidden = inputs.hidden_states
        if self.shift is not None:
            hidden = hidden - present.to(hidden.dtype) * self.phi(image.to(hidden.dtype))  # φ(s) over all frames
        inputs = replace(inputs, hidden_states=hidden)
        if self.fourier_embed is not None:
            features = fourier_high_frequency(image, mi["flashi2v_ratio"])
            embed_dtype = self.fourier_embed.proj.weight.dtype
            added = self.fourier_embed(features.to(embed_dtype), hidden.shape[2])
            inputs = inputs.with_added_embeddings(present.to(added.dtype) * added)
        return inputs

    @staticmethod
    def _method_inputs(image: Tensor, present: Tensor, ratio: Tensor) -> dict[str, Tensor]:
        return {"flashi2v_image": image, "flashi2v_present": present.float(), "flashi2v_ratio": ratio.float()}

    # ---------------------------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> FlashI2VState:
        options = self.options_of(request)
        detail = self.config.default_detail if options.detail is None else float(options.detail)
        state = FlashI2VState.of(encoders, detail=detail)
        if request.keyframes:
            noise = encoders.noise
            image = encoders.keyframe_latents(request.keyframes[:1]).to(noise.device, noise.dtype)
            state.image = image.expand(noise.shape[0], -1, -1, -1, -1)
        return state

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: FlashI2VState, branch: Branch) -> ModelInputs:
        b = x.shape[0]
        with_image = branch.image and state.has_image
        image = state.image if state.has_image else torch.zeros_like(x[:, :, :1])
        present = torch.full((b,), float(with_image), device=x.device)
        ratio = torch.full((b,), state.detail, device=x.device)
        return inputs.with_method_inputs(**self._method_inputs(image, present, ratio))

    # ---------------------------------------------------------------------------------- training

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        x0 = batch.latents
        b = x0.shape[0]
        lo, hi = self.config.detail_range
        ratio = lo + (hi - lo) * torch.rand(b, generator=generator)
        present = (~inputs.drop_image).to(x0.device)
        # the target is unchanged by the shift (φ does not depend on σ)
        model_inputs = inputs.model_inputs.with_method_inputs(**self._method_inputs(x0[:, :, :1], present, ratio.to(x0.device)))
        tasks = ["t2v" if d else "ti2v" for d in inputs.drop_image.tolist()]
        return replace(inputs, model_inputs=model_inputs, info={**inputs.info, "tasks": tasks})
