"""Caption generators: exact format, determinism, unambiguous references, regional and per-frame
captions, and vocabulary coverage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from anyframe.world.captions import caption, caption_vocabulary, frame_captions, references, regional_captions
from anyframe.world.grammar import ObjectRef, parse, semantics, tokenize
from anyframe.world.scene import Event, Motion, Scene, WorldObject, simulate

from scene_strategies import scenes


def _obj(i, shape="circle", color="red", size="small", x=16.0, y=16.0, **motion):
    return WorldObject(i, shape, color, size, x, y, Motion(**motion))


BUSY = Scene(
    objects=(
        _obj(0, x=6, direction="right", speed="quickly", bounce=True),
        _obj(1, "square", "blue", "large", x=24, rotate=True),
        _obj(2, "cross", "yellow", "medium", x=16, y=28, direction="up-left", scale="grow"),
    ),
    events=(Event("collision", 0, 1, "change_color", "green"), Event("appear", 2, frame=5)),
    background="checker",
    style="outline",
    pan="left",
    frames=12,
)
TWINS = Scene(
    objects=(
        _obj(0, "triangle", "purple", "medium", 4, 4, direction="down", speed="slowly"),
        _obj(1, "triangle", "purple", "medium", 28, 4, scale="shrink"),
        _obj(2, "triangle", "purple", "large", 16, 28, direction="up"),
    ),
    events=(Event("collision", 2, 0, "stop"), Event("disappear", 1, frame=3)),
    background="dots",
    style="grain",
)
SINGLE = Scene(
    objects=(_obj(3, "diamond", "orange", "large", direction="down-right", speed="slowly"),), background="olive"
)

GOLDEN = [
    (
        BUSY,
        "On a checker background in an outline style, a small red circle moves right quickly, bouncing. "
        "A large blue square stays still, rotating. A medium yellow cross moves up and to the left, growing. "
        "When the red circle hits the blue square, it turns green. The yellow cross appears partway through. "
        "The camera pans left.",
    ),
    (
        TWINS,
        "On a dotted background in a grainy style, a medium purple triangle moves down slowly. "
        "A medium purple triangle stays still, shrinking. A large purple triangle moves up. "
        "When the large purple triangle hits the first medium purple triangle, it stops. "
        "The second medium purple triangle disappears partway through.",
    ),
    (SINGLE, "On an olive background, a large orange diamond moves down and to the right slowly."),
]


@pytest.mark.parametrize("scene,expected", GOLDEN)
def test_caption_format(scene, expected):
    assert caption(scene) == expected
    assert parse(expected) == semantics(scene)


def test_regional_caption_format():
    assert regional_captions(BUSY) == [
        "a small red circle moving right quickly, bouncing",
        "a large blue square staying still, rotating",
        "a medium yellow cross moving up and to the left, growing",
    ]


@settings(max_examples=100, deadline=None)
@given(scenes())
def test_captions_are_deterministic(scene):
    again = Scene.from_json(scene.to_json())
    assert caption(again) == caption(scene) == caption(scene)
    assert regional_captions(again) == regional_captions(scene)
    assert frame_captions(again) == frame_captions(scene)


# ------------------------------------------------------------------------------------ references


def test_references_add_size_then_ordinal_only_when_needed():
    refs = references(
        [
            ObjectRef("circle", "red", "small"),
            ObjectRef("circle", "red", "large"),
            ObjectRef("circle", "blue", "small"),
            ObjectRef("square", "red", "small"),
            ObjectRef("circle", "red", "small"),
        ]
    )
    assert refs == [
        "the first small red circle",
        "the large red circle",
        "the blue circle",
        "the red square",
        "the second small red circle",
    ]


@settings(max_examples=100, deadline=None)
@given(scenes())
def test_references_are_unique(scene):
    refs = references([ObjectRef(o.shape, o.color, o.size) for o in scene.objects])
    assert len(set(refs)) == len(refs)


# ------------------------------------------------------------------------------------ regional captions


@settings(max_examples=100, deadline=None)
@given(scenes())
def test_regional_captions_parse_as_one_object_captions(scene):
    regional = regional_captions(scene)
    assert len(regional) == len(scene.objects)
    for text, o in zip(regional, scene.objects):
        (meaning,) = parse(text).objects
        assert meaning == semantics(Scene(objects=(o,))).objects[0]


# ------------------------------------------------------------------------------------ frame captions


def test_frame_captions_narrate_the_collision_at_its_frame():
    trajectory = simulate(BUSY)
    frames = frame_captions(BUSY, trajectory)
    hit = trajectory.event_frames[0]
    assert len(frames) == BUSY.frames and hit is not None
    assert frames[hit].startswith("The red circle hits the blue square and turns green.")
    assert [t for t, text in enumerate(frames) if "hits" in text] == [hit]
    assert "The green circle is" in frames[hit] and "The red circle is" in frames[hit - 1]
    assert frames[0] == "The red circle is on the left and the blue square is on the right."
    assert "The yellow cross appears." in frames[5] and "yellow" not in frames[4]


def test_frame_captions_regions_off_screen_and_empty_frames():
    scene = Scene(
        objects=(_obj(0, x=2, y=2, direction="left", speed="quickly"), _obj(1, "square", "blue", "small", 30, 30)),
        events=(Event("disappear", 1, frame=2),),
        frames=4,
    )
    assert frame_captions(scene) == [
        "The red circle is in the top left and the blue square is in the bottom right.",
        "The red circle is in the top left and the blue square is in the bottom right.",
        "The blue square disappears. The red circle is off screen.",
        "The red circle is off screen.",
    ]
    assert frame_captions(Scene(objects=(), frames=2)) == ["Nothing is visible."] * 2


@settings(max_examples=100, deadline=None)
@given(scenes())
def test_frame_captions_have_one_entry_per_frame_and_events_at_their_frames(scene):
    trajectory = simulate(scene)
    frames = frame_captions(scene, trajectory)
    assert len(frames) == scene.frames
    expected = {
        kind: {f for e, f in zip(scene.events, trajectory.event_frames) if e.type == kind and f is not None}
        for kind in ("collision", "appear", "disappear")
    }
    for word, kind in (("hits", "collision"), ("appears", "appear"), ("disappears", "disappear")):
        mentioned = {t for t, text in enumerate(frames) if word in {w.text for w in tokenize(text)}}
        assert mentioned == expected[kind]
    for t, text in enumerate(frames):
        visible = int(trajectory.visible[:, t].sum())
        assert text.count(" is ") == max(visible, 1)  # one place per visible object, or "nothing is visible"


# ------------------------------------------------------------------------------------ vocabulary


def test_vocabulary_is_sorted_lower_case_tokens():
    words = caption_vocabulary()
    assert words == sorted(set(words))
    assert all(w == w.lower() and [t.text for t in tokenize(w)] == [w] for w in words)


@settings(max_examples=150, deadline=None)
@given(scenes())
def test_every_generated_caption_is_inside_the_vocabulary(scene):
    words = set(caption_vocabulary())
    texts = [caption(scene), *regional_captions(scene), *frame_captions(scene)]
    assert {t.text for text in texts for t in tokenize(text)} <= words


def test_word_level_tokenizer_knows_every_caption_word():
    from anyframe.models.text_encoder import build_word_tokenizer

    tokenizer = build_word_tokenizer(caption_vocabulary(), max_length=256)
    texts = [caption(BUSY), caption(TWINS), *frame_captions(TWINS), *regional_captions(BUSY)]
    ids = tokenizer(texts, padding="max_length").input_ids
    assert tokenizer.unk_token_id not in np.asarray(ids)
    # and our tokenizer splits exactly like it
    for text in texts:
        pieces = tokenizer.convert_ids_to_tokens(tokenizer(text).input_ids)[:-1]  # drop </s>
        assert pieces == [t.text for t in tokenize(text)]


def test_world_pipelines_tokenize_world_text_without_unknowns():
    import numpy as np

    from anyframe.errors import AnyframeInputError
    from anyframe.pipelines import build_world_pipeline
    from anyframe.world import frame_captions, make_edit, scene_for_seed

    tok = build_world_pipeline("tiny").tokenizer
    for seed in range(30):
        scene = scene_for_seed(seed)
        texts = [caption(scene), *regional_captions(scene), *frame_captions(scene)]
        try:
            texts.append(make_edit(scene, np.random.default_rng(seed)).instruction)
        except AnyframeInputError:  # no applicable edit for this scene
            pass
        for text in texts:
            assert tok.unk_token_id not in tok(text).input_ids, text
