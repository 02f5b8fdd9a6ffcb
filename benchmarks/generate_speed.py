"""Generation speed of a pipeline folder on this machine: load time, and a 16-frame clip at 25 steps with
JIT-CFG (T2V and TI2V).

    python benchmarks/generate_speed.py [--model checkpoints/anyframe-world-s] [--repeats 5]

*Load* is ``AnyFramePipeline.from_pretrained`` in a fresh process (after the imports, which are timed
apart), median over ``--repeats`` processes. *Generate* is one call of the pipeline after one warm-up
call, median over ``--repeats`` calls, output decoded to frames. Writes
``benchmarks/results/generate_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PROMPT = "On a black background, a large red circle moves right. A small blue square moves up."

_LOAD = """
import time
t0 = time.perf_counter()
import torch
from anyframe.pipeline import AnyFramePipeline
t1 = time.perf_counter()
pipe = AnyFramePipeline.from_pretrained({path!r})
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def time_load(path: str, repeats: int) -> tuple[float, float]:
    imports, loads = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _LOAD.format(path=path)], capture_output=True, text=True, check=True)
        a, b = map(float, out.stdout.split()[-2:])
        imports.append(a)
        loads.append(b)
    return statistics.median(imports), statistics.median(loads)


def time_generate(path: str, repeats: int, image: bool) -> float:
    import torch

    from anyframe.pipeline import AnyFramePipeline, Keyframe
    from anyframe.world.render import render
    from anyframe.world.sampling import scene_for_seed

    pipe = AnyFramePipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    keyframes = [Keyframe(render(scene_for_seed(0, "train")).frames[0], 0)] if image else []
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(PROMPT, keyframes=keyframes, num_frames=16, num_inference_steps=25, guidance_scale=7.5,
                 guidance_mode="jit", seed=i)
        if i:  # the first call warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/anyframe-world-s")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    imports, load = time_load(args.model, args.repeats)
    t2v = time_generate(args.model, args.repeats, image=False)
    ti2v = time_generate(args.model, args.repeats, image=True)
    result = {
        "model": args.model, "repeats": args.repeats, "import_s": imports, "load_s": load, "t2v_s": t2v,
        "ti2v_s": ti2v, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate_speed.json").write_text(json.dumps(result, indent=1))
    lines = [
        "# Generation speed", "",
        f"Command: `python benchmarks/generate_speed.py --model {args.model} --repeats {args.repeats}`", "",
        f"Machine: {result['cores']} cores ({result['cpu']}), {result['threads']} torch threads, torch {result['torch']}, "
        "no GPU. Medians.", "",
        "| what | seconds | target |", "|---|---|---|",
        f"| import torch + anyframe (fresh process) | {imports:.2f} | — |",
        f"| load the pipeline (`from_pretrained`) | {load:.2f} | ≤ 3 |",
        f"| T2V: 16 frames, 25 steps, JIT-CFG | {t2v:.2f} | ≤ 2 |",
        f"| TI2V: 16 frames, 25 steps, JIT-CFG | {ti2v:.2f} | ≤ 2 |", "",
    ]
    (RESULTS / "generate_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
