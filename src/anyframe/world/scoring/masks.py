"""Predicted object masks against the true ones: ``mask_iou``."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.errors import AnyframeInputError
from anyframe.world.scoring.truth import Truth


def mask_iou(truth: Truth, masks: np.ndarray) -> float | None:
    """Per-object masks ``[K, T, H, W]``: each true object's IoU with the predicted mask matched to it (Hungarian,
    unmatched: 0), mean over the objects that are visible. One mask ``[T, H, W]`` (a union, as JDM returns for
    the prompt's objects): its IoU with the union of the true objects' masks. ``None`` for an empty scene."""
    masks = np.asarray(masks)
    size = truth.rendering.masks.shape[1:]
    if masks.ndim not in (3, 4) or masks.shape[-3:] != size:
        raise AnyframeInputError(f"masks must be [K, T, H, W] or a union [T, H, W] with T, H, W = {size}, "
                                 f"got {masks.shape}")
    if truth.n == 0:
        return None
    pred = masks >= 0.5
    gt = truth.rendering.masks >= 0.5
    if pred.ndim == 3:
        union_gt = gt.any(0)
        if not union_gt.any():
            return None
        return float((pred & union_gt).sum() / (pred | union_gt).sum())
    inter = np.einsum("kthw,nthw->nk", pred.astype(np.float32), gt.astype(np.float32))
    union = pred.sum(axis=(1, 2, 3))[None, :] + gt.sum(axis=(1, 2, 3))[:, None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)  # [N, K]
    vals = np.zeros(truth.n)
    if masks.shape[0]:
        rows, cols = linear_sum_assignment(-iou)
        vals[rows] = iou[rows, cols]
    keep = gt.sum(axis=(1, 2, 3)) > 0
    return float(vals[keep].mean()) if keep.any() else None
