"""The conditioning protocol: how a method turns a request or a training batch into backbone inputs.

A conditioning method is one file and one :class:`ConditioningMethod` subclass, registered by name
(:func:`anyframe.conditioning.registry.register_method`). It serves both halves of the work, and it only
ever *adds to* what the methods before it built — so methods compose (:class:`~anyframe.conditioning.stack.MethodStack`):

Inference (the sampler loop is the same for every method)::

    state = method.encode(request, encoders)                    # once per request: asks the VAE, image encoder...
    for σ in schedule:
        inputs = method.model_inputs(x, σ, state, branch)      # per guidance branch, batched
        v = Denoiser(backbone, method)(inputs).sample          # the method's own layers, then the backbone
        x = scheduler.step(guidance(v...), σ, x)
        x = method.after_step(x, σ_next, state)
    latents = method.finalize(x, state); extras = method.outputs(latents, state, encoders)

Training::

    inputs = method.training_inputs(TrainingBatch(...), sigma, noise, generator)
    outputs = Denoiser(backbone, method)(inputs.model_inputs)
    terms = method.loss(outputs, inputs)                        # named [B] terms; the loss is the sum of their means

``model_inputs`` and ``training_inputs`` start from the plain flow-matching inputs (:func:`base_model_inputs`,
:func:`base_training_inputs`: the noisy state, σ·1000, the prompt or the empty one, text and image dropout drawn
once) and fold each method's hook over them: :meth:`ConditioningMethod.apply` and
:meth:`ConditioningMethod.apply_training`. A method overrides only the hooks it needs.

Methods may hold trainable parameters (FlashI2V's φ, adapters), so the base class is a diffusers
``ModelMixin`` + ``ConfigMixin``: a method saves and loads inside a pipeline folder like any model. (Each
method's module must import ``ModelMixin``: diffusers' loader looks the base class up in that module.)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import save_file
from torch import Tensor

from anyframe.flow.guidance import Branch
from anyframe.flow.path import add_noise, flow_matching_loss, velocity_target
from anyframe.flow.timesteps import TIMESTEP_SCALE
from anyframe.models.backbone import inflate_channels
from anyframe.models.text_encoder import TextCondition

# ------------------------------------------------------------------------------------------------
#                                     Backbone inputs
# ------------------------------------------------------------------------------------------------


@dataclass
class ModelInputs:
    """Keyword arguments of a backbone's ``forward`` (the protocol: ``anyframe.models.backbone.Backbone``),
    plus the inputs of the methods' own trainable layers (``method_inputs``, read by
    :meth:`ConditioningMethod.pre_backbone` before the backbone runs — e.g. FlashI2V's condition latent).
    Methods add to it: channels to ``extra_channels``, token groups to ``context_tokens``; keys of
    ``method_inputs`` start with the method's name, so that methods combine."""

    hidden_states: Tensor  # [B, C, T, H, W]
    timestep: Tensor  # [B] or [B, T], σ·1000
    encoder_hidden_states: Tensor  # [B, L, text_dim], or per frame [B, T, L, text_dim]
    encoder_attention_mask: Tensor | None = None  # [B, L] (per frame [B, T, L])
    micro_conditions: Tensor | None = None  # [B, 5]
    extra_channels: Tensor | None = None  # [B, C_extra, T, H, W]
    added_embeddings: Tensor | None = None  # [B, D, T', H', W'], added to the patch embedding
    context_tokens: dict[str, Tensor] = field(default_factory=dict)  # {group: [B(·K), N, D_group]}
    method_inputs: dict[str, Tensor] = field(default_factory=dict)  # each [B, ...]
    outputs: dict[str, Tensor] = field(default_factory=dict)  # what the methods' layers computed, returned with the
    # backbone's output under these names (e.g. ReasonDiff's predicted latents, for its auxiliary loss)

    @classmethod
    def of(cls, hidden_states: Tensor, timestep: Tensor, text: TextCondition, micro_conditions: Tensor | None = None,
           **rest) -> ModelInputs:
        """Inputs with the text condition's tokens and mask (``rest``: the other fields)."""
        return cls(hidden_states=hidden_states, timestep=timestep, encoder_hidden_states=text.embeds,
                   encoder_attention_mask=text.mask, micro_conditions=micro_conditions, **rest)

    def with_extra_channels(self, channels: Tensor) -> ModelInputs:
        """These inputs with ``channels`` ``[B, C', T, H, W]`` appended to the extra input channels."""
        extra = channels if self.extra_channels is None else torch.cat([self.extra_channels, channels], dim=1)
        return replace(self, extra_channels=extra)

    def with_context_tokens(self, name: str, tokens: Tensor) -> ModelInputs:
        if name in self.context_tokens:
            raise ValueError(f"two methods give the context-token group {name!r}")
        return replace(self, context_tokens={**self.context_tokens, name: tokens})

    def with_method_inputs(self, **inputs: Tensor) -> ModelInputs:
        clash = set(inputs) & set(self.method_inputs)
        if clash:
            raise ValueError(f"two methods give the method inputs {sorted(clash)}")
        return replace(self, method_inputs={**self.method_inputs, **inputs})

    def denoiser_kwargs(self) -> dict:
        """The keyword arguments of :class:`Denoiser` (the backbone's, plus ``method_inputs`` if any)."""
        kwargs = self.as_kwargs()
        if self.method_inputs:
            kwargs["method_inputs"] = dict(self.method_inputs)
        return kwargs

    def with_added_embeddings(self, embeddings: Tensor) -> ModelInputs:
        added = embeddings if self.added_embeddings is None else self.added_embeddings + embeddings
        return replace(self, added_embeddings=added)

    def as_kwargs(self) -> dict:
        """The backbone's keyword arguments (fields left empty are not passed)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("method_inputs", "outputs") or value is None or (f.name == "context_tokens" and not value):
                continue
            out[f.name] = value
        return out

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
        out["context_tokens"] = {k: move(k, v) for k, v in self.context_tokens.items()}
        out["method_inputs"] = {k: move(k, v) for k, v in self.method_inputs.items()}
        out["outputs"] = {k: move(k, v) for k, v in self.outputs.items()}
        return ModelInputs(**out)

    @staticmethod
    def cat(inputs: Sequence[ModelInputs]) -> ModelInputs:
        """Concatenate along the batch (guidance branches → one forward). Scalar-σ inputs are expanded
        to per-frame σ when another branch carries per-frame σ."""
        if len(inputs) == 1:
            return inputs[0]
        num_frames = inputs[0].hidden_states.shape[2]
        per_frame = any(i.timestep.ndim == 2 for i in inputs)
        out = {}
        for f in fields(ModelInputs):
            values = [getattr(i, f.name) for i in inputs]
            if f.name in ("method_inputs", "context_tokens", "outputs"):
                keys = set(values[0])
                if any(set(v) != keys for v in values):
                    raise ValueError(f"cannot batch branches with different {f.name}")
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


# ------------------------------------------------------------------------------------------------
#                                    Requests and encoders
# ------------------------------------------------------------------------------------------------


class Encoders(Protocol):
    """What a method may ask for while it encodes a request (the pipeline's encoders, bound to one request).

    The prompt, the starting noise and the micro conditions are encoded for every method; everything else
    is encoded on demand. Keyframes are those of the validated request: ``frame_index`` resolved (≥ 0)."""

    noise: Tensor  # [B, C_state, T_lat, h, w]: the starting state x_1, drawn from the request's seed
    text: TextCondition  # the prompts [B, L, D]
    null_text: TextCondition  # the negative prompts, or the empty prompt
    micro_conditions: Tensor | None  # [B, 5]
    temporal_compression: int  # pixel frames per latent frame (1; Wan's causal VAE: 4)

    def latent_index(self, pixel_index: int) -> int:
        """The latent frame holding a pixel frame."""

    def keyframe_latents(self, keyframes: Sequence) -> Tensor:
        """``[B, C, K, h, w]``: one latent frame per keyframe, as the autoencoder encodes that frame of a clip."""

    def condition_video(self, keyframes: Sequence, num_frames: int) -> tuple[Tensor, Tensor]:
        """The pixel clip with the keyframes at their frames and zeros elsewhere → its latents
        ``[B, C, T_lat, h, w]`` and the ``[B, T]`` keyframe mask (Wan I2V's condition)."""

    def image_tokens(self, keyframes: Sequence) -> Tensor | None:
        """Image-encoder tokens of the keyframes the backbone takes (``[B·K, N, D]``), or None without one."""

    def image_token_frames(self, frames: Sequence[int]) -> list[int]:
        """Of ``frames`` (in time order), those the image encoder sees (FLF2V: first and last; else first)."""

    def image_tokens_of(self, images: Sequence) -> Tensor | None:
        """PIL images → image-encoder tokens ``[N, tokens, dim]``, or None without an image encoder."""

    def encode_text(self, prompts: Sequence[str]) -> TextCondition:
        """More prompts, in the backbone's convention (per-frame narratives, regional captions...)."""

    def encode_video(self, video: Tensor) -> Tensor:
        """Pixels ``[B, 3, T, H, W]`` in [−1, 1] → latents ``[B, C, T_lat, h, w]``."""

    def decode_video(self, latents: Tensor) -> Tensor:
        """Latents → pixels ``[B, T, H, W, 3]`` in [0, 1]."""


class Limits(Protocol):
    """What a model can do, for :meth:`ConditioningMethod.check_request` (the pipeline's ``ModelLimits``)."""

    temporal_compression: int

    def latent_index(self, pixel_index: int) -> int: ...


def keyframes_in_distinct_latent_frames(request, limits: Limits) -> str | None:
    """Why the request's keyframes cannot each be one latent frame (two in one frame of a causal VAE), or None."""
    indices = [k.frame_index for k in request.keyframes]
    latent = [limits.latent_index(i) for i in indices]
    if len(set(latent)) != len(latent):
        return (f"keyframes at frames {indices} fall into the same latent frame of this model's causal VAE "
                f"(latent frames {latent}; {limits.temporal_compression} pixel frames each after frame 0)")
    return None


@dataclass(frozen=True)
class NoOptions:
    """A method without per-request options."""


# ------------------------------------------------------------------------------------------------
#                                   States, batches, outputs
# ------------------------------------------------------------------------------------------------


@dataclass
class ConditionState:
    """Per-request state shared by all methods; methods subclass it with their own fields."""

    text: TextCondition
    null_text: TextCondition
    micro_conditions: Tensor | None

    @classmethod
    def of(cls, encoders: Encoders, **fields_) -> ConditionState:
        """A state with the request's encoded prompt and micro conditions (``fields_``: the method's own)."""
        return cls(encoders.text, encoders.null_text, encoders.micro_conditions, **fields_)

    @property
    def has_image(self) -> bool:
        """Whether an image condition is present (if not, image-dropping branches are identical)."""
        return False

    def generated_mask(self) -> Tensor | None:
        """``[B, 1, T, 1, 1]`` 1 where frames are generated (for renormalisation norms); None = all."""
        return None


@dataclass
class TrainingBatch:
    """Everything the data source gives for a batch; a method takes what it needs.

    ``latents`` always (from the pixels, or a latent cache); ``pixels`` and the clips' annotations when the
    data source has them (world clips: per-frame captions, object masks, regional captions); ``encoders``:
    the pipeline's encoders, for methods that encode more than the clip (not bound to a request: no noise)."""

    latents: Tensor  # [B, C, T, H, W], clean
    text: TextCondition
    null_text: TextCondition  # the empty prompt, broadcast to B, used for text dropout
    micro_conditions: Tensor | None = None
    pixels: Tensor | None = None  # [B, 3, T_pix, H, W] in [−1, 1]; None from a latent cache
    captions: list[str] | None = None
    frame_captions: list[list[str] | None] | None = None  # per clip, T narratives (ReasonDiff)
    object_masks: list[Tensor | None] | None = None  # per clip [K, T, H, W] in {0, 1}
    regional_captions: list[list[str] | None] | None = None  # per clip, K captions, one per mask (JDM)
    edit_sources: Tensor | None = None  # [B, 3, T, H, W]: the clip an edit starts from
    meta: list[dict] | None = None  # per clip, what the data source knows of it (world: index, scene JSON, cmi)
    encoders: Any = None  # an Encoders-like object (no request fields), or None


@dataclass
class TrainingInputs:
    """What the methods build for one training step."""

    model_inputs: ModelInputs
    target: Tensor  # [B, C', T, H, W]
    sigma: Tensor  # [B]
    noise: Tensor  # [B, C, T, H, W]
    loss_mask: Tensor | None = None  # broadcastable to target: 1 (or a weight) where the loss counts
    loss_weight: Tensor | None = None  # [B]
    info: dict = field(default_factory=dict)  # drop_image, drop_text [B] bool; tasks; frame_mask... (logged)

    @property
    def drop_image(self) -> Tensor:
        return self.info["drop_image"]

    def with_loss_mask(self, mask: Tensor) -> TrainingInputs:
        """The loss mask multiplied by ``mask`` (element weights compose by product)."""
        return replace(self, loss_mask=mask if self.loss_mask is None else self.loss_mask * mask)


# ------------------------------------------------------------------------------------------------
#                                       The base inputs
# ------------------------------------------------------------------------------------------------


def base_model_inputs(x: Tensor, sigma: Tensor, state: ConditionState, branch: Branch) -> ModelInputs:
    """Text-to-video flow matching: the state, σ·1000, the prompt (or the negative / empty one)."""
    text = state.text if branch.text else state.null_text
    return ModelInputs.of(x, sigma * TIMESTEP_SCALE, text, state.micro_conditions)


def draw_dropout(batch_size: int, image_rate: float, text_rate: float,
                 generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Which examples drop the image condition and which the text (``[B]`` bool each, drawn independently,
    in that order)."""
    drop_image = torch.rand(batch_size, generator=generator) < image_rate
    drop_text = torch.rand(batch_size, generator=generator) < text_rate
    return drop_image, drop_text


def base_training_inputs(batch: TrainingBatch, sigma: Tensor, noise: Tensor, drop_image: Tensor,
                         drop_text: Tensor) -> TrainingInputs:
    """Text-to-video flow matching: ``x_σ = (1 − σ)·x0 + σ·ε``, target ``ε − x0``, the text dropped where
    ``drop_text``; ``drop_image`` is recorded for the methods that condition on an image."""
    x0 = batch.latents
    text = batch.text.select(~drop_text, batch.null_text)
    return TrainingInputs(
        model_inputs=ModelInputs.of(add_noise(x0, noise, sigma), sigma * TIMESTEP_SCALE, text, batch.micro_conditions),
        target=velocity_target(x0, noise),
        sigma=sigma,
        noise=noise,
        info={"drop_image": drop_image, "drop_text": drop_text},
    )


def diffusion_loss(prediction: Tensor, inputs: TrainingInputs) -> Tensor:
    """Per sample ``[B]``: the masked, weighted flow-matching error (:func:`~anyframe.flow.path.flow_matching_loss`)."""
    mask = None if inputs.loss_mask is None else inputs.loss_mask.to(prediction.device)
    weight = None if inputs.loss_weight is None else inputs.loss_weight.to(prediction.device)
    return flow_matching_loss(prediction.float(), inputs.target.to(prediction.device), mask, weight, reduction="none")


# ------------------------------------------------------------------------------------------------
#                                         The method
# ------------------------------------------------------------------------------------------------


def check_dropout_rates(text_dropout: float, image_dropout: float) -> None:
    """The training dropout rates every method takes: probabilities."""
    for name, rate in (("text_dropout", text_dropout), ("image_dropout", image_dropout)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")


def backbone_extra_channels(backbone: ModelMixin) -> tuple[int, int]:
    """(input, output) channels a backbone has beyond the video latents': STIV's ``extra_in_channels`` /
    ``extra_out_channels``; Wan's ``in_channels`` beyond its latent channels (I2V: mask + condition)."""
    cfg = backbone.config
    if "extra_in_channels" in cfg:
        return int(cfg.extra_in_channels), int(cfg.extra_out_channels)
    return int(cfg.in_channels) - int(backbone.latent_channels), 0


class ConditioningMethod(ModelMixin, ConfigMixin):
    """Base class of conditioning methods (see the module doc). A subclass overrides the hooks it needs:

    - :meth:`encode` (request → its state), :meth:`apply` (its part of a branch's inputs), :meth:`after_step`,
      :meth:`finalize`, :meth:`outputs` — inference;
    - :meth:`apply_training` (its part of a batch's inputs) and :meth:`loss_terms` — training;
    - :meth:`pre_backbone` — its own trainable layers, run on the inputs before the backbone;
    - declarations: ``name``, ``Options`` (per-request options), ``request_fields`` (the optional request fields it
      reads), ``extra_in_channels`` / ``extra_out_channels`` / ``context_groups`` (what it adds to the backbone:
      :meth:`adapt_backbone` adds them, zero-initialised), ``batch_fields`` (what it needs of a training batch
      beyond the latents and the text: a recipe whose data does not give them is refused).

    The constructor's arguments are the method's model options (saved in its config); ``text_dropout`` and
    ``image_dropout`` are the training dropout rates every method takes.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # what it does, in a few words (errors and listings)
    Options: ClassVar[type] = NoOptions
    request_fields: ClassVar[frozenset[str]] = frozenset()  # of GenerationRequest: "keyframes", "frame_prompts"...
    context_groups: ClassVar[dict[str, int]] = {}  # group name → token width it gives the backbone
    batch_fields: ClassVar[frozenset[str]] = frozenset()  # TrainingBatch fields it trains from: "pixels", "object_masks"...
    backbone_options: ClassVar[tuple[str, ...]] = ()  # constructor arguments read from the backbone (for_backbone)
    extra_outputs: ClassVar[frozenset[str]] = frozenset()  # what outputs() returns beside the video: "masks"...

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

    # ---------------------------------------------------------------------------- building

    @classmethod
    def for_backbone(cls, backbone: ModelMixin, **options) -> ConditioningMethod:
        """The method sized for ``backbone`` (methods with their own layers read its channels, width or
        patch: ``backbone_options``); ``options`` are the constructor's other arguments."""
        return cls(**options)

    @property
    def methods(self) -> list[ConditioningMethod]:
        """The methods this one is made of (itself; a :class:`MethodStack` its members)."""
        return [self]

    @property
    def extra_in_channels(self) -> int:
        """Condition channels this method appends to the backbone's input."""
        return 0

    @property
    def extra_out_channels(self) -> int:
        """Channels this method adds to the backbone's output (and so to the sampler state)."""
        return 0

    def adapt_backbone(self, backbone: ModelMixin) -> ModelMixin:
        """The backbone this method needs: with its extra channels (zero-initialised, through the one
        inflation helper) and context-token groups (zero-initialised branches), so that it computes what
        ``backbone`` does. Idempotent: a backbone that has them already is returned as it is. Called once
        when a recipe builds a model."""
        have_in, have_out = backbone_extra_channels(backbone)
        for label, have, need in (("input", have_in, self.extra_in_channels), ("output", have_out, self.extra_out_channels)):
            if have and have != need:
                raise ValueError(f"the backbone has {have} extra {label} channels; "
                                 f"{'+'.join(m.name for m in self.methods)} needs {need}")
        if self.extra_in_channels > have_in or self.extra_out_channels > have_out:
            backbone = inflate_channels(backbone, self.extra_in_channels - have_in, self.extra_out_channels - have_out)
        for group, width in self.context_groups.items():
            if group not in getattr(backbone, "context_groups", ()):
                backbone = backbone.with_context_group(group, width)
        return backbone

    def check_request(self, request, limits: Limits) -> str | None:
        """Why this method cannot serve a (validated) request, e.g. keyframes where it cannot put them; None: it can."""
        return None

    def options_of(self, request) -> Any:
        """The request's options for this method (its ``Options``, defaults filled)."""
        given = getattr(request, "options", None) or {}
        if isinstance(given, self.Options):
            return given
        names = {f.name for f in dataclasses.fields(self.Options)}
        return self.Options(**{k: v for k, v in dict(given).items() if k in names})

    # ---------------------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> ConditionState:
        """This method's state for a validated request; ask ``encoders`` for what it needs."""
        return ConditionState.of(encoders)

    def model_inputs(self, x: Tensor, sigma: Tensor, state: ConditionState, branch: Branch) -> ModelInputs:
        """Backbone inputs for the sampler state ``x`` at noise level ``sigma`` [B] for one guidance branch."""
        return self.apply(base_model_inputs(x, sigma, state, branch), x, sigma, state, branch)

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: ConditionState, branch: Branch) -> ModelInputs:
        """This method's part of a branch's inputs (``inputs``: what the methods before it built)."""
        return inputs

    def forward(self, backbone: ModelMixin, inputs: ModelInputs):
        """One denoiser evaluation: this method's layers (:meth:`pre_backbone`), then the backbone; what the layers
        put in ``inputs.outputs`` comes back as named entries of the backbone's output."""
        inputs = self.pre_backbone(inputs)
        out = backbone(**inputs.as_kwargs())
        for name, value in inputs.outputs.items():
            out[name] = value
        return out

    def pre_backbone(self, inputs: ModelInputs) -> ModelInputs:
        """This method's own layers on ``inputs.method_inputs``, before the backbone (runs inside the trained
        module, so its parameters train and sync with it)."""
        return inputs

    def after_step(self, x: Tensor, sigma_next: Tensor, state: ConditionState) -> Tensor:
        return x

    def finalize(self, x: Tensor, state: ConditionState) -> Tensor:
        """The clean latents from the final sampler state."""
        return x

    def outputs(self, latents: Tensor, state: ConditionState, encoders: Encoders) -> dict[str, Any]:
        """What this method returns beside the video (e.g. masks decoded from its output channels)."""
        return {}

    def canonical_branch(self, branch: Branch, state: ConditionState) -> Branch:
        """Branches that give identical inputs map to one (no image → the image flag is moot)."""
        return branch if state.has_image else replace(branch, image=False)

    # ---------------------------------------------------------------------------- training

    def dropout_rates(self) -> tuple[float, float]:
        """(image, text) dropout rates in training."""
        return float(self.config.get("image_dropout", 0.0)), float(self.config.get("text_dropout", 0.0))

    def training_inputs(
        self, batch: TrainingBatch, sigma: Tensor, noise: Tensor, generator: torch.Generator | None = None
    ) -> TrainingInputs:
        """The inputs, target and loss mask of a batch: dropout drawn once, then :meth:`apply_training`."""
        image_rate, text_rate = self.dropout_rates()
        drop_image, drop_text = draw_dropout(batch.latents.shape[0], image_rate, text_rate, generator)
        inputs = base_training_inputs(batch, sigma, noise, drop_image, drop_text)
        return self.apply_training(inputs, batch, generator)

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        """This method's part of a training batch's inputs."""
        return inputs

    def loss(self, outputs, inputs: TrainingInputs) -> dict[str, Tensor]:
        """Named loss terms, each per sample ``[B]`` (or a scalar); the loss is the sum of their means.
        ``diffusion`` is the masked, weighted flow-matching term; methods add theirs in :meth:`loss_terms`."""
        terms = {"diffusion": diffusion_loss(outputs.sample, inputs)}
        return self.loss_terms(outputs, inputs, terms)

    def loss_terms(self, outputs, inputs: TrainingInputs, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """This method's terms added to (or replacing) ``terms``."""
        return terms

    def diagnostics(self, outputs, inputs: TrainingInputs) -> dict[str, float]:
        """Numbers a training log shows beside the loss, outside it (no gradient): e.g. JDM's error on its mask
        channels alone. Keys are logged as they are; a NaN (nothing to measure in this batch) is not logged."""
        return {}


class Denoiser(torch.nn.Module):
    """The trained module: a backbone and its conditioning method's layers, called as one
    (``Denoiser(**model_inputs.denoiser_kwargs())`` or :meth:`run`). Training wraps this, not the bare backbone,
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

    def forward(self, method_inputs: dict[str, Tensor] | None = None, context_tokens: dict[str, Tensor] | None = None,
                **backbone_kwargs):
        inputs = ModelInputs(**backbone_kwargs, context_tokens=context_tokens or {}, method_inputs=method_inputs or {})
        return self.conditioning(self.transformer, inputs)
