"""Why does a model miss motion direction? The verdicts behind the oracle's ``motion_direction``.

    python benchmarks/motion_diagnosis.py --model checkpoints/anyframe-world-s --tasks ti2v t2v --objects 1 --n 40

``motion_direction`` passes a 4-frame constant-velocity window of an object when the detected displacement
is within 22.5° of the true one and at least 0.4 of its length (a still object must stay within a margin).
This script scores ``--n`` cases per task (scene seeds from ``--seed``, the train split, outside the built-in
suites; ``--objects K`` keeps scenes with exactly K objects, 0 = any) with the model and with its own
autoencoder (the ceiling: the true clip encoded and decoded), and splits the windows by verdict
(:func:`anyframe.world.scoring.motion_windows`): pass, off in angle, too short, moved when it should stay,
object not found. For moving windows it reports the angle error and the length ratio, so "the model does
not move things the way the text says" is told apart from "it moves them roughly right, not precisely".

``--reverse N``: does the model follow the prompt's direction at all? On N one-object TI2V cases that move
straight (no bounce, pan or event) it generates twice, from the true prompt and from the prompt with its
direction words reversed (left↔right, up↔down), and counts whether the object's displacement over the clip
follows the prompt (cosine > 0.7 with the direction the prompt says), the image's original direction, or
neither. World objects never leave the canvas, so the first frame's position alone hints at the direction.

Several ``--model LABEL=PATH`` compare models on the same cases (the ceiling is the first one's autoencoder).
Writes ``benchmarks/results/<--name>.{json,md,png}`` (default ``motion_diagnosis``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from anyframe.evaluation.harness import Conditioning, load_model
from anyframe.world.scoring import (
    ANGLE_TOLERANCE,
    match_objects,
    motion_windows,
    object_chains,
    read_clip,
    truth_of,
)
from anyframe.world.suite import cases_where

RESULTS = Path(__file__).parent / "results"
OUTCOMES = ("pass", "angle", "short", "angle+short", "moved", "unmatched")


def diagnose(model, cases: list) -> dict:
    counts: Counter = Counter()
    angles, ratios = [], []
    for case in cases:
        cond = Conditioning.of(case)
        frames = model.generate(case, cond).frames
        truth = truth_of(cond.scene)
        reading = read_clip(frames)
        for win in motion_windows(truth, reading, match_objects(truth, reading)):
            if not win.counted:
                continue
            counts[win.outcome] += 1
            if win.angle is not None:
                angles.append(win.angle)
                ratios.append(win.length_ratio)
    total = sum(counts.values())
    a, r = np.array(angles), np.array(ratios)
    return {
        "windows": total,
        "share": {k: counts[k] / total for k in OUTCOMES} if total else {},
        "moving_windows": len(a),
        "angle_median": float(np.median(a)) if len(a) else None,
        "angle_p75": float(np.percentile(a, 75)) if len(a) else None,
        "within_tolerance": float((a <= ANGLE_TOLERANCE).mean()) if len(a) else None,
        "within_45": float((a <= 45).mean()) if len(a) else None,
        "length_ratio_median": float(np.median(r)) if len(r) else None,
        "angles": [round(float(x), 2) for x in a],
    }


REVERSED = {"left": "right", "right": "left", "up": "down", "down": "up"}


def reverse_directions(prompt: str) -> str:
    return re.sub(r"\b(left|right|up|down)\b", lambda m: REVERSED[m.group(1)], prompt)


def straight_mover(scene) -> bool:
    """One object moving in a straight line (no bounce, pan or event)."""
    return (len(scene.objects) == 1 and scene.objects[0].motion.direction is not None
            and not scene.objects[0].motion.bounce and scene.pan == "none" and not scene.events)


def follows(model, cases: list) -> dict:
    """Per prompt (true, reversed): the share of cases whose clip displacement follows the prompt, the
    image's true direction, or neither (or the object is not found)."""
    out = {}
    for kind in ("true prompt", "reversed prompt"):
        counts: Counter = Counter()
        for case in cases:
            cond = Conditioning.of(case)
            truth = truth_of(cond.scene)
            p = truth.position(0)
            true = p[-1] - p[0]
            if kind == "reversed prompt":
                case = dataclasses.replace(case, conditions={**case.conditions,
                                                             "prompt": reverse_directions(case.conditions["prompt"])})
            reading = read_clip(model.generate(case, cond).frames)
            chain = object_chains(truth, reading, match_objects(truth, reading)).get(0)
            if chain is None or len(chain.frames) < 2:
                counts["not found"] += 1
                continue
            d = chain.centroids[-1] - chain.centroids[0]
            cos = float(d @ true) / (np.linalg.norm(d) * np.linalg.norm(true) + 1e-9)
            said = 1.0 if kind == "true prompt" else -1.0  # the prompt's direction relative to the true one
            counts["follows the prompt" if cos * said > 0.7 else "follows the image" if cos > 0.7 else "neither"] += 1
        out[kind] = {k: counts[k] / len(cases) for k in ("follows the prompt", "follows the image", "neither", "not found")}
    return out


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows}, key=[r["task"] for r in rows].index)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for row in (r for r in rows if r["task"] == task):
            if row["angles"]:
                a = np.sort(row["angles"])
                ax.step(a, np.arange(1, len(a) + 1) / len(a), where="post", label=row["model"])
        ax.plot([0, 180], [0, 1], color="0.6", linestyle="--", linewidth=0.8, label="random direction")
        ax.axvline(ANGLE_TOLERANCE, color="k", linestyle=":", linewidth=1)
        ax.set(xlim=(0, 180), ylim=(0, 1.01), title=f"{task}: moving windows",
               xlabel="angle error of the 4-frame displacement (°; dotted: tolerance)", ylabel="share within")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, metavar="[LABEL=]PATH",
                        help="a pipeline folder (repeatable; default checkpoints/anyframe-world-s)")
    parser.add_argument("--tasks", nargs="+", default=["ti2v", "t2v"])
    parser.add_argument("--objects", type=int, default=1, help="scenes with exactly this many objects (0: any)")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7_000_000)
    parser.add_argument("--reverse", type=int, default=0, metavar="N", help="the reversed-prompt test on N cases")
    parser.add_argument("--name", default="motion_diagnosis", help="result file name under benchmarks/results")
    args = parser.parse_args()
    if args.n < 1 or args.objects < 0 or args.reverse < 0:
        raise SystemExit("error: --n must be ≥ 1, --objects and --reverse ≥ 0")
    specs = [m.partition("=")[::2] if "=" in m else (m, m) for m in (args.model or ["checkpoints/anyframe-world-s"])]

    models = [(label, load_model(path)) for label, path in specs]
    models.append(("autoencoder ceiling", load_model(f"autoencoder:{specs[0][1]}")))
    rows = []
    for task in args.tasks:
        cases = cases_where(task, args.n, lambda s: not args.objects or len(s.objects) == args.objects, args.seed,
                            prefix="motion")
        for name, model in models:
            row = {"task": task, "model": name, **diagnose(model, cases)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "angles"}), flush=True)

    reverse = {}
    if args.reverse:
        cases = cases_where("ti2v", args.reverse, straight_mover, args.seed, prefix="reverse")
        for label, model in models[:-1]:
            reverse[label] = follows(model, cases)
            print(json.dumps({label: reverse[label]}), flush=True)

    command = ("python benchmarks/motion_diagnosis.py " + " ".join(f"--model {m}" for m in (args.model or []))
               + f" --tasks {' '.join(args.tasks)} --objects {args.objects} --n {args.n} --seed {args.seed}"
               + (f" --reverse {args.reverse}" if args.reverse else "")
               + (f" --name {args.name}" if args.name != "motion_diagnosis" else "")).replace("  ", " ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": command, "n": args.n, "objects": args.objects,
                                                            "rows": rows, "reverse": reverse}, indent=1))
    _plot(rows, RESULTS / f"{args.name}.png")
    pct = lambda v: "—" if v is None else f"{100 * v:.0f} %"
    deg = lambda v: "—" if v is None else f"{v:.1f}°"
    scenes = f"{args.objects}-object scenes" if args.objects else "scenes of any object count"
    lines = ["# Motion direction, window by window", "", f"Command: `{command}`", "",
             f"{args.n} cases per task ({scenes}, scene seeds from {args.seed}, train split; each model's default",
             "sampling — for anyframe's, 25 steps of JIT-CFG 7.5, renormalised without keyframes (T2V), not with",
             "them (TI2V)). Every constant-velocity 4-frame window of every object, by the oracle's verdict",
             f"(`anyframe.world.scoring.motion_windows`: pass = within {ANGLE_TOLERANCE}° and ≥ 0.4 of the true length).",
             "", "| task | model | windows | pass | off in angle | too short | both | moved (still object) | not found |"
             " moving: median angle error | within 22.5° | within 45° | length ratio (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["share"]
        lines.append(f"| {r['task']} | {r['model']} | {r['windows']} | " + " | ".join(pct(s.get(k)) for k in OUTCOMES)
                     + f" | {deg(r['angle_median'])} | {pct(r['within_tolerance'])} | {pct(r['within_45'])} | "
                     + ("—" if r["length_ratio_median"] is None else f"{r['length_ratio_median']:.2f}") + " |")
    if reverse:
        lines += ["", f"### Does it follow the prompt's direction? ({args.reverse} one-object TI2V cases moving straight)", "",
                  "Displacement of the object over the clip, from the true prompt and from the prompt with its direction",
                  "words reversed (cosine > 0.7 with the direction named):", "",
                  "| model | prompt | follows the prompt | follows the image's true direction | neither | not found |",
                  "|---|---|---|---|---|---|"]
        for label, kinds in reverse.items():
            for kind, share in kinds.items():
                if kind == "true prompt":  # the prompt is the truth: "follows the image" cannot happen
                    share = {**share, "follows the image": None}
                lines.append(f"| {label} | {kind} | " + " | ".join(pct(v) for v in share.values()) + " |")
    lines += ["", f"![angle error of moving windows]({args.name}.png)", ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
