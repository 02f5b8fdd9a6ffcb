"""Training loss of a branch against its parent run on the same batches.

    python benchmarks/paired_loss.py --base runs/world-s --branch runs/world-s-cooldown --name cooldown_loss

A branch resumed from one of the run's checkpoints (a cooldown, say) draws the same batches, σ and noise
at each step as the run does (resume restores the data position and every RNG), so the two runs' logged
losses at a step are paired: their difference is the branch's effect, free of batch-to-batch noise.
The log holds one step's loss every ``train.log_every`` steps. Writes ``benchmarks/results/NAME.{md,json}``:
the mean of those logged losses of each run over windows of ``--window`` steps,
the paired difference, and the branch's learning rate at each window's end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _records(run: Path) -> dict[int, dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {run}: no metrics.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in records if "steps_per_s" in r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the parent run folder")
    parser.add_argument("--branch", required=True, help="the branch's run folder")
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--name", required=True, help="results/NAME.{md,json}")
    args = parser.parse_args()
    base, branch = _records(Path(args.base)), _records(Path(args.branch))
    steps = sorted(set(base) & set(branch))
    if not steps:
        raise SystemExit("error: the runs share no logged step")
    first = steps[0] - 1
    rows = []
    for lo in range(first - first % args.window, steps[-1], args.window):
        window = [s for s in steps if lo < s <= lo + args.window]
        if not window:
            continue
        a = sum(base[s]["loss"] for s in window) / len(window)
        b = sum(branch[s]["loss"] for s in window) / len(window)
        rows.append({"steps": [lo + 1, lo + args.window], "logged": len(window), "base": a, "branch": b,
                     "difference": b - a, "relative": (b - a) / a, "branch_lr": branch[window[-1]]["lr"]})
    command = f"python benchmarks/paired_loss.py --base {args.base} --branch {args.branch} --window {args.window} --name {args.name}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    lines = [f"# Training loss: `{args.branch}` against `{args.base}` on the same batches", "",
             f"Command: `{command}`", "",
             "Mean of the logged flow-matching losses per window (one step's batch every `train.log_every` steps; the same",
             "steps of both runs: the same batches, σ and noise).", "",
             "| steps | logged points | base | branch | branch − base | relative | branch LR at the end |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['steps'][0]:,}–{r['steps'][1]:,} | {r['logged']} | {r['base']:.4f} | {r['branch']:.4f} | "
              f"{r['difference']:+.4f} | {100 * r['relative']:+.1f} % | {r['branch_lr']:.2e} |" for r in rows]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
