"""Training recipes: YAML files validated into typed configs.

A recipe names everything a run needs; ``--set a.b=value`` overrides any key (the value is parsed as
YAML, so ``--set optim.lr=3e-4`` is a float and ``--set ema.enabled=false`` a bool). Unknown keys and
bad values are errors that name the key, raised as :class:`~anyframe.errors.AnyframeInputError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anyframe.errors import AnyframeInputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @model_validator(mode="after")
    def _one_source(self):
        if (self.preset is None) == (self.pretrained is None):
            raise ValueError("give exactly one of model.preset and model.pretrained")
        if self.pretrained is not None and set(self.backbone) - set(PRETRAINED_BACKBONE_OVERRIDES):
            raise ValueError(
                "on a pretrained pipeline model.backbone may only set "
                f"{', '.join(PRETRAINED_BACKBONE_OVERRIDES)} (layers added as the identity)"
            )
        return self


# q/k/v/o of self- and cross-attention (with I2V's image key/value projections) and the feed-forward
WAN_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj", "ffn.net.0.proj", "ffn.net.2")


class LoraConfig(_Strict):
    """LoRA fine-tuning (peft): the backbone is frozen and low-rank adapters on ``target_modules`` train
    (with the conditioning method's own layers, if any). Default targets: q/k/v/o of the self- and
    cross-attention of every Wan block (I2V: also the image key/value projections) and its feed-forward. Checkpoints then hold only the trained
    weights; the export is the adapter (``<output>/lora``, diffusers' LoRA format)."""

    enabled: bool = False
    rank: int = Field(16, ge=1)
    alpha: float | None = Field(None, gt=0)  # default: the rank (scale 1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(WAN_LORA_TARGETS))


class InitConfig(_Strict):
    """Progressive training (STIV §2.4): initialise the backbone from another model's weights."""

    from_image_model: str | None = None  # a T2I backbone folder: temporal layers start fresh
    from_smaller_model: str | None = None  # lower resolution / fewer frames: RoPE positions interpolated

    @model_validator(mode="after")
    def _one(self):
        if self.from_image_model and self.from_smaller_model:
            raise ValueError("give at most one of init.from_image_model and init.from_smaller_model")
        return self


class ConditioningConfig(_Strict):
    """The conditioning method (``anyframe.conditioning.METHODS``) and the options of all methods. Which
    option belongs to which method is read from the method's constructor: setting an option the chosen
    method does not take is an error (frame replacement: ``clean_timestep``, ``task_weights``, ``max_k``;
    channel concat: ``task_weights``, ``max_k`` — tasks not named in ``task_weights`` get weight 0;
    FlashI2V: ``latent_shift``, ``fourier``, ``detail_range``; all: the two dropout rates)."""

    method: Literal["frame_replacement", "channel_concat", "flashi2v", "wan_i2v"] = "frame_replacement"
    clean_timestep: bool = False
    text_dropout: float = Field(0.10, ge=0, le=1)
    image_dropout: float = Field(0.08, ge=0, le=1)
    task_weights: dict[Literal["t2v", "ti2v", "any_frame", "first_last", "first_k"], float] = Field(default_factory=dict)
    max_k: int | None = Field(None, ge=1)
    latent_shift: bool = True
    fourier: bool = True
    detail_range: tuple[float, float] = (0.05, 0.95)

    def _taken(self) -> set[str]:
        """The options the chosen method's constructor takes."""
        import inspect

        from anyframe.conditioning import METHODS

        return set(inspect.signature(METHODS[self.method].__init__).parameters) & (set(type(self).model_fields) - {"method"})

    @model_validator(mode="after")
    def _options_of_the_method(self):
        taken = self._taken()
        for option in sorted(set(type(self).model_fields) - {"method"} - taken):
            if getattr(self, option) != type(self).model_fields[option].get_default(call_default_factory=True):
                raise ValueError(f"{option} does not apply to the {self.method} method")
        if "latent_shift" in taken and not (self.latent_shift or self.fourier):
            raise ValueError(f"{self.method} needs latent_shift, fourier or both")
        lo, hi = self.detail_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"detail_range must satisfy 0 <= lo <= hi <= 1, got {list(self.detail_range)}")
        return self

    def method_options(self) -> dict:
        """Keyword arguments of the method's constructor (``anyframe.conditioning.build_method``)."""
        return {name: getattr(self, name) for name in sorted(self._taken())}

    @field_validator("task_weights")
    @classmethod
    def _weights(cls, value):
        if any(w < 0 for w in value.values()):
            raise ValueError("task weights must be non-negative")
        if value and sum(value.values()) <= 0:
            raise ValueError("task weights must not all be zero")
        return value


class ToyDataConfig(_Strict):
    num_clips: int = Field(64, ge=1)
    num_frames: int = Field(8, ge=1)
    size: int = Field(16, ge=4)


class WorldDataConfig(_Strict):
    num_clips: int = Field(100_000, ge=1)
    split: Literal["train", "ood_color_shape", "ood_background", "ood_style", "more_objects"] = "train"
    size: int = Field(32, ge=8)
    frames: int = Field(16, ge=1)
    num_objects: int | None = Field(None, ge=1, le=8)  # every scene with this many objects (a curriculum); None: the split's


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
    batch_size: int = Field(8, ge=1)  # per process
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
    # Extra loss weight on object pixels: an element's weight is 1 + object_weight × the fraction of its
    # latent cell the objects cover (the clips' masks: world data; manifest clips have none). 0: uniform.
    object_weight: float = Field(0.0, ge=0)
    # Weight of an extra loss term on the frame-to-frame change of the error (flow.path.temporal_difference_loss:
    # errors that move, i.e. motion); 0: none.
    temporal_weight: float = Field(0.0, ge=0)


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
    steps: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(0, ge=0)  # 0 = only at the end
    keep_checkpoints: int = Field(2, ge=1)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, none on CPU
    gradient_checkpointing: bool = False
    export: bool = True  # write the final pipeline folder (EMA weights)


class RecipeConfig(_Strict):
    """A whole training recipe."""

    name: str = "run"
    seed: int = 0
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

    @model_validator(mode="after")
    def _object_weight_needs_masks(self):
        if self.flow.object_weight > 0 and (self.data.source != "world" or self.data.cache_dir is not None):
            raise ValueError("flow.object_weight needs the objects' masks: data.source 'world', without data.cache_dir")
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


# Keys that may differ between a run and its resumption without changing the training curve.
RESUMABLE_DIFFERENCES = {"train.steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
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
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise AnyframeInputError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
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
