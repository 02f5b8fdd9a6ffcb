"""``GenerationRequest``: the one description of a generation, and its validation in one place.

Every entry point — ``pipe(prompt=..., keyframes=...)``, ``pipe.generate(request)``, the CLI, the evaluation
harness — builds a request and the pipeline validates it with :func:`validate_request` against the model's
limits (:class:`ModelLimits`) and its conditioning method, so every one of them gives the same clear errors
(:class:`~anyframe.errors.AnyframeInputError`, one line). Validation returns a *resolved* copy: sizes and
sampling settings filled from the model's defaults, keyframe and frame-prompt indices made non-negative, the
seed drawn if none was given — what was run, reportable as it is.

Fields past the sampling settings are for methods that read them (``ConditioningMethod.request_fields``):
a field given to a model whose methods do not read it is an error, not silently ignored.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from anyframe.conditioning.base import ConditioningMethod
from anyframe.conditioning.registry import validate_request_options
from anyframe.errors import AnyframeInputError
from anyframe.flow.guidance import GUIDANCE_MODES, MODEL_DEFAULT, RENORM_CHOICES
from anyframe.flow.sampling import SAMPLERS

MAX_SEED = 2**63 - 1
# More sampling steps than the flow's 1,000 training timesteps resolve nothing more, and a schedule of 10⁹ steps
# would not fit in memory: the cap is named in the error.
MAX_STEPS = 1000
ImageLike = str | os.PathLike | Image.Image | np.ndarray


@dataclass
class Keyframe:
    """An image placed at a frame. ``frame_index`` may be negative (counted from the end), or ``None``: the image
    belongs somewhere in the clip and the model's method places it (a narrator: methods that read
    ``unplaced_keyframes``)."""

    image: ImageLike
    frame_index: int | None = 0


@dataclass
class GenerationRequest:
    """One generation (one video per prompt). ``None`` means "the model's own" for sizes and sampling settings.

    Today's methods read ``prompt``, ``negative_prompt``, ``keyframes`` and the sizes and settings; the fields
    after ``frame_stride`` are there for methods that read them (per-frame narratives, editing, style, joint
    masks), each method declaring which (``request_fields``); ``options`` are the method's own
    (its ``Options`` dataclass, e.g. FlashI2V's ``detail``)."""

    prompt: str | list[str] = ""
    negative_prompt: str | list[str] | None = None
    keyframes: list[Keyframe] = field(default_factory=list)
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    guidance_mode: str | None = None  # jit | cfg | text-image | none
    image_guidance_scale: float | None = None  # text-image mode
    renorm: str | None = MODEL_DEFAULT  # full | clamp | auto | None; MODEL_DEFAULT: the model's own
    sampler: str | None = None  # euler | unipc; None: the pipeline's scheduler
    frame_stride: float = 1.0  # the stride micro condition
    max_sequence_length: int | None = None
    frame_prompts: dict[int, str] = field(default_factory=dict)  # frame (or chunk start) → its own prompt
    source_video: Any = None  # a clip to edit or extend: a path, or frames [T, H, W, 3]
    style: str | ImageLike | None = None  # a style name or a style image
    reference_images: list[ImageLike] = field(default_factory=list)  # subjects to keep
    masks: bool = False  # also return the masks of the prompt's objects (joint-mask methods)
    options: dict[str, Any] = field(default_factory=dict)  # the method's own (its Options)
    beyond_training: bool = False  # sizes, frame counts and strides outside the model's trained window: a warning

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def negative_prompts(self) -> list[str]:
        n = len(self.prompts)
        if self.negative_prompt is None:
            return [""] * n
        if isinstance(self.negative_prompt, str):
            return [self.negative_prompt] * n
        return list(self.negative_prompt)


OPTIONAL_FIELDS = {  # field → "given" test: a method must read a field that is given
    "keyframes": lambda r: bool(r.keyframes),
    "frame_prompts": lambda r: bool(r.frame_prompts),
    "source_video": lambda r: r.source_video is not None,
    "style": lambda r: r.style is not None,
    "reference_images": lambda r: bool(r.reference_images),
    "masks": lambda r: bool(r.masks),
}


@dataclass
class ModelLimits:
    """What a loaded model can generate (the pipeline's :meth:`limits`)."""

    default_video_size: tuple[int, int, int]  # frames, height, width
    patch_size: tuple[int, int, int]
    spatial_compression: int
    temporal_compression: int
    sampling_defaults: dict
    method: ConditioningMethod
    hidden_size: int = 0  # the backbone's token width (for the memory estimate)
    memory_bytes: int | None = None  # what the device that samples holds; None: not checked
    trained_window: dict | None = None  # what the model was trained on (STIVTransformer's trained_window)

    def estimate_bytes(self, num_frames: int, height: int, width: int, batch: int = 1) -> int:
        """A lower bound on the memory one sampling call needs: the decoded video (float32, a few working copies
        in the decoder and the writers) and the backbone's activations for every token (three guidance branches,
        a block's working set of ~16 token-width vectors). Sizes far past it cannot run; it is meant to refuse
        those with a clear line before allocating, not to predict an out-of-memory at the edge."""
        pt, ph, pw = self.patch_size
        f = self.spatial_compression
        tokens = max(1, self.num_latent_frames(num_frames) // pt) * max(1, height // (f * ph)) * max(1, width // (f * pw))
        pixels = num_frames * height * width * 3
        return batch * (pixels * 4 * 4 + tokens * max(self.hidden_size, 1) * 4 * 16 * 3)

    def check_memory(self, num_frames: int, height: int, width: int, batch: int = 1) -> None:
        if self.memory_bytes is None:
            return
        need = self.estimate_bytes(num_frames, height, width, batch)
        if need > self.memory_bytes:
            per_frame = max(1, self.estimate_bytes(1, height, width, batch))
            most = max(0, self.memory_bytes // per_frame)
            raise AnyframeInputError(
                f"num_frames × height × width = {num_frames} × {height} × {width} need at least {_gb(need)} of memory to sample; this device "
                f"has {_gb(self.memory_bytes)} (at most about {most} frames at this size)")

    def window_problems(self, num_frames: int, height: int, width: int, frame_stride: float) -> dict[str, str]:
        """What of a request lies outside the model's trained window, by what (``frames``, ``size``, ``stride``)
        → a phrase naming the window (empty: all inside, or no window recorded)."""
        w = self.trained_window
        if not w:
            return {}
        problems = {}
        frames = sorted(int(f) for f in w.get("frames") or ())
        if frames and num_frames not in frames:
            problems["frames"] = f"{num_frames} frames (trained on {_listed(frames)})"
        sizes = [tuple(int(v) for v in s) for s in w.get("sizes") or ()]
        if sizes and (height, width) not in sizes:
            problems["size"] = f"{height}×{width} px (trained on {_listed([f'{h}×{w_}' for h, w_ in sizes])})"
        strides = [float(v) for v in w.get("frame_strides") or ()]
        if strides and not min(strides) - 1e-6 <= frame_stride <= max(strides) + 1e-6:
            trained = f"{min(strides):g}" if min(strides) == max(strides) else f"{min(strides):g}–{max(strides):g}"
            problems["stride"] = f"frame stride {frame_stride:g} (trained on {trained})"
        return problems

    def check_window(self, num_frames: int, height: int, width: int, frame_stride: float = 1.0,
                     beyond_training: bool = False) -> None:
        """Refuse (or with ``beyond_training`` warn about) a request outside the trained window, naming it."""
        problems = self.window_problems(num_frames, height, width, frame_stride)
        if not problems:
            return
        text = f"{'; '.join(problems.values())}: outside what this model was trained on, its output is not meaningful"
        if "frames" in problems:
            text += " (long video by chunks will lift the frame limit: planned)"
        if not beyond_training:
            raise AnyframeInputError(f"{text}; to try it anyway: --beyond-training (GenerationRequest.beyond_training)")
        warnings.warn(text, stacklevel=3)

    def latent_index(self, pixel_index: int) -> int:
        """The latent frame holding pixel frame ``pixel_index`` (≥ 0): a causal VAE encodes frame 0 alone and
        then chunks of r frames."""
        r = self.temporal_compression
        return pixel_index if r == 1 else (0 if pixel_index == 0 else (pixel_index - 1) // r + 1)

    def num_latent_frames(self, num_frames: int) -> int:
        r = self.temporal_compression
        return num_frames if r == 1 else (num_frames - 1) // r + 1

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        pt, ph, pw = self.patch_size
        f, r = self.spatial_compression, self.temporal_compression
        if r > 1 and (num_frames < 1 or (num_frames - 1) % r):
            raise AnyframeInputError(f"num_frames must be 1 + {r}·k for this model's causal VAE (e.g. 81), got {num_frames}")
        latent_frames = self.num_latent_frames(num_frames) if num_frames >= 1 else 0
        if num_frames < 1 or latent_frames % pt:
            raise AnyframeInputError(f"num_frames must give a positive multiple of {pt} latent frames, got {num_frames}")
        if height <= 0 or width <= 0 or height % (f * ph) or width % (f * pw):
            raise AnyframeInputError(f"height and width must be positive multiples of {f * ph}×{f * pw}, got {height}×{width}")


def _listed(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GB" if n < 2**40 else f"{n / 2**40:,.1f} TB"


def resolve_frame_index(index: int, num_frames: int) -> int:
    """A frame index, negative counting from the end, checked against ``num_frames``."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise AnyframeInputError(f"a frame index must be an integer, got {index!r}")
    resolved = int(index) + num_frames if index < 0 else int(index)
    if not 0 <= resolved < num_frames:
        raise AnyframeInputError(
            f"frame index {index} is out of range for {num_frames} frames (valid: {-num_frames}..{num_frames - 1})"
        )
    return resolved


def _finite(name: str, value, low: float | None = None, strictly: bool = False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
        raise AnyframeInputError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if strictly else value < low):
        raise AnyframeInputError(f"{name} must be {'>' if strictly else '≥'} {low}, got {value}")
    return value


def _int(name: str, value, low: int, high: int | None = None):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise AnyframeInputError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        raise AnyframeInputError(f"{name} must be in {low}..{high}, got {value}" if high is not None
                                 else f"{name} must be ≥ {low}, got {value}")
    return int(value)


def check_settings(request: GenerationRequest) -> None:
    """The checks that need no model: the sampling settings, the seed, the stride (the CLI runs these before it
    loads a model, and words them with its flags). Each error starts with the field's name."""
    _int("steps", request.steps, 1, MAX_STEPS)
    _finite("guidance_scale", request.guidance_scale)
    if request.guidance_mode is not None and request.guidance_mode not in GUIDANCE_MODES:
        raise AnyframeInputError(f"guidance_mode must be one of {', '.join(GUIDANCE_MODES)}, got {request.guidance_mode!r}")
    _finite("image_guidance_scale", request.image_guidance_scale)
    if request.renorm not in (MODEL_DEFAULT, None, *RENORM_CHOICES):
        raise AnyframeInputError(f"renorm must be one of {', '.join(RENORM_CHOICES)} or None, got {request.renorm!r}")
    if request.sampler is not None and request.sampler not in SAMPLERS:
        raise AnyframeInputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {request.sampler!r}")
    _finite("frame_stride", request.frame_stride, 0.0, strictly=True)
    _int("max_sequence_length", request.max_sequence_length, 1)
    _int("seed", request.seed, 0, MAX_SEED)
    for name in ("num_frames", "height", "width"):
        _int(name, getattr(request, name), 1)


def validate_request(request: GenerationRequest, limits: ModelLimits,
                     random_seed: Callable[[], int] | None = None) -> GenerationRequest:
    """The request checked against the model (see the module doc) and resolved: sizes and settings filled,
    indices non-negative, a seed drawn by ``random_seed`` if none was given (default: torch's global RNG).
    Raises :class:`AnyframeInputError` with one clear line."""
    prompts = request.prompts
    if not prompts:
        raise AnyframeInputError("prompt list is empty")
    if any(not isinstance(p, str) for p in prompts):
        raise AnyframeInputError("prompts must be strings")
    if not request.keyframes and not any(p.strip() for p in prompts):
        raise AnyframeInputError("give a prompt, a keyframe image, or both")
    if len(request.negative_prompts) != len(prompts):
        raise AnyframeInputError(f"{len(request.negative_prompts)} negative prompts for {len(prompts)} prompts")
    check_settings(request)

    frames, height, width = (given if given is not None else default for given, default in
                             zip((request.num_frames, request.height, request.width), limits.default_video_size))
    frames, height, width = _int("num_frames", frames, 1), _int("height", height, 1), _int("width", width, 1)
    limits.check_size(frames, height, width)
    limits.check_memory(frames, height, width, len(prompts))
    if not isinstance(request.beyond_training, bool):
        raise AnyframeInputError("beyond_training must be true or false")
    limits.check_window(frames, height, width, request.frame_stride, request.beyond_training)
    if any(k.frame_index is None for k in request.keyframes) and "unplaced_keyframes" not in limits.method.request_fields:
        names = "+".join(m.name for m in limits.method.methods)
        raise AnyframeInputError(f"a keyframe without a frame index: this model's method ({names}) does not place "
                                 "images itself; give each image its frame")
    keyframes = [Keyframe(k.image, None if k.frame_index is None else resolve_frame_index(k.frame_index, frames))
                 for k in request.keyframes]
    indices = [k.frame_index for k in keyframes if k.frame_index is not None]
    if len(set(indices)) != len(indices):
        raise AnyframeInputError(f"two keyframes at the same frame: {indices}")
    frame_prompts = {}
    for index, text in request.frame_prompts.items():
        if not isinstance(text, str):
            raise AnyframeInputError(f"the prompt of frame {index} must be a string")
        frame_prompts[resolve_frame_index(index, frames)] = text

    defaults = limits.sampling_defaults
    steps = request.steps if request.steps is not None else _int("steps", defaults["num_inference_steps"], 1)
    guidance_scale = request.guidance_scale if request.guidance_scale is not None else defaults["guidance_scale"]
    guidance_mode = request.guidance_mode if request.guidance_mode is not None else defaults["guidance_mode"]
    renorm = defaults["renorm"] if request.renorm == MODEL_DEFAULT else request.renorm
    seed = request.seed
    if seed is None:
        seed = random_seed() if random_seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item())
    image_guidance_scale = request.image_guidance_scale

    method = limits.method
    reads = method.request_fields
    for name, given in OPTIONAL_FIELDS.items():
        if given(request) and name not in reads:
            names = "+".join(m.name for m in method.methods)
            raise AnyframeInputError(f"{name} is not used by this model's method ({names})")
    try:
        validate_request_options(method, dict(request.options))
    except ValueError as exc:
        raise AnyframeInputError(str(exc)) from None

    resolved = replace(request, prompt=prompts, negative_prompt=request.negative_prompts, keyframes=keyframes,
                       num_frames=frames, height=height, width=width, seed=seed, steps=steps,
                       guidance_scale=guidance_scale, guidance_mode=guidance_mode,
                       image_guidance_scale=image_guidance_scale, renorm=renorm, frame_prompts=frame_prompts, options=dict(request.options))
    reason = method.check_request(resolved, limits)
    if reason:
        raise AnyframeInputError(reason)
    return resolved


def request_from_kwargs(prompt: str | Sequence[str] = "", **kwargs) -> GenerationRequest:
    """A request from diffusers-style keyword arguments (``num_inference_steps`` → ``steps``; a method option
    such as ``detail=0.2`` → ``options``)."""
    aliases = {"num_inference_steps": "steps"}
    fields_ = set(GenerationRequest.__dataclass_fields__)
    values, options = {}, dict(kwargs.pop("options", None) or {})
    for key, value in kwargs.items():
        key = aliases.get(key, key)
        if key in fields_:
            values[key] = value
        elif value is not None:
            options[key] = value
    return GenerationRequest(prompt=prompt if isinstance(prompt, str) else list(prompt),
                             keyframes=list(values.pop("keyframes", None) or []), options=options, **values)
