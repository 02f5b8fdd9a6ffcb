"""`anyframe narrate`: readable and JSON output, each backend reachable, bad input as one `error:` line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from chat_server import Answer, reply
from PIL import Image

from anyframe.cli import main
from anyframe.world import render
from anyframe.world.scene import Motion, Scene, WorldObject

FAST = Scene((WorldObject(0, "circle", "red", "medium", 4.75, 16.0, Motion("right", "quickly")),), background="gray")
TEXT = "the red circle moves quickly right"


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return (info.value.code or 0), out, err


@pytest.fixture
def frame15(tmp_path):
    path = tmp_path / "f15.png"
    Image.fromarray(render(FAST).frames[15]).save(path)
    return path


def test_readable_output(capsys, frame15):
    code, out, err = run(capsys, "narrate", "--image", frame15, "--prompt", TEXT)
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0] == "position: frame 15 (frames 0–15)"
    assert len(lines) == 18 and lines[1].startswith(" 0  The red circle is on the left")
    assert lines[16].startswith("15* The red circle is on the right")
    assert lines[17].startswith("caption: On a ") and "red circle moves" in lines[17]


def test_json_output(capsys, frame15):
    code, out, _ = run(capsys, "narrate", "--image", frame15, "--prompt", TEXT, "--json", "--frames", "16")
    assert code == 0 and len(out.splitlines()) == 1
    data = json.loads(out)
    assert set(data) == {"position", "descriptions", "caption"} and data["position"] == 15
    assert len(data["descriptions"]) == 16 and "red circle" in data["caption"]
    code, out, _ = run(capsys, "narrate", "--image", frame15, "--prompt", "the green cross moves up", "--json")
    data = json.loads(out)
    assert code == 0 and "does not show the green cross" in data["note"]


def test_the_openai_backend_through_the_cli(capsys, frame15, chat_server, monkeypatch):
    monkeypatch.setenv("NARRATOR_KEY", "sk-cli-secret")
    chat_server.script = [reply('{"position": 2, "descriptions": ["x", "y"]}')]
    code, out, err = run(capsys, "narrate", "--image", frame15, "--prompt", "a cat jumps", "--frames", "4",
                         "--narrator", "openai", "--url", chat_server.url, "--model", "Qwen/Qwen2.5-VL-7B-Instruct",
                         "--key-env", "NARRATOR_KEY", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"position": 2, "descriptions": ["x", "x", "y", "y"]}
    (request,) = chat_server.requests
    assert request["json"]["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert request["headers"]["Authorization"] == "Bearer sk-cli-secret"
    chat_server.script = [Answer(401, {"error": {"message": "bad key"}})]
    code, out, err = run(capsys, "narrate", "--image", frame15, "--prompt", "a cat jumps", "--narrator", "openai",
                         "--url", chat_server.url, "--model", "m", "--key-env", "NARRATOR_KEY")
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith("error: openai narrator (m at ")
    assert "HTTP 401" in err and "sk-cli-secret" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--image", "missing.png", "--prompt", TEXT], "error: image not found: missing.png"),
    (["--prompt", TEXT, "--narrator", "gpt"], "error: --narrator must be one of world, openai, transformers, got 'gpt'"),
    (["--prompt", TEXT, "--frames", "0"], "error: --frames must be in [1, 1024], got 0"),
    (["--prompt", "  "], "error: --prompt is empty"),
    (["--prompt", TEXT, "--narrator", "openai"], "error: --narrator openai needs --url"),
    (["--prompt", TEXT, "--url", "http://x/v1"], "error: --url and --model are for --narrator openai"),
    (["--prompt", TEXT, "--vlm", "models/x"], "error: --vlm is for --narrator transformers"),
    (["--prompt", TEXT, "--narrator", "transformers"], "error: --narrator transformers needs --vlm PATH"),
    (["--prompt", TEXT, "--narrator", "transformers", "--vlm", "no/such/vlm"], "error: VLM folder no/such/vlm: folder not found"),
])  # fmt: skip
def test_bad_input_is_one_error_line(capsys, frame15, args, message):
    if "--image" not in args:
        args = ["--image", str(frame15), *args]
    code, out, err = run(capsys, "narrate", *args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith(message), err


def test_a_real_process_exits_2_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = subprocess.run([sys.executable, "-m", "anyframe.cli", "narrate", "--image", str(bad), "--prompt", TEXT],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot read image") and len(result.stderr.splitlines()) == 1


def test_help_lists_the_command(capsys):
    code, out, _ = run(capsys, "narrate", "--help")
    assert code == 0 and "--narrator" in out and "--key-env" in out and "--vlm" in out
