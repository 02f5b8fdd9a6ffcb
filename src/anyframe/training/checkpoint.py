"""Training checkpoints: safetensors only, written atomically, last N kept.

A checkpoint is a folder ``step-00000010/`` holding

- ``model.safetensors`` (the trained backbone), ``ema.safetensors``, ``optimizer.safetensors`` and
  ``rng.safetensors`` — tensors only;
- ``state.json`` — everything else: the step, the data position, the LR scheduler, the optimizer's
  and EMA's non-tensor structure, Python/NumPy RNG states, and the resolved config.

Nested states (optimizer, EMA, RNG) are split into a flat tensor dict and a JSON *skeleton* that
says where each tensor goes (no pickle anywhere). The folder is written under a temporary name and
renamed into place, so a failure mid-save leaves the previous checkpoints as they were.

Recovering from a killed run: :func:`load_resumable` reads the newest checkpoint that is whole (a damaged
one — a truncated ``state.json``, a missing or broken tensor file — is skipped with a warning), and
:func:`remove_leftovers` deletes what a killed process left of its atomic writes (our own temporary names
only) before the next run in the same folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from anyframe.errors import AnyframeInputError

STEP_DIR = re.compile(r"^step-(\d+)$")
TENSOR_FILES = ("model", "ema", "optimizer", "rng")
STATE_PARTS = ("ema", "optimizer", "rng")  # the nested states a checkpoint may hold (a skeleton + a tensor file)


# ------------------------------------------------------------------------------ (un)flattening


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "t") -> tuple[Any, dict]:
    """Split a nested state into a JSON-able skeleton and a flat ``{key: tensor}`` dict.

    Tensors and NumPy arrays become ``{"__tensor__": key}`` (``"__ndarray__"`` for arrays); tuples are
    marked so they come back as tuples; dicts with non-string keys (optimizer states are keyed by
    parameter index) are stored as key/value pairs.
    """
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        if hasattr(obj, "full_tensor"):  # a DTensor shard (FSDP2): checkpoints hold full tensors
            obj = obj.full_tensor()
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}, tensors
    if isinstance(obj, np.ndarray):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}, tensors
    if isinstance(obj, np.generic):
        return obj.item(), tensors
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten_state(v, tensors, prefix)[0] for k, v in obj.items()}, tensors
        return {"__items__": [[k, flatten_state(v, tensors, prefix)[0]] for k, v in obj.items()]}, tensors
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, prefix)[0] for v in obj]}, tensors
    if isinstance(obj, list):
        return [flatten_state(v, tensors, prefix)[0] for v in obj], tensors
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, tensors
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__ndarray__" in skeleton:
            return tensors[skeleton["__ndarray__"]].numpy()
        if "__tuple__" in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
        if "__items__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__items__"]}
        return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


# ------------------------------------------------------------------------------------ folders


@dataclass
class Checkpoint:
    """What a checkpoint holds, in memory."""

    step: int
    model: dict[str, torch.Tensor]
    state: dict  # JSON: data position, scheduler, config...
    optimizer: Any = None  # the optimizer's state_dict
    ema: Any = None  # EMAModel.state_dict()
    rng: Any = None  # see training.recipe: per-rank generator and global RNG states


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(checkpoint: Checkpoint, root: str | Path, keep: int = 2, keep_every: int = 0) -> Path:
    """Write ``root/step-XXXXXXXX`` atomically, then delete all but the newest ``keep`` checkpoints and those at a
    multiple of ``keep_every`` steps (milestones, for curves; 0: none)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{checkpoint.step:08d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        state = dict(checkpoint.state, step=checkpoint.step, skeletons={})
        save_file({k: v.detach().cpu().contiguous() for k, v in checkpoint.model.items()}, str(tmp / "model.safetensors"))
        for name in ("ema", "optimizer", "rng"):
            value = getattr(checkpoint, name)
            if value is None:
                continue
            skeleton, tensors = flatten_state(value)
            save_file(tensors, str(tmp / f"{name}.safetensors"))
            state["skeletons"][name] = skeleton
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it
            old = root / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(root)[:-keep]:
        if keep_every and int(old.name.split("-")[1]) % keep_every == 0:
            continue
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step_dirs(root: Path) -> list[Path]:
    """The ``step-N`` folders under ``root``, oldest first (complete or not)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are never listed)."""
    return [p for p in _step_dirs(Path(root)) if (p / "state.json").is_file()]


def resolve_checkpoint(resume: str, root: str | Path, flag: str = "--resume") -> Path:
    """``latest`` → the newest complete checkpoint under ``root``; otherwise a checkpoint folder. ``flag`` is
    the command's option that named it, for the error message."""
    if resume == "latest":
        found = list_checkpoints(root)
        if not found:
            raise AnyframeInputError(f"{flag} latest: no checkpoint under {root}")
        return found[-1]
    path = Path(resume)
    if not (path / "state.json").is_file() or not (path / "model.safetensors").is_file():
        raise AnyframeInputError(f"{flag} {resume}: not a checkpoint folder (no state.json / model.safetensors)")
    return path


class _Damaged(Exception):
    """A checkpoint folder that cannot be read (the reason is the message)."""


def _read_checkpoint(path: Path, require: tuple[str, ...] = ()) -> Checkpoint:
    """The checkpoint in ``path``; ``require``: state keys or parts (``optimizer``, ``rng``, ``ema``) it must
    hold. Raises :class:`_Damaged` for anything unreadable or missing."""
    try:
        state = json.loads((path / "state.json").read_text())
        if not isinstance(state, dict):
            raise _Damaged(f"state.json holds a JSON {type(state).__name__}, not an object")
        skeletons = state.pop("skeletons", {})
        if not isinstance(skeletons, dict) or not isinstance(state.get("step"), int):
            raise _Damaged("state.json lacks its step or skeletons")
        missing = [k for k in require if k not in state and k not in skeletons]
        if missing:
            raise _Damaged(f"state.json lacks {', '.join(missing)}")
        model = load_file(str(path / "model.safetensors"))
        parts = {}
        for name, skeleton in skeletons.items():
            if name not in STATE_PARTS:
                raise _Damaged(f"state.json names an unknown part {name!r}")
            parts[name] = unflatten_state(skeleton, load_file(str(path / f"{name}.safetensors")))
    except _Damaged:
        raise
    except FileNotFoundError as exc:
        name = exc.filename or str(exc).rpartition(": ")[2]  # (safetensors gives the path in its message only)
        raise _Damaged(f"{Path(name).name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
        raise _Damaged(" ".join(str(exc).split()) or type(exc).__name__) from None
    return Checkpoint(step=state["step"], model=model, state=state, **parts)


def load_checkpoint(path: str | Path, require: tuple[str, ...] = ()) -> Checkpoint:
    """The checkpoint in the folder ``path``; an unreadable one is an :class:`AnyframeInputError`. ``require``:
    state keys or parts (``optimizer``, ``rng``, ``ema``) it must hold."""
    path = Path(path)
    try:
        return _read_checkpoint(path, require)
    except _Damaged as exc:
        raise AnyframeInputError(f"cannot read checkpoint {path}: {exc}") from None


def load_resumable(resume: str, root: str | Path, require: tuple[str, ...] = (),
                   flag: str = "--resume") -> tuple[Path, Checkpoint]:
    """The checkpoint to resume from, and its folder. ``latest``: the newest readable checkpoint under
    ``root`` — a damaged newer one (a run killed while its disk failed, a file truncated by hand) is skipped
    with a warning naming it; none readable is an error. A named folder must itself be readable."""
    root = Path(root)
    if resume != "latest":
        path = resolve_checkpoint(resume, root, flag)
        try:
            return path, _read_checkpoint(path, require)
        except _Damaged as exc:
            raise AnyframeInputError(f"{flag} {resume}: cannot read checkpoint ({exc})") from None
    found = _step_dirs(root)
    if not found:
        raise AnyframeInputError(f"{flag} latest: no checkpoint under {root}")
    damaged = []
    for path in reversed(found):
        try:
            if not (path / "state.json").is_file():
                raise _Damaged("state.json is missing")
            ckpt = _read_checkpoint(path, require)
        except _Damaged as exc:
            damaged.append((path, str(exc)))
            continue
        for bad, reason in damaged:
            warnings.warn(f"checkpoint {bad} is damaged ({reason}): resuming from {path.name} instead")
        return path, ckpt
    reasons = "; ".join(f"{bad.name}: {reason}" for bad, reason in damaged)
    raise AnyframeInputError(f"{flag} latest: no readable checkpoint under {root}, all are damaged ({reasons})")


# ------------------------------------------------------------------------------- leftovers

# What our atomic writes name their temporaries (anyframe.io.atomic_path / atomic_dir use mkstemp/mkdtemp
# names: the target's name between a dot and 8 random characters from [a-z0-9_]), and save_checkpoint's.
_RANDOM = r"[a-z0-9_]{8}"
_LEFTOVERS = {
    "checkpoints": [(True, re.compile(r"^\.(tmp|old)-step-\d+-\d+$"))],
    "samples": [(False, re.compile(rf"^\.step-\d+\.png\.{_RANDOM}\.tmp$"))],
}
_RUN_FILES = ("metrics.jsonl", "config.yaml", "config.json")


def _run_leftovers(exports: tuple[str, ...]) -> list[tuple[bool, re.Pattern]]:
    files = "|".join(re.escape(n) for n in _RUN_FILES)
    found: list[tuple[bool, re.Pattern]] = [
        (False, re.compile(r"^metrics\.jsonl\.tmp$")),
        (False, re.compile(rf"^\.({files})\.{_RANDOM}\.tmp$")),
    ]
    if exports:
        names = "|".join(re.escape(n) for n in exports)
        found.append((True, re.compile(rf"^\.({names})\.({_RANDOM}|old)$")))
    return found


def remove_leftovers(run_dir: str | Path, exports: tuple[str, ...] = ("pipeline", "lora")) -> list[Path]:
    """Delete the temporaries a killed run left in ``run_dir`` (its checkpoint folders being written or
    replaced, half-written metrics/config files, an export being written) — names only our own writes
    make, nothing else — and say so in one warning. Returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for sub, patterns in ((".", _run_leftovers(exports)), *_LEFTOVERS.items()):
        folder = run_dir / sub
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            for is_dir, pattern in patterns:
                if pattern.match(entry.name) and not entry.is_symlink() and (entry.is_dir() if is_dir else entry.is_file()):
                    if is_dir:
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed.append(entry)
                    break
    if removed:
        names = ", ".join(str(p.relative_to(run_dir)) for p in removed)
        warnings.warn(f"removed what an interrupted run left in {run_dir}: {names}")
    return removed
