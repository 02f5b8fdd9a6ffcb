"""Score a clip against a prompt alone: the scene is what :func:`anyframe.world.grammar.parse` reads in it.

    scores = score_prompt(frames, "On a black background, a small red circle moves left.")

A prompt carries no positions and no frame numbers, so only what it states is scored — the keys of
:data:`PROMPT_KEYS`, a subset of :data:`anyframe.world.scoring.KEYS` with the same names and ranges. Use
:func:`anyframe.world.scoring.score_clip` when the scene program is known (it also checks timing,
relations, identity and fidelity against the simulation). The clip is read by the same oracle
(:func:`anyframe.world.scoring.read_clip`); objects are matched to tracks by appearance alone.

Keys (``None`` when the prompt says nothing the key could check)
--------------------------------------------------------------
``presence``
    Hungarian matching of the prompt's objects to substantial tracks (≥ 3 detections) on ``2·(1 − colour
    share) + (1 − shape agreement)`` (colour share: the track's detections in the object's colour — either
    colour for an object the prompt recolours); per object ``1[matched ∧ colour share ≥ 0.5 ∧ the track's
    shape vote is its shape]``, mean over objects.
``color_binding`` (≥ 2 objects)
    the same with the shape first (``(1 − shape agreement) + 0.5·(1 − colour share)``): the track that
    carries an object's shape must carry its colour.
``count``
    ``min(K, N) / max(K, N)``, K substantial tracks, N the prompt's objects.
``motion_direction``
    per matched object, its track's displacement ``D̂`` over its first window of ``w = max(2, T // 4)``
    frames (both ends detected): a still object passes with ``|D̂| ≤ 0.3 k w + 1.5 k``; a moving one with
    ``angle(D̂, v) ≤ 22.5°`` to its stated screen velocity ``v`` (direction × speed, minus the camera pan)
    — or to ``v`` mirrored on an axis for an object that bounces — and ``|D̂| ≥ 0.4 |v| w``.
``event``
    mean over the prompt's events of: ``change_color`` — the object's track is best explained by its
    colour before and the new colour after a change frame inside the track (≤ 25 % of detections
    disagreeing); ``stop`` — the track moves over its first window (``v₀ = |D̂|/w ≥ 0.3 k``) and its speed
    over its last two frames is at most ``0.35 v₀ + 0.15 k`` (collisions come late in a clip);
    ``appear`` — the track starts after frame 2; ``disappear`` — it ends before frame T − 3.
``style``
    ``1[oracle.classify_style(clip) == the prompt's style]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.grammar import ObjectSemantics, SceneSemantics, parse
from anyframe.world.oracle import Track, classify_style
from anyframe.world.scoring import (
    ANGLE_TOLERANCE,
    EVENT_TOLERANCE,
    MIN_TRACK,
    Reading,
    _change_frame,
    read_clip,
)

PROMPT_KEYS: tuple[str, ...] = ("presence", "color_binding", "count", "motion_direction", "event", "style")
MAX_PROMPT_MATCH_COST = 2.0  # above: no match (wrong colour and a poor shape)


def _colours(meaning: SceneSemantics, o: ObjectSemantics) -> set[str]:
    """The colours the prompt lets object ``o`` show (its own, and a new one a collision gives it)."""
    out = {o.color}
    for e in meaning.events:
        if e.type == "collision" and e.effect == "change_color" and e.object == o.ref and e.color:
            out.add(e.color)
    return out


def _colour_share(tr: Track, colours: set[str]) -> float:
    return float(np.mean([c in colours for c in tr.colors])) if len(tr) else 0.0


def _shape_share(tr: Track, shape: str) -> float:
    return float(tr.shape_agreement[vocab.SHAPES.index(shape)])


def _match(meaning: SceneSemantics, tracks: list[Track], shape_first: bool) -> dict[int, int]:
    n, m = len(meaning.objects), len(tracks)
    if not n or not m:
        return {}
    cost = np.zeros((n, m))
    for i, o in enumerate(meaning.objects):
        cols = _colours(meaning, o)
        for j, tr in enumerate(tracks):
            colour, shape = 1 - _colour_share(tr, cols), 1 - _shape_share(tr, o.shape)
            cost[i, j] = shape + 0.5 * colour if shape_first else 2 * colour + shape
    rows, cols_ = linear_sum_assignment(cost)
    return {int(i): int(j) for i, j in zip(rows, cols_) if cost[i, j] <= MAX_PROMPT_MATCH_COST}


def _bound(meaning: SceneSemantics, tracks: list[Track], match: dict[int, int]) -> list[float]:
    out = []
    for i, o in enumerate(meaning.objects):
        j = match.get(i)
        ok = j is not None and tracks[j].shape == o.shape and _colour_share(tracks[j], _colours(meaning, o)) >= 0.5
        out.append(float(ok))
    return out


def _screen_velocity(meaning: SceneSemantics, o: ObjectSemantics, k: float) -> np.ndarray:
    v = np.zeros(2)
    if o.direction is not None:
        d = np.asarray(vocab.DIRECTIONS[o.direction], dtype=np.float64)
        v = d / np.linalg.norm(d) * vocab.SPEEDS[o.speed] * k
    if meaning.pan != "none":
        v = v - np.asarray(vocab.DIRECTIONS[meaning.pan], dtype=np.float64) * vocab.PAN_SPEED * k
    return v


def _window(tr: Track, w: int, last: bool = False) -> np.ndarray | None:
    """The track's displacement over its first (or last) span of w frames with both ends detected."""
    frames = tr.frames.tolist()
    at = {int(t): c for t, c in zip(frames, tr.centroids)}
    starts = sorted(at, reverse=last)
    for t in starts:
        a, b = (t - w, t) if last else (t, t + w)
        if a in at and b in at:
            return np.asarray(at[b]) - np.asarray(at[a])
    return None


def _still(d: np.ndarray, w: int, k: float) -> bool:
    return float(np.linalg.norm(d)) <= 0.3 * k * w + 1.5 * k


def _moves_as(d: np.ndarray, v: np.ndarray, w: int, bounce: bool) -> bool:
    if float(np.linalg.norm(d)) < 0.4 * float(np.linalg.norm(v)) * w:
        return False
    candidates = [v]
    if bounce:
        candidates += [v * np.array([-1, 1]), v * np.array([1, -1]), -v]
    for c in candidates:
        cos = float(np.dot(d, c) / (np.linalg.norm(d) * np.linalg.norm(c) + 1e-12))
        if math.degrees(math.acos(max(-1.0, min(1.0, cos)))) <= ANGLE_TOLERANCE:
            return True
    return False


def _motion(meaning: SceneSemantics, tracks: list[Track], match: dict[int, int], t_len: int, k: float) -> float | None:
    w = max(2, t_len // 4)
    vals = []
    for i, o in enumerate(meaning.objects):
        j = match.get(i)
        if j is None:
            vals.append(0.0)
            continue
        d = _window(tracks[j], w)
        if d is None:
            continue  # too short a track to tell
        v = _screen_velocity(meaning, o, k)
        still = float(np.linalg.norm(v)) <= 0.3 * k
        vals.append(float(_still(d, w, k) if still else _moves_as(d, v, w, o.bounce)))
    return float(np.mean(vals)) if vals else None


def _event(meaning: SceneSemantics, tracks: list[Track], match: dict[int, int], t_len: int, k: float) -> float | None:
    if not meaning.events:
        return None
    index = {o.ref: i for i, o in enumerate(meaning.objects)}
    w = max(2, t_len // 4)
    tol = EVENT_TOLERANCE
    vals = []
    for e in meaning.events:
        i = index.get(e.object)
        j = match.get(i) if i is not None else None
        if j is None:
            vals.append(0.0)
            continue
        tr = tracks[j]
        if e.type == "collision" and e.effect == "change_color":
            cols = np.array(tr.colors)
            tau, errors = _change_frame(cols != meaning.objects[i].color, cols != e.color)
            vals.append(float(0 < tau < len(cols) and errors <= 0.25 * len(cols)))
        elif e.type == "collision":  # stop: moving at first, (almost) still over the last two frames
            first, last = _window(tr, w), _window(tr, 2, last=True)
            ok = first is not None and last is not None
            if ok:
                v0, v1 = float(np.linalg.norm(first)) / w, float(np.linalg.norm(last)) / 2
                ok = v0 >= 0.3 * k and v1 <= 0.35 * v0 + 0.15 * k
            vals.append(float(ok))
        elif e.type == "appear":
            vals.append(float(tr.frames[0] > tol))
        else:
            vals.append(float(tr.frames[-1] < t_len - 1 - tol))
    return float(np.mean(vals))


def score_prompt(
    frames: np.ndarray, prompt: str | SceneSemantics, keys: Sequence[str] | None = None, reading: Reading | None = None
) -> dict[str, float | None]:
    """Score ``frames`` (uint8 [T, H, W, 3]) against what ``prompt`` states (module docstring).

    ``prompt``: a caption in the world's grammar (or its parsed :class:`SceneSemantics`); a word the
    grammar does not know raises :class:`AnyframeInputError`. ``keys``: some of :data:`PROMPT_KEYS`
    (default all)."""
    frames = np.asarray(frames)
    want = list(PROMPT_KEYS) if keys is None else list(keys)
    unknown = [key for key in want if key not in PROMPT_KEYS]
    if unknown:
        raise AnyframeInputError(f"a prompt alone cannot score {unknown}; it scores {PROMPT_KEYS}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] != frames.shape[2] or frames.dtype != np.uint8:
        raise AnyframeInputError(f"clip must be uint8 [T, H, H, 3], got {frames.dtype} {frames.shape}")
    meaning = parse(prompt) if isinstance(prompt, str) else prompt
    reading = read_clip(frames) if reading is None else reading
    tracks = [tr for tr in reading.tracks if len(tr) >= MIN_TRACK]
    t_len, k = frames.shape[0], reading.k
    out: dict[str, float | None] = {}
    for key in want:
        if key == "presence":
            vals = _bound(meaning, tracks, _match(meaning, tracks, shape_first=False))
            out[key] = float(np.mean(vals)) if vals else None
        elif key == "color_binding":
            many = len(meaning.objects) >= 2
            out[key] = float(np.mean(_bound(meaning, tracks, _match(meaning, tracks, shape_first=True)))) if many else None
        elif key == "count":
            n, m = len(meaning.objects), len(tracks)
            out[key] = 1.0 if n == m else min(n, m) / max(n, m)
        elif key == "motion_direction":
            out[key] = _motion(meaning, tracks, _match(meaning, tracks, shape_first=False), t_len, k)
        elif key == "event":
            out[key] = _event(meaning, tracks, _match(meaning, tracks, shape_first=False), t_len, k)
        elif key == "style":
            out[key] = float(classify_style(frames, reading.detections, reading.pixels) == meaning.style)
    return out
