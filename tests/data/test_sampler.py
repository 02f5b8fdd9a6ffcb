"""The sharded bucket sampler: disjoint rank shards, bucket purity, determinism, exact resume."""

import itertools

import pytest

from anyframe.data.sampler import EpochIndexBatches, EpochIndexedDataset, ShardedBucketSampler


class _Buckets:
    def __init__(self, sizes):  # sizes: items per bucket
        self.keys = [b for b, n in enumerate(sizes) for _ in range(n)]

    def __len__(self):
        return len(self.keys)

    def bucket(self, i):
        return self.keys[i]

    def __getitem__(self, i):
        return i


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_ranks_get_disjoint_shards_covering_the_epoch():
    data = _Buckets([12, 8])
    ranks = [ShardedBucketSampler(data, batch_size=2, rank=r, world_size=2, seed=3) for r in range(2)]
    per_epoch = ranks[0].batches_per_epoch
    assert per_epoch == 12 // 4 + 8 // 4
    seen = [[i for _, b in _take(s, per_epoch) for i in b] for s in ranks]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(20))  # every clip once (no remainder here)


def test_batches_never_mix_buckets_and_epochs_reshuffle():
    data = _Buckets([7, 5, 9])
    sampler = ShardedBucketSampler(data, batch_size=3, seed=0)
    batches = _take(sampler, 3 * sampler.batches_per_epoch)
    for _, batch in batches:
        assert len({data.bucket(i) for i in batch}) == 1 and len(batch) == 3
    epochs = [[b for e, b in batches if e == k] for k in range(3)]
    assert epochs[0] != epochs[1]
    assert [e for e, _ in batches] == sorted(e for e, _ in batches)


def test_deterministic_and_resumable():
    data = _Buckets([10, 10])
    full = _take(ShardedBucketSampler(data, 2, seed=5), 17)
    assert full == _take(ShardedBucketSampler(data, 2, seed=5), 17)
    assert full != _take(ShardedBucketSampler(data, 2, seed=6), 17)
    resumed = _take(ShardedBucketSampler(data, 2, seed=5, start=11), 6)
    assert resumed == full[11:]


def test_too_small_dataset_and_bad_sizes():
    with pytest.raises(ValueError, match="no bucket"):
        ShardedBucketSampler(_Buckets([3, 3]), batch_size=2, world_size=2)
    with pytest.raises(ValueError):
        ShardedBucketSampler(_Buckets([8]), batch_size=2, rank=2, world_size=2)


def test_epoch_indexed_adapters_pass_the_epoch():
    class Cropper(_Buckets):
        epoch = None

        def set_epoch(self, e):
            self.epoch = e

        def __getitem__(self, i):
            return (self.epoch, i)

    data = Cropper([4])
    sampler = ShardedBucketSampler(data, 2, seed=0)
    keys = next(iter(EpochIndexBatches(sampler)))
    wrapped = EpochIndexedDataset(data)
    assert [wrapped[k] for k in keys] == keys
