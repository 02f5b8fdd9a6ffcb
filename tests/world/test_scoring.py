"""Tests for the shapes-world oracle's scores (anyframe.world.scoring), in both directions:

* every key is ≥ 0.99 on average over ground-truth renders of 50 scenes of every split (PSNR: its cap);
* under each corruption that breaks what a key measures, that key falls clearly (thresholds below, next
  to the values measured when they were set).

Corrupted clips come from anyframe.world.corruptions: pixel-level changes of the true render, or true
renders of a deliberately wrong scene program.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anyframe.errors import AnyframeInputError
from anyframe.world import corruptions as C
from anyframe.world.edits import EDIT_KINDS, make_edit
from anyframe.world.render import render
from anyframe.world.sampling import SPLITS, scene_for_seed
from anyframe.world.scene import Motion, Scene, WorldObject
from anyframe.world.scoring import (
    KEYS,
    PSNR_CAP,
    match_by_shape,
    match_objects,
    motion_per_object,
    motion_windows,
    presence_verdicts,
    read_clip,
    score_clip,
    truth_of,
)

N_TRUTH = 50  # scenes per split
# keys that may not apply to any scene of a split (one-object scenes, no events, nothing moving)
OPTIONAL_KEYS = ("color_binding", "spatial_relation", "event", "dynamic_degree", "dynamic_degree_flow_ratio")


def keyframes_of(frames: np.ndarray) -> dict[int, np.ndarray]:
    return {0: frames[0], frames.shape[0] - 1: frames[-1]}


def mean_of(rows: list[dict], key: str) -> tuple[float, int]:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return (float(np.mean(vals)) if vals else float("nan")), len(vals)


# ------------------------------------------------------------------------------------------ truth


@pytest.fixture(scope="module")
def truth_rows() -> dict[str, list[dict]]:
    out = {}
    for split in SPLITS:
        rows = []
        for seed in range(N_TRUTH):
            scene = scene_for_seed(seed, split)
            rendering = render(scene)
            keyframes = keyframes_of(rendering.frames)
            rows.append(score_clip(rendering.frames, scene, keyframes=keyframes, masks=rendering.masks))
        out[split] = rows
    return out


# Measured (seeds 0–49, 32 px): every key ≥ 0.99 in every split; the lowest means were identity_persistence
# 0.992 (ood_style), color_binding / count 0.993–0.994 (more_objects); presence, motion_direction,
# motion_smoothness, temporal_flicker, mask_iou, keyframe_ssim and (but one ambiguous outlined scene per
# few hundred) style at 1.000.
@pytest.mark.parametrize("split", SPLITS)
def test_every_key_is_near_one_on_true_renders(truth_rows: dict, split: str) -> None:
    rows = truth_rows[split]
    for key in KEYS + ("dynamic_degree_flow_ratio",):
        if key == "edit_accuracy":
            continue  # needs an edit pair: test_edit_accuracy
        value, n = mean_of(rows, key)
        if n == 0 and key in OPTIONAL_KEYS:
            continue  # not applicable to any scene of the split (e.g. no events drawn)
        assert n > 0, (split, key)
        if key == "keyframe_psnr":
            assert value == PSNR_CAP, (split, value)
        else:
            assert value >= 0.99, f"{split}: {key} = {value:.4f} over {n} scenes"


def test_not_applicable_keys_are_none() -> None:
    scene = Scene((WorldObject(0, "circle", "red", "large", 16.0, 16.0),), frames=6).validate()
    scores = score_clip(render(scene).frames, scene)
    for key in ("color_binding", "spatial_relation", "event", "keyframe_psnr", "keyframe_ssim", "mask_iou",
                "edit_accuracy", "dynamic_degree"):  # fmt: skip
        assert scores[key] is None, key
    assert scores["presence"] == 1.0 and scores["style"] == 1.0 and scores["count"] == 1.0


def test_bad_input_is_refused() -> None:
    scene = scene_for_seed(0)
    frames = render(scene).frames
    with pytest.raises(AnyframeInputError):
        score_clip(frames, scene, keys=["presence", "beauty"])
    with pytest.raises(AnyframeInputError):
        score_clip(frames[:-1], scene)
    with pytest.raises(AnyframeInputError):
        score_clip(frames.astype(np.float32), scene)
    with pytest.raises(AnyframeInputError):
        score_clip(frames, scene, keys=["keyframe_psnr"], keyframes={99: frames[0]})


def test_scores_also_hold_at_64_px() -> None:
    rows = []
    for seed in range(6):
        scene = scene_for_seed(seed, "train", size=64)
        rendering = render(scene)
        rows.append(score_clip(rendering.frames, scene, masks=rendering.masks))
    for key in (
        "presence", "color_binding", "count", "motion_direction", "spatial_relation", "identity_persistence",
        "dynamic_degree", "motion_smoothness", "temporal_flicker", "mask_iou", "style",
    ):  # fmt: skip
        value, n = mean_of(rows, key)
        assert n == 0 or value >= 0.99, (key, value)


# ------------------------------------------------------------------------------------------ corruptions


def _moving(scene: Scene) -> bool:
    return any(o.motion.direction is not None for o in scene.objects)


def _seeds(condition, count: int, split: str = "train", start: int = 0) -> list[int]:
    out, seed = [], start
    while len(out) < count:
        if condition(scene_for_seed(seed, split)):
            out.append(seed)
        seed += 1
    return out


FRAME_CORRUPTIONS = {
    "shuffle": C.shuffle_frames,
    "reverse": C.reverse_time,
    "freeze": C.freeze,
    "noise": C.add_noise,
    "mirror": C.mirror,
    "jitter": C.jitter,
    "random": lambda f: np.random.default_rng(7).integers(0, 256, size=f.shape, dtype=np.uint8),
}
SCENE_CORRUPTIONS = {
    "swap_colors": C.swap_colors,
    "swap_motions": C.swap_motions,
    "drop_object": C.drop_object,
    "add_object": C.add_object,
    "without_events": C.without_events,
    "restyle": C.restyle,
}


@pytest.fixture(scope="module")
def corrupted() -> dict[str, tuple[list[dict], list[dict]]]:
    """corruption → (scores of the true clips, scores of the corrupted clips), on scenes where the
    corruption changes something: moving objects (12 scenes), events (8 scenes), or a scene change that
    exists for the scene."""
    moving = _seeds(_moving, 12)
    with_events = _seeds(lambda s: bool(s.events) and _moving(s), 8)
    cache: dict[int, tuple[Scene, np.ndarray, dict]] = {}

    def base(seed: int):
        if seed not in cache:
            scene = scene_for_seed(seed)
            frames = render(scene).frames
            cache[seed] = (scene, frames, score_clip(frames, scene, keyframes=keyframes_of(frames)))
        return cache[seed]

    out = {}
    for name, fn in FRAME_CORRUPTIONS.items():
        seeds = moving + with_events if name == "reverse" else moving
        pairs = []
        for seed in seeds:
            scene, frames, truth = base(seed)
            pairs.append((truth, score_clip(fn(frames), scene, keyframes=keyframes_of(frames))))
        out[name] = ([p[0] for p in pairs], [p[1] for p in pairs])
    for name, fn in SCENE_CORRUPTIONS.items():
        seeds = with_events if name == "without_events" else moving
        pairs = []
        for seed in seeds:
            scene, frames, truth = base(seed)
            wrong = fn(scene)
            if wrong is None:
                continue
            pairs.append((truth, score_clip(render(wrong).frames, scene, keyframes=keyframes_of(frames))))
        out[name] = ([p[0] for p in pairs], [p[1] for p in pairs])
    return out


# (corruption, key, bound on the corrupted mean, measured corrupted mean when the bound was set)
DROPS = [
    ("shuffle", "identity_persistence", 0.6, 0.51),
    ("shuffle", "motion_smoothness", 0.3, 0.04),
    ("shuffle", "motion_direction", 0.6, 0.34),
    ("reverse", "motion_direction", 0.5, 0.22),
    ("reverse", "event", 0.3, 0.0),
    ("reverse", "trajectory_monotone", 0.4, 0.22),
    ("shuffle", "trajectory_monotone", 0.6, 0.35),
    ("freeze", "dynamic_degree", 0.1, 0.0),
    ("freeze", "dynamic_degree_flow_ratio", 0.1, 0.0),
    ("freeze", "motion_direction", 0.5, 0.18),
    ("noise", "temporal_flicker", 0.9, 0.86),
    ("noise", "keyframe_ssim", 0.6, 0.31),
    ("mirror", "spatial_relation", 0.6, 0.31),
    ("mirror", "motion_direction", 0.6, 0.34),
    ("jitter", "motion_smoothness", 0.3, 0.0),
    ("swap_colors", "color_binding", 0.5, 0.29),
    ("swap_colors", "presence", 0.5, 0.29),
    ("swap_motions", "motion_direction", 0.7, 0.45),
    ("drop_object", "count", 0.8, 0.64),
    ("drop_object", "presence", 0.8, 0.64),
    ("add_object", "count", 0.85, 0.71),
    ("without_events", "event", 0.2, 0.0),
    ("restyle", "style", 0.1, 0.0),
    ("random", "presence", 0.2, 0.08),
    ("random", "count", 0.2, 0.04),
    ("random", "motion_direction", 0.3, 0.08),
    ("random", "identity_persistence", 0.5, 0.27),
    ("random", "spatial_relation", 0.6, 0.26),
]


DROP_IDS = [f"{c}-{k}" for c, k, *_ in DROPS]


@pytest.mark.parametrize(("corruption", "key", "bound", "measured"), DROPS, ids=DROP_IDS)
def test_corruption_lowers_its_score(
    corrupted: dict, corruption: str, key: str, bound: float, measured: float
) -> None:
    truth, bad = corrupted[corruption]
    before, _n_before = mean_of(truth, key)
    after, n_after = mean_of(bad, key)
    assert n_after >= 3, (corruption, key, n_after)
    assert before >= 0.95, (corruption, key, before)  # these few scenes' truth (the ≥ 0.99 claim is above)
    assert after <= bound, f"{corruption}: {key} {before:.3f} → {after:.3f} (bound {bound}, was {measured})"


def test_keyframe_fidelity_falls_with_noise_and_shuffling(corrupted: dict) -> None:
    for name in ("noise", "shuffle"):
        truth, bad = corrupted[name]
        assert mean_of(truth, "keyframe_psnr")[0] == PSNR_CAP
        assert mean_of(bad, "keyframe_psnr")[0] < 25.0, name  # measured ≈ 17 (noise), 15 (shuffle)


def test_moving_the_wrong_object_fails_for_those_objects() -> None:
    """swap_motions binds each motion to the other object: both objects' own motion scores collapse."""
    checked = 0
    for seed in _seeds(lambda s: C.swap_motions(s) is not None and len(s.objects) >= 2, 8):
        scene = scene_for_seed(seed)
        wrong = C.swap_motions(scene)
        a, b = [i for i, (o, w) in enumerate(zip(scene.objects, wrong.objects)) if o.motion != w.motion]
        truth = truth_of(scene)
        reading = read_clip(render(wrong).frames)
        per = motion_per_object(truth, reading, match_objects(truth, reading))
        vals = [per[i] for i in (a, b) if i in per]
        if vals:
            checked += 1
            assert np.mean(vals) <= 0.5, (seed, per)
    assert checked >= 4


def test_motion_windows_say_why_a_window_fails() -> None:
    """The verdicts behind motion_direction: the truth passes; played backwards a moving object is off by
    ~180° ("angle"); frozen on its first frame it is "short" (and its angle meaningless); the per-object score is their pass rate."""
    seeds = _seeds(lambda s: len(s.objects) == 1 and s.objects[0].motion.direction is not None
                   and not s.events and s.pan == "none" and not s.objects[0].motion.bounce, 3)
    for seed in seeds:
        scene = scene_for_seed(seed)
        truth = truth_of(scene)
        frames = render(scene).frames
        for clip, expected in ((frames, "pass"), (frames[::-1], "angle"), (np.repeat(frames[:1], len(frames), 0), "short")):
            reading = read_clip(np.ascontiguousarray(clip))
            match = match_objects(truth, reading)
            wins = [w for w in motion_windows(truth, reading, match) if w.counted and w.angle is not None]
            assert len(wins) >= 4, (seed, expected)
            share = np.mean([expected in w.outcome.split("+") for w in wins])
            assert share >= 0.75, (seed, expected, [w.outcome for w in wins])
            if expected == "angle":
                assert np.median([w.angle for w in wins]) > 150
            per = motion_per_object(truth, reading, match)
            counted = [w.passed for w in motion_windows(truth, reading, match) if w.counted]
            assert per[0] == pytest.approx(np.mean(counted))


def test_presence_verdicts_name_what_is_wrong() -> None:
    """The truth is "ok"; a dropped object has "no track"; with colours swapped between two objects of different
    shapes, the shape-first match finds each shape in the wrong colour."""
    def different_shapes(s):
        return len(s.objects) == 2 and s.objects[0].shape != s.objects[1].shape and C.swap_colors(s) is not None

    checked = 0
    for seed in _seeds(different_shapes, 4):
        scene = scene_for_seed(seed)
        truth = truth_of(scene)
        reading = read_clip(render(scene).frames)
        assert set(presence_verdicts(truth, reading, match_objects(truth, reading)).values()) == {"ok"}
        reading = read_clip(render(C.drop_object(scene, 0)).frames)
        assert presence_verdicts(truth, reading, match_objects(truth, reading)).get(0) == "no track"
        reading = read_clip(render(C.swap_colors(scene)).frames)
        verdicts = presence_verdicts(truth, reading, match_by_shape(truth, reading))
        checked += all("colour" in v.split("+") for v in verdicts.values())
    assert checked >= 3


def test_mask_iou() -> None:
    scene = scene_for_seed(5)
    rendering = render(scene)
    assert score_clip(rendering.frames, scene, keys=["mask_iou"], masks=rendering.masks)["mask_iou"] == 1.0
    shuffled = rendering.masks[:, C.shuffle_frames(np.arange(scene.frames), 1)]
    moved = np.roll(rendering.masks, 5, axis=3)
    for bad in (shuffled, moved, np.zeros_like(rendering.masks[:1])):
        value = score_clip(rendering.frames, scene, keys=["mask_iou"], masks=bad)["mask_iou"]
        assert value <= 0.5, value
    # a union mask [T, H, W] (JDM's) is scored against the union of the objects
    union = rendering.masks.max(0)
    assert score_clip(rendering.frames, scene, keys=["mask_iou"], masks=union)["mask_iou"] == 1.0
    for bad in (shuffled.max(0), moved.max(0), np.zeros_like(union)):
        value = score_clip(rendering.frames, scene, keys=["mask_iou"], masks=bad)["mask_iou"]
        assert value <= 0.6, value
    with pytest.raises(AnyframeInputError, match="union"):
        score_clip(rendering.frames, scene, keys=["mask_iou"], masks=union[:, :4])


# ------------------------------------------------------------------------------------------ edits


@pytest.fixture(scope="module")
def edit_scores() -> dict[str, tuple[list[float], list[float]]]:
    """kind → (edit_accuracy of the target's render, of the unedited source's render), 8 pairs per kind."""
    out = {}
    for kind in EDIT_KINDS:
        good, unedited = [], []
        rng = np.random.default_rng(0)
        seed = 0
        while len(good) < 8:
            scene = scene_for_seed(seed)
            seed += 1
            try:
                pair = make_edit(scene, rng, kind)
            except AnyframeInputError:
                continue
            clips = ((render(pair.target).frames, good), (render(pair.source).frames, unedited))
            for frames, out_list in clips:
                scores = score_clip(frames, pair.target, keys=["edit_accuracy"], edit_source=pair.source)
                out_list.append(scores["edit_accuracy"])
        out[kind] = (good, unedited)
    return out


def test_edit_accuracy_is_near_one_for_the_target(edit_scores: dict) -> None:
    # measured over 40 pairs: 0.99; a miss is a clip whose style is ambiguous (a tiny outlined shape) or
    # whose objects overlap most of the time
    pooled = [v for good, _ in edit_scores.values() for v in good]
    assert np.mean(pooled) >= 0.98, {k: np.round(g, 2).tolist() for k, (g, _) in edit_scores.items()}
    for kind, (good, _) in edit_scores.items():
        assert np.mean(good) >= 0.9, (kind, good)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edit_accuracy_falls_when_the_edit_is_missing(edit_scores: dict, kind: str) -> None:
    _, unedited = edit_scores[kind]
    assert np.mean(unedited) <= 0.3, (kind, unedited)  # measured 0.0 for most pairs of every kind


def test_recolouring_the_wrong_object_fails() -> None:
    rng = np.random.default_rng(1)
    scores = []
    for seed in range(40):
        scene = scene_for_seed(seed)
        if len(scene.objects) < 2:
            continue
        try:
            pair = make_edit(scene, rng, "recolor")
        except AnyframeInputError:
            continue
        changed = next(o for o in pair.target.objects if o.color != pair.source.object(o.id).color)
        other = next(o for o in pair.source.objects if o.id != changed.id)
        wrong = pair.source.with_objects(
            replace(o, color=changed.color) if o.id == other.id else o for o in pair.source.objects
        )
        clip = render(wrong).frames
        scored = score_clip(clip, pair.target, keys=["edit_accuracy"], edit_source=pair.source)
        scores.append(scored["edit_accuracy"])
        if len(scores) == 5:
            break
    assert np.mean(scores) <= 0.3, scores


def test_prompt_only_clip_with_objects_elsewhere_keeps_content_scores() -> None:
    """A t2v clip need not place objects where the program does: the same objects with the same motions
    started elsewhere keep presence, colour binding, count, motion and identity."""
    a = WorldObject(0, "circle", "red", "medium", 8.0, 8.0, Motion("right"))
    b = WorldObject(1, "square", "blue", "medium", 24.0, 24.0, Motion("up", "slowly"))
    scene = Scene((a, b), background="gray", frames=12).validate()
    moved = scene.with_objects((replace(a, y=6.0), replace(b, x=20.0, y=26.0)))  # apart all along
    scores = score_clip(render(moved).frames, scene)
    for key in ("presence", "color_binding", "count", "motion_direction", "identity_persistence", "style"):
        assert scores[key] >= 0.99, (key, scores[key])
