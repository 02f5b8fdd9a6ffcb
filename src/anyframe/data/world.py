"""The shapes world as a training dataset: clips rendered on the fly (≈1 ms each), with their captions,
per-frame captions, per-object masks and regional captions."""

from __future__ import annotations

import torch

from anyframe.data.base import VideoSample
from anyframe.world.captions import caption, frame_captions, regional_captions
from anyframe.world.render import render
from anyframe.world.sampling import SPLITS, scene_for_seed


class WorldDataset:
    """``num_clips`` scenes of ``split``; item i is the scene of seed ``seed · 1_000_003 + i`` (so datasets
    with different seeds do not overlap, and any item can be re-rendered from its index alone). ``num_objects``
    fixes every scene's object count (a curriculum; the scene sampler checks its range); ``None`` keeps the
    split's distribution."""

    def __init__(self, num_clips: int = 100_000, split: str = "train", size: int = 32, frames: int = 16, seed: int = 0,
                 num_objects: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} ({', '.join(SPLITS)})")
        if num_clips < 1:
            raise ValueError("a world dataset needs at least one clip")
        self.num_clips, self.split, self.size, self.frames, self.seed = num_clips, split, size, frames, seed
        self.num_objects = num_objects

    def __len__(self) -> int:
        return self.num_clips

    def scene(self, index: int):
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        return scene_for_seed(self.seed * 1_000_003 + index, self.split, size=self.size, frames=self.frames,
                              num_objects=self.num_objects)

    def __getitem__(self, index: int) -> VideoSample:
        scene = self.scene(index)
        clip = render(scene)
        video = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [T, 3, H, W]
        return VideoSample(
            video=video.contiguous(),
            caption=caption(scene),
            frame_captions=frame_captions(scene, clip.trajectory),
            masks=torch.from_numpy(clip.masks),  # [K, T, H, W]
            regional_captions=regional_captions(scene),
            meta={"index": index, "scene": scene.to_json()},
        )
