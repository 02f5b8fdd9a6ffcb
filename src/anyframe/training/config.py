"""Training recipes: YAML files validated into typed configs.

A recipe names everything a run needs; ``--set a.b=value`` overrides any key (the value is parsed as
YAML, so ``--set optim.lr=3e-4`` is a float and ``--set ema.enabled=false`` a bool). Unknown keys and
bad values are errors that name the key, raised as :class:`~anyframe.errors.AnyframeInputError`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from anyframe.conditioning.registry import METHODS, model_option_fields, validate_model_options
from anyframe.errors import AnyframeInputError
from anyframe.models.config_check import check_config_values, unknown_keys
from anyframe.models.dit import STIVTransformer


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN or infinite float anywhere in a recipe (``lr: .inf``) is an error, not a run that
    # trains to NaN
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# The recipe's seed seeds every generator of a run (one per rank: seed·1,000,003 + rank, which must stay below 2^63)
MAX_RECIPE_SEED = 2**32 - 1


PRETRAINED_BACKBONE_OVERRIDES = ("text_refiner_layers",)


class ComponentsConfig(_Strict):
    """Where the pipeline being trained comes from."""

    # a randomly initialised pipeline: a world preset (STIV), or a tiny random Wan (CPU smoke runs and tests)
    preset: Literal["tiny", "S", "wan-tiny"] | None = "tiny"
    pretrained: str | None = None  # or a pipeline folder to continue from (an anyframe folder, or a diffusers Wan2.1 one)
    vae: str | None = None  # replace the autoencoder (e.g. one trained first) by this folder
    # backbone config overrides; on a pretrained pipeline only those that add identity-initialised
    # layers (PRETRAINED_BACKBONE_OVERRIDES)
    backbone: dict[str, Any] = Field(default_factory=dict)
    shift: float = Field(1.0, gt=0)  # the sampler's timestep shift stored in the pipeline
    # grow the tokenizer by the world paraphrases' words (anyframe.world.paraphrase.WORD_MEANINGS): each new
    # embedding row starts as the row of the word it means (models.text_encoder.grow_vocabulary)
    extra_words: Literal["none", "paraphrases"] = "none"

    @model_validator(mode="after")
    def _one_source(self):
        if (self.preset is None) == (self.pretrained is None):
            raise ValueError("give exactly one of model.preset and model.pretrained")
        if self.preset is not None:  # the overrides against the backbone class they go to
            cls = _backbone_class(self.preset)
            unknown = unknown_keys(cls, self.backbone)
            if unknown:
                raise ValueError(f"backbone.{unknown[0]}: not an option of the {cls.__name__} backbone")
            try:
                check_config_values(cls, self.backbone, "backbone")
            except AnyframeInputError as exc:
                raise ValueError(str(exc)) from None
        if self.pretrained is not None and set(self.backbone) - set(PRETRAINED_BACKBONE_OVERRIDES):
            raise ValueError(
                "on a pretrained pipeline model.backbone may only set "
                f"{', '.join(PRETRAINED_BACKBONE_OVERRIDES)} (layers added as the identity)"
            )
        return self


def _backbone_class(preset: str) -> type:
    if preset == "wan-tiny":
        from diffusers import WanTransformer3DModel

        return WanTransformer3DModel
    return STIVTransformer



class LoraConfig(_Strict):
    """LoRA fine-tuning (peft): the backbone is frozen and low-rank adapters on ``target_modules`` train
    (with the conditioning method's own layers, if any). Default targets (``target_modules: null``): the
    backbone's own ``lora_target_modules`` — every attention's q/k/v/o and the feed-forward, on Wan and on the
    STIV backbone. Checkpoints then hold only the trained weights; the export is the adapter
    (``<output>/lora``, diffusers' LoRA format), loaded with ``--lora``."""

    enabled: bool = False
    rank: int = Field(16, ge=1)
    alpha: float | None = Field(None, gt=0)  # default: the rank (scale 1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = None


class InitConfig(_Strict):
    """Progressive training (STIV §2.4): initialise the backbone from another model's weights."""

    from_image_model: str | None = None  # a T2I backbone folder: temporal layers start fresh
    from_smaller_model: str | None = None  # lower resolution / fewer frames: RoPE positions interpolated

    @model_validator(mode="after")
    def _one(self):
        if self.from_image_model and self.from_smaller_model:
            raise ValueError("give at most one of init.from_image_model and init.from_smaller_model")
        return self


# The options every method took when the recipe's conditioning section was one flat union of all methods'
# options, at their defaults then: a recipe (or a checkpoint's recorded recipe) written that way still reads —
# an option at this default that the chosen method does not take is dropped.
LEGACY_CONDITIONING_DEFAULTS = {"clean_timestep": False, "text_dropout": 0.10, "image_dropout": 0.08, "task_weights": {},
                                "max_k": None, "latent_shift": True, "fourier": True, "detail_range": [0.05, 0.95]}


def _method_options(name: str, options: dict) -> dict:
    """``options`` for the method ``name``, validated by the registry (defaults filled in); legacy union keys at
    their old defaults are dropped."""
    if name not in METHODS or name == "stack":
        raise ValueError(f"unknown conditioning method {name!r} ({', '.join(sorted(set(METHODS) - {'stack'}))})")
    taken = model_option_fields(METHODS[name])
    for key, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value}")
    options = {k: v for k, v in options.items()
               if k in taken or k not in LEGACY_CONDITIONING_DEFAULTS or _as_json(v) != _as_json(LEGACY_CONDITIONING_DEFAULTS[k])}
    return validate_model_options(name, options)


def _as_json(value):
    return json.loads(json.dumps(value, default=list))


class ConditioningConfig(BaseModel):
    """The conditioning method and its own options, flat: ``{method: flashi2v, latent_shift: false, ...}``.
    Which options a method takes is its constructor's (``anyframe.conditioning.registry``): an option of another
    method is an error that names both. ``addons`` adds more methods on the same model (a
    ``MethodStack``), each ``{method: NAME, <its options>}``: e.g. ``[{method: loss_weighting, object_weight: 4}]``.
    The section as read holds every option with its default filled in (what the run used)."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    method: str = "frame_replacement"
    addons: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _options_of_the_method(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        method = data.pop("method", "frame_replacement")
        if not isinstance(method, str):
            # ValueError, not TypeError: in a validator pydantic turns only ValueError into a ValidationError
            raise ValueError(f"method must be a method name, got {method!r}")  # noqa: TRY004
        addons = data.pop("addons", None) or []
        if not isinstance(addons, list) or any(not isinstance(a, dict) or "method" not in a for a in addons):
            raise ValueError("addons must be a list of {method: NAME, <options>}")
        checked = []
        for addon in addons:
            addon = dict(addon)
            name = addon.pop("method")
            checked.append({"method": name, **_method_options(name, addon)})
        return {"method": method, "addons": checked, **_method_options(method, data)}

    def method_options(self) -> dict:
        """Keyword arguments of the method's constructor (``anyframe.conditioning.build_method``)."""
        return dict(self.model_extra or {})


# What each data source gives a training batch (``TrainingBatch`` fields beyond the latents and the text), and
# what a latent cache keeps; the methods' ``batch_fields`` must be among them.
SOURCE_FIELDS = {
    "toy": frozenset({"pixels", "captions"}),
    "manifest": frozenset({"pixels", "captions"}),
    "world": frozenset({"pixels", "captions", "frame_captions", "object_masks", "regional_captions"}),
}
CACHE_FIELDS = frozenset({"captions"})


class ToyDataConfig(_Strict):
    num_clips: int = Field(64, ge=1, le=1_000_000)
    num_frames: int = Field(8, ge=1, le=256)
    size: int = Field(16, ge=4, le=512)


class WorldDataConfig(_Strict):
    num_clips: int = Field(100_000, ge=1)
    split: Literal["train", "ood_color_shape", "ood_background", "ood_style", "more_objects"] = "train"
    size: int = Field(32, ge=8, le=512)  # (the limits of `anyframe world render`)
    frames: int = Field(16, ge=1, le=256)
    num_objects: int | None = Field(None, ge=1, le=8)  # every scene with this many objects (a curriculum); None: the split's
    paraphrase: float = Field(0.0, ge=0, le=1)  # the share of clips captioned in free form (world.paraphrase)
    duplicates: float = Field(0.0, ge=0, le=1)  # the share of scenes given two objects of one look (counts, plurals)
    cmi: str | None = None  # a CMI table of these clips (`anyframe clip cmi`): meta["cmi"] per clip, for JDM's weighting


class ManifestDataConfig(_Strict):
    path: str
    num_frames: int = Field(16, ge=1)
    stride: int | None = Field(None, ge=1)
    fps: float | None = Field(None, gt=0)
    size: tuple[int, int] | None = None
    buckets: list[tuple[int, int]] | None = None
    lengths: list[int] | None = None
    crop: Literal["center", "random"] = "center"

    @model_validator(mode="after")
    def _sampling(self):
        if self.stride is not None and self.fps is not None:
            raise ValueError("give at most one of data.manifest.stride and data.manifest.fps")
        if self.size is None and self.buckets is None:
            raise ValueError("give data.manifest.size or data.manifest.buckets")
        return self


class DataConfig(_Strict):
    source: Literal["toy", "world", "manifest"] = "toy"
    toy: ToyDataConfig = Field(default_factory=ToyDataConfig)
    world: WorldDataConfig = Field(default_factory=WorldDataConfig)
    manifest: ManifestDataConfig | None = None
    cache_dir: str | None = None  # encode once into latent shards here, then train from them
    batch_size: int = Field(8, ge=1, le=65_536)  # per process
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _source(self):
        if self.source == "manifest" and self.manifest is None:
            raise ValueError("data.source is 'manifest' but data.manifest is missing")
        return self


class FlowConfig(_Strict):
    sigma_distribution: Literal["logit_normal", "uniform"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    shift: float = Field(1.0, gt=0)


class OptimConfig(_Strict):
    optimizer: Literal["adamw", "adafactor"] = "adamw"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    # wsd: warmup, stable, then a cooldown over the last ``decay_steps`` of train.steps — branch a cooldown off a
    # constant run's checkpoint (--set optim.schedule=wsd --set optim.decay_steps=N --resume) and the run goes on
    schedule: Literal["constant", "cosine", "wsd"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    decay_steps: int = Field(0, ge=0)  # wsd only
    max_grad_norm: float = Field(1.0, gt=0)
    grad_accum: int = Field(1, ge=1)
    # LR multipliers by parameter-name prefix of the denoiser ("transformer.", "conditioning."; the longest
    # matching prefix wins), e.g. {conditioning.methods.0.shift: 10} for a new layer that learns slowly
    lr_scale: dict[str, float] = Field(default_factory=dict)
    # > 0: the lr_scale multipliers hold for the first N steps only, then every part trains at the schedule's
    # LR — a first phase for new layers (lr_scale {transformer.: 0.01, transformer.proj_out.: 1}), then a joint
    # fine-tune, in one run (the LR stays a function of the step alone, so resume is exact); 0: throughout
    lr_scale_steps: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _lr_scale(self):
        bad = {k: v for k, v in self.lr_scale.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"optim.lr_scale: every multiplier must be a finite number > 0, got {bad}")
        if self.lr_scale_steps and not self.lr_scale:
            raise ValueError("optim.lr_scale_steps limits optim.lr_scale to the first steps, but optim.lr_scale is empty")
        return self

    @model_validator(mode="after")
    def _decay(self):
        if self.schedule == "wsd" and self.decay_steps < 1:
            raise ValueError("optim.schedule wsd needs optim.decay_steps ≥ 1 (the cooldown's length)")
        if self.schedule != "wsd" and self.decay_steps:
            raise ValueError(f"optim.decay_steps applies to optim.schedule wsd, not {self.schedule}")
        return self


class EMAConfig(_Strict):
    enabled: bool = True
    decay: float = Field(0.999, gt=0, lt=1)
    update_after_step: int = Field(0, ge=0)


class SampleConfig(_Strict):
    every: int = Field(0, ge=0)  # 0 = never
    prompts: list[str] = Field(default_factory=lambda: ["a red square moves right"])
    steps: int = Field(10, ge=1)
    guidance_scale: float = Field(4.0, ge=1)


class TrainConfig(_Strict):
    steps: int = Field(100, ge=1, le=10**9)
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(0, ge=0)  # 0 = only at the end
    keep_checkpoints: int = Field(2, ge=1)
    keep_every: int = Field(0, ge=0)  # also keep every checkpoint at a multiple of this step (curves); 0 = none
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, none on CPU
    gradient_checkpointing: bool = False
    export: bool = True  # write the final pipeline folder (EMA weights)
    # what trains: the backbone and the method's layers ("all"), or the method's layers alone ("conditioning": e.g.
    # ReasonDiff's stage 2 trains AlignFormer with the backbone frozen)
    trainable: Literal["all", "conditioning"] = "all"


class RecipeConfig(_Strict):
    """A whole training recipe."""

    name: str = "run"
    seed: int = Field(0, ge=0, le=MAX_RECIPE_SEED)
    output_dir: str = "runs/run"
    model: ComponentsConfig = Field(default_factory=ComponentsConfig)
    init: InitConfig = Field(default_factory=InitConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    conditioning: ConditioningConfig = Field(default_factory=ConditioningConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _loss_weights_moved(cls, data):
        """``flow.object_weight`` / ``flow.temporal_weight`` (world-only loss weights) became the ``loss_weighting``
        method: a recipe that sets them gets that method as an addon; at 0 they are dropped."""
        if not isinstance(data, dict) or not isinstance(data.get("flow"), dict):
            return data
        flow = dict(data["flow"])
        weights = {k: flow.pop(k) for k in ("object_weight", "temporal_weight") if k in flow}
        if not weights:
            return data
        data = {**data, "flow": flow}
        if any(v for v in weights.values()):
            conditioning = dict(data.get("conditioning") or {})
            conditioning["addons"] = [*(conditioning.get("addons") or []), {"method": "loss_weighting", **weights}]
            data["conditioning"] = conditioning
        return data

    @model_validator(mode="after")
    def _data_gives_what_the_methods_train_from(self):
        methods = [(self.conditioning.method, self.conditioning.method_options()),
                   *((a["method"], {k: v for k, v in a.items() if k != "method"}) for a in self.conditioning.addons)]
        needed = frozenset().union(*(METHODS[name](**options).batch_fields for name, options in methods))
        cached = self.data.cache_dir is not None
        given = CACHE_FIELDS if cached else SOURCE_FIELDS[self.data.source]
        if self.data.source == "world" and self.data.world.cmi and not cached:
            given = given | {"cmi"}  # meta["cmi"] per clip, from the table
        missing = sorted(needed - given)
        if missing == ["cmi"] and self.data.source == "world" and not cached:
            raise ValueError("the jdm method weights by the clips' CMI (use_cmi): give data.world.cmi, a table from "
                             "`anyframe clip cmi` for these clips, or set use_cmi: false")
        if missing:
            where = "a latent cache (data.cache_dir)" if cached else f"data.source {self.data.source}"
            names = "+".join(name for name, _ in methods)
            raise ValueError(f"{where} does not give {', '.join(missing)}, which the {names} method trains from")
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


# Keys that may differ between a run and its resumption without changing the training curve.
RESUMABLE_DIFFERENCES = {"train.steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                         "train.keep_every",
                         "train.export", "sample.every", "sample.prompts", "sample.steps", "sample.guidance_scale",
                         "output_dir", "name", "data.num_workers"}


def _format_error(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc or '(top level)'}: {msg}")
    return f"{source}: " + "; ".join(parts)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], parsed value)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or any(not p for p in key.strip().split(".")):
        raise AnyframeInputError(f"--set expects key.path=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set dotted keys in a nested dict (creating sub-dicts); validation happens afterwards."""
    data = dict(data)
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise AnyframeInputError(f"--set {item}: {part} is not a section")
            node[part] = child = dict(child)
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: Path, what: str = "file") -> Any:
    """A YAML file's content (None for an empty file); unreadable, non-UTF-8 or malformed YAML is an
    :class:`AnyframeInputError` naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise AnyframeInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AnyframeInputError(f"{what} {path} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})") from None
    if "\0" in text:
        raise AnyframeInputError(f"{what} {path} is a binary file, not YAML text")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AnyframeInputError(f"{what} {path}: not valid YAML: {' '.join(str(exc).split())}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, schema: type[BaseModel] | None = None):
    """Read a YAML recipe (or defaults), apply ``--set`` overrides, validate against ``schema`` (default
    :class:`RecipeConfig`)."""
    data: dict = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise AnyframeInputError(f"config not found: {path}")
        data = read_yaml(path, "recipe")
        if data is None:
            raise AnyframeInputError(f"recipe {path} is empty; give its sections (see configs/toy.yaml), or omit "
                                     "--config to train the defaults")
        if not isinstance(data, dict):
            raise AnyframeInputError(f"{path}: the top level must be a mapping of sections")
    data = apply_overrides(data, overrides or [])
    try:
        return (schema or RecipeConfig).model_validate(data)
    except ValidationError as exc:
        raise AnyframeInputError(_format_error(exc, source)) from None


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = set(a) | set(b)
    out = []
    for k in sorted(keys):
        name = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, name + ".")
        elif va != vb:
            out.append(name)
    return out
