"""Property-based tests (hypothesis) of the two parsers every hostile input meets first: the request validator and
the ``PATH[@INDEX]`` image spec. Whatever they are given, they return a valid result or raise the one input error
— never another exception."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anyframe.cli import parse_image_spec
from anyframe.conditioning.frame_replacement import FrameReplacement
from anyframe.errors import AnyframeInputError
from anyframe.pipelines.request import (
    MAX_SEED,
    MAX_STEPS,
    GenerationRequest,
    Keyframe,
    ModelLimits,
    resolve_frame_index,
    validate_request,
)

LIMITS = ModelLimits(default_video_size=(16, 32, 32), patch_size=(1, 2, 2), spatial_compression=4, temporal_compression=1,
                     sampling_defaults=dict(num_inference_steps=25, guidance_scale=7.5, guidance_mode="jit", renorm="auto"),
                     method=FrameReplacement(), hidden_size=256, memory_bytes=8 * 2**30)
IMAGE = np.zeros((8, 8, 3), np.uint8)

numbers = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.text(max_size=4))
small_ints = st.one_of(st.none(), st.integers(-64, 4096), st.sampled_from([2**31, 2**63, 10**12]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=st.one_of(st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3)),
       frames=small_ints, height=small_ints, width=small_ints, steps=numbers, seed=numbers, guidance=numbers,
       indices=st.lists(st.one_of(st.integers(-40, 40), st.integers(-(2**70), 2**70)), max_size=3),
       mode=st.one_of(st.none(), st.sampled_from(["jit", "cfg", "text-image", "none", "bogus"])))
def test_the_request_validator_resolves_or_refuses(prompt, frames, height, width, steps, seed, guidance, indices, mode):
    request = GenerationRequest(prompt=prompt, num_frames=frames, height=height, width=width, steps=steps, seed=seed,
                                guidance_scale=guidance, guidance_mode=mode,
                                keyframes=[Keyframe(IMAGE, i) for i in indices])
    try:
        resolved = validate_request(request, LIMITS, random_seed=lambda: 7)
    except AnyframeInputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert 1 <= resolved.num_frames and resolved.height % 8 == 0 and resolved.width % 8 == 0
    assert LIMITS.estimate_bytes(resolved.num_frames, resolved.height, resolved.width, len(resolved.prompts)) \
        <= LIMITS.memory_bytes
    assert 1 <= resolved.steps <= MAX_STEPS and 0 <= resolved.seed <= MAX_SEED
    assert math.isfinite(resolved.guidance_scale)
    placed = [k.frame_index for k in resolved.keyframes]
    assert all(0 <= i < resolved.num_frames for i in placed) and len(set(placed)) == len(placed)
    for given_index, k in zip(indices, resolved.keyframes):
        assert k.frame_index == given_index % resolved.num_frames


@settings(max_examples=500, deadline=None)
@given(index=st.integers(-(2**70), 2**70), frames=st.integers(1, 10_000))
def test_a_frame_index_is_in_range_or_refused(index, frames):
    try:
        resolved = resolve_frame_index(index, frames)
    except AnyframeInputError as exc:
        assert str(index) in str(exc)
        assert not -frames <= index < frames
        return
    assert 0 <= resolved < frames and resolved == index % frames


@settings(max_examples=500, deadline=None)
@given(spec=st.text(max_size=30))
def test_an_image_spec_parses_or_says_what_is_wrong(spec):
    try:
        path, index = parse_image_spec(spec)
    except AnyframeInputError as exc:
        assert "@" in spec and "frame index" in str(exc)
        return
    assert isinstance(index, int)
    assert str(path) in spec or spec.startswith(str(path)) or path.name in spec


@settings(max_examples=300, deadline=None)
@given(name=st.from_regex(r"[a-z][a-z0-9_.-]{0,12}", fullmatch=True), index=st.integers(-(10**30), 10**30))
def test_a_whole_number_after_at_is_the_index(name, index):
    path, parsed = parse_image_spec(f"{name}@{index}")
    assert (str(path), parsed) == (name, index)


@settings(max_examples=300, deadline=None)
@given(name=st.from_regex(r"[a-z][a-z0-9_]{0,12}\.png", fullmatch=True),
       bad=st.text(alphabet=st.characters(blacklist_characters="/\\\x00"), min_size=1, max_size=6)
       .filter(lambda t: not t.strip().lstrip("+-").isdigit() or not t.strip().lstrip("+-").isascii()))
def test_anything_else_after_at_is_a_malformed_index(name, bad):
    try:
        parse_image_spec(f"{name}@{bad}")
    except AnyframeInputError as exc:
        assert "frame index" in str(exc) or "nothing after @" in str(exc)
    else:
        raise AssertionError(f"{name}@{bad!r} was accepted")
