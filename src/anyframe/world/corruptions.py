"""Corrupted clips: the oracle's negative controls.

Each function returns a new clip (uint8 ``[T, H, W, 3]``) that breaks one thing a score measures, so a
test can check that the score falls. Pixel-level corruptions take the frames; semantic ones take the
scene and re-render a modified program (so the result is a clean render of the *wrong* scene). All are
deterministic given ``seed``.

=====================  ================================================  ==================================
corruption             what it does                                      scores it must lower
=====================  ================================================  ==================================
``shuffle_frames``     a random permutation of the frames (not the        identity_persistence,
                       identity)                                          motion_smoothness, motion_direction
``reverse_time``       frames in reverse order                           motion_direction, event
``freeze``             every frame is frame 0                            dynamic_degree, motion_direction
``add_noise``          Gaussian noise (σ = 40 grey levels) on every      temporal_flicker, keyframe_psnr /
                       pixel and frame                                   keyframe_ssim
``mirror``             left–right flip of every frame                    spatial_relation, motion_direction
``jitter``             every frame shifted by a random (dx, dy) in        motion_smoothness
                       [−2k, 2k] px (edge pixels repeated)
``swap_colors``        re-render with the colours of two objects of      color_binding, presence
                       different colours and shapes exchanged
``swap_motions``       re-render with the motions of two objects          motion_direction
                       (one moving, one differently moving or still)
                       exchanged
``drop_object``        re-render without one object                      count, presence
``add_object``         re-render with an extra object                    count
``without_events``     re-render without the scene's events              event
``restyle``            re-render in another style                        style
=====================  ================================================  ==================================
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from anyframe.world import vocab
from anyframe.world.render import render
from anyframe.world.sampling import TRAIN_STYLES, sample_object
from anyframe.world.scene import Scene


def shuffle_frames(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """The frames in a random order that moves at least half of them."""
    t = frames.shape[0]
    rng = np.random.default_rng([seed, 1])
    for _ in range(100):
        perm = rng.permutation(t)
        if (perm != np.arange(t)).mean() >= 0.5:
            break
    return frames[perm].copy()


def reverse_time(frames: np.ndarray) -> np.ndarray:
    return frames[::-1].copy()


def freeze(frames: np.ndarray) -> np.ndarray:
    """Every frame replaced by frame 0."""
    return np.repeat(frames[:1], frames.shape[0], axis=0)


def add_noise(frames: np.ndarray, sigma: float = 40.0, seed: int = 0) -> np.ndarray:
    """Independent Gaussian noise of standard deviation ``sigma`` on every pixel, channel and frame."""
    rng = np.random.default_rng([seed, 2])
    noisy = frames.astype(np.float32) + rng.normal(0.0, sigma, size=frames.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def mirror(frames: np.ndarray) -> np.ndarray:
    """Left–right flip."""
    return frames[:, :, ::-1].copy()


def jitter(frames: np.ndarray, amplitude: float | None = None, seed: int = 0) -> np.ndarray:
    """Each frame translated by a random integer (dx, dy) in [−a, a] px (default a = 2k, k = H / 32), with
    the edge pixels repeated: the whole picture shakes."""
    t, h, w, _ = frames.shape
    a = round(2 * h / vocab.REFERENCE_CANVAS) if amplitude is None else round(amplitude)
    rng = np.random.default_rng([seed, 3])
    out = np.empty_like(frames)
    for i in range(t):
        dx, dy = rng.integers(-a, a + 1, size=2)
        ys = np.clip(np.arange(h) - dy, 0, h - 1)
        xs = np.clip(np.arange(w) - dx, 0, w - 1)
        out[i] = frames[i][ys][:, xs]
    return out


def _pairs(scene: Scene):
    return itertools.combinations(range(len(scene.objects)), 2)


def swap_colors(scene: Scene) -> Scene | None:
    """The scene with the colours of the first two objects that differ in both colour and shape
    exchanged (collision recolours kept); None when no such pair exists."""
    for a, b in _pairs(scene):
        oa, ob = scene.objects[a], scene.objects[b]
        if oa.color != ob.color and oa.shape != ob.shape:
            objects = list(scene.objects)
            objects[a], objects[b] = replace(oa, color=ob.color), replace(ob, color=oa.color)
            return scene.with_objects(objects)
    return None


def swap_motions(scene: Scene) -> Scene | None:
    """The scene with the motions of the first two objects that look different (colour or shape) and move
    in different directions (or one is still) exchanged, events dropped (a collision needs its motions);
    None when no such pair exists."""
    for a, b in _pairs(scene):
        oa, ob = scene.objects[a], scene.objects[b]
        if (oa.color, oa.shape) == (ob.color, ob.shape) or oa.motion.direction == ob.motion.direction:
            continue
        objects = list(scene.objects)
        objects[a], objects[b] = replace(oa, motion=ob.motion), replace(ob, motion=oa.motion)
        return replace(scene, objects=tuple(objects), events=())
    return None


def drop_object(scene: Scene, index: int = -1) -> Scene | None:
    """The scene without object ``index`` (and its events); None for a one-object scene."""
    if len(scene.objects) < 2:
        return None
    gone = scene.objects[index].id
    events = tuple(e for e in scene.events if gone not in (e.object, e.other))
    return replace(scene, objects=tuple(o for o in scene.objects if o.id != gone), events=events)


def add_object(scene: Scene, seed: int = 0) -> Scene | None:
    """The scene with one more object drawn by the sampling rules; None when there is no room."""
    new = sample_object(np.random.default_rng([seed, 4]), scene)
    return None if new is None else scene.with_objects((*scene.objects, new))


def without_events(scene: Scene) -> Scene:
    return replace(scene, events=())


def restyle(scene: Scene) -> Scene:
    """The scene in the next training style (flat → outline → striped → grain → flat; pixelated → flat)."""
    styles = list(TRAIN_STYLES)
    nxt = styles[(styles.index(scene.style) + 1) % len(styles)] if scene.style in styles else "flat"
    return replace(scene, style=nxt)


def rendered(scene: Scene | None) -> np.ndarray | None:
    """Frames of a (corrupted) scene, or None."""
    return None if scene is None else render(scene).frames
