"""The transformers narrator: a tiny random LLaVA built in code (its processor from in-code pieces — Qwen2-VL's
processor needs a video processor, which needs torchvision, absent here) saved to a folder and loaded back by
AutoProcessor + AutoModelForImageTextToText; and a stub model for the retry logic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anyframe.errors import AnyframeInputError
from anyframe.narrators import NarrationError
from anyframe.narrators.local import TransformersNarrator

IMAGE = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """A 1-layer LLaVA (CLIP vision tower + Llama text model, width 16) with a character-level tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor  # (no torchvision here)
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    specials = ["<pad>", "<s>", "</s>", "<image>"]
    vocab = {c: i for i, c in enumerate(specials + [chr(i) for i in range(32, 127)] + ["\n"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="?", extra_special_tokens={"image_token": "<image>"})
    processor = LlavaProcessor(image_processor=ImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
                               tokenizer=tokenizer, chat_template=TEMPLATE, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=28, patch_size=14, projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                                bos_token_id=1, eos_token_id=2, pad_token_id=0),
        image_token_index=vocab["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vlm") / "tiny-llava"
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_a_tiny_random_vlm_loads_and_its_garbage_is_a_clear_error(tiny_vlm):
    narrator = TransformersNarrator(tiny_vlm, max_new_tokens=24)
    assert type(narrator.model).__name__ == "LlavaForConditionalGeneration"
    replies = []
    generate = narrator.generate
    narrator.generate = lambda messages, frames: replies.append(generate(messages, frames)) or replies[-1]
    with pytest.raises(NarrationError) as info:
        narrator.narrate(IMAGE, "a red circle moves left", 4)
    message = str(info.value)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)  # retries=2: asked three times
    assert message.startswith("the transformers narrator gave no valid reply in 3 tries: ") and "\n" not in message
    assert isinstance(info.value, AnyframeInputError)


class _Inputs(dict):
    def to(self, device):
        return self


class StubProcessor:
    """apply_chat_template → token ids; batch_decode → the next scripted reply (records the conversations)."""

    def __init__(self, replies):
        self.replies, self.conversations = list(replies), []

    def apply_chat_template(self, messages, **kwargs):
        self.conversations.append(messages)
        assert kwargs["add_generation_prompt"] and kwargs["return_dict"]
        return _Inputs(input_ids=torch.zeros(1, 5, dtype=torch.long))

    def batch_decode(self, ids, skip_special_tokens):
        assert ids.shape == (1, 3) and skip_special_tokens
        return [self.replies.pop(0)]


class StubModel:
    def __init__(self):
        self.calls = []

    def generate(self, input_ids, max_new_tokens, do_sample):
        self.calls.append((max_new_tokens, do_sample))
        return torch.zeros(1, input_ids.shape[1] + 3, dtype=torch.long)


def test_the_retry_shows_the_model_its_reply_and_the_reason():
    good = json.dumps({"position": 1, "descriptions": ["a", "b"]})
    processor, model = StubProcessor(["garbage ]]", "```json\n" + good + "\n```"]), StubModel()
    n = TransformersNarrator(model=model, processor=processor).narrate(IMAGE, "a red circle moves left", 4)
    assert (n.position, n.descriptions, n.backend) == (1, ["a", "a", "b", "b"], "transformers")
    assert model.calls == [(4 * 48 + 64, False)] * 2  # greedy, with a budget that grows with the frame count
    first, second = processor.conversations
    assert first[1]["content"][0]["type"] == "image" and first[1]["content"][0]["image"].size == (32, 32)
    assert "a red circle moves left" in first[1]["content"][1]["text"]
    assert second[:2] == first and second[2]["content"][0]["text"] == "garbage ]]"
    assert "no JSON object" in second[3]["content"][0]["text"]


def test_folder_errors_are_input_errors(tmp_path):
    with pytest.raises(AnyframeInputError, match="folder not found"):
        TransformersNarrator(tmp_path / "missing")
    with pytest.raises(AnyframeInputError, match="no config.json"):
        TransformersNarrator(tmp_path)
    with pytest.raises(AnyframeInputError, match="needs a model folder"):
        TransformersNarrator()
    with pytest.raises(AnyframeInputError, match="retries"):
        TransformersNarrator(model=StubModel(), processor=StubProcessor([]), retries=-2)
