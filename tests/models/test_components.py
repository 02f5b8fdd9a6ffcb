"""Autoencoder and text-encoder builders: configs, normalisation, save/load, no downloads."""

import pytest
import torch
from diffusers import AutoencoderKL
from transformers import PreTrainedTokenizerFast, T5EncoderModel

from anyframe.models.autoencoder import (
    build_world_autoencoder,
    decode_video,
    encode_video,
    spatial_compression,
)
from anyframe.models.text_encoder import (
    BASIC_VOCABULARY,
    TextCondition,
    build_t5_encoder,
    build_word_tokenizer,
    encode_prompts,
)


def test_world_autoencoder_shapes_and_normalisation(tmp_path):
    vae = build_world_autoencoder("S", scaling_factor=0.5, shift_factor=0.25).eval()
    assert spatial_compression(vae) == 4
    video = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    z = encode_video(vae, video)
    assert z.shape == (2, 4, 3, 8, 8)
    raw = vae.encode(video[:, :, 1]).latent_dist.mode()
    torch.testing.assert_close(z[:, :, 1], (raw - 0.25) * 0.5, atol=1e-5, rtol=1e-5)
    out = decode_video(vae, z)
    assert out.shape == video.shape
    torch.testing.assert_close(out[:, :, 2], vae.decode(vae.encode(video[:, :, 2]).latent_dist.mode()).sample, atol=1e-5, rtol=1e-5)
    # the normalisation travels in the config
    vae.save_pretrained(tmp_path / "vae")
    loaded = AutoencoderKL.from_pretrained(tmp_path / "vae").eval()
    assert loaded.config.scaling_factor == 0.5 and loaded.config.shift_factor == 0.25
    assert torch.equal(encode_video(loaded, video), z)


def test_frames_are_encoded_independently():
    vae = build_world_autoencoder("tiny").eval()
    video = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    z = encode_video(vae, video)
    z2 = encode_video(vae, video[:, :, 2:3])
    torch.testing.assert_close(z[:, :, 2:3], z2, atol=1e-5, rtol=1e-5)


def test_word_tokenizer():
    tok = build_word_tokenizer(max_length=10)
    ids = tok("A RED circle, moves left.").input_ids
    words = tok.convert_ids_to_tokens(ids)
    assert words == ["a", "red", "circle", ",", "moves", "left", ".", "</s>"]
    assert tok.convert_ids_to_tokens(tok("zebra").input_ids) == ["<unk>", "</s>"]
    assert tok("").input_ids == [tok.eos_token_id]
    assert tok.pad_token_id == 0
    batch = tok(["red", "a blue square"], padding="max_length", max_length=10, return_tensors="pt")
    assert batch.input_ids.shape == (2, 10) and batch.attention_mask.sum(1).tolist() == [2, 4]
    assert len(tok) == len(set(BASIC_VOCABULARY)) + 3


def test_text_encoder_save_load(tmp_path):
    torch.manual_seed(0)
    tok = build_word_tokenizer(max_length=12)
    enc = build_t5_encoder("tiny", len(tok))
    prompts = ["a red circle moves left", "", "two blue squares"]
    cond = encode_prompts(tok, enc, prompts)
    assert cond.embeds.shape == (3, 12, 32) and cond.mask.dtype == torch.bool
    assert cond.mask.sum(1).tolist() == [6, 1, 4]
    tok.save_pretrained(tmp_path / "tok")
    enc.save_pretrained(tmp_path / "enc")
    tok2 = PreTrainedTokenizerFast.from_pretrained(tmp_path / "tok")
    enc2 = T5EncoderModel.from_pretrained(tmp_path / "enc").eval()
    cond2 = encode_prompts(tok2, enc2, prompts)
    assert torch.equal(cond.embeds, cond2.embeds) and torch.equal(cond.mask, cond2.mask)
    # different prompts → different embeddings
    assert (cond.embeds[0] - cond.embeds[2]).abs().max() > 1e-3
    # a repeated prompt is encoded once and its rows copied (per-frame narratives repeat): the same rows
    repeated = encode_prompts(tok, enc, [prompts[2], prompts[0], prompts[2], prompts[2]])
    torch.testing.assert_close(repeated.embeds, cond.embeds[[2, 0, 2, 2]], atol=1e-6, rtol=0)
    assert torch.equal(repeated.mask, cond.mask[[2, 0, 2, 2]])


def test_text_condition_select():
    a = TextCondition(torch.ones(3, 2, 4), torch.ones(3, 2, dtype=torch.bool))
    b = TextCondition(torch.zeros(3, 2, 4), torch.zeros(3, 2, dtype=torch.bool))
    out = a.select(torch.tensor([True, False, True]), b)
    assert out.embeds[:, 0, 0].tolist() == [1.0, 0.0, 1.0]
    assert out.mask[:, 0].tolist() == [True, False, True]


def test_unknown_sizes():
    with pytest.raises(ValueError):
        build_world_autoencoder("XL")
    with pytest.raises(ValueError):
        build_t5_encoder("XL", 10)
