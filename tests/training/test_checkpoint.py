"""Checkpoints: safetensors round trips of nested states, atomic writes, keep-last-N, kill safety."""

import json
import random

import numpy as np
import pytest
import torch

import anyframe.training.checkpoint as ckpt_mod
from anyframe.errors import AnyframeInputError
from anyframe.training.checkpoint import (
    Checkpoint,
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    unflatten_state,
)


def _optimizer_state():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return opt.state_dict()


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b) and a.dtype == b.dtype
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b) and a.dtype == b.dtype
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_flatten_round_trip_of_nested_states():
    state = {
        "optimizer": _optimizer_state(),  # int keys, tensors, floats, tuples (betas)
        "python": random.getstate(),  # nested tuples
        "numpy": np.random.get_state(),  # a tuple holding an ndarray
        "torch": torch.get_rng_state(),
        "misc": [None, True, 1, 2.5, "x", {"a": (1, 2)}],
    }
    skeleton, tensors = flatten_state(state)
    json.dumps(skeleton)  # the skeleton is plain JSON
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    assert _equal(unflatten_state(json.loads(json.dumps(skeleton)), tensors), state)


def test_flatten_refuses_unknown_objects():
    with pytest.raises(TypeError):
        flatten_state({"x": object()})


def _ckpt(step, value=1.0):
    return Checkpoint(step=step, model={"w": torch.full((2, 2), value)}, state={"batches_consumed": step},
                      optimizer=_optimizer_state(), rng={"ranks": [{"generator": torch.Generator().get_state()}]})


def test_save_load_keep_last(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(_ckpt(step, float(step)), tmp_path, keep=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step-00000020", "step-00000030"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    loaded = load_checkpoint(resolve_checkpoint("latest", tmp_path))
    assert loaded.step == 30 and torch.equal(loaded.model["w"], torch.full((2, 2), 30.0))
    assert loaded.state["batches_consumed"] == 30
    assert _equal(loaded.optimizer, _ckpt(30).optimizer)
    for f in (tmp_path / "step-00000030").iterdir():
        assert f.suffix in (".safetensors", ".json")  # no pickle


def test_a_failure_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(_ckpt(10), tmp_path)
    real = ckpt_mod.save_file
    calls = {"n": 0}

    def dying_save(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the model file is written; the process "dies" writing the next file
            with open(path, "wb") as f:
                f.write(b"partial")
            raise KeyboardInterrupt("killed")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_ckpt(20, 2.0), tmp_path)
    monkeypatch.setattr(ckpt_mod, "save_file", real)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000010"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert load_checkpoint(resolve_checkpoint("latest", tmp_path)).step == 10


def test_a_leftover_temporary_folder_is_never_resumed(tmp_path):
    save_checkpoint(_ckpt(10), tmp_path)
    (tmp_path / ".tmp-step-00000020-999").mkdir()  # a killed process's leftovers
    (tmp_path / "step-00000030").mkdir()  # a folder without state.json is incomplete
    assert resolve_checkpoint("latest", tmp_path).name == "step-00000010"


def test_resolve_errors(tmp_path):
    with pytest.raises(AnyframeInputError, match="no checkpoint"):
        resolve_checkpoint("latest", tmp_path)
    with pytest.raises(AnyframeInputError, match="not a checkpoint"):
        resolve_checkpoint(str(tmp_path), tmp_path)
    save_checkpoint(_ckpt(10), tmp_path)
    (tmp_path / "step-00000010" / "optimizer.safetensors").write_bytes(b"corrupt")
    with pytest.raises(AnyframeInputError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "step-00000010")
