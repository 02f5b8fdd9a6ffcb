"""Generation speed of a pipeline folder on this machine: load time, and a 16-frame clip at 25 steps with
JIT-CFG (T2V and TI2V), with the weights in float32 and in bfloat16 (``anyframe generate --dtype``; the VAE
stays float32). ``generate``'s default, ``auto``, is bfloat16 on a CPU with native bf16, float32 elsewhere.

    python benchmarks/generate_speed.py [--model checkpoints/anyframe-world-s] [--repeats 5] [--dtypes float32,bfloat16]

*Load* is ``load_pipeline`` (what the CLI calls) in a fresh process (after the imports, which are timed
apart), median over ``--repeats`` processes. *Generate* is one call of the pipeline after one warm-up
call, median over ``--repeats`` calls, output decoded to frames. bf16 is fast only on a CPU with native
bf16 (AVX512-BF16 / AMX: the table says whether this one has it, and so which one ``auto`` picks). Writes
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
from anyframe.pipelines import load_pipeline
t1 = time.perf_counter()
pipe = load_pipeline({path!r}, {dtype!r})
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def time_load(path: str, repeats: int, dtype: str) -> tuple[float, float]:
    imports, loads = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _LOAD.format(path=path, dtype=dtype)], capture_output=True, text=True, check=True)
        a, b = map(float, out.stdout.split()[-2:])
        imports.append(a)
        loads.append(b)
    return statistics.median(imports), statistics.median(loads)


def time_generate(path: str, repeats: int, image: bool, dtype: str) -> float:
    import torch

    from anyframe.pipelines import Keyframe, load_pipeline
    from anyframe.world.render import render
    from anyframe.world.sampling import scene_for_seed

    pipe = load_pipeline(path, dtype)
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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/anyframe-world-s")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float32,bfloat16", help="Comma-separated: float32, bfloat16.")
    args = parser.parse_args()
    dtypes = args.dtypes.split(",")
    if not dtypes or any(d not in ("float32", "bfloat16") for d in dtypes):
        parser.error(f"--dtypes takes float32 and/or bfloat16, got {args.dtypes!r}")
    import torch

    from anyframe.pipelines import native_bf16, resolve_dtype

    rows = {}
    for dtype in dtypes:
        imports, load = time_load(args.model, args.repeats, dtype)
        rows[dtype] = {"import_s": imports, "load_s": load,
                       "t2v_s": time_generate(args.model, args.repeats, False, dtype),
                       "ti2v_s": time_generate(args.model, args.repeats, True, dtype)}
    result = {
        "model": args.model, "repeats": args.repeats, "by_dtype": rows, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu": cpu_name(), "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16("cpu"), "default_dtype": resolve_dtype("auto", "cpu"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate_speed.json").write_text(json.dumps(result, indent=1))
    lines = [
        "# Generation speed", "",
        f"Command: `python benchmarks/generate_speed.py --model {args.model} --repeats {args.repeats} --dtypes {args.dtypes}`", "",
        f"Machine: {result['cores']} cores ({result['cpu']}, {result['cpu_capability']}, native bf16: "
        f"{'yes' if result['native_bf16'] else 'no'}), {result['threads']} torch threads, torch {result['torch']}, "
        "no GPU. Medians. The weights' dtype is `anyframe generate --dtype` (the VAE stays float32); its default "
        f"here, `auto`, is **{result['default_dtype']}**.", "",
        "| what | " + " | ".join(dtypes) + " | target |", "|---|" + "---|" * len(dtypes) + "---|",
    ]
    for key, what, target in (("import_s", "import torch + anyframe (fresh process)", "—"),
                              ("load_s", "load the pipeline (`load_pipeline`)", "≤ 3"),
                              ("t2v_s", "T2V: 16 frames, 25 steps, JIT-CFG", "≤ 2"),
                              ("ti2v_s", "TI2V: 16 frames, 25 steps, JIT-CFG", "≤ 2")):
        lines.append(f"| {what} | " + " | ".join(f"{rows[d][key]:.2f}" for d in dtypes) + f" | {target} |")
    lines.append("")
    (RESULTS / "generate_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
