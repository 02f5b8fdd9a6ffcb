"""Scene programs and their simulation: the ground truth every other part of the world reads.

A :class:`Scene` is a small program — objects with a shape, colour, size, start position and motion,
events (a collision that recolours or stops an object; an object appearing or disappearing), a
camera pan, a background and a rendering style. It round-trips through JSON.

:func:`simulate` runs a scene frame by frame and returns a :class:`Trajectory`: for every object and
frame its screen position, radius, angle, colour and visibility, the camera offset, and the frames
at which events happened. The renderer draws a trajectory; captions describe a scene; the oracle
scores a clip against the trajectory a scene should produce.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab

SCENE_VERSION = 1


@dataclass(frozen=True)
class Motion:
    direction: str | None = None  # a key of vocab.DIRECTIONS, or None: stays in place
    speed: str = "normal"  # a key of vocab.SPEEDS
    bounce: bool = False  # reflect off the canvas edges (otherwise it may leave the frame)
    scale: str = "none"  # none | grow | shrink
    rotate: bool = False


@dataclass(frozen=True)
class WorldObject:
    id: int
    shape: str
    color: str
    size: str
    x: float  # start centre, pixels (world coordinates: the camera offset at frame 0 is 0)
    y: float
    motion: Motion = field(default_factory=Motion)
    angle: float = 0.0  # start rotation, radians


@dataclass(frozen=True)
class Event:
    type: str  # collision | appear | disappear
    object: int  # the object it happens to
    other: int | None = None  # collision: the object it collides with
    effect: str | None = None  # collision: change_color | stop
    color: str | None = None  # collision + change_color: the new colour
    frame: int | None = None  # appear / disappear: the frame (appear: first visible; disappear: first hidden)


@dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]
    background: str = "black"
    style: str = "flat"
    pan: str = "none"
    events: tuple[Event, ...] = ()
    size: int = vocab.REFERENCE_CANVAS  # canvas side, pixels
    frames: int = 16

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict:
        return {"version": SCENE_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(data: dict) -> Scene:
        try:
            version = data.get("version", SCENE_VERSION)
            if version != SCENE_VERSION:
                raise ValueError(f"unsupported scene version {version}")
            objects = tuple(
                WorldObject(**{**o, "motion": Motion(**o.get("motion", {}))}) for o in data["objects"]
            )
            events = tuple(Event(**e) for e in data.get("events", ()))
            scene = Scene(
                objects=objects,
                events=events,
                **{k: data[k] for k in ("background", "style", "pan", "size", "frames") if k in data},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AnyframeInputError(f"malformed scene program: {exc}") from None
        scene.validate()
        return scene

    @staticmethod
    def from_json(text: str) -> Scene:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AnyframeInputError(f"scene program is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise AnyframeInputError("scene program must be a JSON object")
        return Scene.from_dict(data)

    # ---------------------------------------------------------------- checks

    def validate(self) -> Scene:
        """Raise :class:`AnyframeInputError` naming the first problem."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise AnyframeInputError(f"invalid scene: {message}")

        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)
        need(whole(self.size) and 8 <= self.size <= 512, f"canvas size must be a whole number in [8, 512], got {self.size!r}")
        need(whole(self.frames) and 1 <= self.frames <= 256, f"frames must be a whole number in [1, 256], got {self.frames!r}")
        for o in self.objects:
            need(isinstance(o.x, (int, float)) and isinstance(o.y, (int, float)) and not isinstance(o.x, bool),
                 f"object {o.id!r} needs a numeric position, got ({o.x!r}, {o.y!r})")
        try:
            self._validate_vocabulary(need)
        except TypeError as exc:  # a list where a name belongs, and the like
            raise AnyframeInputError(f"invalid scene: a value has the wrong type ({exc})") from None
        return self

    def _validate_vocabulary(self, need) -> None:
        need(self.background in vocab.BACKGROUNDS, f"unknown background {self.background!r}")
        need(self.style in vocab.STYLES, f"unknown style {self.style!r}")
        need(self.pan in vocab.PANS, f"unknown pan {self.pan!r}")
        ids = [o.id for o in self.objects]
        need(len(set(ids)) == len(ids), f"duplicate object ids {ids}")
        for o in self.objects:
            need(o.shape in vocab.SHAPES, f"unknown shape {o.shape!r}")
            need(o.color in vocab.COLORS, f"unknown colour {o.color!r}")
            need(o.size in vocab.SIZES, f"unknown size {o.size!r}")
            m = o.motion
            need(m.direction is None or m.direction in vocab.DIRECTIONS, f"unknown direction {m.direction!r}")
            need(m.speed in vocab.SPEEDS, f"unknown speed {m.speed!r}")
            need(m.scale in vocab.SCALE_CHANGES, f"unknown scale change {m.scale!r}")
            need(m.direction is not None or not m.bounce, f"object {o.id} bounces but has no direction")
            need(math.isfinite(o.x) and math.isfinite(o.y), f"object {o.id} has a non-finite position")
        for e in self.events:
            need(e.type in vocab.EVENT_TYPES, f"unknown event {e.type!r}")
            need(e.object in ids, f"event on unknown object {e.object}")
            if e.type == "collision":
                need(e.other in ids and e.other != e.object, f"collision needs another object, got {e.other}")
                need(e.effect in vocab.COLLISION_EFFECTS, f"unknown collision effect {e.effect!r}")
                need(e.effect != "change_color" or e.color in vocab.COLORS, f"unknown colour {e.color!r}")
            else:
                # frame 0 would make "appears" a no-op and "disappears" an object never seen
                need(e.frame is not None and 1 <= e.frame < self.frames, f"{e.type} frame {e.frame} out of range")
        return self

    def object(self, object_id: int) -> WorldObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise AnyframeInputError(f"no object with id {object_id} in the scene")

    def with_objects(self, objects) -> Scene:
        return replace(self, objects=tuple(objects))


# ------------------------------------------------------------------------------------ simulation


@dataclass
class Trajectory:
    """A simulated scene, in screen coordinates. Arrays are ``[N, T]`` for N objects (scene order)."""

    x: np.ndarray  # centre, pixels
    y: np.ndarray
    radius: np.ndarray
    angle: np.ndarray  # radians
    color: list[list[str]]  # [N][T] colour names
    visible: np.ndarray  # bool
    camera: np.ndarray  # [T, 2] camera offset (world − screen), pixels
    event_frames: list[int | None]  # per scene event: the frame it happened (None: it never did)

    @property
    def num_frames(self) -> int:
        return self.camera.shape[0]

    def box(self, n: int, t: int) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) of the circle of radius r around object n at frame t. (The drawn
        shapes differ slightly: the renderer's triangle reaches 1.155 r, its diamond 1.2 r vertically.)"""
        r = self.radius[n, t]
        return (self.x[n, t] - r, self.y[n, t] - r, self.x[n, t] + r, self.y[n, t] + r)


def _scale(scene: Scene) -> float:
    return scene.size / vocab.REFERENCE_CANVAS


def simulate(scene: Scene) -> Trajectory:
    """Run the scene frame by frame (deterministic; no randomness)."""
    n, t_max = len(scene.objects), scene.frames
    k = _scale(scene)
    index = {o.id: i for i, o in enumerate(scene.objects)}
    x, y = np.zeros((n, t_max)), np.zeros((n, t_max))
    radius, angle = np.zeros((n, t_max)), np.zeros((n, t_max))
    visible = np.ones((n, t_max), dtype=bool)
    color = [[o.color] * t_max for o in scene.objects]

    pos = np.array([[o.x, o.y] for o in scene.objects], dtype=np.float64).reshape(n, 2)
    vel = np.zeros((n, 2))
    for i, o in enumerate(scene.objects):
        if o.motion.direction is not None:
            dx, dy = vocab.DIRECTIONS[o.motion.direction]
            norm = math.hypot(dx, dy)
            vel[i] = np.array([dx, dy]) / norm * vocab.SPEEDS[o.motion.speed] * k
    base_r = np.array([vocab.SIZES[o.size] * k for o in scene.objects])
    span = max(1, t_max - 1)
    growth = np.ones((n, t_max))
    for i, o in enumerate(scene.objects):
        if o.motion.scale != "none":
            final = vocab.GROW_FACTOR if o.motion.scale == "grow" else vocab.SHRINK_FACTOR
            growth[i] = 1 + (final - 1) * np.arange(t_max) / span
    spin = np.array([2 * math.pi * vocab.ROTATION_TURNS / span if o.motion.rotate else 0.0 for o in scene.objects])

    for e in scene.events:
        if e.type == "appear":
            visible[index[e.object], : e.frame] = False
        elif e.type == "disappear":
            visible[index[e.object], e.frame :] = False
    collisions = [(j, e) for j, e in enumerate(scene.events) if e.type == "collision"]
    event_frames: list[int | None] = [e.frame if e.type != "collision" else None for e in scene.events]

    pan = np.zeros(2)
    if scene.pan != "none":
        pan = np.array(vocab.DIRECTIONS[scene.pan], dtype=np.float64) * vocab.PAN_SPEED * k
    camera = np.arange(t_max)[:, None] * pan[None, :]  # [T, 2]

    for t in range(t_max):
        if t > 0:
            pos = pos + vel
            for i, o in enumerate(scene.objects):
                if o.motion.bounce:  # reflect off the canvas edges (in world coordinates of the frame)
                    r = base_r[i] * growth[i, t]
                    lo, hi = r + camera[t], scene.size - r + camera[t]
                    for axis in (0, 1):
                        if pos[i, axis] < lo[axis]:
                            pos[i, axis] = 2 * lo[axis] - pos[i, axis]
                            vel[i, axis] = abs(vel[i, axis])
                        elif pos[i, axis] > hi[axis]:
                            pos[i, axis] = 2 * hi[axis] - pos[i, axis]
                            vel[i, axis] = -abs(vel[i, axis])
        r_now = base_r * growth[:, t]
        # Collisions: the first frame two visible objects' circles touch.
        for j, e in collisions:
            if event_frames[j] is not None:
                continue
            a, b = index[e.object], index[e.other]
            if visible[a, t] and visible[b, t] and np.hypot(*(pos[a] - pos[b])) <= r_now[a] + r_now[b]:
                event_frames[j] = t
                # Both rebound (velocities reversed) so they do not pass through each other; "stop"
                # stops the object it is about instead.
                vel[b] = -vel[b]
                if e.effect == "stop":
                    vel[a] = 0.0
                else:
                    vel[a] = -vel[a]
                    for tt in range(t, t_max):
                        color[a][tt] = e.color
        x[:, t] = pos[:, 0] - camera[t, 0]
        y[:, t] = pos[:, 1] - camera[t, 1]
        radius[:, t] = r_now
        angle[:, t] = np.array([o.angle for o in scene.objects]) + spin * t
    return Trajectory(x, y, radius, angle, color, visible, camera, event_frames)
