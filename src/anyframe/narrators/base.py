"""The narrator protocol (ReasonDiff's VisionNarrator): place a condition image in time and narrate every frame.

    narrative = narrator_for("world").narrate(image, "the red circle moves left", num_frames=16)
    narrative.position        # 0 … num_frames − 1: the frame the image shows
    narrative.descriptions    # one description per frame (exactly num_frames)

The JSON contract
-----------------
A model-backed narrator (``openai``, ``transformers``) is asked for one JSON object and nothing else::

    {"position": j, "descriptions": ["frame 1 …", "frame 2 …", …]}

:func:`parse_reply` reads it. It finds the object in a bare reply, inside a markdown code fence, or in prose around
it (the first JSON object in the text that has a ``position`` key); key names are matched case-insensitively
(the paper's figure writes ``Position``) and other keys are ignored. It then checks:

* ``position`` — a whole number (an integral float such as ``3.0`` or a digit string such as ``"3"`` is taken as
  that number) in ``[0, T − 1]``: **0-based** frame indices; anything else, negative indices included, is a
  validation failure.
* ``descriptions`` — a non-empty list of non-empty strings, at most T of them.
* ``caption`` — optional: the whole clip in one or two sentences (what a model that reads one prompt for every
  frame is given with ``narrator_prompt``). A caption that is not a non-empty string is dropped, not a failure:
  the placement and the narratives stand without it.

The expansion rule
------------------
A model may answer with fewer descriptions than frames, one per *segment* of the clip (ReasonDiff's own example
prompts repeat one line over a run of frames). ``n`` descriptions for ``T`` frames (``1 ≤ n ≤ T``) are spread
evenly: frame ``f`` (0-based) takes description ``⌊f · n / T⌋``. The segments are in order and their lengths differ
by at most one frame; ``n = T`` is the identity, ``n = 1`` repeats the one description. More than ``T``
descriptions is a validation failure (the model did not follow the frame count), not a truncation.

A reply that fails validation is asked again (``retries`` more times, default 2; the model backends tell the model
what was wrong); when every try fails, :class:`NarrationError` (an :class:`~anyframe.errors.AnyframeInputError`)
says, in one line, which backend failed, how many tries it had, the last reason and the start of the last reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from anyframe.errors import AnyframeInputError

NARRATORS = ("world", "openai", "transformers")
DEFAULT_RETRIES = 2
EXCERPT_CHARS = 80  # how much of a bad reply an error quotes


class NarrationError(AnyframeInputError):
    """A narrator's reply broke the JSON contract (``reason``), or a backend gave no usable reply."""

    def __init__(self, message: str, reason: str | None = None, raw: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.raw = raw


@dataclass(frozen=True)
class Narrative:
    """Where the image sits in the clip and what every frame shows."""

    position: int  # 0-based frame index of the image, in [0, len(descriptions) − 1]
    descriptions: list[str]  # exactly one per frame (after the expansion rule)
    raw: str = ""  # the reply the narrative was read from (the world narrator: its JSON)
    backend: str = ""  # world | openai | transformers
    note: str | None = None  # why the narrator is unsure, or why the text does not fit the image
    caption: str | None = None  # the whole clip in one description (optional in the contract)

    @property
    def num_frames(self) -> int:
        return len(self.descriptions)

    def to_dict(self) -> dict:
        """The JSON contract (with ``caption`` and ``note`` when there are)."""
        out: dict[str, Any] = {"position": self.position, "descriptions": list(self.descriptions)}
        if self.caption:
            out["caption"] = self.caption
        if self.note:
            out["note"] = self.note
        return out


@runtime_checkable
class Narrator(Protocol):
    """Anything that places an image in a ``num_frames``-frame clip described by ``prompt``."""

    name: str

    def narrate(self, image: Any, prompt: str, num_frames: int) -> Narrative: ...


# ------------------------------------------------------------------------------------------ helpers


def check_num_frames(num_frames: int) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or not 1 <= num_frames <= 1024:
        raise AnyframeInputError(f"num_frames must be a whole number in [1, 1024], got {num_frames!r}")
    return int(num_frames)


def image_array(image: Any) -> np.ndarray:
    """uint8 ``[H, W, 3]`` from a path, a PIL image or an array (see :func:`anyframe.io.load_image`)."""
    from anyframe.io import load_image

    return np.asarray(load_image(image), dtype=np.uint8)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` on one line (whitespace runs collapsed), with … when cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def expand_descriptions(descriptions: list[str], num_frames: int) -> list[str]:
    """``n ≤ T`` descriptions → T (the module's expansion rule: frame f takes description ⌊f·n/T⌋)."""
    n = len(descriptions)
    if not 1 <= n <= num_frames:
        raise ValueError(f"cannot spread {n} descriptions over {num_frames} frames")
    return [descriptions[f * n // num_frames] for f in range(num_frames)]


# ------------------------------------------------------------------------------------------ parsing

_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\r?\n?(.*?)```", re.DOTALL)


def _objects(text: str) -> list[dict]:
    """The JSON objects in ``text``: each fenced block's, then the whole text's, then every object that starts at
    a ``{`` of the text (in order). Smart quotes are straightened first (some models write them)."""
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    decoder = json.JSONDecoder()
    found: list[dict] = []
    chunks = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    for chunk in chunks:
        chunk = chunk.strip()
        try:
            value = json.loads(chunk)
            if isinstance(value, dict):
                found.append(value)
                continue
        except ValueError:
            pass
        for match in re.finditer(r"\{", chunk):
            try:
                value, _ = decoder.raw_decode(chunk, match.start())
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def _key(obj: dict, name: str) -> tuple[bool, Any]:
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().lower() == name:
            return True, value
    return False, None


class _Invalid(Exception):
    """A reason a reply breaks the contract (becomes a NarrationError)."""


def _position(value: Any, num_frames: int) -> int:
    if isinstance(value, bool):
        raise _Invalid(f"position must be a whole frame index, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise _Invalid(f"position must be a whole frame index, got {excerpt(json.dumps(value), 30)}")
    if not 0 <= value < num_frames:
        raise _Invalid(f"position {value} is outside the clip's frames 0–{num_frames - 1}")
    return value


def _descriptions(value: Any, num_frames: int) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid(f"descriptions must be a list of strings, got {type(value).__name__}")
    if not value:
        raise _Invalid("descriptions is an empty list")
    if len(value) > num_frames:
        raise _Invalid(f"{len(value)} descriptions for a {num_frames}-frame clip (at most one per frame)")
    out = []
    for i, item in enumerate(value, start=1):
        if not isinstance(item, str):
            raise _Invalid(f"description {i} is not a string ({excerpt(json.dumps(item), 30)})")
        if not item.strip():
            raise _Invalid(f"description {i} is empty")
        out.append(" ".join(item.split()))
    return out


def parse_reply(text: str, num_frames: int, backend: str = "") -> Narrative:
    """Read and validate a narrator's reply (module docstring); raise :class:`NarrationError` with the reason."""
    num_frames = check_num_frames(num_frames)
    raw = "" if text is None else str(text)

    def fail(reason: str):
        return NarrationError(f"narrator reply: {reason}", reason=reason, raw=raw)

    if not raw.strip():
        raise fail("the reply is empty")
    candidates = [o for o in _objects(raw) if _key(o, "position")[0] or _key(o, "descriptions")[0]]
    if not candidates:
        raise fail("no JSON object with a position and descriptions in the reply")
    obj = next((o for o in candidates if _key(o, "position")[0] and _key(o, "descriptions")[0]), candidates[0])
    for name in ("position", "descriptions"):
        if not _key(obj, name)[0]:
            raise fail(f"the JSON object has no {name!r}")
    try:
        position = _position(_key(obj, "position")[1], num_frames)
        descriptions = expand_descriptions(_descriptions(_key(obj, "descriptions")[1], num_frames), num_frames)
    except _Invalid as exc:
        raise fail(str(exc)) from None
    caption = _key(obj, "caption")[1]
    caption = " ".join(caption.split()) if isinstance(caption, str) and caption.strip() else None
    return Narrative(position, descriptions, raw=raw, backend=backend, caption=caption)


def narrate_with_retries(ask: Callable[[int, NarrationError | None], str], num_frames: int, retries: int,
                         backend: str) -> Narrative:
    """Call ``ask(attempt, last_error)`` for a reply until one passes :func:`parse_reply`, at most ``retries + 1``
    times; then raise one :class:`NarrationError` naming the backend, the tries, the last reason and reply."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise AnyframeInputError(f"retries must be a whole number ≥ 0, got {retries!r}")
    last: NarrationError | None = None
    for attempt in range(retries + 1):
        reply = ask(attempt, last)
        try:
            return parse_reply(reply, num_frames, backend)
        except NarrationError as exc:
            last = exc
    assert last is not None
    tries = f"{retries + 1} {'try' if retries == 0 else 'tries'}"
    raise NarrationError(
        f"the {backend} narrator gave no valid reply in {tries}: {last.reason} (last reply: {excerpt(last.raw or '')!r})",
        reason=last.reason, raw=last.raw,
    )


# ------------------------------------------------------------------------------------------ registry


def narrator_for(name: str, **options) -> Narrator:
    """A narrator by backend name: ``world`` (:class:`~anyframe.narrators.world.WorldNarrator`), ``openai``
    (:class:`~anyframe.narrators.openai.OpenAINarrator`) or ``transformers``
    (:class:`~anyframe.narrators.local.TransformersNarrator`); ``options`` go to its constructor."""
    if name == "world":
        from anyframe.narrators.world import WorldNarrator

        return WorldNarrator(**options)
    if name == "openai":
        from anyframe.narrators.openai import OpenAINarrator

        return OpenAINarrator(**options)
    if name == "transformers":
        from anyframe.narrators.local import TransformersNarrator

        return TransformersNarrator(**options)
    raise AnyframeInputError(f"unknown narrator {name!r}; expected one of {', '.join(NARRATORS)}")
