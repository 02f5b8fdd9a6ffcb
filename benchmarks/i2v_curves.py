"""Image-to-video training curves: has each variant converged? (issue 27)

    python benchmarks/i2v_curves.py --run 'frame replacement=runs/i2v/frame-replacement' \\
        --run 'channel concat=runs/i2v/channel-concat' --run 'FlashI2V=runs/i2v/flashi2v' \\
        [--every 500] [--n 16] [--split train --split ood_background] [--window 2000] [--flat-db 0.5]

For each run (a training folder whose ``checkpoints/`` keeps every ``--every``-th step: the recipe's
``train.keep_every``), each kept checkpoint at a multiple of ``--every`` is exported (its EMA weights, to a
temporary folder) and sampled on a **fixed validation set**: ``--n`` TI2V cases per ``--split``, the same scenes
as ``benchmarks/flashi2v_ablation.py`` (seeds 70,000 + i, outside every training stream), with that
benchmark's sampling (25 Euler steps, JIT-CFG 7.5 + renorm) and measures:

- ``first_frame_psnr``: generated frame 0 against the condition image (dB);
- ``motion_direction``: the oracle's share of objects moving the way the scene moves them;
- ``global_color_error``: |mean RGB of a generated frame − the true frame's|, averaged over frames (0–255);
- ``color_consistency``: the share of the objects' detections in their true colour.

**Flatness test** (fixed before any run): a curve is *flat* at a run's last step when its first-frame PSNR
gained less than ``--flat-db`` (0.5 dB) over the last ``--window`` (2,000) steps; the table gives that gain and
the least-squares slope over the window (dB per 1,000 steps) for every metric, so a curve that is not flat at
the cap says how fast it still moves.

Every step's measures are cached beside its checkpoint (``<run>/curve/step-N-<key>.json``), so the script can
run while the training goes on and measures only what is new. Writes ``benchmarks/results/<--name>.{json,md}``
and ``<--name>.png`` (one panel per metric and split).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anyframe.evaluation.harness import Conditioning, PipelineModel
from anyframe.io import write_texts
from anyframe.progress import StageBars
from anyframe.training.checkpoint import list_checkpoints
from anyframe.training.export import export_checkpoint
from anyframe.world.suite import sample_suite

sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmark's validation scenes and measures
from flashi2v_ablation import CASE_SEED, measure

RESULTS = Path(__file__).parent / "results"
KEYS = ("first_frame_psnr", "motion_direction", "global_color_error", "color_consistency")
SAMPLING = {"steps": 25, "guidance": 7.5, "renorm": "full"}  # flashi2v_ablation.py's


def milestones(run: Path, every: int) -> list[tuple[int, Path]]:
    """(step, checkpoint) at each multiple of ``every`` that the run kept, oldest first."""
    out = []
    for ckpt in list_checkpoints(run / "checkpoints"):
        step = int(ckpt.name.split("-")[1])
        if step % every == 0:
            out.append((step, ckpt))
    return out


def cache_key(n: int, splits: list[str]) -> str:
    return hashlib.sha256(json.dumps({"n": n, "splits": splits, "seed": CASE_SEED, **SAMPLING}).encode()).hexdigest()[:10]


def measure_step(ckpt: Path, cases: dict, conds: dict, bars: StageBars, label: str) -> dict:
    """Export the checkpoint's EMA weights, sample every validation case, and average each measure per split."""
    tmp = Path(tempfile.mkdtemp(prefix="i2v-curve-"))
    try:
        export_checkpoint(ckpt, tmp / "pipeline")
        model = PipelineModel(str(tmp / "pipeline"), name=label, **SAMPLING)
        out = {}
        task = bars.task(label, sum(len(c) for c in cases.values()))
        for split, split_cases in cases.items():
            rows = []
            for case in split_cases:
                rows.append(measure(model.generate(case, conds[case.id]).frames, conds[case.id], case))
                bars.advance(task)
            out[split] = {k: _mean([r[k] for r in rows]) for k in KEYS} | {"n": len(rows)}
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def flatness(steps: list[int], values: list[float | None], window: int) -> dict:
    """Gain of the last point over the point ``window`` steps before it (None where the curve is shorter), and
    the least-squares slope over the points inside the window, per 1,000 steps."""
    pts = [(s, v) for s, v in zip(steps, values) if v is not None]
    if len(pts) < 2:
        return {"gain": None, "slope_per_1000": None}
    last_step, last = pts[-1]
    earlier = [v for s, v in pts if s == last_step - window]
    inside = [(s, v) for s, v in pts if s >= last_step - window]
    slope = None
    if len(inside) >= 2:
        x = np.array([s for s, _ in inside], dtype=float)
        y = np.array([v for _, v in inside], dtype=float)
        slope = float(np.polyfit(x, y, 1)[0] * 1000)
    return {"gain": (last - earlier[0]) if earlier else None, "slope_per_1000": slope}


def plot(curves: dict, splits: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(splits), len(KEYS), figsize=(4 * len(KEYS), 3 * len(splits)), squeeze=False)
    for row, split in enumerate(splits):
        for col, key in enumerate(KEYS):
            ax = axes[row][col]
            for label, points in curves.items():
                xs = [p["step"] for p in points if p[split][key] is not None]
                ys = [p[split][key] for p in points if p[split][key] is not None]
                ax.plot(xs, ys, marker="o", label=label)
            ax.set_title(f"{key} ({split})", fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (a training folder); repeat")
    ap.add_argument("--every", type=int, default=500, help="measure the checkpoints at multiples of this step")
    ap.add_argument("--n", type=int, default=16, help="validation cases per split")
    ap.add_argument("--split", action="append", default=None, help="train (default) | ood_background | …; repeat")
    ap.add_argument("--window", type=int, default=2000, help="the flatness test's window (steps)")
    ap.add_argument("--flat-db", type=float, default=0.5, help="flat: first-frame PSNR gained less than this (dB)")
    ap.add_argument("--only-measure", action="store_true", help="fill the caches and stop (no tables or plots)")
    ap.add_argument("--name", default="i2v_curves")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    splits = args.split or ["train"]
    runs = {}
    for spec in args.run:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path, "checkpoints").is_dir():
            print(f"error: --run {spec}: want LABEL=RUN_DIR, a training folder with checkpoints/", file=sys.stderr)
            return 2
        runs[label] = Path(path)
    if args.every < 1 or args.n < 1 or args.window < args.every:
        print("error: --every and --n must be ≥ 1 and --window ≥ --every", file=sys.stderr)
        return 2

    cases = {s: sample_suite(args.n, s, seed=CASE_SEED, tasks=("ti2v",), prefix="flashi2v") for s in splits}
    conds = {c.id: Conditioning.of(c) for s in splits for c in cases[s]}
    key = cache_key(args.n, splits)
    curves: dict[str, list[dict]] = {}
    start = time.perf_counter()
    with StageBars(sys.stderr.isatty()) as bars:
        for label, run in runs.items():
            curves[label] = []
            for step, ckpt in milestones(run, args.every):
                cached = run / "curve" / f"step-{step:08d}-{key}.json"
                if cached.is_file():
                    point = json.loads(cached.read_text())
                else:
                    point = {"step": step, **measure_step(ckpt, cases, conds, bars, f"{label} @ {step}")}
                    write_texts({cached: json.dumps(point)})
                curves[label].append(point)
            print(f"{label}: {len(curves[label])} points ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.only_measure:
        return 0

    summary = {}
    for label, points in curves.items():
        steps = [p["step"] for p in points]
        summary[label] = {split: {k: flatness(steps, [p[split][k] for p in points], args.window) for k in KEYS}
                          for split in splits}
        summary[label]["last_step"] = steps[-1] if steps else None
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, splits, args.out / f"{args.name}.png")
    command = "python benchmarks/i2v_curves.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "name": args.name, "every": args.every, "n": args.n, "splits": splits, "window": args.window,
               "flat_db": args.flat_db, "sampling": SAMPLING, "curves": curves, "flatness": summary}
    write_texts({args.out / f"{args.name}.json": json.dumps(payload, indent=1),
                 args.out / f"{args.name}.md": render(payload)})
    return 0


def _fmt(v, digits=2) -> str:
    return "—" if v is None else f"{v:+.{digits}f}" if digits < 0 else f"{v:.{digits}f}"


def render(payload: dict) -> str:
    lines = ["# Image-to-video training curves", "", f"Command: `{payload['command']}`", "",
             f"{payload['n']} TI2V validation cases per split (flashi2v_ablation.py's scenes), measured every "
             f"{payload['every']} steps; 25 Euler steps, JIT-CFG 7.5 + renorm. Flat: first-frame PSNR gained less "
             f"than {payload['flat_db']} dB over the last {payload['window']} steps.", ""]
    for split in payload["splits"]:
        lines += [f"## {split}", "", "| run | step | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
        for label, points in payload["curves"].items():
            for p in points:
                lines.append(f"| {label} | {p['step']} | " + " | ".join(
                    _fmt(p[split][k], 2 if "psnr" in k or "error" in k else 3) for k in KEYS) + " |")
        lines += ["", f"### Flatness at the last step ({split})", "",
                  "| run | last step | PSNR gain over the window (dB) | flat? | slopes per 1,000 steps: "
                  + " / ".join(KEYS) + " |", "|---|---|---|---|---|"]
        for label, s in payload["flatness"].items():
            gain = s[split]["first_frame_psnr"]["gain"]
            flat = "—" if gain is None else ("yes" if gain < payload["flat_db"] else "no")
            slopes = " / ".join(_fmt(s[split][k]["slope_per_1000"], 3) for k in KEYS)
            lines.append(f"| {label} | {s['last_step']} | {_fmt(gain)} | {flat} | {slopes} |")
        lines.append("")
    lines += [f"![curves]({payload['name']}.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
