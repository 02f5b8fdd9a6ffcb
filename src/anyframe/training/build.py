"""Building a run: the pipeline being trained (components, initialisation, its conditioning method, LoRA) and its
data set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from peft import LoraConfig as PeftLoraConfig

from anyframe.conditioning import ConditioningMethod, MethodStack, build_method
from anyframe.data.latent_cache import LatentCacheDataset, build_latent_cache, encoders_fingerprint
from anyframe.data.toy import ToyMotionDataset
from anyframe.data.video_manifest import ManifestVideoDataset
from anyframe.data.world import WorldDataset
from anyframe.errors import AnyframeInputError
from anyframe.models.autoencoder import load_autoencoder
from anyframe.models.dit import STIVTransformer
from anyframe.models.text_encoder import grow_vocabulary
from anyframe.pipelines import AnyFramePipeline, build_wan_pipeline, build_world_pipeline
from anyframe.training.config import ConditioningConfig, RecipeConfig
from anyframe.training.progressive import (
    init_from_image_model,
    init_from_smaller_model,
    smaller_model_overrides,
)
from anyframe.world import world_vocabulary
from anyframe.world.paraphrase import WORD_MEANINGS


def build_conditioning(cfg: ConditioningConfig, backbone) -> ConditioningMethod:
    """The recipe's conditioning method sized for ``backbone``: one method, or a stack with its addons."""
    primary = build_method(cfg.method, backbone, **cfg.method_options())
    if not cfg.addons:
        return primary
    addons = [build_method(addon["method"], backbone, **{k: v for k, v in addon.items() if k != "method"})
              for addon in cfg.addons]
    return MethodStack.of([primary, *addons])


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
    if m.extra_words == "paraphrases":
        pipe.tokenizer = grow_vocabulary(pipe.tokenizer, pipe.text_encoder, WORD_MEANINGS, seed=cfg.seed)
    if cfg.init.from_image_model:
        init_from_image_model(pipe.transformer, STIVTransformer.from_pretrained(cfg.init.from_image_model))
    if small is not None:
        init_from_smaller_model(pipe.transformer, small)
    # The method last: it may add (zero-initialised) input channels and context groups to the initialised backbone.
    method = build_conditioning(cfg.conditioning, pipe.transformer)
    if m.pretrained and type(pipe.conditioning) is type(method):
        try:  # continue the pretrained method's own layers (φ, embeddings) too
            method.load_state_dict(pipe.conditioning.state_dict())
        except RuntimeError as exc:
            raise AnyframeInputError(f"the pretrained {cfg.conditioning.method} layers do not fit this recipe: {exc}") from None
    shapes = {n: p.shape for n, p in pipe.transformer.named_parameters()}
    pipe.transformer = method.adapt_backbone(pipe.transformer)
    adapted = adapted_parameters(shapes, pipe.transformer)
    pipe.conditioning = method
    if isinstance(pipe.transformer, STIVTransformer):  # what the export will say it was trained on
        before = pipe.transformer.config.trained_window if m.pretrained else None
        pipe.transformer.register_to_config(trained_window=merge_windows(before, data_window(cfg)))
    if cfg.lora.enabled:
        add_lora(pipe.transformer, cfg.lora, whole=adapted)
    if cfg.train.trainable == "conditioning":
        if not any(True for _ in method.parameters()):
            raise AnyframeInputError(f"train.trainable: conditioning — the {cfg.conditioning.method} method "
                                     "has no layers of its own to train")
        pipe.transformer.requires_grad_(False)
    return pipe


def data_window(cfg: RecipeConfig) -> dict:
    """The frame counts, pixel sizes and frame strides a recipe's data trains on (a key left out: it varies)."""
    d = cfg.data
    if d.source in ("world", "toy"):
        frames, size = (d.world.frames, d.world.size) if d.source == "world" else (d.toy.num_frames, d.toy.size)
        return {"frames": [frames], "sizes": [[size, size]], "frame_strides": [1.0, 1.0]}
    m = d.manifest
    window: dict = {"frames": sorted(set(m.lengths or [m.num_frames]))}
    sizes = m.buckets or ([m.size] if m.size else None)
    if sizes:
        window["sizes"] = [list(s) for s in sizes]
    if m.stride and not m.fps:
        window["frame_strides"] = [float(m.stride)] * 2
    return window


def merge_windows(before: dict | None, now: dict) -> dict:
    """A model trained on ``before`` and then on ``now`` (a fine-tune): the union (a key either leaves out: out)."""
    if not before:
        return now
    merged = {}
    if "frames" in before and "frames" in now:
        merged["frames"] = sorted({int(f) for f in [*before["frames"], *now["frames"]]})
    if "sizes" in before and "sizes" in now:
        merged["sizes"] = sorted({tuple(int(v) for v in s) for s in [*before["sizes"], *now["sizes"]]})
        merged["sizes"] = [list(s) for s in merged["sizes"]]
    if "frame_strides" in before and "frame_strides" in now:
        strides = [float(v) for v in [*before["frame_strides"], *now["frame_strides"]]]
        merged["frame_strides"] = [min(strides), max(strides)]
    return merged


def adapted_parameters(shapes: dict[str, torch.Size], backbone: torch.nn.Module) -> list[str]:
    """The parameters of ``backbone`` that a method's ``adapt_backbone`` added or reshaped, given the parameter
    shapes before it (an inflated patch embedding or output projection, a new context group's layers)."""
    return [n for n, p in backbone.named_parameters() if shapes.get(n) != p.shape]


def add_lora(transformer: torch.nn.Module, lora, whole: Sequence[str] = ()) -> None:
    """Freeze ``transformer`` and give it peft LoRA adapters (``lora``: a :class:`LoraConfig`). The parameters
    named in ``whole`` — those the conditioning method added or reshaped (:func:`adapted_parameters`) — train in
    full instead: they start at zero, so a frozen copy would keep the method's inputs out of the model (its
    modules get no adapter). The export saves them beside the adapter (``export_lora``)."""
    transformer.requires_grad_(False)
    exclude = sorted({n.rsplit(".", 1)[0] for n in whole})
    config = PeftLoraConfig(r=lora.rank, lora_alpha=lora.alpha or lora.rank, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules or transformer.lora_target_modules),
                            exclude_modules=exclude or None, init_lora_weights=True)
    try:
        transformer.add_adapter(config)
    except ValueError as exc:  # peft: no module matches the targets
        raise AnyframeInputError(f"lora.target_modules: {' '.join(str(exc).split())[:300]}") from None
    params = dict(transformer.named_parameters())
    for name in whole:
        params[name].requires_grad_(True)


def build_dataset(cfg: RecipeConfig, pipe: AnyFramePipeline, accelerator: Accelerator):
    d = cfg.data
    if d.source == "toy":
        dataset = ToyMotionDataset(d.toy.num_clips, d.toy.num_frames, d.toy.size, seed=cfg.seed)
    elif d.source == "world":
        w = d.world
        dataset = WorldDataset(w.num_clips, w.split, w.size, w.frames, seed=cfg.seed, num_objects=w.num_objects,
                               paraphrase=w.paraphrase, duplicates=w.duplicates, cmi=w.cmi)
    else:
        m = d.manifest
        dataset = ManifestVideoDataset(
            manifest=m.path, num_frames=m.num_frames, stride=m.stride, fps=m.fps, size=m.size,
            buckets=m.buckets, lengths=m.lengths, crop=m.crop, seed=cfg.seed,
        )
    # (the config has checked that the data gives what the methods train from: RecipeConfig)
    if d.cache_dir is None:
        return dataset
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
