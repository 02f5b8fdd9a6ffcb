"""The narrator's instructions to a vision-language model (ReasonDiff §3.2, in this project's words).

The model sees the condition image and the action text. It is asked to work out the story that joins them, to
decide at which frame of a ``T``-frame clip the image belongs, and to describe every frame — and to reply with the
JSON object of :mod:`anyframe.narrators.base` only. Frames are numbered from 0 in the reply, as in the code, and the
prompt says so (the paper's "frame 1 … frame ε" counts descriptions, not positions). One worked example in the
instructions stands in for the paper's in-context examples.
"""

from __future__ import annotations

SYSTEM_PROMPT = """\
You plan short videos. You receive one still image and one sentence describing an action. The image and the \
sentence may not match in time: the image can show the scene before the action, during it, or after it.

Work out the most plausible short clip that contains both: the moment shown in the image and the action in the \
sentence. Then:
1. Decide which frame of the clip the image is. Frames are numbered from 0 (the first frame) to T-1 (the last).
2. Write one short, concrete description for every frame, in order, so that together they tell the clip from the \
first frame to the last. The description at the image's frame must describe what the image shows.
3. Describe the whole clip in one or two sentences: the scene as the image shows it, and what happens in it.

Reply with exactly one JSON object and nothing else: no explanation, no markdown, no code fence.
Format: {"position": <frame number>, "descriptions": ["<frame 0>", "<frame 1>", ..., "<frame T-1>"], \
"caption": "<the whole clip>"}

Example, for T = 4, an image of a glass lying shattered on a kitchen floor, and the sentence "a cat jumps onto the \
counter":
{"position": 3, "descriptions": ["A glass stands near the edge of a kitchen counter.", "A cat leaps up onto the \
counter.", "The cat's tail knocks the glass off the edge.", "The glass lies shattered on the floor."], "caption": \
"In a kitchen, a cat jumps onto the counter and knocks a glass off the edge; it shatters on the floor."}"""


def user_prompt(prompt: str, num_frames: int) -> str:
    """The text part of the user's turn (the image goes beside it)."""
    return (
        f"The clip has T = {num_frames} frames (0 to {num_frames - 1}).\n"
        f"Action: {prompt.strip()}\n"
        f"Reply with the JSON object only: a position in 0..{num_frames - 1} and exactly {num_frames} descriptions."
    )


def retry_prompt(reason: str, num_frames: int) -> str:
    """What the model is told after a reply that broke the contract."""
    return (
        f"That reply could not be used: {reason}. Answer again with only the JSON object: "
        f'{{"position": <0..{num_frames - 1}>, "descriptions": [exactly {num_frames} strings]}}.'
    )
