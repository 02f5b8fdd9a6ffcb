"""World-clip loss weightings, as a method to combine with another: extra weight on the objects' pixels,
and a term on the frame-to-frame change of the error.

Two probes of the world model's motion gap (``docs/experiments.md#loss-weighting``: neither moved a quality
target at 2,500 steps), kept because they are cheap and a GPU-scale run may want them. They need the clips'
object masks, so they train on world clips only (not from a latent cache)::

    conditioning:
      method: frame_replacement
      addons: [{method: loss_weighting, object_weight: 4, temporal_weight: 0}]

- ``object_weight = w``: each latent element weighs ``1 + w × its cell's object coverage`` (the union of the
  clip's masks, area-pooled to the latent grid: :func:`~anyframe.flow.path.object_loss_weights`), as an element
  weight of the diffusion term — each sample's loss stays a weighted mean;
- ``temporal_weight = λ``: adds ``λ ×`` the mean squared frame-to-frame *change* of the error
  (:func:`~anyframe.flow.path.temporal_difference_loss`) over the pairs of frames that both count, as the
  term ``temporal`` (logged as ``loss_temporal``, weighted by the methods' per-sample weights like the rest).

It changes nothing at inference.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor

from anyframe.conditioning.base import ConditioningMethod, TrainingBatch, TrainingInputs
from anyframe.conditioning.registry import register_method
from anyframe.flow.path import object_loss_weights, temporal_difference_loss


@register_method
class LossWeighting(ConditioningMethod):
    """See the module doc. Args: ``object_weight`` (≥ 0), ``temporal_weight`` (≥ 0)."""

    name = "loss_weighting"
    summary = "world-clip loss weights: object pixels, moving errors"

    @register_to_config
    def __init__(self, object_weight: float = 0.0, temporal_weight: float = 0.0):
        super().__init__()
        for name, weight in (("object_weight", object_weight), ("temporal_weight", temporal_weight)):
            if weight < 0:
                raise ValueError(f"{name} must be ≥ 0, got {weight}")

    @property
    def batch_fields(self) -> frozenset[str]:
        return frozenset({"object_masks"}) if self.config.object_weight > 0 else frozenset()

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        w = self.config.object_weight
        if w <= 0:
            return inputs
        if batch.object_masks is None:
            raise ValueError("loss_weighting's object_weight needs the clips' object masks (world clips)")
        return inputs.with_loss_mask(object_loss_weights(batch.object_masks, batch.latents.shape, w).to(batch.latents))

    def loss_terms(self, outputs, inputs: TrainingInputs, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        lam = self.config.temporal_weight
        if lam <= 0:
            return terms
        prediction = outputs.sample
        mask = None if inputs.loss_mask is None else inputs.loss_mask.to(prediction.device)
        moving = temporal_difference_loss(prediction, inputs.target.to(prediction.device), mask)
        if inputs.loss_weight is not None:
            moving = moving * inputs.loss_weight.to(moving)
        return {**terms, "temporal": lam * moving}
