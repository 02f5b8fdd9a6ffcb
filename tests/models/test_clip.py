"""ClipEmbedder: a generic transformers CLIP folder (tiny, random, built here) and the world CLIP."""

import json

import numpy as np
import pytest
import torch

from anyframe.errors import AnyframeInputError
from anyframe.models.clip import ClipEmbedder, build_world_clip, folder_size

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _clip_tokenizer(folder):
    """A tiny CLIP BPE tokenizer (letters, a few merges), laid out like openai's: <|startoftext|> prepended,
    <|endoftext|> appended — the last ids, and also the padding token."""
    from transformers import CLIPTokenizer

    vocab = {}
    for c in LETTERS:
        vocab.setdefault(c, len(vocab))
    for c in LETTERS:
        vocab.setdefault(c + "</w>", len(vocab))
    merges = ["r e", "re d</w>", "c i", "ci r", "cir c", "circ l", "circl e</w>"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    return CLIPTokenizer.from_pretrained(str(folder))  # from vocab.json + merges.txt, as openai's folders ship


@pytest.fixture(scope="module")
def generic_folder(tmp_path_factory):
    """A random tiny ``CLIPModel`` + ``CLIPTokenizer`` + ``CLIPImageProcessor`` saved as transformers saves them."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = tmp_path_factory.mktemp("generic") / "clip"
    folder.mkdir()
    tok = _clip_tokenizer(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(image_size=24, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24}).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_world():
    return build_world_clip(width=32, layers=1, heads=2, text_width=32, text_layers=2, text_heads=2,
                            projection_dim=16, seed=3)


def frames(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_generic_folder_shapes_norms_and_score(generic_folder):
    clip = ClipEmbedder.from_pretrained(generic_folder, batch_size=3)
    imgs = clip.embed_images(frames(7, size=40))  # 40×40: resized and cropped to 24 by the folder's processor
    assert imgs.shape == (7, 16) and imgs.dtype == torch.float32
    torch.testing.assert_close(imgs.norm(dim=-1), torch.ones(7))
    texts = ["a red circle", "red", "circle red", "zzz", "a", "red red red", "c"]
    txt = clip.embed_texts(texts)
    assert txt.shape == (7, 16)
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(7))
    assert not torch.allclose(txt[0], txt[1])
    torch.testing.assert_close(clip.score(frames(7, size=40), texts), (imgs * txt).sum(-1))
    assert clip.score(frames(7, size=40), texts).abs().max() <= 1.0 + 1e-6
    assert not clip.model.training


def test_generic_folder_is_deterministic_and_batch_independent(generic_folder):
    a = ClipEmbedder.from_pretrained(generic_folder, batch_size=2)
    b = ClipEmbedder.from_pretrained(generic_folder, batch_size=5)
    x = frames(5, size=24, seed=1)
    assert torch.equal(a.embed_images(x), a.embed_images(x))
    torch.testing.assert_close(a.embed_images(x), b.embed_images(x), atol=1e-6, rtol=0)
    alone = a.embed_texts(["a red circle"])
    among = a.embed_texts(["zz", "a red circle", "red circle red circle red circle"])
    torch.testing.assert_close(alone[0], among[1], atol=1e-6, rtol=0)


def _pooling_positions(clip, text):
    tokens = clip.tokenize([text])
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    eos = int((ids[0] == clip.eos_token_id).nonzero()[0])
    return ids, mask, eos


@pytest.mark.parametrize("which", ["generic", "world"])
def test_text_tower_pools_at_the_first_eos(which, generic_folder, tiny_world):
    clip = ClipEmbedder.from_pretrained(generic_folder) if which == "generic" else tiny_world
    ids, mask, eos = _pooling_positions(clip, "a red circle")
    assert eos + 1 < ids.shape[1], "the text must leave room after its eos"
    base = clip.text_features(ids, mask).detach()
    other = int(ids[0, 1]) + 1  # some other token id
    after = ids.clone()
    after[0, eos + 1 :] = other  # what follows </s> (padding) changed, and attended to
    assert torch.allclose(clip.text_features(after, torch.ones_like(mask)).detach(), base, atol=1e-6)
    before = ids.clone()
    before[0, eos - 1] = other  # a word before </s> changed
    assert not torch.allclose(clip.text_features(before, mask).detach(), base, atol=1e-4)


def test_world_clip_tokenizer_and_config(tiny_world):
    tok, cfg = tiny_world.tokenizer, tiny_world.model.config.text_config
    assert tok.eos_token_id == 1 and cfg.eos_token_id == 1 and cfg.pad_token_id == 0 == tok.pad_token_id
    for word in ("moving", "staying", "still", "circle", "background"):
        assert tok.convert_tokens_to_ids(word) != tok.unk_token_id, word
    ids = tiny_world.tokenize(["a small red circle moving left"])["input_ids"][0]
    assert tok.unk_token_id not in ids.tolist()
    assert int(ids[(ids != 0).nonzero().max()]) == 1  # the last real token is </s>
    assert tiny_world.max_length == 96 and ids.shape[0] == 96


def test_world_clip_keeps_world_frames_whole(tiny_world):
    x = frames(4)
    fast = tiny_world.pixel_values(x)
    assert fast.shape == (4, 3, 32, 32)
    by_processor = tiny_world.processor(images=list(x), return_tensors="pt")["pixel_values"]
    assert by_processor.shape == (4, 3, 32, 32)
    torch.testing.assert_close(fast, by_processor, atol=1e-5, rtol=0)
    mean = torch.tensor(tiny_world.processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(tiny_world.processor.image_std).view(1, 3, 1, 1)
    # the pixels are the frames' own, only rescaled and normalised: no resampling, no crop offset
    torch.testing.assert_close(fast * std + mean, torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, atol=1e-5,
                               rtol=0)
    assert tiny_world.pixel_values(frames(2, size=64)).shape == (2, 3, 32, 32)  # larger frames: resized


def test_save_load_round_trip(tiny_world, tmp_path):
    from transformers import AutoTokenizer, CLIPModel

    out = tiny_world.save_pretrained(tmp_path / "clip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]  # no temporary folder left beside it
    loaded = ClipEmbedder.from_pretrained(out)
    a, b = tiny_world.model.state_dict(), loaded.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x, texts = frames(3), ["a small red circle moving left", "on a black background", "a large blue cross staying still"]
    assert torch.equal(loaded.embed_images(x), tiny_world.embed_images(x))
    assert torch.equal(loaded.embed_texts(texts), tiny_world.embed_texts(texts))
    # a plain transformers folder: the parts load by themselves too
    assert AutoTokenizer.from_pretrained(str(out)).eos_token_id == 1
    assert isinstance(CLIPModel.from_pretrained(str(out)), CLIPModel)
    # float16 storage: smaller, loaded back as float32, close
    half = tiny_world.save_pretrained(tmp_path / "half", dtype="float16")
    assert folder_size(half) < folder_size(out)
    h = ClipEmbedder.from_pretrained(half)
    assert next(h.model.parameters()).dtype == torch.float32
    torch.testing.assert_close(h.embed_texts(texts), tiny_world.embed_texts(texts), atol=2e-3, rtol=0)


def test_default_world_clip_fits_the_size_budget(tmp_path):
    clip = build_world_clip()
    out = clip.save_pretrained(tmp_path / "clip", dtype="float16")
    assert folder_size(out) <= 4_000_000, folder_size(out)


def _one_line_error(path, match):
    with pytest.raises(AnyframeInputError, match=match) as info:
        ClipEmbedder.from_pretrained(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_bad_folders_are_input_errors(tiny_world, tmp_path):
    _one_line_error(tmp_path / "nowhere", "not found")
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "no config.json")
    good = tiny_world.save_pretrained(tmp_path / "good")

    def variant(name):
        import shutil

        return shutil.copytree(good, tmp_path / name)

    no_weights = variant("no-weights")
    (no_weights / "model.safetensors").unlink()
    _one_line_error(no_weights, "no CLIP weights")
    corrupt = variant("corrupt")
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    _one_line_error(corrupt, "cannot load the CLIP weights")
    garbage = variant("garbage")
    (garbage / "model.safetensors").write_bytes(b"\x00" * 64)
    _one_line_error(garbage, "cannot load the CLIP weights")
    other = variant("other-shape")
    config = json.loads((other / "config.json").read_text())
    config["projection_dim"] = 24
    config["text_config"]["projection_dim"] = 24
    config["vision_config"]["projection_dim"] = 24
    (other / "config.json").write_text(json.dumps(config))
    _one_line_error(other, "CLIP")
    no_tokenizer = variant("no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    (no_tokenizer / "tokenizer_config.json").unlink()
    _one_line_error(no_tokenizer, "tokenizer")
    bad_tokenizer = variant("bad-tokenizer")
    (bad_tokenizer / "tokenizer.json").write_text("garbage{")
    _one_line_error(bad_tokenizer, "cannot load the tokenizer")
    no_processor = variant("no-processor")
    (no_processor / "preprocessor_config.json").unlink()
    _one_line_error(no_processor, "image processor")
    bad_json = variant("bad-json")
    (bad_json / "config.json").write_text("{not json")
    _one_line_error(bad_json, "config.json")


def test_bad_inputs(tiny_world):
    with pytest.raises(AnyframeInputError, match="uint8"):
        tiny_world.embed_images(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(AnyframeInputError, match=r"\[N, H, W, 3\]"):
        tiny_world.embed_images(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(AnyframeInputError, match="one text per frame"):
        tiny_world.score(frames(2), ["a"])
    assert tiny_world.embed_texts([]).shape == (0, 16)
