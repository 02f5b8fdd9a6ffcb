"""Evaluation suites and the `anyframe world` commands."""

import json

import numpy as np
import pytest

from anyframe.cli import main
from anyframe.errors import AnyframeInputError
from anyframe.io import read_video
from anyframe.world import parse, render, semantics
from anyframe.world.scene import Scene
from anyframe.world.suite import (
    BUILTIN_SUITES,
    SCORED_KEYS,
    TASKS,
    builtin_suite,
    cases_where,
    load_suite,
    make_case,
    sample_suite,
    write_suite,
)


def test_builtin_suites_sizes_tasks_and_determinism():
    smoke, standard, ood = (builtin_suite(n) for n in BUILTIN_SUITES)
    assert len(smoke) == 16 and {c.task for c in smoke} == set(TASKS)
    assert len(standard) >= 300 and {c.task for c in standard} == set(TASKS)
    assert all(c.split == "train" for c in standard)
    assert {c.split for c in ood} == {"ood_color_shape", "ood_background", "ood_style", "more_objects"}
    assert [c.to_json() for c in builtin_suite("smoke")] == [c.to_json() for c in smoke]
    assert len({c.id for c in standard + ood + smoke}) == len(standard) + len(ood) + len(smoke)


@pytest.mark.parametrize("task", TASKS)
def test_cases_are_consistent(task):
    for seed in range(12):
        case = make_case(task, seed)
        scene = case.scene_program()
        frames = case.conditions["keyframes"]
        assert case.score == SCORED_KEYS[task]
        assert all(0 <= i < scene.frames for i in frames) and frames == sorted(set(frames))
        if task == "ti2v":
            assert frames == [0]
        elif task == "interpolation":
            assert frames == [0, scene.frames - 1]
        elif task == "prediction":
            assert frames == [0, 1, 2, 3]
        elif task == "keyframes":
            assert len(frames) == 1 and 0 < frames[0] < scene.frames - 1
        if task in ("t2v", "ti2v", "keyframes", "interpolation", "prediction", "masks"):
            assert parse(case.conditions["prompt"]) == semantics(scene)  # the prompt says what is scored
        if task == "unpaired":
            assert frames == [] and 0 <= case.unpaired["image_frame"] < scene.frames
        if task == "edit":
            source = Scene.from_dict(case.edit["source"])
            assert source != scene and case.conditions["prompt"] == case.edit["instruction"]


def test_round_trip_and_bad_suites(tmp_path):
    cases = sample_suite(10, "ood_background", seed=5)
    path = write_suite(cases, tmp_path / "s.jsonl")
    assert [c.to_json() for c in load_suite(path)] == [c.to_json() for c in cases]
    lines = path.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(AnyframeInputError, match="bad.jsonl, line 2"):
        load_suite(bad)
    broken = json.loads(lines[1])
    broken["conditions"]["keyframes"] = [99]
    bad.write_text(json.dumps(broken) + "\n")
    with pytest.raises(AnyframeInputError, match="out of range"):
        load_suite(bad)
    broken["task"] = "dance"
    bad.write_text(json.dumps(broken) + "\n")
    with pytest.raises(AnyframeInputError, match="unknown task"):
        load_suite(bad)
    with pytest.raises(AnyframeInputError, match="not found"):
        load_suite(tmp_path / "missing.jsonl")
    with pytest.raises(AnyframeInputError, match="unknown suite"):
        builtin_suite("giant")


def _run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_world_render_writes_the_ground_truth(tmp_path, capsys):
    code, _out, _ = _run(capsys, "world", "render", "--seed", 3, "--frames", 12, "--out", tmp_path / "w")
    assert code == 0
    folder = tmp_path / "w"
    scene = Scene.from_json((folder / "scene.json").read_text())
    clip = render(scene)
    video = read_video(folder / "video.mp4")
    assert video.shape == (12, 32, 32, 3)
    assert np.abs(video.astype(int) - clip.frames.astype(int)).mean() < 6  # H.264 at crf 12
    masks = np.load(folder / "masks.npz")["masks"]
    assert masks.shape == clip.masks.shape and np.abs(masks / 255 - clip.masks).max() <= 1 / 255 + 1e-6
    captions = json.loads((folder / "captions.json").read_text())
    assert parse(captions["caption"]) == semantics(scene) and len(captions["frame_captions"]) == 12
    assert (folder / "filmstrip.png").is_file() and (folder / "masks.png").is_file()
    from anyframe.io import load_image  # the frames are exact (PNG): keyframe images for `generate --image`

    assert max(p.name for p in (folder / "frames").iterdir()) == "frame_0011.png"
    assert np.array_equal(np.asarray(load_image(folder / "frames" / "frame_0005.png")), clip.frames[5])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    code, _, err = _run(capsys, "world", "render", "--seed", 3, "--out", folder)
    assert code == 2 and "exists" in err
    code, _, err = _run(capsys, "world", "render", "--seed", 3, "--size", 31, "--out", tmp_path / "odd")
    assert code == 2 and "--size" in err and not (tmp_path / "odd").exists()


def test_world_sample_writes_a_suite(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    code, _, _ = _run(capsys, "world", "sample", "--n", 6, "--split", "more_objects", "--task", "ti2v", "--task", "t2v",
                      "--out", out)
    assert code == 0
    cases = load_suite(out)
    assert [c.task for c in cases] == ["ti2v", "t2v"] * 3 and all(c.split == "more_objects" for c in cases)
    assert all(len(c.scene["objects"]) >= 5 for c in cases)
    for args, fragment in [(("--n", 0), "--n"), (("--n", 2, "--split", "mars"), "--split"),
                           (("--n", 2, "--task", "sing"), "--task")]:
        code, _, err = _run(capsys, "world", "sample", *args, "--out", tmp_path / "x.jsonl")
        assert code == 2 and fragment in err and not (tmp_path / "x.jsonl").exists()


def test_cases_where_keeps_the_first_scenes_that_pass():
    cases = cases_where("ti2v", 5, lambda scene: len(scene.objects) == 2, seed=100, prefix="probe")
    assert len(cases) == 5 and all(len(c.scene_program().objects) == 2 for c in cases)
    seeds = [c.seed for c in cases]
    skipped = [s for s in range(100, seeds[-1]) if s not in seeds]
    assert seeds == sorted(seeds) and skipped  # in seed order, and the others were left out
    assert all(len(make_case("ti2v", s).scene_program().objects) != 2 for s in skipped)
    assert cases[0].id == make_case("ti2v", seeds[0], prefix="probe").id
    with pytest.raises(AnyframeInputError, match="only 0 of 2 t2v cases"):
        cases_where("t2v", 2, lambda scene: False)
