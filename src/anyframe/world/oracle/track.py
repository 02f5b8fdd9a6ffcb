"""Oracle step 5 (:mod:`anyframe.world.oracle`): per-frame detections linked into tracks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from anyframe.world import vocab
from anyframe.world.oracle.detect import Detection

MAX_GAP = 6  # frames a track may go unseen, not hidden under another detection, before it ends
MAX_HIDDEN = 12  # frames a track may stay hidden under other objects' masks
GATE = 3.5  # px at 32: the largest jump from a track's predicted position to its next detection
GATE_PER_GAP = 1.5  # px at 32 added to the gate per missed frame


@dataclass
class Track:
    """One object followed through the clip: its detections at increasing frames."""

    id: int
    frames: np.ndarray  # int [K]
    centroids: np.ndarray  # float [K, 2] (x, y)
    shapes: list[str]
    colors: list[str]
    areas: np.ndarray  # float [K]
    detections: list[Detection] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def shape(self) -> str:
        """The track's shape: the largest confidence-weighted sum of the detections' shape posteriors."""
        votes = np.zeros(len(vocab.SHAPES))
        for d in self.detections:
            votes += d.shape_probs * max(d.confidence, 1e-3)
        return vocab.SHAPES[int(votes.argmax())]

    @property
    def shape_agreement(self) -> np.ndarray:
        """float [5]: confidence-weighted share of each shape in the track's detections."""
        votes = np.zeros(len(vocab.SHAPES))
        for d in self.detections:
            votes += d.shape_probs * max(d.confidence, 1e-3)
        return votes / max(votes.sum(), 1e-9)

    @property
    def color(self) -> str:
        """The track's most frequent colour (area-weighted)."""
        votes: dict[str, float] = {}
        for c, a in zip(self.colors, self.areas):
            votes[c] = votes.get(c, 0.0) + float(a)
        return max(votes, key=votes.get)

    def position(self, t: int | np.ndarray) -> np.ndarray:
        """Centroid at frame(s) ``t`` ([2] or [len(t), 2]), linearly interpolated between detections and
        held constant outside the track's span."""
        tt = np.asarray(t, dtype=np.float64)
        x = np.interp(tt, self.frames, self.centroids[:, 0])
        y = np.interp(tt, self.frames, self.centroids[:, 1])
        return np.stack([x, y], axis=-1)


def _velocity(frames: list[int], cents: list[np.ndarray]) -> np.ndarray:
    """Mean velocity (px / frame) over a track's last three detections (zero for a single one)."""
    if len(frames) < 2:
        return np.zeros(2)
    j = max(0, len(frames) - 3)
    dt = frames[-1] - frames[j]
    return (cents[-1] - cents[j]) / max(dt, 1)


def track(detections: Sequence[Sequence[Detection]], canvas: int | None = None) -> list[Track]:
    """Link per-frame detections into tracks (Hungarian assignment frame to frame).

    ``detections``: per frame, that frame's detections (as :func:`detect` returns). ``canvas``: the frame
    side in px (default: from the first mask), which scales distances (k = canvas / 32).

    Per frame, with ĉ_i a track's constant-velocity prediction (mean velocity over its last three
    detections) and c_i its last centroid, the cost of continuing track i with detection j is
    ``D + 1·[colour differs] + 1.5·conf·[shape differs from the track's vote] + 2·|log(area_j / area_i)|``
    with ``D = min(|ĉ_i − c_j|, |c_i − c_j| + 0.5 k) / k``, gated by ``D ≤ GATE + GATE_PER_GAP·(gap − 1) +
    r_eq / 4`` (objects move at most 1.5 + 0.75 (pan) px per frame at 32 px and a bounce or collision
    changes a velocity by at most 3; r_eq the equivalent radius — a partly hidden object's centroid
    shifts). Each frame, in order (:func:`_merged_blobs` first sets aside blobs of two tracks' objects):

    1. tracks continue in their own colour (Hungarian), refusing an area change beyond 1.6×;
    2. unassigned detections that are *fragments* of a track of their colour (:func:`_fragment_host`: an
       object cut in two by one passing in front) are set aside; the remaining tracks may continue in
       another colour (collision events; Hungarian), only between areas within 2.5× (a sliver of another
       colour is not the same object);
    3. fragments merge into their track (area-weighted centroid); other unassigned detections start tracks.

    An unassigned track whose predicted centre lies under some detection's mask is *hidden* (behind or
    merged with another object) and waits without penalty, up to :data:`MAX_HIDDEN` frames; a track missing
    otherwise for more than :data:`MAX_GAP` frames ends. Finally :func:`_stitch` joins a track that ended
    to a later one of its colour that starts where it would have been.
    """
    if canvas is None:
        canvas = next((d.mask.shape[0] for frame in detections for d in frame), vocab.REFERENCE_CANVAS)
    k = canvas / vocab.REFERENCE_CANVAS
    open_tracks: list[dict] = []
    closed: list[dict] = []
    for t, frame in enumerate(detections):
        frame = list(frame)
        still = []
        for tr in open_tracks:
            ok = tr["missing"] <= MAX_GAP and t - tr["frames"][-1] <= MAX_HIDDEN + 1
            (still if ok else closed).append(tr)
        open_tracks = still
        preds = [_predict(tr, t) for tr in open_tracks]
        merged = _merged_blobs(open_tracks, preds, frame)
        n_open = len(open_tracks)
        assigned: dict[int, int] = {}
        # 1. continue tracks in their own colour; 2. let a track change colour, but not to a detection that
        # is a piece of a track of its own colour; 3. merge those pieces into their tracks
        hosts: dict[int, int] = {}
        for recolour in (False, True):
            free_t = [i for i in range(n_open) if i not in assigned]
            free_d = [j for j in range(len(frame)) if j not in assigned.values() and j not in merged]
            if recolour:
                for j in free_d:
                    host = _fragment_host(open_tracks, preds, t, frame[j], k)
                    if host is not None:
                        hosts[j] = host
                free_d = [j for j in free_d if j not in hosts]
            if free_t and free_d:
                cost = np.full((len(free_t), len(free_d)), np.inf)
                for a, i in enumerate(free_t):
                    for b, j in enumerate(free_d):
                        if recolour or frame[j].color == open_tracks[i]["dets"][-1].color:
                            cost[a, b] = _link_cost(
                                open_tracks[i], preds[i], t, frame[j], k, strict=not recolour
                            )
                big = 1e6
                rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
                for a, b in zip(rows, cols):
                    if cost[a, b] < big:
                        assigned[free_t[a]] = free_d[b]
                        _extend(open_tracks[free_t[a]], t, frame[free_d[b]])
        for j, host in hosts.items():
            tr = open_tracks[host]
            if tr["frames"][-1] == t and tr["dets"][-1].color != frame[j].color:
                continue  # its host changed colour this frame: the piece is something else (a new track)
            _absorb(tr, t, frame[j])
            merged.add(j)  # consumed
        for j, d in enumerate(frame):
            if j in assigned.values() or j in merged:
                continue
            tr = {"frames": [], "cents": [], "dets": [], "shape_vote": d.shape, "missing": 0}
            _extend(tr, t, d)
            open_tracks.append(tr)
        for i, tr in enumerate(open_tracks[: len(preds)]):
            if i in assigned or tr["frames"][-1] == t:
                continue
            if not any(_inside(preds[i], d.mask, margin=0) for d in frame):
                tr["missing"] += 1
    closed = _stitch(closed + open_tracks, k)
    closed.sort(key=lambda tr: (tr["frames"][0], tr["cents"][0][0], tr["cents"][0][1]))
    tracks = []
    for n, tr in enumerate(closed):
        dets = tr["dets"]
        tracks.append(
            Track(
                id=n, frames=np.asarray(tr["frames"]), centroids=np.asarray(tr["cents"]),
                shapes=[d.shape for d in dets], colors=[d.color for d in dets],
                areas=np.asarray([d.area for d in dets]), detections=dets,
            )
        )
    return tracks


def _stitch(tracks: list[dict], k: float) -> list[dict]:
    """Join a track that ends to one of its colour that starts later where the first, continued at its
    last velocity, would be (gate as in :func:`track`, growing with the gap, gap ≤ MAX_HIDDEN + 1); the
    closest join first, until none is left. This mends tracks lost while hidden for long."""
    tracks = list(tracks)
    while True:
        best = None
        for a, ta in enumerate(tracks):
            for b, tb in enumerate(tracks):
                gap = tb["frames"][0] - ta["frames"][-1]
                if a == b or gap < 1 or gap > MAX_HIDDEN + 1:
                    continue
                first = tb["dets"][0]
                if first.color != ta["dets"][-1].color:
                    continue
                dist = _distance(ta, _predict(ta, tb["frames"][0]), first, k)
                if dist <= _gate(ta, tb["frames"][0], first, k) and (best is None or dist < best[0]):
                    best = (dist, a, b)
        if best is None:
            return tracks
        _, a, b = best
        ta, tb = tracks[a], tracks[b]
        for key in ("frames", "cents", "dets"):
            ta[key] = ta[key] + tb[key]
        del tracks[b]


def _inside(p: np.ndarray, mask: np.ndarray, margin: int = 1) -> bool:
    """Whether point ``p`` (x, y) lies on ``mask`` or within ``margin`` pixels of it."""
    h, w = mask.shape
    x, y = math.floor(p[0]), math.floor(p[1])
    y0, y1, x0, x1 = max(0, y - margin), min(h, y + margin + 1), max(0, x - margin), min(w, x + margin + 1)
    return y0 < y1 and x0 < x1 and bool(mask[y0:y1, x0:x1].any())


def _merged_blobs(tracks: list[dict], preds: list[np.ndarray], frame: list[Detection]) -> set[int]:
    """Detections that cover the predicted centres of two or more tracks of their colour and are bigger
    (1.3×) than any of them: objects of one colour overlapping read as one blob. Such a blob is given to
    none of them (they wait, hidden) and starts no track of its own."""
    out = set()
    for j, d in enumerate(frame):
        covered = [
            tr for tr, p in zip(tracks, preds) if tr["dets"][-1].color == d.color and _inside(p, d.mask)
        ]
        # pieces of one object coming together again are not two objects: the blob must be bigger than
        # the biggest of them
        biggest = max((max(a.area for a in tr["dets"][-3:]) for tr in covered), default=0.0)
        if len(covered) >= 2 and d.area > 1.3 * biggest:
            out.add(j)
    return out


def _predict(tr: dict, t: int) -> np.ndarray:
    return tr["cents"][-1] + _velocity(tr["frames"], tr["cents"]) * (t - tr["frames"][-1])


def _gate(tr: dict, t: int, d: Detection, k: float) -> float:
    gap = max(1, t - tr["frames"][-1])
    radius = math.sqrt(max(d.area, tr["dets"][-1].area) / math.pi) / k
    return GATE + GATE_PER_GAP * (gap - 1) + 0.25 * radius


def _distance(tr: dict, pred: np.ndarray, d: Detection, k: float) -> float:
    c = np.asarray(d.centroid)
    return min(float(np.hypot(*(pred - c))), float(np.hypot(*(tr["cents"][-1] - c))) + 0.5 * k) / k


def _link_cost(tr: dict, pred: np.ndarray, t: int, d: Detection, k: float, strict: bool = False) -> float:
    """Cost of continuing ``tr`` with ``d`` (:func:`track`); ``strict`` (the first, same-colour pass) also
    refuses an area change beyond 1.6× — likely another object of that colour that came near, while the
    track's own object just changed colour (the second pass can still take it) — unless the track's last
    detection was partly hidden (touching another object or a poor shape) and the new one is a larger,
    well-formed shape of the track's own."""
    dist = _distance(tr, pred, d, k)
    if dist > _gate(tr, t, d, k):
        return np.inf
    last = tr["dets"][-1]
    log_ratio = abs(math.log(max(d.area, 1e-3) / max(last.area, 1e-3)))
    # an object coming out from behind another grows back: not refused
    reappearing = (d.area > last.area and (last.touches_other or last.confidence < 0.5)
                   and d.confidence >= 0.5 and d.shape == tr["shape_vote"])
    if strict and log_ratio > math.log(1.6) and not reappearing:
        return np.inf
    recolour = d.color != last.color
    if recolour and log_ratio > math.log(2.5):  # a recolouring collision can half-hide the object
        return np.inf
    conf = min(d.confidence, last.confidence)
    return dist + 1.0 * recolour + 1.5 * conf * (d.shape != tr["shape_vote"]) + 2.0 * log_ratio


def _fragment_host(tracks: list[dict], preds: list[np.ndarray], t: int, d: Detection, k: float) -> int | None:
    """The track an unmatched detection is a fragment of, or None (see :func:`track`): the detection is
    not a confident shape on its own (confidence < 0.5 or bordering another object), and a track of its
    colour has a typical area (the largest of its last three detections) at least 1/0.6 of the
    fragment's, and whose detection at this frame lies within twice its typical equivalent radius + k of
    the fragment (pieces of one object cut by another), or — if it has none yet — whose prediction does,
    within the gate plus that radius."""
    if d.confidence >= 0.5 and not d.touches_other:
        return None  # a well-formed shape on its own is an object (one splitting off a merged blob), no piece
    best, best_dist = None, np.inf
    for i, tr in enumerate(tracks[: len(preds)]):
        typical = max(a.area for a in tr["dets"][-3:])
        if tr["dets"][-1].color != d.color or d.area > 0.6 * typical:
            continue
        r_typ = math.sqrt(typical / math.pi) / k
        if tr["frames"][-1] == t:
            dist = float(np.hypot(*(np.asarray(tr["dets"][-1].centroid) - np.asarray(d.centroid)))) / k
            ok = dist <= 2 * r_typ + 1
        else:
            dist = _distance(tr, preds[i], d, k)
            ok = dist <= _gate(tr, t, d, k) + r_typ
        if ok and dist < best_dist:
            best, best_dist = i, dist
    return best


def _absorb(tr: dict, t: int, d: Detection) -> None:
    """Merge fragment ``d`` into the track's detection at frame t (or make it that detection)."""
    if tr["frames"] and tr["frames"][-1] == t:
        main = tr["dets"][-1]
        area = main.area + d.area
        cx = (main.centroid[0] * main.area + d.centroid[0] * d.area) / area
        cy = (main.centroid[1] * main.area + d.centroid[1] * d.area) / area
        merged = Detection(
            shape=main.shape, color=main.color,
            box=(min(main.box[0], d.box[0]), min(main.box[1], d.box[1]), max(main.box[2], d.box[2]),
                 max(main.box[3], d.box[3])),
            mask=main.mask | d.mask, centroid=(cx, cy), area=area, confidence=min(main.confidence, 0.5),
            shape_probs=main.shape_probs, residuals=main.residuals, touches_edge=main.touches_edge,
            touches_other=True, patch=main.patch, patch_origin=main.patch_origin, interior=main.interior,
        )  # fmt: skip
        tr["dets"][-1] = merged
        tr["cents"][-1] = np.array([cx, cy])
    else:
        _extend(tr, t, d)


def _extend(tr: dict, t: int, d: Detection) -> None:
    tr["frames"].append(t)
    tr["cents"].append(np.asarray(d.centroid, dtype=np.float64))
    tr["dets"].append(d)
    tr["missing"] = 0
    votes = np.zeros(len(vocab.SHAPES))
    for dd in tr["dets"]:
        votes += dd.shape_probs * max(dd.confidence, 1e-3)
    tr["shape_vote"] = vocab.SHAPES[int(votes.argmax())]
