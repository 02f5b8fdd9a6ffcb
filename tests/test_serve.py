"""``anyframe serve`` without a browser: the page's input checks (each bad value is one clear line, shown as a
``gr.Error``), its handler end to end on a tiny model, the tab registry, and the command's refusals (one
``error:`` line, exit 2). The page in a real browser: tests/test_serve_browser.py."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import av
import pytest
from PIL import Image

from anyframe import AnyframeInputError
from anyframe.cli import default_model_dir, main

gr = pytest.importorskip("gradio", reason="the web extra (pip install -e '.[web]') is not installed")
serve = pytest.importorskip("anyframe.serve")

FRAMES, SIZE = 16, 16


@pytest.fixture(scope="module")
def pipe():
    from anyframe.pipelines import build_world_pipeline

    p = build_world_pipeline("tiny", seed=0, sample_size=(FRAMES, SIZE // 2, SIZE // 2))  # (the tiny VAE halves)
    p.set_progress_bar_config(disable=True)
    assert p.default_video_size == (FRAMES, SIZE, SIZE)
    return p


@pytest.fixture
def key(tmp_path) -> Path:
    path = tmp_path / "key.png"
    Image.new("RGB", (SIZE, SIZE), (220, 30, 30)).save(path)
    return path


def request(pipe, slots=(), prompt="a red circle moves left", preset="keyframes", steps=2, guidance=7.5, seed=0):
    return serve.build_request(pipe, prompt, preset, steps, guidance, seed, list(slots))


# ------------------------------------------------------------------------------------------------ presets


def test_task_presets():
    frames = {name: serve.preset_frames(name, FRAMES) for name in serve.TASK_PRESETS}
    assert frames == {"t2v": (), "ti2v": (0,), "interpolation": (0, 15), "prediction": (0, 1, 2, 3),
                      "keyframes": (0, 5, 10, 15)}
    assert serve.preset_frames("interpolation", 1) == (0,)
    assert serve.preset_frames("keyframes", 2) == (0, 1)
    with pytest.raises(AnyframeInputError, match="unknown task preset 'i2i'"):
        serve.preset_frames("i2i", FRAMES)


def test_model_labels_are_unique(tmp_path):
    a, b, c = tmp_path / "x" / "model", tmp_path / "y" / "model", tmp_path / "z" / "other"
    assert serve.model_labels([a, b, c, a]) == {"x/model": a, "y/model": b, "other": c}


# ------------------------------------------------------------------------------------------ good input


def test_image_at_frame_8_and_negative_indices(pipe, key):
    r = request(pipe, [(str(key), 8), (None, 5), ({"path": str(key), "orig_name": "k.png"}, -1)])
    assert [k.frame_index for k in r.keyframes] == [8, 15]  # an empty slot is unused
    assert (r.steps, r.guidance_scale, r.seed) == (2, 7.5, 0)


def test_hidden_slots_are_not_read(pipe, key):
    assert request(pipe, [(str(key), 3)], preset="t2v").keyframes == []
    assert len(request(pipe, [(str(key), 0), (str(key), 15)], preset="ti2v").keyframes) == 1


def test_seed_minus_one_draws_one(pipe):
    assert isinstance(request(pipe, seed=serve.RANDOM_SEED).seed, int)


# ------------------------------------------------------------------------------------------- bad input

BAD = {  # name → (build_request's keyword arguments, given the key image's path; what the error says)
    "frame out of range": (lambda k: dict(slots=[(k, 16)]), r"^Image 1: frame index 16 is out of range for 16 frames \(valid: -16\.\.15\)$"),
    "frame below range": (lambda k: dict(slots=[(None, 0), (k, -17)]), r"^Image 2: frame index -17 is out of range"),
    "frame not whole": (lambda k: dict(slots=[(k, 8.5)]), r"^Image 1's frame must be a whole number, got 8\.5$"),
    "frame empty": (lambda k: dict(slots=[(k, None)]), r"^Image 1's frame is empty or not a finite number"),
    "frame nan": (lambda k: dict(slots=[(k, float("nan"))]), r"^Image 1's frame must be a finite number, got nan$"),
    "same frame twice": (lambda k: dict(slots=[(k, 8), (k, -8)]), r"two keyframes at the same frame: \[8, 8\]"),
    "guidance nan": (lambda k: dict(guidance=float("nan")), r"^Guidance must be a finite number, got nan$"),
    "guidance inf": (lambda k: dict(guidance=float("inf")), r"^Guidance must be a finite number, got inf$"),
    "guidance empty": (lambda k: dict(guidance=None), r"^Guidance is empty or not a finite number: give a number \(the model's: 7\.5\)$"),
    "guidance text": (lambda k: dict(guidance="lots"), r"^Guidance must be a number, got 'lots'$"),
    "steps zero": (lambda k: dict(steps=0), r"^Steps must be in 1\.\.1000, got 0$"),
    "steps not whole": (lambda k: dict(steps=2.5), r"^Steps must be a whole number, got 2\.5$"),
    "steps -inf": (lambda k: dict(steps=float("-inf")), r"^Steps must be a finite number, got -inf$"),
    "seed negative": (lambda k: dict(seed=-2), r"^Seed must be in 0\.\.9223372036854775807, got -2$"),
    "nothing": (lambda k: dict(prompt="  ", preset="t2v"), r"^give a prompt, a keyframe image, or both \(the T2V preset"),
    "unknown preset": (lambda k: dict(preset="edit"), r"unknown task preset 'edit'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_line(pipe, key, case):
    build, pattern = BAD[case]
    with pytest.raises(AnyframeInputError, match=pattern) as info:
        request(pipe, **build(str(key)))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("content", "says"), [(b"not an image", "not an image file anyframe can read"),
                                               (b"", "is an empty file"),
                                               (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "cannot read image k.png")],
                         ids=["text", "empty", "truncated-png"])
def test_a_wrong_image_is_named_by_its_slot_and_file_name(pipe, tmp_path, content, says):
    upload = tmp_path / "gradio" / "0a1b2c" / "upload.png"  # where Gradio keeps an upload: not the user's name
    upload.parent.mkdir(parents=True)
    upload.write_bytes(content)
    with pytest.raises(AnyframeInputError) as info:
        request(pipe, [(None, 0), ({"path": str(upload), "orig_name": "k.png"}, 4)])
    message = str(info.value)
    assert message.startswith("Image 2: ") and says in message, message
    assert str(upload.parent) not in message and "k.png" in message


def test_an_upload_that_is_not_a_file_record(pipe):
    with pytest.raises(AnyframeInputError, match="^Image 1: the upload is not a file"):
        request(pipe, [({"url": "data:image/png;base64,AAAA"}, 0)])


# ------------------------------------------------------------------------------------- the page itself


def _handler(app, name: str):
    """The page's event handler called ``name`` (the Generate tab's is ``run``)."""
    fns = [block_fn for block_fn in app.fns.values() if getattr(block_fn.fn, "__name__", "") == name]
    assert fns, f"no handler {name}"
    return fns[0]


def test_the_generate_handler_writes_the_video_and_says_bad_input_as_gr_error(pipe, key, tmp_path):
    app = serve.build_app(serve.Models({"tiny": pipe}), tmp_path / "clips")
    block_fn = _handler(app, "run")
    values = {component: getattr(component, "value", None) for component in block_fn.inputs}
    by_id = {getattr(c, "elem_id", None): c for c in block_fn.inputs}
    values.update({by_id["prompt"]: "a red circle moves left", by_id["preset"]: "keyframes", by_id["steps"]: 2,
                   by_id["image-1"]: {"path": str(key), "orig_name": "key.png"}, by_id["frame-1"]: 8})
    assert values[by_id["model"]] == "tiny"

    video, strip, mask_strip, text = block_fn.fn(values)
    assert mask_strip is None  # (the Masks box is not ticked)
    assert "keyframes at 8" in text and "seed 0" in text and "2 steps" in text
    with av.open(video) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    with Image.open(strip) as image:
        assert image.format == "PNG" and image.width > FRAMES * SIZE
    assert Path(video).parent.parent == tmp_path / "clips"

    values[by_id["frame-1"]] = 99
    with pytest.raises(gr.Error) as info:
        block_fn.fn(values)
    assert info.value.message == "Image 1: frame index 99 is out of range for 16 frames (valid: -16..15)"
    assert info.value.print_exception is False  # (bad input: no traceback in the server's log either)
    values[by_id["frame-1"]], values[by_id["guidance"]] = 8, float("nan")
    with pytest.raises(gr.Error) as info:
        block_fn.fn(values)
    assert info.value.message == "Guidance must be a finite number, got nan"


def test_the_masks_box_writes_a_jdm_models_masks_and_is_refused_elsewhere(pipe, tmp_path):
    import numpy as np

    from anyframe.conditioning import FrameReplacement, JointMasks, MethodStack
    from anyframe.pipelines import AnyFramePipeline

    stack = MethodStack.of([FrameReplacement(), JointMasks.for_backbone(pipe.transformer)])
    jdm = AnyFramePipeline(**{**pipe.components, "conditioning": stack,
                              "transformer": stack.adapt_backbone(pipe.transformer)})
    app = serve.build_app(serve.Models({"jdm": jdm, "plain": pipe}), tmp_path / "clips")
    block_fn = _handler(app, "run")
    values = {component: getattr(component, "value", None) for component in block_fn.inputs}
    by_id = {getattr(c, "elem_id", None): c for c in block_fn.inputs}
    values.update({by_id["prompt"]: "a red circle moves left", by_id["preset"]: "t2v", by_id["steps"]: 1,
                   by_id["masks"]: True, by_id["model"]: "jdm"})
    video, _, mask_strip, _ = block_fn.fn(values)
    assert mask_strip.endswith(".masks.png") and Path(mask_strip).parent == Path(video).parent
    saved = np.load(Path(mask_strip).with_suffix(".npz"))
    assert saved["masks"].shape == (FRAMES, SIZE, SIZE)
    values[by_id["model"]] = "plain"
    with pytest.raises(gr.Error) as info:
        block_fn.fn(values)
    assert info.value.message == "Masks: this model does not generate masks (a JDM model does)"


def test_the_narrator_box_places_image_1_and_the_page_shows_its_narrative(pipe, key, tmp_path, monkeypatch):
    import anyframe.narrators
    from anyframe.narrators.base import Narrative

    class Scripted:
        name = "scripted"

        def narrate(self, image, prompt, num_frames):
            return Narrative(position=11, descriptions=[f"frame {j}" for j in range(num_frames)], backend="scripted",
                             caption="a red circle moves left quickly")

    monkeypatch.setattr(anyframe.narrators, "narrator_for", lambda name, **_: Scripted())
    app = serve.build_app(serve.Models({"tiny": pipe}), tmp_path / "clips")
    block_fn = _handler(app, "run")
    values = {component: getattr(component, "value", None) for component in block_fn.inputs}
    by_id = {getattr(c, "elem_id", None): c for c in block_fn.inputs}
    values.update({by_id["prompt"]: "a red circle moves left", by_id["preset"]: "keyframes", by_id["steps"]: 1,
                   by_id["image-1"]: {"path": str(key), "orig_name": "key.png"}, by_id["frame-1"]: 2,
                   by_id["narrate"]: True})
    _, _, _, text = block_fn.fn(values)
    assert "keyframes at 11" in text and "Narrator (scripted)**: image 1 is frame 11" in text
    assert "**The whole clip**: a red circle moves left quickly" in text  # shown, not used
    values[by_id["narrator-prompt"]] = True  # the narrator's caption as the prompt
    _, _, _, text = block_fn.fn(values)
    assert "**The whole clip (the prompt)**: a red circle moves left quickly" in text
    values[by_id["narrate"]] = False
    with pytest.raises(gr.Error) as info:
        block_fn.fn(values)
    assert info.value.message == "Narrator's caption: tick Narrator places image 1 too"
    values[by_id["narrate"]], values[by_id["narrator-prompt"]] = True, False
    values[by_id["image-1"]] = None
    with pytest.raises(gr.Error) as info:
        block_fn.fn(values)
    assert info.value.message == "Narrator: give image 1 for the narrator to place"


def test_tabs_come_from_the_registry(pipe, tmp_path):
    def extra(context):
        assert context.models.labels == ["tiny"] and context.model_picker is not None
        gr.Markdown("more to come")

    app = serve.build_app(serve.Models({"tiny": pipe}), tmp_path,
                          tabs=[*serve.TABS, serve.Tab("Extra", extra)])
    labels = [c["props"].get("label") for c in app.config["components"] if c["type"] == "tabitem"]
    assert labels == ["Generate", "Extra"]
    assert [t.name for t in serve.TABS] == ["Generate"]


# ------------------------------------------------------------------------------------------- the command


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return (0 if info.value.code is None else info.value.code), out, err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, pipe) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny"
    pipe.save_pretrained(path)
    return path


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(("args", "says"), [
    (lambda t, m, p: ["--model", t / "missing"], r"--model .*missing: folder not found"),
    (lambda t, m, p: ["--model", t], r"--model .*: not a pipeline folder \(no model_index\.json\)"),
    (lambda t, m, p: ["--model", m, "--models-dir", t / "none"], r"--models-dir .*none: folder not found"),
    (lambda t, m, p: ["--model", m, "--models-dir", t], r"--models-dir .* holds no pipeline folder"),
    (lambda t, m, p: ["--model", m, "--port", "0"], r"--port must be in 1\.\.65535, got 0"),
    (lambda t, m, p: ["--model", m, "--port", "70000"], r"--port must be in 1\.\.65535, got 70000"),
    (lambda t, m, p: ["--model", m, "--port", "http"], r"--port"),
    (lambda t, m, p: ["--model", m, "--host", " "], r"--host is empty"),
    (lambda t, m, p: ["--model", m, "--port", p], r"cannot listen on --host 127\.0\.0\.1 --port \d+: the port is in use"),
    (lambda t, m, p: ["--model", m, "--host", "192.0.2.1"], r"cannot listen on --host 192\.0\.2\.1"),
], ids=["missing-model", "not-a-model", "missing-models-dir", "empty-models-dir", "port-0", "port-70000",
        "port-text", "empty-host", "port-in-use", "foreign-address"])
def test_serve_refuses_bad_arguments(capsys, tmp_path, model_dir, busy_port, monkeypatch, args, says):
    import re

    started = []
    monkeypatch.setattr(serve, "serve", lambda *a, **k: started.append(a))
    code, _out, err = run(capsys, "serve", *args(tmp_path, model_dir, busy_port))
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert re.search(says, err), err
    assert not started


def test_serve_offers_the_given_models_then_the_shipped_one_then_the_folder(capsys, tmp_path, model_dir, monkeypatch):
    for name in ("b", "a"):
        (tmp_path / "dir" / name).mkdir(parents=True)
        (tmp_path / "dir" / name / "model_index.json").write_text("{}")
    (tmp_path / "dir" / "notes").mkdir()
    calls = []
    monkeypatch.setattr(serve, "serve", lambda models, host, port: calls.append((models, host, port)))
    code, _out, err = run(capsys, "serve", "--model", model_dir, "--models-dir", tmp_path / "dir", "--port", "7999")
    assert code == 0, err
    (models, host, port), = calls
    shipped = [default_model_dir().resolve()] if default_model_dir() is not None else []
    assert list(models.choices.values()) == [model_dir.resolve(), *shipped, (tmp_path / "dir" / "a").resolve(),
                                             (tmp_path / "dir" / "b").resolve()]
    assert (host, port) == ("127.0.0.1", 7999)


def test_serve_is_not_imported_by_the_command_line():
    """`anyframe --help` stays fast: the CLI imports gradio (and the page) only inside `serve`."""
    code = ("import sys, anyframe.cli; heavy = {'gradio', 'torch', 'anyframe.serve'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


def test_serve_help(capsys):
    code, out, _err = run(capsys, "serve", "--help")
    assert code == 0
    for option in ("--model", "--models-dir", "--host", "--port"):
        assert option in out
