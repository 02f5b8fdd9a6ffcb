"""Text encoders built from configs: a transformers ``T5EncoderModel`` and a word-level tokenizer.

Nothing is downloaded: the tokenizer is built from a vocabulary (tokenizers ``WordLevel`` wrapped in a
``PreTrainedTokenizerFast``), the encoder from a ``T5Config``. Both save and load with ``save_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from torch import Tensor
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"

# A small general vocabulary for tests; world-scale pipelines build theirs from the world's grammar
# (``anyframe.world.world_vocabulary``). Words outside the vocabulary map to <unk>.
BASIC_VOCABULARY: tuple[str, ...] = (
    "a", "an", "the", "and", "on", "in", "to", "is", ",", ".", "moves", "left", "right", "up", "down",
    "red", "green", "blue", "yellow", "circle", "square", "triangle", "background", "black",
)


def build_word_tokenizer(vocabulary: Iterable[str] = BASIC_VOCABULARY, max_length: int = 32) -> PreTrainedTokenizerFast:
    """Lower-cased, whitespace/punctuation-split word tokenizer; appends ``</s>`` like T5, pads with id 0."""
    words = [PAD, EOS, UNK] + [w for w in dict.fromkeys(v.lower() for v in vocabulary) if w not in (PAD, EOS, UNK)]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, vocab[EOS])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=max_length
    )


TEXT_ENCODERS: dict[str, dict] = {
    "tiny": dict(d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2),
    "S": dict(d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4),
}


def build_t5_encoder(size: str, vocab_size: int) -> T5EncoderModel:
    """A randomly initialised T5 encoder of a named size."""
    if size not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder size {size!r} ({', '.join(TEXT_ENCODERS)})")
    config = T5Config(
        vocab_size=vocab_size,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        is_encoder_decoder=False,
        use_cache=False,
        **TEXT_ENCODERS[size],
    )
    return T5EncoderModel(config).eval()


@dataclass
class TextCondition:
    """Encoded prompts."""

    embeds: Tensor  # [B, L, text_dim]
    mask: Tensor  # [B, L] bool, True for real tokens

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def select(self, keep: Tensor, other: TextCondition) -> TextCondition:
        """Per sample: this condition where ``keep`` [B] is True, ``other`` elsewhere (text dropout)."""
        k = keep.to(self.embeds.device)
        return TextCondition(
            torch.where(k[:, None, None], self.embeds, other.embeds.to(self.embeds.dtype)),
            torch.where(k[:, None], self.mask, other.mask),
        )

    def repeat(self, n: int) -> TextCondition:
        return TextCondition(self.embeds.repeat_interleave(n, 0), self.mask.repeat_interleave(n, 0))

    def trim(self, length: int) -> TextCondition:
        """The first ``length`` token positions: padding past every real token is masked out of
        cross-attention anyway, so dropping it changes nothing but the cost."""
        return TextCondition(self.embeds[:, :length], self.mask[:, :length])

    def used_length(self) -> int:
        """One past the last real token of any prompt (≥ 1)."""
        real = self.mask.any(0).nonzero()
        return int(real[-1]) + 1 if len(real) else 1

    def to(self, device=None, dtype=None) -> TextCondition:
        return TextCondition(self.embeds.to(device=device, dtype=dtype), self.mask.to(device))

    @staticmethod
    def cat(conditions: Sequence[TextCondition]) -> TextCondition:
        return TextCondition(torch.cat([c.embeds for c in conditions]), torch.cat([c.mask for c in conditions]))


@torch.no_grad()
def encode_prompts(
    tokenizer: PreTrainedTokenizerFast,
    text_encoder: T5EncoderModel,
    prompts: Sequence[str],
    max_length: int | None = None,
    padding: str = "masked",
) -> TextCondition:
    """Tokenise to a fixed length (default: the tokenizer's ``model_max_length``, so prompts and negative
    prompts batch together) and encode. An empty prompt is just ``</s>``: it always has one valid token.

    ``padding="masked"`` (anyframe's backbones): padding positions carry the encoder's output and are
    masked out of cross-attention. ``padding="zeros"`` (Wan, as diffusers' Wan pipelines encode): prompts
    are cleaned as Wan cleans them, embeddings past each prompt are zero, and the backbone attends to every
    position — so the mask is all True and the padding is never trimmed.
    """
    if padding not in ("masked", "zeros"):
        raise ValueError(f"unknown text padding {padding!r} (masked | zeros)")
    prompts = list(prompts)
    distinct = list(dict.fromkeys(prompts))
    if len(distinct) < len(prompts):  # per-frame narratives repeat: encode each text once (rows are independent)
        encoded = encode_prompts(tokenizer, text_encoder, distinct, max_length, padding)
        index = {p: i for i, p in enumerate(distinct)}
        rows = torch.tensor([index[p] for p in prompts], device=encoded.embeds.device)
        return TextCondition(encoded.embeds[rows], encoded.mask[rows])
    length = max_length or tokenizer.model_max_length
    if padding == "zeros":
        # (deferred: it needs ftfy; only Wan uses it)
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        prompts = [prompt_clean(p) for p in prompts]
    tokens = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    device = text_encoder.device
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    hidden = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    if padding == "masked":
        return TextCondition(hidden, mask.bool())
    hidden = hidden * mask.gt(0)[..., None].to(hidden.dtype)  # zero past each prompt's length
    return TextCondition(hidden, torch.ones_like(mask, dtype=torch.bool))


@torch.no_grad()
def grow_vocabulary(
    tokenizer: PreTrainedTokenizerFast,
    text_encoder: T5EncoderModel,
    meanings: dict[str, str | None],
    seed: int = 0,
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with the words of ``meanings`` that ``tokenizer`` lacks appended (the old ids are
    kept), and ``text_encoder``'s embedding grown to match, in place. A new word's row starts as the row of the
    word it means (``meanings[word]``; several words, space-separated: the mean of their rows), so the encoder
    reads a synonym exactly as its counterpart; a word with no counterpart in the tokenizer gets a fresh row drawn
    like the encoder's own (normal, the existing rows' standard deviation; ``seed``). The same call on the same inputs gives the same
    rows, so a run's recipe rebuilds its encoder."""
    vocab = tokenizer.get_vocab()
    new = [w for w in dict.fromkeys(w.lower() for w in meanings) if w not in vocab]
    if not new:
        return tokenizer
    old = len(vocab)
    ordered = sorted(vocab, key=vocab.get)
    grown = build_word_tokenizer(
        [w for w in ordered if w not in (PAD, EOS, UNK)] + new, max_length=tokenizer.model_max_length
    )
    if [grown.convert_tokens_to_ids(w) for w in ordered] != list(range(old)):
        raise ValueError("the tokenizer's ids are not 0…N−1 in the word-level layout: cannot grow it in place")
    embedding = text_encoder.get_input_embeddings().weight
    rows = torch.empty(len(new), embedding.shape[1])
    rows.normal_(0.0, float(embedding.std()), generator=torch.Generator().manual_seed(seed))
    for i, word in enumerate(new):
        parts = [vocab[m] for m in (meanings[word] or "").split() if m in vocab]
        if parts:
            rows[i] = embedding[parts].mean(0)
    text_encoder.resize_token_embeddings(old + len(new), mean_resizing=False)
    text_encoder.get_input_embeddings().weight[old:] = rows.to(embedding.dtype)
    return grown
