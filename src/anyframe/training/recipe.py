"""The anyframe training recipe: one linear loop on accelerate, read top to bottom.

    anyframe train --config configs/toy.yaml [--set optim.lr=3e-4] [--resume latest] [--output DIR]
    accelerate launch --multi_gpu --num_processes 2 -m anyframe.cli train --config ...   # several processes

(``--multi_gpu`` selects accelerate's torchrun launcher; without a GPU the recipe asks accelerate for
CPU processes, which then train with DDP on gloo.)

The same code runs on one CPU process, several (gloo) and GPUs (DDP; bf16 autocast on GPU). What a
model learns comes from its conditioning method: the loop asks it for inputs, targets, the loss mask
and per-sample weights, and logs every loss term.

Exactness: all randomness (σ, noise, task mixture, dropout) comes from one CPU generator per rank,
whose state is checkpointed with everything else, and the data order is a pure function of
(seed, epoch, position). Training 20 steps and training 10, resuming, and training 10 more give the
same weights bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object
from diffusers.training_utils import EMAModel
from torch.distributed.tensor import distribute_tensor
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from anyframe.conditioning import build_method
from anyframe.conditioning.base import Denoiser, TrainingBatch
from anyframe.data.base import LatentBatch, VideoBatch, collate
from anyframe.data.sampler import EpochIndexBatches, EpochIndexedDataset, ShardedBucketSampler
from anyframe.errors import AnyframeInputError
from anyframe.flow.path import flow_matching_loss, object_loss_weights, temporal_difference_loss
from anyframe.flow.timesteps import sample_training_sigmas
from anyframe.io import atomic_dir, atomic_path, filmstrip, to_uint8
from anyframe.models.autoencoder import encode_video, load_autoencoder, spatial_compression
from anyframe.models.dit import STIVTransformer
from anyframe.models.text_encoder import TextCondition
from anyframe.pipeline import AnyFramePipeline, build_wan_pipeline, build_world_pipeline
from anyframe.training.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint, save_checkpoint
from anyframe.training.config import RESUMABLE_DIFFERENCES, RecipeConfig, config_differences
from anyframe.training.logging import MetricsLogger
from anyframe.training.optim import build_lr_schedule, build_optimizer
from anyframe.training.progressive import init_from_image_model, init_from_smaller_model, smaller_model_overrides


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    final_loss: float
    pipeline_dir: Path | None
    ranks_in_sync: bool


# ------------------------------------------------------------------------------------ building


def build_components(cfg: RecipeConfig) -> AnyFramePipeline:
    """The pipeline whose backbone is trained (frozen autoencoder and text encoder included)."""
    m = cfg.model
    backbone = dict(m.backbone)
    small = None
    if cfg.init.from_smaller_model:
        small = STIVTransformer.from_pretrained(cfg.init.from_smaller_model)
        backbone.update(smaller_model_overrides(small))
    if m.pretrained:
        pipe = AnyFramePipeline.from_pretrained(m.pretrained)
    elif m.preset == "wan-tiny":
        from anyframe.world import world_vocabulary

        kind = "t2v" if not backbone.get("image_dim") else ("flf2v" if backbone.get("pos_embed_seq_len") else "i2v")
        pipe = build_wan_pipeline("tiny", kind=kind, seed=cfg.seed, vocabulary=world_vocabulary(), **backbone)
    else:
        pipe = build_world_pipeline(m.preset, seed=cfg.seed, shift=m.shift, **backbone)
    if m.pretrained and backbone:  # the config allows only PRETRAINED_BACKBONE_OVERRIDES here: text_refiner_layers
        if not isinstance(pipe.transformer, STIVTransformer):
            raise AnyframeInputError("model.backbone.text_refiner_layers: only an anyframe (STIV) backbone has a text refiner")
        try:  # added as the identity: the run starts from the pretrained model's own velocity
            pipe.transformer = pipe.transformer.with_text_refiner(int(backbone["text_refiner_layers"]))
        except ValueError as exc:
            raise AnyframeInputError(f"model.backbone.text_refiner_layers: {exc}") from None
    if m.vae:
        pipe.vae = load_autoencoder(m.vae).eval()
    if cfg.init.from_image_model:
        init_from_image_model(pipe.transformer, STIVTransformer.from_pretrained(cfg.init.from_image_model))
    if small is not None:
        init_from_smaller_model(pipe.transformer, small)
    # The method last: it may add (zero-initialised) input channels to the initialised backbone.
    method = build_method(cfg.conditioning.method, pipe.transformer, **cfg.conditioning.method_options())
    if m.pretrained and type(pipe.conditioning) is type(method):
        try:  # continue the pretrained method's own layers (φ, embeddings) too
            method.load_state_dict(pipe.conditioning.state_dict())
        except RuntimeError as exc:
            raise AnyframeInputError(f"the pretrained {cfg.conditioning.method} layers do not fit this recipe: {exc}") from None
    pipe.transformer = method.adapt_backbone(pipe.transformer)
    pipe.conditioning = method
    if cfg.lora.enabled:
        add_lora(pipe.transformer, cfg.lora)
    return pipe


def add_lora(transformer: torch.nn.Module, lora) -> None:
    """Freeze ``transformer`` and give it peft LoRA adapters (``lora``: a :class:`LoraConfig`)."""
    from peft import LoraConfig as PeftLoraConfig

    transformer.requires_grad_(False)
    config = PeftLoraConfig(r=lora.rank, lora_alpha=lora.alpha or lora.rank, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules), init_lora_weights=True)
    try:
        transformer.add_adapter(config)
    except ValueError as exc:  # peft: no module matches the targets
        raise AnyframeInputError(f"lora.target_modules: {' '.join(str(exc).split())[:300]}") from None


def build_dataset(cfg: RecipeConfig, pipe: AnyFramePipeline, accelerator: Accelerator):
    d = cfg.data
    if d.source == "toy":
        from anyframe.data.toy import ToyMotionDataset

        dataset = ToyMotionDataset(d.toy.num_clips, d.toy.num_frames, d.toy.size, seed=cfg.seed)
    elif d.source == "world":
        from anyframe.data.world import WorldDataset

        w = d.world
        dataset = WorldDataset(w.num_clips, w.split, w.size, w.frames, seed=cfg.seed, num_objects=w.num_objects)
    else:
        from anyframe.data.video_manifest import ManifestVideoDataset

        m = d.manifest
        dataset = ManifestVideoDataset(
            manifest=m.path, num_frames=m.num_frames, stride=m.stride, fps=m.fps, size=m.size,
            buckets=m.buckets, lengths=m.lengths, crop=m.crop, seed=cfg.seed,
        )
    if d.cache_dir is None:
        return dataset
    if pipe.conditioning.needs_pixels_in_training:
        raise AnyframeInputError(f"data.cache_dir: the {cfg.conditioning.method} method trains from pixel clips, not a latent cache")
    from anyframe.data.latent_cache import LatentCacheDataset, build_latent_cache, encoders_fingerprint

    text = {f"text_{k}": v for k, v in pipe.text_convention.items()}  # padding, max_length
    fingerprint = encoders_fingerprint(pipe.vae, pipe.tokenizer, pipe.text_encoder, **text)
    # what the clips are: a cache of other data (another split, size, clip count or seed) is refused
    source = {"source": d.source, d.source: getattr(d, d.source).model_dump(mode="json"), "seed": cfg.seed}
    if accelerator.is_main_process and not (Path(d.cache_dir) / "index.json").is_file():
        build_latent_cache(dataset, pipe.vae, pipe.tokenizer, pipe.text_encoder, d.cache_dir, **text, source=source)
    accelerator.wait_for_everyone()
    return LatentCacheDataset(d.cache_dir, expected_fingerprint=fingerprint, expected_source=source)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters that train (all of them, or a LoRA run's adapters and the method's layers), in module
    order: the optimizer's, EMA's shadows' and the checkpoint's ``named`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def check_checkpoint_fits(model: torch.nn.Module, state: dict, where: str) -> None:
    """The checkpoint's weights are the model's: every trained parameter present (and, unless some weights
    are frozen — LoRA — every weight), nothing else. torch's full-state-dict loader would leave a missing
    weight at its initial value without a word."""
    names = set(model.state_dict())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    missing = sorted(names - frozen - set(state))
    unexpected = sorted(set(state) - names)
    if missing or unexpected:
        raise AnyframeInputError(
            f"the checkpoint {where} does not fit this recipe's model: "
            + "; ".join(f"{label} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
                        for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys)
        )


def micro_conditions(batch: VideoBatch | LatentBatch, height: int, width: int) -> torch.Tensor:
    """``[B, 5]``: (frame stride, original height, original width, crop top, crop left) per clip, from
    the clip's metadata where the dataset gives it, else (1, height, width, 0, 0)."""
    rows = []
    for meta in batch.meta:
        oh, ow = meta.get("original_size", (height, width))
        top, left = meta.get("crop", (0, 0))
        rows.append([float(meta.get("stride", 1.0)), float(oh), float(ow), float(top), float(left)])
    return torch.tensor(rows)


def params_checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor shard (FSDP2) gathered into a plain tensor; plain tensors pass through."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def full_ema_state(ema: EMAModel) -> dict:
    """``ema.state_dict()`` with its shadow parameters gathered into full CPU tensors. A collective under
    FSDP2 (DTensor shards): every rank must call it before the main rank saves."""
    state = ema.state_dict()
    state["shadow_params"] = [_full(t).detach().cpu() for t in state["shadow_params"]]
    return state


def shard_like(tensors: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Full tensors (from a checkpoint) laid out like ``params``: DTensor shards under FSDP2, plain
    tensors on the parameters' device otherwise."""
    return [
        distribute_tensor(t.to(p.device), p.device_mesh, p.placements) if hasattr(p, "device_mesh") else t.to(p.device)
        for t, p in zip(tensors, params)
    ]


# ---------------------------------------------------------------------------------------- RNG


def rng_state(generator: torch.Generator) -> dict:
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    out = Path(output_dir or cfg.output_dir)
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
    rank, world = accelerator.process_index, accelerator.num_processes
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + rank)  # σ, noise, tasks, dropout

    # 1. Components: the trained denoiser (backbone + the method's own layers, if any); the frozen
    #    autoencoder and text encoder.
    pipe = build_components(cfg)
    method = pipe.conditioning
    model = Denoiser(pipe.transformer, method).train()
    has_frozen = len(trainable_parameters(model)) < len(list(model.parameters()))  # LoRA: the backbone's own
    if cfg.train.gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    for encoder in (m for m in (pipe.vae, pipe.text_encoder, pipe.image_encoder) if m is not None):
        encoder.requires_grad_(False).eval().to(accelerator.device)

    # 2. Data: this rank's shard, in a deterministic order.
    dataset = build_dataset(cfg, pipe, accelerator)
    null_text = getattr(dataset, "null_text", None)
    if null_text is None:
        null_text = pipe.encode_text([""])
    null_text = null_text.to(accelerator.device)

    # 3. Optimizer and LR schedule (EMA after prepare, below).
    optimizer = build_optimizer(trainable_parameters(model), cfg.optim)
    schedule = build_lr_schedule(optimizer, cfg.optim, cfg.train.steps)

    # 4. Resume: weights, optimizer, schedule, EMA, RNG, data position.
    start_step, consumed = 0, 0
    if resume is not None:
        ckpt = with_denoiser_names(load_checkpoint(resolve_checkpoint(resume, out / "checkpoints")))
        allowed = set(RESUMABLE_DIFFERENCES)
        if cfg.optim.schedule in ("cosine", "wsd"):
            allowed.discard("train.steps")  # these schedules span (or end at) train.steps
        before = with_current_defaults(ckpt.state["config"])
        lora_unused = not cfg.lora.enabled and not before.get("lora", {}).get("enabled", False)
        changed = [k for k in config_differences(before, cfg.to_dict())
                   if k not in allowed and not (lora_unused and k.startswith("lora."))]
        if changed:
            warnings.warn(f"resuming with a different recipe ({', '.join(changed)}): the curve will not be the same")
        schedule.load_state_dict(ckpt.state["lr_schedule"])
        set_rng_state(generator, ckpt.rng["ranks"][rank])
        start_step, consumed = ckpt.step, int(ckpt.state["batches_consumed"])
        if ckpt.step >= cfg.train.steps:
            raise AnyframeInputError(f"the checkpoint is at step {ckpt.step}; train.steps is {cfg.train.steps}")
        check_checkpoint_fits(model, ckpt.model, resume)

    model, optimizer = accelerator.prepare(model, optimizer)
    if resume is not None:
        # torch's distributed-checkpoint state-dict API loads full state dicts into plain, DDP and
        # FSDP-sharded models and optimizers alike (optimizer state is keyed by parameter name).
        # (a LoRA run's checkpoints hold only the trained weights; the frozen ones come from the recipe;
        # check_checkpoint_fits has checked the names: this call fills absent keys silently)
        set_model_state_dict(model, ckpt.model, options=StateDictOptions(full_state_dict=True, strict=not has_frozen))
        # strict=False: a parameter that never had a gradient (the temporal layers of a 1-frame, T2I run)
        # has no optimizer state yet, and that is not an error
        set_optimizer_state_dict(model, optimizer, ckpt.optimizer,
                                 options=StateDictOptions(full_state_dict=True, strict=False))
    # EMA shadows the parameters as prepared (under FSDP2: DTensor shards), so it is made after prepare.
    ema = None
    if cfg.ema.enabled:
        trained = trainable_parameters(accelerator.unwrap_model(model))
        ema = EMAModel(trained, decay=cfg.ema.decay, update_after_step=cfg.ema.update_after_step)
    if ema is not None and resume is not None and ckpt.ema is not None:
        ema.load_state_dict(ckpt.ema)
        ema.shadow_params = shard_like(ema.shadow_params, trained)
    sampler = ShardedBucketSampler(dataset, cfg.data.batch_size, rank, world, seed=cfg.seed, start=consumed)
    loader = torch.utils.data.DataLoader(
        EpochIndexedDataset(dataset),
        batch_sampler=EpochIndexBatches(sampler),
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),  # not the global RNG: resumed runs stay exact
    )
    batches = iter(loader)

    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(json.dumps(cfg.to_dict(), indent=2))  # JSON is valid YAML
    logger = MetricsLogger(out, enabled=accelerator.is_main_process, total=cfg.train.steps, start=start_step,
                           progress=progress)
    params = trainable_parameters(model)
    device = accelerator.device
    loss_value = float("nan")
    window_start, window_samples = time.perf_counter(), 0

    # 5. The loop.
    last_step = cfg.train.steps if stop_after is None else min(cfg.train.steps, stop_after)
    if last_step <= start_step:
        raise AnyframeInputError(f"nothing to do: the run is at step {start_step}, stopping at {last_step}")
    for step in range(start_step + 1, last_step + 1):
        terms: dict[str, float] = {}
        for _ in range(cfg.optim.grad_accum):
            batch = next(batches)
            consumed += 1
            with accelerator.accumulate(model):
                with torch.no_grad():
                    extras = {}
                    if isinstance(batch, LatentBatch):
                        latents = batch.latents.to(device)
                        text = TextCondition(batch.text_embeds.to(device), batch.text_mask.to(device))
                        height = width = None
                    else:
                        video = batch.video.to(device).permute(0, 2, 1, 3, 4)  # [B, 3, T, H, W]
                        latents = encode_video(pipe.vae, video).float()
                        text = pipe.encode_text(batch.captions)
                        height, width = video.shape[-2:]
                        extras = {k: v.cpu() for k, v in method.batch_extras(pipe, video).items()}
                b = latents.shape[0]
                if height is None:
                    factor = spatial_compression(pipe.vae)
                    height, width = latents.shape[-2] * factor, latents.shape[-1] * factor
                sigma = sample_training_sigmas(
                    b, generator, cfg.flow.sigma_distribution, cfg.flow.logit_mean, cfg.flow.logit_std, cfg.flow.shift
                )
                noise = torch.randn(latents.shape, generator=generator)
                inputs = method.training_inputs(
                    TrainingBatch(
                        latents=latents.cpu(),
                        text=text.to("cpu"),
                        null_text=null_text.to("cpu").repeat(b),
                        micro_conditions=micro_conditions(batch, height, width),
                        extras=extras,
                    ),
                    sigma,
                    noise,
                    generator,
                )
                kwargs = inputs.model_inputs.to(device).denoiser_kwargs()
                with accelerator.autocast():
                    prediction = model(**kwargs).sample
                mask = None if inputs.loss_mask is None else inputs.loss_mask.to(device)
                if cfg.flow.object_weight > 0:  # the config allows it only on world clips, which carry masks
                    objects = object_loss_weights(batch.masks, latents.shape, cfg.flow.object_weight).to(device)
                    mask = objects if mask is None else mask * objects
                weight = None if inputs.loss_weight is None else inputs.loss_weight.to(device)
                per_sample = flow_matching_loss(prediction.float(), inputs.target.to(device), mask, reduction="none")
                if cfg.flow.temporal_weight > 0:
                    moving = temporal_difference_loss(prediction, inputs.target.to(device), mask)
                    terms["loss_temporal"] = terms.get("loss_temporal", 0.0) + float(moving.detach().mean()) / cfg.optim.grad_accum
                    per_sample = per_sample + cfg.flow.temporal_weight * moving
                if weight is not None:  # the method's per-sample weights, on every term
                    per_sample = per_sample * weight.to(per_sample.dtype)
                loss = per_sample.mean()
                for name, extra in inputs.extra_losses.items():
                    loss = loss + extra
                    terms[f"loss_{name}"] = terms.get(f"loss_{name}", 0.0) + float(extra.detach()) / cfg.optim.grad_accum
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(params, cfg.optim.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            terms["loss"] = terms.get("loss", 0.0) + float(loss.detach()) / cfg.optim.grad_accum
            terms["loss_diffusion"] = terms.get("loss_diffusion", 0.0) + float(per_sample.detach().mean()) / cfg.optim.grad_accum
            for task in set(inputs.info.get("tasks", [])):
                sel = [i for i, t in enumerate(inputs.info["tasks"]) if t == task]
                terms[f"loss/{task}"] = float(per_sample.detach()[sel].mean())
            window_samples += b * world
        schedule.step()
        if ema is not None:
            ema.step(trainable_parameters(accelerator.unwrap_model(model)))
        loss_value = terms["loss"]

        if step % cfg.train.log_every == 0 or step == last_step:
            # the logged loss is the mean over ranks (each rank sees its own shard)
            shared = torch.tensor([terms["loss"], terms["loss_diffusion"]], device=device)
            terms["loss"], terms["loss_diffusion"] = accelerator.reduce(shared, reduction="mean").tolist()
            elapsed = time.perf_counter() - window_start
            steps_in_window = cfg.train.log_every if step % cfg.train.log_every == 0 else step % cfg.train.log_every
            record = {
                "step": step,
                **{k: round(v, 6) for k, v in terms.items()},
                "lr": schedule.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "sigma_mean": float(sigma.mean()),
                "steps_per_s": steps_in_window / max(elapsed, 1e-9),
                "samples_per_s": window_samples / max(elapsed, 1e-9),
                "epoch": consumed // sampler.batches_per_epoch,
            }
            logger.log(record)
            window_start, window_samples = time.perf_counter(), 0
        logger.advance(step, loss_value)

        if cfg.sample.every and step % cfg.sample.every == 0:
            # every rank gathers (a collective under FSDP); the main rank samples from an unsharded copy
            sample_state = ema_state_dict(model, ema)
            if accelerator.is_main_process:
                write_samples(pipe, sample_state, cfg, out / "samples" / f"step-{step:08d}.png")
            accelerator.wait_for_everyone()

        if (cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0) or step == last_step:
            rngs = gather_object([rng_state(generator)])  # every rank's generator goes into the checkpoint
            # full (unsharded) states, gathered on every rank — a collective under FSDP
            full = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=has_frozen)
            model_state = get_model_state_dict(model, options=full)
            optimizer_state = get_optimizer_state_dict(model, optimizer, options=full)
            ema_state = full_ema_state(ema) if ema is not None else None
            if accelerator.is_main_process:
                save_checkpoint(
                    Checkpoint(
                        step=step,
                        model=model_state,
                        state={"batches_consumed": consumed, "lr_schedule": schedule.state_dict(), "config": cfg.to_dict(),
                               "world_size": world},
                        optimizer=optimizer_state,
                        ema=ema_state,
                        rng={"ranks": rngs},
                    ),
                    out / "checkpoints",
                    keep=cfg.train.keep_checkpoints,
                )
            accelerator.wait_for_everyone()

    # 6. Are the ranks' weights identical? (DDP keeps them so; this checks it.)
    checksums = gather_object([params_checksum(accelerator.unwrap_model(model))])
    in_sync = len(set(checksums)) == 1
    logger.log({"step": last_step, "ranks": world, "ranks_in_sync": in_sync, "checksums": checksums})
    logger.close()

    # 7. Export the pipeline with the EMA weights (at the end of the recipe, not at a stop).
    pipeline_dir = None
    if cfg.train.export and last_step == cfg.train.steps:
        export_state = ema_state_dict(model, ema)  # a collective under FSDP
        if accelerator.is_main_process:
            lora = cfg.lora.enabled
            pipeline_dir = export_model(pipe, export_state, out / ("lora" if lora else "pipeline"), lora)
    accelerator.wait_for_everyone()
    # The DDP/FSDP wrapper goes before the process group. Freed after it, the wrapper would hold the last
    # reference to the gloo group, whose destructor joins gloo's threads while holding the GIL — which one
    # of them may still need, to free a finished collective's tensors: a hang at exit (pytorch#56297; seen in
    # 1 of 10 two-rank CPU runs here). Freed first, the group ends in destroy_process_group, which releases it.
    del model, optimizer
    accelerator.free_memory()
    accelerator.end_training()
    return TrainResult(out, last_step, loss_value, pipeline_dir, in_sync)


# ----------------------------------------------------------------------------- samples, export


def ema_state_dict(model: torch.nn.Module, ema: EMAModel | None) -> dict[str, torch.Tensor]:
    """The backbone's full state dict with the EMA weights in place of the parameters.

    A collective under FSDP: every rank must call it. Works the same for plain and DDP models.
    """
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if ema is not None:
        names = [name for name, p in accelerator_free_named_parameters(model) if p.requires_grad]
        for name, shadow in zip(names, ema.shadow_params):
            state[name] = _full(shadow).detach().cpu()
    return state


def accelerator_free_named_parameters(model: torch.nn.Module):
    """Parameter names without DDP's ``module.`` prefix (the names of the state dict above); EMA shadows the
    trainable ones, in this order."""
    inner = model.module if hasattr(model, "module") else model
    return inner.named_parameters()


def with_current_defaults(config: dict) -> dict:
    """A checkpoint's recipe read by the current schema: options added since it was written take their
    defaults, so they do not count as changes on resume (an unreadable one is compared as it is)."""
    try:
        return RecipeConfig.model_validate(config).to_dict()
    except ValueError:
        return config


def with_denoiser_names(ckpt: Checkpoint) -> Checkpoint:
    """A checkpoint written when the trained module was the bare backbone (before :class:`Denoiser`),
    renamed to the denoiser's parameter names (``transformer.*``); newer checkpoints pass unchanged."""
    if any(name.startswith("transformer.") for name in ckpt.model):
        return ckpt
    ckpt.model = {f"transformer.{k}": v for k, v in ckpt.model.items()}
    if ckpt.optimizer is not None:
        opt = dict(ckpt.optimizer)
        opt["state"] = {f"transformer.{k}": v for k, v in opt.get("state", {}).items()}
        opt["param_groups"] = [
            {**g, "params": [f"transformer.{p}" for p in g["params"]]} for g in opt.get("param_groups", [])
        ]
        ckpt.optimizer = opt
    return ckpt


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def unsharded_copy(pipe: AnyFramePipeline, state: dict[str, torch.Tensor]) -> tuple[STIVTransformer, torch.nn.Module]:
    """A fresh, unwrapped backbone and conditioning method holding the denoiser ``state``
    (``transformer.*``, ``conditioning.*``), for sampling and export on one process."""
    copies = []
    for module, prefix in ((pipe.transformer, "transformer."), (pipe.conditioning, "conditioning.")):
        config = {k: v for k, v in module.config.items() if not k.startswith("_")}
        copy = type(module)(**config)
        if getattr(module, "peft_config", None):  # LoRA: the same adapters, so the state's names fit
            for name, adapter in module.peft_config.items():
                copy.add_adapter(adapter, adapter_name=name)
        copy.load_state_dict(_sub_state(state, prefix))
        if _dtype_of(copy) != _dtype_of(module):
            copy.to(_dtype_of(module))
        copies.append(copy.eval())
    return copies[0], copies[1]


def _dtype_of(module: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _pipeline_with(pipe: AnyFramePipeline, transformer: STIVTransformer, conditioning) -> AnyFramePipeline:
    return AnyFramePipeline(**{**pipe.components, "transformer": transformer, "conditioning": conditioning})


@torch.no_grad()
def write_samples(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], cfg: RecipeConfig, path: Path) -> None:
    """A filmstrip per sample prompt, stacked vertically, from the given (EMA) weights."""
    sampler = _pipeline_with(pipe, *unsharded_copy(pipe, state))
    sampler.set_progress_bar_config(disable=True)
    out = sampler(list(cfg.sample.prompts), num_inference_steps=cfg.sample.steps,
                  guidance_scale=cfg.sample.guidance_scale, seed=cfg.seed)
    strips = [filmstrip(to_uint8(clip)) for clip in out.frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(strips, axis=0)).save(tmp, format="PNG")


def export_checkpoint(checkpoint: str | Path, out: str | Path, ema: bool = True) -> Path:
    """The pipeline folder of a checkpoint (its EMA weights, or the raw ones with ``ema=False``), built by
    the recipe the checkpoint records — for a run stopped at a checkpoint, or any step of one. The
    recipe's ``init`` is skipped (the checkpoint holds every weight); its ``model.pretrained`` / ``model.vae``
    folders must exist (they give the frozen encoders)."""
    ckpt = with_denoiser_names(load_checkpoint(resolve_checkpoint(str(checkpoint), Path(checkpoint).parent)))
    try:
        cfg = RecipeConfig.model_validate(ckpt.state["config"])
    except ValueError as exc:
        raise AnyframeInputError(f"{checkpoint}: its recorded recipe is not valid: {' '.join(str(exc).split())}") from None
    pipe = build_components(cfg.model_copy(update={"init": type(cfg.init)()}))
    denoiser = Denoiser(pipe.transformer, pipe.conditioning)
    state = {**denoiser.state_dict(), **ckpt.model}  # (a LoRA checkpoint: the frozen weights from the recipe)
    if ema:
        if ckpt.ema is None:
            raise AnyframeInputError(f"{checkpoint} holds no EMA weights (export the raw ones with ema=False / --raw)")
        names = [name for name, p in denoiser.named_parameters() if p.requires_grad]
        shadow = ckpt.ema["shadow_params"]
        if len(shadow) != len(names):
            raise AnyframeInputError(f"{checkpoint}: {len(shadow)} EMA tensors for {len(names)} parameters")
        state.update(zip(names, shadow))
    try:
        return export_model(pipe, state, Path(out), lora=cfg.lora.enabled)
    except RuntimeError as exc:  # load_state_dict: the recipe does not build this checkpoint's model
        raise AnyframeInputError(f"{checkpoint} does not fit its recorded recipe: {' '.join(str(exc).split())[:300]}") from None


def export_pipeline(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], path: Path) -> Path:
    """Save the pipeline folder (EMA weights) that ``anyframe generate --model`` loads."""
    _pipeline_with(pipe, *unsharded_copy(pipe, state)).save_pretrained(path)
    return path


def export_lora(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], path: Path) -> Path:
    """Save a LoRA fine-tune (EMA weights): the adapter in diffusers' LoRA format (``transformer.*`` keys in
    ``pytorch_lora_weights.safetensors``, which ``AnyFramePipeline.load_lora`` and diffusers'
    ``WanPipeline.load_lora_weights`` both read) and, if the method has its own layers, ``conditioning/``."""
    from diffusers import WanPipeline
    from peft.utils import get_peft_model_state_dict

    transformer, conditioning = unsharded_copy(pipe, state)
    layers = get_peft_model_state_dict(transformer)
    with atomic_dir(path) as tmp:
        # the classmethod only formats and writes the file: any pipeline's LoRA layout is the same
        WanPipeline.save_lora_weights(tmp, transformer_lora_layers=layers, safe_serialization=True)
        if any(True for _ in conditioning.parameters()):
            conditioning.save_pretrained(tmp / "conditioning")
    return path


def export_model(pipe: AnyFramePipeline, state: dict[str, torch.Tensor], path: Path, lora: bool) -> Path:
    """The export of a run: the adapter (LoRA runs) or the whole pipeline folder."""
    return export_lora(pipe, state, path) if lora else export_pipeline(pipe, state, path)
