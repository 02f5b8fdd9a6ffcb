"""The entry point: :func:`score_clip` computes the requested :data:`KEYS` of a clip against its scene."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.world.oracle import classify_style
from anyframe.world.scene import Scene
from anyframe.world.scoring.chains import Chain, object_chains
from anyframe.world.scoring.dynamics import (
    dynamic_speeds,
    flow_magnitude,
    motion_smoothness,
    trajectory_monotone,
)
from anyframe.world.scoring.edits import edit_accuracy
from anyframe.world.scoring.events import event
from anyframe.world.scoring.fidelity import keyframe_fidelity
from anyframe.world.scoring.flicker import temporal_flicker
from anyframe.world.scoring.identity import identity_persistence
from anyframe.world.scoring.masks import mask_iou
from anyframe.world.scoring.matching import match_objects
from anyframe.world.scoring.motion import motion_direction
from anyframe.world.scoring.objects import color_binding, count, presence
from anyframe.world.scoring.reading import read_clip
from anyframe.world.scoring.relations import spatial_relation
from anyframe.world.scoring.truth import truth_of

KEYS: tuple[str, ...] = (
    "presence", "color_binding", "count", "motion_direction", "spatial_relation", "event",
    "identity_persistence", "keyframe_psnr", "keyframe_ssim", "dynamic_degree", "motion_smoothness",
    "temporal_flicker", "mask_iou", "style", "edit_accuracy", "trajectory_monotone",
)  # fmt: skip
EXTRA_KEYS: dict[str, str] = {
    "dynamic_degree": ("dynamic_degree_px", "dynamic_degree_flow", "dynamic_degree_flow_ratio"),
    "temporal_flicker": ("temporal_flicker_raw",),
}  # type: ignore[assignment]
DYNAMIC_TOLERANCE = 0.85  # this share of the true displacement already counts as the full dynamics: coarse
# centroids (the pixelated style reads 2–4 px blocks) under-measure small motions by up to ≈ 15 %


_NEEDS_READING = set(KEYS) - {"keyframe_psnr", "keyframe_ssim", "mask_iou"}


def score_clip(
    frames: np.ndarray,
    scene: Scene,
    keys: Sequence[str] | None = None,
    keyframes: dict[int, np.ndarray] | None = None,
    masks: np.ndarray | None = None,
    edit_source: Scene | None = None,
) -> dict[str, float | None]:
    """Score ``frames`` (uint8 [T, H, W, 3], T = scene.frames, H = W = scene.size) against ``scene``.

    ``keys``: which of :data:`KEYS` to compute (default all); ``dynamic_degree`` and ``temporal_flicker``
    also add their extra keys (:data:`EXTRA_KEYS`). A key that does not apply is ``None``:
    ``color_binding`` / ``spatial_relation`` with fewer than two objects, ``event`` without events,
    ``keyframe_*`` without ``keyframes`` ({frame index: uint8 [H, W, 3]}), ``mask_iou`` without ``masks``
    (float / bool [K, T, H, W]), ``edit_accuracy`` without ``edit_source`` (the source scene of an edit whose
    target is ``scene``), ``dynamic_degree`` when nothing moves in the truth, and any key whose objects the
    truth never shows cleanly. Definitions: the package docstring.
    """
    frames = np.asarray(frames)
    want = list(KEYS) if keys is None else list(keys)
    unknown = [key for key in want if key not in KEYS]
    if unknown:
        raise AnyframeInputError(f"unknown score keys {unknown}; expected some of {KEYS}")
    expected = (scene.frames, scene.size, scene.size, 3)
    if frames.shape != expected:
        raise AnyframeInputError(f"clip is {frames.shape}, the scene needs {expected} (T, H, W, 3)")
    if frames.dtype != np.uint8:
        raise AnyframeInputError(f"clip must be uint8, got {frames.dtype}")
    truth = truth_of(scene)
    reading = read_clip(frames) if _NEEDS_READING & set(want) else None
    match = match_objects(truth, reading) if reading is not None else {}
    out: dict[str, float | None] = {}
    cache: dict[str, object] = {}

    def style_pred() -> str:
        if "style" not in cache:
            cache["style"] = classify_style(frames, reading.detections, reading.pixels)
        return cache["style"]  # type: ignore[return-value]

    def chains() -> dict[int, Chain]:
        if "chains" not in cache:
            cache["chains"] = object_chains(truth, reading, match)
        return cache["chains"]  # type: ignore[return-value]

    def count_score() -> float | None:
        if "count" not in cache:
            cache["count"] = count(truth, reading)
        return cache["count"]  # type: ignore[return-value]

    for key in want:
        if key == "presence":
            out[key] = presence(truth, reading, match)
        elif key == "color_binding":
            out[key] = color_binding(truth, reading)
        elif key == "count":
            out[key] = count_score()
        elif key == "motion_direction":
            out[key] = motion_direction(truth, reading, match)
        elif key == "spatial_relation":
            out[key] = spatial_relation(truth, reading, match)
        elif key == "event":
            out[key] = event(truth, reading, match, chains())
        elif key == "identity_persistence":
            out[key] = identity_persistence(truth, reading, match)
        elif key in ("keyframe_psnr", "keyframe_ssim"):
            if not keyframes:
                out[key] = None
            else:
                if "fidelity" not in cache:
                    cache["fidelity"] = keyframe_fidelity(frames, keyframes)
                ps, ss = cache["fidelity"]  # type: ignore[misc]
                out[key] = ps if key == "keyframe_psnr" else ss
        elif key == "dynamic_degree":
            d_clip, d_true = dynamic_speeds(truth, chains())
            moving = d_true is not None and d_true > 0.05 * truth.k
            out[key] = min(1.0, d_clip / (DYNAMIC_TOLERANCE * d_true)) if moving else None
            out["dynamic_degree_px"] = d_clip
            flow = flow_magnitude(frames)
            out["dynamic_degree_flow"] = flow
            flow_true = flow_magnitude(truth.rendering.frames)
            moving_flow = flow_true > 0.05 * truth.k
            out["dynamic_degree_flow_ratio"] = min(1.0, flow / flow_true) if moving_flow else None
        elif key == "motion_smoothness":
            out[key] = motion_smoothness(chains(), truth.k)
        elif key == "trajectory_monotone":
            out[key] = trajectory_monotone(truth, match, chains())
        elif key == "temporal_flicker":
            out[key], out["temporal_flicker_raw"] = temporal_flicker(truth, reading)
        elif key == "mask_iou":
            out[key] = None if masks is None else mask_iou(truth, masks)
        elif key == "style":
            out[key] = float(style_pred() == scene.style) if truth.style_legible else None
        elif key == "edit_accuracy":
            out[key] = (
                None if edit_source is None
                else edit_accuracy(truth, reading, match, edit_source, style_pred(), count_score())
            )  # fmt: skip
    return out
