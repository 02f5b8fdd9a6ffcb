"""The evaluation harness: generate every case of a suite with a model, and score it with the oracle.

A *model* here is anything with ``generate(case, conditioning) -> Generation``. Three kinds:

- :class:`PipelineModel` — an anyframe pipeline folder (``anyframe eval --model DIR``);
- :class:`TruthModel` — returns the true renders (``--model truth``): every score should be ~1, so
  it calibrates the oracle on the suite itself;
- :class:`RandomModel` — returns random clips (``--model random``): the floor.
- :class:`AutoencoderModel` — the true renders through a latent model's autoencoder, encoded and decoded
  (``--model autoencoder:DIR``): the ceiling of any generator in that latent space.

How a pipeline meets each task (documented choices):

- ``t2v``/``masks``: the prompt; ``ti2v``/``keyframes``/``interpolation``/``prediction``: the prompt and the
  true renders at the case's keyframe indices;
- ``unpaired``: the text and the image; a model without a narrator places the image at frame 0;
- ``edit``: a model that cannot edit is *unsupported*: the case is recorded, not scored; likewise a case
  whose keyframes the model's method cannot take (FlashI2V: one image, at frame 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from anyframe.conditioning.registry import validate_request_options
from anyframe.errors import AnyframeInputError
from anyframe.flow.guidance import MODEL_DEFAULT
from anyframe.io import to_uint8
from anyframe.models.autoencoder import decode_video, encode_video, load_autoencoder, temporal_compression
from anyframe.pipelines import GenerationRequest, Keyframe, load_pipeline, resolve_dtype, resolve_frame_index
from anyframe.world.render import render
from anyframe.world.scene import Scene
from anyframe.world.suite import Case


@dataclass
class Conditioning:
    """The truth a case needs, rendered once: the target clip (for keyframes and truth models) and,
    for edits, the source clip."""

    scene: Scene
    clip: np.ndarray  # uint8 [T, H, W, 3]
    masks: np.ndarray  # float [N, T, H, W]
    source_clip: np.ndarray | None = None
    source_scene: Scene | None = None

    @staticmethod
    def of(case: Case) -> Conditioning:
        scene = case.scene_program()
        rendering = render(scene)
        source_scene = source_clip = None
        if case.edit:
            source_scene = Scene.from_dict(case.edit["source"])
            source_clip = render(source_scene).frames
        return Conditioning(scene, rendering.frames, rendering.masks, source_clip, source_scene)

    def keyframes(self, case: Case) -> dict[int, np.ndarray]:
        """``{frame index: true image}`` for the case's keyframes (the unpaired image at its true frame)."""
        if case.task == "unpaired":
            j = int(case.unpaired["image_frame"])
            return {j: self.clip[j]}
        return {int(i): self.clip[int(i)] for i in case.conditions.get("keyframes", [])}


@dataclass
class Generation:
    frames: np.ndarray | None  # uint8 [T, H, W, 3]; None when the model does not support the task
    masks: np.ndarray | None = None  # float [K, T, H, W], for models that output masks
    seconds: float = 0.0
    unsupported: str | None = None  # why the task was not attempted
    info: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)  # what the model's method returns beside the video (one clip's:
    # a JDM model's "masks" [T, H, W] bool, the union of the prompt's objects, and "mask_frames")


class Model(Protocol):
    name: str

    def generate(self, case: Case, cond: Conditioning) -> Generation: ...


class TruthModel:
    """Returns the true render (and true masks): the oracle's ceiling on this suite."""

    name = "truth"

    def generate(self, case: Case, cond: Conditioning) -> Generation:
        return Generation(cond.clip.copy(), cond.masks.copy())


class RandomModel:
    """Uniform random clips of the right size, seeded by the case: the floor."""

    name = "random"

    def generate(self, case: Case, cond: Conditioning) -> Generation:
        rng = np.random.default_rng([case.seed, 99])
        return Generation(rng.integers(0, 256, size=cond.clip.shape, dtype=np.uint8))


class AutoencoderModel:
    """The true clip encoded (posterior mode) and decoded by the autoencoder of a pipeline folder (its
    ``vae/``) or of an autoencoder folder: what a generator that denoised to the exact true latents would
    score, so the part of a model's gap that no amount of backbone training closes."""

    def __init__(self, path: str, device: str = "cpu"):
        folder = Path(path) / "vae" if (Path(path) / "model_index.json").is_file() else Path(path)
        if not (folder / "config.json").is_file():
            raise AnyframeInputError(f"--model autoencoder:{path}: neither a pipeline folder nor an autoencoder folder")
        self.name = f"autoencoder:{path}"
        self.vae = load_autoencoder(folder).to(device).eval()
        self.device = device

    def generate(self, case: Case, cond: Conditioning) -> Generation:
        stride = temporal_compression(self.vae)
        if (len(cond.clip) - 1) % stride:
            raise AnyframeInputError(f"{self.name}: a causal video autoencoder takes 1 + {stride}k frames, "
                                     f"the case has {len(cond.clip)}")
        start = time.perf_counter()
        with torch.no_grad():
            video = torch.from_numpy(cond.clip).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
            out = decode_video(self.vae, encode_video(self.vae, video.to(self.device))).float().clamp(-1, 1)
        frames = to_uint8((out[0].permute(1, 2, 3, 0).cpu().numpy() + 1) / 2)
        return Generation(frames, seconds=time.perf_counter() - start)


class PipelineModel:
    """An anyframe pipeline folder. ``steps``/``guidance``/``guidance_mode``/``renorm``/``seed`` are the sampling
    settings of the run; a setting not given is the model's own (``sampling_defaults``: what ``anyframe generate``
    uses), so a model is scored the way it generates."""

    def __init__(self, path: str, steps: int | None = None, guidance: float | None = None, guidance_mode: str | None = None,
                 seed: int = 0, device: str = "cpu", renorm: str | None = MODEL_DEFAULT, name: str | None = None,
                 detail: float | None = None, dtype: str = "float32", narrator=None):

        self.dtype = resolve_dtype(dtype, device)
        self.pipe = load_pipeline(path, self.dtype).to(device)
        self.name = name or (str(path) if self.dtype == "float32" else f"{path} ({self.dtype})")
        self.pipe.set_progress_bar_config(disable=True)
        settings = self.pipe.sampling_settings(steps, guidance, guidance_mode, renorm)
        self.steps, self.guidance = settings["num_inference_steps"], settings["guidance_scale"]
        self.guidance_mode, self.renorm = settings["guidance_mode"], settings["renorm"]
        self.seed = seed
        self.narrator = narrator  # places the unpaired task's image (else it goes to frame 0)
        self.options = {} if detail is None else {"detail": detail}
        try:  # a method option this model's method does not take is an error now, not at the first case
            validate_request_options(self.pipe.conditioning, self.options)
        except ValueError as exc:
            raise AnyframeInputError(f"{self.name}: {exc}") from None

    def generate(self, case: Case, cond: Conditioning) -> Generation:
        if case.task == "edit":
            return Generation(None, unsupported="this model has no editing method")
        t, h, w, _ = cond.clip.shape
        if case.task == "unpaired":
            # the image without its frame: a narrator places it (and narrates, for a ReasonDiff model); none: frame 0
            keyframes = [Keyframe(cond.clip[int(case.unpaired["image_frame"])], None if self.narrator else 0)]
        else:
            keyframes = [Keyframe(cond.clip[i], i) for i in case.conditions.get("keyframes", [])]
        request = GenerationRequest(
            prompt=case.conditions["prompt"], keyframes=keyframes, num_frames=t, height=h, width=w, steps=self.steps,
            guidance_scale=self.guidance, guidance_mode=self.guidance_mode, renorm=self.renorm,
            seed=self.seed + case.seed, options=dict(self.options),
        )
        # a method that cannot take these keyframes (FlashI2V: one image, at frame 0) skips the case
        start = time.perf_counter()
        request, _ = self.pipe.place_keyframes(request, self.narrator)
        reason = self.pipe.conditioning.check_request(replace(request, keyframes=[
            Keyframe(k.image, resolve_frame_index(k.frame_index, t)) for k in request.keyframes]), self.pipe.limits)
        if reason:
            return Generation(None, unsupported=reason)
        out = self.pipe.generate(request)
        extras = {k: v[0] for k, v in out.extras.items() if isinstance(v, np.ndarray) and len(v) == 1}
        return Generation(to_uint8(out.frames[0]), seconds=time.perf_counter() - start, extras=extras)


def load_model(spec: str, **kwargs) -> Model:
    """``truth``, ``random``, ``autoencoder:DIR``, or a pipeline folder."""
    if spec == "truth":
        return TruthModel()
    if spec == "random":
        return RandomModel()
    if spec.startswith("autoencoder:"):
        return AutoencoderModel(spec.split(":", 1)[1], device=kwargs.get("device", "cpu"))
    return PipelineModel(spec, **kwargs)
