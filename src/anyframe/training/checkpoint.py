"""Training checkpoints: safetensors only, written atomically, last N kept.

A checkpoint is a folder ``step-00000010/`` holding

- ``model.safetensors`` (the trained backbone), ``ema.safetensors``, ``optimizer.safetensors`` and
  ``rng.safetensors`` — tensors only;
- ``state.json`` — everything else: the step, the data position, the LR scheduler, the optimizer's
  and EMA's non-tensor structure, Python/NumPy RNG states, and the resolved config.

Nested states (optimizer, EMA, RNG) are split into a flat tensor dict and a JSON *skeleton* that
says where each tensor goes (no pickle anywhere). The folder is written under a temporary name and
renamed into place, so a failure mid-save leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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


def save_checkpoint(checkpoint: Checkpoint, root: str | Path, keep: int = 2) -> Path:
    """Write ``root/step-XXXXXXXX`` atomically, then delete all but the newest ``keep`` checkpoints."""
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
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are never listed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found) if (p / "state.json").is_file()]


def resolve_checkpoint(resume: str, root: str | Path) -> Path:
    """``latest`` → the newest complete checkpoint under ``root``; otherwise a checkpoint folder."""
    if resume == "latest":
        found = list_checkpoints(root)
        if not found:
            raise AnyframeInputError(f"--resume latest: no checkpoint under {root}")
        return found[-1]
    path = Path(resume)
    if not (path / "state.json").is_file() or not (path / "model.safetensors").is_file():
        raise AnyframeInputError(f"--resume {resume}: not a checkpoint folder (no state.json / model.safetensors)")
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        model = load_file(str(path / "model.safetensors"))
        parts = {}
        for name, skeleton in state.pop("skeletons", {}).items():
            parts[name] = unflatten_state(skeleton, load_file(str(path / f"{name}.safetensors")))
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise AnyframeInputError(f"cannot read checkpoint {path}: {' '.join(str(exc).split())}") from None
    return Checkpoint(step=int(state["step"]), model=model, state=state, **parts)
