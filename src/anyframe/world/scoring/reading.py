"""What the oracle (:mod:`anyframe.world.oracle`) reads in a clip: its detections and tracks, the tracks long
enough to be matched, and where each track is hidden under another detection."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anyframe.world import vocab
from anyframe.world.oracle import Detection, PixelColors, Track, detect, track

MIN_TRACK = 3  # detections a track needs to count as an object
MIN_MATCH_TRACK = 2  # detections a track needs to be matched (an object may be apart for two frames only)


@dataclass
class Reading:
    """What the oracle sees in the clip."""

    frames: np.ndarray
    detections: list[list[Detection]]
    tracks: list[Track]  # tracks with ≥ MIN_MATCH_TRACK detections (the ones matched to objects)
    all_tracks: list[Track]
    k: float
    hidden: dict[int, set[int]] = field(default_factory=dict)  # track id → frames under another detection
    pixels: PixelColors | None = None

    def detection_at(self, tr: Track, t: int) -> Detection | None:
        idx = np.nonzero(tr.frames == t)[0]
        return tr.detections[int(idx[0])] if len(idx) else None


def read_clip(frames: np.ndarray) -> Reading:
    """Detect and track (oracle), keep substantial tracks, and note where each track is hidden."""
    dets, pixels = detect(frames, return_pixels=True)
    tracks = track(dets, canvas=frames.shape[1])
    k = frames.shape[1] / vocab.REFERENCE_CANVAS
    substantial = [tr for tr in tracks if len(tr) >= MIN_MATCH_TRACK]
    hidden: dict[int, set[int]] = {}
    for tr in substantial:
        gone = set()
        for t in range(int(tr.frames[0]), int(tr.frames[-1]) + 1):
            if t in set(tr.frames.tolist()):
                continue
            p = tr.position(t)
            x, y = int(p[0]), int(p[1])
            for d in dets[t]:
                if 0 <= y < d.mask.shape[0] and 0 <= x < d.mask.shape[1] and d.mask[y, x]:
                    gone.add(t)
                    break
        hidden[tr.id] = gone
    return Reading(frames, dets, substantial, tracks, k, hidden, pixels)
