"""A narrator behind any OpenAI-compatible chat-completions endpoint with image input (vLLM serving Qwen2.5-VL,
an OpenAI model, a local proxy).

    narrator = OpenAINarrator("http://localhost:8000/v1", "Qwen/Qwen2.5-VL-7B-Instruct")
    narrative = narrator.narrate("frame.png", "a cat knocks a vase off the table", num_frames=16)

One request is ``POST {base_url}/chat/completions`` with the system prompt of :mod:`anyframe.narrators.prompt`, and
a user turn holding the image (a base64 PNG ``data:`` URL content part) and the action text; greedy
(``temperature`` 0). The key is read from the environment variable ``api_key_env`` at each request and sent as a
bearer token (never printed); without it no ``Authorization`` header is sent (a local vLLM needs none).

Two kinds of retry, each at most ``retries`` times:

* transport — a timeout, a refused connection, HTTP 429 or 5xx: the same request again after ``backoff · 2^k``
  seconds (k = 0, 1, …; a 429's ``Retry-After`` is honoured up to 30 s). Other 4xx answers (401, 404, 400 …) are
  not retried: the error names the status and the endpoint at once.
* contract — a reply that fails :func:`anyframe.narrators.base.parse_reply` (no JSON, an empty reply, a position
  outside the clip, more descriptions than frames …): the model is asked again, shown its reply and told what
  was wrong.

Every failure ends in one :class:`~anyframe.narrators.base.NarrationError` line.
"""

from __future__ import annotations

import base64
import io
import os
import time
from typing import Any

from PIL import Image

from anyframe.errors import AnyframeInputError
from anyframe.narrators.base import (
    DEFAULT_RETRIES,
    NarrationError,
    Narrative,
    check_num_frames,
    excerpt,
    image_array,
    narrate_with_retries,
)
from anyframe.narrators.prompt import SYSTEM_PROMPT, retry_prompt, user_prompt

RETRY_AFTER_CAP = 30.0  # s: the longest Retry-After a 429 may make the narrator wait


def image_data_url(image: Any) -> str:
    """The image as a ``data:image/png;base64,…`` URL."""
    buffer = io.BytesIO()
    Image.fromarray(image_array(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAINarrator:
    """A narrator that asks an OpenAI-compatible chat endpoint (module docstring)."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0,
                 retries: int = DEFAULT_RETRIES, backoff: float = 1.0, max_tokens: int | None = None,
                 temperature: float = 0.0) -> None:
        if not isinstance(base_url, str) or not base_url.strip().startswith(("http://", "https://")):
            raise AnyframeInputError(f"the openai narrator needs an http(s) base URL such as http://localhost:8000/v1, "
                                     f"got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            raise AnyframeInputError("the openai narrator needs a model name (e.g. Qwen/Qwen2.5-VL-7B-Instruct)")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise AnyframeInputError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise AnyframeInputError(f"retries must be a whole number ≥ 0, got {retries!r}")
        if not isinstance(backoff, (int, float)) or backoff < 0:
            raise AnyframeInputError(f"backoff must be ≥ 0 seconds, got {backoff!r}")
        self.base_url = base_url.strip().rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model, self.api_key_env = model.strip(), api_key_env
        self.timeout, self.retries, self.backoff = float(timeout), retries, float(backoff)
        self.max_tokens, self.temperature = max_tokens, temperature

    # ------------------------------------------------------------------ one request

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _fail(self, message: str) -> NarrationError:
        return NarrationError(f"openai narrator ({self.model} at {self.url}): {message}")

    def _wait(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.backoff * 2**attempt
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), RETRY_AFTER_CAP))
            except ValueError:
                pass
        if delay > 0:
            time.sleep(delay)

    def complete(self, messages: list[dict]) -> str:
        """POST one chat completion (with the transport retries) and return the reply's text ("" when empty)."""
        try:
            import httpx
        except ImportError:  # (a dependency of huggingface_hub, so normally present)
            raise AnyframeInputError("the openai narrator needs httpx: pip install httpx") from None
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        tries = self.retries + 1
        last = ""
        with httpx.Client(timeout=self.timeout) as client:
            for attempt in range(tries):
                try:
                    response = client.post(self.url, json=body, headers=self._headers())
                except httpx.TimeoutException:
                    last = f"no answer within {self.timeout:g} s"
                except httpx.TransportError as exc:
                    last = f"cannot connect ({' '.join(str(exc).split()) or type(exc).__name__})"
                else:
                    status = response.status_code
                    if status < 400:
                        return self._content(response)
                    reason = f"HTTP {status} {response.reason_phrase or ''}".rstrip() + self._detail(response)
                    if status != 429 and status < 500:
                        hint = f" (is ${self.api_key_env} set to a valid key?)" if status in (401, 403) else ""
                        raise self._fail(reason + hint)
                    last = reason
                    if attempt + 1 < tries:
                        self._wait(attempt, response.headers.get("retry-after") if status == 429 else None)
                    continue
                if attempt + 1 < tries:
                    self._wait(attempt)
        raise self._fail(f"{last} ({tries} {'try' if tries == 1 else 'tries'})")

    @staticmethod
    def _detail(response) -> str:
        """": the server's error message" when its body says one."""
        try:
            data = response.json()
        except ValueError:
            text = response.text.strip()
            return f": {excerpt(text)}" if text else ""
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else (error or (data.get("detail") if isinstance(data, dict) else None))
        return f": {excerpt(str(message))}" if message else ""

    def _content(self, response) -> str:
        try:
            data = response.json()
        except ValueError:
            raise self._fail(f"the answer is not JSON ({excerpt(response.text) or 'empty body'!r})") from None
        try:
            content = data["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._fail(f"the answer has no choices[0].message ({excerpt(str(data))!r})") from None
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""

    # ------------------------------------------------------------------ the narrator

    def messages(self, image: Any, prompt: str, num_frames: int) -> list[dict]:
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                {"type": "text", "text": user_prompt(prompt, num_frames)},
            ]},
        ]  # fmt: skip

    def narrate(self, image: Any, prompt: str, num_frames: int) -> Narrative:
        num_frames = check_num_frames(num_frames)
        base = self.messages(image, prompt, num_frames)

        def ask(attempt: int, last: NarrationError | None) -> str:
            messages = base
            if last is not None:  # show the model its reply and what was wrong with it
                messages = base + [{"role": "assistant", "content": last.raw or ""},
                                   {"role": "user", "content": retry_prompt(last.reason, num_frames)}]
            return self.complete(messages)

        return narrate_with_retries(ask, num_frames, self.retries, self.name)
