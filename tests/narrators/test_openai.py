"""The openai narrator against a scripted local chat endpoint (conftest.ChatServer): good and bad replies, slow and
failing servers, what the request carries, and one-line errors that never show the key."""

from __future__ import annotations

import base64
import io
import json
import socket

import numpy as np
import pytest
from chat_server import Answer, reply
from PIL import Image

from anyframe.errors import AnyframeInputError
from anyframe.narrators import NarrationError
from anyframe.narrators.openai import OpenAINarrator
from anyframe.narrators.prompt import SYSTEM_PROMPT

FRAMES = 4
GOOD = json.dumps({"position": 3, "descriptions": ["a", "b", "c", "d"]})
IMAGE = np.zeros((8, 12, 3), np.uint8)
IMAGE[2:5, 3:9] = (200, 40, 30)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def narrator(server, **kwargs) -> OpenAINarrator:
    return OpenAINarrator(server.url, "Qwen/Qwen2.5-VL-7B-Instruct", **{"backoff": 0.0, "timeout": 5.0, **kwargs})


def test_a_good_reply_and_what_the_request_carries(chat_server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    chat_server.script = [reply(GOOD)]
    n = narrator(chat_server, api_key_env="MY_KEY").narrate(IMAGE, "a red bar slides right", FRAMES)
    assert (n.position, n.descriptions, n.backend, n.raw) == (3, ["a", "b", "c", "d"], "openai", GOOD)
    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    body = request["json"]
    assert body["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and body["temperature"] == 0.0
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    image_part, text_part = user["content"]
    url = image_part["image_url"]["url"]
    assert image_part["type"] == "image_url" and url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(decoded, IMAGE)  # the image, losslessly
    assert text_part["type"] == "text" and "a red bar slides right" in text_part["text"] and "T = 4" in text_part["text"]


def test_no_key_no_authorization_header(chat_server):
    chat_server.script = [reply(GOOD)]
    narrator(chat_server).narrate(IMAGE, "x", FRAMES)
    assert "Authorization" not in chat_server.requests[0]["headers"]


@pytest.mark.parametrize("content", [
    "```json\n" + GOOD + "\n```",
    "Here is my answer.\n\n" + GOOD + "\n\nThe image is the last frame because the bar has arrived.",
    [{"type": "text", "text": GOOD}],  # content given as parts
])  # fmt: skip
def test_fenced_prose_and_part_replies(chat_server, content):
    chat_server.script = [Answer(body={"choices": [{"message": {"role": "assistant", "content": content}}]})]
    assert narrator(chat_server).narrate(IMAGE, "x", FRAMES).position == 3


def test_fewer_descriptions_are_expanded(chat_server):
    chat_server.script = [reply('{"position": 0, "descriptions": ["still", "moving"]}')]
    n = narrator(chat_server).narrate(IMAGE, "x", FRAMES)
    assert n.descriptions == ["still", "still", "moving", "moving"] and len(chat_server.requests) == 1


def test_too_many_descriptions_are_asked_again_with_the_reason(chat_server):
    bad = json.dumps({"position": 1, "descriptions": list("abcdef")})
    chat_server.script = [reply(bad), reply(GOOD)]
    assert narrator(chat_server).narrate(IMAGE, "x", FRAMES).position == 3
    first, second = (r["json"]["messages"] for r in chat_server.requests)
    assert second[:2] == first  # the same conversation, then the bad reply and what was wrong
    assert second[2] == {"role": "assistant", "content": bad}
    assert second[3]["role"] == "user" and "6 descriptions for a 4-frame clip" in second[3]["content"]


@pytest.mark.parametrize(("content", "reason"), [
    ('{"position": 7, "descriptions": ["a", "b", "c", "d"]}', "position 7 is outside the clip's frames 0–3"),
    ("The image shows the end of the action.", "no JSON object with a position and descriptions"),
    ("", "the reply is empty"),
    (None, "the reply is empty"),
    ('{"position": 1, "descriptions": ["a", "b", "c", "d", "e"]}', "5 descriptions for a 4-frame clip"),
])  # fmt: skip
def test_bad_replies_are_retried_then_reported_on_one_line(chat_server, content, reason):
    chat_server.script = [reply(content)] * 3
    with pytest.raises(NarrationError) as info:
        narrator(chat_server, retries=2).narrate(IMAGE, "x", FRAMES)
    message = str(info.value)
    assert len(chat_server.requests) == 3 and "\n" not in message
    assert message.startswith("the openai narrator gave no valid reply in 3 tries: ") and reason in message


def test_a_slow_reply_times_out_once_then_succeeds(chat_server):
    chat_server.script = [reply(GOOD, delay=1.0), reply(GOOD)]
    n = narrator(chat_server, timeout=0.3).narrate(IMAGE, "x", FRAMES)
    assert n.position == 3 and len(chat_server.requests) == 2


def test_always_slow_is_one_line(chat_server):
    chat_server.script = [reply(GOOD, delay=0.6)] * 2
    with pytest.raises(NarrationError) as info:
        narrator(chat_server, timeout=0.2, retries=1).narrate(IMAGE, "x", FRAMES)
    assert str(info.value) == (f"openai narrator (Qwen/Qwen2.5-VL-7B-Instruct at {chat_server.url}/chat/completions): "
                               "no answer within 0.2 s (2 tries)")


def test_a_500_then_success(chat_server):
    chat_server.script = [Answer(500, {"error": {"message": "CUDA out of memory"}}), reply(GOOD)]
    assert narrator(chat_server).narrate(IMAGE, "x", FRAMES).position == 3 and len(chat_server.requests) == 2


def test_5xx_every_time_names_the_status_and_endpoint(chat_server):
    chat_server.script = [Answer(503, "upstream down")] * 3
    with pytest.raises(NarrationError) as info:
        narrator(chat_server).narrate(IMAGE, "x", FRAMES)
    message = str(info.value)
    assert "HTTP 503 Service Unavailable: upstream down (3 tries)" in message
    assert f"{chat_server.url}/chat/completions" in message and len(chat_server.requests) == 3


def test_a_401_is_not_retried_and_does_not_show_the_key(chat_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    chat_server.script = [Answer(401, {"error": {"message": "Invalid API key"}}), reply(GOOD)]
    with pytest.raises(NarrationError) as info:
        narrator(chat_server).narrate(IMAGE, "x", FRAMES)
    message = str(info.value)
    assert len(chat_server.requests) == 1 and "\n" not in message
    assert "HTTP 401 Unauthorized: Invalid API key (is $OPENAI_API_KEY set to a valid key?)" in message
    assert chat_server.url in message and "sk-secret" not in message


def test_other_4xx_are_not_retried_but_429_is(chat_server):
    chat_server.script = [Answer(404, {"detail": "model 'x' not found"})]
    with pytest.raises(NarrationError, match="HTTP 404 Not Found: model 'x' not found"):
        narrator(chat_server).narrate(IMAGE, "x", FRAMES)
    assert len(chat_server.requests) == 1
    chat_server.requests.clear()
    chat_server.script = [Answer(429, {"error": {"message": "slow down"}}), reply(GOOD)]
    assert narrator(chat_server).narrate(IMAGE, "x", FRAMES).position == 3 and len(chat_server.requests) == 2


def test_backoff_is_exponential(chat_server, monkeypatch):
    sleeps = []
    monkeypatch.setattr("anyframe.narrators.openai.time.sleep", sleeps.append)
    chat_server.script = [Answer(500, "x"), Answer(502, "y"), reply(GOOD)]
    assert narrator(chat_server, backoff=0.5).narrate(IMAGE, "x", FRAMES).position == 3
    assert sleeps == [0.5, 1.0]


def test_a_server_that_is_not_there():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    n = OpenAINarrator(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.0, timeout=2.0)
    with pytest.raises(NarrationError, match=r"cannot connect .*\(2 tries\)$"):
        n.narrate(IMAGE, "x", FRAMES)


def test_an_answer_that_is_not_a_chat_completion(chat_server):
    chat_server.script = [Answer(200, "<html>proxy login</html>")]
    with pytest.raises(NarrationError, match="the answer is not JSON"):
        narrator(chat_server).narrate(IMAGE, "x", FRAMES)
    chat_server.script = [Answer(200, {"object": "list", "data": []})]
    with pytest.raises(NarrationError, match=r"no choices\[0\]\.message"):
        narrator(chat_server).narrate(IMAGE, "x", FRAMES)


def test_constructor_checks():
    for kwargs, match in [
        (dict(base_url="localhost:8000", model="m"), "http"),
        (dict(base_url="http://h/v1", model=" "), "model name"),
        (dict(base_url="http://h/v1", model="m", timeout=0), "timeout"),
        (dict(base_url="http://h/v1", model="m", retries=-1), "retries"),
        (dict(base_url="http://h/v1", model="m", backoff=-1), "backoff"),
    ]:
        with pytest.raises(AnyframeInputError, match=match):
            OpenAINarrator(**kwargs)
    assert OpenAINarrator("http://h:8000/v1/", "m").url == "http://h:8000/v1/chat/completions"
