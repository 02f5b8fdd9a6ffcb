"""The default model's quality over training: issue 5's targets against the video stage's step.

    anyframe model export --checkpoint runs/world-s/checkpoints/step-00010000 --out /tmp/world-s-10000
    anyframe eval --model /tmp/world-s-10000 --suite standard --renorm full --out reports/world-s-10000
    python benchmarks/default_model_curve.py --report 10000=reports/world-s-10000/report.json

Each ``--report STEP=PATH`` (an ``anyframe eval --suite standard`` report of the model exported at that step
of ``configs/world-s.yaml``) adds or replaces one point of ``benchmarks/results/default_model/curve.json``;
the Markdown table and the plot (``curve.{md,png}``) are redrawn from all points. A point keeps the
per-task means and each target's 95 % bootstrap interval over the cases (points added before the intervals
were kept have none); the full per-case report of the shipped model is ``standard_report.json`` beside it.

``--noise A B LABEL``: two reports of the same weights that differ only in something that should not
matter (e.g. the float32 export and the float16-stored shipped folder); their largest per-task difference
is recorded as the table's noise floor.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from anyframe.evaluation.targets import TARGETS, mean_interval, task_scores

RESULTS = Path(__file__).parent / "results" / "default_model"


def _point(path: Path) -> dict:
    report = json.loads(path.read_text())
    if len(report.get("cases", [])) < 320:
        raise SystemExit(f"error: {path} is not a full standard-suite report ({len(report.get('cases', []))} cases)")
    intervals = {}
    for task, _, key, _ in TARGETS:
        interval = mean_interval(task_scores(report, task, key))
        if interval is not None:
            intervals[f"{task}/{key}"] = list(interval)
    return {"by_task": report["by_task"], "metrics": report["metrics"], "intervals": intervals}


def _max_task_difference(a: dict, b: dict) -> float:
    """The largest |a − b| over tasks and unit-scale keys (PSNR left out) of two points."""
    return max(abs(va - b["by_task"][task][k]) for task, keys in a["by_task"].items() for k, va in keys.items()
               if k != "keyframe_psnr" and va is not None and b["by_task"].get(task, {}).get(k) is not None)


def _trend(steps: list[int], values: list[float | None], target: float) -> tuple[float | None, int | None]:
    """Least-squares gain per doubling of steps (``value ≈ a + b·log2(step)``) and the step at which that
    line reaches ``target`` (``None`` when the key already meets it, or does not rise). An extrapolation
    from a few points, not a prediction: real curves bend; it says the order of magnitude a gap needs."""
    import numpy as np

    pts = [(math.log2(s), v) for s, v in zip(steps, values) if v is not None]
    if len(pts) < 3:
        return None, None
    x, y = np.array(pts).T
    slope, intercept = np.polyfit(x, y, 1)
    if y[-1] >= target or slope <= 0:
        return float(slope), None
    return float(slope), int(round(2 ** ((target - intercept) / slope), -3))


def _plot(curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(curve, key=int)
    rates = [t for t in TARGETS if "PSNR" not in t[1]]
    psnrs = [t for t in TARGETS if "PSNR" in t[1]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [3, 1]})
    for ax, targets in ((axes[0], rates), (axes[1], psnrs)):
        for i, (task, label, key, target) in enumerate(targets):
            values = [curve[s]["by_task"].get(task, {}).get(key) for s in steps]
            dodge = (i - (len(targets) - 1) / 2) * 0.004 * int(steps[-1])  # so that the error bars do not overlap
            xs = [int(s) + dodge for s in steps]
            line, = ax.plot(xs, values, marker="o", label=f"{task}: {label}")
            kept = [(x, v, curve[s].get("intervals", {}).get(f"{task}/{key}")) for x, s, v in zip(xs, steps, values)]
            kept = [(x, v, lo, hi) for x, v, span in kept if span is not None and v is not None for lo, hi in [span]]
            if kept:  # the points' 95 % intervals over the cases, where kept
                bx, bv, blo, bhi = zip(*kept)
                ax.errorbar(bx, bv, yerr=[[v - lo for v, lo in zip(bv, blo)], [hi - v for v, hi in zip(bv, bhi)]],
                            fmt="none", ecolor=line.get_color(), capsize=3, linewidth=0.8)
            ax.axhline(target, color=line.get_color(), linestyle=":", linewidth=0.8)
        ax.set_xlabel("video-stage step (batch 8)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2 if len(targets) > 3 else 1)
    axes[0].set_ylabel("oracle score (dotted: target)")
    axes[0].set_ylim(0, 1)
    axes[1].set_ylabel("PSNR (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="append", default=[], metavar="STEP=PATH",
                        help="a standard-suite report.json of the model at that step (repeatable)")
    parser.add_argument("--noise", nargs=3, metavar=("A", "B", "LABEL"), default=None,
                        help="two reports of the same weights: their largest per-task difference is the noise floor")
    args = parser.parse_args()
    curve_path = RESULTS / "curve.json"
    saved = json.loads(curve_path.read_text()) if curve_path.is_file() else {}
    curve, noise = saved.get("points", {}), saved.get("noise")
    if args.noise:
        a, b, label = args.noise
        if not (Path(a).is_file() and Path(b).is_file()):
            raise SystemExit(f"error: --noise {a} {b}: both must be report.json files")
        noise = {"label": label, "max_abs_diff": _max_task_difference(_point(Path(a)), _point(Path(b)))}
    for item in args.report:
        step, _, path = item.partition("=")
        if not step.isdigit() or not Path(path).is_file():
            raise SystemExit(f"error: --report {item!r}: expected STEP=PATH to a report.json")
        curve[str(int(step))] = _point(Path(path))
    if not curve:
        raise SystemExit("error: no points (give --report STEP=PATH)")
    curve = dict(sorted(curve.items(), key=lambda kv: int(kv[0])))
    steps = list(curve)
    trend = {}
    for task, _, key, target in TARGETS:
        values = [curve[s]["by_task"].get(task, {}).get(key) for s in steps]
        slope, reach = _trend([int(s) for s in steps], values, target)
        span = math.log2(int(steps[-1]) / int(steps[0]))
        if values[-1] is not None and values[-1] >= target:
            verdict = "met"
        elif slope is None or reach is None:
            verdict = "unknown"
        elif noise and slope * span <= noise["max_abs_diff"]:
            verdict = "flat"
        elif reach > 1000 * int(steps[-1]):
            verdict = "far"
        else:
            verdict = "reachable"
        trend[f"{task}/{key}"] = {"per_doubling": slope, "verdict": verdict,
                                  "reach_step": reach if verdict == "reachable" else None}
    RESULTS.mkdir(parents=True, exist_ok=True)
    curve_path.write_text(json.dumps({"points": curve, "noise": noise, "trend": trend}, indent=1))
    _plot(curve, RESULTS / "curve.png")
    fmt = lambda v: "—" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.3f}"
    lines = ["# The default model over training", "",
             "Issue 5's targets on the full `standard` suite (320 cases, 25 steps, JIT-CFG 7.5 + renorm full on every",
             "task — the default until the step-22,000 ship, whose default is `auto` —, seed 0 + the case seed) for the",
             "multitask run `configs/world-s.yaml` exported at each step (EMA weights):",
             "`anyframe model export --checkpoint runs/world-s/checkpoints/step-N --out DIR`, then",
             "`anyframe eval --model DIR --suite standard --renorm full --out REPORT` and",
             "`python benchmarks/default_model_curve.py --report N=REPORT/report.json`. The points at steps the model",
             "was shipped are the shipped folder (transformer stored in float16).", ""]
    if noise:
        lines += [f"Noise floor: {noise['label']} moves a task's unit-scale key by up to {noise['max_abs_diff']:.3f} "
                  "(40 cases a task; `--noise A B LABEL`), so smaller differences are noise. Every point is the same 40",
                  "cases a task, so points are paired; one point's own 95 % bootstrap interval over its cases is ±0.05–0.13",
                  "on the rates (the last point's is in the table; the plot's error bars are each point's where it was kept;",
                  "`docs/experiments.md#archived-fresh_cases_22000`: the same model on cases nobody chose).", ""]
    lines += ["| task | measure | target | " + " | ".join(f"step {int(s):,}" for s in steps)
              + f" | step {int(steps[-1]):,}: 95 % interval | gain per doubling | target reached at (log-linear) |",
              "|---|---|---|" + "---|" * (len(steps) + 3)]
    where = {"met": "met", "unknown": "—", "flat": "flat: no rise beyond the noise floor", "far": "> 1000× now"}
    for task, label, key, target in TARGETS:
        values = [curve[s]["by_task"].get(task, {}).get(key) for s in steps]
        t = trend[f"{task}/{key}"]
        at = where.get(t["verdict"]) or f"~{t['reach_step']:,} steps ({t['reach_step'] / int(steps[-1]):.0f}× now)"
        slope = "—" if t["per_doubling"] is None else f"{t['per_doubling']:+.3f}"
        last = curve[steps[-1]].get("intervals", {}).get(f"{task}/{key}")
        span = "—" if last is None else f"{fmt(last[0])}–{fmt(last[1])}"
        lines.append(f"| {task} | {label} | ≥ {target:g} | " + " | ".join(fmt(v) for v in values)
                     + f" | {span} | {slope} | {at} |")
    lines += ["", "*Gain per doubling*: the least-squares slope of the key against log2(step) over these points;",
              "*target reached at*: where that line crosses the target. Extrapolated from a few points — real",
              "curves bend, and a key can jump once a skill forms — so read it as the order of magnitude of",
              "training a gap needs at this model size and batch, not as a promise. *Flat*: the line rises less",
              "than the noise floor over the whole span.", "",
              "![quality over training](curve.png)", ""]
    (RESULTS / "curve.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
