"""What a shapes-world caption means, and a parser that reads it back.

:func:`semantics` reduces a :class:`~anyframe.world.scene.Scene` to the meaning a caption carries
(:class:`SceneSemantics`); :func:`parse` reads that meaning from English text. For every valid scene
``parse(caption(scene)) == semantics(scene)`` (``caption`` is in :mod:`anyframe.world.captions`).

Semantics
---------
Objects as a sorted tuple of (shape, colour, size, direction | None, speed, bounce, scale, rotate);
the background, style and camera pan; events as a sorted tuple of (type, object, other, effect,
colour) where objects are named by (shape, colour, size). Positions, start angles, ids and the frames
of appear / disappear events are *not* part of the meaning: captions do not state them. A still
object carries no speed and no bounce (both are normalised away: neither is visible). Unstated
background / style / pan mean the scene defaults (black, flat, none); an unstated size means medium.

Parsing
-------
The text is lower-cased and split like the word-level tokenizer (``\\w+`` runs and punctuation runs).
Every token must be in :data:`LEXICON` (else :class:`AnyframeInputError` naming the word and its
position). A recursive-descent parser then reads a sequence of *parts* separated by ``. ; ! , and
then while``:

* object clause: ``NP-list VP`` — e.g. ``a small red circle moves left quickly, bouncing``;
* collision: ``when REF HIT REF[,] [then] (it|REF) EFFECTS`` or ``REF EFFECTS when (it|REF) HIT (it|REF)``;
* appear / disappear: ``REF appears|disappears [TIMING]``;
* setting: ``on a BG background``, ``in an STYLE style``, ``the background is BG``, ``the style is STYLE``;
* camera: ``the camera pans DIR`` / ``the camera stays still``;
* empty scene: ``there are no shapes`` / ``there is nothing`` / ``nothing``.

Objects are introduced by clauses with a motion verb, in text order. An appear / disappear clause
whose noun phrase matches an introduced object is an event on it; otherwise it introduces a new
(still) object. References (``the red circle``, ``the small red circle``, ``the second small red
circle``, even ``the circle``) must pick exactly one introduced object by the features they state;
ordinals count matching objects in the order they were introduced. Colours in references are the
colours objects were introduced with.

Paraphrases accepted (besides everything :func:`~anyframe.world.captions.caption` and
:func:`~anyframe.world.captions.regional_captions` write):

* determiners: ``a`` / ``an`` / ``one`` / ``the`` / none; ``two`` … ``twelve`` with a plural noun
  (``two red circles move left``) introduce that many identical objects;
* sizes: ``tiny`` / ``little`` → small, ``big`` / ``huge`` → large; size and colour in either order;
  size may be omitted (→ medium); colour may not;
* lists: ``a red circle and a blue square move left``; ``a red circle moves left, a blue square stays
  still and a green cross moves up``; ``… while …``; ``there is a red circle moving left``;
* motion verbs: ``moves`` / ``goes`` / ``travels`` / ``slides`` / ``drifts`` / ``glides`` / ``heads``
  (any of ``-s``, bare, ``-ing``), also after ``is`` / ``are`` and ``that`` / ``which``;
* directions: ``left``, ``to the left``, ``towards the left``, ``toward the left``, ``leftwards``,
  ``leftward`` (same for right); ``up`` / ``upwards`` / ``upward`` / ``to the top`` (same for down /
  bottom); diagonals ``up and to the left``, ``up and left``, ``up-left``, ``up left``, ``to the
  upper left``, ``towards the top-left``, ``diagonally up and to the left``;
* speed: ``slowly``; ``quickly`` / ``fast`` / ``rapidly`` / ``swiftly``; before or after the verb;
* still: ``stays still`` / ``remains still`` / ``stands still`` / ``sits still`` / ``is still``,
  ``still`` ↔ ``stationary`` / ``static`` / ``motionless``; ``stays in place``, ``stays put``,
  ``does not move``, ``doesn't move``, ``not moving``;
* bounce: ``bouncing`` / ``bounces`` / ``bounce``, optionally ``off the edges`` (``walls``, ``sides``)
  or ``around``; ``bounces left`` also gives the direction. Without a direction it is dropped;
* scale: ``growing`` / ``grows`` / ``expanding`` / ``gets bigger`` / ``getting larger``; ``shrinking``
  / ``shrinks`` / ``contracting`` / ``gets smaller``; rotation: ``rotating`` / ``rotates`` / ``spinning``
  / ``spins``;
* collisions: ``hits`` / ``touches`` / ``strikes`` / ``meets`` / ``reaches`` / ``collides with`` /
  ``bumps into`` / ``runs into`` / ``crashes into``; ``when`` / ``once`` / ``after`` / ``as``;
  effects ``turns green`` / ``turns into green`` / ``becomes green`` / ``changes to green`` /
  ``changes colour to green`` (``color``), ``stops`` / ``stops moving`` / ``halts`` / ``freezes``;
  several effects joined by ``and``; the affected object is ``it`` (the hitter) or a reference;
* appear / disappear: ``appears`` / ``appearing``; ``disappears`` / ``vanishes``; timing (ignored)
  ``partway`` / ``halfway`` / ``midway`` [``through`` [``the video`` | ``the clip``]], ``later``,
  ``eventually``, ``suddenly``, ``at some point``;
* backgrounds: ``on`` / ``over`` / ``against`` / ``with`` ``a BG background``, ``the background is
  BG``; ``grey`` → gray, ``checkered`` / ``checkerboard`` → checker, ``striped`` → stripes,
  ``dotted`` → dots;
* styles: ``in`` / ``with`` / ``drawn in`` / ``rendered in`` ``an outline style`` (or ``look``),
  ``the style is outline``; ``outlined`` → outline, ``grainy`` / ``noisy`` → grain, ``pixel`` →
  pixelated, ``solid`` → flat;
* camera: ``the camera`` / ``the view`` + ``pans`` / ``scrolls`` / any motion verb + direction, or a
  still phrase; ``with the camera panning left``.

Grammatically incomplete or contradictory input (``a red``, ``moves slowly``, two backgrounds,
``left`` and ``right`` for one object, an ambiguous reference) raises :class:`AnyframeInputError`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.scene import Scene, WorldObject

DEFAULT_SIZE = "medium"  # an object whose caption states no size
DEFAULT_BACKGROUND, DEFAULT_STYLE, DEFAULT_PAN = "black", "flat", "none"  # Scene's defaults

# ====================================================================================== semantics


class ObjectRef(NamedTuple):
    """How a caption names an object: the features it is introduced with."""

    shape: str
    color: str
    size: str


@dataclass(frozen=True)
class ObjectSemantics:
    """One object as a caption describes it: looks and motion, no position (build with object_semantics)."""

    shape: str
    color: str
    size: str
    direction: str | None = None
    speed: str = "normal"
    bounce: bool = False
    scale: str = "none"
    rotate: bool = False

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.shape, self.color, self.size)

    def sort_key(self) -> tuple:
        motion = (self.direction or "", self.speed, self.bounce, self.scale, self.rotate)
        return (self.shape, self.color, self.size, *motion)


@dataclass(frozen=True)
class EventSemantics:
    """One event as a caption states it: no frame; objects named by their features."""

    type: str  # collision | appear | disappear
    object: ObjectRef  # collision: the object that changes
    other: ObjectRef | None = None  # collision: the object it hits
    effect: str | None = None  # collision: change_color | stop
    color: str | None = None  # change_color: the new colour

    def sort_key(self) -> tuple:
        return (self.type, self.object, self.other or ("", "", ""), self.effect or "", self.color or "")


@dataclass(frozen=True)
class SceneSemantics:
    """The meaning of a caption. Compare with ``==``; build with :meth:`build` (it sorts)."""

    objects: tuple[ObjectSemantics, ...]
    background: str = DEFAULT_BACKGROUND
    style: str = DEFAULT_STYLE
    pan: str = DEFAULT_PAN
    events: tuple[EventSemantics, ...] = ()

    @staticmethod
    def build(
        objects: Iterable[ObjectSemantics],
        background: str = DEFAULT_BACKGROUND,
        style: str = DEFAULT_STYLE,
        pan: str = DEFAULT_PAN,
        events: Iterable[EventSemantics] = (),
    ) -> SceneSemantics:
        # Sorted tuples make the object and event lists multisets: order in the text carries no meaning.
        return SceneSemantics(
            tuple(sorted(objects, key=ObjectSemantics.sort_key)),
            background,
            style,
            pan,
            tuple(sorted(events, key=EventSemantics.sort_key)),
        )


def object_semantics(
    shape: str,
    color: str,
    size: str,
    direction: str | None = None,
    speed: str = "normal",
    bounce: bool = False,
    scale: str = "none",
    rotate: bool = False,
) -> ObjectSemantics:
    """Canonical object meaning: a still object has no speed and cannot bounce (neither is visible)."""
    if direction is None:
        speed, bounce = "normal", False
    return ObjectSemantics(shape, color, size, direction, speed, bounce, scale, rotate)


def _object_meaning(o: WorldObject) -> ObjectSemantics:
    m = o.motion
    return object_semantics(o.shape, o.color, o.size, m.direction, m.speed, m.bounce, m.scale, m.rotate)


def semantics(scene: Scene) -> SceneSemantics:
    """The meaning a caption of ``scene`` carries (see the module docstring)."""
    scene.validate()
    refs = {o.id: ObjectRef(o.shape, o.color, o.size) for o in scene.objects}
    events = []
    for e in scene.events:
        # Fields that do not apply to an event's type are ignored: the simulation ignores them too.
        collision = e.type == "collision"
        events.append(
            EventSemantics(
                e.type,
                refs[e.object],
                refs[e.other] if collision else None,
                e.effect if collision else None,
                e.color if collision and e.effect == "change_color" else None,
            )
        )
    objects = [_object_meaning(o) for o in scene.objects]
    return SceneSemantics.build(objects, scene.background, scene.style, scene.pan, events)


# ======================================================================================== lexicon

SIZE_WORDS = {"small": "small", "tiny": "small", "little": "small", "medium": "medium", "large": "large",
              "big": "large", "huge": "large"}  # fmt: skip
COLOR_WORDS = {c: c for c in vocab.COLORS}
SHAPE_WORDS = {s: s for s in vocab.SHAPES}
PLURAL_SHAPE_WORDS = {("crosses" if s == "cross" else s + "s"): s for s in vocab.SHAPES}
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
NUMBER_WORDS = {word: n for n, word in enumerate(_NUMBERS, start=2)}
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth")  # fmt: skip
ARTICLES = frozenset({"a", "an", "one", "the"})

MOVE_VERBS = frozenset(
    {"moves", "move", "moving", "goes", "go", "going", "travels", "travel", "traveling", "travelling",
     "slides", "slide", "sliding", "drifts", "drift", "drifting", "glides", "glide", "gliding", "heads",
     "head", "heading"}
)  # fmt: skip
PAN_VERBS = MOVE_VERBS | {"pans", "pan", "panning", "scrolls", "scroll", "scrolling"}
SPEED_WORDS = {"slowly": "slowly", "quickly": "quickly", "fast": "quickly", "rapidly": "quickly",
               "swiftly": "quickly"}  # fmt: skip
# Direction vocabulary: horizontal / vertical words and the region words of "to the upper left".
HORIZONTAL = {"left": "left", "right": "right"}
HORIZONTAL_ADVERBS = {"leftwards": "left", "leftward": "left", "rightwards": "right", "rightward": "right"}
VERTICAL = {"up": "up", "upwards": "up", "upward": "up", "down": "down", "downwards": "down",
            "downward": "down"}  # fmt: skip
REGION_VERTICAL = {"upper": "up", "top": "up", "lower": "down", "bottom": "down"}
TOWARDS = frozenset({"to", "towards", "toward"})
STILL_VERBS = frozenset({"stays", "stay", "staying", "remains", "remain", "remaining", "stands", "stand",
                         "standing", "sits", "sit", "sitting"})  # fmt: skip
AUXILIARIES = frozenset({"is", "are"})
STILL_ADJECTIVES = frozenset({"still", "stationary", "static", "motionless"})
BOUNCE_VERBS = frozenset({"bounces", "bounce", "bouncing"})
EDGES = frozenset({"edges", "edge", "walls", "wall", "sides"})
SCALE_WORDS = {w: "grow" for w in ("grows", "grow", "growing", "expands", "expand", "expanding")} | {
    w: "shrink" for w in ("shrinks", "shrink", "shrinking", "contracts", "contract", "contracting")
}
GET_VERBS = frozenset({"gets", "get", "getting"})
COMPARATIVES = {"bigger": "grow", "larger": "grow", "smaller": "shrink"}
ROTATE_WORDS = frozenset({"rotates", "rotate", "rotating", "spins", "spin", "spinning"})
APPEAR_WORDS = {w: "appear" for w in ("appears", "appear", "appearing")} | {
    w: "disappear" for w in ("disappears", "disappear", "disappearing", "vanishes", "vanish", "vanishing")
}
TIMING_WORDS = frozenset({"partway", "halfway", "midway"})
TIMING_ADVERBS = frozenset({"later", "eventually", "suddenly"})
CLIP_NOUNS = frozenset({"video", "clip"})
HIT_VERBS = frozenset({"hits", "hit", "touches", "touch", "strikes", "strike", "meets", "meet", "reaches",
                       "reach"})  # fmt: skip
HIT_PHRASAL = {"collides": "with", "collide": "with", "bumps": "into", "bump": "into", "runs": "into",
               "run": "into", "crashes": "into", "crash": "into"}  # fmt: skip
WHEN_WORDS = frozenset({"when", "once", "after", "as"})
TURN_VERBS = frozenset({"turns", "turn", "becomes", "become"})
CHANGE_VERBS = frozenset({"changes", "change"})
STOP_VERBS = frozenset({"stops", "stop", "halts", "halt", "freezes", "freeze"})
EFFECT_STARTS = TURN_VERBS | CHANGE_VERBS | STOP_VERBS
BACKGROUND_WORDS = {b: b for b in vocab.BACKGROUNDS} | {"grey": "gray", "checkered": "checker",
    "checkerboard": "checker", "striped": "stripes", "dotted": "dots"}  # fmt: skip
STYLE_WORDS = {s: s for s in vocab.STYLES} | {"outlined": "outline", "grainy": "grain", "noisy": "grain",
                                              "pixel": "pixelated", "solid": "flat"}  # fmt: skip
SETTING_PREPOSITIONS = frozenset({"on", "over", "against", "in", "with"})
DRAWN = frozenset({"drawn", "rendered"})
CAMERA_NOUNS = frozenset({"camera", "view"})
SENTENCE_ENDS = frozenset({".", ";", "!"})
PART_JOINERS = frozenset({",", "and", "then", "while"})

_STRUCTURE = {"-", "'", "that", "which", "not", "does", "do", "doesn", "don", "t", "in", "place", "put",
              "off", "around", "through", "at", "some", "point", "into", "with", "it", "color", "colour",
              "moving", "background", "style", "look", "there", "no", "shapes", "objects", "nothing",
              "happens"}  # fmt: skip

LEXICON: frozenset[str] = frozenset().union(
    SIZE_WORDS, COLOR_WORDS, SHAPE_WORDS, PLURAL_SHAPE_WORDS, NUMBER_WORDS, ORDINALS, ARTICLES, PAN_VERBS,
    SPEED_WORDS, HORIZONTAL, HORIZONTAL_ADVERBS, VERTICAL, REGION_VERTICAL, TOWARDS, STILL_VERBS, AUXILIARIES,
    STILL_ADJECTIVES, BOUNCE_VERBS, EDGES, SCALE_WORDS, GET_VERBS, COMPARATIVES, ROTATE_WORDS, APPEAR_WORDS,
    TIMING_WORDS, TIMING_ADVERBS, CLIP_NOUNS, HIT_VERBS, HIT_PHRASAL, HIT_PHRASAL.values(), WHEN_WORDS,
    EFFECT_STARTS, BACKGROUND_WORDS, STYLE_WORDS, SETTING_PREPOSITIONS, DRAWN, CAMERA_NOUNS, SENTENCE_ENDS,
    PART_JOINERS, _STRUCTURE, {"diagonally"},
)  # fmt: skip

# ====================================================================================== tokenizer

# The same split as tokenizers' ``Whitespace`` pre-tokenizer (which the word-level tokenizer uses).
_TOKEN_RE = re.compile(r"\w+|[^\w\s]+")


@dataclass(frozen=True)
class Token:
    text: str
    index: int  # 1-based word position
    offset: int  # character offset in the normalised text


def tokenize(text: str) -> list[Token]:
    """Lower-case (after NFKC, like the word-level tokenizer) and split into word / punctuation tokens."""
    normal = unicodedata.normalize("NFKC", text).lower()
    return [Token(m.group(), i + 1, m.start()) for i, m in enumerate(_TOKEN_RE.finditer(normal))]


# ===================================================================================== parse tree


@dataclass
class _NP:
    """A noun phrase: ``[det|number] [the ordinal] {size|colour} shape``."""

    shape: str
    color: str | None
    size: str | None
    count: int  # > 1 after a number word
    ordinal: int | None  # 1-based, after "the"
    words: str  # the phrase, for messages
    index: int  # word position of its first token

    def describe(self) -> str:
        return f"{self.words!r} (word {self.index})"

    def matches(self, ref: ObjectRef) -> bool:
        return (
            ref.shape == self.shape
            and (self.color is None or ref.color == self.color)
            and (self.size is None or ref.size == self.size)
        )


@dataclass
class _VP:
    """What a clause says about its subjects."""

    direction: str | None = None
    still: bool = False
    speed: str | None = None
    bounce: bool = False
    scale: str | None = None
    rotate: bool = False
    events: list[str] = field(default_factory=list)  # appear / disappear

    def has_motion(self) -> bool:
        return bool(self.direction or self.still or self.speed or self.bounce or self.scale or self.rotate)


@dataclass
class _Clause:
    subjects: list[_NP]
    vp: _VP
    introduces: bool  # has a motion word (or is "there is …"): always introduces objects


@dataclass
class _Collision:
    hitter: _NP
    target: _NP
    affected: _NP
    effects: list[tuple[str, str | None]]  # (change_color | stop, colour)
    index: int


# ========================================================================================= parser


class _Parser:
    """Recursive descent over the token list; builds clauses, collisions and settings."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.clauses: list[_Clause] = []
        self.collisions: list[_Collision] = []
        self.settings: dict[str, tuple[str, int]] = {}  # background / style / pan -> (value, word)

    # ------------------------------------------------------------------ token helpers

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.tokens[j].text if j < len(self.tokens) else None

    def at(self, words) -> bool:
        return self.peek() in words

    def take(self, *words: str) -> bool:
        if self.peek() in words:
            self.i += 1
            return True
        return False

    def advance(self) -> str:
        word = self.peek()
        if word is None:
            raise self.error("more words")
        self.i += 1
        return word

    def expect(self, words, expected: str) -> str:
        if not self.at(words):
            raise self.error(expected)
        return self.advance()

    def error(self, expected: str) -> AnyframeInputError:
        if self.i >= len(self.tokens):
            last = self.tokens[-1]
            return AnyframeInputError(
                f"incomplete caption: expected {expected} after {last.text!r} (word {last.index}) at the end"
            )
        t = self.tokens[self.i]
        return AnyframeInputError(f"unexpected word {t.text!r} at word {t.index}: expected {expected}")

    def word_index(self) -> int:
        return self.tokens[min(self.i, len(self.tokens) - 1)].index

    def set_setting(self, key: str, value: str, index: int) -> None:
        old = self.settings.get(key)
        if old is not None and old[0] != value:
            raise AnyframeInputError(
                f"contradictory {key}: {old[0]!r} (word {old[1]}) and {value!r} (word {index})"
            )
        self.settings[key] = (value, index)

    # ------------------------------------------------------------------ text and parts

    def parse(self) -> None:
        if not self.tokens:
            raise AnyframeInputError("empty caption")
        while self.peek() is not None:
            if not (self.take(*SENTENCE_ENDS) or self.take(*PART_JOINERS)):
                self.part()

    def part(self) -> None:
        word = self.peek()
        if word in WHEN_WORDS:
            self.collision_when_first()
        elif self.at_camera():
            self.camera()
        elif word in SETTING_PREPOSITIONS or word in DRAWN:
            self.setting_phrase()
        elif self.at_setting_statement():
            self.setting_statement()
        elif word == "there":
            self.existential()
        elif word == "nothing":
            self.advance()
            self.take("happens")
        elif self.at_np_start():
            self.np_part()
        else:
            raise self.error("the start of a sentence (a shape, 'when', 'on a … background', 'the camera' …)")

    def at_camera(self) -> bool:
        skip = 1 if self.peek() in ("the", "with") else 0
        skip += 1 if self.peek() == "with" and self.peek(1) == "the" else 0
        return self.peek(skip) in CAMERA_NOUNS

    def at_setting_statement(self) -> bool:
        skip = 1 if self.peek() == "the" else 0
        return self.peek(skip) in ("background", "style")

    def at_np_start(self) -> bool:
        if self.at_camera() or self.at_setting_statement():
            return False
        return self.peek() in (ARTICLES | NUMBER_WORDS.keys() | SIZE_WORDS.keys() | COLOR_WORDS.keys()
                               | SHAPE_WORDS.keys() | PLURAL_SHAPE_WORDS.keys())  # fmt: skip

    # ------------------------------------------------------------------ noun phrases

    def np(self) -> _NP:
        start = self.i
        count, ordinal, definite = 1, None, False
        if self.at(NUMBER_WORDS):
            count = NUMBER_WORDS[self.advance()]
        elif self.at(ARTICLES):
            definite = self.advance() == "the"
        if definite and self.at(ORDINALS):
            ordinal = ORDINALS.index(self.advance()) + 1
        size = color = None
        while self.at(SIZE_WORDS) or self.at(COLOR_WORDS):
            word = self.advance()
            if word in SIZE_WORDS:
                size = self.adjective("size", size, SIZE_WORDS[word])
            else:
                color = self.adjective("colour", color, COLOR_WORDS[word])
        shape = self.noun(count)
        words = " ".join(t.text for t in self.tokens[start : self.i])
        return _NP(shape, color, size, count, ordinal, words, self.tokens[start].index)

    def adjective(self, kind: str, old: str | None, new: str) -> str:
        if old is not None and old != new:
            self.i -= 1
            raise self.error(f"one {kind} only (already {old!r})")
        return new

    def noun(self, count: int) -> str:
        if count > 1:
            if self.at(SHAPE_WORDS):
                raise self.error("a plural shape after a number (e.g. 'circles')")
            return PLURAL_SHAPE_WORDS[self.expect(PLURAL_SHAPE_WORDS, "a plural shape such as 'circles'")]
        if self.at(PLURAL_SHAPE_WORDS):
            raise self.error("a single shape (say 'two circles' for several)")
        return SHAPE_WORDS[self.expect(SHAPE_WORDS, "a shape such as 'circle' or 'square'")]

    def np_list(self) -> list[_NP]:
        nps = [self.np()]
        while True:
            save = self.i
            joined = False
            while self.take(",", "and"):
                joined = True
            if joined and self.at_np_start():
                nps.append(self.np())
            else:
                self.i = save
                return nps

    def np_part(self) -> None:
        subjects = self.np_list()
        if len(subjects) == 1 and self.at(EFFECT_STARTS):
            self.collision_effect_first(subjects[0])
            return
        vp = self.vp()
        introduces = vp.has_motion() or any(np.count > 1 for np in subjects)
        self.clauses.append(_Clause(subjects, vp, introduces))

    def existential(self) -> None:
        self.advance()  # there
        self.expect(AUXILIARIES, "'is' or 'are'")
        if self.take("nothing"):
            return
        if self.take("no"):
            self.expect(("shapes", "objects"), "'shapes'")
            return
        subjects = self.np_list()
        vp = self.vp() if self.at_vp_item() else _VP()
        self.clauses.append(_Clause(subjects, vp, True))

    # ------------------------------------------------------------------ verb phrases

    def at_vp_item(self) -> bool:
        word = self.peek()
        if word in SETTING_PREPOSITIONS:  # a setting phrase continues a verb phrase; "with a red circle" not
            return self.at_setting_phrase()
        return word in _VP_STARTS

    def at_setting_phrase(self) -> bool:
        """Look ahead: ``PREP [det] BG background`` / ``PREP [det] STYLE style`` / ``with the camera``."""
        if self.peek() == "with" and self.peek(1) == "the" and self.peek(2) in CAMERA_NOUNS:
            return True
        k = 2 if self.peek(1) in ("a", "an", "the") else 1
        word, noun = self.peek(k), self.peek(k + 1)
        is_background = word in BACKGROUND_WORDS and noun == "background"
        return is_background or (word in STYLE_WORDS and noun in ("style", "look"))

    def vp(self) -> _VP:
        vp = _VP()
        self.take("that", "which")
        if not self.at_vp_item():
            raise self.error("a verb such as 'moves' or 'stays still'")
        self.vp_item(vp)
        while True:
            save = self.i
            while self.take(",", "and", "while", "then"):
                pass
            if not self.at_vp_item():
                self.i = save
                return vp
            self.vp_item(vp)

    def vp_item(self, vp: _VP) -> None:
        word = self.peek()
        if word in SPEED_WORDS:
            self.set_speed(vp, SPEED_WORDS[self.advance()])
        elif word in MOVE_VERBS:
            self.advance()
            while self.at(SPEED_WORDS):
                self.set_speed(vp, SPEED_WORDS[self.advance()])
            self.set_direction(vp, self.direction())
        elif word in BOUNCE_VERBS:
            self.bounce(vp)
        elif word in AUXILIARIES:
            self.advance()
            if self.at(STILL_ADJECTIVES):
                self.advance()
                self.set_still(vp)
            elif self.at_vp_item():  # "is moving left": an auxiliary before another item
                self.vp_item(vp)
            else:
                raise self.error("'still' or a verb such as 'moving'")
        elif word in STILL_VERBS or word in ("does", "do", "doesn", "don", "not"):
            self.still_phrase()
            self.set_still(vp)
        elif word in SCALE_WORDS or word in GET_VERBS:
            self.set_scale(vp, self.scale())
        elif word in ROTATE_WORDS:
            self.advance()
            vp.rotate = True
        elif word in APPEAR_WORDS:
            vp.events.append(APPEAR_WORDS[self.advance()])
            self.timing()
        elif word in SETTING_PREPOSITIONS or word in DRAWN:
            self.setting_phrase()
        else:
            raise self.error("a verb such as 'moves' or 'stays still'")

    def set_speed(self, vp: _VP, speed: str) -> None:
        if vp.speed is not None and vp.speed != speed:
            self.i -= 1
            raise self.error(f"one speed only (already {vp.speed!r})")
        vp.speed = speed

    def set_direction(self, vp: _VP, direction: str) -> None:
        if vp.still or (vp.direction is not None and vp.direction != direction):
            raise AnyframeInputError(
                f"contradictory motion before word {self.word_index()}: "
                f"{'still' if vp.still else vp.direction!r} and {direction!r}"
            )
        vp.direction = direction

    def set_still(self, vp: _VP) -> None:
        if vp.direction is not None:
            raise AnyframeInputError(
                f"contradictory motion before word {self.word_index()}: {vp.direction!r} and still"
            )
        vp.still = True

    def set_scale(self, vp: _VP, scale: str) -> None:
        if vp.scale is not None and vp.scale != scale:
            raise AnyframeInputError(
                f"contradictory size change before word {self.word_index()}: grows and shrinks"
            )
        vp.scale = scale

    def still_phrase(self) -> None:
        """``stays still`` / ``stays in place`` / ``stays put`` / ``does not move`` / ``not moving``."""
        word = self.advance()
        if word in STILL_VERBS:
            if word.startswith(("stay", "remain")) and self.take("put"):
                return
            if word.startswith(("stay", "remain")) and self.peek() == "in" and self.peek(1) == "place":
                self.i += 2
                return
            self.expect(STILL_ADJECTIVES, "'still'")
            return
        if word in ("does", "do"):
            self.expect(("not",), "'not'")
        elif word in ("doesn", "don"):
            self.expect(("'",), "an apostrophe (doesn't)")
            self.expect(("t",), "'t' (doesn't)")
        self.expect(MOVE_VERBS, "'move'")

    def bounce(self, vp: _VP) -> None:
        self.advance()
        vp.bounce = True
        if self.take("off"):
            self.take("the")
            self.expect(EDGES, "'the edges'")
        else:
            self.take("around")
        while self.at(SPEED_WORDS):
            self.set_speed(vp, SPEED_WORDS[self.advance()])
        if self.at_direction():
            self.set_direction(vp, self.direction())

    def scale(self) -> str:
        word = self.advance()
        if word in GET_VERBS:
            return COMPARATIVES[self.expect(COMPARATIVES, "'bigger' or 'smaller'")]
        return SCALE_WORDS[word]

    def timing(self) -> None:
        """Coarse timing after appears / disappears: read and dropped (captions carry no frames)."""
        if self.take(*TIMING_WORDS):
            if self.take("through") and self.take("the"):
                self.expect(CLIP_NOUNS, "'video'")
        elif self.take(*TIMING_ADVERBS):
            pass
        elif self.peek() == "at" and self.peek(1) == "some":
            self.i += 2
            self.expect(("point",), "'point'")

    # ------------------------------------------------------------------ directions

    def at_direction(self) -> bool:
        return self.peek() in (VERTICAL.keys() | HORIZONTAL.keys() | HORIZONTAL_ADVERBS.keys() | TOWARDS
                               | {"diagonally"})  # fmt: skip

    def direction(self) -> str:
        """A key of vocab.DIRECTIONS from any of the documented phrasings."""
        self.take("diagonally")
        if self.at(VERTICAL):
            return self.after_vertical(VERTICAL[self.advance()])
        if self.at(HORIZONTAL_ADVERBS):
            return HORIZONTAL_ADVERBS[self.advance()]
        if self.at(HORIZONTAL):
            return HORIZONTAL[self.advance()]
        self.expect(TOWARDS, "a direction such as 'left' or 'up and to the right'")
        self.take("the")
        if self.at(HORIZONTAL):
            return HORIZONTAL[self.advance()]
        vertical = REGION_VERTICAL[self.expect(REGION_VERTICAL, "'left', 'right', 'top' or 'bottom'")]
        self.take("-")
        if self.at(HORIZONTAL):
            return f"{vertical}-{self.advance()}"
        return vertical  # "to the top"

    def after_vertical(self, vertical: str) -> str:
        """``up`` alone, or a diagonal: ``up-left``, ``up left``, ``up and left``, ``up and to the left``."""
        save = self.i
        if self.take("-") or self.take("and"):
            pass
        if self.take(*TOWARDS):
            self.expect(("the",), "'the'")
            horizontal = self.expect(HORIZONTAL, "'left' or 'right'")
            return f"{vertical}-{horizontal}"
        if self.at(HORIZONTAL):
            return f"{vertical}-{self.advance()}"
        self.i = save  # "up and bounces": the "and" belongs to the verb phrase
        return vertical

    # ------------------------------------------------------------------ collisions

    def collision_when_first(self) -> None:
        """``when P hits Q, it turns green`` — ``it`` is P."""
        index = self.word_index()
        self.advance()
        hitter = self.np()
        self.hit_verb()
        target = self.np()
        self.take(",")
        self.take("then")
        if self.take("it"):
            affected = hitter
        elif self.at_np_start():
            affected = self.np()
        else:
            raise self.error("'it' and an effect such as 'turns green' or 'stops'")
        self.collisions.append(_Collision(hitter, target, affected, self.effects(), index))

    def collision_effect_first(self, subject: _NP) -> None:
        """``S turns green when it hits Q`` — ``it`` is S."""
        effects = self.effects()
        self.expect(WHEN_WORDS, "'when' (as in 'when it hits the blue square')")
        hitter = subject if self.take("it") else self.np()
        self.hit_verb()
        target = subject if self.take("it") else self.np()
        self.collisions.append(_Collision(hitter, target, subject, effects, subject.index))

    def hit_verb(self) -> None:
        word = self.expect(HIT_VERBS | HIT_PHRASAL.keys(), "a verb such as 'hits' or 'collides with'")
        if word in HIT_PHRASAL:
            self.expect((HIT_PHRASAL[word],), repr(HIT_PHRASAL[word]))

    def effects(self) -> list[tuple[str, str | None]]:
        effects = [self.effect()]
        while True:
            save = self.i
            while self.take(",", "and", "then"):
                pass
            if not self.at(EFFECT_STARTS):
                self.i = save
                return effects
            effects.append(self.effect())

    def effect(self) -> tuple[str, str | None]:
        word = self.expect(EFFECT_STARTS, "'turns', 'changes to' or 'stops'")
        if word in STOP_VERBS:
            self.take("moving")
            return ("stop", None)
        if word in CHANGE_VERBS:
            self.take("color", "colour")
            self.expect(("to", "into"), "'to'")
        else:
            self.take("into")
        return ("change_color", COLOR_WORDS[self.expect(COLOR_WORDS, "a colour such as 'green'")])

    # ------------------------------------------------------------------ settings

    def setting_phrase(self) -> None:
        """``on a black background`` / ``in an outline style`` / ``drawn in …`` / ``with the camera …``."""
        if self.take(*DRAWN):
            self.expect(("in",), "'in'")
        elif self.advance() == "with" and self.at_camera():
            self.camera()
            return
        self.take("a", "an", "the")
        index = self.word_index()
        word, noun = self.peek(), self.peek(1)
        if word in BACKGROUND_WORDS and noun == "background":
            self.set_setting("background", BACKGROUND_WORDS[word], index)
        elif word in STYLE_WORDS and noun in ("style", "look"):
            self.set_setting("style", STYLE_WORDS[word], index)
        else:
            raise self.error("a background ('a black background') or a style ('an outline style')")
        self.i += 2

    def setting_statement(self) -> None:
        """``the background is gray`` / ``the style is outline``."""
        self.take("the")
        kind = self.advance()
        self.expect(AUXILIARIES, "'is'")
        self.take("a", "an")
        index = self.word_index()
        if kind == "background":
            background = self.expect(BACKGROUND_WORDS, "a background")
            self.set_setting("background", BACKGROUND_WORDS[background], index)
        else:
            self.set_setting("style", STYLE_WORDS[self.expect(STYLE_WORDS, "a style")], index)

    def camera(self) -> None:
        """``the camera pans left`` / ``the camera stays still`` / ``[with] the camera panning left``."""
        self.take("with")
        self.take("the")
        self.advance()  # camera / view
        index = self.word_index()
        self.take(*AUXILIARIES)
        if self.at(PAN_VERBS):
            self.advance()
            pan = self.direction()
            if pan not in vocab.PANS:
                raise AnyframeInputError(
                    f"the camera pans only left, right, up or down, not {pan!r} (word {index})"
                )
        elif self.at(STILL_ADJECTIVES):
            self.advance()
            pan = "none"
        elif self.at(STILL_VERBS | {"does", "do", "doesn", "don", "not"}):
            self.still_phrase()
            pan = "none"
        else:
            raise self.error("'pans' and a direction, or 'stays still'")
        self.set_setting("pan", pan, index)


_VP_STARTS = (
    SPEED_WORDS.keys() | MOVE_VERBS | BOUNCE_VERBS | AUXILIARIES | STILL_VERBS | SCALE_WORDS.keys()
    | GET_VERBS | ROTATE_WORDS | APPEAR_WORDS.keys() | DRAWN | {"does", "do", "doesn", "don", "not"}
)  # fmt: skip

# ===================================================================================== resolution


class _World:
    """Turns the parse tree into objects and events: introduces objects, then resolves references."""

    def __init__(self) -> None:
        self.objects: list[ObjectSemantics] = []
        self.events: list[EventSemantics] = []

    def introduce(self, np: _NP, vp: _VP) -> list[int]:
        if np.color is None:
            raise AnyframeInputError(f"{np.describe()} needs a colour to introduce an object")
        if np.ordinal is not None:
            raise AnyframeInputError(f"{np.describe()}: an ordinal can refer to an object, not introduce one")
        meaning = object_semantics(
            np.shape, np.color, np.size or DEFAULT_SIZE, vp.direction, vp.speed or "normal", vp.bounce,
            vp.scale or "none", vp.rotate,
        )  # fmt: skip
        start = len(self.objects)
        self.objects.extend([meaning] * np.count)
        return list(range(start, len(self.objects)))

    def find(self, np: _NP) -> int:
        if np.count > 1:
            raise AnyframeInputError(f"{np.describe()} refers to several objects; name one")
        matches = [i for i, o in enumerate(self.objects) if np.matches(o.ref)]
        if np.ordinal is not None:
            if np.ordinal > len(matches):
                raise AnyframeInputError(f"{np.describe()}: there are only {len(matches)} such objects")
            return matches[np.ordinal - 1]
        if not matches:
            raise AnyframeInputError(f"{np.describe()} refers to no object in the caption")
        if len(matches) > 1:
            raise AnyframeInputError(
                f"{np.describe()} is ambiguous: {len(matches)} objects match (add a size or 'the first' …)"
            )
        return matches[0]

    def add_events(self, index: int, kinds: list[str]) -> None:
        self.events.extend(EventSemantics(kind, self.objects[index].ref) for kind in kinds)

    def add_collision(self, c: _Collision) -> None:
        hitter, target, affected = self.find(c.hitter), self.find(c.target), self.find(c.affected)
        if hitter == target:
            raise AnyframeInputError(f"collision at word {c.index}: an object cannot hit itself")
        if affected not in (hitter, target):
            raise AnyframeInputError(
                f"collision at word {c.index}: {c.affected.describe()} takes no part in it"
            )
        other = target if affected == hitter else hitter
        subject, partner = self.objects[affected].ref, self.objects[other].ref
        for effect, color in c.effects:
            self.events.append(EventSemantics("collision", subject, partner, effect, color))


def _resolve(parser: _Parser) -> SceneSemantics:
    world = _World()
    deferred = _introduce_objects(parser, world)
    for np, kinds in deferred:
        world.add_events(world.find(np), kinds)
    for collision in parser.collisions:
        world.add_collision(collision)
    setting = {key: value for key, (value, _) in parser.settings.items()}
    return SceneSemantics.build(
        world.objects,
        setting.get("background", DEFAULT_BACKGROUND),
        setting.get("style", DEFAULT_STYLE),
        setting.get("pan", DEFAULT_PAN),
        world.events,
    )


def _introduce_objects(parser: _Parser, world: _World) -> list[tuple[_NP, list[str]]]:
    """Introduce objects in text order; return the appear / disappear clauses that are references.

    An event-only clause ("the red circle appears") refers to an object when one introduced anywhere
    by a motion clause (or earlier by an event-only clause) fits it; otherwise it introduces one."""
    introducers = [np for c in parser.clauses if c.introduces for np in c.subjects]
    deferred: list[tuple[_NP, list[str]]] = []
    for clause in parser.clauses:
        for np in clause.subjects:
            if clause.introduces or not any(_could_refer(np, other) for other in introducers):
                if not clause.introduces:
                    introducers.append(np)  # later event-only clauses may refer to it
                for index in world.introduce(np, clause.vp):
                    world.add_events(index, clause.vp.events)
            else:
                deferred.append((np, clause.vp.events))
    return deferred


def _could_refer(reference: _NP, introduced: _NP) -> bool:
    """Whether a reference's stated features fit an object introduced by another noun phrase."""
    size = introduced.size or DEFAULT_SIZE
    if introduced.color is None:
        return False
    return reference.matches(ObjectRef(introduced.shape, introduced.color, size))


def parse(text: str) -> SceneSemantics:
    """Read the meaning of a caption (see the module docstring for the grammar and its paraphrases)."""
    tokens = tokenize(text)
    for t in tokens:
        if t.text not in LEXICON:
            raise AnyframeInputError(f"unknown word {t.text!r} at word {t.index} (character {t.offset})")
    parser = _Parser(tokens)
    parser.parse()
    return _resolve(parser)
