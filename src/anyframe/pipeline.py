"""``AnyFramePipeline``: text and keyframes at any frame → video, in diffusers' conventions.

    pipe = AnyFramePipeline.from_pretrained("checkpoints/anyframe-world-s")
    out = pipe("a red circle moves left", keyframes=[Keyframe("first.png", 0)], seed=0)
    out.frames[0]   # [T, H, W, 3] float in [0, 1]

One loop serves every conditioning method (``pipe.conditioning``): encode → ``prepare`` →
sample (guidance over a batched multi-branch velocity) → ``finalize`` → decode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, DiffusionPipeline, SchedulerMixin
from diffusers.utils import BaseOutput
from PIL import Image
from torch import Tensor
from transformers import CLIPVisionModel, PreTrainedTokenizerBase, T5EncoderModel, UMT5EncoderModel
from transformers.image_processing_utils import BaseImageProcessor

from anyframe.conditioning.base import ConditionInputs, ConditioningMethod, ConditionState, ModelInputs
from anyframe.errors import AnyframeInputError
from anyframe.flow.guidance import MODEL_DEFAULT, Branch, Guidance, guided_velocity, make_guidance, resolve_renorm
from anyframe.flow.sampling import convert_scheduler, make_scheduler, sample
from anyframe.io import atomic_dir, fit_image, image_to_array, load_image, to_uint8
from anyframe.models.autoencoder import (
    build_world_autoencoder,
    decode_video,
    encode_video,
    latent_channels,
    spatial_compression,
    temporal_compression,
)
from anyframe.models.dit import STIVTransformer, build_stiv
from anyframe.models.text_encoder import TextCondition, build_t5_encoder, build_word_tokenizer, encode_prompts
from anyframe.models.wan import WanBackbone, latent_frame_index, num_latent_frames

@dataclass
class Keyframe:
    """An image placed at a frame. ``frame_index`` may be negative (counted from the end)."""

    image: str | os.PathLike | Image.Image | np.ndarray
    frame_index: int = 0


@dataclass
class AnyFrameOutput(BaseOutput):
    """``frames``: ``[B, T, H, W, 3]`` float in [0, 1] (``np``), a tensor (``pt``), lists of PIL images
    (``pil``) or the latents (``latent``). ``latents`` when asked for; the ``seed`` used; the resolved
    keyframe indices."""

    frames: np.ndarray | Tensor | list
    latents: Tensor | None = None
    seed: int | None = None
    keyframe_indices: tuple[int, ...] = ()


def resolve_frame_index(index: int, num_frames: int) -> int:
    """A frame index, negative counting from the end, checked against ``num_frames``."""
    resolved = index + num_frames if index < 0 else index
    if not 0 <= resolved < num_frames:
        raise AnyframeInputError(
            f"frame index {index} is out of range for {num_frames} frames (valid: {-num_frames}..{num_frames - 1})"
        )
    return resolved


class AnyFramePipeline(DiffusionPipeline):
    """Video generation from a prompt and keyframes at any frames.

    Components: ``transformer`` (the backbone: :class:`~anyframe.models.dit.STIVTransformer`, or Wan's
    :class:`~anyframe.models.wan.WanBackbone`), ``vae`` (a per-frame ``AutoencoderKL``, or Wan's causal
    ``AutoencoderKLWan``), ``text_encoder`` (T5 / UMT5) and ``tokenizer``, ``scheduler`` (a flow-matching
    diffusers scheduler), ``conditioning`` (a :class:`~anyframe.conditioning.base.ConditioningMethod`), and
    optionally ``image_encoder`` + ``image_processor`` (CLIP, for Wan I2V / FLF2V).

    ``from_pretrained`` also loads a Wan2.1 diffusers folder (``WanPipeline`` / ``WanImageToVideoPipeline``),
    see :func:`anyframe.models.wan_loading.load_wan_pipeline`.
    """

    # the method before the backbone: it runs first in each step (FlashI2V: φ, the Fourier embedding)
    model_cpu_offload_seq = "text_encoder->image_encoder->conditioning->transformer->vae"
    _optional_components = ["image_encoder", "image_processor"]
    _callback_tensor_inputs = ["latents"]

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
        from anyframe.models.wan_loading import is_wan_folder, load_wan_pipeline

        if is_wan_folder(path):
            return load_wan_pipeline(path, pipeline_class=cls, **kwargs)
        try:
            pipe = super().from_pretrained(str(path), local_files_only=True, use_safetensors=True, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise AnyframeInputError(f"cannot load the model folder {path}: {exc}") from None
        if not isinstance(pipe, cls):
            raise AnyframeInputError(f"{path} holds a {type(pipe).__name__}, not an {cls.__name__}")
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

    def load_lora(self, path: str | os.PathLike) -> None:
        """Load a fine-tune saved by the training recipe's LoRA export (``runs/<name>/lora``): the adapter
        (diffusers' LoRA format, ``pytorch_lora_weights.safetensors``, which diffusers' ``WanPipeline``
        loads too) into the transformer, and the conditioning method's own trained layers if present."""
        path = Path(path)
        weights = path / "pytorch_lora_weights.safetensors"
        if not weights.is_file():
            raise AnyframeInputError(f"no LoRA weights in {path} (expected {weights.name})")
        try:
            self.transformer.load_lora_adapter(str(path), prefix="transformer", weight_name=weights.name)
            if (path / "conditioning").is_dir():  # the method it was trained with, by the class its config names
                import json

                from anyframe.conditioning import METHODS

                name = json.loads((path / "conditioning" / "config.json").read_text()).get("_class_name")
                classes = {cls.__name__: cls for cls in METHODS.values()}
                if name not in classes:
                    raise ValueError(f"unknown conditioning method {name!r}")
                method = classes[name].from_pretrained(path / "conditioning", local_files_only=True, use_safetensors=True)
                self.conditioning = method.to(self._execution_device).eval().requires_grad_(False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise AnyframeInputError(f"cannot load the LoRA in {path}: {' '.join(str(exc).split())[:300]}") from None

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

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        pt, ph, pw = self.transformer.config.patch_size
        f, r = self.vae_scale_factor, self.vae_temporal_compression
        if r > 1 and (num_frames < 1 or (num_frames - 1) % r):
            raise AnyframeInputError(f"num_frames must be 1 + {r}·k for this model's causal VAE (e.g. 81), got {num_frames}")
        latent_frames = num_latent_frames(num_frames, r) if num_frames >= 1 else 0
        if num_frames < 1 or latent_frames % pt:
            raise AnyframeInputError(f"num_frames must give a positive multiple of {pt} latent frames, got {num_frames}")
        if height <= 0 or width <= 0 or height % (f * ph) or width % (f * pw):
            raise AnyframeInputError(f"height and width must be positive multiples of {f * ph}×{f * pw}, got {height}×{width}")

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

    # ------------------------------------------------------------------------------------- call

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] | None = None,
        keyframes: Sequence[Keyframe] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_mode: str | None = None,
        image_guidance_scale: float | None = None,
        renorm: str | None = MODEL_DEFAULT,
        guidance: Guidance | None = None,
        sampler: str | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        frame_stride: float = 1.0,
        detail: float | None = None,
        max_sequence_length: int | None = None,
        latents: Tensor | None = None,
        output_type: str = "np",
        return_latents: bool = False,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> AnyFrameOutput:
        """Generate videos.

        Args:
            prompt: one prompt or a list (one video each). May be empty if keyframes are given.
            negative_prompt: replaces the empty prompt in the unconditional branches.
            keyframes: images at frame indices (negative = from the end); none = text-to-video.
            num_frames, height, width: default to the model's training size.
            num_inference_steps, guidance_scale, guidance_mode, renorm: default to the model's own
                (:attr:`sampling_defaults`: anyframe's models 25 steps of JIT-CFG 7.5 with ``renorm="auto"``;
                Wan 50 steps of text CFG 5.0 without renormalisation, as diffusers).
            guidance_mode: ``jit`` (STIV JIT-CFG: text and image dropped together), ``cfg`` (text only),
                ``text-image`` (separate scales, 3 passes; ``image_guidance_scale``), ``none``.
            renorm: ``full`` (STIV: always the conditional norm), ``clamp`` (Lumina: only when larger),
                ``None``, or ``auto`` (anyframe's models' default): ``full`` for a prompt-only clip, ``None`` when keyframes
                are given — on the world model renormalisation lifts text-to-video presence, and with keyframes
                scores lower on motion and identity, within the intervals of 40 cases
                (``benchmarks/results/renorm_full_suite.md``).
            guidance: a ready :class:`~anyframe.flow.guidance.Guidance`; overrides the four above.
            sampler: ``euler`` or ``unipc``; default: the pipeline's scheduler.
            generator / seed: a CPU generator, or a seed for one (the noise is always drawn on the CPU,
                so a seed gives the same video on any device). Neither: a random seed, reported.
            frame_stride: the stride micro condition (1 = consecutive frames).
            detail: FlashI2V's Fourier cutoff ratio in [0, 1] (lower = more of the image's high-frequency
                detail; default: the model's, 0.1). Only for methods with Fourier guidance.
            max_sequence_length: text tokens (default: the tokenizer's length; Wan: 512, as diffusers).
            output_type: ``np`` | ``pt`` | ``pil`` | ``latent``.
            callback_on_step_end: ``f(pipe, step, timestep, {"latents": x}) -> dict``; a returned
                ``latents`` replaces the state.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        keyframes = list(keyframes or [])
        if not prompts:
            raise AnyframeInputError("prompt list is empty")
        if not keyframes and not any(p.strip() for p in prompts):
            raise AnyframeInputError("give a prompt, a keyframe image, or both")
        if negative_prompt is None:
            negatives = [""] * len(prompts)
        else:
            negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negatives) != len(prompts):
                raise AnyframeInputError(f"{len(negatives)} negative prompts for {len(prompts)} prompts")
        num_frames = self.default_num_frames if num_frames is None else num_frames
        height = self.default_height if height is None else height
        width = self.default_width if width is None else width
        self.check_size(num_frames, height, width)
        indices = tuple(resolve_frame_index(k.frame_index, num_frames) for k in keyframes)
        if len(set(indices)) != len(indices):
            raise AnyframeInputError(f"two keyframes at the same frame: {list(indices)}")
        r = self.vae_temporal_compression
        latent_indices = tuple(latent_frame_index(i, r) for i in indices)
        if self.conditioning.uses_keyframe_latents and len(set(latent_indices)) != len(latent_indices):
            raise AnyframeInputError(
                f"keyframes at frames {list(indices)} fall into the same latent frame of this model's causal VAE "
                f"(latent frames {list(latent_indices)}; {r} pixel frames each after frame 0)"
            )
        reason = self.conditioning.check_keyframes(indices, num_frames)
        if reason:
            raise AnyframeInputError(reason)
        if detail is not None:
            if not self.conditioning.supports_detail:
                method = type(self.conditioning).__name__
                raise AnyframeInputError(f"detail applies to models with Fourier guidance (FlashI2V); this model uses {method}")
            if not 0.0 <= detail <= 1.0:
                raise AnyframeInputError(f"detail must be in [0, 1], got {detail}")
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"unknown output_type {output_type!r}")
        if generator is not None and seed is not None:
            raise ValueError("pass a generator or a seed, not both")
        if generator is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item()) if seed is None else int(seed)
            generator = torch.Generator("cpu").manual_seed(seed)
        settings = self.sampling_settings(num_inference_steps, guidance_scale, guidance_mode, renorm)
        num_inference_steps = settings["num_inference_steps"]
        if guidance is None:
            guidance_scale, guidance_mode = settings["guidance_scale"], settings["guidance_mode"]
            renorm = resolve_renorm(settings["renorm"], with_frames=bool(keyframes))
            guidance = make_guidance(guidance_mode, guidance_scale, image_guidance_scale, renorm)

        device = self._execution_device  # (where models run; with CPU offload, not where they are stored)
        batch = len(prompts)
        f = self.vae_scale_factor
        shape = (batch, self.transformer.latent_channels, num_latent_frames(num_frames, r), height // f, width // f)

        # 1. Encode: text, keyframes, micro conditions, starting noise (CPU generator).
        text = self.encode_text(prompts, max_sequence_length).to(device)
        null_text = self.encode_text(negatives, max_sequence_length).to(device)
        used = max(text.used_length(), null_text.used_length())  # masked padding costs cross-attention time only
        text, null_text = text.trim(used), null_text.trim(used)
        method = self.conditioning
        keyframe_latents = condition_latents = pixel_frame_mask = image_embeds = None
        if keyframes and method.uses_keyframe_latents:
            keyframe_latents = self.encode_keyframes(keyframes, height, width, indices).to(device, torch.float32)
            keyframe_latents = keyframe_latents.expand(batch, -1, -1, -1, -1)
        if keyframes and method.uses_condition_video:
            condition_latents, pixel_frame_mask = self.encode_condition_video(keyframes, indices, num_frames, height, width)
            condition_latents = condition_latents.to(device, torch.float32).expand(batch, -1, -1, -1, -1)
            pixel_frame_mask = pixel_frame_mask.to(device).expand(batch, -1)
        if keyframes and method.uses_image_embeds:
            image_embeds = self.encode_image_embeds(keyframes, indices)
            if image_embeds is not None:
                image_embeds = image_embeds.to(device).repeat(batch, 1, 1)
        micro = None
        if getattr(self.transformer.config, "use_micro_conditions", False):
            micro = torch.tensor([[frame_stride, height, width, 0.0, 0.0]], device=device).expand(batch, -1)
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, torch.float32)

        # 2. The method's state, and the guided velocity.
        state = self.conditioning.prepare(
            ConditionInputs(
                noise=latents,
                text=text,
                null_text=null_text,
                micro_conditions=micro,
                keyframe_latents=keyframe_latents,
                keyframe_indices=latent_indices,
                detail=detail,
                condition_latents=condition_latents,
                pixel_frame_mask=pixel_frame_mask,
                image_embeds=image_embeds,
            )
        )
        velocity = guided_velocity(self.branch_velocity(state), guidance, state.generated_mask())
        scheduler = self.scheduler if sampler is None else convert_scheduler(self.scheduler, sampler)

        # 3. Sample.
        progress = self.progress_bar(total=num_inference_steps)

        def on_step(i: int, sigma: Tensor, x: Tensor) -> Tensor | None:
            progress.update()
            if callback_on_step_end is None:
                return None
            tensors = {name: x for name in callback_on_step_end_tensor_inputs if name == "latents"}
            result = callback_on_step_end(self, i, sigma[0] * 1000, tensors) or {}
            return result.get("latents")

        x = sample(
            velocity,
            latents,
            scheduler,
            num_inference_steps,
            after_step=lambda x, s: self.conditioning.after_step(x, s, state),
            on_step=on_step,
        )
        progress.close()
        final = self.conditioning.finalize(x, state)

        # 4. Decode.
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
        return AnyFrameOutput(
            frames=frames, latents=final if return_latents else None, seed=seed, keyframe_indices=indices
        )


# ------------------------------------------------------------------------------------------------
#                               Building a (randomly initialised) pipeline
# ------------------------------------------------------------------------------------------------

DTYPES = ("auto", "float32", "bfloat16")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX (torch.cpu's own ISA checks, which the CPU build uses to pick its kernels); elsewhere
    bf16 products are emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_dtype(dtype: str, device: str | torch.device = "cpu") -> str:
    """``auto`` → ``bfloat16`` where ``device`` has native bf16 (:func:`native_bf16`), else ``float32``;
    ``float32`` and ``bfloat16`` stay. On the shipped model bf16 moves none of the standard suite's targets
    (``benchmarks/results/bf16_inference.md``) and is 1.4–1.7× faster on such a CPU (``generate_speed.md``)."""
    if dtype not in DTYPES:
        raise AnyframeInputError(f"dtype must be {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return dtype


def load_pipeline(model_dir: str | os.PathLike, dtype: str = "auto", transformer_file: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> AnyFramePipeline:
    """A pipeline folder (anyframe's, or a diffusers Wan2.1 one) with its weights at ``dtype``: ``float32``,
    ``bfloat16``, or ``auto`` (:func:`resolve_dtype` for the ``device`` it will run on: bf16 where that is
    native). The VAE stays float32 (decoding in bf16 costs quality for little memory; the Wan loader does so
    itself). Callers that report the dtype resolve it first (:func:`resolve_dtype`) and pass the result."""
    from anyframe.models.wan_loading import is_wan_folder

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[resolve_dtype(dtype, device)]
    kwargs = {}
    if transformer_file is not None:
        if not is_wan_folder(model_dir):
            raise AnyframeInputError("--transformer-file applies to a diffusers Wan2.1 folder given as --model")
        kwargs["transformer_file"] = transformer_file
    if is_wan_folder(model_dir):
        kwargs["torch_dtype"] = torch_dtype
    else:  # diffusers deprecates torch_dtype for dtype
        kwargs["dtype"] = {"default": torch_dtype, "vae": torch.float32}
    return AnyFramePipeline.from_pretrained(model_dir, **kwargs)


WORLD_PRESETS = {
    # size: (backbone, autoencoder, text encoder, pixels, frames, tokenizer length)
    # max_length: world captions of up to 4 objects run to ~122 word tokens (95th percentile ~96)
    "tiny": dict(backbone="tiny", autoencoder="tiny", text_encoder="tiny", pixels=16, frames=8, max_length=32),
    "S": dict(backbone="S", autoencoder="S", text_encoder="S", pixels=32, frames=16, max_length=128),
}


def build_world_pipeline(
    size: str = "S",
    seed: int = 0,
    shift: float = 1.0,
    method: str = "frame_replacement",
    method_options: dict | None = None,
    **backbone_kwargs,
) -> AnyFramePipeline:
    """A randomly initialised world-scale pipeline (the starting point of training, and of tests).
    ``method`` names the conditioning method (``anyframe.conditioning.METHODS``); ``method_options`` are
    its constructor's arguments (e.g. ``{"clean_timestep": True}`` for frame replacement)."""
    if size not in WORLD_PRESETS:
        raise ValueError(f"unknown world preset {size!r} ({', '.join(WORLD_PRESETS)})")
    p = WORLD_PRESETS[size]
    torch.manual_seed(seed)
    from anyframe.world import world_vocabulary

    tokenizer = build_word_tokenizer(world_vocabulary(), max_length=p["max_length"])
    text_encoder = build_t5_encoder(p["text_encoder"], len(tokenizer))
    vae = build_world_autoencoder(p["autoencoder"], sample_size=p["pixels"])
    latent = p["pixels"] // spatial_compression(vae)
    transformer = build_stiv(
        p["backbone"],
        **{
            "in_channels": vae.config.latent_channels,
            "text_dim": text_encoder.config.d_model,
            "sample_size": (p["frames"], latent, latent),
            **backbone_kwargs,
        },
    )
    from anyframe.conditioning import build_method

    conditioning = build_method(method, transformer, **(method_options or {}))
    transformer = conditioning.adapt_backbone(transformer)
    return AnyFramePipeline(
        transformer=transformer.eval(),  # eval, like diffusers' loader: train mode changes attention kernels
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=make_scheduler("euler", shift),
        conditioning=conditioning.eval(),
    )


def build_wan_pipeline(
    size: str = "tiny",
    kind: str = "t2v",
    seed: int = 0,
    method: str | None = None,
    method_options: dict | None = None,
    vocabulary=None,
    **backbone_kwargs,
) -> AnyFramePipeline:
    """A randomly initialised tiny Wan pipeline (tests, CPU smoke runs of the recipe): ``kind`` t2v | i2v |
    flf2v; ``method`` defaults to the backbone's (frame replacement on T2V, Wan I2V on I2V)."""
    if size != "tiny":
        raise ValueError("only the tiny Wan preset is built at random; load real weights with from_pretrained")
    from anyframe.conditioning import build_method
    from anyframe.models.wan import tiny_wan_components
    from anyframe.models.wan_loading import default_method

    components = tiny_wan_components(kind, seed=seed, vocabulary=vocabulary, **backbone_kwargs)
    transformer = components["transformer"]
    conditioning = default_method(transformer) if method is None else build_method(method, transformer, **(method_options or {}))
    return AnyFramePipeline(**components, conditioning=conditioning.eval())
