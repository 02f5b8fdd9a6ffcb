"""`anyframe eval` on several processes: each rank scores its share of the cases (round robin), rank 0 merges them in
case order and writes the report a single process writes; the other ranks write nothing."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from anyframe.errors import AnyframeInputError
from anyframe.evaluation import report as report_module
from anyframe.evaluation.harness import Generation, TruthModel
from anyframe.evaluation.ranks import Ranks, merge_shares
from anyframe.evaluation.report import evaluate
from anyframe.world.suite import sample_suite


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("total", [0, 1, 7, 8])
def test_merging_the_shares_gives_back_the_sequence(world, total):
    items = list(range(total))
    shares = [Ranks(rank, world).share(items) for rank in range(world)]
    assert sorted(x for s in shares for x in s) == items
    assert merge_shares(shares) == items


def test_shares_that_are_no_round_robin_are_refused():
    with pytest.raises(ValueError, match="round robin"):
        merge_shares([[0, 2], [1, 3, 5]])


class BlankOdd:
    """The true clip for even case seeds, a black one for odd: cases of every quality, at the oracle's cost of truth."""

    name = "blank-odd"

    def generate(self, case, cond):
        if case.seed % 2:
            return Generation(np.zeros_like(cond.clip))
        return Generation(cond.clip.copy(), cond.masks.copy())


class ThreadRanks(Ranks):
    """The ranks of one evaluation as threads of this process: ``gather`` through a shared board (what it passes is
    pickled, as torch.distributed's gather_object does)."""

    def __init__(self, rank: int, world: int, board: list, barrier: threading.Barrier):
        super().__init__(rank, world)
        self.board, self.barrier = board, barrier

    def gather(self, value):
        self.board[self.rank] = pickle.dumps(value)
        self.barrier.wait()
        values = [pickle.loads(v) for v in self.board] if self.is_main else None
        self.barrier.wait()  # (nobody writes the next gather's value before rank 0 has read this one's)
        return values


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ranks_write_the_report_of_one_process(tmp_path, monkeypatch):
    world = 3  # shares of 3, 3 and 2 cases
    monkeypatch.setattr(report_module, "WORST_CASES", 2)  # fewer than a rank's share: rank 0 picks among theirs
    cases = sample_suite(8, seed=11)  # one case per task, half of them black
    models = [TruthModel(), BlankOdd()]
    single = evaluate(models, cases, tmp_path / "single", calibrate=False)

    board, barrier = [None] * world, threading.Barrier(world)
    ranks = [ThreadRanks(r, world, board, barrier) for r in range(world)]
    returned, seen = {}, {r: [] for r in range(world)}

    def run(rank):
        try:
            returned[rank] = evaluate(models, cases, tmp_path / f"rank{rank}", calibrate=False, ranks=ranks[rank],
                                      on_case=lambda name: seen[rank].append(name))
        finally:
            if rank not in returned:  # (it failed: the others, waiting at the barrier, fail too)
                barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(returned) == list(range(world))  # (a thread's error is printed above)
    assert returned[0] == single  # the same reports, case for case, means and worst cases included
    assert _files(tmp_path / "rank0") == _files(tmp_path / "single")  # report.md, JSON, plots and filmstrips
    assert all(returned[r] == [] and not (tmp_path / f"rank{r}").exists() for r in range(1, world))
    assert [len(seen[r]) for r in range(world)] == [2 * len(range(r, 8, world)) for r in range(world)]
    worst = [w["id"] for w in single[1]["worst"]]
    assert len(worst) == 2 and all(int(c.seed) % 2 for c in cases if c.id in worst)


def test_one_process_and_the_device_of_each(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    ranks = Ranks.from_env()
    assert (ranks.rank, ranks.world, ranks.is_main) == (0, 1, True)
    assert ranks.gather({"x": 1}) == [{"x": 1}]
    assert Ranks(1, 2).device("cuda") == "cuda:1" and Ranks(1, 2).device("cuda:3") == "cuda:3"
    assert Ranks(0, 1).device("cuda") == "cuda" and Ranks(1, 2).device("cpu") == "cpu"
    # several processes without a rendezvous: one clear error, not a wait
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AnyframeInputError, match="MASTER_ADDR and MASTER_PORT"):
        Ranks.from_env()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "0")
    with pytest.raises(AnyframeInputError, match="--master_port N"):
        Ranks.from_env()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from anyframe.pipelines import build_world_pipeline

    path = tmp_path_factory.mktemp("model") / "tiny"
    build_world_pipeline("tiny", seed=0).save_pretrained(path)
    return path


def _without_seconds(report: dict) -> dict:
    return {**report, "cases": [{k: v for k, v in case.items() if k != "seconds"} for case in report["cases"]]}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], log, timeout: float = 300) -> tuple[int | None, str]:
    """Run a command with its output in a file (an orphaned rank holding a pipe would block the reader); on a timeout
    torchrun is asked to stop (it stops its ranks, which run in their own sessions), then killed."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**env, "OMP_NUM_THREADS": "1"})
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return None, log.read_text()
    return proc.returncode, log.read_text()


@pytest.mark.slow  # three runs, two of them at once, each importing torch: ~50 s on 2 cores
def test_two_processes_under_torchrun_write_the_report_of_one(tmp_path, tiny_model):
    # (--num-cases: torchrun takes --n for an abbreviation of its own flags)
    args = ["eval", "--model", str(tiny_model), "--suite", "smoke", "--num-cases", "5", "--steps", "2", "--quiet"]
    code, log = _run([sys.executable, "-m", "anyframe.cli", *args, "--out", str(tmp_path / "one")], tmp_path / "one.log")
    assert code == 0, log[-2000:]
    code, log = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                      str(_free_port()), "-m", "anyframe.cli", *args, "--out", str(tmp_path / "two")], tmp_path / "two.log")
    assert code == 0, log[-2000:]
    assert log.count("report: ") == 1  # rank 0 alone reports
    first, second = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert len(second["cases"]) == 5 and any(c["scores"] for c in second["cases"])
    assert [c["model"] for c in second["calibration"]] == ["truth", "random"]
    assert _without_seconds(second) == _without_seconds(first)  # every case's score, and their means, exactly
    assert (tmp_path / "two" / "report.md").read_bytes() == (tmp_path / "one" / "report.md").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
