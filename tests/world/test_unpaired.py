"""Unpaired cases: the image frame sits where the position says; the text names the action, not the time."""

import re
from collections import Counter

import numpy as np
import pytest

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.sampling import scene_for_seed
from anyframe.world.scene import Event, Motion, Scene, WorldObject
from anyframe.world.unpaired import POSITIONS, make_unpaired, position_frame

SCENES = [scene_for_seed(i, "train") for i in range(300)]
TIME_WORDS = {"start", "starts", "end", "ends", "middle", "first", "last", "frame", "beginning", "finally"}


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(0)
    return [make_unpaired(s, rng) for s in SCENES]


def test_image_frame_matches_the_position():
    for frames, expected in [(16, (0, 8, 15)), (9, (0, 4, 8)), (1, (0, 0, 0))]:
        scene = Scene(objects=(WorldObject(0, "circle", "red", "small", 16.0, 16.0),), frames=frames)
        for position, frame in zip(POSITIONS, expected):
            case = make_unpaired(scene, np.random.default_rng(0), position)
            assert case.position == position and case.image_frame == frame == position_frame(position, frames)


def test_random_positions_cover_start_middle_and_end(cases):
    counts = Counter(c.position for c in cases)
    assert set(counts) == set(POSITIONS) and min(counts.values()) > 60
    for case in cases:
        assert case.image_frame == {"start": 0, "middle": 8, "end": 15}[case.position]


def test_text_names_the_moving_object_its_colour_shape_and_direction(cases):
    for case in cases:
        obj = case.scene.object(case.object_id)
        moving = [o for o in case.scene.objects if o.motion.direction is not None]
        if not moving:
            assert "stays still" in case.text
            continue
        assert obj.motion.direction is not None, case.text
        speed = {"slowly": "slowly ", "normal": "", "quickly": "quickly "}[obj.motion.speed]
        name = rf"^(the|a)( {obj.size})? {obj.color} {obj.shape}"
        pattern = rf"{name}( appears,| appears and)? moves {speed}{re.escape(obj.motion.direction)}\b"
        assert re.search(pattern, case.text), (case.text, obj)


def test_text_says_nothing_about_time_positions(cases):
    for case in cases:
        words = set(case.text.replace(",", "").split())
        assert not words & TIME_WORDS, case.text


def test_collisions_are_told_with_their_effect(cases):
    told = 0
    for case in cases:
        hits = [e for e in case.scene.events if e.type == "collision"]
        if not hits:
            continue
        e = hits[0]
        assert case.object_id == e.object  # the object the collision acts on is the subject
        other = case.scene.object(e.other)
        assert re.search(rf"hits (the|a)( {other.size})? {other.color} {other.shape}", case.text), case.text
        assert case.text.endswith(f"turns {e.color}" if e.effect == "change_color" else "stops")
        told += 1
    assert told > 20


def test_appear_and_disappear_are_told():
    base = (WorldObject(0, "circle", "red", "small", 10.0, 16.0, Motion("right", "slowly")),)
    appear = Scene(objects=base, events=(Event("appear", 0, frame=5),))
    text = make_unpaired(appear, np.random.default_rng(0)).text
    assert text == "the red circle appears and moves slowly right"
    gone = Scene(objects=base, events=(Event("disappear", 0, frame=5),))
    text = make_unpaired(gone, np.random.default_rng(0)).text
    assert text == "the red circle moves slowly right and disappears"


def test_still_scene_and_errors():
    still = Scene(objects=(WorldObject(0, "cross", "white", "large", 16.0, 16.0),))
    assert make_unpaired(still, np.random.default_rng(0), "end").text == "the white cross stays still"
    with pytest.raises(AnyframeInputError):
        make_unpaired(still, np.random.default_rng(0), "later")
    with pytest.raises(AnyframeInputError):
        make_unpaired(Scene(objects=()), np.random.default_rng(0))


def test_deterministic_given_the_rng():
    def run(seed):
        rng = np.random.default_rng(seed)
        return [(c.text, c.image_frame, c.object_id) for c in (make_unpaired(s, rng) for s in SCENES[:80])]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_the_scene_is_the_same_scene(cases):
    for scene, case in zip(SCENES, cases):
        assert case.scene is scene
        assert case.scene.object(case.object_id).color in vocab.COLORS
