"""A LoRA extracted from a full fine-tune: the difference of each adapted linear layer's weight from the base's,
cut to its best rank-``r`` approximation (truncated SVD), and every other weight that differs, kept whole.

    lora = extract_lora(base_transformer, tuned_transformer, rank=64)
    lora.layers          # {"<module>.lora_A.weight": [r, in], "<module>.lora_B.weight": [out, r]} (peft's names)
    lora.whole           # {"<parameter>": tensor}: norms, embeddings, biases, reshaped layers ... that changed
    lora.kept            # the share of the adapted layers' difference (squared Frobenius norm) the rank keeps

With ``lora_alpha = r`` (diffusers' default when loading) the adapter adds ``B @ A`` to each weight, so a rank at
least each layer's ``min(out, in)`` reproduces the fine-tune up to rounding. This is how an extra model ships under
the size cap of ``checkpoints/`` (``base_folder``): a full fine-tune of an S model is 26 MB in bf16, its LoRA a
fraction of that. (peft and diffusers load and apply LoRAs but do not extract one from two checkpoints; the SVD is
the standard construction, written here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ExtractedLora:
    layers: dict[str, torch.Tensor]
    whole: dict[str, torch.Tensor]
    kept: float  # Σ‖B·A‖² / Σ‖ΔW‖² over the adapted layers (1.0: exact; also 1.0 when nothing differs)
    rank: int


def targets_of(model: nn.Module, target_modules: Sequence[str]) -> list[str]:
    """The linear layers of ``model`` that ``target_modules`` names, by peft's rule for a list of names: the module's
    name is one of them or ends with ``.<one of them>``."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)
            and any(name == t or name.endswith(f".{t}") for t in target_modules)]


@torch.no_grad()
def extract_lora(base: nn.Module, tuned: nn.Module, rank: int, target_modules: Sequence[str]) -> ExtractedLora:
    """The LoRA of ``tuned`` over ``base`` (the same architecture: ``base`` already adapted by the fine-tune's
    method, if it adds layers) on the linear layers ``target_modules`` names (:func:`targets_of`), at ``rank``."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a whole number >= 1, got {rank!r}")
    before, after = base.state_dict(), tuned.state_dict()
    if set(before) != set(after):
        extra = sorted(set(before) ^ set(after))
        raise ValueError(f"the two models differ in their layers ({', '.join(extra[:3])}): not one architecture")
    layers, covered = {}, set()
    total = kept = 0.0
    for name in targets_of(tuned, target_modules):
        key = f"{name}.weight"
        if before[key].shape != after[key].shape:
            continue  # (reshaped: kept whole below)
        delta = after[key].float() - before[key].float()
        covered.add(key)
        energy = float(delta.pow(2).sum())
        if energy == 0.0:
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, s.numel())
        root = s[:r].sqrt()
        layers[f"{name}.lora_A.weight"] = (root[:, None] * vh[:r]).contiguous()
        layers[f"{name}.lora_B.weight"] = (u[:, :r] * root[None, :]).contiguous()
        total += energy
        kept += float(s[:r].pow(2).sum())
    whole = {k: v.clone() for k, v in after.items()
             if k not in covered and (before[k].shape != v.shape or not torch.equal(before[k], v))}
    return ExtractedLora(layers, whole, kept / total if total > 0 else 1.0, rank)
