"""Training data: the dataset protocol, datasets, the latent cache, and resumable sharded sampling."""

from anyframe.data.base import (
    LatentBatch,
    LatentSample,
    VideoBatch,
    VideoDataset,
    VideoSample,
    bucket_of,
    collate,
)
from anyframe.data.latent_cache import LatentCacheDataset, build_latent_cache, encoders_fingerprint
from anyframe.data.toy import ToyMotionDataset
from anyframe.data.video_manifest import ManifestVideoDataset

__all__ = [
    "VideoSample", "LatentSample", "VideoDataset", "VideoBatch", "LatentBatch", "collate", "bucket_of",
    "ToyMotionDataset", "ManifestVideoDataset", "LatentCacheDataset", "build_latent_cache",
    "encoders_fingerprint",
]
