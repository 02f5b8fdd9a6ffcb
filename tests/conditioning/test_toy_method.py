"""Adding a method is adding a file: two toy conditioning methods written here, on the protocol alone, generate
and train through the unchanged pipeline and recipe — alone, and combined with frame replacement.

- ``toy_brightness``: a per-request option (``brightness``) becomes a context-token group: a learned token scaled
  by the brightness, attended in its own zero-initialised cross-attention branch. In training the brightness is
  the clip's mean pixel value, so the model can learn to follow it.
- ``toy_clock``: one extra input channel (the frame's position in the clip, 0 … 1) and an auxiliary loss term.
"""

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (diffusers' loader looks it up here)
from safetensors.torch import load_file

from anyframe.conditioning import (
    ConditioningMethod,
    ConditionState,
    FrameReplacement,
    MethodStack,
    ModelInputs,
    TrainingInputs,
    register_method,
)
from anyframe.errors import AnyframeInputError
from anyframe.pipelines import AnyFramePipeline, GenerationRequest, Keyframe, build_world_pipeline
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import train

# ------------------------------------------------------------------------------------ the methods

WIDTH = 8  # the brightness tokens' width


@dataclass(frozen=True)
class BrightnessOptions:
    brightness: float | None = None  # the clip's mean pixel value in [−1, 1]; None: not conditioned

    def __post_init__(self):
        if self.brightness is not None and not -1.0 <= self.brightness <= 1.0:
            raise ValueError(f"brightness must be in [-1, 1], got {self.brightness}")


@dataclass
class BrightnessState(ConditionState):
    brightness: float | None = None

    @property
    def has_image(self) -> bool:  # a non-text condition is present: JIT-CFG's branches without it differ
        return self.brightness is not None


@register_method
class ToyBrightness(ConditioningMethod):
    name = "toy_brightness"
    summary = "a toy: the clip's brightness as context tokens"
    Options = BrightnessOptions
    context_groups: ClassVar[dict[str, int]] = {"toy_brightness": WIDTH}
    batch_fields = frozenset({"pixels"})

    @register_to_config
    def __init__(self, text_dropout: float = 0.1, image_dropout: float = 0.1):
        super().__init__()
        self.token = torch.nn.Parameter(torch.randn(1, 1, WIDTH))

    def encode(self, request, encoders) -> BrightnessState:
        return BrightnessState.of(encoders, brightness=self.options_of(request).brightness)

    def apply(self, inputs: ModelInputs, x, sigma, state: BrightnessState, branch) -> ModelInputs:
        given = state.brightness is not None and branch.image  # JIT-CFG's unconditional branch drops it
        value = torch.full((x.shape[0],), state.brightness if given else 0.0, device=x.device)
        return inputs.with_method_inputs(toy_brightness=value)

    def pre_backbone(self, inputs: ModelInputs) -> ModelInputs:
        value = inputs.method_inputs["toy_brightness"]
        tokens = value[:, None, None].to(self.token.dtype) * self.token  # [B, 1, WIDTH]
        return inputs.with_context_tokens("toy_brightness", tokens)

    def apply_training(self, inputs: TrainingInputs, batch, generator) -> TrainingInputs:
        value = batch.pixels.mean(dim=(1, 2, 3, 4)).cpu() * (~inputs.drop_image).float()
        return TrainingInputs(**{**inputs.__dict__, "model_inputs": inputs.model_inputs.with_method_inputs(toy_brightness=value)})


@register_method
class ToyClock(ConditioningMethod):
    name = "toy_clock"
    summary = "a toy: each frame's position as an input channel"

    @register_to_config
    def __init__(self, aux_weight: float = 0.01):
        super().__init__()

    @property
    def extra_in_channels(self) -> int:
        return 1

    @staticmethod
    def _clock(like: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = like.shape
        position = torch.linspace(0, 1, t, device=like.device, dtype=like.dtype)
        return position.view(1, 1, t, 1, 1).expand(b, 1, t, h, w)

    def apply(self, inputs, x, sigma, state, branch):
        return inputs.with_extra_channels(self._clock(x))

    def apply_training(self, inputs, batch, generator):
        mi = inputs.model_inputs
        return TrainingInputs(**{**inputs.__dict__, "model_inputs": mi.with_extra_channels(self._clock(mi.hidden_states))})

    def loss_terms(self, outputs, inputs, terms):
        per_sample = outputs.sample.float().mean(dim=(1, 2, 3, 4)) ** 2
        return {**terms, "clock": self.config.aux_weight * per_sample}


# ------------------------------------------------------------------------------------ generation

PROMPT = "a red square moves right"


def _latents(pipe, **kwargs):
    pipe.set_progress_bar_config(disable=True)
    return pipe(PROMPT, num_inference_steps=2, seed=3, output_type="latent", **kwargs).frames


def test_an_untrained_method_leaves_the_base_model_unchanged_and_generates():
    base = build_world_pipeline("tiny", seed=0)
    toy = build_world_pipeline("tiny", seed=0, method="toy_brightness")
    assert toy.transformer.context_groups == ("toy_brightness",)
    with torch.no_grad():  # a base model that is not trivially zero
        for pipe in (base, toy):
            torch.manual_seed(1)
            pipe.transformer.proj_out.weight.normal_(std=0.1)
    # the group's cross-attention branch starts at zero: exactly the base model's output
    assert torch.equal(_latents(toy, brightness=0.8), _latents(base))
    out = toy(PROMPT, brightness=-0.5, num_inference_steps=2, seed=0)
    assert out.frames.shape == (1, 8, 16, 16, 3) and out.request.options == {"brightness": -0.5}
    # once the branch is not zero, the option steers the output
    with torch.no_grad():
        for block in toy.transformer.blocks:
            block.context_attn["toy_brightness"].to_out.weight.normal_(std=0.5)
    assert not torch.equal(_latents(toy, brightness=0.8), _latents(toy, brightness=-0.8))


def test_its_options_are_validated_in_one_place():
    toy = build_world_pipeline("tiny", seed=0, method="toy_brightness")
    with pytest.raises(AnyframeInputError, match=r"brightness must be in \[-1, 1\]"):
        toy.validate(GenerationRequest(prompt=PROMPT, options={"brightness": 3.0}))
    with pytest.raises(AnyframeInputError, match="detail does not apply .* flashi2v"):
        toy.validate(GenerationRequest(prompt=PROMPT, options={"detail": 0.2}))
    with pytest.raises(AnyframeInputError, match="keyframes is not used by this model's method"):
        toy.validate(GenerationRequest(prompt=PROMPT, keyframes=[Keyframe(torch.zeros(16, 16, 3).numpy(), 0)]))
    plain = build_world_pipeline("tiny", seed=0)
    with pytest.raises(AnyframeInputError, match="an option of toy_brightness"):
        plain.validate(GenerationRequest(prompt=PROMPT, options={"brightness": 0.2}))


# ------------------------------------------------------------------------------------ training

SMALL = ["model.preset=tiny", "data.source=toy", "data.toy.num_clips=8", "data.toy.size=16", "data.toy.num_frames=8",
         "data.batch_size=4", "train.steps=3", "train.log_every=1", "optim.lr=3e-3", "ema.enabled=false"]


def test_the_recipe_trains_and_exports_a_method_from_one_file(tmp_path):
    cfg = load_config(None, [*SMALL, "conditioning.method=toy_brightness", f"output_dir={tmp_path / 'run'}"])
    result = train(cfg, progress=False)
    weights = load_file(tmp_path / "run" / "checkpoints" / "step-00000003" / "model.safetensors")
    assert weights["conditioning.token"].shape == (1, 1, WIDTH)
    branch = [k for k in weights if "toy_brightness" in k and k.endswith("to_out.weight")]
    assert branch and all(weights[k].abs().sum() > 0 for k in branch)  # the zero branch learned
    losses = [m["loss"] for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert len(losses) == 3 and None not in losses  # (a NaN or infinite loss is logged as null)
    pipe = AnyFramePipeline.from_pretrained(result.pipeline_dir)  # the exported folder names this module's class
    assert type(pipe.conditioning).__name__ == "ToyBrightness"
    assert pipe(PROMPT, brightness=0.3, num_inference_steps=2, seed=0).frames.shape == (1, 8, 16, 16, 3)


def test_two_toy_methods_combine_with_frame_replacement(tmp_path):
    # one model, three methods: their inputs, channels, context groups and loss terms all contribute
    stack = MethodStack.of([FrameReplacement(), ToyBrightness(), ToyClock()])
    assert stack.extra_in_channels == 1 and stack.context_groups == {"toy_brightness": WIDTH}
    base = build_world_pipeline("tiny", seed=0)
    combined = AnyFramePipeline(**{**base.components, "conditioning": stack,
                                   "transformer": stack.adapt_backbone(base.transformer)})
    assert combined.transformer.config.extra_in_channels == 1
    with torch.no_grad():
        for pipe in (base, combined):
            torch.manual_seed(1)
            pipe.transformer.proj_out.weight.normal_(std=0.1)
    image = (torch.rand(16, 16, 3) * 255).to(torch.uint8).numpy()
    keyframes = [Keyframe(image, 0), Keyframe(image, -1)]
    a = _latents(base, keyframes=keyframes)
    b = _latents(combined, keyframes=keyframes, brightness=0.4)
    assert torch.equal(a, b)  # new channel weights and the new branch start at zero

    cfg = load_config(None, [*SMALL, f"output_dir={tmp_path / 'run'}",
                             "conditioning.addons=[{method: toy_brightness}, {method: toy_clock, aux_weight: 0.5}]"])
    assert cfg.conditioning.addons[1] == {"method": "toy_clock", "aux_weight": 0.5}
    result = train(cfg, progress=False)
    record = [m for m in read_metrics(tmp_path / "run") if "loss" in m][-1]
    assert record["loss_clock"] > 0
    assert record["loss"] == pytest.approx(record["loss_diffusion"] + record["loss_clock"], rel=1e-5)
    pipe = AnyFramePipeline.from_pretrained(result.pipeline_dir)
    assert [m.name for m in pipe.conditioning.methods] == ["frame_replacement", "toy_brightness", "toy_clock"]
    out = pipe(PROMPT, keyframes=keyframes, brightness=0.4, num_inference_steps=2, seed=0, output_type="latent")
    clean = pipe.encode_keyframes(keyframes, 16, 16)  # (encoded together, as the pipeline encodes them)
    assert torch.equal(out.frames[:, :, [0, 7]], clean)  # frame replacement still exact inside the stack

    with pytest.raises(AnyframeInputError, match="aux_weight does not apply to the toy_brightness method"):
        load_config(None, [*SMALL, "conditioning.addons=[{method: toy_brightness, aux_weight: 1}]"])
