"""A narrator that runs a local vision-language model with ``transformers`` (the ``transformers`` backend).

    narrator = TransformersNarrator("models/Qwen2.5-VL-3B-Instruct")
    narrative = narrator.narrate("frame.png", "a cat knocks a vase off the table", num_frames=16)

The folder is loaded with ``AutoProcessor`` and ``AutoModelForImageTextToText`` (Qwen2-VL / Qwen2.5-VL, LLaVA,
Gemma 3, SmolVLM … — any image-text-to-text model whose processor has a chat template). The conversation is the
one the ``openai`` backend sends (:mod:`anyframe.narrators.prompt`), rendered by the processor's chat template with
the image as an ``{"type": "image"}`` part; generation is greedy, and the new tokens are decoded without special
tokens. The reply goes through :func:`anyframe.narrators.base.parse_reply`; a reply that breaks the contract is
asked again (``retries`` times; greedy decoding repeats itself, so the model is shown its reply and told what was
wrong — the prompt changes), then reported as one :class:`~anyframe.narrators.base.NarrationError` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from anyframe.errors import AnyframeInputError
from anyframe.narrators.base import (
    DEFAULT_RETRIES,
    NarrationError,
    Narrative,
    check_num_frames,
    image_array,
    narrate_with_retries,
)
from anyframe.narrators.prompt import SYSTEM_PROMPT, retry_prompt, user_prompt

TOKENS_PER_FRAME = 48  # the default generation budget: a short description per frame, plus the JSON around them


class TransformersNarrator:
    """A narrator on a local ``transformers`` VLM (module docstring). ``model`` / ``processor``: already loaded
    objects instead of a folder (tests, or a model shared with another part of the program)."""

    name = "transformers"

    def __init__(self, path: str | Path | None = None, device: str = "cpu", dtype: str = "auto",
                 max_new_tokens: int | None = None, retries: int = DEFAULT_RETRIES, model: Any = None,
                 processor: Any = None) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise AnyframeInputError(f"retries must be a whole number ≥ 0, got {retries!r}")
        if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or max_new_tokens < 1):
            raise AnyframeInputError(f"max_new_tokens must be at least 1, got {max_new_tokens!r}")
        self.retries, self.max_new_tokens, self.device = retries, max_new_tokens, device
        if model is not None and processor is not None:
            self.model, self.processor = model, processor
            return
        if path is None:
            raise AnyframeInputError("the transformers narrator needs a model folder (--vlm PATH)")
        folder = Path(path)
        if not folder.is_dir():
            raise AnyframeInputError(f"VLM folder {folder}: {'not a folder' if folder.exists() else 'folder not found'}")
        if not (folder / "config.json").is_file():
            raise AnyframeInputError(f"VLM folder {folder} has no config.json (not a transformers model folder)")
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise AnyframeInputError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
        try:
            self.processor = AutoProcessor.from_pretrained(folder)
            self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtypes[dtype]).to(device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise AnyframeInputError(f"cannot load the VLM in {folder}: {' '.join(str(exc).split())}") from None

    def messages(self, image: Image.Image, prompt: str, num_frames: int) -> list[dict]:
        return [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
            {"role": "user", "content": [{"type": "image", "image": image},
                                         {"type": "text", "text": user_prompt(prompt, num_frames)}]},
        ]

    def generate(self, messages: list[dict], num_frames: int) -> str:
        """Greedy generation for one conversation; the new text without special tokens."""
        import torch

        inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")
        inputs = inputs.to(self.device) if hasattr(inputs, "to") else inputs
        budget = self.max_new_tokens or TOKENS_PER_FRAME * num_frames + 64
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=budget, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new, skip_special_tokens=True)[0]

    def narrate(self, image: Any, prompt: str, num_frames: int) -> Narrative:
        num_frames = check_num_frames(num_frames)
        picture = Image.fromarray(image_array(image))
        base = self.messages(picture, prompt, num_frames)

        def ask(attempt: int, last: NarrationError | None) -> str:
            messages = base
            if last is not None:
                messages = base + [
                    {"role": "assistant", "content": [{"type": "text", "text": last.raw or ""}]},
                    {"role": "user", "content": [{"type": "text", "text": retry_prompt(last.reason, num_frames)}]},
                ]
            return self.generate(messages, num_frames)

        return narrate_with_retries(ask, num_frames, self.retries, self.name)
