"""The anyframe training recipe: one linear loop on accelerate, read top to bottom.

    anyframe train --config configs/toy.yaml [--set optim.lr=3e-4] [--resume latest] [--output DIR]
    accelerate launch --multi_gpu --num_processes 2 -m anyframe.cli train --config ...   # several processes

(``--multi_gpu`` selects accelerate's torchrun launcher; without a GPU the recipe asks accelerate for
CPU processes, which then train with DDP on gloo.)

The same code runs on one CPU process, several (gloo) and GPUs (DDP; bf16 autocast on GPU). What a
model learns comes from its conditioning method: the loop hands it the whole batch the data source gives
(:class:`~anyframe.conditioning.base.TrainingBatch`), asks it for the inputs and target, runs the denoiser,
and asks it for its named loss terms, each of which is logged. The loop knows no method and no data set.

Exactness: all randomness (σ, noise, task mixture, dropout) comes from one CPU generator per rank,
whose state is checkpointed with everything else, and the data order is a pure function of
(seed, epoch, position). Training 20 steps and training 10, resuming, and training 10 more give the
same weights bit for bit.

Recovery: a run may be killed at any moment and resumed with ``--resume latest`` to the same weights. A run
starts by removing what a killed one left (temporary checkpoint and export folders, half-written files);
``latest`` skips a damaged newest checkpoint (with a warning) for the one before; a run killed while
exporting, resumed, writes its export from its final checkpoint. A non-finite loss (or, without fp16 loss
scaling, gradient norm) stops training at once with an input error, before that step is logged, checkpointed
or exported.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object
from diffusers.training_utils import EMAModel
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from anyframe.conditioning import Denoiser, TrainingBatch
from anyframe.data.base import LatentBatch, VideoBatch, collate
from anyframe.data.sampler import EpochIndexBatches, EpochIndexedDataset, ShardedBucketSampler
from anyframe.errors import AnyframeInputError
from anyframe.flow.timesteps import sample_training_sigmas
from anyframe.io import atomic_path
from anyframe.models.autoencoder import encode_video, spatial_compression
from anyframe.models.text_encoder import TextCondition
from anyframe.pipelines import AnyFramePipeline, PipelineEncoders
from anyframe.training.build import (
    build_components,
    build_dataset,
    check_checkpoint_fits,
    trainable_parameters,
)
from anyframe.training.checkpoint import Checkpoint, load_resumable, remove_leftovers, save_checkpoint
from anyframe.training.config import RESUMABLE_DIFFERENCES, RecipeConfig, config_differences
from anyframe.training.export import ema_state_dict, export_checkpoint, export_model, write_samples
from anyframe.training.logging import MetricsLogger, read_metrics
from anyframe.training.optim import base_lr, build_lr_schedule, build_optimizer
from anyframe.training.state import (
    full_ema_state,
    params_checksum,
    rng_state,
    set_rng_state,
    shard_like,
    with_current_defaults,
    with_denoiser_names,
)

__all__ = ["train", "TrainResult", "build_components", "export_checkpoint", "micro_conditions", "ema_state_dict",
           "full_ema_state", "shard_like"]


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    final_loss: float
    pipeline_dir: Path | None
    ranks_in_sync: bool


# ------------------------------------------------------------------------------------- the loop


def train(
    cfg: RecipeConfig,
    resume: str | None = None,
    output_dir: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or resume) a recipe. ``stop_after`` ends this run early at that step, with a checkpoint —
    a time-sliced job on a preemptible machine — without changing the recipe (its LR schedule still
    spans ``train.steps``)."""
    run = start_run(cfg, Path(output_dir or cfg.output_dir), resume, progress)
    last_step = cfg.train.steps if stop_after is None else min(cfg.train.steps, stop_after)
    finishing = run.export_missing and last_step == run.step  # killed while exporting: only the export is left
    if finishing:
        warnings.warn(f"the run had finished training (checkpoint {run.last_checkpoint} is at step {run.step}, "
                      f"train.steps); finishing its export to {run.out / export_name(cfg)}")
    elif last_step <= run.step:
        raise AnyframeInputError(f"nothing to do: the run is at step {run.step}, stopping at {last_step}")
    loss = _last_logged_loss(run) if finishing else float("nan")
    while run.step < last_step:
        run.step += 1
        terms = train_step(run)
        loss = terms["loss"]
        stop_if_diverged(run, loss)
        if run.step % cfg.train.log_every == 0 or run.step == last_step:
            log_step(run, terms)
        run.logger.advance(run.step, loss)
        if cfg.sample.every and run.step % cfg.sample.every == 0:
            sample_step(run)
        if (cfg.train.checkpoint_every and run.step % cfg.train.checkpoint_every == 0) or run.step == last_step:
            checkpoint_step(run)

    # Are the ranks' weights identical? (DDP keeps them so; this checks it.) A run finishing its export
    # logged this before it was killed.
    checksums = gather_object([params_checksum(run.accelerator.unwrap_model(run.model))])
    in_sync = len(set(checksums)) == 1
    if not (finishing and run.accelerator.is_main_process
            and any(m.get("step") == last_step and "ranks_in_sync" in m for m in read_metrics(run.out))):
        run.logger.log({"step": last_step, "ranks": run.world, "ranks_in_sync": in_sync, "checksums": checksums})
    run.logger.close()

    # Export the pipeline with the EMA weights (at the end of the recipe, not at a stop).
    pipeline_dir = None
    if cfg.train.export and last_step == cfg.train.steps:
        export_state = ema_state_dict(run.model, run.ema)  # a collective under FSDP
        if run.accelerator.is_main_process:
            pipeline_dir = export_model(run.pipe, export_state, run.out / export_name(cfg), cfg.lora.enabled)
    run.accelerator.wait_for_everyone()
    close_run(run)
    return TrainResult(run.out, last_step, loss, pipeline_dir, in_sync)


def export_name(cfg: RecipeConfig) -> str:
    """The folder a finished run exports to, in its run folder."""
    return "lora" if cfg.lora.enabled else "pipeline"


def _last_logged_loss(run: Run) -> float:
    losses = [m["loss"] for m in read_metrics(run.out) if m.get("step") == run.step and "loss" in m]
    return float(losses[-1]) if losses and isinstance(losses[-1], (int, float)) else float("nan")


def stop_if_diverged(run: Run, loss: float) -> None:
    """Stop at the first non-finite loss (or gradient norm) on any rank, before the step is logged or saved:
    the last checkpoint stays the last good one. (A collective: every rank calls it every step. Under fp16
    loss scaling an infinite gradient norm only skips the step, so it does not count there.)"""
    grad_norm = run.last.get("grad_norm", 0.0) if run.accelerator.scaler is None else 0.0
    values = torch.tensor([loss, grad_norm], dtype=torch.float64, device=run.accelerator.device)
    total = run.accelerator.reduce(values, reduction="sum").tolist()  # NaN or inf anywhere stays non-finite
    if all(math.isfinite(v) for v in total):
        return
    if not math.isfinite(total[0]):
        what = f"the loss is {loss if not math.isfinite(loss) else total[0]}"
    else:
        what = f"the gradient norm is {grad_norm if not math.isfinite(grad_norm) else total[1]}"
    where = f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint was written yet"
    step = run.step
    run.logger.close()
    close_run(run)
    raise AnyframeInputError(f"training stopped at step {step}: {what} (lower optim.lr, or check the data); {where}")


# --------------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What a run holds while it trains (built by :func:`start_run`)."""

    cfg: RecipeConfig
    out: Path
    accelerator: Accelerator
    generator: torch.Generator  # σ, noise, tasks, dropout: this rank's, checkpointed
    pipe: AnyFramePipeline
    model: torch.nn.Module  # the (prepared) Denoiser
    optimizer: torch.optim.Optimizer
    schedule: object
    ema: EMAModel | None
    sampler: ShardedBucketSampler
    batches: object  # the data loader's iterator
    null_text: TextCondition
    logger: MetricsLogger
    has_frozen: bool  # LoRA: the backbone's own weights are not trained
    step: int = 0
    last_checkpoint: Path | None = None  # the newest checkpoint of this run (or the one it resumed from)
    export_missing: bool = False  # resumed at train.steps without its export (killed while exporting)
    consumed: int = 0  # batches drawn (the data position)
    window_start: float = field(default_factory=time.perf_counter)
    window_samples: int = 0
    last: dict = field(default_factory=dict)  # the last micro-batch's sigma and per-task losses

    @property
    def world(self) -> int:
        return self.accelerator.num_processes


def start_run(cfg: RecipeConfig, out: Path, resume: str | None, progress: bool) -> Run:
    """Components, data, optimizer, schedule and EMA, resumed from ``resume`` if given."""
    mixed = cfg.train.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if torch.cuda.is_available() else "no"
    # accelerate keeps one process-wide AcceleratorState and refuses a second Accelerator with another
    # mixed precision; a later run in the same process (a notebook, a benchmark) starts from a clean one
    # (the distributed PartialState is kept)
    AcceleratorState._reset_state()
    # cpu=True without a GPU: under a multi-process launch accelerate then uses torch.distributed on gloo
    accelerator = Accelerator(
        mixed_precision=mixed, gradient_accumulation_steps=cfg.optim.grad_accum, cpu=not torch.cuda.is_available()
    )
    rank = accelerator.process_index
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + rank)

    # The trained denoiser (backbone + the method's own layers, if any); the frozen encoders.
    pipe = build_components(cfg)
    model = Denoiser(pipe.transformer, pipe.conditioning).train()
    has_frozen = len(trainable_parameters(model)) < len(list(model.parameters()))
    if cfg.train.gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    for encoder in (m for m in (pipe.vae, pipe.text_encoder, pipe.image_encoder) if m is not None):
        encoder.requires_grad_(False).eval().to(accelerator.device)

    dataset = build_dataset(cfg, pipe, accelerator)  # this rank's shard comes from the sampler below
    null_text = getattr(dataset, "null_text", None)
    null_text = (pipe.encode_text([""]) if null_text is None else null_text).to(accelerator.device)
    optimizer = build_optimizer([(n, p) for n, p in model.named_parameters() if p.requires_grad], cfg.optim)
    schedule = build_lr_schedule(optimizer, cfg.optim, cfg.train.steps)

    if accelerator.is_main_process:
        remove_leftovers(out, exports=("pipeline", "lora"))
    step, consumed, ckpt, ckpt_path, export_missing = 0, 0, None, None, False
    if resume is not None:
        ckpt_path, ckpt = load_resumable(resume, out / "checkpoints", require=RESUME_NEEDS)
        ckpt = with_denoiser_names(ckpt)
        if ckpt.step > cfg.train.steps:
            raise AnyframeInputError(f"checkpoint {ckpt_path} is at step {ckpt.step}, past train.steps "
                                     f"({cfg.train.steps}): raise train.steps to train on from it")
        if ckpt.step == cfg.train.steps:
            export_missing = cfg.train.export and not export_is_current(out / export_name(cfg), ckpt_path)
            if not export_missing:
                written = f" and its export {out / export_name(cfg)} is written" if cfg.train.export else ""
                raise AnyframeInputError(f"nothing to do: the run finished training at step {ckpt.step} (train.steps)"
                                         f"{written}; raise train.steps to train further")
        warn_about_recipe_changes(cfg, ckpt)
        schedule.load_state_dict(ckpt.state["lr_schedule"])
        set_rng_state(generator, ckpt.rng["ranks"][rank])
        step, consumed = ckpt.step, int(ckpt.state["batches_consumed"])
        check_checkpoint_fits(model, ckpt.model, resume)

    model, optimizer = accelerator.prepare(model, optimizer)
    if ckpt is not None:
        # torch's distributed-checkpoint state-dict API loads full state dicts into plain, DDP and
        # FSDP-sharded models and optimizers alike (optimizer state is keyed by parameter name).
        # (a LoRA run's checkpoints hold only the trained weights; the frozen ones come from the recipe;
        # check_checkpoint_fits has checked the names: this call fills absent keys silently)
        set_model_state_dict(model, ckpt.model, options=StateDictOptions(full_state_dict=True, strict=not has_frozen))
        # strict=False: a parameter that never had a gradient (the temporal layers of a 1-frame, T2I run)
        # has no optimizer state yet, and that is not an error
        set_optimizer_state_dict(model, optimizer, ckpt.optimizer, options=StateDictOptions(full_state_dict=True, strict=False))
    # EMA shadows the parameters as prepared (under FSDP2: DTensor shards), so it is made after prepare.
    ema = None
    if cfg.ema.enabled:
        trained = trainable_parameters(accelerator.unwrap_model(model))
        ema = EMAModel(trained, decay=cfg.ema.decay, update_after_step=cfg.ema.update_after_step)
        if ckpt is not None and ckpt.ema is not None:
            ema.load_state_dict(ckpt.ema)
            ema.shadow_params = shard_like(ema.shadow_params, trained)

    sampler = ShardedBucketSampler(dataset, cfg.data.batch_size, rank, accelerator.num_processes, seed=cfg.seed,
                                   start=consumed)
    loader = torch.utils.data.DataLoader(
        EpochIndexedDataset(dataset),
        batch_sampler=EpochIndexBatches(sampler),
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),  # not the global RNG: resumed runs stay exact
    )
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "config.yaml") as tmp:
            tmp.write_text(json.dumps(cfg.to_dict(), indent=2))  # JSON is valid YAML
    logger = MetricsLogger(out, enabled=accelerator.is_main_process, total=cfg.train.steps, start=step,
                           progress=progress)
    return Run(cfg, out, accelerator, generator, pipe, model, optimizer, schedule, ema, sampler, iter(loader),
               null_text, logger, has_frozen, step=step, consumed=consumed, last_checkpoint=ckpt_path,
               export_missing=export_missing)


# What a checkpoint must hold to resume a run (one without them is damaged: ``latest`` skips it).
RESUME_NEEDS = ("batches_consumed", "lr_schedule", "config", "optimizer", "rng")


def export_is_current(export: Path, checkpoint: Path) -> bool:
    """Whether the run's export folder was written from (after) its final ``checkpoint``: an export left by an
    earlier, shorter run in the same folder — a run extended, then killed while exporting — is not."""
    try:
        return export.is_dir() and export.stat().st_mtime_ns >= (checkpoint / "state.json").stat().st_mtime_ns
    except OSError:
        return False


def warn_about_recipe_changes(cfg: RecipeConfig, ckpt: Checkpoint) -> None:
    """A resumed run whose recipe differs (beyond :data:`RESUMABLE_DIFFERENCES`) will not continue the same curve."""
    allowed = set(RESUMABLE_DIFFERENCES)
    if cfg.optim.schedule in ("cosine", "wsd"):
        allowed.discard("train.steps")  # these schedules span (or end at) train.steps
    before = with_current_defaults(ckpt.state["config"])
    lora_unused = not cfg.lora.enabled and not before.get("lora", {}).get("enabled", False)
    changed = [k for k in config_differences(before, cfg.to_dict())
               if k not in allowed and not (lora_unused and k.startswith("lora."))]
    if changed:
        warnings.warn(f"resuming with a different recipe ({', '.join(changed)}): the curve will not be the same")


def close_run(run: Run) -> None:
    # The DDP/FSDP wrapper goes before the process group. Freed after it, the wrapper would hold the last
    # reference to the gloo group, whose destructor joins gloo's threads while holding the GIL — which one
    # of them may still need, to free a finished collective's tensors: a hang at exit (pytorch#56297; seen in
    # 1 of 10 two-rank CPU runs here). Freed first, the group ends in destroy_process_group, which releases it.
    del run.model, run.optimizer
    run.accelerator.free_memory()
    run.accelerator.end_training()


# --------------------------------------------------------------------------------- one step


def micro_conditions(batch: VideoBatch | LatentBatch, height: int, width: int) -> torch.Tensor:
    """``[B, 5]``: (frame stride, original height, original width, crop top, crop left) per clip, from
    the clip's metadata where the dataset gives it, else (1, height, width, 0, 0)."""
    rows = []
    for meta in batch.meta:
        oh, ow = meta.get("original_size", (height, width))
        top, left = meta.get("crop", (0, 0))
        rows.append([float(meta.get("stride", 1.0)), float(oh), float(ow), float(top), float(left)])
    return torch.tensor(rows)


@torch.no_grad()
def training_batch(run: Run, batch: VideoBatch | LatentBatch) -> TrainingBatch:
    """Everything the data source gave, with the clips encoded: latents and text (on the CPU, where the methods
    build their inputs), the pixels and the clips' annotations where the source has them."""
    pipe, device = run.pipe, run.accelerator.device
    pixels = None
    if isinstance(batch, LatentBatch):
        latents = batch.latents.to(device)
        text = TextCondition(batch.text_embeds.to(device), batch.text_mask.to(device))
        factor = spatial_compression(pipe.vae)
        height, width = latents.shape[-2] * factor, latents.shape[-1] * factor
    else:
        pixels = batch.video.to(device).permute(0, 2, 1, 3, 4)  # [B, 3, T, H, W]
        latents = encode_video(pipe.vae, pixels).float()
        text = pipe.encode_text(batch.captions)
        height, width = pixels.shape[-2:]
    b = latents.shape[0]
    annotations = {}
    if isinstance(batch, VideoBatch):
        annotations = dict(frame_captions=batch.frame_captions, regional_captions=batch.regional_captions,
                           object_masks=None if all(m is None for m in batch.masks) else batch.masks)
    return TrainingBatch(latents=latents.cpu(), text=text.to("cpu"), null_text=run.null_text.to("cpu").repeat(b),
                         micro_conditions=micro_conditions(batch, height, width), pixels=pixels,
                         captions=list(batch.captions), meta=list(batch.meta), encoders=PipelineEncoders(pipe),
                         **annotations)


def train_step(run: Run) -> dict[str, float]:
    """One optimizer step over ``grad_accum`` micro-batches: each the method's inputs, the denoiser, the method's
    loss terms (the loss is the sum of their means); then the LR schedule and EMA. Returns the logged terms."""
    cfg, accelerator, method, device = run.cfg, run.accelerator, run.pipe.conditioning, run.accelerator.device
    accum = cfg.optim.grad_accum
    logged: dict[str, float] = {}
    for _ in range(accum):
        batch = next(run.batches)
        run.consumed += 1
        with accelerator.accumulate(run.model):
            tb = training_batch(run, batch)
            b = tb.latents.shape[0]
            sigma = sample_training_sigmas(
                b, run.generator, cfg.flow.sigma_distribution, cfg.flow.logit_mean, cfg.flow.logit_std, cfg.flow.shift
            )
            noise = torch.randn(tb.latents.shape, generator=run.generator)
            inputs = method.training_inputs(tb, sigma, noise, run.generator)
            with accelerator.autocast():
                outputs = run.model(**inputs.model_inputs.to(device).denoiser_kwargs())
            terms = method.loss(outputs, inputs)
            loss = sum(term.mean() for term in terms.values())
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                run.last["grad_norm"] = float(accelerator.clip_grad_norm_(trainable_parameters(run.model),
                                                                          cfg.optim.max_grad_norm))
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        logged["loss"] = logged.get("loss", 0.0) + float(loss.detach()) / accum
        for name, term in terms.items():
            logged[f"loss_{name}"] = logged.get(f"loss_{name}", 0.0) + float(term.detach().mean()) / accum
        for name, value in method.diagnostics(outputs, inputs).items():
            if math.isfinite(value):
                logged[name] = logged.get(name, 0.0) + value / accum
        per_sample = terms["diffusion"].detach()
        for task in set(inputs.info.get("tasks", [])):
            sel = [i for i, t in enumerate(inputs.info["tasks"]) if t == task]
            logged[f"loss/{task}"] = float(per_sample[sel].mean())
        run.last["sigma_mean"] = float(sigma.mean())
        run.window_samples += b * run.world
    run.schedule.step()
    if run.ema is not None:
        run.ema.step(trainable_parameters(accelerator.unwrap_model(run.model)))
    return logged


def merge_ranks(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """Every term's mean over the ranks that logged a finite value of it: a rank's batch may hold no example of
    a task (``loss/<task>``) or leave a method's diagnostic undefined, so the ranks' key sets can differ."""
    merged = {}
    for key in sorted(set().union(*per_rank)):
        values = [terms[key] for terms in per_rank if key in terms and math.isfinite(terms[key])]
        if values:
            merged[key] = sum(values) / len(values)
    return merged


def log_step(run: Run, terms: dict[str, float]) -> None:
    """One metrics record; every term (losses, per-task losses, the method's diagnostics) is the mean over
    ranks (each rank sees its own shard): :func:`merge_ranks` of every rank's terms."""
    terms = merge_ranks(gather_object([terms]))
    elapsed = time.perf_counter() - run.window_start
    every = run.cfg.train.log_every
    steps_in_window = every if run.step % every == 0 else run.step % every
    run.logger.log({
        "step": run.step,
        **{k: round(v, 6) for k, v in terms.items()},
        "lr": base_lr(run.schedule, run.optimizer),
        "grad_norm": run.last.get("grad_norm", float("nan")),
        "sigma_mean": run.last["sigma_mean"],
        "steps_per_s": steps_in_window / max(elapsed, 1e-9),
        "samples_per_s": run.window_samples / max(elapsed, 1e-9),
        "epoch": run.consumed // run.sampler.batches_per_epoch,
    })
    run.window_start, run.window_samples = time.perf_counter(), 0


def sample_step(run: Run) -> None:
    """Sample filmstrips from the EMA weights: every rank gathers (a collective under FSDP); the main rank
    samples from an unsharded copy."""
    state = ema_state_dict(run.model, run.ema)
    if run.accelerator.is_main_process:
        write_samples(run.pipe, state, run.cfg, run.out / "samples" / f"step-{run.step:08d}.png")
    run.accelerator.wait_for_everyone()


def checkpoint_step(run: Run) -> None:
    """Save everything a resume needs: full (unsharded) states, gathered on every rank (a collective under
    FSDP), every rank's generator, the data position."""
    rngs = gather_object([rng_state(run.generator)])
    full = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=run.has_frozen)
    model_state = get_model_state_dict(run.model, options=full)
    optimizer_state = get_optimizer_state_dict(run.model, run.optimizer, options=full)
    ema_state = full_ema_state(run.ema) if run.ema is not None else None
    if run.accelerator.is_main_process:
        state = {"batches_consumed": run.consumed, "lr_schedule": run.schedule.state_dict(), "config": run.cfg.to_dict(),
                 "world_size": run.world}
        save_checkpoint(Checkpoint(step=run.step, model=model_state, state=state, optimizer=optimizer_state,
                                   ema=ema_state, rng={"ranks": rngs}),
                        run.out / "checkpoints", keep=run.cfg.train.keep_checkpoints,
                        keep_every=run.cfg.train.keep_every)
    run.accelerator.wait_for_everyone()
    run.last_checkpoint = run.out / "checkpoints" / f"step-{run.step:08d}"
