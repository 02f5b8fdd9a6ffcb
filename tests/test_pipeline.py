"""AnyFramePipeline end to end on a tiny, randomised world pipeline."""

import json

import numpy as np
import pytest
import torch

from anyframe import AnyframeInputError, AnyFramePipeline, Keyframe, build_world_pipeline
from anyframe.flow.guidance import JITCFG

NUM_FRAMES, SIZE = 8, 16  # the tiny preset


def _randomise(pipe, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pipe.transformer.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return pipe


def _make(clean_timestep=False):
    pipe = _randomise(build_world_pipeline("tiny", seed=0, method_options={"clean_timestep": clean_timestep}))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe():
    return _make()


def _image(seed):
    rng = np.random.default_rng(seed)
    return (rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)


KEYFRAME_CASES = {
    "ti2v": [0],
    "single_negative": [-3],
    "interpolation": [0, -1],
    "prediction": [0, 1, 2],
    "middle": [4],
}


@pytest.mark.parametrize("clean_timestep", [False, True])
@pytest.mark.parametrize("case", list(KEYFRAME_CASES))
def test_replaced_frames_are_bit_exact(case, clean_timestep, pipe):
    p = _make(clean_timestep=True) if clean_timestep else pipe
    kfs = [Keyframe(_image(i), idx) for i, idx in enumerate(KEYFRAME_CASES[case])]
    out = p("a red circle moves left", keyframes=kfs, num_inference_steps=3, seed=0, output_type="latent", return_latents=True)
    resolved = [i % NUM_FRAMES for i in KEYFRAME_CASES[case]]
    assert list(out.keyframe_indices) == resolved
    expected = p.encode_keyframes(kfs, SIZE, SIZE)
    assert torch.equal(out.latents[:, :, resolved], expected)
    others = [i for i in range(NUM_FRAMES) if i not in resolved]
    assert not torch.equal(out.latents[:, :, others[:1]], expected[:, :, :1])


def test_keyframes_shape_the_video_and_unipc_keeps_them_exact(pipe):
    kfs = [Keyframe(_image(0), 0), Keyframe(_image(1), -1)]
    a = pipe("a red circle", keyframes=kfs, num_inference_steps=4, seed=1, sampler="unipc", return_latents=True)
    assert torch.equal(a.latents[:, :, [0, 7]], pipe.encode_keyframes(kfs, SIZE, SIZE))
    b = pipe("a red circle", num_inference_steps=4, seed=1, sampler="unipc")
    assert np.abs(a.frames[0, 3] - b.frames[0, 3]).max() > 1e-4  # the keyframes influence other frames


def test_same_seed_same_video_different_seed_different(pipe):
    kw = dict(prompt="a blue square moves up", num_inference_steps=3)
    a = pipe(**kw, seed=7).frames
    b = pipe(**kw, seed=7).frames
    c = pipe(**kw, seed=8).frames
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    d = pipe(**kw, generator=torch.Generator().manual_seed(7)).frames
    assert np.array_equal(a, d)
    assert pipe(**kw).seed is not None


def test_save_load_gives_identical_outputs(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(tmp_path.glob(".m.*")), "temporary save folders left behind"
    loaded = AnyFramePipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    kw = dict(prompt="a red circle", keyframes=[Keyframe(_image(3), 2)], num_inference_steps=3, seed=5)
    assert np.array_equal(pipe(**kw).frames, loaded(**kw).frames)
    # saving over an existing folder replaces it
    pipe.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model_index.json").is_file()
    # the tokenizer is saved as loaded, not with the padding of the last prompt it encoded
    pipe.encode_text(["a red circle"])
    pipe.save_pretrained(tmp_path / "m")
    tokenizer = json.loads((tmp_path / "m" / "tokenizer" / "tokenizer.json").read_text())
    assert tokenizer["padding"] is None and tokenizer["truncation"] is None
    assert len(AnyFramePipeline.from_pretrained(tmp_path / "m").tokenizer("a red circle").input_ids) < 10


class _ForwardCounter:
    def __init__(self, model):
        self.batches = []
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.batches.append(kwargs["hidden_states"].shape[0])

    def close(self):
        self.handle.remove()


@pytest.mark.parametrize(
    "mode,kwargs,keyframes,batch",
    [
        ("jit", {}, True, 2),  # (T,I) and (∅,∅) in one forward
        ("cfg", {}, True, 2),
        ("text-image", {"image_guidance_scale": 2.0}, True, 3),
        ("text-image", {"image_guidance_scale": 2.0}, False, 2),  # no image: (∅,I) ≡ (∅,∅), computed once
        ("none", {}, True, 1),
    ],
)
def test_guidance_branches_run_as_one_batched_forward(pipe, mode, kwargs, keyframes, batch):
    counter = _ForwardCounter(pipe.transformer)
    try:
        pipe("a red circle", keyframes=[Keyframe(_image(0), 0)] if keyframes else None, guidance_mode=mode,
             num_inference_steps=3, seed=0, **kwargs)
    finally:
        counter.close()
    assert counter.batches == [batch] * 3


def test_guidance_scale_one_equals_no_guidance(pipe):
    kw = dict(prompt="a red circle", keyframes=[Keyframe(_image(0), 0)], num_inference_steps=3, seed=2)
    a = pipe(**kw, guidance_scale=1.0, guidance_mode="jit").frames
    b = pipe(**kw, guidance_mode="none").frames
    assert np.array_equal(a, b)
    c = pipe(**kw, guidance_scale=6.0).frames
    assert np.abs(a - c).max() > 1e-4


def test_guidance_options_change_the_result(pipe):
    kw = dict(prompt="a red circle", keyframes=[Keyframe(_image(0), 0)], num_inference_steps=3, seed=2, guidance_scale=6.0)
    jit = pipe(**kw, renorm="full").frames
    assert np.abs(jit - pipe(**kw, renorm="full", guidance_mode="cfg").frames).max() > 1e-4
    assert np.abs(jit - pipe(**kw, renorm=None).frames).max() > 1e-4
    assert np.abs(jit - pipe(**kw, renorm="full", negative_prompt="a blue square").frames).max() > 1e-4
    assert np.array_equal(jit, pipe(**kw, guidance=JITCFG(6.0, renorm="full")).frames)


def test_auto_renormalises_prompt_only_clips_and_not_keyframed_ones(pipe):
    kw = dict(prompt="a red circle", num_inference_steps=3, seed=2, guidance_scale=6.0)
    keyframed = dict(kw, keyframes=[Keyframe(_image(0), 0)])
    assert pipe.sampling_defaults["renorm"] == "auto"
    assert np.array_equal(pipe(**keyframed).frames, pipe(**keyframed, renorm=None).frames)  # auto is the default
    assert np.array_equal(pipe(**kw, renorm="auto").frames, pipe(**kw, renorm="full").frames)
    assert np.abs(pipe(**kw, renorm="auto").frames - pipe(**kw, renorm=None).frames).max() > 1e-4


def test_callback_on_step_end(pipe):
    steps = []

    def callback(p, i, t, tensors):
        steps.append((i, float(t)))
        assert set(tensors) == {"latents"}
        return {"latents": tensors["latents"] * 0} if i == 3 else {}

    out = pipe("a red circle", num_inference_steps=4, seed=0, callback_on_step_end=callback, output_type="latent")
    assert [i for i, _ in steps] == [0, 1, 2, 3]
    assert steps[0][1] == pytest.approx(1000.0)
    assert torch.count_nonzero(out.frames) == 0  # the callback's replacement is the result


def test_output_types(pipe):
    kw = dict(prompt="a red circle", num_inference_steps=2, seed=0)
    np_out = pipe(**kw).frames
    assert np_out.shape == (1, NUM_FRAMES, SIZE, SIZE, 3) and np_out.dtype == np.float32
    assert 0 <= np_out.min() and np_out.max() <= 1
    pt = pipe(**kw, output_type="pt").frames
    assert torch.equal(pt, torch.from_numpy(np_out))
    pil = pipe(**kw, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == NUM_FRAMES and pil[0][0].size == (SIZE, SIZE)
    lat = pipe(**kw, output_type="latent").frames
    assert lat.shape == (1, 4, NUM_FRAMES, 8, 8)
    two = pipe(prompt=["a red circle", "a blue square"], num_inference_steps=2, seed=0).frames
    assert two.shape[0] == 2 and np.abs(two[0] - two[1]).max() > 1e-4


def test_other_sizes(pipe):
    out = pipe("a red circle", num_frames=4, height=8, width=24, num_inference_steps=2, seed=0).frames
    assert out.shape == (1, 4, 8, 24, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(prompt=""), "prompt"),
        (dict(prompt="  "), "prompt"),
        (dict(prompt="x", keyframes=[Keyframe(np.zeros((4, 4, 3), np.uint8), 8)]), "out of range"),
        (dict(prompt="x", keyframes=[Keyframe(np.zeros((4, 4, 3), np.uint8), -9)]), "out of range"),
        (dict(prompt="x", keyframes=[Keyframe(np.zeros((4, 4, 3), np.uint8), 0), Keyframe(np.zeros((4, 4, 3), np.uint8), -8)]), "same frame"),
        (dict(prompt="x", height=10), "multiples"),
        (dict(prompt="x", num_frames=0), "num_frames"),
        (dict(prompt="x", keyframes=[Keyframe("/nonexistent.png", 0)]), "not found"),
    ],
)
def test_bad_requests(pipe, kwargs, match):
    with pytest.raises(AnyframeInputError, match=match):
        pipe(num_inference_steps=1, seed=0, **kwargs)


def test_prompt_free_prediction(pipe):
    out = pipe("", keyframes=[Keyframe(_image(0), 0), Keyframe(_image(1), 1)], num_inference_steps=2, seed=0)
    assert out.frames.shape == (1, NUM_FRAMES, SIZE, SIZE, 3)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(AnyframeInputError, match="not found"):
        AnyFramePipeline.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnyframeInputError, match="model_index.json"):
        AnyFramePipeline.from_pretrained(tmp_path / "empty")


def test_pipeline_moves_between_devices(pipe):
    # DiffusionPipeline.to() asks every component its dtype/device, the parameterless conditioning too
    moved = pipe.to("cpu")
    assert moved.conditioning.device.type == "cpu" and moved.conditioning.dtype == torch.float32
    assert moved.device.type == "cpu"


def test_trimming_text_padding_changes_nothing(pipe, monkeypatch):
    """The pipeline drops padding past the last real token before the backbone (a speed-up): the video is
    the same as with the full padded length."""
    from anyframe.models.text_encoder import TextCondition

    kwargs = dict(num_frames=4, height=16, width=16, num_inference_steps=3, guidance_scale=4.0, seed=5, output_type="np")
    trimmed = pipe(["a red circle moves right", "a blue square"], **kwargs).frames
    lengths = []
    monkeypatch.setattr(TextCondition, "trim", lambda self, n: lengths.append(n) or self)
    padded = pipe(["a red circle moves right", "a blue square"], **kwargs).frames
    assert lengths and lengths[0] < pipe.tokenizer.model_max_length
    np.testing.assert_allclose(trimmed, padded, atol=1e-5)


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_is_bf16_only_where_native(pipe, tmp_path, monkeypatch, native):
    """``auto`` (generate's default) loads bfloat16 weights where the CPU multiplies bf16 in hardware, float32
    elsewhere; the VAE stays float32 either way, and the pipeline says which it used."""
    from anyframe.pipelines import load_pipeline, native_bf16, resolve_dtype

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert native_bf16("cpu") is native
    want = "bfloat16" if native else "float32"
    assert resolve_dtype("auto", "cpu") == want
    assert resolve_dtype("float32", "cpu") == "float32" and resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(AnyframeInputError, match="dtype must be"):
        resolve_dtype("float16", "cpu")
    pipe.save_pretrained(tmp_path / "m")
    loaded = load_pipeline(tmp_path / "m")
    assert loaded.transformer.dtype == getattr(torch, want) and loaded.vae.dtype == torch.float32
