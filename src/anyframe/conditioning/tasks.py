"""The STIV task mixture: which frames are given as conditions (STIV §2.3.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TASKS = ("t2v", "ti2v", "any_frame", "first_last", "first_k")


@dataclass(frozen=True)
class TaskMixture:
    """Sampling weights of the conditioning tasks, and the range of k for ``first_k`` (prediction).

    - ``t2v``: no frames; ``ti2v``: frame 0; ``any_frame``: one uniformly random frame;
    - ``first_last``: frames 0 and T−1 (interpolation); ``first_k``: frames 0..k−1, k ~ U{1..max_k}
      (prediction), ``max_k`` defaulting to T // 2.
    """

    t2v: float = 1.0
    ti2v: float = 1.0
    any_frame: float = 1.0
    first_last: float = 1.0
    first_k: float = 1.0
    max_k: int | None = None

    @classmethod
    def named(cls, weights: dict | None, max_k: int | None = None, default: dict | None = None) -> TaskMixture:
        """The tasks named in ``weights`` at their weights and every other task at 0; no weights (None or
        empty) gives ``default`` (the same rule), or, without one, every task at weight 1."""
        chosen = weights or default
        if chosen is None:
            return cls(max_k=max_k)
        unknown = set(chosen) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)} in task_weights ({', '.join(TASKS)})")
        return cls(**{name: float(chosen.get(name, 0.0)) for name in TASKS}, max_k=max_k)

    def weights(self) -> Tensor:
        w = torch.tensor([self.t2v, self.ti2v, self.any_frame, self.first_last, self.first_k], dtype=torch.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"task weights must be non-negative and not all zero, got {w.tolist()}")
        return w / w.sum()

    def sample(self, batch_size: int, num_frames: int, generator: torch.Generator | None = None) -> tuple[Tensor, list[str]]:
        """Frame masks ``[B, T]`` (True = conditioned) and the task name of each example."""
        tasks = torch.multinomial(self.weights(), batch_size, replacement=True, generator=generator)
        mask = torch.zeros(batch_size, num_frames, dtype=torch.bool)
        max_k = max(1, min(self.max_k or num_frames // 2, num_frames - 1))
        # Draw every random number for every example, whatever its task, so the generator advances
        # by the same amount each step (resumable, and independent of the sampled tasks).
        any_idx = torch.randint(0, num_frames, (batch_size,), generator=generator)
        ks = torch.randint(1, max_k + 1, (batch_size,), generator=generator)
        names = []
        for i, task in enumerate(tasks.tolist()):
            name = TASKS[task]
            names.append(name)
            if name == "ti2v":
                mask[i, 0] = True
            elif name == "any_frame":
                mask[i, any_idx[i]] = True
            elif name == "first_last":
                mask[i, [0, num_frames - 1]] = True
            elif name == "first_k":
                mask[i, : ks[i]] = True
        return mask, names
