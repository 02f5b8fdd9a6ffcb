"""How fast does the command line answer? The median wall time of ``anyframe --help`` and each command's own
``--help`` over repeated runs, and a generation's time from process start to its first sampling step.

    python benchmarks/startup.py --repeats 7 --out benchmarks/results/startup.md

Targets (issue 24): ``--help`` ≤ 0.5 s; time to the first sampling step ≤ 2.5 s on 2 cores. Each run is a fresh
process (``python -m anyframe.cli``, as the ``anyframe`` script runs it). The first-step time comes from a driver
that runs ``anyframe.cli.main(["generate", ...])`` with the shipped model and stops at the first step's callback;
it measures from the interpreter's start (``time.time()`` against the process's start time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELPS = [["--help"], ["generate", "--help"], ["train", "--help"], ["eval", "--help"], ["world", "render", "--help"],
         ["model", "info", "--help"]]

DRIVER = r"""
import os, sys, time
start = float(os.environ["ANYFRAME_BENCH_START"])
import anyframe.pipelines.anyframe as pa
original = pa.AnyFramePipeline.generate
def first_step(self, request, **kwargs):
    def callback(pipe, step, t, tensors):
        print(f"FIRST_STEP {time.time() - start:.3f}", flush=True)
        os._exit(0)
    return original(self, request, callback_on_step_end=callback, **{k: v for k, v in kwargs.items() if k != "callback_on_step_end"})
pa.AnyFramePipeline.generate = first_step
from anyframe.cli import main
main(["generate", "-p", "On a black background, a large red circle moves right.", "--seed", "0", "--out", sys.argv[1]])
"""


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "anyframe.cli", *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def first_step(out: Path) -> float:
    env = {**os.environ, "ANYFRAME_BENCH_START": repr(time.time())}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(out)], capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIRST_STEP")]
    if not lines:
        raise SystemExit(f"the driver did not reach a sampling step:\n{done.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.md")
    args = parser.parse_args(argv)
    timed(["--help"])  # warm the file cache
    rows = []
    for argv_ in HELPS:
        times = [timed(argv_) for _ in range(args.repeats)]
        rows.append({"command": "anyframe " + " ".join(argv_), "median_s": statistics.median(times),
                     "min_s": min(times), "max_s": max(times), "target_s": 0.5})
    with tempfile.TemporaryDirectory() as tmp:
        steps = [first_step(Path(tmp) / "clip.mp4") for _ in range(max(3, args.repeats // 2))]
    rows.append({"command": "anyframe generate … (to the first sampling step)", "median_s": statistics.median(steps),
                 "min_s": min(steps), "max_s": max(steps), "target_s": 2.5})
    rel = args.out.relative_to(ROOT) if args.out.is_absolute() and args.out.is_relative_to(ROOT) else args.out
    command = f"python benchmarks/startup.py --repeats {args.repeats} --out {rel}"
    lines = ["# Start-up time of the command line", "",
             f"`{command}` — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; the median of fresh processes.", "",
             "| command | median (s) | min | max | target (s) | met |", "|---|---:|---:|---:|---:|---|",
             *[f"| `{r['command']}` | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | {r['target_s']} | "
               f"{'yes' if r['median_s'] <= r['target_s'] else 'no'} |" for r in rows], ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
