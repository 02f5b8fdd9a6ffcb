"""Scoring a clip against its prompt alone (anyframe.world.prompt_scoring), in both directions: true
renders of captioned scenes score high, random clips and clips of a wrong scene score low."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anyframe.errors import AnyframeInputError
from anyframe.world import corruptions as C
from anyframe.world.captions import caption
from anyframe.world.prompt_scoring import PROMPT_KEYS, score_prompt
from anyframe.world.render import render
from anyframe.world.sampling import scene_for_seed
from anyframe.world.scene import Motion, Scene, WorldObject

N = 40


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [scene_for_seed(seed, "train") for seed in range(N)]


@pytest.fixture(scope="module")
def truth_and_random(scenes) -> tuple[dict, dict]:
    truth, rand = {k: [] for k in PROMPT_KEYS}, {k: [] for k in PROMPT_KEYS}
    for i, scene in enumerate(scenes):
        frames = render(scene).frames
        noise = np.random.default_rng(i).integers(0, 256, frames.shape, dtype=np.uint8)
        for store, clip in ((truth, frames), (rand, noise)):
            for k, v in score_prompt(clip, caption(scene)).items():
                if v is not None:
                    store[k].append(v)
    return truth, rand


@pytest.mark.parametrize("key", PROMPT_KEYS)
def test_true_renders_score_high_and_random_clips_low(truth_and_random, key: str) -> None:
    truth, rand = truth_and_random
    assert truth[key], f"no scene exercised {key}"
    # measured on 100 train scenes: presence/binding/count/style ≥ 0.99, motion 0.97, event 0.85 (20 scenes
    # with events; 0.8 on these 40 — a prompt gives no frames, and a collision late in the clip or an object
    # leaving the canvas is hard to read without them); random clips ≤ 0.24
    assert np.mean(truth[key]) >= (0.75 if key == "event" else 0.93), key
    assert np.mean(rand[key]) <= 0.4, key


def one(shape: str, color: str, direction: str | None, x: float = 16, y: float = 16) -> WorldObject:
    return WorldObject(0, shape, color, "large", x, y, Motion(direction=direction))


def test_each_stated_fact_is_checked() -> None:
    scene = Scene([one("circle", "red", "right", x=8), replace(one("square", "blue", None, 22, 22), id=1)],
                  background="black", style="flat")
    frames = render(scene).frames
    right = score_prompt(frames, caption(scene))
    assert right == {"presence": 1.0, "color_binding": 1.0, "count": 1.0, "motion_direction": 1.0,
                     "event": None, "style": 1.0}
    # wrong colour binding: the circle is blue and the square red
    swapped = score_prompt(frames, "On a black background, a large blue circle moves right. A large red square stays still.")
    assert swapped["presence"] == 0.0 and swapped["color_binding"] == 0.0
    # wrong direction and wrong style
    wrong = score_prompt(frames, "On a black background in an outline style, a large red circle moves left. "
                                 "A large blue square stays still.")
    assert wrong["motion_direction"] == 0.5 and wrong["style"] == 0.0 and wrong["presence"] == 1.0
    # one object too many
    assert score_prompt(frames, caption(scene) + " A small green cross stays still.")["count"] == pytest.approx(2 / 3)


def test_reversed_time_fails_motion_and_a_missing_event_fails_event(scenes) -> None:
    moving = next(s for s in scenes if any(o.motion.direction and not o.motion.bounce for o in s.objects))
    frames = render(moving).frames
    assert score_prompt(C.reverse_time(frames), caption(moving))["motion_direction"] < score_prompt(
        frames, caption(moving))["motion_direction"]
    with_event = next(s for s in (scene_for_seed(seed, "train") for seed in range(200))
                      if s.events and score_prompt(render(s).frames, caption(s))["event"] == 1.0)
    assert score_prompt(render(C.without_events(with_event)).frames, caption(with_event))["event"] < 1.0


def test_bad_prompts_and_clips_are_refused() -> None:
    frames = render(scene_for_seed(0, "train")).frames
    with pytest.raises(AnyframeInputError, match="unknown word|unexpected word"):
        score_prompt(frames, "a large red circle moonwalks")
    with pytest.raises(AnyframeInputError, match="cannot score"):
        score_prompt(frames, caption(scene_for_seed(0, "train")), keys=["keyframe_psnr"])
    with pytest.raises(AnyframeInputError, match="uint8"):
        score_prompt(frames.astype(np.float32), caption(scene_for_seed(0, "train")))
