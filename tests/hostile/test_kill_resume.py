"""Kill a real training process (SIGKILL) at random moments — mid-training, while it writes a checkpoint, while
it exports — and resume it with ``--resume latest`` until it is done: its exported weights are bit-identical
to those of an uninterrupted run, and its metrics.jsonl is valid JSONL with one record per logged step.

Each process spends most of its ~10 s importing (torch, diffusers, transformers) on these CPUs, so the test
kills twice (three processes in a row) and trains the uninterrupted run in its own process, on one thread like
them; the in-process cases of test_training_recover.py cover the other damage (a half-written metrics line, a
damaged checkpoint...)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "configs" / "toy.yaml"
STEPS = 12
SETS = [f"train.steps={STEPS}", "data.toy.num_clips=8", "data.batch_size=2", "train.log_every=1",
        "train.checkpoint_every=2", "train.keep_checkpoints=2", "train.export=true", "optim.warmup_steps=2"]
TIMING = ("steps_per_s", "samples_per_s")  # wall-clock fields: the only ones that may differ
EXPORT_TMP = re.compile(r"^\.pipeline\.[a-z0-9_]{8}$")
WEIGHTS = Path("pipeline") / "transformer" / "diffusion_pytorch_model.safetensors"


def _start(run: Path, resume: bool, name: str) -> subprocess.Popen:
    """``anyframe train`` in a subprocess; its output goes to files (never pipes: a killed process's pipe
    could block the reader)."""
    cmd = [sys.executable, "-m", "anyframe.cli", "train", "--config", str(CONFIG), "--quiet", "--output", str(run),
           *[a for s in SETS for a in ("--set", s)], *(["--resume", "latest"] if resume else [])]
    logs = run.parent / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.err", "w") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _stderr(run: Path, name: str) -> str:
    return (run.parent / "logs" / f"{name}.err").read_text()


def _logged_step(run: Path) -> int:
    """The newest step in metrics.jsonl (a line being written is ignored)."""
    try:
        text = (run / "metrics.jsonl").read_text()
    except OSError:
        return 0
    steps = [0]
    for line in text.splitlines():
        try:
            steps.append(int(json.loads(line).get("step", 0)))
        except (ValueError, AttributeError):
            pass
    return max(steps)


def _entries(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder)]
    except OSError:
        return []


def _kill_when(proc: subprocess.Popen, condition, delay: float = 0.0, timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` once ``condition()`` holds (after ``delay`` s); False if it exited on its own first."""
    end = time.monotonic() + timeout
    while proc.poll() is None:
        if condition():
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() > end:
            proc.kill()
            proc.wait()
            raise AssertionError("the training process did not reach the kill point in time")
        time.sleep(0.002)
    return False


def _has_checkpoint(run: Path) -> bool:
    return any(re.match(r"^step-\d+$", n) for n in _entries(run / "checkpoints"))


def _train_uninterrupted(out: Path) -> None:
    """The same recipe in this process (its imports are paid already: a second or two), on one thread like
    the subprocesses (OMP_NUM_THREADS=1), so that the arithmetic is the same."""
    import torch

    from anyframe.training.config import load_config
    from anyframe.training.recipe import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(CONFIG, SETS), output_dir=str(out), progress=False)
    finally:
        torch.set_num_threads(threads)


def _strict_records(path: Path) -> list[dict]:
    def refuse(name):
        raise ValueError(f"{name} in {path}")

    text = path.read_text()
    assert text.endswith("\n"), text[-200:]
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_sigkilled_at_random_moments_and_resumed_gives_the_same_run(tmp_path):
    rng = random.Random(23)
    straight, run = tmp_path / "straight" / "run", tmp_path / "killed" / "run"
    straight.parent.mkdir()
    run.parent.mkdir()

    # 1: mid-training, while a random checkpoint is being written (its temporary folder exists), after a random
    # delay (the process may be past it by then: a kill at a random moment of the next step)
    step = rng.choice([4, 6, 8])
    first = _start(run, resume=False, name="kill-1")
    tmp_name = re.compile(rf"^\.tmp-step-{step:08d}-\d+$")
    assert _kill_when(first, lambda: any(tmp_name.match(n) for n in _entries(run / "checkpoints"))
                      or _logged_step(run) > step, delay=rng.uniform(0, 0.02)), "finished before the kill"
    assert _logged_step(run) < STEPS
    left = [n for n in _entries(run / "checkpoints") if n.startswith(".tmp-step-")]

    # 2: during the final export (its temporary folder beside pipeline/ exists)
    second = _start(run, resume=_has_checkpoint(run), name="kill-2")
    assert _kill_when(second, lambda: any(EXPORT_TMP.match(n) for n in _entries(run))), "finished before the kill"
    assert not (run / "pipeline").exists()  # never a partial export under the real name
    assert all(name in _stderr(run, "kill-2") for name in left)  # the half-written checkpoint was removed, and said so

    last = _start(run, resume=True, name="resume")
    assert last.wait(timeout=180) == 0, _stderr(run, "resume")[-3000:]
    err = _stderr(run, "resume")
    assert "finishing its export" in err and "removed what an interrupted run left" in err, err[-3000:]
    assert "Traceback" not in err
    _train_uninterrupted(straight)

    # the same weights, bit for bit: the export and the final checkpoint
    assert (run / WEIGHTS).read_bytes() == (straight / WEIGHTS).read_bytes()
    a, b = load_file(run / WEIGHTS), load_file(straight / WEIGHTS)
    assert a.keys() == b.keys()
    final = Path("checkpoints") / f"step-{STEPS:08d}"
    for part in ("model", "ema", "optimizer"):
        assert (run / final / f"{part}.safetensors").read_bytes() == (straight / final / f"{part}.safetensors").read_bytes()
    # metrics: valid JSONL, one record per logged step (and the one closing record), the same numbers
    records, expected = _strict_records(run / "metrics.jsonl"), _strict_records(straight / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == list(range(1, STEPS + 1))
    assert sum("ranks_in_sync" in r for r in records) == 1
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in records]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in expected]
    # nothing a kill left behind
    leftovers = [n for n in _entries(run) + _entries(run / "checkpoints") if n.startswith(".") or n.endswith(".tmp")]
    assert not leftovers, leftovers
