"""Deterministic, resumable, sharded batch sampling.

Every rank computes the same global order from ``(seed, epoch)`` — no communication — and takes its
slice of each *global* batch, so the ranks together see every clip of an epoch once (minus the
remainder that does not fill a global batch). Batches never mix buckets. The position is a count of
batches handed out, so a run resumes exactly where it stopped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import torch

from anyframe.data.base import bucket_of
from anyframe.errors import AnyframeInputError


class ShardedBucketSampler:
    """Yields ``(epoch, [indices])`` for one rank, forever, starting at ``start``.

    Args:
        dataset: any dataset; ``bucket(i)`` (if present) groups items that batch together.
        batch_size: per rank. A global batch is ``batch_size × world_size`` items of one bucket.
        rank, world_size: this process and how many there are.
        seed: shuffling seed; epoch ``e`` uses ``(seed, e)``.
        start: how many batches this rank has already consumed (the resume position).
    """

    def __init__(self, dataset, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise AnyframeInputError(f"bad sampler sizes: batch {batch_size}, rank {rank} of {world_size}")
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.position = start
        groups: dict = defaultdict(list)
        for i in range(len(dataset)):
            groups[bucket_of(dataset, i)].append(i)
        self._groups = [groups[k] for k in sorted(groups, key=repr)]  # a fixed bucket order
        global_batch = batch_size * world_size
        self.batches_per_epoch = sum(len(g) // global_batch for g in self._groups)
        if self.batches_per_epoch == 0:
            largest = max(len(g) for g in self._groups)
            raise AnyframeInputError(
                f"data.batch_size {batch_size} × {world_size} processes = {global_batch} clips per step, but no bucket "
                f"(clips of one size and length) has that many; the largest has {largest}: lower data.batch_size "
                "or give more clips"
            )

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of one epoch, in order."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        global_batch = self.batch_size * self.world_size
        batches = []
        for group in self._groups:
            order = torch.randperm(len(group), generator=g).tolist()
            shuffled = [group[i] for i in order]
            for b in range(len(shuffled) // global_batch):
                chunk = shuffled[b * global_batch : (b + 1) * global_batch]
                batches.append(chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size])
        order = torch.randperm(len(batches), generator=g).tolist()  # interleave buckets
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        epoch, offset = divmod(self.position, self.batches_per_epoch)
        while True:
            batches = self.epoch_batches(epoch)
            for batch in batches[offset:]:
                self.position += 1
                yield epoch, batch
            epoch, offset = epoch + 1, 0


class EpochIndexedDataset:
    """Wraps a dataset so a DataLoader batch sampler can pass ``(epoch, index)``: datasets with
    per-epoch randomness (random crops) get ``set_epoch`` called in whichever worker loads the item."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class EpochIndexBatches:
    """Adapts :class:`ShardedBucketSampler` to a DataLoader ``batch_sampler`` of ``(epoch, index)`` keys."""

    def __init__(self, sampler: ShardedBucketSampler):
        self.sampler = sampler

    def __iter__(self):
        for epoch, batch in self.sampler:
            yield [(epoch, i) for i in batch]
