"""The shapes world as a training dataset: clips rendered on the fly (≈1 ms each), with their captions,
per-frame captions, per-object masks and regional captions."""

from __future__ import annotations

import random

import torch

from anyframe.data.base import VideoSample
from anyframe.world.captions import caption, frame_captions, regional_captions
from anyframe.world.paraphrase import paraphrase, with_duplicate
from anyframe.world.render import render
from anyframe.world.sampling import SPLITS, scene_for_seed


class WorldDataset:
    """``num_clips`` scenes of ``split``; item i is the scene of seed ``seed · 1_000_003 + i`` (so datasets
    with different seeds do not overlap, and any item can be re-rendered from its index alone). ``num_objects``
    fixes every scene's object count (a curriculum; the scene sampler checks its range); ``None`` keeps the
    split's distribution. A share ``duplicates`` of the scenes get two objects of one look
    (:func:`~anyframe.world.paraphrase.with_duplicate`); a share ``paraphrase`` of the clips are captioned in free
    form (:func:`~anyframe.world.paraphrase.paraphrase`) instead of the caption form. Both draws are the item's
    own (a generator seeded by the dataset seed and the index): an item is the same whenever it is read.

    ``cmi``: a table of the clips' conditional mutual information (:class:`~anyframe.data.cmi.CMITable`, from
    ``anyframe clip cmi``) computed for this very dataset; each item's ``meta["cmi"]`` is its clip's value
    (JDM's loss weighting). The table must cover every item."""

    def __init__(self, num_clips: int = 100_000, split: str = "train", size: int = 32, frames: int = 16, seed: int = 0,
                 num_objects: int | None = None, paraphrase: float = 0.0, duplicates: float = 0.0,
                 cmi: str | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} ({', '.join(SPLITS)})")
        if num_clips < 1:
            raise ValueError("a world dataset needs at least one clip")
        self.num_clips, self.split, self.size, self.frames, self.seed = num_clips, split, size, frames, seed
        self.num_objects = num_objects
        if not (0 <= paraphrase <= 1 and 0 <= duplicates <= 1):
            raise ValueError("paraphrase and duplicates are shares in [0, 1]")
        self.paraphrase, self.duplicates = paraphrase, duplicates
        self.cmi = None
        if cmi is not None:
            from anyframe.data.cmi import CMITable

            self.cmi = CMITable.load(cmi)
            self.cmi.check_dataset(self)

    def __len__(self) -> int:
        return self.num_clips

    def scene(self, index: int):
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        scene = scene_for_seed(self.seed * 1_000_003 + index, self.split, size=self.size, frames=self.frames,
                               num_objects=self.num_objects)
        rng = random.Random(f"world-scene:{self.seed}:{index}")  # (a str seed: the same in every process)
        if self.duplicates and rng.random() < self.duplicates:
            scene = with_duplicate(scene, rng)
        return scene

    def caption(self, index: int, scene) -> str:
        """The clip's caption: the caption form, or (a share ``paraphrase``) a free-form description."""
        rng = random.Random(f"world-caption:{self.seed}:{index}")
        if self.paraphrase and rng.random() < self.paraphrase:
            return paraphrase(scene, rng)
        return caption(scene)

    def __getitem__(self, index: int) -> VideoSample:
        scene = self.scene(index)
        clip = render(scene)
        video = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [T, 3, H, W]
        return VideoSample(
            video=video.contiguous(),
            caption=self.caption(index, scene),
            frame_captions=frame_captions(scene, clip.trajectory),
            masks=torch.from_numpy(clip.masks),  # [K, T, H, W]
            regional_captions=regional_captions(scene),
            meta={"index": index, "scene": scene.to_json(),
                  **({} if self.cmi is None else {"cmi": self.cmi.value(index)})},
        )
