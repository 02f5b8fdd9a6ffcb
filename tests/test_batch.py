"""``anyframe generate --batch``: one output per line, a bad line reported and skipped, a re-run skips finished
lines, the Python API, and the share of each of several processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from PIL import Image

from anyframe.cli import main
from anyframe.pipelines import GenerationRequest, build_world_pipeline, load_pipeline
from anyframe.pipelines.batch import BatchItem, generate_batch, read_batch


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_world_pipeline("tiny", seed=0).save_pretrained(path)
    return path


@pytest.fixture
def batch_file(tmp_path) -> Path:
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "red.png")
    lines = [
        {"id": "left", "prompt": "a red circle moves left", "seed": 0},
        {"prompt": "", "keyframes": ["red.png@0", {"image": "red.png", "frame_index": -1}], "seed": 1},
        {"id": "missing", "prompt": "x", "keyframes": ["nowhere.png@0"]},
        {"id": "typo", "prompt": "x", "stepz": 3},
        {"id": "far", "prompt": "x", "keyframes": ["red.png@99"]},
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_batch_writes_each_line_and_reports_the_bad_ones(capsys, tmp_path, model_dir, batch_file):
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "generate", "--model", model_dir, "--batch", batch_file, "--out", out, "--steps", "1")
    assert code == 1  # some lines failed; the others are written
    assert sorted(p.name for p in out.iterdir()) == ["left.json", "left.mp4", "left.png",
                                                     "line-2.json", "line-2.mp4", "line-2.png"]
    assert _frames(out / "left.mp4") == json.loads((out / "left.json").read_text())["frames"]
    record = json.loads((out / "line-2.json").read_text())
    assert record["keyframes"] == [0, record["frames"] - 1]  # "@-1": the last frame
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3
    assert any("missing" in f and "nowhere.png" in f for f in failed)
    assert any("typo" in f and "'stepz'" in f for f in failed)
    assert any("far" in f and "99" in f for f in failed)
    assert "Traceback" not in err and "2 written" in stdout

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, stdout, _ = _run(capsys, "generate", "--model", model_dir, "--batch", batch_file, "--out", out, "--steps", "1",
                           "--json")
    assert code == 1
    record = json.loads(stdout)
    assert record["written"] == [] and record["already_there"] == ["left", "line-2"] and len(record["failed"]) == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing rewritten


def test_the_same_seed_gives_the_same_clip_as_a_single_generate(capsys, tmp_path, model_dir, batch_file):
    out = tmp_path / "out"
    _run(capsys, "generate", "--model", model_dir, "--batch", batch_file, "--out", out, "--steps", "1")
    _run(capsys, "generate", "--model", model_dir, "-p", "a red circle moves left", "--seed", "0", "--steps", "1",
         "--out", tmp_path / "single.mp4")
    assert (out / "left.mp4").read_bytes() == (tmp_path / "single.mp4").read_bytes()


@pytest.mark.parametrize("args, fragment", [
    (["-p", "x"], "drop --prompt"),
    ([], "--out DIR"),
    (["--out", "clip.mp4"], "--out DIR"),
])
def test_batch_flags_that_do_not_fit(capsys, tmp_path, model_dir, batch_file, args, fragment):
    code, _, err = _run(capsys, "generate", "--model", model_dir, "--batch", batch_file, *args)
    assert code == 2 and fragment in err


def test_an_unreadable_batch_file_is_one_error(capsys, tmp_path, model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe{")
    code, _, err = _run(capsys, "generate", "--model", model_dir, "--batch", bad, "--out", tmp_path / "o")
    assert code == 2 and "line 1" in err and not (tmp_path / "o").exists()


def test_the_python_api_and_the_shares_of_two_processes(tmp_path, model_dir, batch_file):
    pipe = load_pipeline(model_dir, "float32")
    pipe.set_progress_bar_config(disable=True)
    requests = [GenerationRequest(prompt=f"a red circle moves {d}", seed=i, steps=1) for i, d in enumerate(["left", "up", "down"])]
    result = generate_batch(pipe, requests, tmp_path / "api")
    assert result.done == ["request-1", "request-2", "request-3"] and not result.failed
    items = read_batch(batch_file)
    assert all(isinstance(it, BatchItem) for it in items) and [it.id for it in items][:2] == ["left", "line-2"]
    first = generate_batch(pipe, items, tmp_path / "shared", rank=0, world=2)
    second = generate_batch(pipe, items, tmp_path / "shared", rank=1, world=2)
    ids = lambda r: set(r.done) | set(r.failed)
    assert ids(first).isdisjoint(ids(second)) and ids(first) | ids(second) == {it.id for it in items}


@pytest.mark.slow  # two processes each import torch: ~20 s
def test_two_processes_under_torchrun_split_a_batch(tmp_path, model_dir):
    lines = [{"id": f"c{i}", "prompt": "a red circle moves left", "seed": i, "steps": 1} for i in range(4)]
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
           "-m", "anyframe.cli", "generate", "--model", str(model_dir), "--batch", str(batch), "--out", str(out), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    written = [set(r["written"]) for r in records]
    assert len(written) == 2 and written[0].isdisjoint(written[1]) and written[0] | written[1] == {"c0", "c1", "c2", "c3"}
    assert sorted(p.stem for p in out.glob("*.mp4")) == ["c0", "c1", "c2", "c3"]
    assert all(_frames(p) == json.loads(p.with_suffix(".json").read_text())["frames"] for p in out.glob("*.mp4"))


def test_a_line_image_without_its_index_is_placed_by_the_narrator(capsys, tmp_path, model_dir):
    from anyframe.world.render import render
    from anyframe.world.suite import sample_suite

    case = sample_suite(1, "train", seed=3, tasks=("ti2v",), prefix="b")[0]
    clip = render(case.scene_program()).frames
    Image.fromarray(clip[5]).save(tmp_path / "mid.png")
    prompt = case.conditions["prompt"]
    lines = [{"id": "placed", "prompt": prompt, "keyframes": ["mid.png"], "seed": 0},
             {"id": "fixed", "prompt": prompt, "keyframes": ["mid.png@0"], "seed": 0}]
    batch = tmp_path / "unplaced.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))

    out = tmp_path / "narrated"
    code, _, err = _run(capsys, "generate", "--model", model_dir, "--batch", batch, "--out", out, "--steps", "1",
                        "--narrator", "world", "--narrator-prompt")
    assert code == 0, err
    placed, fixed = (json.loads((out / f"{key}.json").read_text()) for key in ("placed", "fixed"))
    narrator = placed["narrator"]
    assert narrator["backend"] == "world" and placed["keyframes"] == [narrator["position"]]
    assert narrator["caption"] and placed["prompt"] == narrator["caption"]  # the narrator's caption is the prompt
    assert "narrator" not in fixed and fixed["keyframes"] == [0] and fixed["prompt"] == prompt  # an index given stays

    plain = tmp_path / "plain"  # no narrator: the image goes to frame 0, as with generate --image PATH
    code, _, _ = _run(capsys, "generate", "--model", model_dir, "--batch", batch, "--out", plain, "--steps", "1",
                      "--narrator", "none")
    record = json.loads((plain / "placed.json").read_text())
    assert code == 0 and record["keyframes"] == [0] and "narrator" not in record and record["prompt"] == prompt

    code, _, err = _run(capsys, "generate", "--model", model_dir, "--batch", batch, "--out", tmp_path / "x",
                        "--narrator", "none", "--narrator-prompt")
    assert code == 2 and "--narrator-prompt needs" in err and not (tmp_path / "x").exists()
