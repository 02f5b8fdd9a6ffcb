"""Does image-to-video with a short prompt keep the image's scene? The same TI2V cases with the full caption and
with a short prompt.

    python benchmarks/short_prompt_ti2v.py --model checkpoints/anyframe-world-s --out benchmarks/results/short_prompt_ti2v.md

Per case (``--n`` train-split scenes, seeds 700,000 + i, 1–4 objects as the split samples them):

1. the scene's first frame, rendered, is given at frame 0;
2. two clips from the same seed: one prompted with the scene's caption (background, sizes, speeds, events and
   all), one with a *short prompt* of the README's kind, each object as ``a COLOUR SHAPE moves DIRECTION`` (or
   ``stays still``), joined by ``and``: no background, size, speed, style, events or camera;
3. both scored by the oracle against the scene (:func:`anyframe.world.scoring.score_clip`):
   ``identity_persistence`` (each object keeps its colour on its track), ``presence``, ``motion_direction``,
   ``temporal_flicker`` (a cut to another scene changes the static background: low).

Reported: each key's mean for both prompts with 95 % bootstrap intervals and the paired difference. The target
(issue 24): the short prompt's identity within the interval of the same cases with the full caption.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import track

from anyframe.evaluation.targets import difference_interval, mean_interval
from anyframe.pipelines import GenerationRequest, Keyframe, load_pipeline
from anyframe.world.captions import DIRECTION_PHRASES, _article, caption
from anyframe.world.render import render
from anyframe.world.sampling import scene_for_seed
from anyframe.world.scoring import score_clip

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("identity_persistence", "presence", "motion_direction", "temporal_flicker")


def short_prompt(scene) -> str:
    """``a red circle moves left and a blue square stays still`` (the module doc, step 2)."""
    parts = []
    for o in scene.objects:
        d = o.motion.direction
        verb = "stays still" if d is None else f"moves {DIRECTION_PHRASES[d]}"
        parts.append(f"{_article(o.color)} {o.color} {o.shape} {verb}")
    return " and ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "anyframe-world-s"))
    parser.add_argument("--n", type=int, default=80, help="Cases (scenes).")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "short_prompt_ti2v.md")
    args = parser.parse_args(argv)
    pipe = load_pipeline(args.model, "float32")
    pipe.set_progress_bar_config(disable=True)
    scores: dict[str, dict[str, dict[str, float]]] = {form: {k: {} for k in KEYS} for form in ("caption", "short")}
    examples = []
    start = time.perf_counter()
    for i in track(range(args.n), description="TI2V cases"):
        scene = scene_for_seed(700_000 + i, "train")
        first = render(scene).frames[0]
        for form, prompt in (("caption", caption(scene)), ("short", short_prompt(scene))):
            request = GenerationRequest(prompt=prompt, keyframes=[Keyframe(first, 0)], seed=2000 + i, steps=args.steps)
            out = pipe.generate(request, output_type="np")
            frames = (np.clip(out.frames[0], 0, 1) * 255).round().astype(np.uint8)
            for key, value in score_clip(frames, scene, list(KEYS)).items():
                if key in KEYS and value is not None:
                    scores[form][key][str(i)] = float(value)
        if i < 3:
            examples.append((caption(scene), short_prompt(scene)))
    seconds = time.perf_counter() - start
    table = []
    for key in KEYS:
        cap, short = scores["caption"][key], scores["short"][key]
        if not cap:
            continue
        diff = difference_interval(cap, short)
        if diff is not None:
            diff["mean"] = float(np.mean([short[c] - cap[c] for c in short if c in cap]))
        c_ci, s_ci = mean_interval(cap), mean_interval(short)
        table.append({"key": key, "n": len(short), "caption": float(np.mean(list(cap.values()))), "caption_ci": c_ci,
                      "short": float(np.mean(list(short.values()))), "short_ci": s_ci, "difference": diff})
    rel = args.out.relative_to(ROOT) if args.out.is_absolute() and args.out.is_relative_to(ROOT) else args.out
    model = Path(args.model).resolve()
    model = model.relative_to(ROOT) if model.is_relative_to(ROOT) else model
    command = f"python benchmarks/short_prompt_ti2v.py --model {model} --n {args.n}" + \
        (f" --steps {args.steps}" if args.steps else "") + f" --out {rel}"
    fmt = lambda ci: f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "—"
    identity = next((r for r in table if r["key"] == "identity_persistence"), None)
    verdict = "—"
    if identity and identity["caption_ci"]:
        inside = identity["short"] >= identity["caption_ci"][0]
        verdict = (f"the short prompt's identity {identity['short']:.3f} is {'within (or above)' if inside else 'below'} "
                   f"the full caption's interval {fmt(identity['caption_ci'])}: target {'met' if inside else 'not met'}")
    lines = [
        "# TI2V: a short prompt against the full caption, the same cases", "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}, {args.n} cases, {seconds / 60:.0f} min.", "",
        "| key | cases | full caption | short prompt | short − full (95 % CI) |", "|---|---:|---:|---:|---:|",
        *[f"| {r['key']} | {r['n']} | {r['caption']:.3f} {fmt(r['caption_ci'])} | {r['short']:.3f} {fmt(r['short_ci'])} | "
          + (f"{r['difference']['mean']:+.3f} [{r['difference']['low']:+.3f}, {r['difference']['high']:+.3f}] |"
             if r["difference"] else "— |") for r in table],
        "", f"Verdict: {verdict}.", "",
        "Examples (full caption → short prompt):", "",
        *[f"- \"{c}\" → \"{s}\"" for c, s in examples], "",
        "Method: see the script's docstring.", "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "seconds": round(seconds, 1),
                                                         "table": table, "scores": scores}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
