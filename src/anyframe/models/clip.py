"""Image–text embedders: any ``transformers`` CLIP saved as a local folder, and the small world CLIP.

:class:`ClipEmbedder` wraps a ``CLIPModel`` (weights + ``config.json``), a tokenizer that
``AutoTokenizer.from_pretrained(folder)`` loads, and a ``CLIPImageProcessor`` config, all in one folder, read
with ``local_files_only`` (nothing is downloaded)::

    clip = ClipEmbedder.from_pretrained("checkpoints/anyframe-world-clip")
    clip.embed_images(frames)        # uint8 [N, H, W, 3] → float32 [N, D], unit norm
    clip.embed_texts(["a red circle moving left"])     # → float32 [N, D], unit norm
    clip.score(frames, texts)        # per-pair cosine [N]: the CLIP score without CLIP-score's ×100

:func:`build_world_clip` builds a randomly initialised small CLIP whose tokenizer is the shapes world's
word-level tokenizer (``</s>`` = id 1, padding id 0; the text tower pools at the first ``</s>``) and whose
processor passes world frames (32×32) through at their size. ``anyframe.training.world_clip`` trains it.

Embeddings are computed in eval mode under ``torch.no_grad``, in batches; texts are padded to one fixed length
(the tokenizer's, capped by the text tower's positions), so a text's embedding does not depend on the batch it
is in. Results are returned on the CPU, as float32.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from torch import Tensor

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_dir, default_permissions

# Folder layout (what ``save_pretrained`` of each part writes)
CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

# Words the world's regional captions use ("a small red circle moving left", "... staying still"): always in the
# world CLIP's vocabulary, whatever vocabulary it is built from.
REGIONAL_WORDS = ("a", "an", "moving", "staying", "still", "and", "to", "the", ",")

# What loading a damaged part raises: transformers' and torch's errors and safetensors' own (not an OSError).
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, EOFError, SafetensorError)

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _one_line(exc: BaseException, limit: int = 200) -> str:
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def _image_processor_class():
    """``CLIPImageProcessor``'s PIL backend where transformers splits backends (5.x: the default class needs
    torchvision and falls back to PIL with a warning); ``CLIPImageProcessor`` elsewhere. Both read and write the
    same ``preprocessor_config.json``."""
    import transformers

    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


class ClipEmbedder:
    """A CLIP as an image and text embedder (see the module doc). Build one with :meth:`from_pretrained` or
    :func:`build_world_clip`; ``batch_size`` is the number of images or texts per forward pass."""

    def __init__(self, model, tokenizer, processor, path: str | os.PathLike | None = None, batch_size: int = 256):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.processor = processor
        self.path = None if path is None else str(path)
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.batch_size = batch_size
        text_config = model.config.text_config
        self.max_length = int(min(tokenizer.model_max_length, text_config.max_position_embeddings))
        self.eos_token_id = text_config.eos_token_id

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        batch_size: int = 256) -> ClipEmbedder:
        """A CLIP folder (``config.json`` of a ``CLIPModel``, its weights, a tokenizer, ``preprocessor_config.json``)
        on ``device``, float32, eval mode. A missing folder, a missing part or weights that do not load (corrupt,
        truncated, of other shapes, non-finite) is an :class:`AnyframeInputError` naming the folder."""
        with _quiet_transformers():
            return cls._load(Path(path), device, batch_size)

    @classmethod
    def _load(cls, folder: Path, device, batch_size: int) -> ClipEmbedder:
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        if not folder.exists():
            raise AnyframeInputError(f"CLIP folder not found: {folder}")
        if not folder.is_dir():
            raise AnyframeInputError(f"CLIP folder {folder} is a file; give the model folder")
        if not (folder / CONFIG_FILE).is_file():
            raise AnyframeInputError(f"{folder}: not a CLIP folder (no {CONFIG_FILE})")
        try:
            config = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise AnyframeInputError(f"{folder}: cannot read {CONFIG_FILE} ({_one_line(exc)})") from None
        if getattr(config, "model_type", None) != "clip":
            raise AnyframeInputError(f"{folder}: {CONFIG_FILE} is not a CLIP config (model_type "
                                     f"{getattr(config, 'model_type', None)!r})")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise AnyframeInputError(f"{folder}: no CLIP weights (expected {WEIGHT_FILES[0]})")
        if not (folder / PROCESSOR_FILE).is_file():
            raise AnyframeInputError(f"{folder}: no image processor ({PROCESSOR_FILE})")
        try:
            model, info = CLIPModel.from_pretrained(str(folder), config=config, local_files_only=True,
                                                    output_loading_info=True)
        except LOAD_ERRORS as exc:
            raise AnyframeInputError(f"{folder}: cannot load the CLIP weights ({_one_line(exc)})") from None
        problems = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
        if problems:
            what = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, list(v)[:3]))}"
                             + (" …" if len(v) > 3 else "") for k, v in problems.items())
            raise AnyframeInputError(f"{folder}: the CLIP weights do not match its config ({what})")
        model = model.float().eval()
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise AnyframeInputError(f"{folder}: the CLIP weights hold non-finite values (NaN or inf)")
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            # (transformers 5 would build an empty CLIP tokenizer from config.json alone, silently)
            raise AnyframeInputError(f"{folder}: no tokenizer (expected tokenizer.json, or vocab.json + merges.txt)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except LOAD_ERRORS as exc:
            raise AnyframeInputError(f"{folder}: cannot load the tokenizer ({_one_line(exc)})") from None
        try:
            processor = _image_processor_class().from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise AnyframeInputError(f"{folder}: cannot load the image processor ({_one_line(exc)})") from None
        if len(tokenizer) > config.text_config.vocab_size:
            raise AnyframeInputError(f"{folder}: the tokenizer has {len(tokenizer)} tokens, more than the text "
                                     f"tower's vocabulary ({config.text_config.vocab_size})")
        return cls(model.to(device), tokenizer, processor, path=folder, batch_size=batch_size)

    def save_pretrained(self, path: str | os.PathLike, dtype: str | None = None,
                        extra_files: dict[str, str] | None = None) -> Path:
        """Write model (safetensors), tokenizer and processor to ``path`` atomically: into a temporary sibling
        folder renamed onto ``path`` when complete (an existing folder is replaced). ``dtype``: the weights'
        storage type (``float16`` / ``bfloat16`` halve the folder; :meth:`from_pretrained` loads them back as
        float32); default: as they are. ``extra_files``: more text files (name → content), e.g. a model card."""
        with atomic_dir(path) as tmp:
            self.write(tmp, dtype=dtype)
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
        self.path = str(path)
        return Path(path)

    def write(self, folder: str | os.PathLike, dtype: str | None = None) -> None:
        """Write the model, tokenizer and processor files into the existing ``folder`` (not atomic: callers that
        assemble a folder of their own inside :func:`anyframe.io.atomic_dir`; :meth:`save_pretrained` otherwise)."""
        if dtype is not None and dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
        with _quiet_transformers():
            state = self.model.state_dict()
            if dtype is not None:
                state = {k: v.to(STORAGE_DTYPES[dtype]) if v.is_floating_point() else v for k, v in state.items()}
            state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
            self.model.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder))
            self.processor.save_pretrained(str(folder))
        for f in Path(folder).iterdir():  # (safetensors writes its file 0600: give it a plain file's permissions)
            if f.is_file():
                default_permissions(f)

    # ------------------------------------------------------------------------------------- properties

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        """The embedding size (the projection dimension)."""
        return int(self.model.config.projection_dim)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # ------------------------------------------------------------------------------------- inputs

    def pixel_values(self, frames) -> Tensor:
        """uint8 frames ``[N, H, W, 3]`` (numpy or torch) → the vision tower's input ``[N, 3, S, S]`` float32,
        by the folder's image processor. Frames already at the processor's crop size with a no-op resize (world
        frames through the world CLIP) take a tensor path that gives the same values without PIL."""
        arr = _as_uint8_frames(frames)
        fast = self._fast_normalisation(arr.shape[1], arr.shape[2])
        if fast is not None:
            mean, std, scale = fast
            x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
            return (x * scale - mean) / std
        if len(arr) == 0:
            return torch.zeros(0, 3, self.image_size, self.image_size)
        out = self.processor(images=list(arr), return_tensors="pt")
        return out["pixel_values"].float()

    def _fast_normalisation(self, h: int, w: int):
        p = self.processor
        size = getattr(p, "size", None) or {}
        crop = getattr(p, "crop_size", None) or {}
        resize_noop = not getattr(p, "do_resize", True) or (
            h == w and (size.get("shortest_edge") == h or (size.get("height"), size.get("width")) == (h, w)))
        crop_noop = not getattr(p, "do_center_crop", False) or (crop.get("height"), crop.get("width")) == (h, w)
        if not (resize_noop and crop_noop and getattr(p, "do_rescale", True) and getattr(p, "do_normalize", True)):
            return None
        mean = torch.tensor(p.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(p.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        return mean, std, float(p.rescale_factor)

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` ``[N, L]``, padded to the fixed length ``self.max_length``."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise AnyframeInputError("texts must be a list of strings")
        tokens = self.tokenizer(list(texts), padding="max_length", max_length=self.max_length, truncation=True,
                                return_attention_mask=True, return_tensors="pt")
        ids = tokens["input_ids"]
        if self.eos_token_id is not None and self.eos_token_id != 2 and len(ids):
            has_eos = (ids == self.eos_token_id).any(1)
            if not bool(has_eos.all()):
                raise ValueError(f"the tokenizer did not end every text with the text tower's eos token "
                                 f"(id {self.eos_token_id}), where CLIP pools")
        return {"input_ids": ids, "attention_mask": tokens["attention_mask"]}

    # --------------------------------------------------------------------------------------- embeddings

    def image_features(self, pixel_values: Tensor) -> Tensor:
        """Projected (not normalised) image features, with gradients if enabled: for training."""
        pooled = self.model.vision_model(pixel_values=pixel_values).pooler_output
        return self.model.visual_projection(pooled)

    def text_features(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Projected (not normalised) text features pooled at the eos token, with gradients if enabled."""
        pooled = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return self.model.text_projection(pooled)

    @torch.no_grad()
    def embed_images(self, frames) -> Tensor:
        """uint8 frames ``[N, H, W, 3]`` (numpy or torch) → float32 ``[N, D]``, L2-normalised, on the CPU."""
        arr = _as_uint8_frames(frames)
        out = []
        with _eval(self.model):
            for start in range(0, len(arr), self.batch_size):
                pixels = self.pixel_values(arr[start : start + self.batch_size]).to(self.device)
                out.append(_normalise(self.image_features(pixels)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """Texts → float32 ``[N, D]``, L2-normalised, on the CPU (pooled at each text's first eos token)."""
        texts = list(texts) if not isinstance(texts, str) else texts
        out = []
        with _eval(self.model):
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenize(texts[start : start + self.batch_size])
                feats = self.text_features(tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))
                out.append(_normalise(feats).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def score(self, frames, texts: Sequence[str]) -> Tensor:
        """Per-pair cosine similarity ``[N]`` of frame i and text i, in [−1, 1]. This is the CLIP score *without*
        the conventional ``100 ×`` (and without clipping at 0): multiply by 100 to compare with CLIP-score tables."""
        arr = _as_uint8_frames(frames)
        if isinstance(texts, str) or len(texts) != len(arr):
            raise AnyframeInputError(f"score needs one text per frame: {len(arr)} frames, "
                                     f"{1 if isinstance(texts, str) else len(texts)} texts")
        return (self.embed_images(arr) * self.embed_texts(texts)).sum(-1)


# ============================================================================================ world CLIP


def build_world_clip(
    vocabulary: Iterable[str] | None = None,
    image_size: int = 32,
    patch_size: int = 4,
    width: int = 128,
    layers: int = 4,
    heads: int = 4,
    text_width: int = 128,
    text_layers: int = 3,
    text_heads: int = 4,
    projection_dim: int = 128,
    max_length: int = 96,
    seed: int = 0,
    batch_size: int = 256,
) -> ClipEmbedder:
    """A randomly initialised (``seed``) small CLIP for shapes-world frames and captions.

    Tokenizer: :func:`~anyframe.models.text_encoder.build_word_tokenizer` over ``vocabulary`` (default: the
    world's, :func:`anyframe.world.world_vocabulary`) and :data:`REGIONAL_WORDS`; ``</s>`` (id 1) ends every
    text and the text tower pools there (``eos_token_id`` = the tokenizer's, ``pad_token_id`` = 0).
    ``max_length`` (tokens, ``</s>`` included): the world's longest captions are about 81 tokens, so 96 keeps
    every caption whole. Processor: resize the short side to ``image_size`` and centre-crop ``image_size`` — a
    no-op on world frames of that size."""
    from transformers import CLIPConfig, CLIPModel

    from anyframe.models.text_encoder import build_word_tokenizer

    if vocabulary is None:
        from anyframe.world import world_vocabulary

        vocabulary = world_vocabulary()
    for name, value in (("image_size", image_size), ("patch_size", patch_size), ("width", width), ("layers", layers),
                        ("heads", heads), ("text_width", text_width), ("text_layers", text_layers),
                        ("text_heads", text_heads), ("projection_dim", projection_dim), ("max_length", max_length)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    if width % heads or text_width % text_heads:
        raise ValueError("width and text_width must be multiples of their head counts")
    tokenizer = build_word_tokenizer([*vocabulary, *REGIONAL_WORDS], max_length=max_length)
    text_config = dict(
        vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
        num_hidden_layers=text_layers, num_attention_heads=text_heads, max_position_embeddings=max_length,
        hidden_act="gelu", pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,  # (no bos token: CLIP never reads it; a valid id, not 49406)
        projection_dim=projection_dim,
    )
    vision_config = dict(
        image_size=image_size, patch_size=patch_size, hidden_size=width, intermediate_size=4 * width,
        num_hidden_layers=layers, num_attention_heads=heads, hidden_act="gelu", num_channels=3,
        projection_dim=projection_dim,
    )
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).float().eval()
    processor = _image_processor_class()(
        do_resize=True, size={"shortest_edge": image_size}, do_center_crop=True,
        crop_size={"height": image_size, "width": image_size}, do_rescale=True, do_normalize=True,
        do_convert_rgb=True,
    )
    return ClipEmbedder(model, tokenizer, processor, batch_size=batch_size)


def folder_size(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def describe(embedder: ClipEmbedder) -> dict:
    """A JSON-able summary of the model's shape (for model cards and logs)."""
    c = embedder.model.config
    return dict(
        parameters=embedder.num_parameters(), projection_dim=c.projection_dim,
        vision=dict(image_size=c.vision_config.image_size, patch_size=c.vision_config.patch_size,
                    width=c.vision_config.hidden_size, layers=c.vision_config.num_hidden_layers,
                    heads=c.vision_config.num_attention_heads),
        text=dict(vocab_size=c.text_config.vocab_size, width=c.text_config.hidden_size,
                  layers=c.text_config.num_hidden_layers, heads=c.text_config.num_attention_heads,
                  max_length=embedder.max_length, eos_token_id=c.text_config.eos_token_id),
        logit_scale=round(math.exp(embedder.model.logit_scale.item()), 3),
    )


# ============================================================================================== helpers


def _as_uint8_frames(frames) -> np.ndarray:
    if isinstance(frames, Tensor):
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise AnyframeInputError(f"frames must be uint8 [N, H, W, 3], got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        raise AnyframeInputError(f"frames must be uint8 [N, H, W, 3] (0..255), got {arr.dtype}")
    return arr


def _normalise(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


@contextlib.contextmanager
def _eval(model):
    """Eval mode for the block, restoring the model's mode after (an embedder used mid-training)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' loading/saving progress bars and info logs off for the block, then as they were."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


__all__ = ["ClipEmbedder", "build_world_clip", "describe", "folder_size", "REGIONAL_WORDS"]
