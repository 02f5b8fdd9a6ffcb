"""Oracle calibration: the true renders and uniform random clips through the built-in suites.

    python benchmarks/oracle_calibration.py

The truth must score ~1 on every key (the oracle reads the world correctly, task by task and split by
split); random clips give the floor. A third column is the truth through the shipped model's autoencoder
(``--autoencoder``, encode + decode): the ceiling of any generator in that latent space. The captioned cases are also scored against their prompts alone
(``anyframe.world.prompt_scoring``), which state no positions or frames and so check less. Writes ``benchmarks/results/oracle_calibration.{json,md}`` (the
full reports, with plots and worst cases, go to a temporary folder unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from anyframe.evaluation.harness import AutoencoderModel, RandomModel, TruthModel
from anyframe.evaluation.report import UNIT_KEYS, evaluate
from anyframe.world.prompt_scoring import PROMPT_KEYS
from anyframe.world.suite import builtin_suite

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="*", default=["standard", "ood"])
    parser.add_argument("--out", default=None, help="keep the full reports here")
    parser.add_argument("--autoencoder", default="checkpoints/anyframe-world-s",
                        help="a pipeline or autoencoder folder (relative paths: from the repository root)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="anyframe-calibration-"))
    summary = {}
    for name in args.suites:
        truth, random, ae = evaluate([TruthModel(), RandomModel(), AutoencoderModel(str(ROOT / args.autoencoder))],
                                     builtin_suite(name), out / name, title=f"calibration: {name}")
        summary[name] = {"cases": len(truth["cases"]), "truth": truth["metrics"], "random": random["metrics"],
                         "autoencoder": ae["metrics"], "autoencoder_by_task": ae["by_task"],
                         "truth_by_split": truth["by_split"], "truth_by_task": truth["by_task"]}
        # the same clips scored against their prompts alone (cases whose prompt is a scene caption)
        captioned = [c for c in builtin_suite(name) if c.task not in ("edit", "unpaired")]
        p_truth, p_random = evaluate([TruthModel(), RandomModel()], captioned, out / f"{name}-prompt",
                                     title=f"calibration: {name}, against the prompt", against="prompt")
        summary[name]["prompt"] = {"cases": len(captioned),
                                   "truth": {k: p_truth["metrics"].get(k) for k in PROMPT_KEYS},
                                   "random": {k: p_random["metrics"].get(k) for k in PROMPT_KEYS}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary["autoencoder"] = args.autoencoder
    (RESULTS / "oracle_calibration.json").write_text(json.dumps(summary, indent=1))
    lines = ["# Oracle calibration", "", "Command: `python benchmarks/oracle_calibration.py`", "",
             "True renders (`truth`) and uniform random clips (`random`) scored by the oracle on the built-in suites;",
             f"`autoencoder`: the true renders encoded and decoded by `{args.autoencoder}`'s autoencoder — what a",
             "generator that denoised to the exact true latents would score (`anyframe eval --model autoencoder:DIR`).",
             "PSNR in dB (capped at 100); everything else on a 0–1 scale.", ""]
    fmt = lambda v: "—" if v is None else f"{v:.3f}"
    for name in args.suites:
        s = summary[name]
        keys = [k for k in s["truth"] if not k.startswith(("dynamic_degree_", "temporal_flicker_raw"))]
        lines += [f"## `{name}` ({s['cases']} cases)", "", "| key | truth | random | autoencoder |", "|---|---|---|---|"]
        lines += [f"| {k} | {fmt(s['truth'].get(k))} | {fmt(s['random'].get(k))} | {fmt(s['autoencoder'].get(k))} |"
                  for k in keys]
        def lowest(metrics: dict) -> str:
            key = min((k for k in UNIT_KEYS if metrics.get(k) is not None), key=lambda k: metrics[k])
            return f"{key} {metrics[key]:.3f}"

        p = s["prompt"]
        lines += ["", f"Scored against the prompt alone ({p['cases']} captioned cases; `anyframe eval --against "
                  "prompt`):", "", "| key | truth | random |", "|---|---|---|"]
        lines += [f"| {k} | {fmt(p['truth'].get(k))} | {fmt(p['random'].get(k))} |" for k in PROMPT_KEYS]
        lines += ["", "Lowest truth score per split: " + ", ".join(
            f"{split}: {lowest(m)}" for split, m in s["truth_by_split"].items()),
            "", "Lowest truth score per task: " + ", ".join(
            f"{task}: {lowest(m)}" for task, m in s["truth_by_task"].items()), ""]
        ceiling = ("presence", "color_binding", "motion_direction", "identity_persistence", "keyframe_psnr")
        lines += ["Through the autoencoder, per task:", "", "| task | " + " | ".join(ceiling) + " |",
                  "|---|" + "---|" * len(ceiling)]
        lines += [f"| {task} | " + " | ".join(fmt(m.get(k)) for k in ceiling) + " |"
                  for task, m in s["autoencoder_by_task"].items()]
        lines += [""]
    (RESULTS / "oracle_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
