"""Batch generation: many requests, one output folder, resumable, shared across processes.

A batch is a JSONL file, one request per line, with the fields of :class:`GenerationRequest`
(``prompt``, ``negative_prompt``, ``num_frames``, ``height``, ``width``, ``seed``, ``steps``, ``guidance_scale``,
``guidance_mode``, ``image_guidance_scale``, ``renorm``, ``sampler``, ``frame_stride``, ``frame_prompts``,
``options``), ``keyframes`` as ``["img.png@0", {"image": "end.png", "frame_index": -1}]`` (paths relative to the
batch file; ``"img.png"`` without ``@INDEX``, or ``"frame_index": null``, leaves the frame to the command's narrator,
frame 0 without one), and an optional ``id`` naming the outputs (default ``line-N``)::

    {"id": "left", "prompt": "a red circle moves left", "seed": 0}
    {"prompt": "", "keyframes": ["start.png@0", "end.png@-1"], "steps": 10}

Each request writes ``<id>.mp4``, ``<id>.png`` (its filmstrip) and, last, ``<id>.json`` (the resolved request and
its timing): a request whose ``.json`` is there is finished, and a re-run skips it. A request that fails
(bad input: a missing image, an impossible index, a field the model does not take) is reported and skipped; the
others complete. Under ``torchrun`` / ``accelerate launch`` (``RANK`` and ``WORLD_SIZE`` set), process r of n
takes the requests r, r + n, r + 2n, ...
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_paths, load_image, read_jsonl, to_uint8, write_filmstrip, write_mp4
from anyframe.pipelines.request import GenerationRequest, Keyframe

REQUEST_FIELDS = {f.name for f in dataclasses.fields(GenerationRequest)}
BATCH_FIELDS = ("prompt", "negative_prompt", "keyframes", "num_frames", "height", "width", "seed", "steps",
                "guidance_scale", "guidance_mode", "image_guidance_scale", "renorm", "sampler", "frame_stride",
                "frame_prompts", "options")
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass
class BatchItem:
    """One line of a batch: its output name, and its request (or why it could not be read)."""

    id: str
    where: str
    request: GenerationRequest | None = None
    error: str | None = None


@dataclass
class BatchResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished by an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # id → the one-line reason

    def summary(self) -> str:
        line = f"{len(self.done)} written, {len(self.skipped)} already there, {len(self.failed)} failed"
        return line + "".join(f"; {key}: {why}" for key, why in self.failed.items())


KEYFRAME_FORMS = "\"PATH@INDEX\", \"PATH\" (its frame placed by the narrator) or {\"image\": PATH, \"frame_index\": N}"


def _keyframe(value, base: Path) -> Keyframe:
    if isinstance(value, str) and value.strip():
        path, sep, index = value.rpartition("@")
        if sep and re.fullmatch(r"[+-]?\d+", index.strip()):
            return Keyframe(load_image(base / path), int(index))
        return Keyframe(load_image(base / value), None)  # no index: the narrator's to place (frame 0 without one)
    if isinstance(value, dict) and set(value) <= {"image", "frame_index"} and isinstance(value.get("image"), str):
        index = value.get("frame_index", 0)
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise AnyframeInputError(f"frame_index must be a whole number or null (placed by the narrator), got {index!r}")
        return Keyframe(load_image(base / value["image"]), index)
    raise AnyframeInputError(f"a keyframe is {KEYFRAME_FORMS}, got {value!r}")


def request_from_record(record: dict, base: Path, defaults: dict | None = None) -> GenerationRequest:
    """A batch line → its request (``defaults``: fields the line does not set, e.g. the command's flags)."""
    unknown = sorted(set(record) - set(BATCH_FIELDS) - {"id"})
    if unknown:
        raise AnyframeInputError(f"unknown field {unknown[0]!r} (a batch line takes id, {', '.join(BATCH_FIELDS)})")
    if not isinstance(record.get("prompt", ""), str):
        raise AnyframeInputError("prompt must be a string (one video per line)")
    values = {**(defaults or {}), **{k: v for k, v in record.items() if k != "id"}}
    keyframes = values.pop("keyframes", None) or []
    if not isinstance(keyframes, list):
        raise AnyframeInputError("keyframes must be a list")
    frame_prompts = values.pop("frame_prompts", None) or {}
    if not isinstance(frame_prompts, dict):
        raise AnyframeInputError("frame_prompts must be an object {frame: prompt}")
    try:
        frame_prompts = {int(k): v for k, v in frame_prompts.items()}
    except ValueError:
        raise AnyframeInputError("frame_prompts' keys must be frame indices") from None
    if not isinstance(values.get("options", {}), dict):
        raise AnyframeInputError("options must be an object")
    return GenerationRequest(keyframes=[_keyframe(k, base) for k in keyframes], frame_prompts=frame_prompts, **values)


def read_batch(path: str | os.PathLike, defaults: dict | None = None) -> list[BatchItem]:
    """Every line of a batch file, each read into a request or an error (a bad line does not stop the others; a
    missing or unreadable file does). Ids must be unique."""
    path = Path(path)
    items, seen = [], set()
    for number, (where, record) in enumerate(read_jsonl(path, "batch"), start=1):
        key = record.get("id", f"line-{number}")
        if not isinstance(key, str) or not ID.fullmatch(key):
            items.append(BatchItem(f"line-{number}", where, error=f"id must be a file name (letters, digits, . _ -), got {key!r}"))
            continue
        if key in seen:
            items.append(BatchItem(f"line-{number}", where, error=f"id {key!r} is used by an earlier line"))
            continue
        seen.add(key)
        try:
            items.append(BatchItem(key, where, request=request_from_record(record, path.parent, defaults)))
        except (AnyframeInputError, TypeError) as exc:
            items.append(BatchItem(key, where, error=" ".join(str(exc).split())))
    if not items:
        raise AnyframeInputError(f"batch {path} has no requests")
    return items


def shard() -> tuple[int, int]:
    """(rank, world size) of this process under torchrun / accelerate launch; (0, 1) otherwise."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1
    return (rank, world) if 0 <= rank < world else (0, 1)


def finished(out_dir: Path, key: str) -> bool:
    return all((out_dir / f"{key}{suffix}").is_file() for suffix in (".json", ".mp4", ".png"))


def generate_batch(pipe, items: Iterable[BatchItem | GenerationRequest] | str | os.PathLike, out_dir: str | os.PathLike,
                   fps: float = 8.0, rank: int | None = None, world: int | None = None,
                   on_item: Callable[[str, str], None] | None = None, narrator=None,
                   narrator_prompt: bool = False) -> BatchResult:
    """Generate every request of a batch (a JSONL path, :class:`BatchItem` s, or requests — named ``request-N``) into
    ``out_dir``, skipping finished ones; this process's share only (``rank``/``world``, default :func:`shard`).
    ``on_item(id, status)`` is called after each (``written`` / ``already there`` / ``failed``).
    ``narrator`` places a line's image given without its frame index (:meth:`AnyFramePipeline.place_keyframes`;
    without one it goes to frame 0, as ``generate --image`` does); with ``narrator_prompt`` the narrator's caption
    of the clip becomes that line's prompt. The narrative goes into the line's ``.json``."""
    if isinstance(items, (str, os.PathLike)):
        items = read_batch(items)
    items = [it if isinstance(it, BatchItem) else BatchItem(f"request-{i}", f"request {i}", request=it)
             for i, it in enumerate(items, start=1)]
    default_rank, default_world = shard()
    rank = default_rank if rank is None else rank
    world = default_world if world is None else world
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    for item in items[rank::world]:
        status = "written"
        if item.error is not None:
            result.failed[item.id] = f"{item.where}: {item.error}"
            status = "failed"
        elif finished(out, item.id):
            result.skipped.append(item.id)
            status = "already there"
        else:
            try:
                _generate_one(pipe, item, out, fps, narrator, narrator_prompt)
                result.done.append(item.id)
            except AnyframeInputError as exc:
                result.failed[item.id] = f"{item.where}: {' '.join(str(exc).split())}"
                status = "failed"
        if on_item is not None:
            on_item(item.id, status)
    return result


def _generate_one(pipe, item: BatchItem, out: Path, fps: float, narrator=None, narrator_prompt: bool = False) -> None:
    request = item.request
    if narrator is None:  # an image without its index goes to frame 0, as with generate --image
        request = dataclasses.replace(request, keyframes=[
            Keyframe(k.image, 0) if k.frame_index is None else k for k in request.keyframes])
    request, narrative = pipe.place_keyframes(request, narrator, narrator_prompt)
    request = pipe.validate(request)
    start = time.perf_counter()
    result = pipe.generate(request, output_type="np")
    seconds = time.perf_counter() - start
    video = to_uint8(result.frames[0])
    record = {"id": item.id, "prompt": request.prompts[0], "seed": result.seed, "frames": int(video.shape[0]),
              "height": int(video.shape[1]), "width": int(video.shape[2]), "keyframes": list(result.keyframe_indices),
              "steps": request.steps, "guidance_scale": request.guidance_scale, "guidance_mode": request.guidance_mode,
              "seconds": round(seconds, 3)}
    if narrative is not None:
        record["narrator"] = {"backend": narrative.backend, "position": narrative.position, "caption": narrative.caption}
    with atomic_paths(out / f"{item.id}.mp4", out / f"{item.id}.png") as (video_tmp, strip_tmp):
        write_mp4(video, video_tmp, fps=fps)
        write_filmstrip(video, strip_tmp, marked=result.keyframe_indices)
    with atomic_paths(out / f"{item.id}.json") as (json_tmp,):  # last: the request is finished
        json_tmp.write_text(json.dumps(record))
