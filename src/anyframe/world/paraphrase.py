"""Free-form descriptions of shapes-world scenes: the captions a user would write, for training on them.

:func:`paraphrase` describes a scene in varied everyday English, drawn at random (a ``random.Random``):

* words: synonyms for shapes (``ball``, ``box``, ``plus``…), colours (``crimson``, ``violet``…), sizes
  (``tiny``, ``big``…), motion verbs (``drifts``, ``zooms``, ``rises``…), directions (``leftward``, ``to the
  west``, ``toward the upper left``…), speeds, still objects, bouncing, growth, rotation, backgrounds and
  styles (tables below);
* forms: a sentence per object or one list; the setting first, last, as its own sentence or left out; no
  article, no capitals, no final period; ``there is …``; identical-looking objects as a count with a plural
  (``two blue squares move left``; different motions: ``…, one moving left and one staying still``);
* omissions: the size, the speed, the background, the style, an object's motion, the camera and the events
  may each be left unsaid. An unsaid attribute is whatever the clip shows — the model learns to take it from
  a given keyframe, or to sample it.

A paraphrase never says anything false about the scene: every stated shape, colour, size, motion, background
and style is the scene's. Events are described in the world's caption form (their wording varies little).

:data:`WORD_MEANINGS` maps every word a paraphrase may use that the world's caption vocabulary does not hold
to the caption word it means (or ``None`` for a word with no single counterpart): a model's tokenizer grows by
these words, each new embedding row starting as its counterpart's (see
:func:`anyframe.models.text_encoder.grow_vocabulary`).

:func:`with_duplicate` gives some scenes two objects of the same look, so that counts and plurals are seen in
training (the scene sampler makes them rarely).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from anyframe.world.captions import _event_sentence, _scene_refs, caption
from anyframe.world.grammar import tokenize
from anyframe.world.scene import Motion, Scene, WorldObject

# ============================================================================ word tables (canonical → forms)

SHAPE_NOUNS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "dot", "disc", "disk", "orb"),
    "square": ("square", "box", "block", "tile", "cube"),
    "triangle": ("triangle", "wedge", "pyramid"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "cross": ("cross", "plus", "plus sign", "x"),
}
PLURALS = {"cross": "crosses", "box": "boxes", "plus": "pluses", "plus sign": "plus signs", "x": "xs",
           "rhombus": "rhombuses"}
COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "amber", "tangerine"),
    "yellow": ("yellow", "gold", "golden"),
    "green": ("green", "emerald", "lime"),
    "cyan": ("cyan", "teal", "turquoise", "aqua"),
    "blue": ("blue", "azure", "cobalt"),
    "purple": ("purple", "violet", "magenta", "lilac"),
    "white": ("white", "ivory", "snow white"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "tiny", "little", "mini"),
    "medium": ("medium", "medium-sized", "mid-sized", "average-sized"),
    "large": ("large", "big", "huge", "giant"),
}
MOVE_VERBS = ("move", "go", "travel", "slide", "drift", "glide", "head", "float", "fly", "roll", "zoom", "cruise")
# verbs that carry their direction: (verb, direction)
DIRECTED_VERBS = (("rise", "up"), ("climb", "up"), ("ascend", "up"), ("fall", "down"), ("sink", "down"),
                  ("drop", "down"), ("descend", "down"))
_THIRD = {"go": "goes", "fly": "flies"}
_ING = {"move": "moving", "slide": "sliding", "glide": "gliding", "rise": "rising", "ascend": "ascending",
        "descend": "descending", "drop": "dropping", "zoom": "zooming", "cruise": "cruising"}
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left", "leftward", "leftwards", "towards the left", "west", "to the west", "westward"),
    "right": ("right", "to the right", "rightward", "rightwards", "towards the right", "east", "to the east",
              "eastward"),
    "up": ("up", "upward", "upwards", "toward the top", "north", "northward", "to the top"),
    "down": ("down", "downward", "downwards", "toward the bottom", "south", "southward", "to the bottom"),
}
DIAGONAL_WORDS = ("{v} and to the {h}", "{v} and {h}", "diagonally {v} and to the {h}", "toward the {u} {h}",
                  "to the {u} {h}", "{c}", "{v}-{h}", "diagonally {v}-{h}")
_UPPER = {"up": "upper", "down": "lower"}
_COMPASS = {("up", "left"): "northwest", ("up", "right"): "northeast", ("down", "left"): "southwest",
            ("down", "right"): "southeast"}
SPEED_WORDS: dict[str, tuple[str, ...]] = {
    "slowly": ("slowly", "gently", "leisurely", "at a slow pace", "slow"),
    "quickly": ("quickly", "fast", "rapidly", "swiftly", "speedily", "at high speed", "at a fast pace"),
    "normal": ("", "", "", "steadily", "at a normal speed", "at a medium speed"),
}
STILL_PHRASES = (("stays still", "staying still"), ("sits still", "sitting still"), ("is stationary", "stationary"),
                 ("is motionless", "motionless"), ("does not move", "not moving"), ("doesn't move", "not moving"),
                 ("stays in place", "staying in place"), ("rests in place", "resting in place"),
                 ("remains still", "remaining still"), ("stands still", "standing still"),
                 ("holds still", "holding still"), ("stays put", "staying put"))
BOUNCE_PHRASES = ("bouncing", "bouncing off the walls", "bouncing off the edges", "bouncing around",
                  "bouncing off the sides")
SCALE_WORDS = {"grow": ("growing", "getting bigger", "expanding", "growing larger", "getting larger"),
               "shrink": ("shrinking", "getting smaller", "contracting")}
ROTATE_WORDS = ("rotating", "spinning", "twirling")
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark black", "pitch black"),
    "gray": ("gray", "grey"),
    "navy": ("navy", "navy blue", "dark blue"),
    "olive": ("olive", "olive green"),
    "maroon": ("maroon", "burgundy", "dark red"),
    "checker": ("checkered", "checkerboard", "chequered", "checker"),
    "stripes": ("striped", "stripy", "stripes"),
    "grid": ("grid", "gridded", "grid-lined"),
    "dots": ("dotted", "polka-dot", "spotted"),
}
BACKGROUND_FRAMES = ("on a {b} background", "against a {b} background", "on a {b} backdrop", "over a {b} background",
                     "with a {b} background", "in front of a {b} background", "on {b}")
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "outline": ("in an outline style", "drawn as outlines", "outlined", "in outline", "as outlines"),
    "striped": ("in a striped style", "with striped shapes", "in stripes"),
    "grain": ("in a grainy style", "grainy", "with film grain", "noisy", "in a noisy style"),
    "pixelated": ("in a pixelated style", "pixelated", "in pixel art"),
}
PAN_FRAMES = ("the camera pans {d}", "the camera moves {d}", "the view scrolls {d}", "the camera slides {d}")
COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
OPENERS = ("", "", "", "", "there is ", "we see ", "a video of ", "a clip of ", "a scene with ")
JOINERS = (". ", ". ", ", ", " and ", "; ", ", while ")

# The words above that the world's caption vocabulary lacks, and the caption word each means (None: no single
# one; several words: their mean). A grown tokenizer starts each such word's embedding as its counterpart's.
WORD_MEANINGS: dict[str, str | None] = {
    # shapes
    "ball": "circle", "balls": "circles", "dot": "circle", "disc": "circle", "discs": "circles",
    "disk": "circle", "disks": "circles", "orb": "circle", "orbs": "circles",
    "box": "square", "boxes": "squares", "block": "square", "blocks": "squares", "tile": "square",
    "tiles": "squares", "cube": "square", "cubes": "squares",
    "wedge": "triangle", "wedges": "triangles", "pyramid": "triangle", "pyramids": "triangles",
    "rhombus": "diamond", "rhombuses": "diamonds", "lozenge": "diamond", "lozenges": "diamonds",
    "plus": "cross", "pluses": "crosses", "sign": "cross", "signs": "crosses", "x": "cross", "xs": "crosses",
    # colours
    "crimson": "red", "scarlet": "red", "amber": "orange", "tangerine": "orange", "gold": "yellow",
    "golden": "yellow", "emerald": "green", "lime": "green", "teal": "cyan", "turquoise": "cyan", "aqua": "cyan",
    "azure": "blue", "cobalt": "blue", "violet": "purple", "magenta": "purple", "lilac": "purple",
    "ivory": "white", "snow": "white",
    # sizes
    "mini": "small", "sized": None, "mid": "medium", "average": "medium", "giant": "large",
    # motion
    
    "float": "moves", "floats": "moves", "floating": "moving", "fly": "moves", "flies": "moves", "flying": "moving",
    "roll": "moves", "rolls": "moves", "rolling": "moving", "zoom": "moves", "zooms": "moves", "zooming": "moving",
    "cruise": "moves", "cruises": "moves", "cruising": "moving", 
    
    "rise": "up", "rises": "up", "rising": "up", "climb": "up", "climbs": "up", "climbing": "up",
    "ascend": "up", "ascends": "up", "ascending": "up", "fall": "down", "falls": "down", "falling": "down",
    "sink": "down", "sinks": "down", "sinking": "down", "drop": "down", "drops": "down", "dropping": "down",
    "descend": "down", "descends": "down", "descending": "down",
    "west": "left", "westward": "left", "east": "right", "eastward": "right", "north": "up", "northward": "up",
    "south": "down", "southward": "down", "northwest": "up left", "northeast": "up right", "southwest": "down left",
    "southeast": "down right",
    "gently": "slowly", "leisurely": "slowly", "slow": "slowly", "pace": None, "speedily": "quickly",
    "high": "quickly", "speed": None, "steadily": None, "normal": None,
    "rests": "stays", "resting": "staying", "holds": "stays",
    "holding": "staying", "hold": "stay", "rest": "stay", "empty": None,
    "twirling": "rotating",
    # settings
    "dark": None, "pitch": None, "backdrop": "background", "front": None, "of": None, "burgundy": "maroon",
    "chequered": "checker", "stripy": "striped", "gridded": "grid", "lined": None, "polka": None,
    "spotted": "dotted", "film": None, "art": None, "outlines": "outline",
    
    # framing
    "we": None, "see": None, "scene": None,
}


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


def _plural(noun: str) -> str:
    return PLURALS.get(noun, noun + "s")


def _third(verb: str) -> str:
    return _THIRD.get(verb, verb + "s")


def _ing(verb: str) -> str:
    return _ING.get(verb, verb + "ing")


def _direction(rng: random.Random, direction: str) -> str:
    if direction in DIRECTION_WORDS:
        return _pick(rng, DIRECTION_WORDS[direction])
    v, h = direction.split("-")
    return _pick(rng, DIAGONAL_WORDS).format(v=v, h=h, u=_UPPER[v], c=_COMPASS[(v, h)])


def _motion(rng: random.Random, m: Motion, plural: bool, participle: bool, p_omit: float) -> str:
    """A verb phrase for ``m``: ``drifts left slowly, bouncing`` / ``sinking`` / ``stays still`` (``""``: unsaid)."""
    if m.direction is None:
        finite, ing = _pick(rng, STILL_PHRASES)
        if plural and not participle:
            finite = finite.replace("stays", "stay").replace("sits", "sit").replace("is ", "are ").replace(
                "does", "do").replace("doesn't", "don't").replace("rests", "rest").replace("remains", "remain").replace(
                "stands", "stand").replace("holds", "hold")
        head = ing if participle else finite
    else:
        vertical = m.direction in ("up", "down")
        if vertical and rng.random() < 0.3:
            verb = _pick(rng, [v for v, d in DIRECTED_VERBS if d == m.direction])
            where = ""
        else:
            verb = _pick(rng, MOVE_VERBS)
            where = " " + _direction(rng, m.direction)
        form = _ing(verb) if participle else (verb if plural else _third(verb))
        speed = _pick(rng, SPEED_WORDS[m.speed]) if rng.random() >= p_omit or m.speed == "normal" else ""
        head = form + where + (" " + speed if speed else "")
    mods = []
    if m.bounce and m.direction is not None and rng.random() >= p_omit / 2:
        mods.append(_pick(rng, BOUNCE_PHRASES))
    if m.scale in SCALE_WORDS and rng.random() >= p_omit / 2:
        mods.append(_pick(rng, SCALE_WORDS[m.scale]))
    if m.rotate and rng.random() >= p_omit / 2:
        mods.append(_pick(rng, ROTATE_WORDS))
    if mods:
        head += (" and " if rng.random() < 0.3 and not participle else ", ") + " and ".join(mods)
    return head


def _noun_phrase(rng: random.Random, objects: Sequence[WorldObject], p_omit: float, article: bool) -> str:
    """``a small crimson ball`` / ``two blue boxes`` / ``three squares``-style noun phrases (one look)."""
    o = objects[0]
    noun = _pick(rng, SHAPE_NOUNS[o.shape])
    words = []
    if len({x.size for x in objects}) == 1 and rng.random() >= p_omit:
        words.append(_pick(rng, SIZE_WORDS[o.size]))
    words.append(_pick(rng, COLOR_WORDS[o.color]))
    if len(objects) > 1:
        return f"{COUNT_WORDS[len(objects)]} {' '.join(words)} {_plural(noun)}"
    text = f"{' '.join(words)} {noun}"
    if article:
        text = ("an " if text[0] in "aeiou" else "a ") + text
    return text


def _group_clause(rng: random.Random, group: Sequence[WorldObject], p_omit: float, article: bool) -> str:
    np_ = _noun_phrase(rng, group, p_omit, article)
    if rng.random() < p_omit / 2:  # the motion unsaid
        return np_
    motions = [o.motion for o in group]
    if len(group) == 1 or len(set(motions)) == 1:
        participle = rng.random() < 0.3
        vp = _motion(rng, motions[0], plural=len(group) > 1, participle=participle, p_omit=p_omit)
        return f"{np_} {vp}"
    parts = [f"one {_motion(rng, m, plural=False, participle=True, p_omit=p_omit)}" for m in motions]
    return f"{np_}, " + ", ".join(parts[:-1]) + " and " + parts[-1]


def _groups(rng: random.Random, objects: Sequence[WorldObject]) -> list[list[WorldObject]]:
    """Objects of one shape and colour together (when said as a count: half of the time), in scene order."""
    groups: dict[tuple[str, str], list[WorldObject]] = {}
    for o in objects:
        groups.setdefault((o.shape, o.color), []).append(o)
    out = []
    for group in groups.values():
        if len(group) > 1 and len(group) in COUNT_WORDS and rng.random() < 0.7:
            out.append(group)
        else:
            out.extend([o] for o in group)
    return out


def paraphrase(scene: Scene, rng: random.Random, p_omit: float = 0.4) -> str:
    """A free-form description of ``scene`` (module docstring); ``p_omit`` is how often an optional part goes
    unsaid."""
    scene.validate()
    if not scene.objects:
        return _pick(rng, ("nothing", "there are no shapes", "an empty scene", "no shapes"))
    article = rng.random() < 0.85
    clauses = [_group_clause(rng, g, p_omit, article) for g in _groups(rng, scene.objects)]
    joiner = _pick(rng, JOINERS)
    body = _pick(rng, OPENERS) + clauses[0]
    for clause in clauses[1:]:
        body += (joiner if rng.random() < 0.7 else ". ") + clause
    setting = ""
    if rng.random() >= p_omit:
        setting = _pick(rng, BACKGROUND_FRAMES).format(b=_pick(rng, BACKGROUND_WORDS[scene.background]))
        setting = setting.replace("a a", "an a").replace("a o", "an o")
    style = _pick(rng, STYLE_PHRASES[scene.style]) if scene.style != "flat" and rng.random() >= p_omit / 2 else ""
    where = rng.random()
    if setting and where < 0.35:
        text = f"{setting}, {body}"
    elif setting and where < 0.7:
        text = f"{body} {setting}"
    elif setting:
        text = f"{body}. The background is {_pick(rng, BACKGROUND_WORDS[scene.background])}"
    else:
        text = body
    if style:
        text += f", {style}"
    sentences = [text]
    if scene.events and rng.random() >= p_omit / 2:
        refs = _scene_refs(scene)
        sentences += [_event_sentence(scene, j, refs) for j in range(len(scene.events))]
    if scene.pan != "none" and rng.random() >= p_omit / 2:
        sentences.append(_pick(rng, PAN_FRAMES).format(d=scene.pan))
    text = ". ".join(sentences)
    if rng.random() < 0.6:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.6:
        text += "."
    return text


def with_duplicate(scene: Scene, rng: random.Random, max_tries: int = 8) -> Scene:
    """``scene`` with one object given another's shape and colour (and, half of the time, its size and
    motion), if the result keeps the world's rules (objects inside the canvas and apart); else ``scene``."""
    from anyframe.world.sampling import rule_violations

    if len(scene.objects) < 2 or scene.events:
        return scene
    for _ in range(max_tries):
        i, j = rng.sample(range(len(scene.objects)), 2)
        a, b = scene.objects[i], scene.objects[j]
        copy = replace(b, shape=a.shape, color=a.color)
        if rng.random() < 0.5:
            copy = replace(copy, size=a.size, motion=a.motion)
        objects = list(scene.objects)
        objects[j] = copy
        candidate = replace(scene, objects=tuple(objects))
        try:
            caption(candidate)  # (at most as many identical objects as the captions can tell apart)
        except ValueError:
            continue
        if not rule_violations(candidate):
            return candidate
    return scene


def paraphrase_vocabulary() -> list[str]:
    """Every token :func:`paraphrase` can write (lower case, split as the word-level tokenizer splits), the
    event sentences' words excepted (they are the captions')."""
    phrases: list[str] = [*MOVE_VERBS, *(v for v, _ in DIRECTED_VERBS), *DIAGONAL_WORDS, *OPENERS, *JOINERS,
                          *PAN_FRAMES, *BACKGROUND_FRAMES, *COUNT_WORDS.values(), "a an the one and there are",
                          "nothing no shapes empty scene background is up down left right upper lower"]
    phrases += [_third(v) for v in MOVE_VERBS] + [_ing(v) for v in MOVE_VERBS]
    phrases += [f(v) for v, _ in DIRECTED_VERBS for f in (_third, _ing)]
    phrases += list(_COMPASS.values())
    for table in (SHAPE_NOUNS, COLOR_WORDS, SIZE_WORDS, DIRECTION_WORDS, SPEED_WORDS, SCALE_WORDS, BACKGROUND_WORDS,
                  STYLE_PHRASES):
        for forms in table.values():
            phrases += list(forms)
    phrases += [_plural(n) for forms in SHAPE_NOUNS.values() for n in forms]
    for finite, ing in STILL_PHRASES:
        phrases += [finite, ing, "stay sit are do don't rest remain stand hold"]
    phrases += [*BOUNCE_PHRASES, *ROTATE_WORDS]
    words = {t.text.lower() for phrase in phrases for t in tokenize(phrase.replace("{", " ").replace("}", " "))}
    return sorted(w for w in words if w not in ("v", "h", "u", "c", "b", "d"))
