"""The recipe on real-video manifests and on the latent cache."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anyframe.data.base import VideoBatch
from anyframe.io import write_mp4
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import micro_conditions, train

CONFIG = Path(__file__).parents[2] / "configs" / "toy.yaml"


def _write_manifest(folder: Path, n: int = 8, corrupt: bool = True) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        frames = np.full((12, 24, 32, 3), 30, np.uint8)
        for t in range(12):  # a block moving right
            frames[t, 8:16, 2 * t : 2 * t + 8] = rng.integers(100, 255, 3)
        write_mp4(frames, folder / f"clip{i}.mp4")
        lines.append({"video": f"clip{i}.mp4", "caption": "a red square moves right"})
    if corrupt:
        (folder / "broken.mp4").write_bytes(b"\x00not a video" * 50)
        lines.append({"video": "broken.mp4", "caption": "broken"})
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    return path


def test_train_from_a_manifest_skips_the_corrupt_video(tmp_path):
    manifest = _write_manifest(tmp_path)
    cfg = load_config(CONFIG, ["data.source=manifest", f"data.manifest.path={manifest}", "data.manifest.num_frames=8",
                               "data.manifest.size=[16,16]", "data.manifest.stride=1", "data.batch_size=4",
                               "train.steps=3", "train.log_every=1", "train.export=false", f"output_dir={tmp_path / 'run'}"])
    with pytest.warns(UserWarning, match="skipped 1 of 9 videos"):
        result = train(cfg, progress=False)
    assert result.step == 3
    assert len([m for m in read_metrics(tmp_path / "run") if "loss" in m]) == 3


def test_micro_conditions_come_from_clip_metadata():
    batch = VideoBatch(video=torch.zeros(2, 4, 3, 16, 16), captions=["a", "b"], frame_captions=[None, None],
                       masks=[None, None], regional_captions=[None, None],
                       meta=[{"stride": 2.0, "original_size": (480, 640), "crop": (3, 5)}, {}])
    micro = micro_conditions(batch, 16, 16)
    assert micro.tolist() == [[2.0, 480.0, 640.0, 3.0, 5.0], [1.0, 16.0, 16.0, 0.0, 0.0]]


def test_train_from_the_latent_cache(tmp_path):
    cache = tmp_path / "cache"
    common = ["data.toy.num_clips=12", "data.batch_size=4", "train.steps=3", "train.log_every=1", "train.export=false",
              f"data.cache_dir={cache}"]
    first = train(load_config(CONFIG, [*common, f"output_dir={tmp_path / 'a'}"]), progress=False)
    assert (cache / "index.json").is_file() and first.step == 3
    built = (cache / "index.json").stat().st_mtime_ns
    # a second run reuses the cache (not rebuilt) and, from the same seed, follows the same curve
    train(load_config(CONFIG, [*common, f"output_dir={tmp_path / 'b'}"]), progress=False)
    assert (cache / "index.json").stat().st_mtime_ns == built
    losses = lambda run: [m["loss"] for m in read_metrics(run) if "loss" in m]
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    # a cache built with other encoders is refused
    from anyframe.errors import AnyframeInputError

    with pytest.raises(AnyframeInputError, match="different encoders"):
        train(load_config(CONFIG, [*common, "seed=1", f"output_dir={tmp_path / 'c'}"]), progress=False)
    # and one built from other clips (same encoders) is not silently trained on
    with pytest.raises(AnyframeInputError, match=r"other data \(toy.num_clips, toy.size differ\)"):
        train(load_config(CONFIG, [*common, "data.toy.num_clips=8", "data.toy.size=24", f"output_dir={tmp_path / 'd'}"]),
              progress=False)
    assert not (tmp_path / "d" / "checkpoints").exists() and (cache / "index.json").stat().st_mtime_ns == built
