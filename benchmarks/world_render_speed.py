"""Shapes-world rendering speed: clips/s of ``simulate`` + ``render`` on ONE CPU core.

Renders scenes drawn from the world's own sampler (``anyframe.world.sampling``: the training
distribution and every held-out split; per-style cases restyle training scenes), and also times
the whole data path, ``sample_scene`` + ``render``. The process is pinned to core 0 and every math
library to one thread.

    python benchmarks/world_render_speed.py             # 2000 clips at 32×32×16, then per style and at 64×64
    python benchmarks/world_render_speed.py -n 500 --repeat 5

Reports the best of ``--repeat`` passes (other processes sharing the core only ever slow a pass
down). Writes ``benchmarks/results/world_render_speed.{json,md}``.
"""

from __future__ import annotations

import os

# Single-threaded maths: must be set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from anyframe.world import vocab
from anyframe.world.render import render
from anyframe.world.sampling import SPLITS, sample_scene
from anyframe.world.scene import Scene, simulate

RESULTS = Path(__file__).parent / "results"


def clips_per_s(scenes: list[Scene], repeat: int) -> dict:
    """Best-of-``repeat`` throughput of simulate + render over ``scenes`` (and of simulate alone)."""
    render(scenes[0])  # warm the grid caches
    best_total = best_sim = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for scene in scenes:
            render(scene, simulate(scene))
        best_total = min(best_total, time.perf_counter() - start)
        start = time.perf_counter()
        for scene in scenes:
            simulate(scene)
        best_sim = min(best_sim, time.perf_counter() - start)
    n = len(scenes)
    return {
        "clips": n,
        "clips_per_s": round(n / best_total, 1),
        "ms_per_clip": round(1e3 * best_total / n, 3),
        "simulate_ms_per_clip": round(1e3 * best_sim / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--num", type=int, default=2000, help="clips in the mixed 32×32×16 set")
    parser.add_argument("--repeat", type=int, default=3, help="passes per case; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    try:
        import torch  # (only to pin its pool too, if it is installed)

        torch.set_num_threads(1)
    except ImportError:
        pass

    rows = []

    def case(name: str, scenes: list[Scene]) -> None:
        row = {"case": name, **clips_per_s(scenes, args.repeat)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    rng = np.random.default_rng(args.seed)
    train = [sample_scene(rng) for _ in range(args.num)]
    case("train 32×32×16", train)
    per_case = max(100, args.num // 5)
    for split in SPLITS[1:]:
        case(f"{split} 32×32×16", [sample_scene(rng, split) for _ in range(per_case)])
    for style in vocab.STYLES:
        case(f"{style} 32×32×16", [replace(scene, style=style) for scene in train[:per_case]])
    case("train 64×64×16", [sample_scene(rng, size=64) for _ in range(per_case)])

    # The data path end to end: draw a scene, simulate, render.
    best = float("inf")
    for _ in range(args.repeat):
        gen = np.random.default_rng(args.seed + 1)
        start = time.perf_counter()
        for _ in range(args.num):
            render(sample_scene(gen))
        best = min(best, time.perf_counter() - start)
    row = {"case": "sample + render, train 32×32×16", "clips": args.num, "clips_per_s": round(args.num / best, 1),
           "ms_per_clip": round(1e3 * best / args.num, 3), "simulate_ms_per_clip": None}
    rows.append(row)
    print(json.dumps(row), flush=True)

    command = "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    machine = {"cpu": platform.processor() or platform.machine(), "cores_used": 1, "numpy": np.__version__,
               "python": platform.python_version()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "world_render_speed.json").write_text(
        json.dumps({"command": command, "repeat": args.repeat, "seed": args.seed, "machine": machine,
                    "rows": rows}, indent=2) + "\n")
    lines = [
        "# Shapes-world rendering speed",
        "",
        f"Command: `{command}`",
        f"(best of {args.repeat} passes per case; the process pins itself to core 0, one thread).",
        f"Machine: {machine['cpu']}, numpy {machine['numpy']}, Python {machine['python']}.",
        "A clip is `simulate` + `render` of one scene from the world's sampler (a split, or training scenes",
        "restyled for the per-style rows); the last row also draws the scene (`sample_scene`).",
        "Target: ≥ 500 clips/s at 32×32×16.",
        "",
        "| case | clips | clips/s | ms/clip | of which simulate (ms) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        sim = "—" if r["simulate_ms_per_clip"] is None else r["simulate_ms_per_clip"]
        lines.append(f"| {r['case']} | {r['clips']} | {r['clips_per_s']} | {r['ms_per_clip']} | {sim} |")
    (RESULTS / "world_render_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
