"""Free-form descriptions of world scenes (anyframe.world.paraphrase) and the vocabulary they grow."""

from __future__ import annotations

import copy
import random
from dataclasses import replace

import pytest
import torch

from anyframe.data.world import WorldDataset
from anyframe.models.text_encoder import (
    build_t5_encoder,
    build_word_tokenizer,
    encode_prompts,
    grow_vocabulary,
)
from anyframe.world import caption, scene_for_seed, world_vocabulary
from anyframe.world.grammar import tokenize
from anyframe.world.paraphrase import (
    BACKGROUND_WORDS,
    COLOR_WORDS,
    SHAPE_NOUNS,
    SIZE_WORDS,
    WORD_MEANINGS,
    paraphrase,
    paraphrase_vocabulary,
    with_duplicate,
)
from anyframe.world.sampling import rule_violations


def _words(text: str) -> list[str]:
    return [t.text.lower() for t in tokenize(text)]


def test_every_word_is_in_the_world_vocabulary_or_has_a_meaning():
    known = set(world_vocabulary())
    listed = set(paraphrase_vocabulary())
    rng = random.Random(0)
    for seed in range(400):
        scene = scene_for_seed(seed)
        if seed % 2:
            scene = with_duplicate(scene, rng)
        words = set(_words(paraphrase(scene, rng)))
        assert words <= known | set(WORD_MEANINGS), (seed, words - known - set(WORD_MEANINGS))
        assert words <= listed | known, (seed, words - listed - known)
    assert set(paraphrase_vocabulary()) - known == set(WORD_MEANINGS)  # exactly the new words have meanings
    for meaning in filter(None, WORD_MEANINGS.values()):
        assert set(meaning.split()) <= known, meaning


def test_the_same_generator_state_gives_the_same_text_and_others_vary():
    scene = scene_for_seed(5)
    assert paraphrase(scene, random.Random(1)) == paraphrase(scene, random.Random(1))
    assert len({paraphrase(scene, random.Random(s)) for s in range(30)}) > 20


def _canon(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """single-word forms → canonical name"""
    return {form: name for name, forms in table.items() for form in forms if " " not in form and "-" not in form}


@pytest.mark.parametrize("seed", range(60))
def test_a_paraphrase_states_nothing_false(seed):
    """One object on a background with no colour in its name: every shape and colour word is the object's, the
    size word (if any) its size."""
    base = scene_for_seed(seed, num_objects=1)
    scene = replace(base, background=("black", "checker", "grid")[seed % 3], events=(), pan="none")
    (o,) = scene.objects
    shapes, colors, sizes = _canon(SHAPE_NOUNS), _canon(COLOR_WORDS), _canon(SIZE_WORDS)
    for s in range(10):
        words = _words(paraphrase(scene, random.Random(s)))
        said = {shapes[w] for w in words if w in shapes}
        assert said <= {o.shape} and said, (words, o.shape)
        assert {colors[w] for w in words if w in colors} <= {o.color}, (words, o.color)
        assert {sizes[w] for w in words if w in sizes} <= {o.size}, (words, o.size)


def test_with_nothing_omitted_the_size_and_background_are_said():
    scene = replace(scene_for_seed(3, num_objects=1), background="gray")
    (o,) = scene.objects
    for s in range(20):
        words = _words(paraphrase(scene, random.Random(s), p_omit=0.0))
        assert set(words) & {w for f in SIZE_WORDS[o.size] for w in _words(f)}, words
        assert set(words) & {w for f in BACKGROUND_WORDS["gray"] for w in _words(f)}, words


def test_identical_objects_can_be_said_as_a_count():
    rng = random.Random(0)
    texts = []
    for seed in range(200):
        scene = with_duplicate(scene_for_seed(seed, num_objects=2), rng)
        a, b = scene.objects
        if (a.shape, a.color) == (b.shape, b.color):
            assert not rule_violations(scene)
            texts.append(paraphrase(scene, rng))
    assert len(texts) > 20
    assert any(t.lower().startswith(("two ", "there is two", "we see two")) or " two " in t.lower() for t in texts)


def test_grown_vocabulary_keeps_old_ids_and_reads_synonyms_as_their_words():
    tok = build_word_tokenizer(["a", "red", "circle", "moves", "left"])
    encoder = build_t5_encoder("tiny", len(tok))
    twin, other = copy.deepcopy(encoder), copy.deepcopy(encoder)
    before = encode_prompts(tok, encoder, ["a red circle moves left"])
    words = {"crimson": "red", "ball": "circle", "northwest": "up left", "we": None}
    grown = grow_vocabulary(tok, encoder, words, seed=1)
    assert len(grown) == len(tok) + 4 and encoder.config.vocab_size == len(grown)
    assert all(grown.convert_tokens_to_ids(w) == i for w, i in tok.get_vocab().items())
    after = encode_prompts(grown, encoder, ["a red circle moves left"])
    assert torch.equal(before.embeds, after.embeds)
    assert torch.equal(encode_prompts(grown, encoder, ["a crimson ball moves left"]).embeds, after.embeds)
    rows = encoder.get_input_embeddings().weight
    assert torch.equal(rows[grown.convert_tokens_to_ids("northwest")], rows[grown.convert_tokens_to_ids("left")])
    # (no "up" in this vocabulary: the mean of what it has); a word with no meaning: a fresh row, the seed's
    grow_vocabulary(tok, twin, words, seed=1)
    grow_vocabulary(tok, other, words, seed=2)
    we = grown.convert_tokens_to_ids("we")
    assert torch.equal(twin.get_input_embeddings().weight, rows)
    assert not torch.equal(other.get_input_embeddings().weight[we], rows[we])
    assert grow_vocabulary(grown, encoder, {"crimson": "red"}) is grown  # nothing new: unchanged


def test_world_dataset_captions():
    plain = WorldDataset(num_clips=50, seed=2)
    assert all(plain[i].caption == caption(plain.scene(i)) for i in range(5))  # the default is unchanged
    free = WorldDataset(num_clips=50, seed=2, paraphrase=1.0, duplicates=0.5)
    texts = [free[i].caption for i in range(12)]
    assert texts == [free[i].caption for i in range(12)]  # an item is the same whenever it is read
    assert sum(t != caption(free.scene(i)) for i, t in enumerate(texts)) >= 10
    half = WorldDataset(num_clips=400, seed=2, paraphrase=0.5)
    share = sum(half.caption(i, half.scene(i)) != caption(half.scene(i)) for i in range(400)) / 400
    assert 0.35 < share < 0.65
    with pytest.raises(ValueError):
        WorldDataset(num_clips=5, paraphrase=1.5)
