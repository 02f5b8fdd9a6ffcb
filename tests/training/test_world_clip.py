"""Contrastive training of the world CLIP (anyframe.training.world_clip), on a handful of clips."""

import numpy as np
import pytest
import torch

from anyframe.errors import AnyframeInputError
from anyframe.models.clip import ClipEmbedder, build_world_clip
from anyframe.training.world_clip import (
    contrastive_loss,
    regional_frame,
    render_pool,
    sample_pairs,
    train_world_clip,
)

TINY = dict(width=32, layers=1, heads=2, text_width=32, text_layers=1, text_heads=2, projection_dim=32)


@pytest.fixture(scope="module")
def pool():
    return render_pool(8, seed=11)


def test_regional_frame_keeps_the_object_only():
    frame = np.zeros((6, 6, 3), np.uint8)
    frame[:, :3] = (10, 20, 30)
    frame[:, 3:] = (10, 20, 30)
    frame[0, 0] = (200, 0, 0)  # the object
    frame[5, 5] = (0, 200, 0)  # another object
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True
    out = regional_frame(frame, mask)
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[5, 5]) == (10, 20, 30)  # the median colour: the background
    assert (out[1:] == (10, 20, 30)).all()


def test_pairs_mix_full_and_regional_captions_without_duplicates(pool):
    rng = np.random.default_rng(0)
    texts = []
    for _ in range(10):
        images, batch = sample_pairs(pool, 8, rng)
        assert images.shape == (8, 32, 32, 3) and images.dtype == np.uint8
        assert len(set(batch)) == len(batch)
        texts += batch
    full = sum(t in pool.captions for t in texts)
    regional = sum(any(t in r for r in pool.regional) for t in texts)
    assert full + regional == len(texts) and full > 10 and regional > 10


def test_bucketed_loss_equals_clipmodels_own(pool):
    clip = build_world_clip(seed=0, **TINY)
    images, texts = sample_pairs(pool, 8, np.random.default_rng(1))
    tokens = clip.tokenizer(texts, padding="longest", return_tensors="pt")
    reference = clip.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           pixel_values=clip.pixel_values(images), return_loss=True).loss
    torch.testing.assert_close(contrastive_loss(clip, images, texts, buckets=3), reference, atol=1e-5, rtol=1e-5)


def test_training_reduces_the_contrastive_loss(pool):
    images, texts = sample_pairs(pool, 8, np.random.default_rng(123))  # a fixed batch of the training clips
    with torch.no_grad():
        before = float(contrastive_loss(build_world_clip(seed=0, **TINY), images, texts))
    result = train_world_clip(None, steps=40, batch_size=8, lr=3e-3, seed=0, num_clips=8, progress=False,
                              model=TINY, eval_clips=8)
    with torch.no_grad():
        after = float(contrastive_loss(result["clip"], images, texts))
    assert before > 1.8  # ≈ ln 8 at initialisation
    assert after < 0.6 * before, (before, after)
    assert result["loss_last"] < result["loss_first"]
    assert set(result["retrieval"]) >= {"text_to_image_top1", "image_to_text_top1", "chance_top1"}


def test_same_seed_same_weights_and_the_written_folder(tmp_path):
    kwargs = dict(steps=4, batch_size=4, lr=1e-3, num_clips=6, progress=False, model=TINY, eval_clips=4)
    a = train_world_clip(tmp_path / "a", seed=5, **kwargs)
    b = train_world_clip(tmp_path / "b", seed=5, **kwargs)
    c = train_world_clip(None, seed=6, **kwargs)
    sa, sb, sc = (r["clip"].model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    folder = tmp_path / "a"
    assert {"README.md", "training.json", "config.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "anyframe clip train --out" in card and "1/4" in card and "text → image" in card
    loaded = ClipEmbedder.from_pretrained(folder)  # float16 on disk; training evaluated the same rounded weights
    sl = loaded.model.state_dict()
    assert all(torch.equal(sa[k], sl[k]) for k in sa)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_bad_settings():
    with pytest.raises(AnyframeInputError):
        train_world_clip(None, steps=1, batch_size=8, lr=1e-3, seed=0, num_clips=4, progress=False, model=TINY)
    with pytest.raises(AnyframeInputError, match="lr"):
        train_world_clip(None, steps=1, batch_size=2, lr=float("nan"), seed=0, num_clips=4, progress=False, model=TINY)
