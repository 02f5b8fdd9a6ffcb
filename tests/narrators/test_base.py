"""The narrator contract: parse_reply's extraction and validation, the expansion rule, the retry helper, the
registry."""

from __future__ import annotations

import json

import pytest

from anyframe.errors import AnyframeInputError
from anyframe.narrators import (
    NARRATORS,
    NarrationError,
    Narrative,
    Narrator,
    expand_descriptions,
    narrate_with_retries,
    narrator_for,
    parse_reply,
)

GOOD = {"position": 2, "descriptions": [f"frame {i}" for i in range(4)]}


def test_a_bare_reply_is_read():
    n = parse_reply(json.dumps(GOOD), 4, backend="x")
    assert (n.position, n.descriptions, n.backend, n.note) == (2, GOOD["descriptions"], "x", None)
    assert n.raw == json.dumps(GOOD) and n.num_frames == 4


@pytest.mark.parametrize("text", [
    "```json\n" + json.dumps(GOOD) + "\n```",
    "```\n" + json.dumps(GOOD, indent=2) + "\n```",
    "Sure! Here is the plan:\n" + json.dumps(GOOD) + "\nI hope this helps.",
    "Thinking {not json} ... " + json.dumps(GOOD) + " done",
    json.dumps({"Position": 2, "Descriptions": GOOD["descriptions"], "reasoning": "extra keys are ignored"}),
    json.dumps({"position": "2", "descriptions": GOOD["descriptions"]}),
    json.dumps({"position": 2.0, "descriptions": GOOD["descriptions"]}),
    '{\u201cposition\u201d: 2, \u201cdescriptions\u201d: [\u201cframe 0\u201d, \u201cframe 1\u201d, \u201cframe 2\u201d, \u201cframe 3\u201d]}',
])  # fmt: skip
def test_the_json_object_is_found_in_fences_and_prose(text):
    n = parse_reply(text, 4)
    assert n.position == 2 and n.descriptions == GOOD["descriptions"]


@pytest.mark.parametrize(("text", "reason"), [
    ("", "the reply is empty"),
    ("   \n ", "the reply is empty"),
    ("I think the image is the last frame.", "no JSON object"),
    ('{"position": 1}', "no 'descriptions'"),
    ('{"descriptions": ["a"]}', "no 'position'"),
    ('{"position": 4, "descriptions": ["a"]}', "position 4 is outside the clip's frames 0–3"),
    ('{"position": -1, "descriptions": ["a"]}', "position -1 is outside"),
    ('{"position": 1.5, "descriptions": ["a"]}', "whole frame index"),
    ('{"position": true, "descriptions": ["a"]}', "whole frame index"),
    ('{"position": "last", "descriptions": ["a"]}', "whole frame index"),
    ('{"position": 0, "descriptions": "a"}', "must be a list"),
    ('{"position": 0, "descriptions": []}', "empty list"),
    ('{"position": 0, "descriptions": ["a", "b", "c", "d", "e"]}', "5 descriptions for a 4-frame clip"),
    ('{"position": 0, "descriptions": ["a", 3]}', "description 2 is not a string"),
    ('{"position": 0, "descriptions": ["a", "  "]}', "description 2 is empty"),
])  # fmt: skip
def test_a_bad_reply_names_its_reason(text, reason):
    with pytest.raises(NarrationError) as info:
        parse_reply(text, 4)
    assert reason in str(info.value) and reason in info.value.reason
    assert isinstance(info.value, AnyframeInputError) and "\n" not in str(info.value)
    assert info.value.raw == text


def test_fewer_descriptions_are_spread_evenly():
    assert expand_descriptions(["a", "b"], 4) == ["a", "a", "b", "b"]
    assert expand_descriptions(["a", "b", "c"], 8) == ["a", "a", "a", "b", "b", "b", "c", "c"]
    assert expand_descriptions(["a"], 3) == ["a", "a", "a"]
    assert expand_descriptions(list("abcd"), 4) == list("abcd")
    n = parse_reply('{"position": 5, "descriptions": ["before", "after"]}', 7)
    assert n.descriptions == ["before"] * 4 + ["after"] * 3 and n.position == 5
    with pytest.raises(ValueError):
        expand_descriptions(list("abcde"), 4)


@pytest.mark.parametrize("frames", [1, 2, 5, 16, 81])
def test_the_expansion_rule_keeps_order_and_near_equal_segments(frames):
    for n in range(1, frames + 1):
        out = expand_descriptions([str(i) for i in range(n)], frames)
        assert len(out) == frames and [int(x) for x in out] == sorted(int(x) for x in out)
        lengths = [out.count(str(i)) for i in range(n)]
        assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1


def test_whitespace_inside_descriptions_is_collapsed():
    n = parse_reply('{"position": 0, "descriptions": ["a  red\\n circle"]}', 1)
    assert n.descriptions == ["a red circle"]


def test_retries_ask_again_with_the_last_error_then_succeed():
    seen = []

    def ask(attempt, last):
        seen.append((attempt, None if last is None else last.reason))
        return "nope" if attempt == 0 else json.dumps(GOOD)

    n = narrate_with_retries(ask, 4, retries=2, backend="test")
    assert n.position == 2 and seen == [(0, None), (1, "no JSON object with a position and descriptions in the reply")]


def test_retries_give_up_with_one_line():
    calls = []

    def ask(attempt, last):
        calls.append(attempt)
        return '{"position": 9, "descriptions": ["a"]}'

    with pytest.raises(NarrationError) as info:
        narrate_with_retries(ask, 4, retries=2, backend="test")
    message = str(info.value)
    assert calls == [0, 1, 2]
    assert message.startswith("the test narrator gave no valid reply in 3 tries: position 9 is outside")
    assert '{"position": 9' in message and "\n" not in message
    with pytest.raises(NarrationError, match="in 1 try:"):
        narrate_with_retries(lambda a, e: "", 4, retries=0, backend="test")
    with pytest.raises(AnyframeInputError, match="retries"):
        narrate_with_retries(lambda a, e: "", 4, retries=-1, backend="test")


def test_num_frames_is_checked():
    for bad in (0, -3, 1.5, True, "4"):
        with pytest.raises(AnyframeInputError, match="num_frames"):
            parse_reply(json.dumps(GOOD), bad)


def test_the_registry():
    assert NARRATORS == ("world", "openai", "transformers")
    world = narrator_for("world")
    assert world.name == "world" and isinstance(world, Narrator)
    assert narrator_for("openai", base_url="http://localhost:1/v1", model="m").name == "openai"
    with pytest.raises(AnyframeInputError, match="unknown narrator 'gpt'; expected one of world, openai, transformers"):
        narrator_for("gpt")
    with pytest.raises(AnyframeInputError, match="folder not found"):
        narrator_for("transformers", path="/nonexistent/vlm")


def test_narrative_to_dict():
    n = Narrative(1, ["a", "b"], backend="world")
    assert n.to_dict() == {"position": 1, "descriptions": ["a", "b"]}
    assert Narrative(1, ["a", "b"], note="why").to_dict()["note"] == "why"
    with pytest.raises(AttributeError):
        n.position = 0  # frozen


def test_an_optional_caption_is_read_and_a_bad_one_is_dropped():
    from anyframe.narrators import parse_reply

    good = parse_reply('{"position": 1, "descriptions": ["a", "b"], "Caption": "  A cat\\n jumps. "}', 2)
    assert good.caption == "A cat jumps." and good.to_dict()["caption"] == "A cat jumps."
    for bad in ('"caption": 3', '"caption": "  "', '"caption": ["x"]', '"other": 1'):
        narrative = parse_reply('{"position": 1, "descriptions": ["a", "b"], ' + bad + "}", 2)
        assert narrative.caption is None and "caption" not in narrative.to_dict() and narrative.position == 1
