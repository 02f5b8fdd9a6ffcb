"""The latent cache: encode a dataset once (autoencoder + text encoder), then train from the latents.

A cache is a folder::

    index.json                per item: shard, row, caption, meta; per shard: shapes; the fingerprint
    shard-00000.safetensors   latents [N, C, T, h, w] float32, text_embeds [N, L, D] float32, text_mask [N, L] bool
    ...
    null_text.safetensors     the empty prompt's embeds [1, L, D] and mask [1, L] (for text dropout)

All rows of a shard have one shape (a shard ends where the dataset's bucket changes), so a shard's
latent shape is its items' bucket. The ``fingerprint`` hashes the encoders' weights and the tokenizer,
so a cache read with other encoders is refused rather than silently training on mismatched latents.

The cache stores what the dataset returned for epoch 0: random crops are frozen. Cache a dataset with
centre crops, or accept one fixed augmentation per clip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Hashable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from anyframe.data.base import LatentSample, VideoSample, bucket_of
from anyframe.errors import AnyframeInputError
from anyframe.io import default_permissions
from anyframe.models.autoencoder import encode_video
from anyframe.models.text_encoder import TextCondition, encode_prompts

CACHE_VERSION = 1
INDEX_FILE, NULL_TEXT_FILE = "index.json", "null_text.safetensors"


# --------------------------------------------------------------------------------- fingerprint


def _hash_module(digest: hashlib._Hash, module: nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        # Raw bytes via a uint8 view: works for every dtype, bfloat16 included (numpy has none).
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def encoders_fingerprint(vae: nn.Module, tokenizer: PreTrainedTokenizerBase, text_encoder: nn.Module,
                         text_padding: str = "masked", text_max_length: int | None = None) -> str:
    """sha256 over the autoencoder's and text encoder's weights (names, dtypes, shapes, bytes), the
    autoencoder's latent normalisation, the tokenizer's vocabulary and length, and how prompts are padded
    (a backbone's convention, see ``encode_prompts``).

    The latent normalisation (``scaling_factor``, ``shift_factor``) is config, not a weight, but it
    changes every cached latent, so it is hashed too.
    """
    digest = hashlib.sha256()
    digest.update(b"vae;")
    _hash_module(digest, vae)
    config = getattr(vae, "config", {})
    norm = {k: config.get(k) for k in ("scaling_factor", "shift_factor")} if hasattr(config, "get") else {}
    for k in ("latents_mean", "latents_std"):  # Wan's per-channel normalisation (absent: unhashed, as before)
        if hasattr(config, "get") and config.get(k) is not None:
            norm[k] = list(config.get(k))
    digest.update(json.dumps(norm, sort_keys=True).encode())
    digest.update(b"text_encoder;")
    _hash_module(digest, text_encoder)
    digest.update(b"tokenizer;")
    tok = {"vocab": sorted(tokenizer.get_vocab().items()), "max_length": tokenizer.model_max_length}
    digest.update(json.dumps(tok).encode())
    if (text_padding, text_max_length) != ("masked", None):  # (older caches: the default, unhashed)
        digest.update(json.dumps({"padding": text_padding, "length": text_max_length}).encode())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- building


def _jsonable(meta: dict) -> dict:
    """The entries of ``meta`` that JSON can hold (paths become strings; tensors, arrays... are dropped)."""
    out = {}
    for key, value in meta.items():
        value = os.fspath(value) if isinstance(value, os.PathLike) else value
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


def _batches(dataset, batch_size: int) -> Iterator[tuple[Hashable, list[VideoSample]]]:
    """Consecutive items in index order, cut at ``batch_size`` and wherever the bucket (or, for a
    dataset without buckets, the clip shape) changes, so every batch stacks."""
    key, batch = None, []
    for index in range(len(dataset)):
        sample = dataset[index]
        sample_key = (bucket_of(dataset, index), tuple(sample.video.shape))
        if batch and (sample_key != key or len(batch) == batch_size):
            yield key, batch
            batch = []
        key = sample_key
        batch.append(sample)
    if batch:
        yield key, batch


class _ShardWriter:
    """Collects encoded rows and writes a shard when it is full or the bucket changes."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder, self.shard_size = folder, shard_size
        self.key: Hashable = None
        self.rows: dict[str, list[Tensor]] = {"latents": [], "text_embeds": [], "text_mask": []}
        self.shards: list[dict] = []
        self.items: list[dict] = []

    def add(self, key: Hashable, latents: Tensor, text: TextCondition, samples: list[VideoSample]) -> None:
        for i, sample in enumerate(samples):
            if self.rows["latents"] and (key != self.key or len(self.rows["latents"]) == self.shard_size):
                self.flush()
            self.key = key
            self.rows["latents"].append(latents[i])
            self.rows["text_embeds"].append(text.embeds[i])
            self.rows["text_mask"].append(text.mask[i])
            self.items.append(
                {
                    "shard": len(self.shards),
                    "row": len(self.rows["latents"]) - 1,
                    "caption": sample.caption,
                    "meta": _jsonable(sample.meta),
                }
            )

    def flush(self) -> None:
        if not self.rows["latents"]:
            return
        name = f"shard-{len(self.shards):05d}.safetensors"
        tensors = {k: torch.stack(v).contiguous() for k, v in self.rows.items()}
        save_file(tensors, self.folder / name)
        self.shards.append(
            {
                "file": name,
                "rows": len(tensors["latents"]),
                "latent_shape": list(tensors["latents"].shape[1:]),
                "text_shape": list(tensors["text_embeds"].shape[1:]),
            }
        )
        self.rows = {k: [] for k in self.rows}


@torch.no_grad()
def _encode(
    vae: nn.Module, tokenizer: PreTrainedTokenizerBase, text_encoder: nn.Module, samples: list[VideoSample],
    text: dict,
) -> tuple[Tensor, TextCondition]:
    """Samples → latents ``[B, C, T, h, w]`` float32 and their captions' encoding, on the CPU."""
    video = torch.stack([s.video for s in samples]).permute(0, 2, 1, 3, 4)  # [B, T, 3, H, W] → [B, 3, T, H, W]
    latents = encode_video(vae, video.to(vae.device)).float().cpu()
    text = encode_prompts(tokenizer, text_encoder, [s.caption for s in samples], **text)
    return latents, TextCondition(text.embeds.float().cpu(), text.mask.bool().cpu())


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` onto ``dst``. ``os.replace`` cannot replace a non-empty folder, so an
    existing ``dst`` is first renamed aside (and restored if the move fails), then deleted."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
    os.replace(dst, old / dst.name)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old / dst.name, dst)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def build_latent_cache(
    dataset,
    vae: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: nn.Module,
    out_dir: str | os.PathLike,
    shard_size: int = 256,
    batch_size: int = 8,
    overwrite: bool = False,
    text_padding: str = "masked",
    text_max_length: int | None = None,
    source: dict | None = None,
) -> Path:
    """Encode every item of ``dataset`` (in index order) into a latent cache at ``out_dir``.

    ``dataset`` yields :class:`VideoSample` (``video [T, 3, H, W]``); items are batched within a
    bucket. The encoders should be in eval mode (the world's encoders have no dropout, but others
    may). The cache is built in a hidden sibling folder and moved onto ``out_dir`` only when complete,
    so a failure leaves neither a partial cache nor the temporary folder. An existing ``out_dir`` is
    an error unless ``overwrite``. ``text_padding`` / ``text_max_length``: the backbone's text convention
    (``encode_prompts``). ``source``: what the dataset is (a JSON-able dict, e.g. its config and seed), kept in
    the index so that a reader can refuse a cache of other data (``LatentCacheDataset(expected_source=...)``).
    """
    text = {"padding": text_padding, "max_length": text_max_length}
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be ≥ 1, got {shard_size}, {batch_size}")
    if len(dataset) == 0:
        raise AnyframeInputError("cannot cache an empty dataset")
    out_dir = Path(out_dir)
    if out_dir.exists() and not (overwrite and out_dir.is_dir()):
        raise AnyframeInputError(f"{out_dir} already exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        default_permissions(tmp, directory=True)
        writer = _ShardWriter(tmp, shard_size)
        for key, samples in _batches(dataset, batch_size):
            latents, captions = _encode(vae, tokenizer, text_encoder, samples, text)
            writer.add(key, latents, captions, samples)
        writer.flush()
        null = encode_prompts(tokenizer, text_encoder, [""], **text)
        null_tensors = {"embeds": null.embeds.float().cpu().contiguous(), "mask": null.mask.bool().cpu()}
        save_file(null_tensors, tmp / NULL_TEXT_FILE)
        index = {
            "version": CACHE_VERSION,
            "fingerprint": encoders_fingerprint(vae, tokenizer, text_encoder, text_padding, text_max_length),
            "source": source,
            "shards": writer.shards,
            "items": writer.items,
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1), encoding="utf-8")
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful move
    return out_dir


# ------------------------------------------------------------------------------------- reading


def _differing_keys(a: dict, b: dict, prefix: str = "") -> Iterator[str]:
    """Dotted keys whose values differ between two nested dicts."""
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            yield from _differing_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            yield f"{prefix}{key}"


class LatentCacheDataset:
    """A latent cache as a dataset of :class:`LatentSample`; ``bucket(index)`` is the latent shape.

    Shards are opened lazily with ``safe_open`` (memory-mapped) and only the requested row is read.
    Give ``expected_fingerprint`` (from :func:`encoders_fingerprint`) to refuse a cache built with
    other encoders, and ``expected_source`` to refuse one built from other data (the ``source`` it was built
    with; a cache that recorded none is accepted).
    """

    def __init__(self, path: str | os.PathLike, expected_fingerprint: str | None = None,
                 expected_source: dict | None = None):
        self.path = Path(path)
        index_path = self.path / INDEX_FILE
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            self.fingerprint: str = index["fingerprint"]
            self._shards: list[dict] = index["shards"]
            self._items: list[dict] = index["items"]
            version = index["version"]
        except FileNotFoundError:
            raise AnyframeInputError(f"not a latent cache (no {INDEX_FILE}): {self.path}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnyframeInputError(f"corrupt latent cache index {index_path}: {exc!r}") from None
        if version != CACHE_VERSION:
            raise AnyframeInputError(f"latent cache {self.path} has version {version}, expected {CACHE_VERSION}")
        if expected_fingerprint is not None and expected_fingerprint != self.fingerprint:
            raise AnyframeInputError(
                f"latent cache {self.path} was built with different encoders (fingerprint mismatch): rebuild it"
            )
        recorded = index.get("source")
        if expected_source is not None and recorded is not None and recorded != expected_source:
            differ = sorted(_differing_keys(recorded, expected_source))
            raise AnyframeInputError(
                f"latent cache {self.path} was built from other data ({', '.join(differ)} differ): "
                "rebuild it, or point data.cache_dir at a new folder"
            )
        missing = [s["file"] for s in self._shards if not (self.path / s["file"]).is_file()]
        missing += [] if (self.path / NULL_TEXT_FILE).is_file() else [NULL_TEXT_FILE]
        if missing:
            raise AnyframeInputError(f"latent cache {self.path} is missing {', '.join(missing)}")
        self._open: dict[int, object] = {}  # shard → safe_open handle
        self._null_text: TextCondition | None = None

    def __getstate__(self) -> dict:
        # Open safetensors handles do not pickle (DataLoader workers with spawn): reopen in the worker.
        return {**self.__dict__, "_open": {}}

    def __len__(self) -> int:
        return len(self._items)

    def _shard(self, shard: int):
        if shard not in self._open:
            self._open[shard] = safe_open(self.path / self._shards[shard]["file"], framework="pt")
        return self._open[shard]

    def bucket(self, index: int) -> tuple[int, ...]:
        """The item's latent shape ``(C, T, h, w)``."""
        return tuple(self._shards[self._items[index]["shard"]]["latent_shape"])

    def __getitem__(self, index: int) -> LatentSample:
        if not 0 <= index < len(self._items):
            raise IndexError(index)
        item = self._items[index]
        shard, row = self._shard(item["shard"]), item["row"]
        return LatentSample(
            latents=shard.get_slice("latents")[row],  # [C, T, h, w]
            text_embeds=shard.get_slice("text_embeds")[row],  # [L, D]
            text_mask=shard.get_slice("text_mask")[row].bool(),  # [L]
            caption=item["caption"],
            meta=dict(item["meta"]),
        )

    @property
    def null_text(self) -> TextCondition:
        """The empty prompt's encoding: embeds ``[1, L, D]``, mask ``[1, L]`` bool."""
        if self._null_text is None:
            with safe_open(self.path / NULL_TEXT_FILE, framework="pt") as f:
                self._null_text = TextCondition(f.get_tensor("embeds"), f.get_tensor("mask").bool())
        return self._null_text
