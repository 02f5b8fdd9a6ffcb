"""Does sampling hold a model back? Oracle scores of one model under several sampling settings.

    python benchmarks/sampling_sweep.py --model checkpoints/anyframe-world-s --task t2v --n 40

Scores ``--n`` cases of one task (scene seeds from ``--seed``, outside the built-in suites) with the model's
default sampling (25 steps, JIT-CFG 7.5 with renorm), twice the steps, and a lower and a higher guidance
scale, and each setting's paired difference from the default with its 95 % bootstrap interval over the
cases. Writes ``benchmarks/results/sampling_sweep.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from anyframe.evaluation.harness import PipelineModel
from anyframe.evaluation.report import evaluate
from anyframe.evaluation.targets import case_scores, difference_digits, format_difference, paired_differences
from anyframe.world.suite import sample_suite

RESULTS = Path(__file__).parent / "results"
KEYS = ("presence", "color_binding", "count", "motion_direction", "identity_persistence", "keyframe_psnr")
SETTINGS = [("default: 25 steps, guidance 7.5", 25, 7.5), ("50 steps", 50, 7.5), ("guidance 3", 25, 3.0),
            ("guidance 12", 25, 12.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/anyframe-world-s")
    parser.add_argument("--task", default="t2v")
    parser.add_argument("--step", type=int, default=None, help="the model's training step, recorded for the model card")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5_000_000, help="first scene seed (the built-in suites use 1e6–3e6)")
    args = parser.parse_args()
    cases = sample_suite(args.n, "train", seed=args.seed, tasks=(args.task,), prefix="sweep")
    out = Path(tempfile.mkdtemp(prefix="anyframe-sweep-"))
    rows = []
    for label, steps, guidance in SETTINGS:
        start = time.perf_counter()
        [report] = evaluate([PipelineModel(args.model, steps=steps, guidance=guidance, renorm="full", name=label)], cases,
                            out / f"{steps}-{guidance}")
        rows.append({"setting": label, "steps": steps, "guidance": guidance, "seconds": time.perf_counter() - start,
                     "metrics": report["by_task"][args.task], "cases": case_scores(report, KEYS)[args.task]})
        print(label, {k: rows[-1]["metrics"].get(k) for k in KEYS}, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = (f"python benchmarks/sampling_sweep.py --model {args.model} --task {args.task} --n {args.n} "
               f"--seed {args.seed}" + (f" --step {args.step}" if args.step else ""))
    (RESULTS / "sampling_sweep.json").write_text(json.dumps({"command": command, "model": args.model, "task": args.task, "n": args.n,
                                                             "step": args.step, "rows": rows}, indent=1))
    keys = [k for k in KEYS if any(r["metrics"].get(k) is not None for r in rows)]
    fmt = lambda v: "—" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.3f}"
    lines = ["# Sampling sweep", "", f"Command: `{command}`", "",
             f"`{args.model}`" + (f" (step {args.step:,})" if args.step else "") + f" on {args.n} `{args.task}` cases (scene seeds {args.seed}–{args.seed + args.n - 1}, the train",
             "split), JIT-CFG with renorm, sampling seed 0 + the case seed.",
             "", "| setting | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += [f"| {r['setting']} | " + " | ".join(fmt(r["metrics"].get(k)) for k in keys) + " |" for r in rows]
    lines += ["", "Paired differences from the default (same cases, same sampling seeds), with 95 % bootstrap intervals "
              "over the cases; **bold** where the interval excludes zero.", "",
              "| setting | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for r in rows[1:]:
        d = paired_differences(rows[0]["cases"], r["cases"])
        lines.append(f"| {r['setting']} | " + " | ".join(
            format_difference(d[k]["delta"], d[k]["interval"], digits=difference_digits(k)) if k in d else "—"
            for k in keys) + " |")
    (RESULTS / "sampling_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
