"""ReasonDiff (``reasondiff.txt`` §3): per-frame narratives and AlignFormer's predicted latents, on top of frame
replacement.

A narrator (:mod:`anyframe.narrators`) places the condition image at a frame ``i`` and writes one narrative per
frame; the pipeline puts them in the request (the keyframe's index, ``frame_prompts``). This method then:

- **per-frame context**: each frame's cross-attention reads its own narrative (the backbone's ``[B, T, L, D]``
  context; frames without one read the prompt). The branches that drop the text read the empty prompt on every
  frame;
- **predicted latents**: AlignFormer (:class:`~anyframe.models.alignformer.AlignFormer`) turns the anchor latent
  ``c_i`` and the narratives into one latent per frame ``c*``; ``c*`` with the true ``c_i`` at frame ``i``, and a
  mask channel (1 at ``i``), join the backbone's input as ``C + 1`` channels (zero-initialised: an untrained
  ReasonDiff model computes its base model's velocity). Branches without the image condition see zeros.

The image itself is re-imposed at its frame by frame replacement: stack this method after it
(``addons: [{method: reasondiff}]`` with ``task_weights: {any_frame: 1}``, the paper's random anchor frame).

Training: the anchor is the frame frame replacement conditioned on (an example without one has no anchor),
the narratives are the clip's per-frame captions (``frame_captions``: the world writes them), dropped with the
text. Stage 1 trains the backbone and AlignFormer on the denoising loss (``aux_weight: 0``); stage 2 trains
AlignFormer alone (the recipe's ``train.trainable: conditioning``) with ``+ aux_weight·‖c* − c‖²`` over the
frames other than the anchor (paper: β = 0.2).

Ablations (paper Fig. 5): ``per_frame_text: false`` (the prompt on every frame), ``predicted_latents: false``
(no AlignFormer, no extra channels), ``aux_weight: 0`` without a stage 2.
"""

from __future__ import annotations

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
from anyframe.models.alignformer import AlignFormer
from anyframe.models.text_encoder import TextCondition

LATENTS = "reasondiff_latents"  # the predicted latents c*, returned with the backbone's output


@dataclass
class ReasonDiffState(ConditionState):
    anchor: Tensor | None = None  # [B, C, h, w]: the condition image's latent
    anchor_frame: int | None = None  # its latent frame
    frame_text: TextCondition | None = None  # per frame [B, T, L, D]
    null_frame_text: TextCondition | None = None  # the null text on every frame [B, T, L, D]

    @property
    def has_image(self) -> bool:
        return self.anchor is not None


def _pad(text: TextCondition, length: int) -> TextCondition:
    """``text`` ([..., L, D]) padded (masked) or cut to ``length`` tokens."""
    have = text.embeds.shape[-2]
    if have >= length:
        return TextCondition(text.embeds[..., :length, :], text.mask[..., :length])
    pad = list(text.embeds.shape)
    pad[-2] = length - have
    embeds = torch.cat([text.embeds, text.embeds.new_zeros(pad)], dim=-2)
    return TextCondition(embeds, torch.cat([text.mask, text.mask.new_zeros(pad[:-1])], dim=-1))


def per_frame(text: TextCondition, frames: int) -> TextCondition:
    """A ``[B, L, D]`` text on every frame: ``[B, T, L, D]``."""
    return TextCondition(text.embeds[:, None].expand(-1, frames, -1, -1), text.mask[:, None].expand(-1, frames, -1))


def latent_frame_texts(texts: list[str], num_latent_frames: int, compression: int) -> list[str]:
    """The narrative each latent frame reads: with a per-frame autoencoder its own; with a causal video VAE
    (``compression`` pixel frames per latent frame after frame 0) the middle one of the pixel frames it holds."""
    if compression == 1:
        return list(texts[:num_latent_frames])
    out = [texts[0]]
    for k in range(1, num_latent_frames):
        first, last = compression * (k - 1) + 1, min(compression * k, len(texts) - 1)
        out.append(texts[(first + last) // 2])
    return out


@register_method
class ReasonDiff(ConditioningMethod):
    """ReasonDiff's per-frame narratives and predicted latents (see the module doc).

    Args:
        latent_channels, text_dim: read from the backbone.
        width, heads: AlignFormer's.
        per_frame_text: each frame's cross-attention reads its narrative (False: the prompt).
        predicted_latents: AlignFormer's latents as extra input channels (False: none).
        aux_weight: β of the auxiliary loss ‖c* − c‖² (stage 2; 0 in stage 1).
        text_dropout, image_dropout: when this method is first in its stack (it is meant to follow frame replacement).
    """

    name = "reasondiff"
    summary = "unpaired text + image: per-frame narratives and AlignFormer latents (ReasonDiff)"
    request_fields = frozenset({"keyframes", "frame_prompts", "unplaced_keyframes"})
    backbone_options = ("latent_channels", "text_dim")

    @register_to_config
    def __init__(self, latent_channels: int = 4, text_dim: int = 32, width: int = 128, heads: int = 4,
                 per_frame_text: bool = True, predicted_latents: bool = True, aux_weight: float = 0.0,
                 text_dropout: float = 0.10, image_dropout: float = 0.08):
        super().__init__()
        check_dropout_rates(text_dropout, image_dropout)
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be ≥ 0, got {aux_weight}")
        if aux_weight > 0 and not predicted_latents:
            raise ValueError("aux_weight trains the predicted latents: it needs predicted_latents")
        self.alignformer = AlignFormer(latent_channels, text_dim, width, heads) if predicted_latents else None

    @classmethod
    def for_backbone(cls, backbone, **options) -> ReasonDiff:
        return cls(latent_channels=backbone.latent_channels, text_dim=int(backbone.config.text_dim), **options)

    @property
    def batch_fields(self) -> frozenset[str]:
        return frozenset({"frame_captions"}) if self.config.per_frame_text else frozenset()

    @property
    def extra_in_channels(self) -> int:
        return self.config.latent_channels + 1 if self.config.predicted_latents else 0

    def check_request(self, request, limits) -> str | None:
        if len(request.keyframes) > 1:
            return f"ReasonDiff conditions on one image; got {len(request.keyframes)}"
        return None

    # ---------------------------------------------------------------- the layers

    def pre_backbone(self, inputs: ModelInputs) -> ModelInputs:
        if self.alignformer is None or "reasondiff_anchor" not in inputs.method_inputs:
            return inputs
        mi = inputs.method_inputs
        anchor, frame, present = mi["reasondiff_anchor"], mi["reasondiff_frame"].long(), mi["reasondiff_present"]
        b, t = inputs.hidden_states.shape[0], inputs.hidden_states.shape[2]
        dtype = self.alignformer.out.weight.dtype
        predicted = self.alignformer(anchor.to(dtype), frame, mi["reasondiff_text"].to(dtype), mi["reasondiff_mask"])
        at_anchor = torch.zeros(b, 1, t, 1, 1, device=predicted.device, dtype=predicted.dtype)
        at_anchor[torch.arange(b), 0, frame.clamp(0, t - 1)] = 1.0
        at_anchor = at_anchor * present.view(b, 1, 1, 1, 1).to(predicted.dtype)
        guided = torch.where(at_anchor.bool(), anchor.to(predicted.dtype)[:, :, None], predicted)
        guided = guided * present.view(b, 1, 1, 1, 1).to(predicted.dtype)  # no image: zeros
        channels = torch.cat([guided, at_anchor.expand(b, 1, t, *guided.shape[-2:])], dim=1)
        inputs = inputs.with_extra_channels(channels.to(inputs.hidden_states.dtype))
        return replace(inputs, outputs={**inputs.outputs, LATENTS: predicted})

    def _method_inputs(self, anchor: Tensor, frame: Tensor, present: Tensor, text: TextCondition) -> dict[str, Tensor]:
        return {"reasondiff_anchor": anchor, "reasondiff_frame": frame.float(), "reasondiff_present": present.float(),
                "reasondiff_text": text.embeds, "reasondiff_mask": text.mask}

    # ---------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> ReasonDiffState:
        noise = encoders.noise
        b, t = noise.shape[0], noise.shape[2]
        state = ReasonDiffState.of(encoders)
        if request.keyframes:
            latents = encoders.keyframe_latents(request.keyframes[:1]).to(noise.device, noise.dtype)
            state.anchor = latents[:, :, 0].expand(b, -1, -1, -1)
            state.anchor_frame = encoders.latent_index(request.keyframes[0].frame_index)
        prompts = list(request.prompts)
        pixel_frames = request.num_frames or t
        texts = []
        for s in range(b):  # frames without a narrative read the sample's own prompt
            own = [request.frame_prompts.get(j, prompts[s % len(prompts)]) for j in range(pixel_frames)]
            texts += latent_frame_texts(own, t, encoders.temporal_compression)
        encoded = encoders.encode_text(texts)  # [B·T, L, D]
        length = max(encoded.embeds.shape[1], encoders.null_text.embeds.shape[1])
        encoded = _pad(encoded, length)
        state.frame_text = TextCondition(encoded.embeds.reshape(b, t, length, -1).to(noise.device),
                                         encoded.mask.reshape(b, t, length).to(noise.device))
        state.null_frame_text = per_frame(_pad(encoders.null_text, length), t)
        return state

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: ReasonDiffState, branch: Branch) -> ModelInputs:
        b, t = x.shape[0], x.shape[2]
        if self.config.per_frame_text:
            text = state.frame_text if branch.text else state.null_frame_text
        else:
            text = per_frame(state.text if branch.text else state.null_text, t)
        inputs = replace(inputs, encoder_hidden_states=text.embeds, encoder_attention_mask=text.mask)
        if self.alignformer is None:
            return inputs
        with_image = branch.image and state.has_image
        anchor = state.anchor if state.has_image else torch.zeros_like(x[:, : self.config.latent_channels, 0])
        frame = torch.full((b,), state.anchor_frame or 0, device=x.device)
        present = torch.full((b,), float(with_image), device=x.device)
        return inputs.with_method_inputs(**self._method_inputs(anchor, frame, present, state.frame_text))

    # ---------------------------------------------------------------- training

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        x0 = batch.latents
        b, t = x0.shape[0], x0.shape[2]
        frame_mask = inputs.info.get("frame_mask")
        if frame_mask is None:
            frame_mask = torch.zeros(b, t, dtype=torch.bool)
        present = frame_mask.sum(1) == 1  # one conditioned frame: the anchor (else: no anchor)
        frame = frame_mask.float().argmax(1)
        texts = []
        for i in range(b):
            captions = (batch.frame_captions or [None] * b)[i]
            global_caption = (batch.captions or [""] * b)[i]
            frames = list(captions) if captions else [global_caption] * t
            compression = getattr(batch.encoders, "temporal_compression", 1) if batch.encoders is not None else 1
            texts.extend(latent_frame_texts(frames, t, compression) if len(frames) != t else frames)
        if batch.encoders is None:
            raise ValueError("ReasonDiff needs the pipeline's encoders in the training batch (to encode narratives)")
        encoded = batch.encoders.encode_text(texts).to("cpu")  # [B·T, L, D]
        length = max(encoded.embeds.shape[1], inputs.model_inputs.encoder_hidden_states.shape[-2])
        encoded = _pad(encoded, length)
        frame_text = TextCondition(encoded.embeds.reshape(b, t, length, -1), encoded.mask.reshape(b, t, length))
        mi = inputs.model_inputs
        global_text = _pad(TextCondition(mi.encoder_hidden_states, mi.encoder_attention_mask), length)
        dropped = inputs.info["drop_text"]
        if self.config.per_frame_text:  # the dropped examples read the (already dropped) global text: the null one
            text = TextCondition(torch.where(dropped[:, None, None, None], per_frame(global_text, t).embeds,
                                             frame_text.embeds.to(global_text.embeds)),
                                 torch.where(dropped[:, None, None], per_frame(global_text, t).mask, frame_text.mask))
        else:
            text = per_frame(global_text, t)
        model_inputs = replace(mi, encoder_hidden_states=text.embeds, encoder_attention_mask=text.mask)
        if self.alignformer is not None:
            anchor = x0[torch.arange(b), :, frame] * present.view(b, 1, 1, 1).to(x0)  # [B, C, h, w]
            model_inputs = model_inputs.with_method_inputs(**self._method_inputs(anchor, frame, present, frame_text))
        return replace(inputs, model_inputs=model_inputs,
                       info={**inputs.info, "reasondiff_present": present, "reasondiff_frame": frame,
                             "reasondiff_clean": x0})

    def loss_terms(self, outputs, inputs: TrainingInputs, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        beta = self.config.aux_weight
        if beta <= 0 or LATENTS not in outputs:
            return terms
        predicted = outputs[LATENTS].float()
        clean = inputs.info["reasondiff_clean"].to(predicted)
        b, _, t = clean.shape[:3]
        others = torch.ones(b, 1, t, 1, 1, device=predicted.device)
        others[torch.arange(b), 0, inputs.info["reasondiff_frame"]] = 0.0  # (the anchor frame is given, not predicted)
        present = inputs.info["reasondiff_present"].to(predicted).view(b, 1, 1, 1, 1)
        weight = (others * present).expand_as(predicted)
        err = ((predicted - clean) ** 2 * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)
        return {**terms, "alignformer": beta * err}
