"""``AnyFramePipeline``: a :class:`~anyframe.pipelines.request.GenerationRequest` → video, in diffusers' conventions.

    pipe = AnyFramePipeline.from_pretrained("checkpoints/anyframe-world-s")
    out = pipe("a red circle moves left", keyframes=[Keyframe("first.png", 0)], seed=0)   # builds a request
    out = pipe.generate(GenerationRequest(prompt="...", keyframes=[...], seed=0))         # the same
    out.frames[0]   # [T, H, W, 3] float in [0, 1]

One loop serves every conditioning method (``pipe.conditioning``, one method or a stack): validate the request
→ draw the noise and encode the prompt → ``method.encode(request, encoders)`` (the method asks the encoders for
what it needs) → sample (guidance over a batched multi-branch velocity) → ``finalize`` → decode. The pipeline
knows no method: it never encodes on a method's behalf, and has no method's fields or flags.
:meth:`AnyFramePipeline.generate_chunks` runs that loop over a sequence of requests (long video is a loop of
requests, each chunk decoded and handed to a callback as it finishes).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, DiffusionPipeline, SchedulerMixin
from diffusers.utils import BaseOutput
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor
from transformers import CLIPVisionModel, PreTrainedTokenizerBase, T5EncoderModel, UMT5EncoderModel
from transformers.image_processing_utils import BaseImageProcessor

from anyframe.conditioning.base import ConditioningMethod, ConditionState, ModelInputs
from anyframe.conditioning.registry import method_by_class_name
from anyframe.errors import AnyframeInputError
from anyframe.flow.guidance import (
    MODEL_DEFAULT,
    Branch,
    Guidance,
    guided_velocity,
    make_guidance,
    resolve_renorm,
)
from anyframe.flow.sampling import convert_scheduler, sample
from anyframe.io import atomic_dir, fit_image, image_to_array, load_image, read_json_object, to_uint8
from anyframe.models.autoencoder import (
    decode_video,
    encode_video,
    latent_channels,
    spatial_compression,
    temporal_compression,
)
from anyframe.models.config_check import check_config_values
from anyframe.models.dit import STIVTransformer
from anyframe.models.text_encoder import TextCondition, encode_prompts
from anyframe.models.wan import WanBackbone, latent_frame_index, num_latent_frames
from anyframe.narrators.base import Narrative
from anyframe.pipelines.base_folder import lora_of, read_base, shared_components
from anyframe.pipelines.request import (
    GenerationRequest,
    Keyframe,
    ModelLimits,
    request_from_kwargs,
    validate_request,
)
from anyframe.pipelines.wan_folder import is_wan_folder, load_wan_pipeline


@dataclass
class AnyFrameOutput(BaseOutput):
    """``frames``: ``[B, T, H, W, 3]`` float in [0, 1] (``np``), a tensor (``pt``), lists of PIL images
    (``pil``) or the latents (``latent``). ``latents`` when asked for; the ``seed`` used; the resolved
    keyframe indices; ``request``: the validated request (what was run); ``extras``: what the method returns
    beside the video (e.g. masks)."""

    frames: np.ndarray | Tensor | list
    latents: Tensor | None = None
    seed: int | None = None
    keyframe_indices: tuple[int, ...] = ()
    request: GenerationRequest | None = None
    extras: dict = field(default_factory=dict)

    @property
    def masks(self) -> np.ndarray | None:
        """The objects' masks of a joint-mask (JDM) model, ``[B, T, H, W]`` bool; None for other models."""
        return self.extras.get("masks")


class PipelineEncoders:
    """The pipeline's encoders bound to one request (:class:`~anyframe.conditioning.base.Encoders`): the prompt,
    noise and micro conditions already encoded, the rest on demand. Unbound (``request=None``) in training."""

    def __init__(self, pipe: AnyFramePipeline, request: GenerationRequest | None = None, noise: Tensor | None = None,
                 text: TextCondition | None = None, null_text: TextCondition | None = None,
                 micro_conditions: Tensor | None = None):
        self.pipe, self.request = pipe, request
        self.noise, self.text, self.null_text, self.micro_conditions = noise, text, null_text, micro_conditions
        self.temporal_compression = pipe.vae_temporal_compression

    def latent_index(self, pixel_index: int) -> int:
        return latent_frame_index(pixel_index, self.temporal_compression)

    def _size(self) -> tuple[int, int]:
        if self.request is None:
            raise ValueError("these encoders are not bound to a request (no size to fit images to)")
        return self.request.height, self.request.width

    def keyframe_latents(self, keyframes: Sequence[Keyframe]) -> Tensor:
        height, width = self._size()
        latents = self.pipe.encode_keyframes(keyframes, height, width, [k.frame_index for k in keyframes])
        return latents.to(self.pipe._execution_device, torch.float32)

    def condition_video(self, keyframes: Sequence[Keyframe], num_frames: int) -> tuple[Tensor, Tensor]:
        height, width = self._size()
        latents, mask = self.pipe.encode_condition_video(keyframes, [k.frame_index for k in keyframes], num_frames,
                                                         height, width)
        return latents.to(self.pipe._execution_device, torch.float32), mask.to(self.pipe._execution_device)

    def image_tokens(self, keyframes: Sequence[Keyframe]) -> Tensor | None:
        return self.pipe.encode_image_embeds(keyframes, [k.frame_index for k in keyframes])

    def image_token_frames(self, frames: Sequence[int]) -> list[int]:
        return self.pipe.image_token_frames(list(frames))

    def image_tokens_of(self, images: Sequence[Image.Image]) -> Tensor | None:
        return self.pipe.image_tokens(images) if self.pipe.takes_image_tokens else None

    def encode_text(self, prompts: Sequence[str]) -> TextCondition:
        length = None if self.request is None else self.request.max_sequence_length
        return self.pipe.encode_text(prompts, length).to(self.pipe._execution_device)

    def encode_video(self, video: Tensor) -> Tensor:
        return encode_video(self.pipe.vae, video.to(self.pipe._execution_device))

    def decode_video(self, latents: Tensor) -> Tensor:
        return self.pipe.decode_latents(latents)



def check_pipeline_folder(path: Path) -> None:
    """A model folder's JSON files, before diffusers reads them (diffusers reports a malformed local config as a
    failed download): ``model_index.json`` and each component's config must be JSON objects, and the config of
    each component built from a diffusers-style class (the backbone, the autoencoder, the method, the scheduler)
    must fit that class's constructor (:func:`~anyframe.models.config_check.check_config_values`)."""
    index = read_json_object(path / "model_index.json")
    based = read_base(path)  # components shared with a base folder are checked when loaded from there
    shared = set(based[1]) if based else set()
    for name, entry in index.items():
        if name.startswith("_") or (not isinstance(entry, list) and not (path / name).is_dir()):
            continue  # a pipeline setting (Wan 2.2's boundary_ratio), not a component
        if name in shared:
            continue
        if not (isinstance(entry, list) and len(entry) == 2):
            raise AnyframeInputError(f"{path / 'model_index.json'}: {name} must be [library, class], got {entry!r}"[:300])
        library, class_name = entry
        if library is None or class_name is None:
            continue
        folder = path / name
        if not folder.is_dir():
            raise AnyframeInputError(f"model folder {path} has no {name}/ (model_index.json lists it)")
        configs = [folder / f for f in ("config.json", "scheduler_config.json", "tokenizer_config.json")
                   if (folder / f).is_file()]
        for config_path in configs:
            config = read_json_object(config_path)
            cls = _config_class(library, class_name)
            if cls is not None and config_path.name != "tokenizer_config.json":
                check_config_values(cls, config, str(config_path))


def _config_class(library: str, class_name: str) -> type | None:
    """The diffusers-style (ConfigMixin) class a folder names, or None (transformers' classes check their own)."""
    if library == "transformers" or not isinstance(library, str) or not isinstance(class_name, str):
        return None
    try:
        cls = getattr(importlib.import_module(library), class_name, None)
    except ImportError:
        return None
    return cls if isinstance(cls, type) and hasattr(cls, "config_name") else None


def device_memory(device: torch.device | str) -> int | None:
    """How many bytes ``device`` holds: a GPU's memory, or the machine's RAM (None where it cannot be read)."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, RuntimeError, AttributeError):
        return None
    return None

class AnyFramePipeline(DiffusionPipeline):
    """Video generation from a prompt and keyframes at any frames.

    Components: ``transformer`` (the backbone: :class:`~anyframe.models.dit.STIVTransformer`, or Wan's
    :class:`~anyframe.models.wan.WanBackbone`), ``vae`` (a per-frame ``AutoencoderKL``, or Wan's causal
    ``AutoencoderKLWan``), ``text_encoder`` (T5 / UMT5) and ``tokenizer``, ``scheduler`` (a flow-matching
    diffusers scheduler), ``conditioning`` (a :class:`~anyframe.conditioning.base.ConditioningMethod`), and
    optionally ``image_encoder`` + ``image_processor`` (CLIP, for Wan I2V / FLF2V).

    ``from_pretrained`` also loads a Wan2.1 diffusers folder (``WanPipeline`` / ``WanImageToVideoPipeline``),
    see :func:`anyframe.pipelines.wan_folder.load_wan_pipeline`.
    """

    # the method before the backbone: it runs first in each step (FlashI2V: φ, the Fourier embedding)
    model_cpu_offload_seq = "text_encoder->image_encoder->conditioning->transformer->vae"
    _optional_components: ClassVar[list[str]] = ["image_encoder", "image_processor"]
    _callback_tensor_inputs: ClassVar[list[str]] = ["latents"]

    def __init__(
        self,
        transformer: STIVTransformer | WanBackbone,
        vae: AutoencoderKL | AutoencoderKLWan,
        text_encoder: T5EncoderModel | UMT5EncoderModel,
        tokenizer: PreTrainedTokenizerBase,
        scheduler: SchedulerMixin,
        conditioning: ConditioningMethod,
        image_encoder: CLIPVisionModel | None = None,
        image_processor: BaseImageProcessor | None = None,
    ):
        super().__init__()
        self.register_modules(
            transformer=transformer,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler,
            conditioning=conditioning,
            image_encoder=image_encoder,
            image_processor=image_processor,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> AnyFramePipeline:
        """Load a local pipeline folder (anyframe never downloads)."""
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            raise AnyframeInputError(f"model folder not found: {path}")
        if not (path / "model_index.json").is_file():
            raise AnyframeInputError(f"not a pipeline folder (no model_index.json): {path}")
        check_pipeline_folder(path)
        if is_wan_folder(path):
            return load_wan_pipeline(path, pipeline_class=cls, **kwargs)
        # an extra model's autoencoder, text encoder and tokenizer come from its base folder (base_model.json)
        shared = shared_components(path, kwargs.get("dtype", kwargs.get("torch_dtype")))
        kwargs = {**{k: v for k, v in shared.items() if k not in kwargs}, **kwargs}
        try:
            pipe = super().from_pretrained(str(path), local_files_only=True, use_safetensors=True, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, NotImplementedError) as exc:
            raise AnyframeInputError(f"cannot load the model folder {path}: {' '.join(str(exc).split())[:300]}") from None
        if not isinstance(pipe, cls):
            raise AnyframeInputError(f"{path} holds a {type(pipe).__name__}, not an {cls.__name__}")
        tuned = lora_of(path)
        if tuned is not None:  # an extra model held as a LoRA on its base's transformer (base_folder)
            lora, config = tuned
            pipe.load_lora(lora, method=pipe.conditioning)
            if config:
                pipe.transformer.register_to_config(**config)
        for name, component in pipe.components.items():
            # diffusers leaves a weight its file does not hold on the meta device (no data) instead of failing
            missing = [n for n, t in (component.state_dict().items() if isinstance(component, torch.nn.Module) else ())
                       if t.is_meta]
            if missing:
                raise AnyframeInputError(f"cannot load the model folder {path}: {name}'s weights do not fit its config "
                                         f"({len(missing)} tensors missing, e.g. {missing[0]})")
        return pipe

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save atomically: into a temporary folder beside the target, then renamed onto it."""
        # a fast tokenizer's backend keeps the padding and truncation of its last call, and save_pretrained
        # writes them into tokenizer.json (a saved tokenizer would then pad every text to 128 by default);
        # every call sets its own, so clearing them changes nothing here and saves the tokenizer as loaded
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            backend.no_padding()
            backend.no_truncation()
        with atomic_dir(save_directory) as tmp:
            super().save_pretrained(tmp, safe_serialization=True, **kwargs)

    # ------------------------------------------------------------------------------------ LoRA

    def load_lora(self, path: str | os.PathLike, method: ConditioningMethod | None = None) -> None:
        """Load a fine-tune saved by the training recipe's LoRA export (``runs/<name>/lora``), or the LoRA of an
        extra model folder (``base_folder``): the adapter (diffusers' LoRA format, ``pytorch_lora_weights.safetensors``,
        which diffusers' ``WanPipeline`` loads too) into the transformer, the backbone layers it holds whole
        (``adapted_layers.safetensors``), and the conditioning method's own trained layers if present
        (``conditioning/``; else ``method``, the method the backbone is adapted for)."""
        path = Path(path)
        if not hasattr(self.transformer, "load_lora_adapter"):
            raise AnyframeInputError(f"--lora: this model's backbone ({type(self.transformer).__name__}) does not take "
                                     "LoRA adapters")
        if not path.is_dir():
            raise AnyframeInputError(f"--lora {path}: not a folder (a LoRA fine-tune is a folder, e.g. runs/<name>/lora)")
        weights = path / "pytorch_lora_weights.safetensors"
        if not weights.is_file():
            raise AnyframeInputError(f"no LoRA weights in {path} (expected {weights.name})")
        try:
            if (path / "conditioning").is_dir():  # the method it was trained with, by the class its config names
                name = json.loads((path / "conditioning" / "config.json").read_text()).get("_class_name")
                method = method_by_class_name(name).from_pretrained(path / "conditioning", local_files_only=True,
                                                                    use_safetensors=True)
            transformer = self._lora_backbone(path, method)
            before = len(getattr(transformer, "peft_config", None) or {})
            transformer.load_lora_adapter(str(path), prefix="transformer", weight_name=weights.name)
            if len(getattr(transformer, "peft_config", None) or {}) == before:  # diffusers only warns
                raise AnyframeInputError(f"--lora {path}: {weights.name} holds no adapter for this model's backbone "
                                         f"({type(transformer).__name__}; no transformer.* LoRA keys)")
            self.transformer = transformer
            if method is not None and method is not self.conditioning:
                self.conditioning = method.to(self._execution_device).eval().requires_grad_(False)
        except AnyframeInputError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, SafetensorError) as exc:
            raise AnyframeInputError(f"cannot load the LoRA in {path}: {' '.join(str(exc).split())[:300]}") from None

    def _lora_backbone(self, path: Path, method) -> torch.nn.Module:
        """The backbone a LoRA's adapter goes into: this one, or a copy that holds the layers the LoRA folder keeps
        whole (``adapted_layers.safetensors``): those its method adds or reshapes (input channels, context groups;
        the copy is adapted by the method first), which a LoRA run trains in full (``export_lora``), and, in an
        extracted LoRA (``base_folder``), any other layer that differs from the base. This pipeline is left as it
        is until the whole LoRA has loaded."""
        transformer = self.transformer
        shapes = {n: p.shape for n, p in transformer.named_parameters()}
        adapted = method.adapt_backbone(transformer) if method is not None else transformer
        changed = [n for n, p in adapted.named_parameters() if shapes.get(n) != p.shape]
        file = path / "adapted_layers.safetensors"
        if not file.is_file():
            if changed:
                raise AnyframeInputError(f"--lora {path}: its {method.name} method adds backbone layers "
                                         f"({', '.join(changed[:3])}) that the folder does not hold ({file.name}): "
                                         "export it again with this version")
            return transformer
        saved = {k.removeprefix("transformer."): v for k, v in load_file(str(file)).items()}
        params = dict(adapted.named_parameters())
        wrong = sorted(set(changed) - set(saved)) + sorted(
            k for k in saved if k not in params or saved[k].shape != params[k].shape)
        if wrong:
            what = f"the layers {method.name} adds to" if method is not None and changed else "the layers of"
            raise AnyframeInputError(f"--lora {path}: {file.name} does not fit {what} this model ({', '.join(wrong[:3])})")
        if adapted is transformer:  # (nothing reshaped: a copy, so that this pipeline's stays as it is)
            adapted = copy.deepcopy(transformer)
            params = dict(adapted.named_parameters())
        else:
            dtype = next(p.dtype for p in transformer.parameters() if p.is_floating_point())
            adapted = adapted.to(device=transformer.device, dtype=dtype)
            params = dict(adapted.named_parameters())
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value.to(params[name].dtype))
        return adapted.eval().requires_grad_(False)

    # ------------------------------------------------------------------------------------ sizes

    @property
    def vae_scale_factor(self) -> int:
        return spatial_compression(self.vae)

    @property
    def vae_temporal_compression(self) -> int:
        """Pixel frames per latent frame (1: a per-frame autoencoder; 4: Wan's causal VAE)."""
        return temporal_compression(self.vae)

    @property
    def default_video_size(self) -> tuple[int, int, int]:
        """(frames, height, width): the backbone's own default (Wan: 81×480×832), else its training size."""
        size = getattr(self.transformer, "default_video_size", None)
        if size is not None:
            return tuple(size)
        t, h, w = self.transformer.config.sample_size
        return int(t), int(h) * self.vae_scale_factor, int(w) * self.vae_scale_factor

    @property
    def default_num_frames(self) -> int:
        return self.default_video_size[0]

    @property
    def default_height(self) -> int:
        return self.default_video_size[1]

    @property
    def default_width(self) -> int:
        return self.default_video_size[2]

    @property
    def limits(self) -> ModelLimits:
        """What this model can generate: sizes, compression, sampling defaults, its method."""
        return ModelLimits(default_video_size=self.default_video_size, patch_size=tuple(self.transformer.config.patch_size),
                           spatial_compression=self.vae_scale_factor, temporal_compression=self.vae_temporal_compression,
                           sampling_defaults=self.sampling_defaults, method=self.conditioning,
                           hidden_size=int(getattr(self.transformer, "token_dim", 0) or 0), memory_bytes=device_memory(self._execution_device),
                           trained_window=getattr(self.transformer.config, "trained_window", None))

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        self.limits.check_size(num_frames, height, width)

    def validate(self, request: GenerationRequest) -> GenerationRequest:
        """The request checked against this model and resolved (:func:`~anyframe.pipelines.request.validate_request`)."""
        return validate_request(request, self.limits)

    def place_keyframes(self, request: GenerationRequest, narrator,
                        narrator_prompt: bool = False) -> tuple[GenerationRequest, Narrative | None]:
        """A request whose keyframe has no frame index (``Keyframe(image, None)``), with the index ``narrator``
        (:mod:`anyframe.narrators`) gives it for the prompt — and, for a method that reads them (ReasonDiff), the
        narrator's per-frame narratives as ``frame_prompts`` (the request's own win where both give a frame).
        ``narrator_prompt``: the narrator's caption of the whole clip (when it wrote one) becomes the prompt — on
        the world, a keyframe model given the narrator's description does as well as ReasonDiff
        (docs/methods/reasondiff.md). Returns the request (unchanged when every keyframe has its index, or without
        a narrator: validation then says what is missing) and the narrative."""
        unplaced = [k for k in request.keyframes if k.frame_index is None]
        if not unplaced or narrator is None:
            return request, None
        if len(unplaced) > 1:
            raise AnyframeInputError(f"a narrator places one image; {len(unplaced)} images have no frame index "
                                     "(give them as PATH@INDEX)")
        frames, height, width = (request.num_frames or self.default_num_frames, request.height or self.default_height,
                                 request.width or self.default_width)
        # uint8 [H, W, 3], as a narrator reads an image (a float array would be read as [0, 1], not [−1, 1])
        image = np.asarray(fit_image(load_image(unplaced[0].image), height, width), dtype=np.uint8)
        narrative = narrator.narrate(image, request.prompt if isinstance(request.prompt, str) else request.prompt[0],
                                     frames)
        keyframes = [Keyframe(k.image, narrative.position) if k.frame_index is None else k for k in request.keyframes]
        frame_prompts = request.frame_prompts
        if "frame_prompts" in self.conditioning.request_fields:
            frame_prompts = {**dict(enumerate(narrative.descriptions)), **request.frame_prompts}
        prompt = request.prompt
        if narrator_prompt and narrative.caption:
            prompt = narrative.caption if isinstance(prompt, str) else [narrative.caption] * len(prompt)
        return replace(request, prompt=prompt, keyframes=keyframes, frame_prompts=frame_prompts), narrative

    @property
    def sampling_defaults(self) -> dict:
        """How the backbone is meant to be sampled (the CLI's defaults): anyframe's models 25 steps of
        JIT-CFG 7.5, renormalised when no keyframe is given (``auto``); Wan its own 50 steps of text CFG 5.0
        without."""
        defaults = dict(num_inference_steps=25, guidance_scale=7.5, guidance_mode="jit", renorm="auto")
        return {**defaults, **getattr(self.transformer, "sampling_defaults", {})}

    def sampling_settings(self, num_inference_steps: int | None = None, guidance_scale: float | None = None,
                          guidance_mode: str | None = None, renorm: str | None = MODEL_DEFAULT) -> dict:
        """The settings a call samples with: each one given, else the model's own (:attr:`sampling_defaults`).
        ``renorm``'s "not given" is :data:`MODEL_DEFAULT`, as ``None`` already means no renormalisation."""
        defaults = self.sampling_defaults
        given = dict(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, guidance_mode=guidance_mode)
        settings = {key: defaults[key] if value is None else value for key, value in given.items()}
        settings["renorm"] = defaults["renorm"] if renorm == MODEL_DEFAULT else renorm
        return settings

    # ---------------------------------------------------------------------------------- encoding

    @property
    def text_convention(self) -> dict:
        """How the backbone takes text (``encode_prompts``' ``padding`` and ``max_length``): masked padding at
        the tokenizer's length (anyframe), or Wan's zero padding at 512."""
        return {"padding": getattr(self.transformer, "text_padding", "masked"),
                "max_length": getattr(self.transformer, "text_max_length", None)}

    @property
    def vocabulary(self) -> list[str] | None:
        """The words a word-level tokenizer knows (world models), sorted; None for a subword tokenizer (Wan's
        UMT5), which spells any word."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or type(backend.model).__name__ != "WordLevel":
            return None
        specials = set(self.tokenizer.all_special_tokens)
        return sorted(w for w in self.tokenizer.get_vocab() if w not in specials)

    def prompt_problems(self, prompt: str, max_length: int | None = None) -> list[str]:
        """What this model will not read of ``prompt``: the words its vocabulary lacks (they become ``<unk>``) and
        the words past its text length (cut off). Empty when it reads all of it."""
        problems = []
        vocabulary = self.vocabulary
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if vocabulary is not None and backend is not None:
            text = backend.normalizer.normalize_str(prompt) if backend.normalizer else prompt
            words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)]
            known = set(vocabulary)
            unknown = list(dict.fromkeys(w for w in words if w not in known))
            if unknown:
                problems.append(f"this model does not know the word{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(repr(w) for w in unknown)}: {'they are' if len(unknown) > 1 else 'it is'} "
                                "ignored (`anyframe model info` lists the words it knows)")
        length = max_length or self.tokenizer.model_max_length
        tokens = len(self.tokenizer(prompt, truncation=False)["input_ids"])
        if tokens > length:
            problems.append(f"the prompt is {tokens} tokens long; this model reads the first {length}")
        return problems

    def encode_text(self, prompts: Sequence[str], max_length: int | None = None) -> TextCondition:
        """Prompts → tokens, in the backbone's convention (:attr:`text_convention`)."""
        convention = self.text_convention
        return encode_prompts(self.tokenizer, self.text_encoder, prompts, max_length=max_length or convention["max_length"],
                              padding=convention["padding"])

    def _images(self, keyframes: Sequence[Keyframe], height: int, width: int) -> Tensor:
        """Keyframe images → ``[3, K, H, W]`` in [−1, 1]."""
        frames = [image_to_array(fit_image(load_image(k.image), height, width)) for k in keyframes]
        return torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)

    @torch.no_grad()
    def encode_keyframes(self, keyframes: Sequence[Keyframe], height: int, width: int,
                         pixel_indices: Sequence[int] | None = None) -> Tensor:
        """Keyframe images → latents ``[1, C, K, h, w]`` (posterior mode), one latent frame each.

        With a causal video VAE (r pixel frames per latent frame) a keyframe at pixel frame 0 is encoded
        alone — exactly the first latent frame of any clip starting with it — and one at a later frame as
        a still clip of 1 + r frames, whose second latent frame is what the VAE gives a chunk of r frames
        of that image: the keyframe conditions the whole latent frame holding its pixel frame.
        """
        images = self._images(keyframes, height, width).to(self._execution_device)
        r = self.vae_temporal_compression
        if r == 1:
            return encode_video(self.vae, images[None])
        if pixel_indices is None:  # (negative frame indices cannot be resolved here)
            raise ValueError("a causal video VAE needs the keyframes' resolved pixel_indices")
        latents = []
        for i, index in enumerate(pixel_indices):
            image = images[:, i : i + 1][None]  # [1, 3, 1, H, W]
            if latent_frame_index(index, r) == 0:
                latents.append(encode_video(self.vae, image))
            else:
                latents.append(encode_video(self.vae, image.expand(-1, -1, 1 + r, -1, -1))[:, :, 1:2])
        return torch.cat(latents, dim=2)

    @torch.no_grad()
    def encode_condition_video(self, keyframes: Sequence[Keyframe], pixel_indices: Sequence[int], num_frames: int,
                               height: int, width: int) -> tuple[Tensor, Tensor]:
        """The pixel clip with the keyframes at their frames and zeros elsewhere (Wan I2V's condition) →
        its latents ``[1, C, T_lat, h, w]`` and the ``[1, T]`` keyframe mask."""
        images = self._images(keyframes, height, width)
        clip = torch.zeros(1, 3, num_frames, height, width)
        mask = torch.zeros(1, num_frames, dtype=torch.bool)
        for i, index in enumerate(pixel_indices):
            clip[0, :, index] = images[:, i]
            mask[0, index] = True
        return encode_video(self.vae, clip.to(self._execution_device)), mask

    @torch.no_grad()
    def encode_image_embeds(self, keyframes: Sequence[Keyframe], pixel_indices: Sequence[int]) -> Tensor | None:
        """CLIP tokens of the keyframe images, for backbones with an image input (Wan I2V: ``image_dim``):
        the penultimate hidden states, as diffusers' Wan I2V takes them. An FLF2V model (positional
        embeddings for two images) takes the first and the last keyframe; an I2V model the first."""
        if not self.takes_image_tokens:
            return None
        order = sorted(range(len(keyframes)), key=lambda i: pixel_indices[i])
        if self.images_per_sample == 2 and len(order) < 2:
            raise AnyframeInputError("this first-last-frame (FLF2V) model needs two keyframes: a first and a last")
        return self.image_tokens([load_image(keyframes[i].image) for i in self.image_token_frames(order)])

    @property
    def takes_image_tokens(self) -> bool:
        """Whether the backbone takes image-encoder tokens (Wan I2V / FLF2V: ``image_dim``) and there is an encoder."""
        return self.image_encoder is not None and bool(getattr(self.transformer.config, "image_dim", None))

    @property
    def images_per_sample(self) -> int:
        """Image-encoder images per sample: 2 for an FLF2V backbone (positional embeddings for two), else 1."""
        return 2 if getattr(self.transformer.config, "pos_embed_seq_len", None) else 1

    def image_token_frames(self, frames: Sequence[int]) -> list:
        """Of ``frames`` (in time order), those the image encoder sees: the first and the last for an FLF2V
        backbone, else the first."""
        return [frames[0], frames[-1]] if self.images_per_sample == 2 else [frames[0]]

    @torch.no_grad()
    def image_tokens(self, images: Sequence[Image.Image]) -> Tensor:
        """Images → the image encoder's penultimate hidden states ``[N_images, tokens, dim]``."""
        pixels = self.image_processor(images=list(images), return_tensors="pt").to(self._execution_device)
        return self.image_encoder(**pixels, output_hidden_states=True).hidden_states[-2]

    @torch.no_grad()
    def decode_latents(self, latents: Tensor) -> Tensor:
        """Latents → video ``[B, T, H, W, 3]`` in [0, 1]."""
        video = decode_video(self.vae, latents.to(self._execution_device)).float().clamp(-1, 1)
        return ((video + 1) / 2).permute(0, 2, 3, 4, 1)

    def branch_velocity(self, state: ConditionState) -> Callable[[Tensor, Tensor, Sequence[Branch]], list[Tensor]]:
        """``f(x, σ, branches)``: every branch's velocity from ONE batched forward. Branches that give
        identical inputs (no image → image flags are moot) are computed once."""
        method, model, device = self.conditioning, self.transformer, self._execution_device

        def velocities(x: Tensor, sigma: Tensor, branches: Sequence[Branch]) -> list[Tensor]:
            canonical = [method.canonical_branch(b, state) for b in branches]
            unique = list(dict.fromkeys(canonical))
            inputs = ModelInputs.cat([method.model_inputs(x, sigma, state, b) for b in unique])
            out = method(model, inputs.to(device, model.dtype)).sample.to(x.dtype)
            by_branch = dict(zip(unique, out.chunk(len(unique))))
            return [by_branch[c] for c in canonical]

        return velocities

    @torch.no_grad()
    def encode_request(self, request: GenerationRequest, latents: Tensor) -> tuple[PipelineEncoders, ConditionState]:
        """What every method needs — the prompt and the negative prompt, the micro conditions — bound to a validated
        ``request`` and its starting noise ``latents``, and the method's state encoded from them (keyframes, source
        video, ...): what :meth:`generate` samples with, and what a probe of one denoiser call needs."""
        device = self._execution_device
        text = self.encode_text(request.prompts, request.max_sequence_length).to(device)
        null_text = self.encode_text(request.negative_prompts, request.max_sequence_length).to(device)
        used = max(text.used_length(), null_text.used_length())  # masked padding costs cross-attention time only
        text, null_text = text.trim(used), null_text.trim(used)
        micro = None
        if getattr(self.transformer.config, "use_micro_conditions", False):
            micro = torch.tensor([[request.frame_stride, request.height, request.width, 0.0, 0.0]], device=device)
            micro = micro.expand(latents.shape[0], -1)
        encoders = PipelineEncoders(self, request, latents, text, null_text, micro)
        return encoders, self.conditioning.encode(request, encoders)

    # ------------------------------------------------------------------------------------- call

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] = "", keyframes: Sequence[Keyframe] | None = None, *,
                 guidance: Guidance | None = None, generator: torch.Generator | None = None, latents: Tensor | None = None,
                 output_type: str = "np", return_latents: bool = False, callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",), narrator=None,
                 narrator_prompt: bool = False, **request_fields) -> AnyFrameOutput:
        """Generate videos, diffusers style: the keyword arguments build a :class:`GenerationRequest`
        (``num_inference_steps`` is its ``steps``; a method's option such as FlashI2V's ``detail=0.2`` goes to its
        ``options``) and :meth:`generate` runs it. See :meth:`generate` for the other arguments."""
        request = request_from_kwargs(prompt, keyframes=list(keyframes or []), **request_fields)
        return self.generate(request, guidance=guidance, generator=generator, latents=latents, output_type=output_type,
                             return_latents=return_latents, callback_on_step_end=callback_on_step_end,
                             callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, narrator=narrator,
                             narrator_prompt=narrator_prompt)

    @torch.no_grad()
    def generate(
        self,
        request: GenerationRequest,
        guidance: Guidance | None = None,
        generator: torch.Generator | None = None,
        latents: Tensor | None = None,
        output_type: str = "np",
        return_latents: bool = False,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        narrator=None,
        narrator_prompt: bool = False,
    ) -> AnyFrameOutput:
        """Generate the videos of ``request`` (one per prompt).

        The request's settings (:class:`GenerationRequest`) default to the model's own (:attr:`sampling_defaults`:
        anyframe's models 25 steps of JIT-CFG 7.5 with ``renorm="auto"``; Wan 50 steps of text CFG 5.0 without
        renormalisation, as diffusers). ``guidance_mode``: ``jit`` (STIV JIT-CFG: text and image dropped
        together), ``cfg`` (text only), ``text-image`` (separate scales, 3 passes; ``image_guidance_scale``),
        ``none``. ``renorm``: ``full`` (STIV: always the conditional norm), ``clamp`` (Lumina: only when larger),
        ``None``, or ``auto``: ``full`` for a prompt-only clip, ``None`` when keyframes are given — on the world
        model renormalisation lifts text-to-video presence, and with keyframes scores lower on motion and
        identity, within the intervals of 40 cases (``docs/experiments.md#archived-renorm_full_suite``).

        Args:
            guidance: a ready :class:`~anyframe.flow.guidance.Guidance`; overrides the request's guidance settings.
            generator: a CPU generator (else one seeded by the request's seed; the noise is always drawn on the
                CPU, so a seed gives the same video on any device). Neither a generator nor a seed: a random
                seed, reported.
            latents: the starting noise (``[B, C_state, T_lat, h, w]``) instead of drawing it.
            output_type: ``np`` | ``pt`` | ``pil`` | ``latent``.
            callback_on_step_end: ``f(pipe, step, timestep, {"latents": x}) -> dict``; a returned ``latents``
                replaces the state.
            narrator: places a keyframe given without its frame index (:meth:`place_keyframes`); its narrative is
                returned in ``extras["narrative"]``.
            narrator_prompt: the narrator's caption of the whole clip replaces the prompt (:meth:`place_keyframes`).
        """
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"unknown output_type {output_type!r}")
        if generator is not None and request.seed is not None:
            raise ValueError("pass a generator or a seed, not both")
        request, narrative = self.place_keyframes(request, narrator, narrator_prompt)
        request = self.validate(request)
        for prompt in dict.fromkeys(request.prompts):
            for problem in self.prompt_problems(prompt, request.max_sequence_length):
                warnings.warn(problem, UserWarning, stacklevel=2)
        seed = request.seed
        if generator is None:
            generator = torch.Generator("cpu").manual_seed(seed)
        else:
            seed = None  # (a generator's own state is not a seed that can be reported)
        if guidance is None:
            renorm = resolve_renorm(request.renorm, with_frames=bool(request.keyframes))
            guidance = make_guidance(request.guidance_mode, request.guidance_scale, request.image_guidance_scale, renorm)

        device = self._execution_device  # (where models run; with CPU offload, not where they are stored)
        method = self.conditioning
        batch = len(request.prompts)
        f, r = self.vae_scale_factor, self.vae_temporal_compression
        channels = self.transformer.latent_channels + method.extra_out_channels
        shape = (batch, channels, num_latent_frames(request.num_frames, r), request.height // f, request.width // f)

        # 1. The starting noise (CPU generator).
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, torch.float32)

        # 2. The request's conditions in the method's state; the guided velocity.
        encoders, state = self.encode_request(request, latents)
        velocity = guided_velocity(self.branch_velocity(state), guidance, state.generated_mask())
        scheduler = self.scheduler if request.sampler is None else convert_scheduler(self.scheduler, request.sampler)

        # 3. Sample.
        progress = self.progress_bar(total=request.steps)

        def on_step(i: int, sigma: Tensor, x: Tensor) -> Tensor | None:
            progress.update()
            if callback_on_step_end is None:
                return None
            tensors = {name: x for name in callback_on_step_end_tensor_inputs if name == "latents"}
            result = callback_on_step_end(self, i, sigma[0] * 1000, tensors) or {}
            return result.get("latents")

        x = sample(velocity, latents, scheduler, request.steps, after_step=lambda x, s: method.after_step(x, s, state),
                   on_step=on_step)
        progress.close()
        final = method.finalize(x, state)
        extras = method.outputs(final, state, encoders)
        if narrative is not None:
            extras["narrative"] = {**narrative.to_dict(), "backend": narrative.backend}

        # 4. Decode (the video's channels; a method's own channels come back through ``extras``).
        if output_type == "latent":
            frames = final
        else:
            video = self.decode_latents(final[:, : latent_channels(self.vae)])
            if output_type == "pt":
                frames = video
            elif output_type == "np":
                frames = video.cpu().numpy()
            else:
                frames = [[Image.fromarray(fr) for fr in to_uint8(clip)] for clip in video.cpu().numpy()]
        self.maybe_free_model_hooks()
        return AnyFrameOutput(frames=frames, latents=final if return_latents else None, seed=seed,
                              keyframe_indices=tuple(k.frame_index for k in request.keyframes), request=request,
                              extras=extras)

    def generate_chunks(
        self,
        requests: GenerationRequest | Iterable[GenerationRequest],
        next_request: Callable[[int, AnyFrameOutput], GenerationRequest | None] | None = None,
        on_chunk: Callable[[int, AnyFrameOutput], None] | None = None,
        max_chunks: int | None = None,
        **generate_kwargs,
    ) -> list[AnyFrameOutput]:
        """Run the sampler loop over chunks: each request is generated, decoded, and handed to ``on_chunk(i,
        output)`` (write it, show it) as soon as it is done. ``requests`` is a sequence of requests, or the first
        one with ``next_request(i, output)`` giving the request after chunk ``i`` from its output (e.g. its last
        frame as the next chunk's keyframe 0 — a continuation), None to stop. Returns the outputs in order."""
        if isinstance(requests, GenerationRequest):
            if next_request is None and max_chunks is None:
                max_chunks = 1
            pending: Iterable[GenerationRequest] | None = None
            request: GenerationRequest | None = requests
        else:
            if next_request is not None:
                raise ValueError("give a sequence of requests or a first request with next_request, not both")
            pending, request = iter(requests), None
        outputs: list[AnyFrameOutput] = []
        while max_chunks is None or len(outputs) < max_chunks:
            if pending is not None:
                request = next(pending, None)
            if request is None:
                break
            output = self.generate(request, **generate_kwargs)
            outputs.append(output)
            if on_chunk is not None:
                on_chunk(len(outputs) - 1, output)
            if pending is None:
                request = None if next_request is None else next_request(len(outputs) - 1, output)
        return outputs
