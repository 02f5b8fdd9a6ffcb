"""The shapes world as training data, and a recipe that trains on it."""

import numpy as np
import torch

from anyframe.data.world import WorldDataset
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import train
from anyframe.world import parse, render, semantics


def test_items_are_renders_with_their_ground_truth():
    data = WorldDataset(num_clips=20, size=32, frames=8, seed=3)
    sample = data[7]
    scene = data.scene(7)
    clip = render(scene)
    assert sample.video.shape == (8, 3, 32, 32) and -1 <= sample.video.min() and sample.video.max() <= 1
    expected = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(sample.video, expected)
    assert parse(sample.caption) == semantics(scene)
    assert len(sample.frame_captions) == 8 and len(sample.regional_captions) == len(scene.objects)
    assert sample.masks.shape == (len(scene.objects), 8, 32, 32)
    assert data[7].caption == sample.caption  # deterministic
    assert WorldDataset(num_clips=20, seed=4).scene(7) != scene  # seeds do not overlap


def test_a_recipe_trains_on_the_world(tmp_path):
    cfg = load_config(None, ["model.preset=tiny", "data.source=world", "data.world.num_clips=32", "data.world.size=16",
                             "data.world.frames=8", "data.batch_size=4", "train.steps=3", "train.log_every=1",
                             "train.export=false", f"output_dir={tmp_path}"])
    train(cfg, progress=False)
    losses = [m["loss"] for m in read_metrics(tmp_path) if "loss" in m]
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_a_fixed_object_count_is_a_curriculum_knob():
    import pytest

    from anyframe.errors import AnyframeInputError

    one = WorldDataset(num_clips=30, size=32, frames=8, seed=3, num_objects=1)
    assert all(len(one.scene(i).objects) == 1 for i in range(30))
    assert {len(WorldDataset(num_clips=30, size=32, frames=8, seed=3).scene(i).objects) for i in range(30)} != {1}
    assert len(one[5].regional_captions) == 1
    with pytest.raises(AnyframeInputError, match="data.world.num_objects"):
        load_config(None, ["data.source=world", "data.world.num_objects=0"])
