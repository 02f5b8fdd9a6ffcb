"""STIV's ablations at world scale, measured by the shapes-world oracle.

    python benchmarks/stiv_ablation.py --model checkpoints/anyframe-world-s \\
        [--no-image-dropout runs/world-s-no-image-dropout/pipeline] [--clean-timestep runs/world-s-clean-t/pipeline] \\
        [--suite standard] [--n 40] [--steps 25]

(a) guidance, on one model (the paper's Table 5): CFG on text only vs JIT-CFG vs JIT-CFG + renormalisation,
    on T2V and TI2V cases;
(b) image-condition dropout (Table 6): the same recipe trained with and without it (``--no-image-dropout``,
    configs/world-s.yaml with ``--set conditioning.image_dropout=0``) — its T2V ability, and dynamic degree
    in TI2V (the paper: dropout keeps TI2V from copying the frame);
(c) frame replacement with a per-frame σ = 0 at the condition frames vs the shared σ (Table 7;
    ``--clean-timestep``: ``--set conditioning.clean_timestep=true``), on TI2V, any-frame and interpolation.

(b) and (c) need the second model; without it their rows say so. Their baseline is ``--model``, or
``--control DIR`` when the variants were trained as fine-tunes from a shared checkpoint: then the control
is the same checkpoint trained on for the same steps with the unchanged recipe, so that only the one
recipe change differs (see benchmarks/results/stiv_ablation.md for the protocol used). Writes
``benchmarks/results/stiv_ablation.{json,md}`` with the command line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from anyframe.evaluation.harness import Conditioning, PipelineModel
from anyframe.evaluation.report import run_model
from anyframe.world.suite import builtin_suite, load_suite

RESULTS = Path(__file__).parent / "results"
KEYS = ("presence", "color_binding", "motion_direction", "identity_persistence", "keyframe_psnr", "dynamic_degree",
        "dynamic_degree_px", "motion_smoothness", "temporal_flicker")


def cases_for(suite: str, tasks: tuple[str, ...], n: int):
    cases = builtin_suite(suite) if suite in ("smoke", "standard", "ood") else load_suite(suite)
    out = []
    for task in tasks:
        out += [c for c in cases if c.task == task][:n]
    return out


def scores(model: PipelineModel, cases) -> dict:
    conds = {c.id: Conditioning.of(c) for c in cases}
    report = run_model(model, cases, conds)
    return {task: {k: v for k, v in m.items() if k in KEYS} for task, m in report["by_task"].items()}


def table(title: str, rows: dict[str, dict], tasks: tuple[str, ...]) -> list[str]:
    lines = [f"### {title}", "", "| setting | task | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for setting, by_task in rows.items():
        for task in tasks:
            m = by_task.get(task, {})
            lines.append(f"| {setting} | {task} | " + " | ".join(
                "—" if m.get(k) is None else f"{m[k]:.3f}" for k in KEYS) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/anyframe-world-s")
    parser.add_argument("--no-image-dropout", default=None, help="the same recipe trained without image dropout")
    parser.add_argument("--clean-timestep", default=None, help="the same recipe trained with σ = 0 at condition frames")
    parser.add_argument("--control", default=None, help="the baseline of (b) and (c) (default: --model)")
    parser.add_argument("--note", default="", help="how the models were trained (written into the results)")
    parser.add_argument("--suite", default="standard")
    parser.add_argument("--n", type=int, default=40, help="cases per task")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    args = parser.parse_args()
    command = "python benchmarks/stiv_ablation.py " + shlex.join(sys.argv[1:])
    common = dict(steps=args.steps, guidance=args.guidance)
    out: dict = {"command": command, "model": args.model, "control": args.control or args.model}
    lines = ["# STIV ablations at world scale", "", f"Command: `{command}`", "",
             f"Oracle scores on the first {args.n} cases per task of `{args.suite}`; {args.steps} Euler steps, "
             f"guidance scale {args.guidance}. PSNR in dB; dynamic_degree_px in px/frame.", ""]
    if args.note:
        lines += [args.note, ""]

    # (a) guidance
    tasks_a = ("t2v", "ti2v")
    cases = cases_for(args.suite, tasks_a, args.n)
    settings = {"CFG (text only)": dict(guidance_mode="cfg", renorm=None),
                "JIT-CFG": dict(guidance_mode="jit", renorm=None),
                "JIT-CFG + renorm": dict(guidance_mode="jit", renorm="full")}
    out["a"] = {name: scores(PipelineModel(args.model, **common, **kw), cases) for name, kw in settings.items()}
    lines += table("(a) Guidance (STIV Table 5)", out["a"], tasks_a)

    # (b) image-condition dropout; (c) frame replacement timestep: the base model against a second one
    for part, title, tasks, other, flag, labels in (
        ("b", "(b) Image-condition dropout (STIV Table 6)", ("t2v", "ti2v"), args.no_image_dropout,
         "--no-image-dropout", ("image dropout 0.08", "no image dropout")),
        ("c", "(c) Frame replacement timestep (STIV Table 7)", ("ti2v", "keyframes", "interpolation"),
         args.clean_timestep, "--clean-timestep", ("shared σ", "σ = 0 at condition frames")),
    ):
        if other is None:
            lines += [f"### {title}", "", f"Not run: needs the second trained model (`{flag}`).", ""]
            continue
        cases = cases_for(args.suite, tasks, args.n)
        out[part] = {labels[0]: scores(PipelineModel(args.control or args.model, **common), cases),
                     labels[1]: scores(PipelineModel(other, **common), cases)}
        lines += table(title, out[part], tasks)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stiv_ablation.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "stiv_ablation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
