"""Conditional mutual information between a clip's regional captions given the clip (JDM §3.3, eq. 12).

JDM weighs its fine-grained loss by ``w' = w · exp(−α · Ī)``, where ``Ī`` estimates how much the clip's regional
captions tell about each other *given the clip*: ``I(y_i; y_j | x0)``. The estimate needs only an image–text
embedder (anything with ``embed_images`` / ``embed_texts``: :class:`ImageTextEmbedder`; the world CLIP of
``anyframe.models.clip``, or a real CLIP folder) and is precomputed once per dataset into a :class:`CMITable`.

For a clip ``x0`` with regional captions ``y_1 … y_K`` (K ≥ 2), ``e`` the unit-norm embeddings and ``e_x0`` the
embedding of the clip's *middle* frame:

- context-augmented similarity ``sim(y_i, y_j | x0) = cos([e_yi ; e_x0], [e_yj ; e_x0])``;
- negatives ``y_j^(1) … y_j^(M)``: one regional caption (a seeded draw) of each of the M clips whose middle-frame
  embeddings are ``x0``'s nearest neighbours by cosine (``x0`` itself excluded) — the "shuffle ``y_j`` across
  similar contexts" of the paper;
- per ordered pair (i, j), i ≠ j, the InfoNCE form of eq. 12::

      Î(y_i; y_j | x0) = s_pos / τ − log( (1/M) Σ_k exp(s_k / τ) ),
      s_pos = sim(y_i, y_j | x0),  s_k = sim(y_i, y_j^(k) | x0)

  (the paper writes a log-ratio of raw similarities; cosines can be ≤ 0, so the ratio is taken of
  ``exp(sim / τ)``, the critic of an InfoNCE bound). The negatives are shared by all pairs of a clip;
- ``Ī(x0)`` = the mean of ``Î`` over the clip's K(K−1) ordered pairs. A clip with fewer than two objects has no
  pairs: ``Ī = 0`` and ``has_pairs = False`` (``w' = w``).

Two properties to read the numbers by. With unit-norm embeddings ``|[e_y ; e_x0]|² = 2`` and
``sim(y_i, y_j | x0) = (1 + e_yi·e_yj) / 2``: the concatenated context shifts and halves the text cosine, so a
temperature τ on ``sim`` is 2τ on the text cosine, and the conditioning on ``x0`` acts through the choice of the
negatives (captions of clips that look like ``x0``). ``sim`` lies in [0, 1], so ``Î`` lies in ``[−1/τ, 1/τ]``;
it is ≈ 0 when ``y_j`` is no closer to ``y_i`` than captions of similar-looking clips are, and it can be
negative (then ``w' > w``: callers that need ``w' ≤ w`` clamp ``Ī`` at 0, :meth:`CMITable.weights`).

τ (default 0.1, as in InfoNCE-style critics on cosines such as CLIP's ≈ 0.07): with ``sim`` differences of a few
tenths between related and unrelated captions, τ = 0.1 maps them to a few nats, the range where ``exp(−α·Ī)``
with α = 1 (the paper's) spans (0, 1]. M (``negatives``; the paper uses 1024 on millions of videos): scale it
to the data — it must be below the number of clips with regional captions; 256 on 20,000 world clips.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from safetensors import SafetensorError
from torch import Tensor

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_path
from anyframe.progress import StageBars

FORMAT = "anyframe-cmi/1"
# The dataset attributes that fix which clips a dataset yields (WorldDataset's constructor, less num_clips):
# a table computed on one dataset applies to another only if all of these agree.
IDENTITY_FIELDS = ("split", "seed", "size", "frames", "num_objects", "duplicates", "paraphrase")


@runtime_checkable
class ImageTextEmbedder(Protocol):
    """What the estimator needs of an embedder: unit-norm float ``[N, D]`` embeddings of uint8 frames
    ``[N, H, W, 3]`` and of texts, in one space (:class:`anyframe.models.clip.ClipEmbedder` is one)."""

    def embed_images(self, frames) -> Tensor: ...

    def embed_texts(self, texts: Sequence[str]) -> Tensor: ...


def dataset_identity(dataset) -> dict:
    """The dataset's class name and the :data:`IDENTITY_FIELDS` it has (``WorldDataset``: all of them)."""
    identity = {"class": type(dataset).__name__}
    for name in IDENTITY_FIELDS:
        if hasattr(dataset, name):
            value = getattr(dataset, name)
            identity[name] = value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
    return identity


def context_cosine(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``cos([a ; c], [b ; c])`` over the last dimension, from dot products (never building the concatenations):
    ``(a·b + c·c) / sqrt((|a|² + |c|²)(|b|² + |c|²))``. Broadcasts like ``(a * b).sum(-1)``."""
    cc = (c * c).sum(-1)
    return ((a * b).sum(-1) + cc) / torch.sqrt(((a * a).sum(-1) + cc) * ((b * b).sum(-1) + cc))


# ================================================================================================ table


@dataclass
class CMITable:
    """Ī per clip of a dataset (index 0 … N−1), with how it was computed.

    ``values``: float32 ``[N]``; ``has_pairs``: bool ``[N]`` (False: fewer than two objects, ``Ī = 0``);
    ``pair_values`` (optional): float32 ``[P]``, every ordered pair's Î, clip after clip, pairs (i, j) in
    row-major order with i ≠ j, clip n's at ``pair_values[pair_offsets[n] : pair_offsets[n + 1]]``;
    ``meta``: the dataset's identity, the embedder, M, τ, the seed."""

    values: Tensor
    has_pairs: Tensor
    meta: dict = field(default_factory=dict)
    pair_values: Tensor | None = None
    pair_offsets: Tensor | None = None

    def __post_init__(self):
        self.values = torch.as_tensor(self.values, dtype=torch.float32)
        self.has_pairs = torch.as_tensor(self.has_pairs, dtype=torch.bool)
        if self.values.ndim != 1 or self.has_pairs.shape != self.values.shape:
            raise ValueError("values and has_pairs must be [N] tensors of one length")
        if (self.pair_values is None) != (self.pair_offsets is None):
            raise ValueError("pair_values and pair_offsets come together")
        if self.pair_values is not None:
            self.pair_values = torch.as_tensor(self.pair_values, dtype=torch.float32)
            self.pair_offsets = torch.as_tensor(self.pair_offsets, dtype=torch.int64)
            if self.pair_offsets.shape != (len(self.values) + 1,) or int(self.pair_offsets[-1]) != len(self.pair_values):
                raise ValueError("pair_offsets must be [N + 1], ending at len(pair_values)")

    def __len__(self) -> int:
        return len(self.values)

    def value(self, index: int) -> float:
        """Ī of clip ``index`` (0 for a clip without pairs)."""
        if not 0 <= index < len(self.values):
            raise AnyframeInputError(f"clip {index} is outside the CMI table (clips 0…{len(self.values) - 1})")
        return float(self.values[index])

    def pairs(self, index: int) -> Tensor:
        """Clip ``index``'s per-pair Î (see the class doc); empty without pairs."""
        if self.pair_values is None:
            raise ValueError("this table was saved without its per-pair values")
        return self.pair_values[int(self.pair_offsets[index]) : int(self.pair_offsets[index + 1])]

    def weights(self, w: float = 1.0, alpha: float = 1.0, clamp: bool = False) -> Tensor:
        """JDM's ``w' = w · exp(−α · Ī)`` per clip; ``clamp``: with Ī clamped at 0 first, so ``w' ≤ w``."""
        values = self.values.clamp_min(0) if clamp else self.values
        return w * torch.exp(-alpha * values)

    # ------------------------------------------------------------------------------------------ checks

    def check_dataset(self, dataset) -> None:
        """Refuse (:class:`AnyframeInputError`) a dataset this table was not computed on: another identity
        (split, seed, size, …: :func:`dataset_identity`) or more clips than the table holds."""
        recorded = self.meta.get("dataset", {})
        current = dataset_identity(dataset)
        differ = [f"{k} {recorded.get(k)!r} ≠ {current.get(k)!r}" for k in sorted(set(recorded) | set(current))
                  if recorded.get(k) != current.get(k)]
        if differ:
            raise AnyframeInputError(f"the CMI table was computed on another dataset: {'; '.join(differ)} "
                                     f"(table vs dataset)")
        if len(dataset) > len(self.values):
            raise AnyframeInputError(f"the dataset has {len(dataset)} clips but the CMI table only {len(self.values)}: "
                                     f"clips {len(self.values)}… have no value")

    # -------------------------------------------------------------------------------------- save / load

    def save(self, path: str | os.PathLike) -> Path:
        """safetensors (tensors ``values``, ``has_pairs`` and, if present, ``pair_values``, ``pair_offsets``) with
        ``meta`` as a JSON string in the header's metadata; written atomically."""
        from safetensors.torch import save_file

        tensors = {"values": self.values.contiguous(), "has_pairs": self.has_pairs.to(torch.uint8).contiguous()}
        if self.pair_values is not None:
            tensors.update(pair_values=self.pair_values.contiguous(), pair_offsets=self.pair_offsets.contiguous())
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "meta": json.dumps(self.meta, sort_keys=True)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CMITable:
        """A table :meth:`save` wrote; a missing, corrupt or foreign file is an :class:`AnyframeInputError`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise AnyframeInputError(f"CMI table not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:  # a damaged header or body
            raise AnyframeInputError(f"cannot read CMI table {path}: {' '.join(str(exc).split())[:200]}") from None
        if metadata.get("format") != FORMAT or "values" not in tensors or "has_pairs" not in tensors:
            raise AnyframeInputError(f"{path} is not a CMI table (no {FORMAT} values)")
        try:
            meta = json.loads(metadata.get("meta", "{}"))
            return cls(values=tensors["values"], has_pairs=tensors["has_pairs"].bool(), meta=meta,
                       pair_values=tensors.get("pair_values"), pair_offsets=tensors.get("pair_offsets"))
        except (ValueError, TypeError) as exc:
            raise AnyframeInputError(f"CMI table {path} is inconsistent: {exc}") from None

    # ------------------------------------------------------------------------------------------ report

    def summary(self, w: float = 1.0, alpha: float = 1.0) -> dict:
        """Mean, median, quantiles of Ī over the clips with pairs; the share of clips with pairs and of negative
        Ī; the weights ``w' = w·exp(−α·Ī)`` (raw, and with Ī clamped at 0) over the clips with pairs and over all."""
        n = len(self.values)
        paired = self.values[self.has_pairs].double()
        qs = (0.05, 0.25, 0.5, 0.75, 0.95)

        def stats(x: Tensor) -> dict:
            if not len(x):
                return {}
            out = dict(mean=float(x.mean()), std=float(x.std()) if len(x) > 1 else 0.0, min=float(x.min()),
                       max=float(x.max()))
            out.update({f"q{round(q * 100):02d}": float(torch.quantile(x, q)) for q in qs})
            out["median"] = out["q50"]
            return out

        weights = self.weights(w, alpha).double()
        clamped = self.weights(w, alpha, clamp=True).double()
        return dict(
            num_clips=n,
            with_pairs=int(self.has_pairs.sum()),
            share_with_pairs=float(self.has_pairs.float().mean()) if n else 0.0,
            share_negative=float((paired < 0).double().mean()) if len(paired) else 0.0,
            cmi=stats(paired),
            cmi_mean_all_clips=float(self.values.double().mean()) if n else 0.0,
            weight=dict(w=w, alpha=alpha, with_pairs=stats(weights[self.has_pairs]),
                        mean_all_clips=float(weights.mean()) if n else 0.0,
                        clamped_with_pairs=stats(clamped[self.has_pairs]),
                        clamped_mean_all_clips=float(clamped.mean()) if n else 0.0),
            meta=self.meta,
        )


# ============================================================================================ estimator


def middle_frame(video: Tensor) -> np.ndarray:
    """A clip ``[T, 3, H, W]`` in [−1, 1] → its middle frame (index T // 2) as uint8 ``[H, W, 3]``."""
    frame = video[video.shape[0] // 2]
    return ((frame.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def estimate_cmi(
    embedder: ImageTextEmbedder,
    dataset,
    num_clips: int | None = None,
    negatives: int = 256,
    temperature: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 512,
    keep_pairs: bool = True,
) -> CMITable:
    """Ī for clips ``0 … num_clips − 1`` of ``dataset`` (default: all), by the module doc's estimator, with M =
    ``negatives`` nearest-neighbour negatives and τ = ``temperature``; ``seed`` draws each neighbour's caption.

    Each clip is read once (its middle frame and regional captions), every distinct caption is embedded once,
    the neighbours come from chunked matrix products. ``progress``: a rich progress bar on stderr."""
    n = len(dataset) if num_clips is None else num_clips
    if not 1 <= n <= len(dataset):
        raise AnyframeInputError(f"num_clips must be in 1…{len(dataset)} (the dataset's size), got {num_clips}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise AnyframeInputError(f"temperature must be a positive number, got {temperature}")
    if negatives < 1:
        raise AnyframeInputError(f"negatives must be at least 1, got {negatives}")
    started = time.perf_counter()
    with StageBars(progress) as bar:
        # 1. read the clips: middle frames (embedded chunk by chunk) and regional captions (deduplicated)
        caption_index: dict[str, int] = {}
        clip_captions: list[list[int]] = []
        image_chunks, frames = [], []
        task = bar.task("clips", n)
        for index in range(n):
            sample = dataset[index]
            if getattr(sample, "video", None) is None:
                raise AnyframeInputError(f"clip {index} has no pixels (video): the CMI estimate embeds the middle frame")
            frames.append(middle_frame(sample.video))
            regional = list(sample.regional_captions or [])
            clip_captions.append([caption_index.setdefault(c, len(caption_index)) for c in regional])
            if len(frames) == batch_size or index == n - 1:
                image_chunks.append(_unit(embedder.embed_images(np.stack(frames))))
                frames = []
            bar.advance(task)
        images = torch.cat(image_chunks)  # [N, D]
        # 2. every distinct caption once
        captions = list(caption_index)
        task = bar.task("captions", len(captions))
        text_chunks = []
        for start in range(0, len(captions), batch_size):
            chunk = captions[start : start + batch_size]
            text_chunks.append(_unit(embedder.embed_texts(chunk)))
            bar.advance(task, len(chunk))
        texts = torch.cat(text_chunks) if text_chunks else torch.zeros(0, images.shape[1])
        # 3. neighbours and Î, for the clips with pairs
        counts = torch.tensor([len(c) for c in clip_captions], dtype=torch.int64)
        flat = torch.tensor([i for c in clip_captions for i in c], dtype=torch.int64)
        offsets = torch.zeros(n + 1, dtype=torch.int64)
        offsets[1:] = counts.cumsum(0)
        paired = (counts >= 2).nonzero().flatten()
        pool = (counts >= 1).nonzero().flatten()  # clips with a caption to lend
        values = torch.zeros(n)
        pair_counts = counts * (counts - 1) * (counts >= 2)
        pair_offsets = torch.zeros(n + 1, dtype=torch.int64)
        pair_offsets[1:] = pair_counts.cumsum(0)
        pair_values = torch.zeros(int(pair_offsets[-1]))
        if len(paired):
            if negatives > len(pool) - 1:
                raise AnyframeInputError(
                    f"--negatives {negatives} needs more clips: only {len(pool)} of the {n} clips have regional "
                    f"captions, so a clip has at most {len(pool) - 1} neighbours (use fewer negatives or more clips)")
            rng = np.random.default_rng(seed)
            task = bar.task("CMI", len(paired))
            for start in range(0, len(paired), batch_size):
                rows = paired[start : start + batch_size]
                neighbours = _nearest(images, rows, pool, negatives)  # [B, M] clip indices
                draw = torch.from_numpy(rng.random(tuple(neighbours.shape)))
                pick = (draw * counts[neighbours].double()).floor().long().clamp_max(counts[neighbours] - 1)
                negative_texts = texts[flat[offsets[neighbours] + pick]]  # [B, M, D]
                chunk_pairs = _pair_values(texts, flat, offsets, counts, rows, images[rows], negative_texts,
                                           temperature)
                for row, clip in enumerate(rows.tolist()):
                    pv = chunk_pairs[row]
                    values[clip] = pv.mean()
                    pair_values[int(pair_offsets[clip]) : int(pair_offsets[clip + 1])] = pv
                bar.advance(task, len(rows))
    meta = dict(
        dataset=dataset_identity(dataset),
        num_clips=n,
        embedder=dict(cls=type(embedder).__name__, path=getattr(embedder, "path", None)),
        negatives=negatives,
        temperature=float(temperature),
        seed=seed,
        estimator="infonce, nearest-neighbour negatives, middle frame (JDM eq. 12)",
        distinct_captions=len(captions),
        seconds=round(time.perf_counter() - started, 1),
    )
    return CMITable(values=values, has_pairs=counts >= 2, meta=meta,
                    pair_values=pair_values if keep_pairs else None, pair_offsets=pair_offsets if keep_pairs else None)


def _unit(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(x).float(), dim=-1)


def _nearest(images: Tensor, rows: Tensor, pool: Tensor, k: int) -> Tensor:
    """For each clip of ``rows``, the ``k`` clips of ``pool`` (itself excluded) with the most similar middle
    frames (cosine of unit embeddings), most similar first → ``[len(rows), k]`` clip indices."""
    sims = images[rows] @ images[pool].T  # [B, P]
    sims[rows[:, None] == pool[None, :]] = -math.inf
    return pool[sims.topk(k, dim=1).indices]


def _pair_values(texts, flat, offsets, counts, rows, context, negative_texts, temperature) -> list[Tensor]:
    """Per clip of ``rows``: its ordered pairs' Î (row-major (i, j), i ≠ j) against the shared negatives."""
    k_max = int(counts[rows].max())
    b, d = len(rows), texts.shape[1]
    own = torch.zeros(b, k_max, d)
    valid = torch.zeros(b, k_max, dtype=torch.bool)
    for r, clip in enumerate(rows.tolist()):
        k = int(counts[clip])
        own[r, :k] = texts[flat[offsets[clip] : offsets[clip] + k]]
        valid[r, :k] = True
    # context_cosine from matrix products: cos([a;c],[b;c]) = (a·b + c·c) / sqrt((a·a + c·c)(b·b + c·c))
    cc = (context * context).sum(-1)[:, None, None]  # [B, 1, 1]
    own_sq = (own * own).sum(-1)  # [B, K]
    neg_sq = (negative_texts * negative_texts).sum(-1)  # [B, M]
    s_pos = (own @ own.transpose(1, 2) + cc) / torch.sqrt((own_sq[:, :, None] + cc) * (own_sq[:, None, :] + cc))
    s_neg = (own @ negative_texts.transpose(1, 2) + cc) / torch.sqrt(
        (own_sq[:, :, None] + cc) * (neg_sq[:, None, :] + cc))  # [B, K, M]
    m = negative_texts.shape[1]
    marginal = torch.logsumexp(s_neg / temperature, dim=-1) - math.log(m)  # [B, K]
    pmi = s_pos / temperature - marginal[:, :, None]  # [B, K(i), K(j)]
    out = []
    for r, clip in enumerate(rows.tolist()):
        k = int(counts[clip])
        block = pmi[r, :k, :k]
        out.append(block[~torch.eye(k, dtype=torch.bool)])  # row-major, diagonal out
    return out


__all__ = ["ImageTextEmbedder", "CMITable", "estimate_cmi", "context_cosine", "dataset_identity", "middle_frame",
           "IDENTITY_FIELDS"]
