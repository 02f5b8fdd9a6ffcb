"""Caption semantics and the caption parser: round trip, documented paraphrases, clear errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyframe.errors import AnyframeInputError
from anyframe.world.captions import caption, caption_vocabulary
from anyframe.world.grammar import (
    LEXICON,
    EventSemantics,
    ObjectRef,
    SceneSemantics,
    object_semantics,
    parse,
    semantics,
    tokenize,
)
from anyframe.world.scene import Event, Motion, Scene, WorldObject

from scene_strategies import scenes


def _obj(shape="circle", color="red", size="medium", direction=None, **motion):
    return object_semantics(shape, color, size, direction, **motion)


def _sem(*objects, events=(), **setting):
    return SceneSemantics.build(objects, events=events, **setting)


RED = ObjectRef("circle", "red", "small")
BLUE = ObjectRef("square", "blue", "large")
RED_LEFT = _obj("circle", "red", "small", "left")
TWO = "a small red circle moves right. a large blue square stays still. "
TWO_OBJECTS = (_obj("circle", "red", "small", "right"), _obj("square", "blue", "large"))


# ------------------------------------------------------------------------------------ round trip


@settings(max_examples=300, deadline=None)
@given(scenes())
def test_parse_inverts_caption(scene):
    assert parse(caption(scene)) == semantics(scene)


@settings(max_examples=60, deadline=None)
@given(scenes())
def test_sentence_order_carries_no_meaning(scene):
    sentences = caption(scene).removesuffix(".").split(". ")
    assert parse(". ".join(reversed(sentences))) == semantics(scene)


@settings(max_examples=60, deadline=None)
@given(scenes(), st.randoms(use_true_random=False))
def test_semantics_ignores_order_positions_and_frames(scene, rng):
    objects = [dataclasses.replace(o, x=o.x / 2, y=rng.uniform(0, scene.size)) for o in scene.objects]
    rng.shuffle(objects)
    events = [dataclasses.replace(e, frame=1) if e.frame is not None else e for e in scene.events]
    other = dataclasses.replace(scene, objects=tuple(objects), events=tuple(reversed(events)))
    assert semantics(other) == semantics(scene)


def test_still_objects_carry_no_speed():
    still = WorldObject(0, "circle", "red", "small", 5, 5, Motion(None, "quickly"))
    scene = Scene(objects=(still,))
    assert semantics(scene).objects == (_obj("circle", "red", "small"),)
    assert parse(caption(scene)) == semantics(scene)


def test_empty_scene_round_trips():
    scene = Scene(objects=(), background="gray", pan="up")
    assert caption(scene) == "On a gray background, there are no shapes. The camera pans up."
    assert parse(caption(scene)) == semantics(scene) == _sem(background="gray", pan="up")


def test_identical_objects_with_events_round_trip():
    twin = dict(shape="circle", color="red", size="small", x=5, y=5)
    scene = Scene(
        objects=tuple(WorldObject(i, **twin, motion=Motion("left")) for i in range(3))
        + (WorldObject(7, "circle", "red", "large", 20, 20),),
        events=(
            Event("collision", 2, 7, "stop"),
            Event("disappear", 1, frame=3),
            Event("collision", 7, 0, "stop"),
        ),
    )
    text = caption(scene)
    assert "When the third small red circle hits the large red circle, it stops." in text
    assert "The second small red circle disappears partway through." in text
    assert "When the large red circle hits the first small red circle, it stops." in text
    assert parse(text) == semantics(scene)


# ------------------------------------------------------------------------------------ paraphrases

PARAPHRASES: list[tuple[str, SceneSemantics]] = [
    # determiners, adjectives, plural shorthand
    ("a small red circle moves left", _sem(RED_LEFT)),
    ("one small red circle moves left", _sem(RED_LEFT)),
    ("the small red circle moves left", _sem(RED_LEFT)),
    ("small red circle moves left", _sem(RED_LEFT)),
    ("a tiny red circle moves left", _sem(RED_LEFT)),
    ("a little red circle moves left", _sem(RED_LEFT)),
    ("a red small circle moves left", _sem(RED_LEFT)),
    ("A Small RED circle moves left.", _sem(RED_LEFT)),
    ("a big blue square stays still", _sem(_obj("square", "blue", "large"))),
    ("a huge blue square stays still", _sem(_obj("square", "blue", "large"))),
    ("a red circle moves left", _sem(_obj(direction="left"))),
    ("an orange diamond moves left", _sem(_obj("diamond", "orange", direction="left"))),
    ("two red circles move left", _sem(*[_obj(direction="left")] * 2)),
    ("three small white crosses stay still", _sem(*[_obj("cross", "white", "small")] * 3)),
    # lists of objects and of clauses
    ("a small red circle and a large blue square move left",
     _sem(RED_LEFT, _obj("square", "blue", "large", "left"))),
    ("a small red circle moves left, a large blue square stays still and a green cross moves up",
     _sem(RED_LEFT, _obj("square", "blue", "large"), _obj("cross", "green", direction="up"))),
    ("a small red circle moves left while a large blue square stays still",
     _sem(RED_LEFT, _obj("square", "blue", "large"))),
    ("there is a small red circle moving left", _sem(RED_LEFT)),
    ("there are two red circles", _sem(*[_obj()] * 2)),
    ("a small red circle moving left", _sem(RED_LEFT)),
    # motion verbs
    *[(f"a small red circle {verb} left", _sem(RED_LEFT)) for verb in (
        "goes", "travels", "slides", "drifts", "glides", "heads", "is moving", "that moves", "which goes",
        "moving", "traveling", "travelling", "sliding")],
    # directions
    *[(f"a small red circle moves {phrase}", _sem(_obj("circle", "red", "small", direction))) for phrase, direction in (
        ("left", "left"), ("to the left", "left"), ("towards the left", "left"), ("toward the left", "left"),
        ("leftwards", "left"), ("leftward", "left"), ("to the right", "right"), ("rightwards", "right"),
        ("up", "up"), ("upwards", "up"), ("upward", "up"), ("to the top", "up"), ("down", "down"),
        ("downwards", "down"), ("towards the bottom", "down"), ("up and to the left", "up-left"),
        ("up and left", "up-left"), ("up-left", "up-left"), ("up left", "up-left"),
        ("to the upper left", "up-left"), ("towards the top-left", "up-left"),
        ("diagonally up and to the left", "up-left"), ("up to the right", "up-right"),
        ("down and to the right", "down-right"), ("down-right", "down-right"),
        ("to the lower right", "down-right"), ("towards the bottom left", "down-left"))],
    # speed
    *[(f"a small red circle {phrase}", _sem(_obj("circle", "red", "small", "left", speed=speed))) for phrase, speed in (
        ("moves left slowly", "slowly"), ("slowly moves left", "slowly"), ("moves slowly left", "slowly"),
        ("moves left quickly", "quickly"), ("moves left fast", "quickly"), ("rapidly moves left", "quickly"),
        ("swiftly goes left", "quickly"), ("is quickly moving to the left", "quickly"))],
    # still
    *[(f"a small red circle {phrase}", _sem(_obj("circle", "red", "small"))) for phrase in (
        "stays still", "remains still", "stands still", "sits still", "is still", "is stationary", "is static",
        "is motionless", "remains stationary", "stays in place", "stays put", "does not move", "doesn't move",
        "not moving", "staying still", "bounces")],
    # bounce
    *[(f"a small red circle {phrase}", _sem(_obj("circle", "red", "small", "left", bounce=True))) for phrase in (
        "moves left, bouncing", "moves left and bounces", "moves left, bouncing off the edges",
        "bounces off the walls and moves left", "bounces left", "bounces around, moving left",
        "moves left while bouncing", "is bouncing to the left")],
    # scale and rotation
    *[(f"a small red circle {phrase}", _sem(_obj("circle", "red", "small", scale=scale))) for phrase, scale in (
        ("stays still, growing", "grow"), ("grows", "grow"), ("expands", "grow"), ("gets bigger", "grow"),
        ("is getting larger", "grow"), ("stays still and shrinks", "shrink"), ("contracts", "shrink"),
        ("gets smaller", "shrink"), ("is shrinking", "shrink"))],
    *[(f"a small red circle {phrase}", _sem(_obj("circle", "red", "small", rotate=True))) for phrase in (
        "rotates", "is spinning", "spins", "stays still, rotating")],
    ("a small red circle moves left quickly while bouncing, growing and rotating",
     _sem(_obj("circle", "red", "small", "left", speed="quickly", bounce=True, scale="grow", rotate=True))),
    ("a small red circle shrinks and spins and slowly slides down-right",
     _sem(_obj("circle", "red", "small", "down-right", speed="slowly", scale="shrink", rotate=True))),
    # collisions
    *[(TWO + phrase, _sem(*TWO_OBJECTS, events=events)) for phrase, events in (
        (phrase, (EventSemantics("collision", RED, BLUE, "change_color", "green"),)) for phrase in (
            "when the red circle hits the blue square, it turns green",
            "when the red circle collides with the blue square, it becomes green",
            "once the red circle touches the blue square it changes to green",
            "after the red circle bumps into the blue square, it changes colour to green",
            "as the red circle runs into the blue square, then it turns into green",
            "when the small red circle strikes the large blue square, it changes color to green",
            "the red circle turns green when it hits the blue square",
            "the red circle becomes green once it reaches the blue square",
            "when the circle meets the square, it turns green",
        )
    )],
    *[(TWO + phrase, _sem(*TWO_OBJECTS, events=(EventSemantics("collision", RED, BLUE, "stop"),))) for phrase in (
        "when the red circle crashes into the blue square, it stops moving",
        "the red circle halts when it hits the blue square",
        "when the red circle hits the blue square, the red circle freezes",
    )],
    *[(TWO + phrase, _sem(*TWO_OBJECTS, events=(EventSemantics("collision", BLUE, RED, "change_color", "cyan"),)))
      for phrase in (
        "the blue square turns cyan when the red circle hits it",
        "when the red circle hits the blue square, the blue square turns cyan",
        "when the blue square hits the red circle, it turns cyan",
    )],
    (TWO + "when the red circle hits the blue square, it stops and turns green",
     _sem(*TWO_OBJECTS, events=(EventSemantics("collision", RED, BLUE, "stop"),
                                EventSemantics("collision", RED, BLUE, "change_color", "green")))),
    # appear / disappear
    *[(f"a small red circle moves left. {phrase}", _sem(RED_LEFT, events=(EventSemantics(kind, RED),)))
      for phrase, kind in (
        ("the red circle appears partway through", "appear"), ("the red circle appears", "appear"),
        ("the circle appears halfway through the video", "appear"), ("a red circle appears later", "appear"),
        ("the red circle appears at some point", "appear"), ("the red circle appears suddenly", "appear"),
        ("the red circle disappears midway through the clip", "disappear"),
        ("the red circle vanishes eventually", "disappear"), ("the red circle disappears midway", "disappear"))],
    ("the red circle appears partway through. a small red circle moves left",
     _sem(RED_LEFT, events=(EventSemantics("appear", RED),))),
    ("a small red circle moves left and disappears partway through",
     _sem(RED_LEFT, events=(EventSemantics("disappear", RED),))),
    ("a small yellow cross appears partway through",
     _sem(_obj("cross", "yellow", "small"), events=(EventSemantics("appear", _obj("cross", "yellow", "small").ref),))),
    ("two red circles appear", _sem(*[_obj()] * 2, events=(EventSemantics("appear", _obj().ref),) * 2)),
    # backgrounds and styles
    *[(f"a small red circle moves left {phrase}", _sem(RED_LEFT, **setting)) for phrase, setting in (
        ("on a gray background", dict(background="gray")), ("over a grey background", dict(background="gray")),
        ("against a navy background", dict(background="navy")), ("with an olive background", dict(background="olive")),
        ("on a checkered background", dict(background="checker")),
        ("on a checkerboard background", dict(background="checker")),
        ("on a striped background", dict(background="stripes")), ("on a stripes background", dict(background="stripes")),
        ("on a dotted background", dict(background="dots")), ("on the grid background", dict(background="grid")),
        (". the background is grey", dict(background="gray")), (". background is a maroon", dict(background="maroon")),
        ("in an outline style", dict(style="outline")), ("in an outlined style", dict(style="outline")),
        ("with a grainy style", dict(style="grain")), ("drawn in a noisy style", dict(style="grain")),
        ("rendered in a pixel style", dict(style="pixelated")), ("in a striped look", dict(style="striped")),
        (". the style is outline", dict(style="outline")), ("in a solid style", dict(style="flat")),
        ("on a black background in a striped style", dict(background="black", style="striped")),
        ("on a striped background in a striped style", dict(background="stripes", style="striped")),
    )],
    ("on a gray background, in an outline style, a small red circle moves left",
     _sem(RED_LEFT, background="gray", style="outline")),
    # camera
    *[(f"a small red circle moves left. {phrase}", _sem(RED_LEFT, pan=pan)) for phrase, pan in (
        ("the camera pans left", "left"), ("the camera pans to the left", "left"),
        ("the camera is panning leftwards", "left"), ("the view scrolls right", "right"),
        ("the camera moves up", "up"), ("camera pans down", "down"), ("the camera stays still", "none"),
        ("the camera does not move", "none"), ("the camera is still", "none"))],
    ("a small red circle moves left with the camera panning right", _sem(RED_LEFT, pan="right")),
    ("with the camera panning right, a small red circle moves left", _sem(RED_LEFT, pan="right")),
    # empty scenes
    ("there are no shapes", _sem()),
    ("there is nothing on a gray background", _sem(background="gray")),
    ("on a gray background, nothing happens", _sem(background="gray")),
]  # fmt: skip


@pytest.mark.parametrize("text,expected", PARAPHRASES, ids=[t for t, _ in PARAPHRASES])
def test_paraphrase(text, expected):
    assert parse(text) == expected


def test_paraphrase_words_are_in_the_vocabulary():
    words = set(caption_vocabulary())
    assert {t.text for text, _ in PARAPHRASES for t in tokenize(text)} <= words


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("a red hexagon moves left", "unknown word 'hexagon' at word 3"),
        ("a red circle moves sideways", "unknown word 'sideways' at word 5"),
        ("a red circle zooms left", "unknown word 'zooms' at word 4"),
        ("A red circle moves left on a plaid background", "unknown word 'plaid' at word 8"),
        ("a red circle moves left!!", "unknown word '!!' at word 6"),
    ],
)
def test_unknown_words_are_named_with_their_position(text, fragment):
    with pytest.raises(AnyframeInputError, match=fragment):
        parse(text)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("a red", "incomplete caption: expected a shape .* after 'red' \\(word 2\\)"),
        ("a red circle", "incomplete caption: expected a verb .* after 'circle'"),
        ("a red circle moves", "incomplete caption: expected a direction .* after 'moves'"),
        ("a red circle moves slowly", "incomplete caption: expected a direction"),
        ("a red circle stays", "incomplete caption: expected 'still'"),
        ("a red circle moves left. when the red circle hits", "incomplete caption"),
        ("a red circle moves left. a blue square stays still. when the red circle hits the blue square,",
         "incomplete caption: expected 'it'"),
        ("a red circle moves left on a", "incomplete caption"),
        ("a red circle moves left. the camera pans", "incomplete caption: expected a direction"),
        ("", "empty caption"),
    ],
)
def test_incomplete_captions(text, fragment):
    with pytest.raises(AnyframeInputError, match=fragment):
        parse(text)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("moves left", "unexpected word 'moves' at word 1"),
        ("two red circle move left", "unexpected word 'circle' at word 3: expected a plural"),
        ("a red circles moves left", "unexpected word 'circles' at word 3: expected a single shape"),
        ("a red blue circle moves left", "unexpected word 'blue' at word 3: expected one colour"),
        ("a circle moves left", "'a circle' \\(word 1\\) needs a colour"),
        ("a red circle moves left, stays still", "contradictory motion"),
        ("a red circle moves left and right", "unexpected word 'right' at word 7"),
        ("a red circle moves left on a gray background on a black background", "contradictory background"),
        ("a red circle moves left. the camera pans up and to the left", "camera pans only"),
        ("two red circles move left. a blue square stays still. when the red circle hits the blue square, it stops",
         "'the red circle' \\(word 14\\) is ambiguous"),
        ("a red circle moves left. when the green circle hits the red circle, it stops", "refers to no object"),
        ("a red circle moves left. when the red circle hits the red circle, it stops", "cannot hit itself"),
        ("a red circle moves left. the third red circle appears", "only 1 such objects"),
        ("a red circle moves left. a blue square stays still. a green cross moves up. "
         "when the red circle hits the blue square, the green cross stops", "takes no part"),
    ],
)
def test_ungrammatical_or_contradictory_captions(text, fragment):
    with pytest.raises(AnyframeInputError, match=fragment):
        parse(text)


# ------------------------------------------------------------------------------------ robustness


def _parse_or_input_error(text: str) -> None:
    try:
        parse(text)
    except AnyframeInputError:
        pass  # any other exception is a parser bug


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(LEXICON)), max_size=14))
def test_any_word_sequence_parses_or_is_an_input_error(words):
    _parse_or_input_error(" ".join(words))


@settings(max_examples=150, deadline=None)
@given(scenes(), st.data())
def test_mutilated_captions_parse_or_are_input_errors(scene, data):
    words = [t.text for t in tokenize(caption(scene))]
    start = data.draw(st.integers(0, len(words) - 1))
    stop = data.draw(st.integers(start, len(words)))
    _parse_or_input_error(" ".join(words[:start] + words[stop:]))
