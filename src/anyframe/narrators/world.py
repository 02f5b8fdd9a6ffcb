"""The shapes-world narrator: exact, rule-based (no model).

    narrative = WorldNarrator().narrate(image, "the red circle moves quickly left and bounces off the edges", 16)

It reads the image with the oracle's object parser (:func:`anyframe.world.oracle.detect` on a one-frame clip) and
the action with the caption grammar (:func:`anyframe.world.grammar.parse`; the unpaired cases' "…, hits X and turns
green" form is rewritten into the grammar's "when … hits …, it turns green" first), then asks, for every frame
``t`` of the clip: *if the image were frame t, could the world have made it?* — and how likely.

For each ``t`` (and each camera pan the background allows, and each value of what the text leaves open: an
object's size when the text names none, a size change, a collision partner's speed and the collision frame), the
stated objects are wound back from where the image shows them to frame 0, mirroring
:func:`anyframe.world.scene.simulate` — straight steps; for a bouncing object every start whose reflected path
passes the image's place at ``t`` (simulate's own reflection rule run over a grid of starts); the velocity change
of a collision — and the candidate scene is simulated forward again. It is scored by the world's own rules
(:mod:`anyframe.world.sampling`):

* the simulation puts each object where the image shows it at ``t`` (the oracle's centroid; Gaussian, σ = 0.35 px
  at 32 px, 1.5 px for an object that touches another or the edge) with the image's colour and size;
* a non-bouncing object stays inside the canvas for the whole clip, every object starts inside it (soft, σ =
  0.35 px: the oracle's centroids are not exact);
* a collision is head-on and touches at a frame in ``collision_frames(T)`` (the pair's offset in the image
  against the placement rule's, and the simulated event frame);
* an appearing (disappearing) object is visible exactly from (until) a frame in ``appear_frames(T)``;
* the image's other objects, whose motion the text does not give, are where the world's motion and size priors
  would put them at ``t`` (an object in the centre fits a clip's middle better than its ends; a half-shrunk one
  is late), and at frame 0 no two objects touch;
* a patterned background's offset in the image matches the camera pan at ``t`` (an empty scene is rendered for
  each background, pan and frame and compared with the image's background pixels).

The oracle may misread an object's look (a rotated square as a diamond; two objects touching; look-alike twins):
every assignment of the text's objects to the image's within reach of the cheapest is solved, and weighed by its
evidence.

Summing over the open values gives a likelihood per frame; the prior puts ``anchor_weight`` (default 0.9) of its
mass on the start, middle and end frames (:func:`anyframe.world.unpaired.position_frame`: where the world's
unpaired cases — and ReasonDiff's evaluation — put the image) and the rest uniformly on the other frames. The
position is the posterior's mode. Where several frames explain the image equally (a bouncing or slow object in
the middle of the canvas: the image alone cannot tell), the narrative's ``note`` says so. The descriptions are the
world's per-frame captions (:func:`anyframe.world.captions.frame_captions`) of the solved scene: the stated
objects on their solved paths, the image's other objects standing still (the text says nothing of their motion); the ``caption`` is the same
scene's world caption (:func:`anyframe.world.captions.caption`) — the whole clip as one prompt.

A text the image does not show (a colour or shape absent from the image), a text outside the grammar, or an
image that is not a shapes-world frame does not raise: the narrator still answers (its best guess, the prior's
mode when nothing is known) and says why in ``note``. Measured accuracy: ``benchmarks/narrator_accuracy.py``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.narrators.base import Narrative, check_num_frames, image_array
from anyframe.world import grammar, vocab
from anyframe.world.captions import caption, frame_captions
from anyframe.world.oracle import AREA_PER_R2, block_factor, detect
from anyframe.world.render import render
from anyframe.world.sampling import (
    MIN_GAP,
    P_BOUNCE,
    P_PAN_OVER_PATTERN,
    P_SCALE,
    P_STILL,
    appear_frames,
    collision_frames,
)
from anyframe.world.scene import Event, Motion, Scene, WorldObject, simulate
from anyframe.world.unpaired import POSITIONS, position_frame

ANCHOR_WEIGHT = 0.9  # prior mass on the start / middle / end frames
SIGMA_POSITION, SIGMA_POSITION_TOUCHING = 0.35, 1.5  # px at 32: the oracle's centroid error (clean; touching)
SIGMA_RADIUS, SIGMA_RADIUS_TOUCHING = 0.05, 0.15  # log-radius error of the area's radius (clean; touching:
# one-sided, as a partly hidden object only looks smaller)
SIGMA_INSIDE = 0.35  # px at 32: slack of the canvas rules
COLOUR_MISS = 0.02  # likelihood factor of a hypothesis whose colour at t is not the image's
MISSED = 1e-3  # likelihood factor of a visible stated object the oracle did not find (occluded, misread)
BACKGROUND_TEMPERATURE = 1.0  # grey levels of background RMSE per e-fold of likelihood
UNSURE = 0.6  # a posterior mode below this is reported in the note
MATCH_COST = 1.6  # above: a stated object is not matched to a detection (its colour is wrong)
MIN_SHAPE_PROB = 0.02  # an object apart from others is not matched to a shape the oracle gives less than this
NEAR_COLOUR, NEAR_RGB = 1.0, 125.0  # matching cost of a hue within NEAR_RGB of the stated one (purple / blue …)
_PRUNE, _MOST = 1e-2, 48  # hypotheses below this share of their group's best, or past the most likely
# _MOST, are not simulated (their mass is negligible next to the rest)
_SPEEDS = tuple(vocab.SPEEDS)
_SIZES = tuple(vocab.SIZES)
_GROWTH = {"none": 1.0, "grow": vocab.GROW_FACTOR, "shrink": vocab.SHRINK_FACTOR}


# ==================================================================================== the text


@dataclass(frozen=True)
class StatedObject:
    """An object as the action text states it (``None``: the text leaves it open)."""

    shape: str
    color: str
    size: str | None
    direction: str | None  # None: still
    speed: str | None  # None: unknown (a collision partner the text only names)
    bounce: bool
    scale: str | None  # None: the text says nothing of size changes
    appear: str | None = None  # appear | disappear
    motion_known: bool = True

    def describe(self) -> str:
        return " ".join(w for w in (self.size, self.color, self.shape) if w)


@dataclass(frozen=True)
class StatedCollision:
    subject: int  # index into Action.objects: the object that changes
    partner: int
    effect: str  # change_color | stop
    color: str | None


@dataclass(frozen=True)
class Action:
    """What the prompt says: objects, collisions, the camera (None: not stated)."""

    objects: tuple[StatedObject, ...]
    collisions: tuple[StatedCollision, ...] = ()
    pan: str | None = None


_HIT = r"(?:hits|touches|strikes|meets|reaches|collides with|bumps into|runs into|crashes into)"
_HIT_RE = re.compile(rf"^(?P<head>.+?),? {_HIT} (?P<other>.+?),? and (?P<effect>turns \w+|stops)$")
_VERBS = (grammar.MOVE_VERBS | grammar.STILL_VERBS | set(grammar.APPEAR_WORDS) | grammar.AUXILIARIES
          | set(grammar.SPEED_WORDS) | grammar.BOUNCE_VERBS)  # fmt: skip


def _rewrite_hit(text: str) -> str | None:
    """"X moves left, hits Y and turns green" (the unpaired cases' form) → the grammar's "X moves left. Y stays
    still. When X hits Y, it turns green."; None when the text is not of that form."""
    m = _HIT_RE.match(text)
    if not m:
        return None
    words = m.group("head").split()
    cut = next((i for i, w in enumerate(words) if w.strip(",") in _VERBS), None)
    if not cut:
        return None
    definite = lambda np: re.sub(r"^(a|an|one)\b", "the", np)
    subject, other = definite(" ".join(words[:cut])), m.group("other").strip()
    return f"{m.group('head')}. {other} stays still. When {subject} hits {definite(other)}, it {m.group('effect')}."


def read_action(prompt: str) -> Action:
    """The action a prompt states, by the caption grammar; :class:`AnyframeInputError` when it cannot be read."""
    text = " ".join(str(prompt).strip().rstrip(".").split())
    if not text:
        raise AnyframeInputError("the prompt is empty")
    partner_unknown = False
    try:
        meaning = grammar.parse(text)
    except AnyframeInputError as first:
        rewritten = _rewrite_hit(" ".join(t.text for t in grammar.tokenize(text)).replace(" , ", ", ").replace(" - ", "-"))
        if rewritten is None:
            raise
        try:
            meaning = grammar.parse(rewritten)
        except AnyframeInputError:
            raise first from None
        partner_unknown = True
    words = {t.text for t in grammar.tokenize(text)}
    scale_known = any(o.scale != "none" for o in meaning.objects)
    refs = [o.ref for o in meaning.objects]
    kinds = {e.object: e.type for e in meaning.events if e.type in ("appear", "disappear")}
    partners = {e.other for e in meaning.events if e.type == "collision"}
    objects = []
    for o in meaning.objects:
        unknown = partner_unknown and o.ref in partners
        objects.append(StatedObject(
            o.shape, o.color, o.size if (o.size != grammar.DEFAULT_SIZE or "medium" in words) else None,
            o.direction, None if unknown else o.speed, o.bounce, o.scale if scale_known else None,
            kinds.get(o.ref), motion_known=not unknown,
        ))  # fmt: skip
    collisions = []
    for e in meaning.events:
        if e.type == "collision":
            i, j = refs.index(e.object), refs.index(e.other)
            collisions.append(StatedCollision(i, j, e.effect, e.color))
            if not objects[j].motion_known and objects[i].direction is not None:  # head-on: the world's rule
                opposite = {v: k for k, v in vocab.DIRECTIONS.items()}
                dx, dy = vocab.DIRECTIONS[objects[i].direction]
                objects[j] = StatedObject(objects[j].shape, objects[j].color, objects[j].size, opposite[(-dx, -dy)],
                                          None, False, objects[j].scale, motion_known=False)
    pan = meaning.pan if words & grammar.CAMERA_NOUNS else None
    return Action(tuple(objects), tuple(collisions), pan)


# ==================================================================================== the image


@dataclass(frozen=True)
class _Seen:
    shape: str
    color: str
    x: float
    y: float
    area: float
    touching: bool  # its mask reaches the canvas edge or another object: its centroid and area are less sure
    behind: bool  # it reaches another object (may be partly hidden anywhere; an edge only cuts it outwards)
    probs: np.ndarray = field(compare=False, repr=False)
    mask: np.ndarray = field(compare=False, repr=False)

    def radius(self, shape: str) -> float:
        return math.sqrt(max(self.area, 1e-6) / AREA_PER_R2[shape])

    def prob(self, shape: str) -> float:
        return float(self.probs[vocab.SHAPES.index(shape)]) if len(self.probs) else float(shape == self.shape)


def _near(a: str, b: str) -> bool:
    return float(np.linalg.norm(np.subtract(vocab.COLORS[a], vocab.COLORS[b]))) <= NEAR_RGB


def _read_image(img: np.ndarray) -> list[_Seen]:
    dets = detect(img[None])[0]
    return [_Seen(d.shape, d.color, float(d.centroid[0]), float(d.centroid[1]), float(d.area),
                  bool(d.touches_edge or d.touches_other), bool(d.touches_other), d.shape_probs, d.mask) for d in dets]


@functools.lru_cache(maxsize=40)  # (two canvases' worth: 4 patterns × 5 pans each)
def _empty_render(background: str, pan: str, style: str, size: int, frames: int) -> np.ndarray:
    return render(Scene((), background=background, style=style, pan=pan, size=size, frames=frames)).frames


def _fit_background(img: np.ndarray, seen: list[_Seen], frames: int, style: str) -> tuple[str, dict[str, np.ndarray]]:
    """The background whose render best matches the image's background pixels, and its RMSE per pan and frame."""
    size = img.shape[0]
    covered = np.zeros(img.shape[:2], bool)
    for s in seen:
        covered |= s.mask
    if covered.any():
        import cv2

        reach = max(1, round(2 * size / vocab.REFERENCE_CANVAS))
        covered = cv2.dilate(covered.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    keep = ~covered
    if keep.sum() < 16:
        keep = np.ones_like(keep)
    pixels = img[keep].astype(np.float32)
    best: tuple[float, str, dict[str, np.ndarray]] | None = None
    for name in vocab.BACKGROUNDS:
        if name in vocab.SOLID_BACKGROUNDS:
            colour = np.asarray(vocab.SOLID_BACKGROUNDS[name], np.float32)
            rmse = float(np.sqrt(((pixels - colour) ** 2).mean()))
            table = {"none": np.full(frames, rmse)}
        else:
            table = {}
            for pan in vocab.PANS:
                clip = _empty_render(name, pan, style, size, frames)[:, keep].astype(np.float32)
                table[pan] = np.sqrt(((clip - pixels[None]) ** 2).mean(axis=(1, 2)))
        low = min(float(v.min()) for v in table.values())
        if best is None or low < best[0]:
            best = (low, name, table)
    assert best is not None
    return best[1], best[2]


# ==================================================================================== the solver


@dataclass
class _Placement:
    """One stated object of a hypothesis: everything the scene needs."""

    size: str
    scale: str
    x: float  # world start
    y: float
    direction: str | None
    speed: str
    bounce: bool


@dataclass
class _Hypothesis:
    weight: float
    placements: dict[int, _Placement]
    events: list[tuple] = field(default_factory=list)  # ("collision", i, j, effect, colour) | ("appear", i, frame)


def _gauss(x: float, sigma: float) -> float:
    return math.exp(-0.5 * (x / sigma) ** 2)


def _unit(direction: str) -> np.ndarray:
    d = np.asarray(vocab.DIRECTIONS[direction], np.float64)
    return d / np.linalg.norm(d)


class _Solver:
    def __init__(self, action: Action, img: np.ndarray, seen: list[_Seen], frames: int, anchor_weight: float,
                 match: dict[int, int] | None = None, background: tuple[str, str, dict] | None = None):
        self.action, self.img, self.seen, self.T = action, img, seen, frames
        self.size = img.shape[0]
        self.k = self.size / vocab.REFERENCE_CANVAS
        if background is None:
            style = "pixelated" if block_factor(img[None]) > 1 else "flat"
            background = (style, *_fit_background(img, seen, frames, style))
        self.style, self.background, self.bg_rmse = background
        self.match = self.matches()[0][0] if match is None else match
        anchors = sorted({position_frame(p, frames) for p in POSITIONS})
        self.anchors = anchors
        rest = frames - len(anchors)
        self.prior = np.array([anchor_weight / len(anchors) if t in anchors else (1 - anchor_weight) / rest
                               for t in range(frames)]) if rest else np.full(frames, 1 / frames)

    # ------------------------------------------------------------------ matching and small helpers

    def _colours(self, i: int) -> set[str]:
        out = {self.action.objects[i].color}
        out |= {c.color for c in self.action.collisions if c.subject == i and c.effect == "change_color" and c.color}
        return out

    def match_cost(self, i: int, j: int) -> float:
        """How badly detection j fits stated object i: 2 for a colour it cannot have (NEAR_COLOUR for a neighbouring
        hue the oracle may have misread), 1 − the shape's posterior,
        and, when the text states a size, the log-ratio of radii (the text names a size to tell look-alikes apart)."""
        o, s = self.action.objects[i], self.seen[j]
        if s.prob(o.shape) < MIN_SHAPE_PROB and not s.touching:
            return math.inf  # a whole object of another shape, not a misread one
        size = 0.0
        if o.size is not None:
            size = min(1.5, 1.5 * abs(math.log(s.radius(o.shape) / (vocab.SIZES[o.size] * self.k))))
        colour = min(0.0 if c == s.color else NEAR_COLOUR if _near(c, s.color) else 2.0 for c in self._colours(i))
        return colour + (1 - s.prob(o.shape)) + size

    def matches(self, slack: float = 1.0, most: int = 4) -> list[tuple[dict[int, int], float]]:
        """The assignments of stated objects to detections (one-to-one; an object may be unseen, at cost
        MATCH_COST) within ``slack`` of the cheapest, cheapest first (at most ``most``)."""
        n, m = len(self.action.objects), len(self.seen)
        options = [[(j, c) for j in range(m) if (c := self.match_cost(i, j)) <= MATCH_COST] + [(None, MATCH_COST)]
                   for i in range(n)]
        found: list[tuple[float, dict[int, int]]] = []

        def walk(i: int, used: frozenset, cost: float, chosen: dict[int, int]) -> None:
            if len(found) > 4096:
                return
            if i == n:
                found.append((cost, dict(chosen)))
                return
            for j, c in sorted(options[i], key=lambda x: x[1]):
                if j is not None and j in used:
                    continue
                if j is not None:
                    chosen[i] = j
                walk(i + 1, used | ({j} if j is not None else set()), cost + c, chosen)
                chosen.pop(i, None)

        walk(0, frozenset(), 0.0, {})
        found.sort(key=lambda x: x[0])
        best = found[0][0]
        return [(a, c) for c, a in found if c <= best + slack][:most]

    def seen_of(self, i: int) -> _Seen | None:
        j = self.match.get(i)
        return None if j is None else self.seen[j]

    def camera(self, pan: str, t: int) -> np.ndarray:
        if pan == "none":
            return np.zeros(2)
        return np.asarray(vocab.DIRECTIONS[pan], np.float64) * vocab.PAN_SPEED * self.k * t

    def radius(self, size: str, scale: str, t: int) -> float:
        span = max(1, self.T - 1)
        return vocab.SIZES[size] * self.k * (1 + (_GROWTH[scale] - 1) * t / span)

    def velocity(self, direction: str | None, speed: str) -> np.ndarray:
        if direction is None:
            return np.zeros(2)
        return _unit(direction) * vocab.SPEEDS[speed] * self.k

    def sigma_position(self, s: _Seen | None) -> float:
        return (SIGMA_POSITION_TOUCHING if s is not None and s.touching else SIGMA_POSITION) * self.k

    def size_hypotheses(self, o: StatedObject, s: _Seen | None, t: int) -> list[tuple[str, str, float]]:
        sizes = [o.size] if o.size else list(_SIZES)
        scales = [o.scale] if o.scale else ["none", "grow", "shrink"]
        out = []
        for size in sizes:
            for scale in scales:
                prior = 1 / len(sizes) * (1.0 if o.scale else (1 - P_SCALE if scale == "none" else P_SCALE / 2))
                like = 1.0
                if s is not None:
                    error = math.log(s.radius(o.shape) / self.radius(size, scale, t))
                    if s.touching:  # partly hidden behind another object or the edge: it may look smaller
                        like = _gauss(max(0.0, error), SIGMA_RADIUS_TOUCHING)
                    else:
                        like = _gauss(error, SIGMA_RADIUS)
                out.append((size, scale, prior * like))
        top = max(w for _, _, w in out)
        return [h for h in out if h[2] >= _PRUNE * top] if top > 0 else out[:1]

    def visibility(self, i: int, t: int) -> float:
        """P(what the image shows of object i | the image is frame t): seen or not, by its appear / disappear event
        (a frame in appear_frames(T)); a visible object the oracle did not find costs MISSED."""
        kind = self.action.objects[i].appear
        p = 1.0
        if kind is not None:
            lo, hi = appear_frames(self.T)
            frames = range(lo, hi + 1) if lo <= hi else range(1, self.T)
            if len(frames):
                p = float(np.mean([(e <= t) if kind == "appear" else (t < e) for e in frames]))
        return p if i in self.match else (1 - p) + p * MISSED

    def event_frame(self, i: int, t: int) -> int:
        """A frame for object i's appear / disappear event that agrees with what the image shows at t."""
        kind, visible = self.action.objects[i].appear, i in self.match
        lo, hi = appear_frames(self.T)
        before = (kind == "appear") == visible  # the event happened at or before t
        a, b = (lo, min(t, hi)) if before else (max(lo, t + 1), hi)
        if a > b:
            a = b = max(1, min(t if before else t + 1, self.T - 1))
        return (a + b) // 2

    def inside(self, traj, n: int, bounce: bool) -> float:
        """Soft canvas rule: inside at every frame (non-bouncing) or at frame 0 (bouncing)."""
        sl = slice(0, 1) if bounce else slice(None)
        x, y, r = traj.x[n, sl], traj.y[n, sl], traj.radius[n, sl]
        excess = max(0.0, float(np.max(r - x)), float(np.max(x + r - self.size)), float(np.max(r - y)),
                     float(np.max(y + r - self.size)))
        return _gauss(excess, SIGMA_INSIDE * self.k)

    def rewind(self, p_world: np.ndarray, v_t: np.ndarray, t: int, c: int | None, v_pre: np.ndarray | None,
               bounce: bool, size: str, scale: str, pan: str) -> tuple[np.ndarray, np.ndarray]:
        """Wind a colliding object back from frame t (world position, velocity) to frame 0, inverting simulate()'s
        steps: at frame c the collision's velocity change, and (a bouncing object after the hit) a reflection off a
        canvas edge undone as a plain mirror — the simulation that follows checks the result."""
        pos, vel = np.array(p_world, np.float64), np.array(v_t, np.float64)
        for s in range(t, 0, -1):
            if s == c and v_pre is not None:
                vel = np.array(v_pre, np.float64)
            pos = pos - vel
            if bounce:
                r, cam = self.radius(size, scale, s), self.camera(pan, s)
                for a in (0, 1):
                    lo, hi = r + cam[a], self.size - r + cam[a]
                    if pos[a] < lo:
                        pos[a], vel[a] = 2 * lo - pos[a], -vel[a]
                    elif pos[a] > hi:
                        pos[a], vel[a] = 2 * hi - pos[a], -vel[a]
        return pos, vel

    def signs(self, v: np.ndarray, bounce: bool) -> list[np.ndarray]:
        """The velocities a (bouncing) object may have at t: each moving axis either way."""
        if not bounce:
            return [v]
        axes = [a for a in (0, 1) if abs(v[a]) > 1e-9]
        out = []
        for flips in range(2 ** len(axes)):
            w = v.copy()
            for b, a in enumerate(axes):
                if flips >> b & 1:
                    w[a] = -w[a]
            out.append(w)
        return out

    def world_object(self, i: int, p: _Placement, color: str | None = None) -> WorldObject:
        o = self.action.objects[i]
        motion = Motion(p.direction, p.speed if p.direction else "normal", p.bounce and p.direction is not None,
                        p.scale)
        return WorldObject(i, o.shape, color or o.color, p.size, float(p.x), float(p.y), motion)

    # ------------------------------------------------------------------ groups

    def single(self, i: int, t: int, pan: str) -> list[_Hypothesis]:
        o, s = self.action.objects[i], self.seen_of(i)
        vis = self.visibility(i, t)
        events = [("appear", i, self.event_frame(i, t), o.appear)] if o.appear else []
        speed = o.speed or "normal"
        if s is None:  # not in the image: no position to go by (a guess for the story)
            return [_Hypothesis(vis, {i: self.guess(i, pan)}, events)]
        p_world = np.array([s.x, s.y]) + self.camera(pan, t)
        v = self.velocity(o.direction, speed)
        hyps = []
        for size, scale, w in self.size_hypotheses(o, s, t):
            if not o.bounce:
                starts = [(p_world - t * v, 1.0)]
            else:  # every start whose bouncing path passes the image's place at t, each axis on its own
                roots = [self.preimages(p_world[a], v[a], a, t, size, scale, pan) for a in (0, 1)]
                starts = [(np.array([x, y]), 1 / (sx * sy)) for x, sx in roots[0] for y, sy in roots[1]]
            for x0, density in starts:
                hyps.append(_Hypothesis(w * vis * density, {i: _Placement(size, scale, x0[0], x0[1], o.direction,
                                                                           speed, o.bounce)}, events))
        return self.verify(hyps, t, pan)

    def preimages(self, p: float, v: float, axis: int, t: int, size: str, scale: str, pan: str,
                  grid: int = 256) -> list[tuple[float, float]]:
        """The starts (world, frame 0) on one axis from which a bouncing object reaches ``p`` (world) at frame t,
        with the path's local stretch |dx_t/dx_0| (clipped to [0.2, 5]): simulate()'s rule — step, then a position
        past an edge is mirrored back and the velocity pointed inwards — run for a grid of starts inside the canvas
        at once, and its crossings of p located on the grid and refined (the map is piecewise linear)."""
        lo = np.array([self.radius(size, scale, f) + self.camera(pan, f)[axis] for f in range(t + 1)])
        hi = np.array([self.size - self.radius(size, scale, f) + self.camera(pan, f)[axis] for f in range(t + 1)])
        if hi[0] <= lo[0]:
            return []

        def run(x0: np.ndarray) -> np.ndarray:
            pos, vel = x0.astype(np.float64), np.full(x0.shape, float(v))
            for f in range(1, t + 1):
                pos = pos + vel
                low, high = pos < lo[f], pos > hi[f]
                pos = np.where(low, 2 * lo[f] - pos, np.where(high, 2 * hi[f] - pos, pos))
                vel = np.where(low, np.abs(vel), np.where(high, -np.abs(vel), vel))
            return pos - p

        xs = np.linspace(lo[0], hi[0], grid)
        f = run(xs)
        out = []
        for k in np.nonzero((f[:-1] == 0) | (np.sign(f[:-1]) * np.sign(f[1:]) < 0))[0]:
            a, b, fa, fb = xs[k], xs[k + 1], f[k], f[k + 1]
            x = a if fa == 0 else a - fa * (b - a) / (fb - fa)
            for _ in range(2):  # secant refinement against the exact map
                fx = float(run(np.array([x]))[0])
                if abs(fx) < 1e-9:
                    break
                side = (a, fa) if np.sign(fx) == np.sign(fb) else (b, fb)
                x = x - fx * (x - side[0]) / (fx - side[1]) if fx != side[1] else x
                x = min(max(x, a), b)
            slope = abs((fb - fa) / (b - a))
            out.append((float(x), float(np.clip(slope, 0.2, 5.0))))
        if f[-1] == 0:
            out.append((float(xs[-1]), 1.0))
        return out

    def pair(self, col: StatedCollision, t: int, pan: str) -> list[_Hypothesis]:
        i, j = col.subject, col.partner
        S, P = self.action.objects[i], self.action.objects[j]
        sS, sP_seen = self.seen_of(i), self.seen_of(j)
        lo, hi = collision_frames(self.T)
        missed = MISSED ** ((sS is None) + (sP_seen is None))
        if S.direction is None or lo > hi or (sS is None and sP_seen is None):
            return [_Hypothesis(missed, {i: self.guess(i, pan), j: self.guess(j, pan)},
                                [("collision", i, j, col.effect, col.color)])]
        u = _unit(S.direction)
        vS = self.velocity(S.direction, S.speed or "normal")
        speeds = [P.speed] if P.speed else list(_SPEEDS)
        p_dir = P.direction if P.direction is not None else None
        sigma_rel = math.hypot(self.sigma_position(sS), self.sigma_position(sP_seen))
        sizes_S, sizes_P = self.size_hypotheses(S, sS, t), self.size_hypotheses(P, sP_seen, t)
        observed = None
        if sS is not None and sP_seen is not None:
            d = np.array([sP_seen.x - sS.x, sP_seen.y - sS.y])
            observed = (float(d @ u), float(np.linalg.norm(d - float(d @ u) * u)))  # along the heading, across
        drafts = []  # (weight, speed, vP, c, size hypotheses, along): weighed first, wound back only if worth it
        for speed in speeds:
            vP = self.velocity(p_dir, speed)
            closing = float(np.dot(vS - vP, u))
            for c in range(lo, hi + 1):
                before = t < c
                colour = S.color if (before or col.effect == "stop") else (col.color or S.color)
                l_colour = 1.0 if sS is None or sS.color == colour else COLOUR_MISS
                back = closing if col.effect == "change_color" else float(np.dot(-vP, u))
                for size_S in sizes_S:
                    for size_P in sizes_P:
                        reach = self.radius(*size_S[:2], c) + self.radius(*size_P[:2], c)
                        gap = reach - 0.5 * closing  # the placement rule: touching at c, apart at c − 1
                        along = gap + (closing * (c - t) if before else back * (t - c))
                        l_geo = 1.0
                        if observed is not None:
                            l_geo = _gauss(observed[0] - along, sigma_rel) * _gauss(observed[1], sigma_rel)
                        weight = missed * size_S[2] * size_P[2] * l_geo * l_colour / (len(speeds) * (hi - lo + 1))
                        drafts.append((weight, speed, vP, c, size_S, size_P, along))
        top = max((d[0] for d in drafts), default=0.0)
        cam = self.camera(pan, t)
        hyps = []
        for weight, speed, vP, c, (sizeS, scaleS, _), (sizeP, scaleP, _), along in drafts:
            if weight <= 0 or weight < _PRUNE * top:
                continue
            before = t < c
            if sS is not None:
                pS = np.array([sS.x, sS.y])
                pP = np.array([sP_seen.x, sP_seen.y]) if sP_seen is not None else pS + u * along
            else:
                pP = np.array([sP_seen.x, sP_seen.y])
                pS = pP - u * along
            if before:
                vS_t, vP_t = vS, vP
            else:
                vS_t = -vS if col.effect == "change_color" else np.zeros(2)
                vP_t = -vP
            for vs in self.signs(vS_t, S.bounce and not before):
                xS, _ = self.rewind(pS + cam, vs, t, c, vS, S.bounce and not before, sizeS, scaleS, pan)
                for vp in self.signs(vP_t, P.bounce and not before):
                    xP, _ = self.rewind(pP + cam, vp, t, c, vP, P.bounce and not before, sizeP, scaleP, pan)
                    hyps.append(_Hypothesis(weight, {
                        i: _Placement(sizeS, scaleS, xS[0], xS[1], S.direction, S.speed or "normal", S.bounce),
                        j: _Placement(sizeP, scaleP, xP[0], xP[1], p_dir, speed, P.bounce),
                    }, [("collision", i, j, col.effect, col.color, c)]))  # fmt: skip
        return self.verify(hyps, t, pan)

    def verify(self, hyps: list[_Hypothesis], t: int, pan: str) -> list[_Hypothesis]:
        """Simulate each hypothesis worth it and weigh in where the simulation puts things at t, the canvas rules
        and the collision frame."""
        if not hyps:
            return []
        hyps = sorted(hyps, key=lambda h: -h.weight)[:_MOST]
        top = hyps[0].weight
        out = []
        for h in hyps:
            if h.weight < _PRUNE * top or h.weight <= 0:
                continue
            ids = sorted(h.placements)
            objects = [self.world_object(i, h.placements[i]) for i in ids]
            events = []
            for e in h.events:
                if e[0] == "collision":
                    events.append(Event("collision", e[1], other=e[2], effect=e[3],
                                        color=e[4] if e[3] == "change_color" else None))
            scene = Scene(tuple(objects), pan=pan, events=tuple(events), size=self.size, frames=self.T)
            traj = simulate(scene)
            like = 1.0
            for n, i in enumerate(ids):
                s = self.seen_of(i)
                if s is not None:
                    like *= _gauss(math.hypot(traj.x[n, t] - s.x, traj.y[n, t] - s.y), self.sigma_position(s))
                like *= self.inside(traj, n, h.placements[i].bounce)
            for e, frame in zip(h.events, traj.event_frames):
                if e[0] == "collision":
                    lo, hi = collision_frames(self.T)
                    if frame is None or not lo <= frame <= hi:
                        like *= 0.01
                    elif frame != e[5]:
                        like *= 0.3 if abs(frame - e[5]) == 1 else 0.01
            out.append(_Hypothesis(h.weight * like, h.placements, h.events))
        return out

    def guess(self, i: int, pan: str) -> _Placement:
        """A placement for a stated object the image does not show: its whole path inside, centred."""
        o = self.action.objects[i]
        size, scale, speed = o.size or "medium", o.scale or "none", o.speed or "normal"
        v = self.velocity(o.direction, speed) - (self.camera(pan, 1) if pan != "none" else 0)
        r = self.radius(size, scale, 0)
        span = self.T - 1
        start = [(self.size - v[a] * span) / 2 if not o.bounce else self.size / 2 for a in (0, 1)]
        start = [min(max(x, r), self.size - r) for x in start]
        return _Placement(size, scale, start[0], start[1], o.direction, speed, o.bounce)

    # ------------------------------------------------------------------ the objects the text does not name

    @functools.cached_property
    def _motions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The world's motion prior (sampling.sample_motion): still, or 8 directions × 3 speeds, bouncing or not.
        Returns velocities [M, 2] (px per frame), bounce flags [M] and probabilities [M]."""
        vel, bounce, prob = [np.zeros(2)], [False], [P_STILL]
        for direction in vocab.DIRECTIONS:
            for speed in _SPEEDS:
                for b in (False, True):
                    vel.append(self.velocity(direction, speed))
                    bounce.append(b)
                    prob.append((1 - P_STILL) / (len(vocab.DIRECTIONS) * len(_SPEEDS)) * (P_BOUNCE if b else 1 - P_BOUNCE))
        return np.array(vel), np.array(bounce), np.array(prob)

    def other_likelihood(self, t: int, pan: str) -> float:
        """How likely the image's objects the text does not name are where they are at frame t, their motions
        unknown: Σ over the world's motion prior of the density of their position at t (a non-bouncing object
        starts uniformly where its whole path stays inside; a bouncing one anywhere inside). An object at the edge
        fits the start or the end of a clip better than its middle; one in the centre, the middle. Their sizes too:
        a radius between the world's sizes is a growing or shrinking object part way through the clip."""
        named = set(self.match.values())
        vel, bounce, prob = self._motions
        w = vel - self.camera(pan, 1)  # [M, 2] screen velocities (a non-bouncing motion's path is straight)
        span = self.T - 1
        out = 1.0
        for j, s in enumerate(self.seen):
            if j in named:
                continue
            look = StatedObject(s.shape, s.color, None, None, None, False, None)
            # (a centroid cut by the canvas edge lies inwards of the centre: the canvas rule stays strict for it)
            sigma = self.sigma_position(s) if s.behind else SIGMA_INSIDE * self.k
            here = np.array([s.x, s.y])
            total = 0.0
            for size, scale, weight in self.size_hypotheses(look, s, t):
                r0, r_t, r_end = (self.radius(size, scale, f) for f in (0, t, span))
                # the sampler's start box: inside at frame 0 and, without bouncing, at the last frame too
                lo = np.maximum(r0, r_end - w * span)
                hi = np.minimum(self.size - r0, self.size - r_end - w * span)
                width = np.clip(hi - lo, 1e-3, None)
                start = here - w * t
                excess = np.maximum(0.0, np.maximum(lo - start, start - hi)).max(axis=1)
                straight = np.where((hi > lo).all(axis=1),
                                    np.exp(-0.5 * (excess / sigma) ** 2) / width.prod(axis=1), 0.0)
                inside = max(0.0, float(np.max(r_t - here)), float(np.max(here + r_t - self.size)))
                bouncing = math.exp(-0.5 * (inside / sigma) ** 2) / max(self.size - 2 * r0, 1e-3) ** 2
                total += weight * float((prob * np.where(bounce, bouncing, straight)).sum())
            out *= total * self.size**2  # (× canvas area: a number near 1, not a density)
        return out

    def gap_rule(self, t: int) -> float:
        """At frame 0 no two objects touch (sampling: centres ≥ r_a + r_b + MIN_GAP apart)."""
        if t != 0:
            return 1.0
        for a in range(len(self.seen)):
            for b in range(a + 1, len(self.seen)):
                sa, sb = self.seen[a], self.seen[b]
                reach = sa.radius(sa.shape) + sb.radius(sb.shape) + (MIN_GAP - 0.5) * self.k
                if math.hypot(sa.x - sb.x, sa.y - sb.y) < reach:
                    return 0.01
        return 1.0

    # ------------------------------------------------------------------ the posterior

    def groups(self) -> list:
        in_collision = {i for c in self.action.collisions for i in (c.subject, c.partner)}
        return [("pair", c) for c in self.action.collisions] + [
            ("single", i) for i in range(len(self.action.objects)) if i not in in_collision]

    def pans(self) -> list[tuple[str, float]]:
        if self.action.pan is not None:
            return [(self.action.pan, 1.0)]
        if self.background in vocab.SOLID_BACKGROUNDS:
            return [("none", 1.0)]
        moving = [p for p in vocab.PANS if p != "none"]
        return [("none", 1 - P_PAN_OVER_PATTERN)] + [(p, P_PAN_OVER_PATTERN / len(moving)) for p in moving]

    def background_likelihood(self, pan: str, t: int) -> float:
        table = self.bg_rmse.get(pan, self.bg_rmse.get("none"))
        best = min(float(v.min()) for v in self.bg_rmse.values())
        return math.exp(-(float(table[t]) - best) / BACKGROUND_TEMPERATURE)

    def solve(self, normalise: bool = True) -> tuple[np.ndarray, dict[int, tuple[str, list[_Hypothesis]]]]:
        """The posterior over frames (unnormalised: prior × likelihood), and per frame the best pan and the best
        hypothesis per group."""
        post = np.zeros(self.T)
        best: dict[int, tuple[float, str, list[_Hypothesis]]] = {}
        groups = self.groups()
        pans = self.pans()
        for t in range(self.T):
            total = 0.0
            for pan, p_pan in pans:
                lb = p_pan * self.background_likelihood(pan, t)
                if lb < 1e-8:
                    continue
                lb *= self.other_likelihood(t, pan) * self.gap_rule(t)
                product, chosen = lb, []
                for kind, g in groups:
                    hyps = self.pair(g, t, pan) if kind == "pair" else self.single(g, t, pan)
                    mass = sum(h.weight for h in hyps)
                    product *= mass
                    chosen.append(max(hyps, key=lambda h: h.weight) if hyps else None)
                total += product
                if t not in best or product > best[t][0]:
                    best[t] = (product, pan, chosen)
            post[t] = self.prior[t] * total
        if normalise:
            z = post.sum()
            post = post / z if z > 0 else self.prior.copy()
        return post, {t: (pan, chosen) for t, (_, pan, chosen) in best.items()}

    # ------------------------------------------------------------------ the solved scene

    def scene(self, t: int, pan: str, chosen: list[_Hypothesis | None]) -> Scene:
        placements: dict[int, _Placement] = {}
        raw_events: list[tuple] = []
        for h in chosen:
            if h is not None:
                placements.update(h.placements)
                raw_events += h.events
        for i in range(len(self.action.objects)):
            placements.setdefault(i, self.guess(i, pan))
        stated = sorted(placements)
        objects = [self.world_object(i, placements[i]) for i in stated]
        cam = self.camera(pan, t)
        matched = set(self.match.values())
        for j, s in enumerate(self.seen):
            if j in matched:
                continue
            size = min(_SIZES, key=lambda z: abs(math.log(s.radius(s.shape) / (vocab.SIZES[z] * self.k))))
            objects.append(WorldObject(len(objects), s.shape, s.color, size, s.x + cam[0], s.y + cam[1]))
        ids = {i: n for n, i in enumerate(stated)}
        objects = [WorldObject(n, o.shape, o.color, o.size, o.x, o.y, o.motion) for n, o in enumerate(objects)]
        events = []
        for e in raw_events:
            if e[0] == "collision":
                events.append(Event("collision", ids[e[1]], other=ids[e[2]], effect=e[3],
                                    color=e[4] if e[3] == "change_color" else None))
            elif self.T >= 2:
                events.append(Event(e[3], ids[e[1]], frame=int(e[2])))
        return Scene(tuple(objects), background=self.background, style=self.style, pan=pan, events=tuple(events),
                     size=self.size, frames=self.T).validate()


# ==================================================================================== the narrator


def _english(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class Solution:
    """What the world narrator worked out: the narrative, the posterior over frames and the solved scene."""

    narrative: Narrative
    posterior: np.ndarray | None
    scene: Scene | None


class WorldNarrator:
    """The exact narrator of the shapes world (module docstring). ``anchor_weight``: the prior's mass on the start,
    middle and end frames (0: a uniform prior over frames)."""

    name = "world"

    def __init__(self, anchor_weight: float = ANCHOR_WEIGHT) -> None:
        if not 0.0 <= anchor_weight <= 1.0:
            raise AnyframeInputError(f"anchor_weight must be in [0, 1], got {anchor_weight}")
        self.anchor_weight = anchor_weight

    def narrate(self, image, prompt: str, num_frames: int) -> Narrative:
        return self.solve(image, prompt, num_frames).narrative

    def solve(self, image, prompt: str, num_frames: int) -> Solution:
        num_frames = check_num_frames(num_frames)
        img = image_array(image)
        notes: list[str] = []
        h, w = img.shape[:2]
        if h != w or not 8 <= h <= 512:
            return self._fallback(prompt, num_frames, f"the image is {w}×{h}, not a square shapes-world frame "
                                  "(8–512 px): position 0 is a guess")
        if num_frames > 256:
            return self._fallback(prompt, num_frames, f"a shapes-world clip has at most 256 frames, not {num_frames}: "
                                  "position 0 is a guess")
        try:
            action = read_action(prompt)
        except AnyframeInputError as exc:
            notes.append(f"the prompt is outside the world's grammar ({exc}); the position is the image's alone")
            action = Action(())
        seen = _read_image(img)
        first = _Solver(action, img, seen, num_frames, self.anchor_weight, match={})
        background = (first.style, first.background, first.bg_rmse)
        # The look of an object can be misread (a rotated square, two objects touching): every assignment of the
        # text's objects to the image's within reach of the cheapest is solved and weighed by its evidence.
        solved = []
        for match, cost in first.matches():
            solver = _Solver(action, img, seen, num_frames, self.anchor_weight, match, background)
            unnormalised, best = solver.solve(normalise=False)
            solved.append((math.exp(-cost) * unnormalised, solver, best))
        total = sum(weighted for weighted, _, _ in solved)
        posterior = total / total.sum() if total.sum() > 0 else first.prior.copy()
        position = int(np.argmax(posterior))
        _, solver, best = max(solved, key=lambda x: x[0][position])  # the reading that explains it best
        missing = [o for i, o in enumerate(action.objects) if i not in solver.match and o.appear is None]
        if missing:
            shows = _english([f"a {s.color} {s.shape}" for s in seen]) if seen else "no shapes"
            absent = _english([f"the {o.describe()}" for o in missing])
            if solver.match:
                notes.append(f"the image does not show {absent} (hidden behind another object, or not in this "
                             f"scene; it shows {shows}): the position rests on the rest")
            else:
                notes.append(f"the image does not show {absent} (it shows {shows}): the text does not describe "
                             "this image, so the position is a guess")
        for i, j in sorted(solver.match.items()):
            o, s = action.objects[i], seen[j]
            if s.color not in solver._colours(i):
                notes.append(f"the image's {s.color} {s.shape} is taken for the text's {o.describe()} (a near hue)")
        if not notes and posterior[position] < UNSURE:
            close = [t for t in np.argsort(-posterior) if posterior[t] >= 0.1 * posterior[position]][:4]
            listed = _english([f"{t} ({posterior[t]:.0%})" for t in sorted(int(t) for t in close)])
            notes.append(f"unsure: the image fits frames {listed} (the text and one image cannot tell them apart)")
        pan, chosen = best.get(position, ("none", []))
        try:
            scene = solver.scene(position, pan, chosen)
            descriptions = frame_captions(scene)
        except AnyframeInputError as exc:  # (a degenerate solution: still answer)
            scene = None
            notes.append(f"no consistent scene ({exc}); the descriptions repeat the prompt")
            descriptions = [" ".join(str(prompt).split()) or "."] * num_frames
        note = "; ".join(notes) or None
        whole = caption(scene) if scene is not None else None  # the solved scene's world caption
        raw = json.dumps({"position": position, "descriptions": descriptions, **({"caption": whole} if whole else {}),
                          **({"note": note} if note else {})})
        return Solution(Narrative(position, descriptions, raw=raw, backend=self.name, note=note, caption=whole),
                        posterior, scene)

    def _fallback(self, prompt: str, num_frames: int, note: str) -> Solution:
        descriptions = [" ".join(str(prompt).split()) or "."] * num_frames
        raw = json.dumps({"position": 0, "descriptions": descriptions, "note": note})
        return Solution(Narrative(0, descriptions, raw=raw, backend=self.name, note=note), None, None)

