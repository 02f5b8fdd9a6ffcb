"""Edit pairs: the target differs from the source exactly as the instruction says, and validly."""

import math
import re
from collections import Counter

import numpy as np
import pytest

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.edits import EDIT_KINDS, EditPair, instruction_vocabulary, make_edit
from anyframe.world.sampling import TRAIN_COLOR_SHAPES, TRAIN_STYLES, scene_for_seed
from anyframe.world.scene import Motion, Scene, WorldObject, simulate

SOURCES = [scene_for_seed(i, "train") for i in range(150)]
_NAME = r"the (?:(?P<size>small|medium|large) )?(?P<color>\w+) (?P<shape>\w+)"


@pytest.fixture(scope="module")
def pairs() -> dict[str, list[EditPair]]:
    """Every applicable edit of every kind on the source scenes."""
    out: dict[str, list[EditPair]] = {k: [] for k in EDIT_KINDS}
    rng = np.random.default_rng(0)
    for scene in SOURCES:
        for kind in EDIT_KINDS:
            try:
                out[kind].append(make_edit(scene, rng, kind))
            except AnyframeInputError:
                pass
    return out


def _resolve(scene: Scene, match: re.Match) -> WorldObject:
    """The one object a reference names; fails when it names none or several."""
    hits = [
        o
        for o in scene.objects
        if o.color == match["color"] and o.shape == match["shape"] and match["size"] in (None, o.size)
    ]
    assert len(hits) == 1, (match.group(0), scene.to_json())
    return hits[0]


def _object_dicts(scene: Scene) -> dict[int, dict]:
    return {o["id"]: o for o in scene.to_dict()["objects"]}


def _same_except(source: Scene, target: Scene, *keys: str) -> None:
    """Every top-level field but ``keys`` is equal."""
    a, b = source.to_dict(), target.to_dict()
    for key in a.keys() - set(keys):
        assert a[key] == b[key], key


def _flatten(obj: dict) -> dict:
    """An object dict with its motion fields as "motion.<field>" keys."""
    out = {k: v for k, v in obj.items() if k != "motion"}
    out.update({f"motion.{k}": v for k, v in obj["motion"].items()})
    return out


def _only_object_fields_changed(pair: EditPair, allowed: dict[str, object]) -> None:
    """The edited object differs exactly in ``allowed`` (field → new value); all else is equal."""
    _same_except(pair.source, pair.target, "objects")
    src, tgt = _object_dicts(pair.source), _object_dicts(pair.target)
    assert list(src) == list(tgt)
    for oid in src:
        if oid != pair.object_id:
            assert src[oid] == tgt[oid]
    a, b = src[pair.object_id], tgt[pair.object_id]
    flat_a, flat_b = _flatten(a), _flatten(b)
    changed = {k for k in flat_a if flat_a[k] != flat_b[k]}
    assert changed == {k for k, v in allowed.items() if flat_a[k] != v}
    for key, value in allowed.items():
        assert flat_b[key] == value


def _inside(scene: Scene, object_id: int) -> bool:
    traj = simulate(scene)
    i = next(n for n, o in enumerate(scene.objects) if o.id == object_id)
    r = traj.radius[i]
    lo = min((traj.x[i] - r).min(), (traj.y[i] - r).min())
    hi = max((traj.x[i] + r).max(), (traj.y[i] + r).max())
    return lo >= -1e-6 and hi <= scene.size + 1e-6


def _in_collision(scene: Scene, object_id: int) -> bool:
    return any(e.type == "collision" and object_id in (e.object, e.other) for e in scene.events)


# ------------------------------------------------------------------------------------ per kind


def test_every_kind_applies_often(pairs):
    counts = {k: len(v) for k, v in pairs.items()}
    assert counts["change_style"] == len(SOURCES)
    assert counts["recolor"] > 0.9 * len(SOURCES)
    assert counts["change_motion"] > 0.8 * len(SOURCES)
    assert counts["add"] == sum(len(s.objects) < vocab.MAX_OBJECTS for s in SOURCES)
    assert counts["remove"] > 0.5 * len(SOURCES)


def test_recolor_changes_only_that_colour(pairs):
    for pair in pairs["recolor"]:
        m = re.fullmatch(f"make {_NAME} (?P<new>\\w+)", pair.instruction)
        assert m, pair.instruction
        obj = _resolve(pair.source, m)
        assert obj.id == pair.object_id and m["new"] != obj.color
        _only_object_fields_changed(pair, {"color": m["new"]})
        assert (m["new"], obj.shape) in TRAIN_COLOR_SHAPES
        # the change stays visible: never the colour a collision turns the object to
        assert all(e.color != m["new"] for e in pair.source.events if e.object == obj.id)


def test_remove_drops_only_that_object_and_its_own_events(pairs):
    dropped = 0
    for pair in pairs["remove"]:
        m = re.fullmatch(f"remove {_NAME}", pair.instruction)
        assert m, pair.instruction
        obj = _resolve(pair.source, m)
        assert obj.id == pair.object_id and not _in_collision(pair.source, obj.id)
        _same_except(pair.source, pair.target, "objects", "events")
        src = pair.source.to_dict()
        tgt = pair.target.to_dict()
        assert list(tgt["objects"]) == [o for o in src["objects"] if o["id"] != obj.id]
        assert list(tgt["events"]) == [e for e in src["events"] if e["object"] != obj.id]
        dropped += len(tgt["events"]) < len(src["events"])
    assert dropped > 0  # an object's own appear / disappear event goes with it


def _motion_words(motion: Motion) -> str:
    if motion.direction is None:
        words = ["staying still"]
    else:
        speed = "" if motion.speed == "normal" else motion.speed + " "
        words = [f"moving {speed}{motion.direction}"] + (["bouncing off the edges"] if motion.bounce else [])
    words += {"grow": ["growing"], "shrink": ["shrinking"], "none": []}[motion.scale]
    words += ["rotating"] if motion.rotate else []
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def test_add_appends_one_object_described_in_full(pairs):
    for pair in pairs["add"]:
        _same_except(pair.source, pair.target, "objects")
        src, tgt = pair.source.to_dict()["objects"], pair.target.to_dict()["objects"]
        assert list(tgt[:-1]) == list(src) and len(tgt) <= vocab.MAX_OBJECTS
        new = pair.target.objects[-1]
        assert new.id == pair.object_id == max(o.id for o in pair.source.objects) + 1
        assert pair.instruction == f"add a {new.size} {new.color} {new.shape} {_motion_words(new.motion)}"
        assert (new.color, new.shape) in TRAIN_COLOR_SHAPES
        assert not (new.shape == "circle" and new.motion.rotate)
        # follows the placement rules: no overlap at frame 0, inside when it does not bounce
        for o in pair.source.objects:
            assert math.hypot(o.x - new.x, o.y - new.y) > vocab.SIZES[o.size] + vocab.SIZES[new.size]
        assert new.motion.bounce or _inside(pair.target, new.id)
    assert any("moving" in p.instruction for p in pairs["add"])
    assert any("staying still" in p.instruction for p in pairs["add"])


def test_change_motion_changes_only_direction_and_named_speed(pairs):
    kinds = Counter()
    for pair in pairs["change_motion"]:
        change = r"(?:(?P<still>stay still)|move (?:(?P<speed>slowly|quickly) )?(?P<dir>[\w-]+))"
        m = re.fullmatch(f"make {_NAME} {change}", pair.instruction)
        assert m, pair.instruction
        obj = _resolve(pair.source, m)
        assert obj.id == pair.object_id and not _in_collision(pair.source, obj.id)
        if m["still"]:
            assert obj.motion.direction is not None
            expected = {"motion.direction": None}
            if obj.motion.bounce:
                expected["motion.bounce"] = False  # a still object cannot bounce
            _only_object_fields_changed(pair, expected)
            kinds["still"] += 1
        else:
            assert m["dir"] in vocab.DIRECTIONS and m["dir"] != obj.motion.direction
            allowed = {"motion.direction": m["dir"]}
            if m["speed"]:
                assert m["speed"] != obj.motion.speed
                allowed["motion.speed"] = m["speed"]
            _only_object_fields_changed(pair, allowed)
            kinds["move"] += 1
        moved = pair.target.object(obj.id)
        assert moved.motion.bounce or _inside(pair.target, obj.id)
    assert kinds["still"] > 0 and kinds["move"] > 0


def test_change_style_changes_only_the_style(pairs):
    for pair in pairs["change_style"]:
        m = re.fullmatch(r"(?:make it (?P<a>\w+) style|render it in a (?P<b>\w+) style)", pair.instruction)
        assert m, pair.instruction
        style = m["a"] or m["b"]
        assert style in TRAIN_STYLES and style != pair.source.style
        _same_except(pair.source, pair.target, "style")
        assert pair.target.style == style and pair.object_id is None


def test_targets_validate_and_round_trip(pairs):
    for pair in (p for ps in pairs.values() for p in ps):
        pair.target.validate()
        assert Scene.from_json(pair.target.to_json()) == pair.target
        assert pair.target != pair.source


def test_instructions_use_only_the_vocabulary(pairs):
    words = set(instruction_vocabulary())
    used = set()
    for pair in (p for ps in pairs.values() for p in ps):
        used |= set(pair.instruction.replace(",", "").split())
    assert used <= words, used - words
    assert {"make", "remove", "add", "still"} <= used


# ------------------------------------------------------------------------------------ references


def _obj(i: int, shape: str, color: str, size: str, x: float, motion: Motion | None = None) -> WorldObject:
    return WorldObject(i, shape, color, size, x, 16.0, motion or Motion())


def test_twins_are_never_edited_and_sizes_disambiguate():
    twins = Scene(
        objects=(
            _obj(0, "circle", "red", "small", 6.0),
            _obj(1, "circle", "red", "small", 16.0),
            _obj(2, "square", "blue", "medium", 26.0),
        )
    )
    for seed in range(30):
        for kind in ("recolor", "remove", "change_motion"):
            pair = make_edit(twins, np.random.default_rng(seed), kind)
            assert pair.object_id == 2 and "the blue square" in pair.instruction
    sized = Scene(objects=(_obj(0, "circle", "red", "small", 6.0), _obj(1, "circle", "red", "large", 20.0)))
    texts = {make_edit(sized, np.random.default_rng(s), "recolor").instruction.split()[2] for s in range(30)}
    assert texts == {"small", "large"}


def test_no_applicable_edit_is_an_input_error():
    only_twins = Scene(
        objects=(_obj(0, "circle", "red", "small", 6.0), _obj(1, "circle", "red", "small", 20.0))
    )
    for kind in ("recolor", "remove", "change_motion"):
        with pytest.raises(AnyframeInputError):
            make_edit(only_twins, np.random.default_rng(0), kind)
    with pytest.raises(AnyframeInputError):
        lonely = Scene(objects=(_obj(0, "circle", "red", "small", 16.0),))
        make_edit(lonely, np.random.default_rng(0), "remove")
    full = scene_for_seed(next(i for i in range(100) if len(scene_for_seed(i).objects) == 4))
    with pytest.raises(AnyframeInputError):
        make_edit(full, np.random.default_rng(0), "add")
    with pytest.raises(AnyframeInputError):
        make_edit(full, np.random.default_rng(0), "nonsense")


def test_collision_objects_are_neither_removed_nor_redirected():
    sampled = (scene_for_seed(i) for i in range(400))
    scenes = [s for s in sampled if any(e.type == "collision" for e in s.events)]
    rng = np.random.default_rng(2)
    for scene in scenes[:60]:
        for kind in ("remove", "change_motion"):
            try:
                pair = make_edit(scene, rng, kind)
            except AnyframeInputError:
                continue
            assert not _in_collision(scene, pair.object_id)
            assert simulate(pair.target).event_frames[0] == simulate(scene).event_frames[0]


# ------------------------------------------------------------------------------------ determinism


def test_make_edit_is_deterministic_and_random_kind_covers_all():
    def run(seed: int) -> list[tuple[str, str]]:
        rng = np.random.default_rng(seed)
        return [(p.instruction, p.target.to_json()) for p in (make_edit(s, rng) for s in SOURCES[:60])]

    assert run(4) == run(4)
    assert run(4) != run(5)
    rng = np.random.default_rng(6)
    assert {make_edit(s, rng).kind for s in SOURCES} == set(EDIT_KINDS)
