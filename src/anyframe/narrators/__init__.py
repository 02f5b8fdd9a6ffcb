"""Narrators (ReasonDiff's VisionNarrator): place a condition image in time for a prompt, and narrate every frame.

    from anyframe.narrators import narrator_for
    narrative = narrator_for("world").narrate(image, "the red circle moves left", num_frames=16)
    narrative.position, narrative.descriptions, narrative.note

Backends (:func:`narrator_for`): ``world`` (exact, rule-based, for shapes-world images:
:mod:`anyframe.narrators.world`), ``openai`` (any OpenAI-compatible chat endpoint with image input, e.g. vLLM
serving Qwen2.5-VL: :mod:`anyframe.narrators.openai`) and ``transformers`` (a local VLM folder:
:mod:`anyframe.narrators.local`). The JSON contract, its validation and the expansion rule for fewer descriptions
than frames: :mod:`anyframe.narrators.base`. The backends load lazily: importing this package costs nothing.
"""

from anyframe.narrators.base import (
    DEFAULT_RETRIES,
    NARRATORS,
    NarrationError,
    Narrative,
    Narrator,
    expand_descriptions,
    narrate_with_retries,
    narrator_for,
    parse_reply,
)

__all__ = [
    "Narrator", "Narrative", "NarrationError", "narrator_for", "NARRATORS", "parse_reply", "expand_descriptions",
    "narrate_with_retries", "DEFAULT_RETRIES",
]  # fmt: skip
