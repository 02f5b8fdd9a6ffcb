"""Captions of shapes-world scenes: a global caption, JDM-style regional captions, ReasonDiff-style
per-frame narratives, and the vocabulary they (and the parser's paraphrases) use.

All three generators are deterministic functions of the scene (and its trajectory). Their format:

* :func:`caption` — sentences, each capitalised and ended with a period::

      On a BG background[ in a STYLE style], OBJECT_1. OBJECT_2. … EVENT. … [The camera pans DIR.]

  ``OBJECT`` is ``a SIZE COLOUR SHAPE moves DIR[ slowly|quickly][, MODS]`` or ``a SIZE COLOUR SHAPE
  stays still[, MODS]``; ``MODS`` lists ``bouncing`` (moving objects only), ``growing`` /
  ``shrinking`` and ``rotating`` as ``a, b and c``. Diagonals read ``up and to the left`` etc.
  Objects appear in scene order. The style is omitted when it is flat (the parser's default);
  the background is always stated; a scene without objects says ``there are no shapes``.
  ``EVENT`` (scene order) is ``when REF hits REF, it turns COLOUR`` / ``…, it stops`` (``it`` is the
  object that changes) or ``REF appears partway through`` / ``REF disappears partway through``
  (exact frames are not stated).
* :func:`regional_captions` — one per object: ``a SIZE COLOUR SHAPE moving DIR[ ADVERB][, MODS]``
  or ``a SIZE COLOUR SHAPE staying still[, MODS]`` (no period).
* :func:`frame_captions` — one per frame: the frame's events (``The red circle hits the blue square
  and turns green.``, ``… appears.``, ``… disappears.``), then where each visible object is
  (``The red circle is in the top left, the blue square is in the center and …``; ``nothing is
  visible.``) on a 3×3 grid of the screen, or ``off screen``.

References (``REF``) are the shortest unambiguous definite description: ``the COLOUR SHAPE``; with
the size when another object has the same colour and shape; with an ordinal (``the second small red
circle``, counting in scene order, i.e. the order the caption introduces them) when another object
also has the same size. Colours are the colours objects start with (per-frame captions use the
colours at that frame; event sentences use the colours just before the event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from anyframe.errors import AnyframeInputError
from anyframe.world import grammar
from anyframe.world.grammar import ORDINALS, ObjectRef
from anyframe.world.scene import Motion, Scene, Trajectory, WorldObject, simulate

DIRECTION_PHRASES = {
    "left": "left",
    "right": "right",
    "up": "up",
    "down": "down",
    "up-left": "up and to the left",
    "up-right": "up and to the right",
    "down-left": "down and to the left",
    "down-right": "down and to the right",
}
SPEED_PHRASES = {"slowly": " slowly", "normal": "", "quickly": " quickly"}
SCALE_PHRASES = {"grow": "growing", "shrink": "shrinking"}
# Adjectives read better than the vocabulary's nouns ("a striped background", "a grainy style").
BACKGROUND_PHRASES = {"stripes": "striped", "dots": "dotted"}
STYLE_PHRASES = {"grain": "grainy"}
# Screen regions on a 3×3 grid, (column, row) -> phrase.
REGION_PHRASES = {
    (0, 0): "in the top left",
    (1, 0): "at the top",
    (2, 0): "in the top right",
    (0, 1): "on the left",
    (1, 1): "in the center",
    (2, 1): "on the right",
    (0, 2): "in the bottom left",
    (1, 2): "at the bottom",
    (2, 2): "in the bottom right",
}
OFF_SCREEN = "off screen"
# Fixed words of the templates below, listed so the vocabulary is complete.
_TEMPLATE_TEXT = (
    "on a an background in style there are no shapes moves stays still when hits , it turns stops appears "
    "disappears partway through the camera pans is and nothing visible . moving staying bouncing rotating"
)


# ================================================================================= small helpers


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _english_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _indefinite(o: WorldObject) -> str:
    return f"{_article(o.size)} {o.size} {o.color} {o.shape}"


def references(features: Sequence[ObjectRef]) -> list[str]:
    """The shortest unambiguous definite reference to each object (see the module docstring)."""
    refs = []
    for i, f in enumerate(features):
        same_look = [j for j, g in enumerate(features) if (g.shape, g.color) == (f.shape, f.color)]
        if len(same_look) == 1:
            refs.append(f"the {f.color} {f.shape}")
            continue
        twins = [j for j in same_look if features[j].size == f.size]
        if len(twins) == 1:
            refs.append(f"the {f.size} {f.color} {f.shape}")
        elif len(twins) <= len(ORDINALS):
            refs.append(f"the {ORDINALS[twins.index(i)]} {f.size} {f.color} {f.shape}")
        else:  # never ambiguous: refuse rather than write a reference the parser could not resolve
            raise AnyframeInputError(
                f"cannot caption more than {len(ORDINALS)} identical {f.size} {f.color} {f.shape}s"
            )
    return refs


def _scene_refs(scene: Scene) -> dict[int, str]:
    refs = references([ObjectRef(o.shape, o.color, o.size) for o in scene.objects])
    return {o.id: ref for o, ref in zip(scene.objects, refs)}


# ================================================================================ object clauses


def _motion(m: Motion, participle: bool) -> str:
    """``moves left quickly, bouncing and rotating`` (or ``moving …``); ``stays still, growing``."""
    if m.direction is None:
        head = "staying still" if participle else "stays still"
    else:
        verb = "moving" if participle else "moves"
        head = f"{verb} {DIRECTION_PHRASES[m.direction]}{SPEED_PHRASES[m.speed]}"
    mods = []
    if m.bounce and m.direction is not None:  # a still object cannot visibly bounce
        mods.append("bouncing")
    if m.scale in SCALE_PHRASES:
        mods.append(SCALE_PHRASES[m.scale])
    if m.rotate:
        mods.append("rotating")
    return head + (", " + _english_list(mods) if mods else "")


def regional_captions(scene: Scene) -> list[str]:
    """One caption per object in scene order (JDM's regional captions): ``a small red circle moving left``."""
    scene.validate()
    return [f"{_indefinite(o)} {_motion(o.motion, participle=True)}" for o in scene.objects]


# ================================================================================ global caption


def _setting(scene: Scene) -> str:
    background = BACKGROUND_PHRASES.get(scene.background, scene.background)
    text = f"on {_article(background)} {background} background"
    if scene.style != "flat":  # flat is the default look: omitted, and the parser's default
        style = STYLE_PHRASES.get(scene.style, scene.style)
        text += f" in {_article(style)} {style} style"
    return text


def _event_sentence(scene: Scene, index: int, refs: dict[int, str]) -> str:
    e = scene.events[index]
    if e.type == "collision":
        effect = f"turns {e.color}" if e.effect == "change_color" else "stops"
        return f"when {refs[e.object]} hits {refs[e.other]}, it {effect}"
    verb = "appears" if e.type == "appear" else "disappears"
    return f"{refs[e.object]} {verb} partway through"


def caption(scene: Scene) -> str:
    """The global caption: every object, its motion, the events, the camera pan, background and style."""
    scene.validate()
    clauses = [f"{_indefinite(o)} {_motion(o.motion, participle=False)}" for o in scene.objects]
    clauses = clauses or ["there are no shapes"]
    sentences = [f"{_setting(scene)}, {clauses[0]}", *clauses[1:]]
    refs = _scene_refs(scene)
    sentences += [_event_sentence(scene, j, refs) for j in range(len(scene.events))]
    if scene.pan != "none":
        sentences.append(f"the camera pans {scene.pan}")
    return " ".join(_sentence(s) for s in sentences)


def partial_caption(scene: Scene, objects: Sequence[int]) -> str:
    """The caption form of only some objects (indices into ``scene.objects``, any order): JDM's "regional
    captions joined", in the words of :func:`caption` — the setting, the chosen objects' clauses in scene order,
    the events among them only, the camera pan. References are shortest among the chosen objects (what a reader
    of this caption alone can resolve). All the objects: exactly :func:`caption`."""
    scene.validate()
    chosen = sorted(set(objects))
    if any(not 0 <= i < len(scene.objects) for i in chosen):
        raise ValueError(f"object indices {list(objects)} out of range for {len(scene.objects)} objects")
    kept = [scene.objects[i] for i in chosen]
    ids = {o.id for o in kept}
    events = tuple(e for e in scene.events if e.object in ids and (e.type != "collision" or e.other in ids))
    return caption(replace(scene, objects=tuple(kept), events=events))


# ================================================================================ frame captions


def _region(x: float, y: float, size: int) -> str:
    if not (0 <= x < size and 0 <= y < size):
        return OFF_SCREEN
    return REGION_PHRASES[(int(3 * x // size), int(3 * y // size))]


def _refs_at(scene: Scene, trajectory: Trajectory, t: int) -> list[str]:
    features = [ObjectRef(o.shape, trajectory.color[n][t], o.size) for n, o in enumerate(scene.objects)]
    return references(features)


def _frame_events(scene: Scene, trajectory: Trajectory, t: int, refs: list[str]) -> list[str]:
    """What happens at frame t, with references from just before it (a recoloured object "turns green")."""
    index = {o.id: n for n, o in enumerate(scene.objects)}
    sentences = []
    for e, frame in zip(scene.events, trajectory.event_frames):
        if frame != t:
            continue
        subject = refs[index[e.object]]
        if e.type == "collision":
            effect = f"turns {e.color}" if e.effect == "change_color" else "stops"
            sentences.append(f"{subject} hits {refs[index[e.other]]} and {effect}")
        else:
            sentences.append(f"{subject} {'appears' if e.type == 'appear' else 'disappears'}")
    return sentences


def _frame_positions(scene: Scene, trajectory: Trajectory, t: int, refs: list[str]) -> str:
    places = [
        f"{refs[n]} is {_region(trajectory.x[n, t], trajectory.y[n, t], scene.size)}"
        for n in range(len(scene.objects))
        if trajectory.visible[n, t]
    ]
    return _english_list(places) if places else "nothing is visible"


def frame_captions(scene: Scene, trajectory: Trajectory | None = None) -> list[str]:
    """One narrative per frame (ReasonDiff's per-frame descriptions): its events, then where each
    visible object is. ``trajectory`` defaults to ``simulate(scene)``."""
    scene.validate()
    trajectory = simulate(scene) if trajectory is None else trajectory
    captions = []
    for t in range(trajectory.num_frames):
        now = _refs_at(scene, trajectory, t)
        before = _refs_at(scene, trajectory, t - 1) if t > 0 else now
        events = _frame_events(scene, trajectory, t, before)
        sentences = [*events, _frame_positions(scene, trajectory, t, now)]
        captions.append(" ".join(_sentence(s) for s in sentences))
    return captions


# ==================================================================================== vocabulary


def caption_vocabulary() -> list[str]:
    """Every token the generators above and the parser's documented paraphrases can produce, sorted
    (lower case; punctuation as separate tokens, as the word-level tokenizer splits them)."""
    phrases = [
        _TEMPLATE_TEXT,
        *DIRECTION_PHRASES.values(),
        *SPEED_PHRASES.values(),
        *SCALE_PHRASES.values(),
        *BACKGROUND_PHRASES.values(),
        *STYLE_PHRASES.values(),
        *REGION_PHRASES.values(),
        OFF_SCREEN,
    ]
    words = {t.text for phrase in phrases for t in grammar.tokenize(phrase)}
    return sorted(words | grammar.LEXICON)
