"""STIV's ablations at world scale, measured by the shapes-world oracle.

    python benchmarks/stiv_ablation.py --parts a --model checkpoints/anyframe-world-s
    python benchmarks/stiv_ablation.py --parts b --image-dropout DIR --no-image-dropout DIR --protocol "..."
    python benchmarks/stiv_ablation.py --parts c --control DIR --clean-timestep DIR --protocol "..."
        [--suite standard] [--n 40] [--steps 25]

(a) guidance, on one model (the paper's Table 5): CFG on text only vs JIT-CFG vs JIT-CFG + renormalisation,
    on T2V and TI2V cases;
(b) image-condition dropout (Table 6): a TI2V recipe trained with and without it — its T2V ability (no
    image given), and dynamic degree in TI2V (the paper: dropout keeps TI2V from copying the frame). In a
    multitask mixture with a T2V task the image-dropped state is already trained by that task, so (b) needs
    TI2V-only models that never saw T2V: the video stage (configs/world-s.yaml, from the T2I stage) with
    only the ``ti2v`` task and ``image_dropout`` 0.08 / 0 — see ``--protocol`` in the results;
(c) frame replacement with a per-frame σ = 0 at the condition frames vs the shared σ (Table 7), on TI2V,
    any-frame and interpolation: the same recipe with ``conditioning.clean_timestep`` false / true.

Each part is measured on its own (``--parts``) and keeps its command and ``--protocol`` (how its models
were trained); the other parts' results are kept. Each part keeps its per-case scores, and its table of each
setting's paired difference from the first setting gives every difference a 95 % bootstrap interval
(``anyframe.evaluation.targets.paired_differences``). ``--verdict PART "text"`` (repeatable) records what a part's
numbers say about the paper's claim, without measuring anything (``--parts ""``) or with the measurement. Writes ``benchmarks/results/stiv_ablation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from anyframe.evaluation.harness import Conditioning, PipelineModel
from anyframe.evaluation.report import run_model
from anyframe.evaluation.targets import case_scores, difference_digits, format_difference, paired_differences
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


def scores(model: PipelineModel, cases) -> tuple[dict, dict]:
    """Task → key → mean over the cases, and task → key → case id → score (for the intervals)."""
    conds = {c.id: Conditioning.of(c) for c in cases}
    report = run_model(model, cases, conds)
    means = {task: {k: v for k, v in m.items() if k in KEYS} for task, m in report["by_task"].items()}
    return means, case_scores(report, KEYS)


def differences(entry: dict, tasks: tuple[str, ...]) -> list[str]:
    """Each later setting's paired difference from the first, per task and key, with 95 % intervals."""
    per_case = entry.get("cases")
    if not per_case:  # measured before per-case scores were kept
        return ["No per-case scores kept (measured before intervals were added): the differences above have no "
                "interval; by the fresh-suite comparison, differences under ~0.1 between 20–40 cases are within case noise.", ""]
    settings = list(per_case)
    keys = [k for k in KEYS if any(k in per_case[s].get(t, {}) for s in settings for t in tasks)]
    lines = [f"Paired differences from **{settings[0]}** (same cases, same sampling seeds), with 95 % bootstrap "
             "intervals over the cases; **bold** where the interval excludes zero.", "",
             "| setting | task | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for setting in settings[1:]:
        for task in tasks:
            d = paired_differences(per_case[settings[0]].get(task, {}), per_case[setting].get(task, {}))
            lines.append(f"| {setting} − {settings[0]} | {task} | " + " | ".join(
                format_difference(d[k]["delta"], d[k]["interval"], digits=difference_digits(k)) if k in d else "—" for k in keys) + " |")
    return lines + [""]


def table(title: str, rows: dict[str, dict], tasks: tuple[str, ...]) -> list[str]:
    lines = [f"### {title}", "", "| setting | task | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for setting, by_task in rows.items():
        for task in tasks:
            m = by_task.get(task, {})
            lines.append(f"| {setting} | {task} | " + " | ".join(
                "—" if m.get(k) is None else f"{m[k]:.3f}" for k in KEYS) + " |")
    return lines + [""]


PARTS = {
    "a": ("(a) Guidance (STIV Table 5)", ("t2v", "ti2v")),
    "b": ("(b) Image-condition dropout (STIV Table 6)", ("t2v", "ti2v")),
    "c": ("(c) Frame replacement timestep (STIV Table 7)", ("ti2v", "keyframes", "interpolation")),
}


def render(out: dict) -> str:
    lines = ["# STIV ablations at world scale", "",
             "Oracle scores (shapes-world oracle) on the first n cases per task of the suite; PSNR in dB; "
             "dynamic_degree_px in px/frame. Each part records the command and the training protocol that "
             "produced it (parts are measured separately: `--parts`). Parts (b) and (c) sample with JIT-CFG and renorm "
             "on every task (`renorm=\"full\"`).", ""]
    for part, (title, tasks) in PARTS.items():
        lines += [f"### {title}", ""]
        if part not in out:
            lines += ["Not run: needs its trained models (see the script's help).", ""]
            continue
        entry = out[part]
        lines += [f"Command: `{entry['command']}`", ""]
        if entry.get("protocol"):
            lines += [entry["protocol"], ""]
        lines += table(title, entry["rows"], tasks)[2:]
        lines += differences(entry, tasks)
        if entry.get("verdict"):
            lines += [f"**Verdict.** {entry['verdict']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c", help="which parts to measure (the others keep their results)")
    parser.add_argument("--model", default="checkpoints/anyframe-world-s", help="(a): the model")
    parser.add_argument("--image-dropout", default=None, help="(b): the model trained with image dropout (default --model)")
    parser.add_argument("--no-image-dropout", default=None, help="(b): the same recipe trained without image dropout")
    parser.add_argument("--control", default=None, help="(c): the model trained with the shared σ (default --model)")
    parser.add_argument("--clean-timestep", default=None, help="(c): the same recipe trained with σ = 0 at condition frames")
    parser.add_argument("--protocol", default="", help="how the measured part's models were trained (into the results)")
    parser.add_argument("--suite", default="standard")
    parser.add_argument("--n", type=int, default=40, help="cases per task")
    parser.add_argument("--verdict", nargs=2, action="append", default=[], metavar=("PART", "TEXT"),
                        help="what the part's numbers say about the paper's claim")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    args = parser.parse_args()
    command = "python benchmarks/stiv_ablation.py " + shlex.join(sys.argv[1:])
    common = dict(steps=args.steps, guidance=args.guidance)
    results = RESULTS / "stiv_ablation.json"
    out: dict = json.loads(results.read_text()) if results.is_file() else {}
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown} (a, b, c)")

    for part in parts:
        _title, tasks = PARTS[part]
        cases = cases_for(args.suite, tasks, args.n)
        if part == "a":
            settings = {"CFG (text only)": dict(guidance_mode="cfg", renorm=None),
                        "JIT-CFG": dict(guidance_mode="jit", renorm=None),
                        "JIT-CFG + renorm": dict(guidance_mode="jit", renorm="full")}
            measured = {name: scores(PipelineModel(args.model, **common, **kw), cases) for name, kw in settings.items()}
        else:
            base, other, flag, labels = (
                (args.image_dropout, args.no_image_dropout, "--no-image-dropout", ("image dropout 0.08", "no image dropout"))
                if part == "b" else
                (args.control, args.clean_timestep, "--clean-timestep", ("shared σ", "σ = 0 at condition frames")))
            if other is None:
                parser.error(f"part ({part}) needs {flag}")
            # renorm on every task, as these parts were measured (the default is now per request: `auto`)
            measured = {labels[0]: scores(PipelineModel(base or args.model, **common, renorm="full"), cases),
                        labels[1]: scores(PipelineModel(other, **common, renorm="full"), cases)}
        out[part] = {"command": command, "protocol": args.protocol, "n": args.n, "suite": args.suite,
                     "rows": {name: m[0] for name, m in measured.items()},
                     "cases": {name: m[1] for name, m in measured.items()}}
    for part, text in args.verdict:
        if part not in out:
            parser.error(f"--verdict {part}: part ({part}) has no results yet")
        out[part]["verdict"] = text

    RESULTS.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(out, indent=1))
    (RESULTS / "stiv_ablation.md").write_text(render(out))
    print(render(out))


if __name__ == "__main__":
    main()
