"""Stage one of the world recipe: train the per-frame autoencoder on shapes-world frames.

    anyframe train-autoencoder --config configs/world-autoencoder.yaml [--resume latest] [--stop-after N]

A diffusers ``AutoencoderKL`` (:func:`anyframe.models.autoencoder.build_world_autoencoder`) learns to
reconstruct single frames of freshly rendered ``train``-split clips (the world renders ~1,000 clips/s, so
every batch is new data): loss ``MSE(x̂, x) + kl_weight · KL(q(z|x) ‖ N(0, I))`` on images in [−1, 1],
AdamW with warmup and cosine decay. The decoder is what keyframe fidelity rests on: a condition frame
comes back through ``decode(encode(x))``, so its PSNR bounds every keyframe PSNR the video model can
reach.

At the end the latent normalisation is measured on held-out frames and written into the autoencoder's
config (``shift_factor`` = mean, ``scaling_factor`` = 1 / std), then the autoencoder is saved
(safetensors, atomically) to ``OUTPUT/autoencoder`` with ``eval.json``: reconstruction PSNR per style
and on the held-out splits. Point a video recipe's ``model.vae`` at that folder.

Exactness: the data stream is a pure function of (seed, step) and the one CPU generator that draws
frames and posterior samples is checkpointed, so a resumed run continues the same curve bit for bit.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_dir, atomic_path
from anyframe.models.autoencoder import build_world_autoencoder
from anyframe.training.checkpoint import Checkpoint, load_resumable, remove_leftovers, save_checkpoint
from anyframe.training.config import OptimConfig, _Strict, config_differences
from anyframe.training.logging import MetricsLogger
from anyframe.training.optim import build_lr_schedule, build_optimizer
from anyframe.world import vocab
from anyframe.world.render import render
from anyframe.world.sampling import scene_for_seed


class AutoencoderDataConfig(_Strict):
    split: Literal["train", "ood_color_shape", "ood_background", "ood_style", "more_objects"] = "train"
    size: int = Field(32, ge=8)
    frames: int = Field(16, ge=1)  # clip length the frames are drawn from (motion, events, pans)
    frames_per_clip: int = Field(4, ge=1)  # frames taken from each rendered clip
    batch_size: int = Field(64, ge=1)  # frames per step


class AutoencoderTrainConfig(_Strict):
    steps: int = Field(2000, ge=1)
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(500, ge=0)
    keep_checkpoints: int = Field(2, ge=1)
    eval_frames: int = Field(512, ge=16)  # held-out frames for the latent statistics and the PSNR report


class AutoencoderRecipe(_Strict):
    """A YAML autoencoder recipe (``configs/world-autoencoder.yaml``)."""

    name: str = "autoencoder"
    seed: int = 0
    output_dir: str = "runs/world-autoencoder"
    size: Literal["tiny", "S"] = "S"
    kl_weight: float = Field(1e-6, ge=0)
    data: AutoencoderDataConfig = Field(default_factory=AutoencoderDataConfig)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=100, schedule="cosine"))
    train: AutoencoderTrainConfig = Field(default_factory=AutoencoderTrainConfig)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


RESUMABLE = {"train.steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
             "train.eval_frames", "output_dir", "name"}
HELD_OUT_SEED = 10_000_000  # eval scenes come from seeds far from the training stream


def world_frames(seeds: list[int], split: str, size: int, frames: int, per_clip: int, generator: torch.Generator,
                 style: str | None = None) -> torch.Tensor:
    """``[len(seeds) · per_clip, 3, size, size]`` in [−1, 1]: ``per_clip`` random frames of each seed's clip."""

    out = []
    for seed in seeds:
        scene = scene_for_seed(seed, split, size=size, frames=frames)
        if style is not None:
            scene = replace(scene, style=style)
        clip = render(scene).frames  # uint8 [T, H, W, 3]
        idx = torch.randint(0, clip.shape[0], (per_clip,), generator=generator).numpy()
        out.append(clip[idx])
    x = torch.from_numpy(np.concatenate(out)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def batch_at(cfg: AutoencoderRecipe, step: int, generator: torch.Generator) -> torch.Tensor:
    d = cfg.data
    clips = math.ceil(d.batch_size / d.frames_per_clip)
    seeds = [cfg.seed * 1_000_003 + step * clips + i for i in range(clips)]
    return world_frames(seeds, d.split, d.size, d.frames, d.frames_per_clip, generator)[: d.batch_size]


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [−1, 1], on the uint8 grid they are shown on."""
    a8 = ((a.clamp(-1, 1) + 1) * 127.5).round()
    b8 = ((b.clamp(-1, 1) + 1) * 127.5).round()
    mse = ((a8 - b8) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


@torch.no_grad()
def evaluate_autoencoder(vae, cfg: AutoencoderRecipe) -> dict:
    """Held-out reconstruction PSNR: per style on the training split, and on each held-out split."""

    d = cfg.data
    n_clips = max(1, cfg.train.eval_frames // (4 * d.frames_per_clip))
    g = torch.Generator().manual_seed(HELD_OUT_SEED)
    seeds = list(range(HELD_OUT_SEED, HELD_OUT_SEED + n_clips))
    report: dict = {"psnr_by_style": {}, "psnr_by_split": {}}

    def mean_psnr(x: torch.Tensor) -> float:
        values = []
        for chunk in x.split(64):
            values.append(psnr(vae.decode(vae.encode(chunk).latent_dist.mode()).sample, chunk))
        return float(torch.cat(values).mean())

    for style in vocab.STYLES:
        report["psnr_by_style"][style] = mean_psnr(world_frames(seeds, "train", d.size, d.frames, d.frames_per_clip, g, style))
    for split in ("train", "ood_color_shape", "ood_background", "ood_style", "more_objects"):
        report["psnr_by_split"][split] = mean_psnr(world_frames(seeds, split, d.size, d.frames, d.frames_per_clip, g))
    return report


@torch.no_grad()
def latent_statistics(vae, cfg: AutoencoderRecipe) -> tuple[float, float]:
    """(mean, std) of posterior-mode latents over held-out train frames."""
    d = cfg.data
    n_clips = max(1, cfg.train.eval_frames // d.frames_per_clip)
    g = torch.Generator().manual_seed(HELD_OUT_SEED + 1)
    x = world_frames(list(range(HELD_OUT_SEED, HELD_OUT_SEED + n_clips)), "train", d.size, d.frames, d.frames_per_clip, g)
    z = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in x.split(64)])
    return float(z.mean()), float(z.std())


def train_autoencoder(cfg: AutoencoderRecipe, resume: str | None = None, output_dir: str | None = None,
                      progress: bool = True, stop_after: int | None = None) -> dict:
    """Run the recipe; returns ``{"step", "loss", "autoencoder_dir" (None until the last step), "eval"}``."""
    out = Path(output_dir or cfg.output_dir)
    ckpt_root = out / "checkpoints"
    torch.manual_seed(cfg.seed)
    vae = build_world_autoencoder(cfg.size, sample_size=cfg.data.size).train()
    optimizer = build_optimizer(vae.named_parameters(), cfg.optim)  # (named: optim.lr_scale works here too)
    schedule = build_lr_schedule(optimizer, cfg.optim, cfg.train.steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    start, last_checkpoint = 0, None
    remove_leftovers(out, exports=("autoencoder",))  # what a killed run left: temporary folders and files
    if resume is not None:
        # latest: the newest readable checkpoint (a damaged one is skipped with a warning)
        path, ckpt = load_resumable(resume, ckpt_root, require=("config", "schedule", "optimizer", "rng"))
        last_checkpoint = path
        saved = ckpt.state.get("config", {})
        changed = [k for k in config_differences(saved, cfg.to_dict()) if k not in RESUMABLE]
        if changed:
            raise AnyframeInputError(f"--resume {path}: the recipe changed in {', '.join(changed)} (would change the curve)")
        vae.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        schedule.load_state_dict(ckpt.state["schedule"])
        generator.set_state(ckpt.rng["generator"])
        torch.set_rng_state(ckpt.rng["torch"])
        start = ckpt.step
    elif (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        raise AnyframeInputError(f"{out} already has checkpoints: pass --resume latest, or another --output")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps(cfg.to_dict(), indent=1))
    end = cfg.train.steps if stop_after is None else min(stop_after, cfg.train.steps)
    logger = MetricsLogger(out, total=cfg.train.steps, start=start, progress=progress)
    loss_value, t0, t_step = float("nan"), time.perf_counter(), start

    def checkpoint(step: int) -> None:
        nonlocal last_checkpoint
        last_checkpoint = save_checkpoint(
            Checkpoint(step=step, model=vae.state_dict(), optimizer=optimizer.state_dict(),
                       state={"config": cfg.to_dict(), "schedule": schedule.state_dict()},
                       rng={"generator": generator.get_state(), "torch": torch.get_rng_state()}),
            ckpt_root, keep=cfg.train.keep_checkpoints,
        )

    try:
        for step in range(start, end):
            x = batch_at(cfg, step, generator)
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator)).sample
            mse = torch.nn.functional.mse_loss(recon, x)
            kl = posterior.kl().mean() / x[0].numel()  # per pixel value, like the MSE
            loss = mse + cfg.kl_weight * kl
            if not torch.isfinite(loss):  # stop before the step is taken, logged or saved
                where = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint
                         else "no checkpoint was written yet")
                raise AnyframeInputError(f"training stopped at step {step + 1}: the loss is {float(loss)} "
                                         f"(lower optim.lr, or check the data); {where}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.optim.max_grad_norm)
            optimizer.step()
            schedule.step()
            loss_value = float(loss.detach())
            logger.advance(step + 1, loss_value)
            if (step + 1) % cfg.train.log_every == 0 or step + 1 == end:
                now = time.perf_counter()
                logger.log({"step": step + 1, "loss": loss_value, "mse": float(mse.detach()), "kl": float(kl.detach()),
                            "psnr": float(psnr(recon.detach(), x).mean()), "grad_norm": float(grad_norm),
                            "lr": schedule.get_last_lr()[0], "steps_per_s": (step + 1 - t_step) / max(now - t0, 1e-9)})
                t0, t_step = now, step + 1
            if cfg.train.checkpoint_every and (step + 1) % cfg.train.checkpoint_every == 0 and step + 1 < end:
                checkpoint(step + 1)
        if end > start or resume is None:
            checkpoint(end)
    finally:
        logger.close()
    result = {"step": end, "loss": loss_value, "autoencoder_dir": None, "eval": None}
    if end < cfg.train.steps:
        return result
    vae.eval()
    mean, std = latent_statistics(vae, cfg)
    vae.register_to_config(shift_factor=mean, scaling_factor=1.0 / std)
    report = evaluate_autoencoder(vae, cfg)
    report.update(latent_mean=mean, latent_std=std, step=end, config=cfg.to_dict())
    target = out / "autoencoder"
    with atomic_dir(target) as tmp:
        vae.save_pretrained(tmp, safe_serialization=True)
        (Path(tmp) / "eval.json").write_text(json.dumps(report, indent=1))
    result.update(autoencoder_dir=str(target), eval=report)
    return result
