"""The conditioning protocol: how a method turns a request or a training batch into backbone inputs.

A conditioning method is one file and one :class:`ConditioningMethod` subclass. It serves both halves:

Inference (the sampler loop is the same for every method)::

    state = method.prepare(ConditionInputs(...))            # once per request
    for σ in schedule:
        inputs = method.model_inputs(x, σ, state, branch)   # per guidance branch, batched
        v = method(backbone, inputs).sample                  # the method's layers, then the backbone
        x = scheduler.step(guidance(v...), σ, x)
        x = method.after_step(x, σ_next, state)
    latents = method.finalize(x, state)

Training::

    out = method.training_inputs(TrainingBatch(...), sigma, noise, generator)
    denoiser = Denoiser(backbone, method)                    # the trained module
    loss = flow_matching_loss(denoiser(**out.model_inputs.denoiser_kwargs()).sample, out.target, out.loss_mask, out.loss_weight)

Methods may hold trainable parameters (FlashI2V's φ, adapters), so the base class is a diffusers
``ModelMixin`` + ``ConfigMixin``: a method saves and loads inside a pipeline folder like any model. (Each
method's module must import ``ModelMixin``: diffusers' loader looks the base class up in that module.)
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field, fields, replace

import itertools
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import save_file
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from anyframe.flow.guidance import Branch
from anyframe.models.text_encoder import TextCondition


@dataclass
class ModelInputs:
    """Keyword arguments of a backbone's ``forward`` (see ``STIVTransformer.forward``), plus the inputs of
    the method's own trainable layers (``method_inputs``, consumed by :meth:`ConditioningMethod.forward`
    before the backbone runs — e.g. FlashI2V's condition latent, for φ and the Fourier embedding)."""

    hidden_states: Tensor  # [B, C, T, H, W]
    timestep: Tensor  # [B] or [B, T], σ·1000
    encoder_hidden_states: Tensor  # [B, L, text_dim]
    encoder_attention_mask: Tensor | None = None  # [B, L]
    micro_conditions: Tensor | None = None  # [B, 5]
    extra_channels: Tensor | None = None  # [B, C_extra, T, H, W]
    encoder_hidden_states_image: Tensor | None = None  # [B·K, N, D] CLIP tokens (Wan I2V); K images per sample
    method_inputs: dict[str, Tensor] = field(default_factory=dict)  # each [B, ...]

    @classmethod
    def of(cls, hidden_states: Tensor, timestep: Tensor, text: TextCondition, micro_conditions: Tensor | None = None,
           **rest) -> ModelInputs:
        """Inputs with the text condition's tokens and mask (``rest``: the other fields)."""
        return cls(hidden_states=hidden_states, timestep=timestep, encoder_hidden_states=text.embeds,
                   encoder_attention_mask=text.mask, micro_conditions=micro_conditions, **rest)

    def as_kwargs(self) -> dict:
        """The backbone's keyword arguments."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "method_inputs" and getattr(self, f.name) is not None
        }

    def denoiser_kwargs(self) -> dict:
        """The keyword arguments of :class:`Denoiser` (the backbone's, plus ``method_inputs`` if any)."""
        kwargs = self.as_kwargs()
        if self.method_inputs:
            kwargs["method_inputs"] = dict(self.method_inputs)
        return kwargs

    def to(self, device, dtype: torch.dtype | None = None) -> ModelInputs:
        """Moved to ``device``; floating-point tensors other than the timestep cast to ``dtype``."""

        def move(name: str, v: Tensor) -> Tensor:
            if dtype is not None and torch.is_floating_point(v) and name != "timestep":
                return v.to(device, dtype)
            return v.to(device)

        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in out.items():
            if isinstance(value, Tensor):
                out[name] = move(name, value)
        out["method_inputs"] = {k: move(k, v) for k, v in self.method_inputs.items()}
        return ModelInputs(**out)

    @staticmethod
    def cat(inputs: list[ModelInputs]) -> ModelInputs:
        """Concatenate along the batch (guidance branches → one forward). Scalar-σ inputs are expanded
        to per-frame σ when another branch carries per-frame σ."""
        if len(inputs) == 1:
            return inputs[0]
        num_frames = inputs[0].hidden_states.shape[2]
        per_frame = any(i.timestep.ndim == 2 for i in inputs)
        out = {}
        for f in fields(ModelInputs):
            values = [getattr(i, f.name) for i in inputs]
            if f.name == "method_inputs":
                keys = set(values[0])
                if any(set(v) != keys for v in values):
                    raise ValueError("cannot batch branches with different method inputs")
                out[f.name] = {k: torch.cat([v[k] for v in values]) for k in values[0]}
                continue
            if all(v is None for v in values):
                out[f.name] = None
                continue
            if any(v is None for v in values):
                raise ValueError(f"cannot batch branches where only some have {f.name}")
            if f.name == "timestep" and per_frame:
                values = [v if v.ndim == 2 else v[:, None].expand(-1, num_frames) for v in values]
            out[f.name] = torch.cat(values)
        return ModelInputs(**out)


@dataclass
class ConditionInputs:
    """What a pipeline hands a method at inference, already encoded."""

    noise: Tensor  # [B, C, T, H, W], the starting state x_1
    text: TextCondition  # the prompt
    null_text: TextCondition  # the negative prompt, or the empty prompt
    micro_conditions: Tensor | None = None  # [B, 5]
    keyframe_latents: Tensor | None = None  # [B, C, K, H, W], one latent frame per keyframe
    keyframe_indices: tuple[int, ...] = ()  # K non-negative latent frame indices
    detail: float | None = None  # FlashI2V's Fourier cutoff ratio (lower = more high-frequency detail)
    # For methods that condition on the whole pixel clip (``uses_condition_video``, Wan I2V):
    condition_latents: Tensor | None = None  # [B, C, T_lat, H, W]: the clip with the keyframes, zeros elsewhere
    pixel_frame_mask: Tensor | None = None  # [B, T_pixels] bool, True at keyframe pixel frames
    image_embeds: Tensor | None = None  # [B·K, N, D] image-encoder tokens of the keyframes (``uses_image_embeds``)


@dataclass
class ConditionState:
    """Per-request state shared by all methods; methods subclass it with their own fields."""

    text: TextCondition
    null_text: TextCondition
    micro_conditions: Tensor | None

    @property
    def has_image(self) -> bool:
        """Whether an image condition is present (if not, image-dropping branches are identical)."""
        return False

    def generated_mask(self) -> Tensor | None:
        """``[B, 1, T, 1, 1]`` 1 where frames are generated (for renormalisation norms); None = all."""
        return None


@dataclass
class TrainingBatch:
    """A batch of encoded training clips."""

    latents: Tensor  # [B, C, T, H, W], clean
    text: TextCondition
    null_text: TextCondition  # the empty prompt, broadcast to B, used for text dropout
    micro_conditions: Tensor | None = None
    extras: dict = field(default_factory=dict)  # method-specific inputs (masks, per-frame captions...)


@dataclass
class TrainingInputs:
    """What a method returns for one training step."""

    model_inputs: ModelInputs
    target: Tensor  # [B, C', T, H, W]
    loss_mask: Tensor | None = None  # broadcastable to target: 1 where the loss counts
    loss_weight: Tensor | None = None  # [B]
    extra_losses: dict[str, Tensor] = field(default_factory=dict)  # auxiliary terms, added to the loss and logged
    info: dict = field(default_factory=dict)  # for logging (sampled tasks, dropout flags...)


class ConditioningMethod(ModelMixin, ConfigMixin):
    """Base class of conditioning methods. Subclasses implement :meth:`prepare`,
    :meth:`model_inputs` and :meth:`training_inputs`; :meth:`after_step` and :meth:`finalize` default
    to doing nothing."""

    # diffusers' ModelMixin.dtype/.device fail for a module with no parameters or buffers (frame
    # replacement has none; its fallback path shadows the builtin ``tuple``), which breaks
    # ``pipeline.to(device)``. Answer them here.
    @property
    def dtype(self) -> torch.dtype:
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """diffusers writes no weights file for a module without parameters (frame replacement), and
        its loader then looks for a pickle; always leave a (possibly empty) safetensors file."""
        super().save_pretrained(save_directory, *args, **kwargs)
        weights = Path(save_directory) / SAFETENSORS_WEIGHTS_NAME
        if not any(Path(save_directory).glob("*.safetensors")):
            save_file({}, str(weights), metadata={"format": "pt"})

    supports_detail = False  # whether ``ConditionInputs.detail`` means anything to this method
    # Which encodings of the keyframes the pipeline computes for this method (``ConditionInputs``):
    uses_keyframe_latents = True  # each keyframe as one latent frame (``keyframe_latents``)
    uses_condition_video = False  # the pixel clip with the keyframes in place (``condition_latents``, ``pixel_frame_mask``)
    uses_image_embeds = False  # image-encoder tokens (``image_embeds``), when the pipeline has an image encoder

    @classmethod
    def for_backbone(cls, backbone: ModelMixin, **options) -> ConditioningMethod:
        """The method sized for ``backbone`` (methods with their own layers read its channels, width or
        patch from its config); ``options`` are the constructor's other arguments."""
        return cls(**options)

    def check_keyframes(self, indices: tuple[int, ...], num_frames: int) -> str | None:
        """Why this method cannot condition on keyframes at ``indices`` (None: it can)."""
        return None

    def draw_dropout(self, batch_size: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Training: which examples drop the image condition and which the text (``[B]`` bool each, drawn
        independently, in that order, at the method's ``image_dropout`` / ``text_dropout`` rates)."""
        drop_image = torch.rand(batch_size, generator=generator) < self.config.image_dropout
        drop_text = torch.rand(batch_size, generator=generator) < self.config.text_dropout
        return drop_image, drop_text

    def batch_extras(self, pipe, video: Tensor) -> dict:
        """Training: what this method needs beyond the clip latents, computed from the pixel clips
        ``[B, 3, T, H, W]`` in [−1, 1] with the pipeline's encoders (``TrainingBatch.extras``). Default: nothing.
        Methods that need it set ``needs_pixels_in_training`` (their recipes cannot train from a latent cache)."""
        return {}

    needs_pixels_in_training = False

    def adapt_backbone(self, backbone: ModelMixin) -> ModelMixin:
        """The backbone this method needs (e.g. with condition channels added, zero-initialised so it
        computes what ``backbone`` does); called once when a recipe builds a model."""
        return backbone

    def forward(self, backbone: ModelMixin, inputs: ModelInputs):
        """One denoiser evaluation: the method's own layers (if any) on ``inputs.method_inputs``, then
        the backbone. Runs inside the trained module, so its parameters train (and sync) with it."""
        return backbone(**inputs.as_kwargs())

    @abstractmethod
    def prepare(self, inputs: ConditionInputs) -> ConditionState: ...

    @abstractmethod
    def model_inputs(self, x: Tensor, sigma: Tensor, state: ConditionState, branch: Branch) -> ModelInputs:
        """Backbone inputs for the sampler state ``x`` at noise level ``sigma`` [B] for one guidance branch."""

    def after_step(self, x: Tensor, sigma_next: Tensor, state: ConditionState) -> Tensor:
        return x

    def finalize(self, x: Tensor, state: ConditionState) -> Tensor:
        """The clean video latents from the final sampler state."""
        return x

    def canonical_branch(self, branch: Branch, state: ConditionState) -> Branch:
        """Branches that give identical inputs map to one (no image → the image flag is moot)."""
        return branch if state.has_image else replace(branch, image=False)

    @abstractmethod
    def training_inputs(
        self, batch: TrainingBatch, sigma: Tensor, noise: Tensor, generator: torch.Generator | None = None
    ) -> TrainingInputs: ...


class Denoiser(torch.nn.Module):
    """The trained module: a backbone and its conditioning method's layers, called as one
    (``Denoiser(**model_inputs.denoiser_kwargs()).sample``). Training wraps this, not the bare backbone,
    so that DDP/FSDP, the optimizer and EMA see a method's parameters (FlashI2V's φ, adapters) too.
    Parameter names are ``transformer.*`` and ``conditioning.*``."""

    def __init__(self, transformer: ModelMixin, conditioning: ConditioningMethod):
        super().__init__()
        self.transformer = transformer
        self.conditioning = conditioning

    @property
    def _no_split_modules(self) -> list[str]:
        """The backbone's blocks (``STIVBlock``, ``WanTransformerBlock``): accelerate's FSDP wraps one unit
        per block when no ``--fsdp_transformer_layer_cls_to_wrap`` is given."""
        return list(getattr(self.transformer, "_no_split_modules", None) or [])

    def forward(self, method_inputs: dict[str, Tensor] | None = None, **backbone_kwargs):
        return self.conditioning(self.transformer, ModelInputs(**backbone_kwargs, method_inputs=method_inputs or {}))
