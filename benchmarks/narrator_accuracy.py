"""Does the world narrator put the condition image at the right frame of the world's unpaired cases?

For ``--n`` scenes of each split, the unpaired case (``anyframe.world.unpaired.make_unpaired``: one object's action
text, the image of the same scene at the start, middle or end frame) at each of the three positions goes to
``WorldNarrator`` (``anyframe.narrators.world``); its position is compared with the image's true frame — exactly,
and within ±1 frame. Also scored: the built-in ``standard`` suite's own ``unpaired`` cases (positions drawn at
random), a uniform prior over frames instead of the default start / middle / end prior (the same likelihoods,
re-weighted), a breakdown by what the text's object does, and the narrator's calibration (its mean posterior of
the chosen frame: the accuracy it expects). Writes ``benchmarks/results/narrator_accuracy.{md,json}``.

    python benchmarks/narrator_accuracy.py --n 40
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from anyframe.narrators.world import WorldNarrator
from anyframe.world.render import render
from anyframe.world.sampling import scene_for_seed
from anyframe.world.scene import Scene
from anyframe.world.suite import builtin_suite
from anyframe.world.unpaired import POSITIONS, make_unpaired, position_frame

RESULTS = Path(__file__).parent / "results"
CONFIDENT = 0.9  # a posterior of the chosen frame at least this: the narrator is sure


def kind(scene: Scene, object_id: int | None) -> str:
    """What the text's object does: collision | appears / disappears | still | bounces | moves straight."""
    if object_id is None:
        return "other"
    o = scene.object(object_id)
    if any(e.type == "collision" and object_id in (e.object, e.other) for e in scene.events):
        return "collision"
    if any(e.type in ("appear", "disappear") and e.object == object_id for e in scene.events):
        return "appears / disappears"
    if o.motion.direction is None:
        return "still"
    return "bounces" if o.motion.bounce else "moves straight"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n))


def narrate(narrator: WorldNarrator, scene: Scene, frames: np.ndarray, text: str, truth: int) -> dict:
    start = time.perf_counter()
    solution = narrator.solve(frames[truth], text, scene.frames)
    seconds = time.perf_counter() - start
    post = solution.posterior
    likelihood = post / narrator_prior(narrator, scene.frames)
    uniform = int(np.argmax(likelihood))
    got = solution.narrative.position
    return {
        "text": text, "truth": truth, "position": got, "exact": got == truth, "within_1": abs(got - truth) <= 1,
        "posterior": round(float(post[got]), 4), "confident": bool(post[got] >= CONFIDENT),
        "uniform_position": uniform, "uniform_exact": uniform == truth, "uniform_within_1": abs(uniform - truth) <= 1,
        "note": solution.narrative.note, "pan": scene.pan, "seconds": round(seconds, 3),
    }  # fmt: skip


def narrator_prior(narrator: WorldNarrator, frames: int) -> np.ndarray:
    anchors = {position_frame(p, frames) for p in POSITIONS}
    rest = frames - len(anchors)
    if not rest:
        return np.full(frames, 1 / frames)
    w = narrator.anchor_weight
    return np.array([w / len(anchors) if t in anchors else (1 - w) / rest for t in range(frames)])


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    k = sum(r["exact"] for r in rows)
    confident = [r for r in rows if r["confident"]]
    return {
        "n": n, "exact": k / n if n else math.nan, "exact_ci95": wilson(k, n),
        "within_1": sum(r["within_1"] for r in rows) / n if n else math.nan,
        "uniform_exact": sum(r["uniform_exact"] for r in rows) / n if n else math.nan,
        "uniform_within_1": sum(r["uniform_within_1"] for r in rows) / n if n else math.nan,
        "expected": float(np.mean([r["posterior"] for r in rows])) if n else math.nan,
        "confident_share": len(confident) / n if n else math.nan,
        "confident_exact": sum(r["exact"] for r in confident) / len(confident) if confident else math.nan,
        "unsure_exact": (sum(r["exact"] for r in rows if not r["confident"]) / (n - len(confident))
                         if n > len(confident) else math.nan),
    }  # fmt: skip


def pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="scenes per split (each narrated at start, middle, end)")
    parser.add_argument("--splits", nargs="+", default=["train", "ood_color_shape"])
    parser.add_argument("--seed", type=int, default=8_000_000, help="first scene seed")
    parser.add_argument("--anchor-weight", type=float, default=0.9, help="the narrator's prior on start/middle/end")
    parser.add_argument("--no-suite", action="store_true", help="skip the standard suite's unpaired cases")
    args = parser.parse_args()
    narrator = WorldNarrator(anchor_weight=args.anchor_weight)
    rows: list[dict] = []
    began = time.perf_counter()
    for split in args.splits:
        for i in range(args.n):
            seed = args.seed + i
            scene = scene_for_seed(seed, split)
            frames = render(scene).frames
            for position in POSITIONS:
                case = make_unpaired(scene, np.random.default_rng(seed), position)  # one subject per scene
                row = narrate(narrator, scene, frames, case.text, case.image_frame)
                rows.append({"set": split, "seed": seed, "where": position, "kind": kind(scene, case.object_id), **row})
            done = len(rows)
            if done % 30 == 0:
                print(f"{done} cases, {time.perf_counter() - began:.0f} s", flush=True)
    if not args.no_suite:
        for case in builtin_suite("standard"):
            if case.task != "unpaired":
                continue
            scene = case.scene_program()
            u = case.unpaired
            row = narrate(narrator, scene, render(scene).frames, u["text"], int(u["image_frame"]))
            rows.append({"set": "standard suite", "seed": case.seed, "where": u["position"],
                         "kind": kind(scene, u.get("object_id")), **row})
    seconds = time.perf_counter() - began

    by_set: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_set[r["set"]][r["where"]].append(r)
        by_set[r["set"]]["all"].append(r)
        by_kind[r["kind"]].append(r)
    ours = [r for r in rows if r["set"] in args.splits]
    table = {s: {w: summarise(v) for w, v in d.items()} for s, d in by_set.items()}
    kinds = {k: summarise(v) for k, v in sorted(by_kind.items())}
    overall = summarise(ours)

    command = "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "narrator_accuracy.json").write_text(json.dumps(
        {"command": command, "n": args.n, "splits": args.splits, "seed": args.seed, "anchor_weight": args.anchor_weight,
         "seconds": round(seconds, 1), "overall": overall, "table": table, "kinds": kinds, "rows": rows},
        indent=1) + "\n")  # fmt: skip

    lo, hi = overall["exact_ci95"]
    lines = [
        "# World narrator: position accuracy on unpaired cases",
        "",
        f"Command: `{command}` ({seconds:.0f} s on one thread, {1e3 * seconds / len(rows):.0f} ms per case).",
        "",
        f"Cases: {args.n} scenes per split (seeds {args.seed}…{args.seed + args.n - 1}), each narrated with the image at "
        "the start (frame 0), middle (8) and end (15) of its 16-frame clip, the text one object's action "
        "(`make_unpaired`); plus the built-in `standard` suite's unpaired cases. *Exact*: the narrator's position is "
        "the image's frame; *±1*: within one frame. *Uniform prior*: the same likelihoods with every frame equally "
        f"likely a priori (the default prior puts {args.anchor_weight:.0%} on start / middle / end). *Expected*: the "
        "mean posterior of the chosen frame — the accuracy the narrator itself expects. *Sure*: the cases where "
        f"that posterior is ≥ {CONFIDENT}.",
        "",
        f"**Overall ({len(ours)} cases of {', '.join(args.splits)}): {pct(overall['exact'])} exact "
        f"(95 % CI {pct(lo)}–{pct(hi)}), {pct(overall['within_1'])} within ±1; sure in "
        f"{pct(overall['confident_share'])} of cases, and then right in {pct(overall['confident_exact'])}.**",
        "",
        "| cases | where | n | exact | ±1 | uniform prior: exact | ±1 | expected | sure | exact when sure | exact when unsure |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s, d in table.items():
        for w in [*POSITIONS, "all"]:
            if w not in d:
                continue
            m = d[w]
            lines.append(f"| {s} | {w} | {m['n']} | {pct(m['exact'])} | {pct(m['within_1'])} | {pct(m['uniform_exact'])} "
                         f"| {pct(m['uniform_within_1'])} | {pct(m['expected'])} | {pct(m['confident_share'])} "
                         f"| {pct(m['confident_exact'])} | {pct(m['unsure_exact'])} |")
    lines += [
        "",
        "By what the text's object does (all cases):",
        "",
        "| object | n | exact | expected | sure | exact when sure | exact when unsure |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k, m in kinds.items():
        lines.append(f"| {k} | {m['n']} | {pct(m['exact'])} | {pct(m['expected'])} | {pct(m['confident_share'])} "
                     f"| {pct(m['confident_exact'])} | {pct(m['unsure_exact'])} |")
    wrong_sure = [r for r in rows if r["confident"] and not r["exact"]]
    lines += ["", f"Sure but wrong: {len(wrong_sure)} case(s)."]
    for r in wrong_sure[:10]:
        lines.append(f"- {r['set']} seed {r['seed']} ({r['where']}): “{r['text']}” → {r['position']} "
                     f"(true {r['truth']}, posterior {r['posterior']}){'; note: ' + r['note'] if r['note'] else ''}")
    lines += [
        "",
        "Why not 95 %: the image and the action text alone often do not determine the frame. A non-bouncing object "
        "starts uniformly where its whole path stays inside the canvas, so its position at frame t is uniform over "
        "that start box shifted by t·v: a slow or diagonal object in the middle of the canvas fits two or three "
        "of the positions equally (its path is short against the canvas), a bouncing object fits every frame (it "
        "starts anywhere inside and never leaves), and a still object fits every frame unless the camera pans. The "
        "other objects' positions, the camera's offset over a patterned background, colours after a collision, the "
        "collision geometry and appearances break some of these ties; the rest are true ties — two valid world "
        "scenes render the same image at different frames — where no narrator can do better than the prior. "
        "The narrator's own expectation (*expected*) is close to, and a little below, what it achieves; its sure "
        "answers are right; and its note says *unsure* where it is not.",
    ]
    (RESULTS / "narrator_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
