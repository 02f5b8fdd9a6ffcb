"""The JDM CMI estimate (anyframe.data.cmi) with embedders whose geometry the test controls."""

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from anyframe.data.cmi import CMITable, ImageTextEmbedder, context_cosine, dataset_identity, estimate_cmi
from anyframe.data.world import WorldDataset
from anyframe.errors import AnyframeInputError


@dataclass
class Clip:
    video: torch.Tensor  # [T, 3, H, W] in [-1, 1]
    regional_captions: list
    caption: str = ""
    meta: dict = field(default_factory=dict)


class FakeDataset:
    """Clip n's middle frame carries n in its first pixel; its captions are ``"c{n} o{k}"``."""

    def __init__(self, objects):
        self.objects = list(objects)

    def __len__(self):
        return len(self.objects)

    def __getitem__(self, n):
        video = torch.full((5, 3, 4, 4), -1.0)
        video[2, 0, 0, 0] = (n % 256) / 127.5 - 1.0
        video[2, 1, 0, 0] = (n // 256) / 127.5 - 1.0
        return Clip(video, [f"c{n} o{k}" for k in range(self.objects[n])])


class FakeEmbedder:
    """Image of clip n → ``image[n]``; text ``"c{n} o{k}"`` → ``text(n, k)``: both unit-normalised."""

    def __init__(self, image, text):
        self.image, self.text = image, text

    def embed_images(self, frames):
        ids = frames[:, 0, 0, 0].astype(np.int64) + 256 * frames[:, 0, 0, 1].astype(np.int64)
        return torch.nn.functional.normalize(torch.stack([self.image(int(n)) for n in ids]), dim=-1)

    def embed_texts(self, texts):
        out = []
        for t in texts:
            clip, obj = t.split()
            out.append(self.text(int(clip[1:]), int(obj[1:])))
        return torch.nn.functional.normalize(torch.stack(out), dim=-1)


def gaussian(dim, *key):
    return torch.from_numpy(np.random.default_rng(list(key)).standard_normal(dim)).float()


D = 64


def test_fake_embedder_is_an_embedder():
    assert isinstance(FakeEmbedder(None, None), ImageTextEmbedder)


def test_context_cosine_is_the_cosine_of_the_concatenations():
    a, b, c = torch.randn(5, 7), torch.randn(5, 7), torch.randn(5, 3)
    explicit = torch.nn.functional.cosine_similarity(torch.cat([a, c], -1), torch.cat([b, c], -1), dim=-1)
    torch.testing.assert_close(context_cosine(a, b, c), explicit)
    u = torch.nn.functional.normalize
    a, b, c = u(a, dim=-1), u(b, dim=-1), u(torch.randn(5, 7), dim=-1)  # unit vectors: (1 + a·b) / 2
    torch.testing.assert_close(context_cosine(a, b, c), (1 + (a * b).sum(-1)) / 2)


def test_captions_that_share_a_clip_component_have_high_cmi():
    # a clip's captions share a direction of their own: y_j is predictable from y_i, even given how x0 looks
    data = FakeDataset([3] * 40)
    emb = FakeEmbedder(image=lambda n: gaussian(D, 1, n), text=lambda n, k: gaussian(D, 2, n) + 0.3 * gaussian(D, 3, k))
    table = estimate_cmi(emb, data, negatives=16, temperature=0.1, seed=0, progress=False)
    assert table.has_pairs.all()
    assert float(table.values.min()) > 2.0, table.values  # ≈ (0.96 − 0.5) / 0.1 ≈ 4.5 nats
    assert float(table.values.max()) <= 1 / 0.1 + 1e-4  # Î ≤ (1 − 0) / τ
    for n in range(len(data)):
        pairs = table.pairs(n)
        assert len(pairs) == 3 * 2
        assert math.isclose(float(pairs.mean()), table.value(n), rel_tol=1e-5)


def test_indistinguishable_negatives_give_zero():
    data = FakeDataset([2, 3, 4] * 10)
    same = FakeEmbedder(image=lambda n: gaussian(D, 1, n), text=lambda n, k: torch.ones(D))
    table = estimate_cmi(same, data, negatives=8, progress=False)
    assert table.values.abs().max() < 1e-5
    # independent random captions: positives are distributed like the negatives, Î ≈ 0 on average
    rand = FakeEmbedder(image=lambda n: gaussian(D, 1, n), text=lambda n, k: gaussian(256, 4, n, k))
    table = estimate_cmi(rand, FakeDataset([3] * 60), negatives=32, progress=False)
    assert abs(float(table.values.mean())) < 0.3, table.values.mean()


def test_dependence_explained_by_the_context_is_not_counted():
    # 6 looks (groups of 20 clips); captions carry their group's direction, not their clip's. Negatives from
    # clips that look alike (the same group) carry it too, so given x0 the captions are independent: Î ≈ 0.
    # Unrelated-looking neighbours (images that ignore the group) make the same captions look dependent.
    data = FakeDataset([3] * 120)
    group = lambda n: n % 6
    text = lambda n, k: gaussian(256, 5, group(n)) + 0.4 * gaussian(256, 6, n, k)
    by_look = FakeEmbedder(image=lambda n: gaussian(D, 7, group(n)) + 0.05 * gaussian(D, 8, n), text=text)
    blind = FakeEmbedder(image=lambda n: gaussian(D, 8, n), text=text)
    conditional = estimate_cmi(by_look, data, negatives=12, progress=False)
    unconditional = estimate_cmi(blind, data, negatives=12, progress=False)
    assert abs(float(conditional.values.mean())) < 0.3, conditional.values.mean()
    assert float(unconditional.values.mean()) > 1.5, unconditional.values.mean()


def test_clips_without_pairs_are_zero_and_flagged():
    data = FakeDataset([1, 2, 0, 3, 1] * 6)
    emb = FakeEmbedder(image=lambda n: gaussian(D, 1, n), text=lambda n, k: gaussian(D, 2, n) + 0.3 * gaussian(D, 3, k))
    table = estimate_cmi(emb, data, negatives=8, progress=False)
    k = torch.tensor(data.objects)
    assert torch.equal(table.has_pairs, k >= 2)
    assert torch.equal(table.values[k < 2], torch.zeros(int((k < 2).sum())))
    assert (table.values[k >= 2] > 1).all()
    assert len(table.pairs(0)) == 0 and len(table.pairs(3)) == 6
    summary = table.summary(w=1.0, alpha=1.0)
    assert summary["share_with_pairs"] == pytest.approx(float((k >= 2).float().mean()))
    assert summary["weight"]["mean_all_clips"] == pytest.approx(float(torch.exp(-table.values).mean()), rel=1e-5)
    assert summary["cmi"]["q05"] <= summary["cmi"]["median"] <= summary["cmi"]["q95"]


def test_seeded_and_validated():
    data = FakeDataset([3] * 30)
    emb = FakeEmbedder(image=lambda n: gaussian(D, 1, n), text=lambda n, k: gaussian(D, 9, n, k))
    a = estimate_cmi(emb, data, negatives=8, seed=1, progress=False)
    b = estimate_cmi(emb, data, negatives=8, seed=1, progress=False, batch_size=7)  # other chunking, same table
    c = estimate_cmi(emb, data, negatives=8, seed=2, progress=False)
    assert torch.allclose(a.values, b.values, atol=1e-5)
    assert not torch.allclose(a.values, c.values)
    with pytest.raises(AnyframeInputError, match="negatives"):
        estimate_cmi(emb, data, negatives=30, progress=False)  # 29 neighbours at most
    with pytest.raises(AnyframeInputError, match="num_clips"):
        estimate_cmi(emb, data, num_clips=31, negatives=4, progress=False)
    with pytest.raises(AnyframeInputError, match="temperature"):
        estimate_cmi(emb, data, negatives=4, temperature=0, progress=False)


class HashEmbedder:
    """Any frames and texts → fixed random unit vectors (a stand-in for a CLIP on real world clips)."""

    path = "fake://hash"

    def embed_images(self, frames):
        proj = torch.from_numpy(np.random.default_rng(0).standard_normal((frames[0].size, 16))).float()
        return torch.nn.functional.normalize(torch.from_numpy(frames.reshape(len(frames), -1)).float() @ proj, dim=-1)

    def embed_texts(self, texts):
        return torch.nn.functional.normalize(torch.stack([gaussian(16, *map(ord, t[:40])) for t in texts]), dim=-1)


@pytest.fixture(scope="module")
def world_table():
    return estimate_cmi(HashEmbedder(), WorldDataset(30, split="train", seed=0), negatives=8, seed=0, progress=False)


def test_table_save_load_round_trip(world_table, tmp_path):
    path = world_table.save(tmp_path / "cmi" / "t.safetensors")
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.safetensors"]
    loaded = CMITable.load(path)
    assert torch.equal(loaded.values, world_table.values) and torch.equal(loaded.has_pairs, world_table.has_pairs)
    assert torch.equal(loaded.pair_values, world_table.pair_values)
    assert torch.equal(loaded.pair_offsets, world_table.pair_offsets)
    assert loaded.meta == world_table.meta
    assert loaded.meta["dataset"] == dataset_identity(WorldDataset(30, split="train", seed=0))
    assert loaded.meta["dataset"]["class"] == "WorldDataset" and loaded.meta["num_clips"] == 30
    assert loaded.meta["negatives"] == 8 and loaded.meta["temperature"] == 0.1 and loaded.meta["embedder"]["path"] == "fake://hash"
    assert loaded.value(3) == pytest.approx(float(world_table.values[3]))
    with pytest.raises(AnyframeInputError, match="outside"):
        loaded.value(30)


def test_table_load_errors(tmp_path):
    with pytest.raises(AnyframeInputError, match="not found"):
        CMITable.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x07" * 100)
    with pytest.raises(AnyframeInputError, match="cannot read CMI table") as info:
        CMITable.load(bad)
    assert "\n" not in str(info.value)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(AnyframeInputError, match="not a CMI table"):
        CMITable.load(tmp_path / "other.safetensors")


def test_check_dataset(world_table):
    world_table.check_dataset(WorldDataset(30, split="train", seed=0))
    world_table.check_dataset(WorldDataset(10, split="train", seed=0))  # a prefix of the same clips
    with pytest.raises(AnyframeInputError, match="seed"):
        world_table.check_dataset(WorldDataset(30, split="train", seed=1))
    with pytest.raises(AnyframeInputError, match="split"):
        world_table.check_dataset(WorldDataset(30, split="ood_style", seed=0))
    with pytest.raises(AnyframeInputError, match="duplicates"):
        world_table.check_dataset(WorldDataset(30, split="train", seed=0, duplicates=0.5))
    with pytest.raises(AnyframeInputError, match="31 clips"):
        world_table.check_dataset(WorldDataset(31, split="train", seed=0))


def test_real_world_clips_with_a_tiny_world_clip():
    from anyframe.models.clip import build_world_clip

    clip = build_world_clip(width=32, layers=1, heads=2, text_width=32, text_layers=1, text_heads=2,
                            projection_dim=16, seed=0)
    data = WorldDataset(50, split="train", seed=0)
    table = estimate_cmi(clip, data, negatives=16, seed=0, progress=False)
    counts = torch.tensor([len(data[i].regional_captions) for i in range(50)])
    assert torch.equal(table.has_pairs, counts >= 2)
    assert torch.isfinite(table.values).all() and torch.isfinite(table.pair_values).all()
    assert table.values.abs().max() <= 10 + 1e-4
    assert (table.values[table.has_pairs] != 0).all()
    assert len(table.pair_values) == int((counts * (counts - 1)).sum())
    table.check_dataset(data)
