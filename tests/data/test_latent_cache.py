"""The latent cache: shards, exactness against a direct encode, null text, fingerprints, atomic builds."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from anyframe.data import (
    LatentCacheDataset,
    ManifestVideoDataset,
    ToyMotionDataset,
    build_latent_cache,
    collate,
    encoders_fingerprint,
)
from anyframe.data import latent_cache as lc
from anyframe.errors import AnyframeInputError
from anyframe.io import write_mp4
from anyframe.models.autoencoder import encode_video
from anyframe.models.text_encoder import encode_prompts
from anyframe.pipelines import WORLD_PRESETS, build_world_pipeline

# Cached values are bitwise equal to a one-clip encode here (measured for batch sizes 1, 3, 8), but
# CPU convolution kernels may block the batch dimension differently on other machines, moving float32
# results by ~1e-7; a wrong frame, clip, crop or caption is off by ≥ 1e-2.
ATOL = 1e-6

L = WORLD_PRESETS["tiny"]["max_length"]  # the tiny tokenizer's fixed length


@pytest.fixture(scope="module")
def tiny():
    """The tiny world's encoders: vae (2× down, 4 channels), tokenizer (length L), text encoder."""
    pipe = build_world_pipeline("tiny")
    return pipe.vae, pipe.tokenizer, pipe.text_encoder


@pytest.fixture(scope="module")
def toy_cache(tiny, tmp_path_factory):
    """10 toy clips (4 frames, 16×16) in shards of 4, encoded in batches of 3."""
    dataset = ToyMotionDataset(num_clips=10, num_frames=4, size=16)
    out = tmp_path_factory.mktemp("toy") / "cache"
    build_latent_cache(dataset, *tiny, out, shard_size=4, batch_size=3)
    return dataset, out


def direct_encode(tiny, sample):
    """What the cache should hold for one sample: latents [C, T, h, w], embeds [L, D], mask [L]."""
    vae, tokenizer, text_encoder = tiny
    with torch.no_grad():
        latents = encode_video(vae, sample.video.permute(1, 0, 2, 3)[None])[0]  # [T, 3, H, W] → [1, 3, T, H, W]
    text = encode_prompts(tokenizer, text_encoder, [sample.caption])
    return latents, text.embeds[0], text.mask[0]


def hidden_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------------- content


def test_cache_layout(toy_cache):
    _, out = toy_cache
    assert sorted(p.name for p in out.iterdir()) == [
        "index.json", "null_text.safetensors", "shard-00000.safetensors", "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]
    index = json.loads((out / "index.json").read_text())
    assert index["version"] == 1 and len(index["fingerprint"]) == 64
    assert [s["rows"] for s in index["shards"]] == [4, 4, 2]
    assert all(s["latent_shape"] == [4, 4, 8, 8] and s["text_shape"] == [L, 32] for s in index["shards"])
    assert [(it["shard"], it["row"]) for it in index["items"]] == [(i // 4, i % 4) for i in range(10)]
    with safe_open(out / "shard-00002.safetensors", framework="pt") as f:
        assert f.get_tensor("latents").shape == (2, 4, 4, 8, 8) and f.get_tensor("latents").dtype == torch.float32
        assert f.get_tensor("text_embeds").shape == (2, L, 32)
        assert f.get_tensor("text_mask").shape == (2, L)


def test_cached_items_equal_a_direct_encode(tiny, toy_cache):
    dataset, out = toy_cache
    cache = LatentCacheDataset(out)
    assert len(cache) == 10
    for i in range(10):
        sample, item = dataset[i], cache[i]
        latents, embeds, mask = direct_encode(tiny, sample)
        assert item.latents.shape == (4, 4, 8, 8) and item.latents.dtype == torch.float32
        torch.testing.assert_close(item.latents, latents, atol=ATOL, rtol=0)
        torch.testing.assert_close(item.text_embeds, embeds, atol=ATOL, rtol=0)
        assert item.text_mask.dtype == torch.bool and torch.equal(item.text_mask, mask)
        assert item.caption == sample.caption and item.meta == {"index": i}
        assert cache.bucket(i) == (4, 4, 8, 8)
    batch = collate([cache[i] for i in range(3)])
    assert batch.latents.shape == (3, 4, 4, 8, 8) and batch.text_mask.shape == (3, L)


def test_null_text_is_the_empty_prompt(tiny, toy_cache):
    _, tokenizer, text_encoder = tiny
    null = LatentCacheDataset(toy_cache[1]).null_text
    expected = encode_prompts(tokenizer, text_encoder, [""])
    assert null.embeds.shape == (1, L, 32) and null.mask.dtype == torch.bool
    torch.testing.assert_close(null.embeds, expected.embeds, atol=ATOL, rtol=0)
    assert torch.equal(null.mask, expected.mask) and null.mask.sum() == 1  # just </s>


def test_cache_pickles_with_open_shards(toy_cache):
    cache = LatentCacheDataset(toy_cache[1])
    first = cache[0]
    clone = pickle.loads(pickle.dumps(cache))  # DataLoader workers started with spawn
    assert torch.equal(clone[0].latents, first.latents)


def test_meta_keeps_only_json_parts():
    meta = {"path": Path("/a/b.mp4"), "n": 3, "idx": [1, 2], "t": torch.zeros(2), "nan": float("nan"), "fps": None}
    assert lc._jsonable(meta) == {"path": "/a/b.mp4", "n": 3, "idx": [1, 2], "fps": None}


# ------------------------------------------------------------------------------ fingerprint


def test_fingerprint_detects_other_encoders(tiny, toy_cache):
    vae, tokenizer, text_encoder = tiny
    _, out = toy_cache
    fingerprint = encoders_fingerprint(vae, tokenizer, text_encoder)
    assert LatentCacheDataset(out, expected_fingerprint=fingerprint).fingerprint == fingerprint

    other_vae = copy.deepcopy(vae)
    with torch.no_grad():
        next(other_vae.parameters()).view(-1)[0] += 1e-3
    changed = encoders_fingerprint(other_vae, tokenizer, text_encoder)
    assert changed != fingerprint
    with pytest.raises(AnyframeInputError, match="different encoders"):
        LatentCacheDataset(out, expected_fingerprint=changed)

    other_text = copy.deepcopy(text_encoder)
    with torch.no_grad():
        next(other_text.parameters()).view(-1)[-1] -= 1e-3
    assert encoders_fingerprint(vae, tokenizer, other_text) != fingerprint
    # the latent normalisation is config, not a weight, but it changes every latent
    rescaled = copy.deepcopy(vae)
    rescaled.register_to_config(scaling_factor=0.5)
    assert encoders_fingerprint(rescaled, tokenizer, text_encoder) != fingerprint
    longer = copy.deepcopy(tokenizer)
    longer.model_max_length = L + 16
    assert encoders_fingerprint(vae, longer, text_encoder) != fingerprint


def test_a_cache_of_other_data_is_refused(tiny, tmp_path):
    source = {"source": "toy", "toy": {"num_clips": 3, "size": 16}, "seed": 0}
    out = build_latent_cache(ToyMotionDataset(num_clips=3, num_frames=2, size=16), *tiny, tmp_path / "c", source=source)
    assert len(LatentCacheDataset(out, expected_source=source)) == 3
    other = {"source": "toy", "toy": {"num_clips": 4, "size": 16}, "seed": 1}
    with pytest.raises(AnyframeInputError, match=r"other data \(seed, toy.num_clips differ\)"):
        LatentCacheDataset(out, expected_source=other)
    # a cache that recorded no source (built before sources were kept, or by hand) is read as it is
    unrecorded = build_latent_cache(ToyMotionDataset(num_clips=2, num_frames=2, size=16), *tiny, tmp_path / "u")
    assert len(LatentCacheDataset(unrecorded, expected_source=other)) == 2


def test_bad_cache_folders(tmp_path, toy_cache):
    with pytest.raises(AnyframeInputError, match="not a latent cache"):
        LatentCacheDataset(tmp_path)
    (tmp_path / "index.json").write_text("{truncated")
    with pytest.raises(AnyframeInputError, match="corrupt latent cache index") as info:
        LatentCacheDataset(tmp_path)
    assert str(tmp_path / "index.json") in str(info.value)
    (tmp_path / "index.json").write_text((toy_cache[1] / "index.json").read_text())
    with pytest.raises(AnyframeInputError, match="missing shard-00000"):
        LatentCacheDataset(tmp_path)


# ---------------------------------------------------------------------------------- building


def test_existing_out_dir_needs_overwrite(tiny, tmp_path):
    out = tmp_path / "cache"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    dataset = ToyMotionDataset(num_clips=2, num_frames=2, size=16)
    with pytest.raises(AnyframeInputError, match="already exists"):
        build_latent_cache(dataset, *tiny, out)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    build_latent_cache(dataset, *tiny, out, overwrite=True)
    assert not (out / "old.txt").exists() and len(LatentCacheDataset(out)) == 2
    assert hidden_entries(tmp_path) == []


def test_failed_build_leaves_nothing(tiny, tmp_path, monkeypatch):
    calls, written = [], []

    def failing_encode(vae, video):
        calls.append(len(video))
        if len(calls) == 2:
            written.extend(p.name for p in tmp_path.glob(".cache.*.tmp/*"))
            raise RuntimeError("encoder failed on the 2nd batch")
        return encode_video(vae, video)

    monkeypatch.setattr(lc, "encode_video", failing_encode)
    dataset = ToyMotionDataset(num_clips=10, num_frames=2, size=16)
    with pytest.raises(RuntimeError, match="2nd batch"):
        build_latent_cache(dataset, *tiny, tmp_path / "cache", shard_size=1, batch_size=2)
    assert calls == [2, 2] and written == ["shard-00000.safetensors"]  # it failed mid-build, with a shard written
    assert list(tmp_path.iterdir()) == []  # no cache, no temporary folder

    # an existing cache survives a failed rebuild untouched
    monkeypatch.setattr(lc, "encode_video", encode_video)
    build_latent_cache(ToyMotionDataset(num_clips=3, num_frames=2, size=16), *tiny, tmp_path / "cache")
    before = {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()}
    calls.clear()
    monkeypatch.setattr(lc, "encode_video", failing_encode)
    with pytest.raises(RuntimeError):
        build_latent_cache(dataset, *tiny, tmp_path / "cache", shard_size=2, batch_size=2, overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()} == before
    assert hidden_entries(tmp_path) == []


def test_buckets_never_share_a_shard(tiny, tmp_path):
    # wide and tall videos interleaved: each change of bucket starts a new batch and a new shard
    rng = np.random.default_rng(0)
    order = ["wide", "tall", "wide", "wide", "wide", "tall", "tall"]
    records = []
    for i, kind in enumerate(order):
        h, w = (16, 32) if kind == "wide" else (32, 16)
        write_mp4(rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8), tmp_path / f"{i}.mp4")
        records.append(json.dumps({"video": f"{i}.mp4", "caption": f"a {kind} video", "kind": kind}))
    (tmp_path / "m.jsonl").write_text("\n".join(records) + "\n")
    dataset = ManifestVideoDataset(manifest=tmp_path / "m.jsonl", num_frames=4, buckets=[(16, 32), (32, 16)])

    out = build_latent_cache(dataset, *tiny, tmp_path / "cache", shard_size=2, batch_size=8)
    index = json.loads((out / "index.json").read_text())
    shapes = {"wide": [4, 4, 8, 16], "tall": [4, 4, 16, 8]}
    # runs: wide | tall | wide wide | wide (shard full) | tall tall
    assert [(s["rows"], s["latent_shape"]) for s in index["shards"]] == [
        (1, shapes["wide"]), (1, shapes["tall"]), (2, shapes["wide"]), (1, shapes["wide"]), (2, shapes["tall"])
    ]
    cache = LatentCacheDataset(out)
    for i, kind in enumerate(order):
        item = cache[i]
        assert cache.bucket(i) == tuple(shapes[kind]) == tuple(item.latents.shape)
        assert item.meta["kind"] == kind and item.meta["frame_indices"] == [0, 1, 2, 3]
        torch.testing.assert_close(item.latents, direct_encode(tiny, dataset[i])[0], atol=ATOL, rtol=0)
