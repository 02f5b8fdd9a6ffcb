"""Tests for the ``anyframe`` command line (``anyframe.cli:main``).

One tiny untrained model folder (16×16 px, 8 frames) is built per module and shared. Most tests call
``main([...])`` in-process; a few run ``python -m anyframe.cli`` for real to prove the end-to-end
exit code and the absence of tracebacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from anyframe import __version__
from anyframe.cli import main

FRAMES, SIZE = 8, 16
JSON_KEYS = {"video", "filmstrip", "frames", "height", "width", "seconds", "seed", "keyframes"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from anyframe.pipelines import build_world_pipeline

    path = tmp_path_factory.mktemp("model") / "anyframe-tiny"
    build_world_pipeline("tiny", seed=0).save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder (the CLI's default output folder is ./outputs), and never
    picks up a model from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANYFRAME_MODEL", raising=False)


@pytest.fixture
def key_png(tmp_path) -> Path:
    path = tmp_path / "k.png"
    arr = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    arr[:, : SIZE // 2] = (220, 30, 30)
    arr[:, SIZE // 2 :] = (30, 30, 220)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def key_png2(tmp_path) -> Path:
    path = tmp_path / "k2.png"
    Image.new("RGB", (SIZE, SIZE), (30, 200, 40)).save(path)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``anyframe ARGS`` in-process → (exit code, stdout, stderr)."""
    capsys.readouterr()  # drop anything printed before
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


def gen(model_dir: Path, *args) -> list[str]:
    return ["generate", "--model", str(model_dir), "--steps", "1", *map(str, args)]


def json_record(out: str) -> dict:
    lines = out.splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {out!r}"
    record = json.loads(lines[0])
    assert isinstance(record, dict)
    assert JSON_KEYS <= record.keys()
    return record


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def all_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# ------------------------------------------------------------------------------------- success


def test_generate_json(capsys, tmp_path, model_dir, key_png):
    out_path = tmp_path / "outputs" / "clip.mp4"
    code, out, err = run(
        capsys,
        "generate", "--model", model_dir, "--prompt", "a red circle moves left", "--image", f"{key_png}@-1",
        "--steps", "2", "--seed", "3", "--out", out_path, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err
    record = json_record(out)
    assert record["video"] == str(out_path)
    assert record["filmstrip"] == str(out_path.with_suffix(".png"))
    assert (record["frames"], record["height"], record["width"]) == (FRAMES, SIZE, SIZE)
    assert record["seed"] == 3
    assert record["keyframes"] == [FRAMES - 1]
    assert isinstance(record["seconds"], float) and record["seconds"] >= 0
    from anyframe.pipelines import resolve_dtype

    assert record["dtype"] == resolve_dtype("auto", "cpu")  # --dtype auto: the weights' dtype is reported

    frames = decode(out_path)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)
    with Image.open(out_path.with_suffix(".png")) as strip:
        assert strip.format == "PNG"
        assert strip.width > FRAMES * SIZE and strip.height > SIZE
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["clip.mp4", "clip.png"]


def test_several_images_and_default_index(capsys, tmp_path, model_dir, key_png, key_png2):
    code, out, err = run(
        capsys, *gen(model_dir, "--prompt", "x", "-i", f"{key_png}@0", "-i", f"{key_png2}@-1",
                     "--seed", "1", "--out", tmp_path / "a.mp4", "--json"),
    )  # fmt: skip
    assert code == 0, err
    assert json_record(out)["keyframes"] == [0, FRAMES - 1]

    code, out, err = run(
        capsys, *gen(model_dir, "--prompt", "x", "--image", key_png, "--image", f"{key_png2}@3",
                     "--seed", "1", "--out", tmp_path / "b.mp4", "--json"),
    )  # fmt: skip
    assert code == 0, err
    assert json_record(out)["keyframes"] == [0, 3]  # no @INDEX: frame 0


def test_same_seed_same_video(capsys, tmp_path, model_dir, key_png):
    videos = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        code, out, err = run(
            capsys, *gen(model_dir, "--prompt", "a blue square", "--image", f"{key_png}@2", "--seed", seed,
                         "--out", tmp_path / f"{name}.mp4", "--json"),
        )  # fmt: skip
        assert code == 0, err
        assert json_record(out)["seed"] == seed
        videos[name] = decode(tmp_path / f"{name}.mp4")
    np.testing.assert_array_equal(videos["a"], videos["b"])
    assert not np.array_equal(videos["a"], videos["c"]), "the seed must matter"


def test_no_seed_reports_a_reproducible_seed(capsys, tmp_path, model_dir):
    code, out, err = run(capsys, *gen(model_dir, "--prompt", "a red circle", "--out", tmp_path / "r.mp4", "--json"))
    assert code == 0, err
    seed = json_record(out)["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31

    code, out, err = run(
        capsys, *gen(model_dir, "--prompt", "a red circle", "--seed", seed, "--out", tmp_path / "r2.mp4", "--json")
    )
    assert code == 0, err
    np.testing.assert_array_equal(decode(tmp_path / "r.mp4"), decode(tmp_path / "r2.mp4"))


def test_default_output_path(capsys, tmp_path, model_dir):
    code, out, err = run(capsys, *gen(model_dir, "--prompt", "A red circle, moves LEFT!", "--seed", "3", "--json"))
    assert code == 0, err
    record = json_record(out)
    assert record["video"] == str(Path("outputs") / "a-red-circle-moves-left-s3.mp4")
    assert (tmp_path / record["video"]).is_file()
    assert (tmp_path / record["filmstrip"]).is_file()


def test_gif_output(capsys, tmp_path, model_dir, key_png):
    out_path = tmp_path / "clip.gif"
    code, out, err = run(
        capsys, *gen(model_dir, "--prompt", "x", "--image", key_png, "--seed", "2", "--out", out_path, "--json")
    )
    assert code == 0, err
    record = json_record(out)
    assert record["video"] == str(out_path)
    with Image.open(out_path) as gif:
        assert gif.format == "GIF"
        assert gif.size == (SIZE, SIZE)
        assert gif.n_frames == FRAMES
    assert out_path.with_suffix(".png").is_file()


def test_empty_prompt_with_image(capsys, tmp_path, model_dir, key_png, key_png2):
    code, out, err = run(
        capsys, *gen(model_dir, "--prompt", "", "--image", f"{key_png}@0", "--image", f"{key_png2}@-1",
                     "--out", tmp_path / "interp.mp4", "--json"),
    )  # fmt: skip
    assert code == 0, err
    assert json_record(out)["keyframes"] == [0, FRAMES - 1]
    assert decode(tmp_path / "interp.mp4").shape == (FRAMES, SIZE, SIZE, 3)


def test_human_readable_output(capsys, tmp_path, model_dir):
    out_path = tmp_path / "h.mp4"
    code, out, err = run(capsys, *gen(model_dir, "--prompt", "x", "--seed", "4", "--out", out_path))
    assert code == 0, err
    assert "wrote" in out and "seed 4" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert out_path.is_file()


# --------------------------------------------------------------------------------- error paths


def _corrupt_png(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return path


def _truncated_png(tmp_path: Path) -> Path:
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _empty_folder(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path / "afile" / "clip.mp4"


def _bad_index_json(tmp_path: Path) -> Path:
    path = tmp_path / "broken-model"
    path.mkdir()
    (path / "model_index.json").write_text("{not json")
    return path


# (id, argv builder (tmp_path, model, image, out) → args, a fragment the one error line must contain)
ERROR_CASES = [
    ("missing-image", lambda t, m, k, o: gen(m, "-p", "x", "-i", t / "nope.png", "-o", o), "nope.png"),
    ("corrupt-image", lambda t, m, k, o: gen(m, "-p", "x", "-i", _corrupt_png(t), "-o", o), "corrupt.png"),
    ("truncated-image", lambda t, m, k, o: gen(m, "-p", "x", "-i", _truncated_png(t), "-o", o), "truncated.png"),
    ("index-too-large", lambda t, m, k, o: gen(m, "-p", "x", "-i", f"{k}@{FRAMES}", "-o", o), "out of range"),
    ("index-too-negative", lambda t, m, k, o: gen(m, "-p", "x", "-i", f"{k}@-{FRAMES + 1}", "-o", o), "out of range"),
    ("same-frame", lambda t, m, k, o: gen(m, "-p", "x", "-i", f"{k}@0", "-i", f"{k}@-{FRAMES}", "-o", o), "same frame"),
    ("unknown-model", lambda t, m, k, o: gen(t / "no-such-model", "-p", "x", "-o", o), "no-such-model"),
    ("no-model-index", lambda t, m, k, o: gen(_empty_folder(t), "-p", "x", "-o", o), "model_index.json"),
    ("corrupt-model-index", lambda t, m, k, o: gen(_bad_index_json(t), "-p", "x", "-o", o), "broken-model"),
    ("empty-prompt", lambda t, m, k, o: gen(m, "-p", "", "-o", o), "--prompt"),
    ("blank-prompt", lambda t, m, k, o: gen(m, "-p", "  \t ", "-o", o), "--prompt"),
    ("no-prompt-option", lambda t, m, k, o: gen(m, "-o", o), "--prompt"),
    ("unknown-option", lambda t, m, k, o: gen(m, "-p", "x", "--frobnicate", "-o", o), "--frobnicate"),
    ("steps-not-int", lambda t, m, k, o: ["generate", "--model", m, "-p", "x", "--steps", "two", "-o", o], "--steps"),
    ("steps-zero", lambda t, m, k, o: ["generate", "--model", m, "-p", "x", "--steps", "0", "-o", o], "--steps"),
    ("bad-guidance-mode", lambda t, m, k, o: gen(m, "-p", "x", "--guidance-mode", "loud", "-o", o), "--guidance-mode"),
    ("bad-renorm", lambda t, m, k, o: gen(m, "-p", "x", "--renorm", "half", "-o", o), "--renorm"),
    ("bad-sampler", lambda t, m, k, o: gen(m, "-p", "x", "--sampler", "ddim", "-o", o), "--sampler"),
    ("bad-suffix", lambda t, m, k, o: gen(m, "-p", "x", "-o", o.with_suffix(".avi")), ".avi"),
    ("out-under-a-file", lambda t, m, k, o: gen(m, "-p", "x", "-o", _under_a_file(t)), "cannot write"),
    ("bad-fps", lambda t, m, k, o: gen(m, "-p", "x", "--fps", "0", "-o", o), "--fps"),
    ("unknown-command", lambda t, m, k, o: ["render", "-p", "x"], "render"),
]


@pytest.mark.parametrize(("build", "fragment"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_paths(capsys, tmp_path, model_dir, key_png, build, fragment):
    outputs = tmp_path / "outputs"
    out_path = outputs / "clip.mp4"
    code, out, err = run(capsys, *build(tmp_path, model_dir, key_png, out_path))
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert fragment in lines[0]
    assert out == ""
    assert not out_path.exists() and not out_path.with_suffix(".png").exists()
    assert all_files(outputs) == []  # neither the --out folder nor the default ./outputs got a file


# ---------------------------------------------------------------------------------- model init


def test_model_init(capsys, tmp_path):
    from anyframe.pipelines import AnyFramePipeline

    target = tmp_path / "models" / "fresh"
    code, out, err = run(capsys, "model", "init", "--size", "tiny", "--out", target)
    assert code == 0, err
    assert "wrote" in out and str(target) in out
    assert (target / "model_index.json").is_file()
    pipe = AnyFramePipeline.from_pretrained(target)
    assert isinstance(pipe, AnyFramePipeline)
    assert (pipe.default_num_frames, pipe.default_height, pipe.default_width) == (FRAMES, SIZE, SIZE)
    assert [p.name for p in target.parent.iterdir()] == ["fresh"]  # no temporary folders left


def test_model_init_existing_needs_force(capsys, tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, _out, err = run(capsys, "model", "init", "--size", "tiny", "--out", target)
    assert code == 2
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "--force" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]  # untouched

    code, _out, err = run(capsys, "model", "init", "--size", "tiny", "--out", target, "--force")
    assert code == 0, err
    assert (target / "model_index.json").is_file() and not (target / "keep.txt").exists()


@pytest.mark.parametrize("method, cls", [("flashi2v", "FlashI2V"), ("channel_concat", "ChannelConcat")])
def test_model_init_with_a_conditioning_method(capsys, tmp_path, method, cls):
    from anyframe.pipelines import AnyFramePipeline

    code, _out, err = run(capsys, "model", "init", "--size", "tiny", "--method", method, "--out", tmp_path / "m")
    assert code == 0, err
    assert type(AnyFramePipeline.from_pretrained(tmp_path / "m").conditioning).__name__ == cls


@pytest.mark.parametrize(
    "args",
    [["--size", "bogus"], ["--size", "tiny", "--shift", "0"], ["--size", "tiny", "--method", "wan"],
     ["--size", "tiny", "--method", "flashi2v", "--clean-timestep"]],
    ids=["size", "shift", "method", "clean-timestep-of-flashi2v"],
)
def test_model_init_bad_options(capsys, tmp_path, args):
    target = tmp_path / "m"
    code, _out, err = run(capsys, "model", "init", *args, "--out", target)
    assert code == 2
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert not target.exists()


# ---------------------------------------------------------------------------------- help, version


def test_version(capsys):
    code, out, _err = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"anyframe {__version__}"


@pytest.mark.parametrize("args", [["--help"], ["generate", "--help"]], ids=["root", "generate"])
def test_help(capsys, args):
    code, out, _err = run(capsys, *args)
    assert code == 0
    assert "Usage: anyframe" in out
    assert "Examples" in out
    assert "--image" in out


def test_generate_help_lists_options(capsys):
    code, out, _ = run(capsys, "generate", "--help")
    assert code == 0
    for option in ("--prompt", "--model", "--steps", "--seed", "--out", "--json", "--guidance-mode"):
        assert option in out


def test_bare_command_shows_help(capsys):
    code, out, _err = run(capsys)
    assert code == 0
    assert "Usage: anyframe" in out and "generate" in out


# ------------------------------------------------------------------------ the real console script


def run_script(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANYFRAME_MODEL"}
    return subprocess.run(
        [sys.executable, "-m", "anyframe.cli", *map(str, args)],
        check=False,  # the tests read the exit code (2 for a refused input) and the output
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda t, m, k: ["generate", "--model", m, "-p", "x", "-i", t / "missing.png", "-o", "outputs/c.mp4"], "missing.png"),
        (lambda t, m, k: ["generate", "--model", m, "-p", "x", "-i", f"{k}@-9", "-o", "outputs/c.mp4"], "out of range"),
        (lambda t, m, k: ["generate", "--model", m, "-p", "x", "--steps", "many", "-o", "outputs/c.mp4"], "--steps"),
    ],
    ids=["missing-image", "index-out-of-range", "non-integer-steps"],
)
def test_console_script_bad_input(tmp_path, model_dir, key_png, build, fragment):
    proc = run_script(tmp_path, *build(tmp_path, model_dir, key_png))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
    assert proc.stdout == ""
    assert all_files(tmp_path / "outputs") == []


def test_index_checked_before_sampling(capsys, tmp_path, model_dir, key_png, monkeypatch):
    from anyframe.pipelines import AnyFramePipeline

    def must_not_sample(self, *args, **kwargs):
        raise AssertionError("sampling started before the frame index was checked")

    monkeypatch.setattr(AnyFramePipeline, "__call__", must_not_sample)
    monkeypatch.setattr(AnyFramePipeline, "generate", must_not_sample)
    code, _out, err = run(capsys, *gen(model_dir, "-p", "x", "-i", f"{key_png}@{FRAMES}", "-o", tmp_path / "c.mp4"))
    assert code == 2
    assert err.startswith("error:") and "out of range" in err


def test_console_script_model_without_weights_is_one_line(tmp_path, model_dir):
    # a subprocess: diffusers' log handler holds the stderr of import time, which capsys does not see
    broken = tmp_path / "no-weights"
    shutil.copytree(model_dir, broken)
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.unlink()
    proc = run_script(tmp_path, "generate", "--model", broken, "-p", "x", "-o", "outputs/c.mp4")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert all_files(tmp_path / "outputs") == []
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error:"), proc.stderr


def test_failed_write_keeps_earlier_outputs(capsys, tmp_path, model_dir, monkeypatch):
    # an earlier video and filmstrip at the same paths survive a failed write, and no half pair appears
    import anyframe.io

    out = tmp_path / "outputs" / "v.mp4"
    out.parent.mkdir()
    out.write_bytes(b"old video")
    out.with_suffix(".png").write_bytes(b"old strip")

    def broken_filmstrip(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(anyframe.io, "write_filmstrip", broken_filmstrip)
    code, _, err = run(capsys, *gen(model_dir, "-p", "a red circle", "-o", out))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "disk full" in errors[0]
    assert out.read_bytes() == b"old video"
    assert out.with_suffix(".png").read_bytes() == b"old strip"
    assert sorted(p.name for p in out.parent.iterdir()) == ["v.mp4", "v.png"]  # no temporaries left


def test_device_option(capsys, tmp_path, model_dir):
    code, out, _ = run(capsys, *gen(model_dir, "-p", "a red circle", "--device", "cpu", "--seed", "1", "--json"))
    assert code == 0 and json_record(out)["seed"] == 1
    code, _, err = run(capsys, *gen(model_dir, "-p", "a red circle", "--device", "tpu"))
    assert code == 2 and err.startswith("error: --device")


# ------------------------------------------------------------------------- words the model does not know


def test_words_outside_the_vocabulary_are_named_in_one_warning(capsys, model_dir):
    code, _out, err = run(capsys, *gen(model_dir, "-p", "a crimson ball moves left", "--json"))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: this model does not know the words 'crimson', 'ball': they are ignored "
                        "(`anyframe model info` lists the words it knows)"]
    code, _, err = run(capsys, *gen(model_dir, "-p", "a red circle moves left", "--json"))
    assert code == 0 and "warning" not in err


def test_the_python_api_warns_too(model_dir):
    from anyframe.pipelines import load_pipeline

    pipe = load_pipeline(model_dir, "float32")
    with pytest.warns(UserWarning, match=r"'zigzags'"):
        pipe(prompt="a red circle zigzags", num_inference_steps=1, seed=0)
    long = " ".join(["a red circle moves left and"] * 40)
    assert any("reads the first" in p for p in pipe.prompt_problems(long))


def test_model_info_lists_the_vocabulary(capsys, model_dir):
    code, out, _ = run(capsys, "model", "info", "--model", model_dir, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["backbone"] == "STIVTransformer" and info["method"] == "frame_replacement"
    assert {"red", "circle", "moves", "left"} <= set(info["vocabulary"]) and "crimson" not in info["vocabulary"]
    assert info["video"]["frames"] >= 1
    code, out, _ = run(capsys, "model", "info", "--model", model_dir)
    assert code == 0 and "vocabulary (" in out and " circle " in out


def test_eval_shows_progress_and_is_quiet_on_request(capsys, tmp_path):
    code, _, err = run(capsys, "eval", "--model", "truth", "--suite", "smoke", "--n", "2", "--out", tmp_path / "r")
    assert code == 0 and "eval" in err and "2/2" in err
    code, _, err = run(capsys, "eval", "--model", "truth", "--suite", "smoke", "--n", "2", "--out", tmp_path / "q",
                       "--quiet")
    assert code == 0 and "2/2" not in err


def test_an_eval_report_defines_its_metrics_and_shows_calibration_and_examples(capsys, tmp_path):
    out = tmp_path / "r"
    code, _, _ = run(capsys, "eval", "--model", "random", "--suite", "smoke", "--n", "3", "--out", out, "--quiet")
    assert code == 0
    report = (out / "report.md").read_text()
    assert "## What the metrics mean" in report and "| presence | each asked-for object is there" in report
    calibration = report.split("## Calibration")[1].split("##")[0]
    assert "| **random** |" in calibration and "| truth |" in calibration and "| random |" not in calibration
    examples = json.loads((out / "report.json").read_text())["examples"]
    assert examples and all((out / "examples" / e["filmstrip"]).is_file() and f"\"{e['prompt']}\"" in report
                            for e in examples)
    code, _, _ = run(capsys, "eval", "--model", "random", "--suite", "smoke", "--n", "3", "--out", tmp_path / "q",
                     "--quiet", "--no-calibration")
    assert code == 0 and "## Calibration" not in (tmp_path / "q" / "report.md").read_text()
