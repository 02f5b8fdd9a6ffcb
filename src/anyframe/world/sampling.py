"""Random scene programs: the training distribution of the shapes world and its held-out splits.

Every draw comes from the ``np.random.Generator`` passed in, so a scene is a pure function of the
generator state (:func:`scene_for_seed` fixes that state from a seed and a split).

The training distribution (split ``"train"``). The probabilities are those of the proposal; the
rejection rules shift them by up to about 5 points on the 32 px / 16 frame reference clip (measured
values below). Sizes and speeds scale with the canvas, so other canvases keep the same proportions;
longer clips make fast non-bouncing motions rarer still.

- **Objects**: 1–4 (``vocab.MAX_OBJECTS``), uniform. Each object draws its (colour, shape) pair
  uniformly from the 32 training pairs (all 40 minus :data:`HELD_OUT_COLOR_SHAPES`; so every colour
  has probability 1/8, circles and crosses 7/32, the other shapes 6/32) and its size uniformly. An
  object identical in (shape, colour, size) to an earlier one is redrawn with probability 0.8, so
  identical twins are allowed but rare. Ids are 0..n−1 in scene order.
- **Motion** (per object): still with probability 0.15 (then speed "normal", no bounce); otherwise
  one of the 8 directions and one of the 3 speed words uniformly, bouncing off the edges with
  probability 0.25. Independently, a scale change (grow or shrink, equally) with probability 0.15,
  and rotation with probability 0.15 — never for circles, whose rotation is invisible. Start
  angle 0.
- **Placement**: a non-bouncing object starts where its whole clip stays fully inside the canvas
  (its box ``x ± r``, ``y ± r`` in screen coordinates, camera pan included); a motion that cannot
  stay inside from any start is redrawn. Every object starts inside the canvas. At frame 0 no two
  object circles intersect: centres are at least ``r_a + r_b + 1`` px (scaled) apart.
- **Collision** (probability 0.30 in scenes with ≥ 2 objects): two objects move head-on toward each
  other (opposite directions, independent speeds; bounce, scale and rotation drawn as above) and
  are placed so that their circles first touch at a frame drawn uniformly from
  ``[max(2, frames // 2), frames − 3]`` (the second half: after the touch both rebound, and the way
  back must not be longer than the way in). The event is on the first of the two (``Event.object``): effect
  ``change_color`` (to a different colour whose pair with the object's shape is a training pair) or
  ``stop``, equally likely. Every sampled collision is verified with :func:`simulate` to happen in
  that range. Needs ``frames ≥ 5``.
- **Appear / disappear** (probability 0.10 per scene, each type equally likely): on an object not
  involved in the collision (none is drawn when every object collides), at a frame drawn uniformly
  from ``[3, frames − 4]``. Needs ``frames ≥ 7``.
- **Background**: uniform over the 7 training backgrounds (solids and patterns minus
  ``vocab.HELD_OUT_BACKGROUNDS``). **Camera pan**: only over a patterned background (a pan over a
  solid colour is invisible), then with probability 0.35 (≈ 15 % of training scenes), direction
  uniform over left / right / up / down.
- **Style**: "flat" with probability 0.5, otherwise uniform over the other training styles
  (all minus ``vocab.HELD_OUT_STYLES``).

A proposal that breaks a rule (no start position found, a collision that does not happen in range,
an object that leaves the canvas) is discarded whole and the next one drawn; the object count is
drawn once per scene, so it stays exactly uniform. The redraws shift the proposal probabilities;
measured over 20 000 training scenes at 32 px / 16 frames: still ≈ 16 % of the objects outside a
collision, bounce ≈ 27 % of moving objects, speeds slowly / normal / quickly ≈ 37 / 35 / 29 % (a
fast non-bouncing object often cannot stay inside), each diagonal direction ≈ 13.6 % and each axis
direction ≈ 11.4 % (a diagonal covers less distance per axis), sizes small / medium / large ≈
34 / 34 / 32 %, collision in 30 % of multi-object scenes, appear / disappear in ≈ 9 % of scenes,
pan ≈ 15 %, identical twins in ≈ 1.4 % of 4-object scenes.

Splits (:data:`SPLITS`): everything except the named factor follows the training distribution.

- ``"ood_color_shape"``: one object, chosen uniformly, takes a held-out (colour, shape) pair drawn
  uniformly from :data:`HELD_OUT_COLOR_SHAPES`; the other objects draw training pairs. Training
  scenes never contain a held-out pair — not even after a ``change_color`` collision.
- ``"ood_background"``: the background is drawn uniformly from ``vocab.HELD_OUT_BACKGROUNDS``.
- ``"ood_style"``: the style is drawn uniformly from ``vocab.HELD_OUT_STYLES``.
- ``"more_objects"``: 5–6 objects, uniform (training has 1–4). Crowding makes large objects harder
  to place, so sizes skew small (small / medium / large ≈ 43 / 33 / 24 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.scene import Event, Motion, Scene, Trajectory, WorldObject, simulate

SPLITS = ("train", "ood_color_shape", "ood_background", "ood_style", "more_objects")

# Held-out (colour, shape) pairs: each colour exactly once, each shape at least once (circle and
# cross once, the others twice), so every colour and every shape is seen in training with other
# partners. The common "red circle" stays in training on purpose.
HELD_OUT_COLOR_SHAPES: tuple[tuple[str, str], ...] = (
    ("red", "square"),
    ("orange", "circle"),
    ("yellow", "cross"),
    ("green", "diamond"),
    ("cyan", "triangle"),
    ("blue", "triangle"),
    ("purple", "square"),
    ("white", "diamond"),
)
TRAIN_COLOR_SHAPES: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c in vocab.COLORS for s in vocab.SHAPES if (c, s) not in HELD_OUT_COLOR_SHAPES
)
TRAIN_BACKGROUNDS = tuple(b for b in vocab.BACKGROUNDS if b not in vocab.HELD_OUT_BACKGROUNDS)
TRAIN_STYLES = tuple(s for s in vocab.STYLES if s not in vocab.HELD_OUT_STYLES)
TRAIN_OBJECTS = (1, vocab.MAX_OBJECTS)
MORE_OBJECTS = (5, 6)

P_STILL = 0.15
P_BOUNCE = 0.25  # of moving objects
P_SCALE = 0.15
P_ROTATE = 0.15  # of non-circles
P_COLLISION = 0.30  # of scenes with >= 2 objects
P_APPEAR_DISAPPEAR = 0.10
P_PAN_OVER_PATTERN = 0.35  # 3 of the 7 training backgrounds are patterns: ≈ 15 % of scenes pan
P_FLAT = 0.5
P_KEEP_TWIN = 0.2  # an object identical to an earlier one is kept with this probability
MIN_GAP = 1.0  # px at 32: the smallest gap between two object circles at frame 0

_DIRECTIONS = tuple(vocab.DIRECTIONS)
_SPEEDS = tuple(vocab.SPEEDS)
_SIZES = tuple(vocab.SIZES)
_PAN_DIRECTIONS = tuple(p for p in vocab.PANS if p != "none")
_MAX_PROPOSALS = 500
_PLACEMENT_TRIES = 30
_MOTION_TRIES = 20
_PLACEMENT_ROUNDS = 5
_BY_STEP = {step: name for name, step in vocab.DIRECTIONS.items()}
_OPPOSITE = {name: _BY_STEP[(-dx, -dy)] for name, (dx, dy) in vocab.DIRECTIONS.items()}


def collision_frames(frames: int) -> tuple[int, int]:
    """Inclusive range of frames at which a sampled collision happens: the second half of the clip, so
    the objects' rebound (``simulate``) never carries them further than the way they came in."""
    return max(2, frames // 2), frames - 3


def appear_frames(frames: int) -> tuple[int, int]:
    """Inclusive range of frames of a sampled appear / disappear event."""
    return 3, frames - 4


# ------------------------------------------------------------------------------------ small draws


def _pick(rng: np.random.Generator, seq: tuple | list):
    # rng.random() is ~10x cheaper than rng.choice and sampling speed matters (≥ 500 clips/s).
    return seq[min(int(rng.random() * len(seq)), len(seq) - 1)]


def _coin(rng: np.random.Generator, p: float) -> bool:
    return rng.random() < p


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * rng.random()


def _randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (inclusive)."""
    return lo + min(int(rng.random() * (hi - lo + 1)), hi - lo)


# ------------------------------------------------------------------------------------ geometry


_GROWTH = {"none": 1.0, "grow": vocab.GROW_FACTOR, "shrink": vocab.SHRINK_FACTOR}
_UNIT = {
    name: (dx / math.hypot(dx, dy), dy / math.hypot(dx, dy)) for name, (dx, dy) in vocab.DIRECTIONS.items()
}

Vec = tuple[float, float]


class _Canvas:
    """What placement needs to know about the clip: screen size, length and camera velocity.

    Geometry here is plain Python floats, not numpy: on 2-vectors numpy's per-call overhead would
    dominate the sampling time.
    """

    def __init__(self, size: int, frames: int, pan: str) -> None:
        self.size, self.frames, self.pan = size, frames, pan
        self.k = size / vocab.REFERENCE_CANVAS
        self.span = max(1, frames - 1)
        ux, uy = _UNIT[pan] if pan != "none" else (0.0, 0.0)
        # simulate() moves the camera by the raw (unnormalised) pan direction; pans are axis-aligned.
        self.camera: Vec = (ux * vocab.PAN_SPEED * self.k, uy * vocab.PAN_SPEED * self.k)

    def radius(self, size: str, scale: str, t: float) -> float:
        """The object's radius at frame t (as :func:`simulate` computes it)."""
        return vocab.SIZES[size] * self.k * (1 + (_GROWTH[scale] - 1) * t / self.span)

    def velocity(self, motion: Motion) -> Vec:
        """World velocity, px per frame."""
        if motion.direction is None:
            return (0.0, 0.0)
        ux, uy = _UNIT[motion.direction]
        speed = vocab.SPEEDS[motion.speed] * self.k
        return (ux * speed, uy * speed)

    def screen_velocity(self, motion: Motion) -> Vec:
        vx, vy = self.velocity(motion)
        return (vx - self.camera[0], vy - self.camera[1])


# A placement constraint (ox, oy, r): the object's screen centre at some frame is anchor + (ox, oy)
# and its radius there is r; it must lie inside the canvas. A linear path is inside at every frame
# iff it is inside at both ends, so a few constraints describe a whole path, and the anchors
# satisfying them form a box.
_Constraint = tuple[float, float, float]
_Box = tuple[float, float, float, float]  # x0, x1, y0, y1


def _box(constraints: list[_Constraint], size: float, eps: float = 0.02) -> _Box | None:
    """The box of anchors satisfying every constraint (shrunk by eps), or None when it is empty.

    The default eps leaves room for rounding drawn positions to 0.01 px.
    """
    x0 = y0 = -math.inf
    x1 = y1 = math.inf
    for ox, oy, r in constraints:
        x0, x1 = max(x0, r - ox), min(x1, size - r - ox)
        y0, y1 = max(y0, r - oy), min(y1, size - r - oy)
    x0, x1, y0, y1 = x0 + eps, x1 - eps, y0 + eps, y1 - eps
    return (x0, x1, y0, y1) if x0 <= x1 and y0 <= y1 else None


def _path_constraints(canvas: _Canvas, obj_size: str, motion: Motion) -> list[_Constraint]:
    """Constraints on the start position of an object without events."""
    cons = [(0.0, 0.0, canvas.radius(obj_size, motion.scale, 0))]
    if not motion.bounce:
        last = canvas.frames - 1
        vx, vy = canvas.screen_velocity(motion)
        cons.append((vx * last, vy * last, canvas.radius(obj_size, motion.scale, last)))
    return cons


# ------------------------------------------------------------------------------------ attributes


def _split_backgrounds(split: str) -> tuple[str, ...]:
    return vocab.HELD_OUT_BACKGROUNDS if split == "ood_background" else TRAIN_BACKGROUNDS


def _split_styles(split: str) -> tuple[str, ...]:
    return vocab.HELD_OUT_STYLES if split == "ood_style" else TRAIN_STYLES


def _sample_background(rng: np.random.Generator, split: str) -> tuple[str, str]:
    """(background, pan): a pan only over a pattern, where it is visible."""
    background = _pick(rng, _split_backgrounds(split))
    pan = "none"
    if background in vocab.PATTERN_BACKGROUNDS and _coin(rng, P_PAN_OVER_PATTERN):
        pan = _pick(rng, _PAN_DIRECTIONS)
    return background, pan


def _sample_style(rng: np.random.Generator, split: str) -> str:
    styles = _split_styles(split)
    if "flat" in styles and _coin(rng, P_FLAT):
        return "flat"
    others = tuple(s for s in styles if s != "flat") or styles
    return _pick(rng, others)


def _sample_count(rng: np.random.Generator, split: str) -> int:
    lo, hi = MORE_OBJECTS if split == "more_objects" else TRAIN_OBJECTS
    return _randint(rng, lo, hi)


Look = tuple[str, str, str]  # (shape, colour, size)


def sample_look(rng: np.random.Generator, taken: list[Look], held_out: bool = False) -> Look:
    """A (shape, colour, size) for a new object: a training pair (or a held-out one), uniform size.

    A look identical to one in ``taken`` is redrawn with probability 1 − P_KEEP_TWIN.
    """
    pairs = HELD_OUT_COLOR_SHAPES if held_out else TRAIN_COLOR_SHAPES
    while True:
        color, shape = _pick(rng, pairs)
        look = (shape, color, _pick(rng, _SIZES))
        if look not in taken or _coin(rng, P_KEEP_TWIN):
            return look


def sample_motion(rng: np.random.Generator, shape: str) -> Motion:
    """A motion from the training distribution (before the placement rules)."""
    if _coin(rng, P_STILL):
        direction, speed, bounce = None, "normal", False
    else:
        direction, speed, bounce = _pick(rng, _DIRECTIONS), _pick(rng, _SPEEDS), _coin(rng, P_BOUNCE)
    scale = _pick(rng, ("grow", "shrink")) if _coin(rng, P_SCALE) else "none"
    rotate = shape != "circle" and _coin(rng, P_ROTATE)
    return Motion(direction=direction, speed=speed, bounce=bounce, scale=scale, rotate=rotate)


def _new_color(rng: np.random.Generator, shape: str, old: str) -> str:
    """A different colour that forms a training pair with the shape (a recolour stays in-distribution)."""
    return _pick(rng, tuple(c for c, s in TRAIN_COLOR_SHAPES if s == shape and c != old))


# ------------------------------------------------------------------------------------ placement


@dataclass
class _Draft:
    """An object being built: its look and motion, then its start position."""

    shape: str
    color: str
    size: str
    motion: Motion
    x: float = math.nan
    y: float = math.nan

    def build(self, object_id: int) -> WorldObject:
        return WorldObject(object_id, self.shape, self.color, self.size, self.x, self.y, self.motion)


def _clear(canvas: _Canvas, draft: _Draft, x: float, y: float, placed: list[_Draft]) -> bool:
    """True when the circle at (x, y) keeps MIN_GAP to every placed circle at frame 0."""
    r = canvas.radius(draft.size, draft.motion.scale, 0)
    for p in placed:
        gap = r + canvas.radius(p.size, p.motion.scale, 0) + MIN_GAP * canvas.k
        if (x - p.x) ** 2 + (y - p.y) ** 2 < gap * gap:
            return False
    return True


def _draw_in_box(rng: np.random.Generator, box: _Box) -> Vec:
    x0, x1, y0, y1 = box
    return round(_uniform(rng, x0, x1), 2), round(_uniform(rng, y0, y1), 2)


def _place_free(rng: np.random.Generator, canvas: _Canvas, draft: _Draft, placed: list[_Draft]) -> bool:
    """Give a draft without events a start position (redrawing an impossible motion). False: no room."""
    for _ in range(_MOTION_TRIES):
        box = _box(_path_constraints(canvas, draft.size, draft.motion), canvas.size)
        if box is not None:
            break
        draft.motion = sample_motion(rng, draft.shape)  # no start keeps this motion inside
    else:
        return False
    for _ in range(_PLACEMENT_TRIES):
        x, y = _draw_in_box(rng, box)
        if _clear(canvas, draft, x, y, placed):
            draft.x, draft.y = x, y
            return True
    return False


def _collision_constraints(
    canvas: _Canvas, draft: _Draft, start: Vec, t_hit: int, stops: bool
) -> list[_Constraint]:
    """Constraints on the hit anchor for a colliding draft whose centre is anchor + start at t_hit."""
    last = canvas.frames - 1
    vx, vy = canvas.screen_velocity(draft.motion)
    cx, cy = canvas.camera

    def at(t: int) -> _Constraint:
        r = canvas.radius(draft.size, draft.motion.scale, t)
        return (start[0] + vx * (t - t_hit), start[1] + vy * (t - t_hit), r)

    out = [at(0), at(t_hit)]  # inside up to the hit: it cannot bounce off an edge before it
    if stops:  # frozen in the world from the hit on: only the camera moves it on screen
        r = canvas.radius(draft.size, draft.motion.scale, last)
        out.append((start[0] - cx * (last - t_hit), start[1] - cy * (last - t_hit), r))
    elif not draft.motion.bounce:
        out.append(at(last))
    return out


def _place_collision(
    rng: np.random.Generator, canvas: _Canvas, a: _Draft, b: _Draft, effect: str, placed: list[_Draft]
) -> bool:
    """Place a (moving head-on toward b) and b so that their circles first touch at a drawn frame."""
    t_hit = _randint(rng, *collision_frames(canvas.frames))
    ux, uy = _UNIT[a.motion.direction]
    closing = (vocab.SPEEDS[a.motion.speed] + vocab.SPEEDS[b.motion.speed]) * canvas.k
    reach = canvas.radius(a.size, a.motion.scale, t_hit) + canvas.radius(b.size, b.motion.scale, t_hit)
    # Centres half a frame's closing inside the touching distance: touching at t_hit, apart at t_hit − 1.
    half = (reach - 0.5 * closing) / 2
    # The anchor is the midpoint of the two centres at t_hit (screen coordinates); a sits behind it.
    start_a, start_b = (-ux * half, -uy * half), (ux * half, uy * half)
    cons = _collision_constraints(canvas, a, start_a, t_hit, effect == "stop")
    box = _box(cons + _collision_constraints(canvas, b, start_b, t_hit, False), canvas.size)
    if box is None:
        return False
    (avx, avy), (bvx, bvy) = canvas.screen_velocity(a.motion), canvas.screen_velocity(b.motion)
    for _ in range(_PLACEMENT_TRIES):
        mx, my = _draw_in_box(rng, box)
        # World start = screen start at frame 0 (the camera starts at 0).
        ax, ay = round(mx + start_a[0] - avx * t_hit, 2), round(my + start_a[1] - avy * t_hit, 2)
        bx, by = round(mx + start_b[0] - bvx * t_hit, 2), round(my + start_b[1] - bvy * t_hit, 2)
        if _clear(canvas, a, ax, ay, placed) and _clear(canvas, b, bx, by, placed):
            a.x, a.y, b.x, b.y = ax, ay, bx, by
            return True
    return False


# ------------------------------------------------------------------------------------ checking


def stays_inside(traj: Trajectory, index: int, size: int, eps: float = 1e-6) -> bool:
    """True when object ``index``'s box ``x ± r, y ± r`` is inside the canvas at every frame."""
    x, y, r = traj.x[index], traj.y[index], traj.radius[index]
    low = min((x - r).min(), (y - r).min())
    high = max((x + r).max(), (y + r).max())
    return bool(low >= -eps and high <= size + eps)


def fits_inside(scene: Scene, obj: WorldObject) -> bool:
    """Whether ``obj`` in ``scene``'s canvas (size, frames, pan) follows the placement rule, ignoring events.

    It starts inside the canvas and, when it does not bounce, stays inside for the whole clip.
    Closed form (the path is linear), so it is cheap enough to test many candidate motions.
    """
    canvas = _Canvas(scene.size, scene.frames, scene.pan)
    box = _box(_path_constraints(canvas, obj.size, obj.motion), canvas.size, eps=0.0)
    return box is not None and box[0] <= obj.x <= box[1] and box[2] <= obj.y <= box[3]


def rule_violations(scene: Scene, traj: Trajectory | None = None) -> list[str]:
    """The placement and event rules a sampled scene must satisfy; returns the broken ones."""
    traj = simulate(scene) if traj is None else traj
    problems = []
    lo, hi = collision_frames(scene.frames)
    for e, f in zip(scene.events, traj.event_frames):
        if e.type == "collision" and (f is None or not lo <= f <= hi):
            problems.append(f"collision of {e.object} and {e.other} at frame {f}, not in [{lo}, {hi}]")
    for i, o in enumerate(scene.objects):
        if not (o.motion.bounce or stays_inside(traj, i, scene.size)):
            problems.append(f"object {o.id} does not bounce and leaves the canvas")
    n = len(scene.objects)
    for i in range(n):
        for j in range(i + 1, n):
            d = math.hypot(traj.x[i, 0] - traj.x[j, 0], traj.y[i, 0] - traj.y[j, 0])
            if d <= traj.radius[i, 0] + traj.radius[j, 0]:
                problems.append(f"objects {scene.objects[i].id} and {scene.objects[j].id} overlap at frame 0")
    return problems


# ------------------------------------------------------------------------------------ scenes


def _check_args(split: str, size: int, frames: int, num_objects: int | None) -> None:
    if split not in SPLITS:
        raise AnyframeInputError(f"unknown split {split!r}; expected one of {SPLITS}")
    if size < 8 or frames < 1:
        raise AnyframeInputError(f"canvas size must be >= 8 and frames >= 1, got {size} and {frames}")
    if num_objects is not None and not 1 <= num_objects <= 8:
        raise AnyframeInputError(f"num_objects must be in [1, 8], got {num_objects}")


def _sample_drafts(rng: np.random.Generator, split: str, n: int) -> list[_Draft]:
    held = _randint(rng, 0, n - 1) if split == "ood_color_shape" else -1
    looks: list[Look] = []
    for i in range(n):
        looks.append(sample_look(rng, looks, held_out=i == held))
    return [_Draft(shape, color, size, sample_motion(rng, shape)) for shape, color, size in looks]


def _draw_collision(rng: np.random.Generator, drafts: list[_Draft], i: int, j: int) -> Event:
    """Set the head-on motions of drafts i (toward j) and j; return the collision event on i."""
    a, b = drafts[i], drafts[j]
    direction = _pick(rng, _DIRECTIONS)
    for draft, heading in ((a, direction), (b, _OPPOSITE[direction])):
        m = draft.motion  # scale change and rotation stay as drawn
        draft.motion = Motion(heading, _pick(rng, _SPEEDS), _coin(rng, P_BOUNCE), m.scale, m.rotate)
    if _coin(rng, 0.5):
        color = _new_color(rng, a.shape, a.color)
        return Event("collision", i, other=j, effect="change_color", color=color)
    return Event("collision", i, other=j, effect="stop")


def _place_all(
    rng: np.random.Generator, canvas: _Canvas, drafts: list[_Draft], collision: Event | None
) -> tuple[bool, Event | None]:
    """Place every draft, the colliding pair first; returns (success, the possibly redrawn collision)."""
    placed: list[_Draft] = []
    pair: tuple[int, ...] = ()
    if collision is not None:
        pair = (collision.object, collision.other)
        for _ in range(_MOTION_TRIES):  # redraw the head-on motions until a hit fits in the canvas
            if _place_collision(rng, canvas, drafts[pair[0]], drafts[pair[1]], collision.effect, placed):
                break
            collision = _draw_collision(rng, drafts, *pair)
        else:
            return False, collision
        placed += [drafts[pair[0]], drafts[pair[1]]]
    # Largest first: the big ones need the most room, so packing fails less often.
    rest = [n for n in range(len(drafts)) if n not in pair]
    rest.sort(key=lambda n: -vocab.SIZES[drafts[n].size])
    for n in rest:
        if not _place_free(rng, canvas, drafts[n], placed):
            return False, collision
        placed.append(drafts[n])
    return True, collision


def _propose(rng: np.random.Generator, split: str, size: int, frames: int, n: int) -> Scene | None:
    """One proposal following the distribution; None when it cannot be placed.

    The scene-level choices (looks, events, background, style) are drawn once; placement is retried
    a few times before the proposal is given up, so that crowded scenes (many or large objects) are
    not under-represented.
    """
    background, pan = _sample_background(rng, split)
    style = _sample_style(rng, split)
    canvas = _Canvas(size, frames, pan)
    drafts = _sample_drafts(rng, split, n)
    collision = None
    colliders: tuple[int, ...] = ()
    if n >= 2 and frames >= 5 and _coin(rng, P_COLLISION):
        i = _randint(rng, 0, n - 1)
        colliders = (i, (i + _randint(rng, 1, n - 1)) % n)
        collision = _draw_collision(rng, drafts, *colliders)
    extra: tuple[Event, ...] = ()
    free = [i for i in range(n) if i not in colliders]
    if free and frames >= 7 and _coin(rng, P_APPEAR_DISAPPEAR):
        kind = _pick(rng, ("appear", "disappear"))
        extra = (Event(kind, _pick(rng, free), frame=_randint(rng, *appear_frames(frames))),)
    for _ in range(_PLACEMENT_ROUNDS):
        ok, collision = _place_all(rng, canvas, drafts, collision)
        if ok:
            events = ((collision,) if collision is not None else ()) + extra
            objects = tuple(d.build(i) for i, d in enumerate(drafts))
            return Scene(objects, background, style, pan, events, size=size, frames=frames)
    return None


def sample_scene(
    rng: np.random.Generator,
    split: str = "train",
    size: int = vocab.REFERENCE_CANVAS,
    frames: int = 16,
    num_objects: int | None = None,
) -> Scene:
    """Draw a scene of ``split`` (see the module docstring); deterministic given the rng state.

    ``num_objects`` overrides the split's object count (the other rules stay).
    """
    _check_args(split, size, frames, num_objects)
    # The object count is drawn once: redrawing it with every proposal would favour the
    # easy-to-place small counts.
    n = num_objects if num_objects is not None else _sample_count(rng, split)
    for _ in range(_MAX_PROPOSALS):
        scene = _propose(rng, split, size, frames, n)
        if scene is not None and not rule_violations(scene):
            return scene
    raise AnyframeInputError(
        f"could not sample a {split} scene with size={size}, frames={frames}, num_objects={num_objects}"
    )


def scene_for_seed(
    seed: int,
    split: str = "train",
    size: int = vocab.REFERENCE_CANVAS,
    frames: int = 16,
    num_objects: int | None = None,
) -> Scene:
    """The scene number ``seed`` of a split: ``sample_scene(np.random.default_rng([seed, split index]))``."""
    if split not in SPLITS:
        raise AnyframeInputError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    return sample_scene(rng, split, size=size, frames=frames, num_objects=num_objects)


def sample_object(rng: np.random.Generator, scene: Scene, held_out: bool = False) -> WorldObject | None:
    """A new object (id = max id + 1) for ``scene`` that follows the sampling rules, or None if no room.

    Its look avoids identical twins as in sampling, its motion is drawn from the training motion
    distribution, it keeps the frame-0 gap to every object and stays inside if it does not bounce.
    """
    canvas = _Canvas(scene.size, scene.frames, scene.pan)
    placed = [_Draft(o.shape, o.color, o.size, o.motion, o.x, o.y) for o in scene.objects]
    taken = [(o.shape, o.color, o.size) for o in scene.objects]
    for _ in range(_MOTION_TRIES):  # a fresh look and motion when this one finds no free start
        shape, color, size = sample_look(rng, taken, held_out)
        draft = _Draft(shape, color, size, sample_motion(rng, shape))
        if _place_free(rng, canvas, draft, placed):
            return draft.build(max((o.id for o in scene.objects), default=-1) + 1)
    return None
