"""Evaluation suites: cases a model is asked to generate, and what the oracle scores in each.

A suite is a JSONL file, one :class:`Case` per line::

    {"id": "standard-0042", "task": "ti2v", "split": "train", "seed": 42,
     "scene": {...scene program...},
     "conditions": {"prompt": "On a black background, a small red circle moves left.", "keyframes": [0]},
     "score": ["presence", "color_binding", ..., "keyframe_psnr"],
     "edit": null, "unpaired": null}

- ``scene`` is the program the clip should show (for ``edit``: the target scene). Keyframe images
  are rendered from it at ``conditions.keyframes`` (rendering is deterministic, so only programs are
  stored).
- ``conditions`` is what the model is given: the prompt and the keyframe frame indices (non-negative).
  For ``unpaired`` the model gets the image without its index (``conditions.keyframes`` is empty and
  ``unpaired.image_frame`` holds the truth); for ``edit`` it gets the instruction and the source
  clip (``edit.source`` is the source program, ``edit.instruction`` the text).
- ``score`` lists the report keys the oracle computes for the case.

Tasks (:data:`TASKS`): ``t2v`` (prompt only), ``ti2v`` (frame 0), ``keyframes`` (one frame inside the
clip), ``interpolation`` (first and last), ``prediction`` (the first 4 frames), ``unpaired`` (text +
an image of another moment), ``edit`` (instruction + source clip) and ``masks`` (prompt only; the
model also returns a mask per object).

Built-in suites (:func:`builtin_suite`): ``smoke`` (16 cases, 2 per task), ``standard`` (320 cases,
40 per task, training distribution) and ``ood`` (240 cases: the held-out splits ``ood_color_shape``,
``ood_background``, ``ood_style`` and ``more_objects``, 60 each, over the prompt/keyframe tasks).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_path, read_jsonl
from anyframe.world.captions import caption
from anyframe.world.edits import make_edit
from anyframe.world.sampling import SPLITS, scene_for_seed
from anyframe.world.scene import Scene
from anyframe.world.unpaired import make_unpaired

TASKS = ("t2v", "ti2v", "keyframes", "interpolation", "prediction", "unpaired", "edit", "masks")

# What the prompt alone pins down, and what every generated clip is judged on.
_CONTENT = ["presence", "color_binding", "count", "motion_direction", "event", "identity_persistence",
            "dynamic_degree", "motion_smoothness", "temporal_flicker", "style"]
# Keyframes also fix where things are, so relations and fidelity are scored.
_KEYED = _CONTENT + ["spatial_relation", "keyframe_psnr", "keyframe_ssim"]
SCORED_KEYS: dict[str, list[str]] = {
    "t2v": _CONTENT,
    "ti2v": _KEYED,
    "keyframes": _KEYED,
    "interpolation": _KEYED + ["trajectory_monotone"],
    "prediction": _KEYED,
    "unpaired": _KEYED,  # fidelity at the true (hidden) frame of the image
    "edit": ["edit_accuracy", *_KEYED],
    "masks": _CONTENT + ["mask_iou"],
}
PREDICTION_FRAMES = 4
CASE_FIELD_TYPES = {"id": (str,), "task": (str,), "split": (str,), "seed": (int,), "scene": (dict,),
                    "conditions": (dict,), "score": (list,), "edit": (dict, type(None)),
                    "unpaired": (dict, type(None)), "meta": (dict,)}


@dataclass
class Case:
    """One evaluation case: a scene program, the task, what is given and what is scored."""

    id: str
    task: str
    split: str
    seed: int
    scene: dict
    conditions: dict
    score: list[str]
    edit: dict | None = None
    unpaired: dict | None = None
    meta: dict = field(default_factory=dict)

    def scene_program(self) -> Scene:
        return Scene.from_dict(self.scene)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_dict(data: dict) -> Case:
        missing = [f for f in CASE_FIELD_TYPES if f not in data and f not in ("edit", "unpaired", "meta")]
        if missing:
            raise AnyframeInputError(f"a suite case needs {', '.join(missing)}")
        unknown = sorted(set(data) - set(CASE_FIELD_TYPES))
        if unknown:
            raise AnyframeInputError(f"unknown field {unknown[0]!r} in a suite case ({', '.join(CASE_FIELD_TYPES)})")
        for name, kinds in CASE_FIELD_TYPES.items():
            value = data.get(name)
            if name in data and not (isinstance(value, kinds) and not isinstance(value, bool)):
                wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise AnyframeInputError(f"field {name!r} of a suite case must be {wanted}, got {value!r}"[:200])
        case = Case(**data)
        if any(not isinstance(s, str) for s in case.score):
            raise AnyframeInputError(f"case {case.id}: score must be a list of metric names")
        if case.task not in TASKS:
            raise AnyframeInputError(f"case {case.id}: unknown task {case.task!r} ({', '.join(TASKS)})")
        scene = case.scene_program()  # validates the program
        try:
            frames = [int(i) for i in case.conditions.get("keyframes", [])]
        except (TypeError, ValueError):
            raise AnyframeInputError(f"case {case.id}: conditions.keyframes must be a list of frame indices") from None
        if any(not 0 <= i < scene.frames for i in frames):
            raise AnyframeInputError(f"case {case.id}: keyframe indices {frames} out of range for {scene.frames} frames")
        if case.task == "edit" and not (case.edit and "source" in case.edit and "instruction" in case.edit):
            raise AnyframeInputError(f"case {case.id}: an edit case needs edit.source and edit.instruction")
        if case.task == "unpaired" and not (case.unpaired and "image_frame" in case.unpaired):
            raise AnyframeInputError(f"case {case.id}: an unpaired case needs unpaired.image_frame")
        return case


def make_case(task: str, seed: int, split: str = "train", size: int = 32, frames: int = 16, prefix: str = "case") -> Case:
    """A deterministic case of ``task`` from the scene of ``(seed, split)``."""
    if task not in TASKS:
        raise AnyframeInputError(f"unknown task {task!r} ({', '.join(TASKS)})")
    if split not in SPLITS:
        raise AnyframeInputError(f"unknown split {split!r} ({', '.join(SPLITS)})")
    rng = np.random.default_rng([seed, TASKS.index(task), 7])
    scene = scene_for_seed(seed, split, size=size, frames=frames)
    keyframes: list[int] = []
    edit = unpaired = None
    prompt = caption(scene)
    if task == "ti2v":
        keyframes = [0]
    elif task == "keyframes":
        keyframes = [int(rng.integers(1, frames - 1))]
    elif task == "interpolation":
        keyframes = [0, frames - 1]
    elif task == "prediction":
        keyframes = list(range(min(PREDICTION_FRAMES, frames)))
    elif task == "unpaired":
        case = make_unpaired(scene, rng)
        prompt = case.text
        unpaired = {"text": case.text, "image_frame": case.image_frame, "position": case.position,
                    "object_id": case.object_id}
    elif task == "edit":
        pair = make_edit(scene, rng)
        prompt = pair.instruction
        edit = {"source": pair.source.to_dict(), "instruction": pair.instruction, "kind": pair.kind,
                "object_id": pair.object_id}
        scene = pair.target
    return Case(
        id=f"{prefix}-{task}-{split}-{seed:05d}",
        task=task,
        split=split,
        seed=seed,
        scene=scene.to_dict(),
        conditions={"prompt": prompt, "keyframes": keyframes},
        score=list(SCORED_KEYS[task]),
        edit=edit,
        unpaired=unpaired,
    )


def sample_suite(n: int, split: str = "train", seed: int = 0, tasks=TASKS, size: int = 32, frames: int = 16,
                 prefix: str = "suite") -> list[Case]:
    """``n`` cases cycling through ``tasks``; case i uses scene seed ``seed + i``."""
    if n < 1:
        raise AnyframeInputError(f"a suite needs at least one case, got {n}")
    return [make_case(tasks[i % len(tasks)], seed + i, split, size, frames, prefix) for i in range(n)]


def cases_where(task: str, n: int, keep, seed: int = 0, split: str = "train", prefix: str = "case") -> list[Case]:
    """The first ``n`` cases of ``task`` from scene seeds ``seed, seed + 1, …`` whose scene passes ``keep``
    (a ``Scene → bool``): a benchmark's slice of the world, e.g. one-object scenes. Gives up, with an input
    error, after ``1000 · n`` seeds."""
    out, s = [], seed
    while len(out) < n:
        if s - seed >= 1000 * n:
            raise AnyframeInputError(f"only {len(out)} of {n} {task} cases from seeds {seed}–{s - 1} pass the filter")
        case = make_case(task, s, split, prefix=prefix)
        s += 1
        if keep(case.scene_program()):
            out.append(case)
    return out


BUILTIN_SUITES = ("smoke", "standard", "ood")
OOD_TASKS = ("t2v", "ti2v", "keyframes", "interpolation", "prediction", "masks")


def builtin_suite(name: str) -> list[Case]:
    """The built-in suites (fixed seeds: a suite is the same everywhere)."""
    if name == "smoke":
        return sample_suite(2 * len(TASKS), "train", seed=1_000_000, prefix="smoke")
    if name == "standard":
        return sample_suite(40 * len(TASKS), "train", seed=2_000_000, prefix="standard")
    if name == "ood":
        cases = []
        for k, split in enumerate(SPLITS[1:]):
            cases += sample_suite(60, split, seed=3_000_000 + 10_000 * k, tasks=OOD_TASKS, prefix="ood")
        return cases
    raise AnyframeInputError(f"unknown suite {name!r} (built-in: {', '.join(BUILTIN_SUITES)}, or a .jsonl path)")


def write_suite(cases: list[Case], path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(c.to_json() + "\n" for c in cases))
    return Path(path)


def load_suite(source: str | Path) -> list[Case]:
    """A built-in suite by name, or a JSONL file (malformed lines name the file and line)."""
    if str(source) in BUILTIN_SUITES:
        return builtin_suite(str(source))
    path = Path(source)
    if not path.is_file():
        raise AnyframeInputError(f"suite not found: {source} (built-in: {', '.join(BUILTIN_SUITES)})")
    cases = []
    for where, data in read_jsonl(path, "suite"):
        try:
            cases.append(Case.from_dict(data))
        except AnyframeInputError as exc:
            raise AnyframeInputError(f"{where}: {exc}") from None
    if not cases:
        raise AnyframeInputError(f"suite {path} has no cases")
    return cases
