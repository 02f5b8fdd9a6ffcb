"""GenerationRequest: validated in one place against the model, resolved (what was run), the same errors from
the Python API and the CLI; generation over chunks with a callback per finished chunk."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anyframe.errors import AnyframeInputError
from anyframe.io import read_video, write_mp4
from anyframe.pipelines import GenerationRequest, Keyframe, build_world_pipeline
from anyframe.pipelines.request import MAX_SEED, check_settings


@pytest.fixture(scope="module")
def pipe():
    p = build_world_pipeline("tiny", seed=0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def flash():
    p = build_world_pipeline("tiny", seed=0, method="flashi2v")
    p.set_progress_bar_config(disable=True)
    return p


IMAGE = np.zeros((16, 16, 3), np.uint8)


def test_validation_resolves_what_will_run(pipe):
    request = pipe.validate(GenerationRequest(prompt="a red square", keyframes=[Keyframe(IMAGE, -1)], seed=4))
    assert (request.num_frames, request.height, request.width) == (8, 16, 16)  # the model's training size
    assert [k.frame_index for k in request.keyframes] == [7]  # negative counted from the end
    assert (request.steps, request.guidance_scale, request.guidance_mode) == (25, 7.5, "jit")
    assert request.renorm == "auto" and request.prompt == ["a red square"] and request.negative_prompt == [""]
    drawn = pipe.validate(GenerationRequest(prompt="x"))
    assert 0 <= drawn.seed <= MAX_SEED  # no seed given: one is drawn, and reported


@pytest.mark.parametrize("fields,fragment", [
    (dict(prompt=""), "give a prompt, a keyframe image, or both"),
    (dict(prompt=["a", "b"], negative_prompt=["x"]), "1 negative prompts for 2 prompts"),
    (dict(keyframes=[Keyframe(IMAGE, 8)]), "frame index 8 is out of range for 8 frames"),
    (dict(keyframes=[Keyframe(IMAGE, 0), Keyframe(IMAGE, -8)]), "two keyframes at the same frame"),
    (dict(num_frames=0), "num_frames must be ≥ 1"),
    (dict(height=18), "height and width must be positive multiples of"),
    (dict(steps=0), "steps must be in 1..1000"),
    (dict(guidance_scale=math.nan), "guidance_scale must be a finite number"),
    (dict(guidance_scale=math.inf), "guidance_scale must be a finite number"),
    (dict(guidance_mode="loud"), "guidance_mode must be one of"),
    (dict(renorm="half"), "renorm must be one of"),
    (dict(sampler="ddim"), "sampler must be one of"),
    (dict(seed=-1), "seed must be in 0.."),
    (dict(seed=2**70), "seed must be in 0.."),
    (dict(frame_stride=0.0), "frame_stride must be > 0"),
    (dict(frame_prompts={0: "a square"}), "frame_prompts is not used by this model's method (frame_replacement)"),
    (dict(source_video=np.zeros((8, 16, 16, 3))), "source_video is not used"),
    (dict(style="watercolour"), "style is not used"),
    (dict(masks=True), "masks is not used"),
    (dict(keyframes=[Keyframe(IMAGE, None)]), "a keyframe without a frame index: this model's method (frame_replacement)"),
    (dict(options={"detail": 0.2}), "detail does not apply to this model's method (frame_replacement)"),
    (dict(options={"colour": 1}), "colour does not apply"),
])
def test_bad_requests_are_one_clear_error(pipe, fields, fragment):
    with pytest.raises(AnyframeInputError) as info:
        pipe.validate(GenerationRequest(**{"prompt": "x", **fields}))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_method_checks_what_only_it_knows(flash):
    with pytest.raises(AnyframeInputError, match="FlashI2V conditions on one image at frame 0"):
        flash.validate(GenerationRequest(prompt="x", keyframes=[Keyframe(IMAGE, 3)]))
    with pytest.raises(AnyframeInputError, match=r"detail must be in \[0, 1\]"):
        flash.validate(GenerationRequest(prompt="x", keyframes=[Keyframe(IMAGE, 0)], options={"detail": 2}))
    assert flash.validate(GenerationRequest(prompt="x", options={"detail": 0.3})).options == {"detail": 0.3}


@settings(max_examples=60, deadline=None)
@given(steps=st.one_of(st.none(), st.integers(-3, 60)), guidance=st.one_of(st.none(), st.floats(allow_nan=True)),
       seed=st.one_of(st.none(), st.integers(-2**64, 2**64)), stride=st.floats(allow_nan=True, allow_infinity=True))
def test_settings_are_accepted_exactly_when_valid(steps, guidance, seed, stride):
    request = GenerationRequest(prompt="x", steps=steps, guidance_scale=guidance, seed=seed, frame_stride=stride)
    valid = ((steps is None or steps >= 1) and (guidance is None or math.isfinite(guidance))
             and (seed is None or 0 <= seed <= MAX_SEED) and math.isfinite(stride) and stride > 0)
    if valid:
        check_settings(request)
    else:
        with pytest.raises(AnyframeInputError):
            check_settings(request)


def test_the_call_builds_the_same_request_as_generate(pipe):
    a = pipe("a red square moves right", num_inference_steps=2, seed=1, output_type="latent")
    b = pipe.generate(GenerationRequest(prompt="a red square moves right", steps=2, seed=1), output_type="latent")
    assert torch.equal(a.frames, b.frames) and a.request == b.request and a.seed == 1


def test_the_cli_words_the_same_checks_with_its_flags(tmp_path, capsys):
    from anyframe.cli import main

    for args, message in ((["--guidance", "nan"], "--guidance must be a finite number"),
                          (["--seed", "-1"], "--seed must be in 0.."),
                          (["--steps", "0"], "--steps must be in 1..1000")):
        with pytest.raises(SystemExit) as info:
            main(["generate", "--prompt", "x", *args, "--out", str(tmp_path / "a.mp4")])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a.mp4").exists()


def test_generation_runs_over_chunks_with_a_callback_per_chunk(pipe, tmp_path):
    # a continuation: each chunk starts from the last frame of the one before; each is written as it finishes
    written = []

    def write(i, output):
        frames = (output.frames[0] * 255).round().astype(np.uint8)
        path = tmp_path / f"chunk-{i}.mp4"
        write_mp4(frames, path, fps=8)
        written.append(path)

    def continue_from(i, output):
        if i == 2:
            return None
        last = (output.frames[0, -1] * 255).round().astype(np.uint8)
        return GenerationRequest(prompt="a red square moves right", keyframes=[Keyframe(last, 0)], steps=2, seed=10 + i)

    first = GenerationRequest(prompt="a red square moves right", steps=2, seed=9)
    outputs = pipe.generate_chunks(first, next_request=continue_from, on_chunk=write)
    assert len(outputs) == 3 and [p.name for p in written] == ["chunk-0.mp4", "chunk-1.mp4", "chunk-2.mp4"]
    assert [o.request.seed for o in outputs] == [9, 10, 11]
    assert outputs[1].request.keyframes[0].frame_index == 0 and len(read_video(written[2])) == 8
    # a sequence of requests works the same way, and stops when it ends
    again = pipe.generate_chunks([first, outputs[1].request], on_chunk=lambda i, o: None)
    assert [o.request.seed for o in again] == [9, 10]
    assert np.array_equal(again[0].frames, outputs[0].frames)
