"""Pixel fidelity to given keyframes: PSNR, SSIM, and their means over the keyframes (``keyframe_psnr``,
``keyframe_ssim``)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from anyframe.errors import AnyframeInputError

PSNR_CAP = 100.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """``10 log10(255² / MSE)`` over all pixels and channels, capped at :data:`PSNR_CAP` (identical → cap)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) of two uint8 images [H, W, 3]: per channel with a Gaussian window (σ = 1.5,
    11 × 11, reflected borders), ``C1 = (0.01·255)², C2 = (0.03·255)²``; the mean of the SSIM map, averaged
    over the channels."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def keyframe_fidelity(frames: np.ndarray, keyframes: dict[int, np.ndarray]) -> tuple[float, float]:
    """(mean PSNR, mean SSIM) over the keyframes."""
    ps, ss = [], []
    for t, img in sorted(keyframes.items()):
        t = int(t)
        img = np.asarray(img)
        if not 0 <= t < frames.shape[0]:
            raise AnyframeInputError(f"keyframe index {t} outside the clip's {frames.shape[0]} frames")
        if img.shape != frames.shape[1:]:
            raise AnyframeInputError(f"keyframe {t} is {img.shape}, the clip's frames are {frames.shape[1:]}")
        ps.append(psnr(frames[t], img))
        ss.append(ssim(frames[t], img))
    return float(np.mean(ps)), float(np.mean(ss))
