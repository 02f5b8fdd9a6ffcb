"""A toy video dataset for tests and smoke runs: one coloured square moving in a straight line.

Deterministic per index, rendered with numpy in microseconds. (The shapes world, with its oracle,
is the real world-scale data; this is only the smallest thing that has motion and a caption.)
"""

from __future__ import annotations

import numpy as np
import torch

from anyframe.data.base import VideoSample

TOY_COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
TOY_MOTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


class ToyMotionDataset:
    """``num_clips`` clips of ``num_frames`` frames at ``size``×``size``: "a red square moves left"."""

    def __init__(self, num_clips: int = 64, num_frames: int = 8, size: int = 16, seed: int = 0):
        if num_clips < 1 or num_frames < 1 or size < 4:
            raise ValueError("toy dataset needs num_clips ≥ 1, num_frames ≥ 1, size ≥ 4")
        self.num_clips, self.num_frames, self.size, self.seed = num_clips, num_frames, size, seed

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> VideoSample:
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        colour = list(TOY_COLOURS)[rng.integers(len(TOY_COLOURS))]
        motion = list(TOY_MOTIONS)[rng.integers(len(TOY_MOTIONS))]
        s, t = self.size, self.num_frames
        side = max(2, s // 4)
        dx, dy = TOY_MOTIONS[motion]
        speed = (s - side) / max(1, t - 1) * 0.8
        x0 = (s - side) / 2 - dx * speed * (t - 1) / 2 + rng.uniform(-1, 1)
        y0 = (s - side) / 2 - dy * speed * (t - 1) / 2 + rng.uniform(-1, 1)
        video = np.full((t, s, s, 3), 20, dtype=np.float32)
        for i in range(t):
            x = round(np.clip(x0 + dx * speed * i, 0, s - side))
            y = round(np.clip(y0 + dy * speed * i, 0, s - side))
            video[i, y : y + side, x : x + side] = TOY_COLOURS[colour]
        clip = torch.from_numpy(video / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()  # [T, 3, H, W]
        return VideoSample(video=clip, caption=f"a {colour} square moves {motion}", meta={"index": index})
