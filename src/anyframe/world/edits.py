"""Edit pairs: a source scene, an instruction, and the target scene the instruction asks for.

The shapes-world analog of instruction-based video editing (Omni-Video). The target differs from
the source *only* in what the instruction says — same ids, start positions, other objects,
events, background, pan and canvas:

- ``recolor``: "make the red circle blue" — that object's colour.
- ``remove``: "remove the blue square" — that object and its own appear / disappear event.
- ``add``: "add a small green triangle moving up" — one new object (id = max id + 1) drawn with the
  sampling rules (:func:`anyframe.world.sampling.sample_object`); the instruction states its size,
  colour, shape and whole motion (speed when not normal, bounce, scale change, rotation); its
  position is the one thing left to the editor.
- ``change_motion``: "make the red circle move right" / "make the red circle stay still" — that
  object's direction (the speed too when the instruction names one: "move slowly left").
- ``change_style``: "make it outline style" / "render it in a striped style" — the style.

Objects are named unambiguously: "the red circle" when no other object is a red circle, else "the
small red circle" when that is unique; an object that even its size does not single out is never
edited. Edits keep scenes valid and in the training distribution: new colours form training
(colour, shape) pairs, new styles are training styles, an added object makes at most
``vocab.MAX_OBJECTS``, a changed or added non-bouncing motion stays inside the canvas; objects
taking part in a collision are never removed or re-directed (the collision would no longer happen,
a change the instruction does not say), and a recolour never picks the colour a collision turns the
object to (the change would vanish) nor one that makes two objects of the same look.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.sampling import TRAIN_COLOR_SHAPES, TRAIN_STYLES, fits_inside, sample_object, stays_inside
from anyframe.world.scene import Motion, Scene, WorldObject, simulate

EDIT_KINDS = ("recolor", "remove", "add", "change_motion", "change_style")
_STYLE_TEMPLATES = ("make it {} style", "render it in a {} style")
_SPEED_WORDS = {"slowly": "slowly", "normal": "", "quickly": "quickly"}


@dataclass(frozen=True)
class EditPair:
    source: Scene
    target: Scene
    instruction: str
    kind: str  # one of EDIT_KINDS
    object_id: int | None  # the recoloured / removed / added / re-moved object; None for a style change


# ------------------------------------------------------------------------------------ language


def object_reference(scene: Scene, obj: WorldObject) -> str | None:
    """"the red circle", or "the small red circle" when needed; None when even that is ambiguous."""
    same = [o for o in scene.objects if o.color == obj.color and o.shape == obj.shape]
    if len(same) == 1:
        return f"the {obj.color} {obj.shape}"
    if sum(o.size == obj.size for o in same) == 1:
        return f"the {obj.size} {obj.color} {obj.shape}"
    return None


def _join(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def motion_phrase(motion: Motion) -> str:
    """"moving quickly up-left, bouncing off the edges and rotating" / "staying still"."""
    if motion.direction is None:
        parts = ["staying still"]
    else:
        speed = _SPEED_WORDS[motion.speed]
        parts = [f"moving {speed} {motion.direction}" if speed else f"moving {motion.direction}"]
        if motion.bounce:
            parts.append("bouncing off the edges")
    if motion.scale != "none":
        parts.append("growing" if motion.scale == "grow" else "shrinking")
    if motion.rotate:
        parts.append("rotating")
    return _join(parts)


def instruction_vocabulary() -> list[str]:
    """Every word an instruction can use (sorted; punctuation stripped)."""
    words = {"make", "the", "remove", "add", "a", "move", "stay", "still", "it", "style", "render", "in", "staying",
             "moving", "bouncing", "off", "edges", "growing", "shrinking", "rotating", "and"}
    words |= set(vocab.COLORS) | set(vocab.SHAPES) | set(vocab.SIZES) | set(vocab.DIRECTIONS)
    words |= {w for w in _SPEED_WORDS.values() if w} | set(vocab.STYLES)
    return sorted(words)


# ------------------------------------------------------------------------------------ helpers


def _pick(rng: np.random.Generator, seq: list | tuple):
    return seq[int(rng.integers(len(seq)))]


def _in_collision(scene: Scene, object_id: int) -> bool:
    return any(e.type == "collision" and object_id in (e.object, e.other) for e in scene.events)


def _referable(scene: Scene) -> list[tuple[WorldObject, str]]:
    out = []
    for o in scene.objects:
        ref = object_reference(scene, o)
        if ref is not None:
            out.append((o, ref))
    return out


def _replace_object(scene: Scene, new: WorldObject) -> Scene:
    return scene.with_objects(new if o.id == new.id else o for o in scene.objects)


def _edited_object_inside(scene: Scene, object_id: int) -> bool:
    """The edited object, when it does not bounce, stays inside the canvas (checked by simulation)."""
    index = next(i for i, o in enumerate(scene.objects) if o.id == object_id)
    return scene.objects[index].motion.bounce or stays_inside(simulate(scene), index, scene.size)


# ------------------------------------------------------------------------------------ edit kinds


def _recolor(scene: Scene, rng: np.random.Generator) -> EditPair | None:
    options = []
    for o, ref in _referable(scene):
        looks = {(p.color, p.shape) for p in scene.objects}
        # A collision that turns the object to colour c would be invisible after recolouring it to c.
        turns_to = {e.color for e in scene.events if e.type == "collision" and e.object == o.id}
        colors = [
            c for c, s in TRAIN_COLOR_SHAPES if s == o.shape and (c, s) not in looks and c not in turns_to
        ]
        if colors:
            options.append((o, ref, colors))
    if not options:
        return None
    o, ref, colors = _pick(rng, options)
    color = _pick(rng, colors)
    target = _replace_object(scene, replace(o, color=color))
    return EditPair(scene, target.validate(), f"make {ref} {color}", "recolor", o.id)


def _remove(scene: Scene, rng: np.random.Generator) -> EditPair | None:
    if len(scene.objects) < 2:
        return None  # an empty scene is no clip to edit toward
    options = [(o, ref) for o, ref in _referable(scene) if not _in_collision(scene, o.id)]
    if not options:
        return None
    o, ref = _pick(rng, options)
    target = replace(
        scene,
        objects=tuple(p for p in scene.objects if p.id != o.id),
        events=tuple(e for e in scene.events if e.object != o.id),
    )
    return EditPair(scene, target.validate(), f"remove {ref}", "remove", o.id)


def _add(scene: Scene, rng: np.random.Generator) -> EditPair | None:
    if len(scene.objects) >= vocab.MAX_OBJECTS:
        return None
    new = sample_object(rng, scene)
    if new is None:
        return None
    target = scene.with_objects((*scene.objects, new)).validate()
    if not _edited_object_inside(target, new.id):
        return None
    text = f"add a {new.size} {new.color} {new.shape} {motion_phrase(new.motion)}"
    return EditPair(scene, target, text, "add", new.id)


def _motion_options(scene: Scene, o: WorldObject, ref: str) -> list[tuple[Motion, str]]:
    """(new motion, instruction) pairs that keep a non-bouncing object inside the canvas."""
    m = o.motion
    options = []
    if m.direction is not None:
        still = replace(m, direction=None, bounce=False)  # a still object cannot bounce
        if fits_inside(scene, replace(o, motion=still)):
            options.append((still, f"make {ref} stay still"))
    for speed in (m.speed, "slowly"):  # "slowly" only when no direction fits at the current speed
        for d in vocab.DIRECTIONS:
            moved = replace(m, direction=d, speed=speed)
            if d != m.direction and fits_inside(scene, replace(o, motion=moved)):
                word = "" if speed == m.speed else f"{_SPEED_WORDS[speed]} "
                options.append((moved, f"make {ref} move {word}{d}"))
        if any(mm.direction is not None for mm, _ in options) or speed == "slowly":
            break
    return options


def _change_motion(scene: Scene, rng: np.random.Generator) -> EditPair | None:
    options = []
    for o, ref in _referable(scene):
        if not _in_collision(scene, o.id):
            moves = _motion_options(scene, o, ref)
            if moves:
                options.append((o, moves))
    if not options:
        return None
    o, moves = _pick(rng, options)
    motion, text = _pick(rng, moves)
    target = _replace_object(scene, replace(o, motion=motion)).validate()
    if not _edited_object_inside(target, o.id):
        return None
    return EditPair(scene, target, text, "change_motion", o.id)


def _change_style(scene: Scene, rng: np.random.Generator) -> EditPair | None:
    style = _pick(rng, [s for s in TRAIN_STYLES if s != scene.style])
    text = _pick(rng, _STYLE_TEMPLATES).format(style)
    return EditPair(scene, replace(scene, style=style).validate(), text, "change_style", None)


_BUILDERS = {
    "recolor": _recolor,
    "remove": _remove,
    "add": _add,
    "change_motion": _change_motion,
    "change_style": _change_style,
}


def make_edit(scene: Scene, rng: np.random.Generator, kind: str | None = None) -> EditPair:
    """An edit of ``scene``; ``kind=None`` tries the kinds in a random order until one applies.

    Deterministic given the rng state. Raises :class:`AnyframeInputError` for an unknown kind or a
    kind that does not apply to this scene (e.g. ``remove`` on a one-object scene).
    """
    if kind is not None and kind not in EDIT_KINDS:
        raise AnyframeInputError(f"unknown edit kind {kind!r}; expected one of {EDIT_KINDS}")
    kinds = [kind] if kind is not None else [EDIT_KINDS[i] for i in rng.permutation(len(EDIT_KINDS))]
    for k in kinds:
        pair = _BUILDERS[k](scene, rng)
        if pair is not None:
            return pair
    raise AnyframeInputError(f"no {kind or 'edit'} applies to this scene")
