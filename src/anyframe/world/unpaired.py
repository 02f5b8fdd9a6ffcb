"""Unpaired text + image cases: the shapes-world analog of ReasonDiff's test setting.

ReasonDiff conditions a video on a text and an image that are *not* temporally aligned: the image
is "a state from another moment" — in its evaluation, the first or the last frame of a clip whose
text describes the action — and the model is not told where in time the image sits. An
:class:`UnpairedCase` is that: a scene, a short text describing an action of one object (its
motion, plus its collision or appearance when it has one) with no word about time positions, and
the frame of the same scene whose rendering is the condition image — the first frame ("start"),
``frames // 2`` ("middle") or the last frame ("end"). The oracle can then check a generated clip
against the scene and check where the condition image landed.

The text comes from the small template here (:func:`action_text`); the captions module can
replace it with its full grammar, as the case only needs some text that describes the action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.world.edits import object_reference
from anyframe.world.scene import Scene, WorldObject

POSITIONS = ("start", "middle", "end")
_SPEED_WORDS = {"slowly": "slowly ", "normal": "", "quickly": "quickly "}


@dataclass(frozen=True)
class UnpairedCase:
    scene: Scene
    text: str  # the action, with nothing about where the image sits in time
    image_frame: int  # the frame of the scene rendered as the condition image
    position: str  # "start" | "middle" | "end": where image_frame sits
    object_id: int | None = None  # the object the text is about


def position_frame(position: str, frames: int) -> int:
    """The frame index of a position: start 0, middle frames // 2, end frames − 1."""
    if position not in POSITIONS:
        raise AnyframeInputError(f"unknown position {position!r}; expected one of {POSITIONS}")
    return {"start": 0, "middle": frames // 2, "end": frames - 1}[position]


def _name(scene: Scene, obj: WorldObject) -> str:
    # Identical twins cannot be told apart by looks: "a" is still true of either.
    return object_reference(scene, obj) or f"a {obj.size} {obj.color} {obj.shape}"


def _subject(scene: Scene, rng: np.random.Generator) -> WorldObject:
    """The object the text is about: the one a collision acts on, else a moving one, else any."""
    hit = [scene.object(e.object) for e in scene.events if e.type == "collision"]
    moving = [o for o in scene.objects if o.motion.direction is not None]
    pool = hit or moving or list(scene.objects)
    return pool[int(rng.integers(len(pool)))]


def action_text(scene: Scene, obj: WorldObject) -> str:
    """"the red circle moves quickly left, hits the blue square and turns green"."""
    m = obj.motion
    parts = []
    events = [e for e in scene.events if e.object == obj.id]
    if any(e.type == "appear" for e in events):
        parts.append("appears")
    if m.direction is None:
        parts.append("stays still")
    else:
        parts.append(f"moves {_SPEED_WORDS[m.speed]}{m.direction}")
        if m.bounce:
            parts.append("bounces off the edges")
    for e in events:
        if e.type == "collision":
            parts.append(f"hits {_name(scene, scene.object(e.other))}")
            parts.append(f"turns {e.color}" if e.effect == "change_color" else "stops")
    if any(e.type == "disappear" for e in events):
        parts.append("disappears")
    verbs = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{_name(scene, obj)} {verbs}"


def make_unpaired(scene: Scene, rng: np.random.Generator, position: str | None = None) -> UnpairedCase:
    """An unpaired case of ``scene``; ``position=None`` draws start / middle / end uniformly.

    Deterministic given the rng state.
    """
    if not scene.objects:
        raise AnyframeInputError("an unpaired case needs a scene with at least one object")
    if position is None:
        position = POSITIONS[int(rng.integers(len(POSITIONS)))]
    frame = position_frame(position, scene.frames)
    obj = _subject(scene, rng)
    return UnpairedCase(scene, action_text(scene, obj), frame, position, obj.id)
