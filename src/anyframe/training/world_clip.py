"""Contrastive training of the world CLIP (:func:`anyframe.models.clip.build_world_clip`) on shapes-world clips.

Training pairs come from ``WorldDataset(num_clips, split="train", seed=DATA_SEED)``: each clip lends
:data:`FRAMES_PER_CLIP` frames (its middle frame and random others) and its object masks. A pair is, half the
time, (a frame, the clip's caption), otherwise (the frame restricted to one object visible in it — every other
pixel set to the frame's median colour, i.e. its background —, that object's regional caption), so the text tower
embeds full and regional captions alike. A pair whose text is already in the batch falls back to the full
caption, so InfoNCE never has two identical texts as each other's negatives. Loss: the symmetric InfoNCE of
``CLIPModel(..., return_loss=True)`` with its learned logit scale (clamped at 100, as CLIP does), computed here
with the texts bucketed by length (:func:`contrastive_loss`; a test checks it equals ``CLIPModel``'s).

Held out: ``WorldDataset(256, split="train", seed=HELD_OUT_SEED)`` — the training distribution (the world has no
``val`` split: :data:`anyframe.world.SPLITS`), scenes no training clip, recipe or evaluation suite uses. Retrieval
accuracy: the 256 middle frames against the 256 captions, top-1 both ways (chance 1/256).

Data seeds: WorldDataset item i of seed s is scene ``s · 1,000,003 + i``: seeds 11 and 12 are scenes from 11 and
12 million on, apart from the recipes' data (seed 0: scenes 0…) and the suites' (1, 2 and 3 million on).
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anyframe.data.cmi import middle_frame
from anyframe.data.world import WorldDataset
from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_dir
from anyframe.models.clip import ClipEmbedder, build_world_clip, describe, folder_size
from anyframe.progress import progress_bar

DATA_SEED = 11
HELD_OUT_SEED = 12
FRAMES_PER_CLIP = 4
REGIONAL_SHARE = 0.5
MIN_VISIBLE_PIXELS = 4  # an object shows in a frame if its mask covers at least this many pixels
STORAGE_DTYPE = "float16"
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class ClipPool:
    """Rendered training clips: a few frames each, their object masks and captions."""

    frames: np.ndarray  # uint8 [N, F, H, W, 3]
    masks: list[np.ndarray]  # per clip: bool [K, F, H, W]
    captions: list[str]
    regional: list[list[str]]  # per clip: K regional captions

    def __len__(self) -> int:
        return len(self.captions)


def render_pool(num_clips: int, seed: int = DATA_SEED, frames_per_clip: int = FRAMES_PER_CLIP, size: int = 32,
                frames: int = 16, advance=None) -> ClipPool:
    """Clips 0…num_clips−1 of ``WorldDataset(num_clips, "train", size, frames, seed)``, each keeping its middle
    frame and ``frames_per_clip − 1`` others drawn by the clip's own generator (the same whatever ``num_clips``)."""
    dataset = WorldDataset(num_clips, split="train", size=size, frames=frames, seed=seed)
    kept, masks, captions, regional = [], [], [], []
    for i in range(num_clips):
        sample = dataset[i]
        t = sample.video.shape[0]
        middle = t // 2
        others = [f for f in range(t) if f != middle]
        rng = random.Random(f"world-clip-frames:{seed}:{i}")
        times = [middle, *sorted(rng.sample(others, min(frames_per_clip - 1, len(others))))]
        video = ((sample.video[times].float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        kept.append(video.permute(0, 2, 3, 1).numpy())
        masks.append(sample.masks[:, times].numpy() > 0.5)
        captions.append(sample.caption)
        regional.append(list(sample.regional_captions))
        if advance is not None:
            advance()
    return ClipPool(np.stack(kept), masks, captions, regional)


def regional_frame(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``frame`` uint8 [H, W, 3] with every pixel outside ``mask`` [H, W] set to the frame's median colour."""
    background = np.median(frame.reshape(-1, 3), axis=0).round().astype(np.uint8)
    return np.where(mask[..., None], frame, background[None, None, :])


def sample_pairs(pool: ClipPool, batch_size: int, rng: np.random.Generator,
                 regional_share: float = REGIONAL_SHARE) -> tuple[np.ndarray, list[str]]:
    """A batch of (image, text) pairs from ``batch_size`` distinct clips (see the module doc)."""
    if batch_size > len(pool):
        raise AnyframeInputError(f"batch size {batch_size} is more than the {len(pool)} training clips")
    clips = rng.choice(len(pool), size=batch_size, replace=False)
    images, texts, seen = [], [], set()
    for c in clips:
        f = int(rng.integers(pool.frames.shape[1]))
        frame, text = pool.frames[c, f], pool.captions[c]
        if rng.random() < regional_share and len(pool.regional[c]):
            visible = [k for k in range(len(pool.regional[c])) if pool.masks[c][k, f].sum() >= MIN_VISIBLE_PIXELS]
            if visible:
                k = visible[int(rng.integers(len(visible)))]
                if pool.regional[c][k] not in seen:
                    frame, text = regional_frame(frame, pool.masks[c][k, f]), pool.regional[c][k]
        images.append(frame)
        texts.append(text)
        seen.add(text)
    return np.stack(images), texts


def contrastive_loss(clip: ClipEmbedder, images: np.ndarray, texts: list[str], buckets: int = 4) -> Tensor:
    """CLIP's symmetric InfoNCE on aligned pairs (as ``CLIPModel(..., return_loss=True)`` computes it: unit-norm
    features, logits ``exp(logit_scale) · image · text``, the mean of the image→text and text→image
    cross-entropies). The texts go through the text tower in ``buckets`` groups of similar length, each padded
    to its own longest (regional captions are ~15 tokens, full ones up to ~80): the tower is causal and pools at
    ``</s>``, so padding after it changes nothing but the cost."""
    device = clip.device
    image_features = clip.image_features(clip.pixel_values(images).to(device))
    lengths = [len(ids) for ids in clip.tokenizer(texts, truncation=True, max_length=clip.max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    size = -(-len(texts) // max(1, buckets))
    text_features = [None] * len(texts)
    for start in range(0, len(order), size):
        group = order[start : start + size]
        tokens = clip.tokenizer([texts[i] for i in group], padding="longest", max_length=clip.max_length,
                                truncation=True, return_attention_mask=True, return_tensors="pt")
        feats = clip.text_features(tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
        for row, i in enumerate(group):
            text_features[i] = feats[row]
    image_features = torch.nn.functional.normalize(image_features, dim=-1)
    text_features = torch.nn.functional.normalize(torch.stack(text_features), dim=-1)
    logits = clip.model.logit_scale.exp() * image_features @ text_features.T  # [image, text]
    target = torch.arange(len(texts), device=logits.device)
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target)
                  + torch.nn.functional.cross_entropy(logits.T, target))


@torch.no_grad()
def retrieval_accuracy(clip: ClipEmbedder, num_clips: int = 256, seed: int = HELD_OUT_SEED) -> dict:
    """Top-1 (and top-5) retrieval among ``num_clips`` held-out clips: each caption → the middle frames
    (text→image), each middle frame → the captions (image→text); with the chance level 1/num_clips."""
    dataset = WorldDataset(num_clips, split="train", seed=seed)
    frames, captions = [], []
    for i in range(num_clips):
        sample = dataset[i]
        frames.append(middle_frame(sample.video))
        captions.append(sample.caption)
    sims = clip.embed_images(np.stack(frames)) @ clip.embed_texts(captions).T  # [image, text]
    target = torch.arange(num_clips)
    k = min(5, num_clips)
    return dict(
        clips=num_clips, dataset=f'WorldDataset({num_clips}, split="train", seed={seed})',
        text_to_image_top1=float((sims.argmax(0) == target).float().mean()),
        image_to_text_top1=float((sims.argmax(1) == target).float().mean()),
        text_to_image_top5=float((sims.T.topk(k, dim=1).indices == target[:, None]).any(1).float().mean()),
        image_to_text_top5=float((sims.topk(k, dim=1).indices == target[:, None]).any(1).float().mean()),
        chance_top1=1.0 / num_clips,
    )


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10 % at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _round_to_storage(clip: ClipEmbedder, dtype: str) -> None:
    """Round the weights through the storage dtype in place, so what is evaluated is what loads from disk."""
    storage = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    with torch.no_grad():
        for p in clip.model.parameters():
            p.copy_(p.to(storage).float())


def train_world_clip(
    out: str | Path | None,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    num_clips: int = 8000,
    progress: bool = True,
    model: dict | None = None,
    weight_decay: float = 0.1,
    warmup: int | None = None,
    eval_clips: int = 256,
    storage_dtype: str = STORAGE_DTYPE,
    data_seed: int = DATA_SEED,
    log_every: int = 25,
) -> dict:
    """Train a world CLIP (``model``: keyword arguments of :func:`build_world_clip`, e.g. ``width``, ``layers``)
    for ``steps`` AdamW steps of ``batch_size`` pairs from ``num_clips`` rendered clips; measure held-out retrieval
    on ``eval_clips`` clips; write ``out`` atomically (the model with weights in ``storage_dtype``, ``README.md``
    — the model card —, ``training.json``). A fixed ``seed`` gives the same weights on a CPU. ``out=None`` writes
    nothing (tests). Returns the numbers of the card, and ``clip``: the trained :class:`ClipEmbedder`."""
    if steps < 1 or batch_size < 2 or num_clips < batch_size:
        raise AnyframeInputError(f"need steps ≥ 1, batch size ≥ 2 and at least batch-size clips; got steps {steps}, "
                                 f"batch size {batch_size}, {num_clips} clips")
    if not (math.isfinite(lr) and lr > 0):
        raise AnyframeInputError(f"--lr must be a positive number, got {lr}")
    if eval_clips < 2:
        raise AnyframeInputError(f"held-out retrieval needs at least 2 clips, got {eval_clips}")
    started, cpu_started = time.perf_counter(), time.process_time()
    model_kwargs = dict(model or {})
    clip = build_world_clip(seed=seed, **model_kwargs)
    clip.model.train()
    decay = [p for n, p in clip.model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in clip.model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, min(steps // 10, 100)) if warmup is None else max(1, warmup)
    rng = np.random.default_rng(seed)
    losses: list[dict] = []
    with _TrainBar(progress, steps, num_clips) as bar:
        pool = render_pool(num_clips, seed=data_seed, advance=bar.render_advance)
        render_seconds = time.perf_counter() - started
        train_started = time.perf_counter()
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * _lr_factor(step, steps, warmup)
            images, texts = sample_pairs(pool, batch_size, rng)
            loss = contrastive_loss(clip, images, texts)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(clip.model.parameters(), 1.0)
            optimizer.step()
            with torch.no_grad():
                clip.model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RuntimeError(f"the contrastive loss is {value} at step {step + 1}")
            if step % log_every == 0 or step == steps - 1:
                losses.append(dict(step=step + 1, loss=round(value, 5), lr=optimizer.param_groups[0]["lr"],
                                   logit_scale=round(math.exp(clip.model.logit_scale.item()), 3)))
            bar.step(step + 1, value, (step + 1) / (time.perf_counter() - train_started))
    train_seconds = time.perf_counter() - train_started
    clip.model.eval()
    _round_to_storage(clip, storage_dtype)
    retrieval = retrieval_accuracy(clip, eval_clips)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result = dict(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, num_clips=num_clips, data_seed=data_seed,
        weight_decay=weight_decay, warmup=warmup, model=describe(clip), model_kwargs=model_kwargs,
        storage_dtype=storage_dtype, threads=torch.get_num_threads(), seconds=round(seconds, 1),
        cpu_seconds=round(cpu_seconds, 1),
        render_seconds=round(render_seconds, 1), train_seconds=round(train_seconds, 1),
        loss_first=losses[0]["loss"], loss_last=losses[-1]["loss"], losses=losses, retrieval=retrieval,
        torch=torch.__version__, machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        command=_command(out, steps, batch_size, lr, seed, num_clips),
    )
    if out is not None:
        out = Path(out)
        with atomic_dir(out) as tmp:
            clip.write(tmp, dtype=storage_dtype)
            result["size_bytes"] = folder_size(tmp) + 8192  # (+ an allowance for the card and the log below)
            (tmp / "training.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
            (tmp / "README.md").write_text(model_card(result), encoding="utf-8")
            result["size_bytes"] = folder_size(tmp)
        clip.path = str(out)
    result["clip"] = clip
    return result


def _command(out, steps, batch_size, lr, seed, num_clips) -> str:
    return (f"OMP_NUM_THREADS=1 anyframe clip train --out {out} --steps {steps} --batch-size {batch_size} "
            f"--lr {lr:g} --seed {seed} --num-clips {num_clips}")


def model_card(r: dict) -> str:
    m, ret = r["model"], r["retrieval"]
    v, t = m["vision"], m["text"]
    shown = r["losses"][:: max(1, len(r["losses"]) // 8)]
    shown += [x for x in r["losses"][-1:] if x is not shown[-1]]
    curve = " → ".join(f"{x['loss']:.3f} (step {x['step']})" for x in shown)
    minutes = r["seconds"] / 60
    return f"""# anyframe-world-clip

A small CLIP (image–text embedder) for the procedural shapes world, trained from scratch by
`anyframe.training.world_clip` (`anyframe clip train`). It embeds 32×32 world frames and world captions — full
captions and JDM's regional captions (`a small red circle moving left`) — into one {m['projection_dim']}-d space.
Uses: JDM's conditional-mutual-information loss weights (`anyframe clip cmi`, `anyframe.data.cmi`), a CLIP-score
metric (`anyframe clip score`), a feature source. It sees single frames: motion words ("moving left",
"quickly") are not visible in one frame, so its text embeddings carry them only as far as they co-occur with
what is.

```python
from anyframe.models.clip import ClipEmbedder
clip = ClipEmbedder.from_pretrained("checkpoints/anyframe-world-clip")
clip.embed_images(frames)   # uint8 [N, 32, 32, 3] → float32 [N, {m['projection_dim']}], unit norm
clip.embed_texts(["a small red circle moving left"])
clip.score(frames, texts)   # cosine per pair (CLIP score without the ×100)
```

## Model

- `transformers` `CLIPModel`, {m['parameters']:,} parameters; weights stored in {r['storage_dtype']} (loaded as float32);
  folder {r.get('size_bytes', 0) / 1e6:.2f} MB.
- Vision: ViT, {v['image_size']}×{v['image_size']} input, patch {v['patch_size']}, width {v['width']}, {v['layers']} layers, {v['heads']} heads.
- Text: causal transformer, width {t['width']}, {t['layers']} layers, {t['heads']} heads, up to {t['max_length']} tokens; the world's word-level
  tokenizer ({t['vocab_size']} tokens, `</s>` = id {t['eos_token_id']}, padding id 0), pooled at the first `</s>`.
- Image processor: `CLIPImageProcessor`, resize short side to {v['image_size']} + centre crop {v['image_size']} (a no-op on world frames), CLIP's mean/std.
- Learned logit scale: {m['logit_scale']} at the end of training (clamped at 100).

## Training

```bash
{r['command']}
```

- Data: `WorldDataset({r['num_clips']}, split="train", seed={r['data_seed']})` (scenes {r['data_seed']}·1,000,003 + i: none of the
  recipes' or evaluation suites' scenes), {FRAMES_PER_CLIP} frames per clip (the middle one and random others). Each pair:
  half (frame, caption), half (the frame with only one visible object kept, the rest set to the frame's median
  colour, and that object's regional caption). Symmetric InfoNCE, learned temperature.
- {r['steps']} steps × batch {r['batch_size']}; AdamW, lr {r['lr']:g} (warm-up {r['warmup']} steps, cosine to 10 %), weight decay {r['weight_decay']},
  betas (0.9, 0.98), gradient clipping 1.0; seed {r['seed']} (the same seed gives the same weights on a CPU).
- Budget: ≤ 15 minutes on one CPU thread (`OMP_NUM_THREADS=1`). This run: {r['cpu_seconds'] / 60:.1f} min of CPU time
  ({r['threads']} torch thread(s)), {minutes:.1f} min wall clock ({r['render_seconds']:.0f} s rendering clips, {r['train_seconds']:.0f} s training, the rest
  evaluation; wall time above CPU time is other processes sharing the machine), {r['machine']}, torch {r['torch']}.
- Loss (batch of {r['batch_size']}; chance level ln {r['batch_size']} = {math.log(r['batch_size']):.2f}): {curve}.
  Every logged step: `training.json`.

## Held-out retrieval

{ret['dataset']} — scenes no training clip has, from the training distribution (the world has no `val` split).
Middle frames against captions, among {ret['clips']} clips:

| | top-1 | top-5 |
|---|---|---|
| text → image | {ret['text_to_image_top1']:.3f} | {ret['text_to_image_top5']:.3f} |
| image → text | {ret['image_to_text_top1']:.3f} | {ret['image_to_text_top5']:.3f} |
| chance | {ret['chance_top1']:.4f} (1/{ret['clips']}) | {5 / ret['clips']:.4f} |
"""


class _TrainBar:
    """The project's training progress style (rich, on stderr): rendering, then steps with loss and steps/s."""

    def __init__(self, enabled: bool, steps: int, clips: int):
        self.enabled, self.steps, self.clips = enabled, steps, clips
        self._progress = None

    def __enter__(self):
        if self.enabled:
            self._progress = progress_bar("{task.fields[loss]}", "{task.fields[rate]}", stderr=True)
            self._progress.start()
            self._render = self._progress.add_task("render", total=self.clips, loss="", rate="")
            self._train = self._progress.add_task("train", total=self.steps, loss="loss -", rate="- steps/s",
                                                  start=False)  # (its clock starts after rendering)
        return self

    def render_advance(self) -> None:
        if self._progress is not None:
            self._progress.update(self._render, advance=1)

    def step(self, step: int, loss: float, rate: float) -> None:
        if self._progress is not None:
            if step == 1:
                self._progress.start_task(self._train)
            self._progress.update(self._train, completed=step, loss=f"loss {loss:.4f}", rate=f"{rate:.2f} steps/s")

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return False


__all__ = ["train_world_clip", "retrieval_accuracy", "render_pool", "sample_pairs", "regional_frame",
           "contrastive_loss", "model_card", "ClipPool", "DATA_SEED", "HELD_OUT_SEED"]
