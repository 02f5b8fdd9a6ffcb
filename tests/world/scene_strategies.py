"""Hypothesis strategies for random valid shapes-world scenes (shared by the caption and grammar tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from anyframe.world import vocab
from anyframe.world.scene import Event, Motion, Scene, WorldObject


@st.composite
def motions(draw) -> Motion:
    direction = draw(st.none() | st.sampled_from(list(vocab.DIRECTIONS)))
    return Motion(
        direction=direction,
        speed=draw(st.sampled_from(list(vocab.SPEEDS))),
        bounce=direction is not None and draw(st.booleans()),  # a still object cannot bounce
        scale=draw(st.sampled_from(vocab.SCALE_CHANGES)),
        rotate=draw(st.booleans()),
    )


@st.composite
def _event(draw, ids: list[int], frames: int) -> Event:
    kinds = (["appear", "disappear"] if frames > 1 else []) + (["collision"] if len(ids) > 1 else [])
    kind = draw(st.sampled_from(kinds))
    subject = draw(st.sampled_from(ids))
    if kind != "collision":
        return Event(kind, subject, frame=draw(st.integers(1, frames - 1)))
    other = draw(st.sampled_from([i for i in ids if i != subject]))
    effect = draw(st.sampled_from(vocab.COLLISION_EFFECTS))
    color = draw(st.sampled_from(list(vocab.COLORS))) if effect == "change_color" else None
    return Event(kind, subject, other=other, effect=effect, color=color)


@st.composite
def scenes(draw, min_objects: int = 1, max_objects: int = 6) -> Scene:
    """Valid scenes with 1–6 objects inside the canvas and up to 4 events between them.

    Shapes, colours and sizes come from a small per-scene palette, so objects that share colour and
    shape (or all three), the hard cases for references, are common."""
    size = draw(st.sampled_from([16, 32, 48, 64]))
    frames = draw(st.integers(1, 24))
    n = draw(st.integers(min_objects, max_objects))
    shapes = draw(st.lists(st.sampled_from(vocab.SHAPES), min_size=1, max_size=3, unique=True))
    colors = draw(st.lists(st.sampled_from(list(vocab.COLORS)), min_size=1, max_size=3, unique=True))
    sizes = draw(st.lists(st.sampled_from(list(vocab.SIZES)), min_size=1, max_size=2, unique=True))
    ids = draw(st.lists(st.integers(0, 99), min_size=n, max_size=n, unique=True))
    inside = st.floats(0, size, allow_nan=False, allow_infinity=False)
    objects = tuple(
        WorldObject(
            i,
            draw(st.sampled_from(shapes)),
            draw(st.sampled_from(colors)),
            draw(st.sampled_from(sizes)),
            draw(inside),
            draw(inside),
            draw(motions()),
            draw(st.floats(0, 6.3)),
        )
        for i in ids
    )
    can_have_events = frames > 1 or n > 1
    events = tuple(draw(st.lists(_event(ids, frames), max_size=4))) if can_have_events else ()
    return Scene(
        objects=objects,
        background=draw(st.sampled_from(vocab.BACKGROUNDS)),
        style=draw(st.sampled_from(vocab.STYLES)),
        pan=draw(st.sampled_from(vocab.PANS)),
        events=events,
        size=size,
        frames=frames,
    ).validate()
