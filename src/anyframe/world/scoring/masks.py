"""Predicted object masks against the true ones: ``mask_iou``."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.errors import AnyframeInputError
from anyframe.world.scoring.truth import Truth


def mask_iou(truth: Truth, masks: np.ndarray) -> float | None:
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[1:] != truth.rendering.masks.shape[1:]:
        raise AnyframeInputError(
            f"masks must be [K, T, H, W] with T, H, W = {truth.rendering.masks.shape[1:]}, got {masks.shape}"
        )
    if truth.n == 0:
        return None
    pred = masks >= 0.5
    gt = truth.rendering.masks >= 0.5
    inter = np.einsum("kthw,nthw->nk", pred.astype(np.float32), gt.astype(np.float32))
    union = pred.sum(axis=(1, 2, 3))[None, :] + gt.sum(axis=(1, 2, 3))[:, None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)  # [N, K]
    vals = np.zeros(truth.n)
    if masks.shape[0]:
        rows, cols = linear_sum_assignment(-iou)
        vals[rows] = iou[rows, cols]
    keep = gt.sum(axis=(1, 2, 3)) > 0
    return float(vals[keep].mean()) if keep.any() else None
