"""JDM: joint video + mask denoising for fine-grained text–region binding (``jdm.txt`` §3.2–3.3).

The model denoises the video and a *mask clip* together: the mask clip (white where the chosen objects are,
black elsewhere) is encoded by the same autoencoder, and its latents ride in the sampler state after the
video's. The backbone's input and output go from C to 2C channels through the one inflation helper, the new
weights zero-initialised, so an untrained JDM model's video is its base model's, exactly.

Training, per example (one term per example, so compute = examples × 1 pass, like a plain fine-tune):

- with probability ``w' = w·exp(−α·Ī)`` the *fine* term ``L_fine``: a non-empty subset of the clip's objects is
  drawn (uniformly among the non-empty subsets), the mask clip is the union of their masks and the caption is
  their regional captions joined — on world clips in the caption form of those objects only
  (:func:`anyframe.world.captions.partial_caption`: the setting, their clauses, the events among them), elsewhere
  the regional captions as sentences. The loss counts the video and the mask channels (with
  ``fine_video_loss=False``, a variant outside the paper, the mask channels only);
- otherwise the *diffusion* term ``L_diff``: the full caption and the video channels only. The mask channels
  still carry the union of all the objects, noised like the video (so the backbone's input looks as at
  inference, where the two are denoised together from one σ), but their error is not counted.

``E[loss] = (1 − w')·L_diff + w'·L_fine`` (eq. 13). Ī is the clip's conditional mutual information between its
regional captions given the clip, estimated once for a fixed set of training clips
(:mod:`anyframe.data.cmi`) and read from the batch's ``meta["cmi"]`` (``data.world.cmi`` in a recipe);
``use_cmi=False`` is the paper's ablation ``w' = w``. Video and mask get independent noise at one σ. A clip
without objects has an empty (all black) mask clip.

Inference takes only text (and keyframes, if frame replacement is stacked before JDM): the state starts as
noise in all 2C channels; :meth:`JointMasks.outputs` decodes the mask channels and thresholds them
(``masks``: ``[B, T, H, W]`` bool, True where the decoded mask clip's mean over RGB is above ``threshold``, 0.5
of its [0, 1] range), with the soft clip as ``mask_frames`` (``[B, T, H, W, 3]`` in [0, 1]).

Stacking: JDM's channels must follow the video's directly in the state (a method before it in a stack must not
add output channels of its own); frame replacement before it re-imposes only the video channels.
"""

from __future__ import annotations

import math
from dataclasses import replace

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
from anyframe.flow.path import add_noise, flow_matching_loss, velocity_target
from anyframe.models.text_encoder import TextCondition
from anyframe.world.captions import partial_caption
from anyframe.world.scene import Scene


def mask_pixels(masks: Tensor, subset: list[int]) -> Tensor:
    """The mask clip of the objects ``subset`` of ``masks`` ``[K, T, H, W]`` (in {0, 1}): ``[3, T, H, W]`` in
    [−1, 1], +1 where any chosen object is (all −1 for an empty subset)."""
    union = masks[subset].amax(0) if subset else torch.zeros(masks.shape[1:], dtype=masks.dtype)
    return (union.float() * 2 - 1)[None].expand(3, -1, -1, -1)


def draw_subset(num_objects: int, generator: torch.Generator | None) -> list[int]:
    """A subset of ``range(num_objects)``, uniform among the non-empty ones (empty when there are no objects)."""
    if num_objects == 0:
        return []
    code = int(torch.randint(1, 2**num_objects, (1,), generator=generator))
    return [i for i in range(num_objects) if code >> i & 1]


def joined_captions(regional: list[str], subset: list[int], scene: Scene | None) -> str:
    """The caption of the chosen objects: the caption form of those objects where the clip's scene is known
    (world clips), else their regional captions as sentences."""
    if scene is not None:
        return partial_caption(scene, subset)
    return " ".join(regional[i][0].upper() + regional[i][1:] + "." for i in subset)


def _pad_text(text: TextCondition, length: int) -> TextCondition:
    extra = length - text.embeds.shape[1]
    if extra <= 0:
        return text
    b, _, d = text.embeds.shape
    embeds = torch.cat([text.embeds, text.embeds.new_zeros(b, extra, d)], dim=1)
    return TextCondition(embeds, torch.cat([text.mask, text.mask.new_zeros(b, extra)], dim=1))


@register_method
class JointMasks(ConditioningMethod):
    """JDM joint video + mask denoising (see the module doc).

    Args:
        mask_channels: latent channels of the mask clip (the autoencoder's; read from the backbone).
        w: the base weight of the fine term, in [0, 1] (paper: 1).
        alpha: the CMI sensitivity α ≥ 0 of ``w' = w·exp(−α·Ī)`` (paper: 1).
        use_cmi: weight by the clips' CMI (``meta["cmi"]``, needed); False: ``w' = w`` for every clip.
        threshold: a decoded mask pixel counts as inside at this value of [0, 1].
        fine_video_loss: a fine term counts the video channels' error too (the paper's ``L_fine``). False (a
            variant outside the paper): a fine term counts only the mask channels' — the video learns only from full
            captions, so it never pairs a subset's caption with the whole clip; the masks still train the backbone.
        text_dropout, image_dropout: training dropout rates when JDM is the model's only (or first) method.
    """

    name = "jdm"
    summary = "joint video + mask denoising; text → video and the objects' masks (JDM)"
    backbone_options = ("mask_channels",)
    extra_outputs = frozenset({"masks", "mask_frames", "mask_threshold"})

    @register_to_config
    def __init__(self, mask_channels: int = 4, w: float = 1.0, alpha: float = 1.0, use_cmi: bool = True,
                 threshold: float = 0.5, fine_video_loss: bool = True, text_dropout: float = 0.10,
                 image_dropout: float = 0.0):
        super().__init__()
        check_dropout_rates(text_dropout, image_dropout)
        if mask_channels < 1:
            raise ValueError(f"mask_channels must be ≥ 1, got {mask_channels}")
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"w must be in [0, 1], got {w}")
        if alpha < 0 or not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")

    @classmethod
    def for_backbone(cls, backbone, **options) -> JointMasks:
        return cls(mask_channels=backbone.latent_channels, **options)

    @property
    def batch_fields(self) -> frozenset[str]:
        """Object masks and regional captions; with ``use_cmi`` the clips' CMI too (``meta["cmi"]``)."""
        return frozenset({"object_masks", "regional_captions", *(("cmi",) if self.config.use_cmi else ())})

    @property
    def extra_in_channels(self) -> int:
        return self.config.mask_channels

    @property
    def extra_out_channels(self) -> int:
        return self.config.mask_channels

    def _split(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(video, mask) of a state laid out [video C | mask C]."""
        c = hidden.shape[1] - self.config.mask_channels
        return hidden[:, :c], hidden[:, c:]

    # ---------------------------------------------------------------- inference

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: ConditionState, branch: Branch) -> ModelInputs:
        video, mask = self._split(inputs.hidden_states)
        return replace(inputs, hidden_states=video).with_extra_channels(mask)

    def outputs(self, latents: Tensor, state: ConditionState, encoders: Encoders) -> dict:
        _, mask_latents = self._split(latents)
        frames = encoders.decode_video(mask_latents).float()  # [B, T, H, W, 3] in [0, 1]
        return {"masks": (frames.mean(-1) > self.config.threshold).cpu().numpy(), "mask_frames": frames.cpu().numpy(),
                "mask_threshold": float(self.config.threshold)}

    # ---------------------------------------------------------------- training

    def diagnostics(self, outputs, inputs: TrainingInputs) -> dict[str, float]:
        """``jdm/video``: the flow-matching error of the video channels (every example); ``jdm/mask``: of the
        mask channels, over the fine terms only (the examples whose mask error counts); ``jdm/fine_share``."""
        fine = inputs.info.get("jdm_fine")
        if fine is None:
            return {}
        with torch.no_grad():
            pred_video, pred_mask = self._split(outputs.sample.detach().float())
            target_video, target_mask = self._split(inputs.target.to(pred_video.device).float())
            mask = None if inputs.loss_mask is None else self._split(inputs.loss_mask.to(pred_video.device))[0]
            video = flow_matching_loss(pred_video, target_video, mask, reduction="none").mean()
            sel = fine.to(pred_mask.device)
            masks = ((pred_mask[sel] - target_mask[sel]) ** 2).mean() if sel.any() else torch.tensor(float("nan"))
        return {"jdm/video": float(video), "jdm/mask": float(masks), "jdm/fine_share": float(fine.float().mean())}

    def fine_weights(self, batch: TrainingBatch) -> Tensor:
        """``w'`` per example ``[B]``: ``w·exp(−α·max(Ī, 0))`` with the clips' Ī, or ``w``."""
        b = batch.latents.shape[0]
        w = torch.full((b,), float(self.config.w))
        if not self.config.use_cmi:
            return w
        cmi = [None if m is None else m.get("cmi") for m in (batch.meta or [None] * b)]
        if any(v is None for v in cmi):
            raise ValueError("JDM with use_cmi needs each clip's CMI (meta['cmi']): give the recipe data.world.cmi "
                             "(a table from `anyframe clip cmi`), or set use_cmi: false")
        # (mutual information is ≥ 0: a negative InfoNCE estimate is noise around 0, and would give w' > w)
        return w * torch.exp(-self.config.alpha * torch.tensor(cmi, dtype=torch.float32).clamp_min(0.0))

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        if batch.object_masks is None or batch.regional_captions is None:
            raise ValueError("JDM trains on clips with object masks and regional captions (world clips)")
        if batch.encoders is None:
            raise ValueError("JDM needs the pipeline's encoders in the training batch (to encode masks and captions)")
        x0 = batch.latents
        b = x0.shape[0]
        fine = torch.rand(b, generator=generator) < self.fine_weights(batch)
        pixels, captions = [], []
        for i in range(b):
            masks = batch.object_masks[i]
            if masks is None:
                raise ValueError("JDM: a clip without object masks (an empty scene has a [0, T, H, W] mask tensor)")
            regional = batch.regional_captions[i] or []
            k = int(masks.shape[0])
            subset = draw_subset(k, generator) if fine[i] else list(range(k))
            pixels.append(mask_pixels(masks, subset))
            if fine[i]:
                meta = (batch.meta or [{}] * b)[i] or {}
                scene = Scene.from_json(meta["scene"]) if "scene" in meta else None
                captions.append(joined_captions(regional, subset, scene) if k else (batch.captions or [""] * b)[i])
        m0 = batch.encoders.encode_video(torch.stack(pixels)).float().to(x0.device)  # [B, Cm, T, h, w]
        if m0.shape[1] != self.config.mask_channels or m0.shape[2:] != x0.shape[2:]:
            raise ValueError(f"JDM: mask latents {tuple(m0.shape)} do not fit the video latents {tuple(x0.shape)}")
        noise = torch.randn(m0.shape, generator=generator).to(m0)
        noisy = add_noise(m0, noise, inputs.sigma.to(m0))

        model_inputs = inputs.model_inputs
        keep_text = ~inputs.info["drop_text"] & fine
        if keep_text.any():
            fine_text = batch.encoders.encode_text(captions).to("cpu")
            full = torch.zeros(b, dtype=torch.long)
            full[fine] = torch.arange(len(captions))
            fine_text = TextCondition(fine_text.embeds[full], fine_text.mask[full])
            current = TextCondition(model_inputs.encoder_hidden_states, model_inputs.encoder_attention_mask)
            length = max(current.embeds.shape[1], fine_text.embeds.shape[1])
            current, fine_text = _pad_text(current, length), _pad_text(fine_text, length)
            text = fine_text.to(current.embeds.device, current.embeds.dtype).select(keep_text, current)
            model_inputs = replace(model_inputs, encoder_hidden_states=text.embeds, encoder_attention_mask=text.mask)
        model_inputs = model_inputs.with_extra_channels(noisy)

        video_target = inputs.target
        video_mask = torch.ones_like(video_target) if inputs.loss_mask is None else \
            inputs.loss_mask.to(video_target).expand_as(video_target)
        mask_weight = fine.to(m0.dtype)[:, None, None, None, None].expand_as(m0)
        if not self.config.fine_video_loss:  # a fine term: the mask channels' error alone
            video_mask = video_mask * (~fine).to(video_mask.dtype)[:, None, None, None, None]
        return replace(
            inputs,
            model_inputs=model_inputs,
            target=torch.cat([video_target, velocity_target(m0, noise)], dim=1),
            loss_mask=torch.cat([video_mask, mask_weight], dim=1),
            info={**inputs.info, "jdm_fine": fine},
        )
