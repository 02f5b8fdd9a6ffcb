"""Does a change in how the default model is made or sampled move its targets? Issue 5's target keys of
suite reports side by side, with bootstrap intervals.

    anyframe eval --model checkpoints/anyframe-world-s --suite standard --guidance 12 --out /tmp/g12
    python benchmarks/compare_reports.py --name guidance_full_suite --title "Guidance 12 on the whole suite" \\
        --report "guidance 7.5 (default)=reports/world-s-standard/report.json" --report "guidance 12=/tmp/g12/report.json" \\
        --command "guidance 7.5 (default)=anyframe eval ... --out reports/world-s-standard" --command "guidance 12=anyframe eval ..."

The first ``--report LABEL=PATH`` is the baseline; each later one is compared with it key by key. Every value
has its 95 % bootstrap interval over the task's cases, every difference too (paired case by case when the reports
share their cases, as two reports of one suite do; else two independent draws — e.g. the standard suite against
a fresh one from ``anyframe world sample``). A difference counts when its interval excludes zero and it is beyond
the noise floor of ``benchmarks/results/default_model/curve.json`` (two reports of the same weights; 1 dB for
PSNR) — ``anyframe.evaluation.targets.compare_targets``. ``--command LABEL=CMD`` records how a report was made.
Any suite's reports can be compared (``standard``, ``ood``, a sampled one): a target counts where the reports
have its task. Writes ``benchmarks/results/NAME.{md,json}`` (the values are kept, so the table outlives the reports).
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

from anyframe.evaluation.targets import (
    PSNR_NOISE,
    TARGETS,
    compare_targets,
    format_difference,
    format_interval,
    format_value,
    same_case_scores,
)

RESULTS = Path(__file__).parent / "results"


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, value = item.partition("=")
        if not sep or not label or not value:
            raise SystemExit(f"error: {flag} {item!r}: expected LABEL=VALUE")
        out[label] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="append", default=[], metavar="LABEL=PATH", help="an `anyframe eval` report.json (any suite)")
    parser.add_argument("--command", action="append", default=[], metavar="LABEL=CMD", help="how that report was made")
    parser.add_argument("--name", required=True, help="results/NAME.{md,json}")
    parser.add_argument("--title", default="Report comparison")
    parser.add_argument("--note", default="", help="a sentence on what differs between the reports")
    args = parser.parse_args()
    paths, commands = _pairs(args.report, "--report"), _pairs(args.command, "--command")
    if len(paths) < 2:
        raise SystemExit("error: give at least two --report LABEL=PATH (the first is the baseline)")
    unknown = set(commands) - set(paths)
    if unknown:
        raise SystemExit(f"error: --command for unknown reports: {', '.join(sorted(unknown))}")
    reports = {}
    for label, path in paths.items():
        if not Path(path).is_file():
            raise SystemExit(f"error: --report {label}={path}: no such file")
        reports[label] = json.loads(Path(path).read_text())
        tasks = {c.get("task") for c in reports[label].get("cases", []) if c.get("scores")}
        if not tasks & {task for task, *_ in TARGETS}:
            raise SystemExit(f"error: {path} has no scored case of a target's task (an `anyframe eval` report.json?)")
    curve = RESULTS / "default_model" / "curve.json"
    noise = json.loads(curve.read_text())["noise"]["max_abs_diff"] if curve.is_file() else 0.03
    rows = compare_targets(reports, noise)
    labels = list(reports)
    command = "python benchmarks/compare_reports.py " + " ".join(
        [f"--name {args.name}", f'--title "{args.title}"'] + [f'--report "{k}={v}"' for k, v in paths.items()])
    RESULTS.mkdir(parents=True, exist_ok=True)
    same = {f"{a} = {b}": same_case_scores(reports[a], reports[b]) for a, b in combinations(labels, 2)}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(
        {"command": command, "title": args.title, "note": args.note, "noise": noise, "psnr_noise": PSNR_NOISE,
         "reports": {k: {"path": paths[k], "model": reports[k].get("model"), "made_by": commands.get(k)} for k in labels},
         "rows": rows, "same_case_scores": same}, indent=1))

    lines = [f"# {args.title}", "", f"Command: `{command}`", ""]
    if args.note:
        lines += [args.note, ""]
    lines += [f"Reports ({', '.join(sorted({str(len(r['cases'])) for r in reports.values()}))} cases each):", ""]
    lines += [f"- **{k}**: `{paths[k]}`" + (f", made by `{commands[k]}`" if k in commands else "") for k in labels]
    lines += ["", "Each value with its 95 % bootstrap interval over the task's cases (how far it could move on "
              "another draw of as many cases); each difference with its 95 % interval — paired case by case where the "
              "reports share their cases, else as two independent draws. A difference counts (better / worse) when "
              f"its interval excludes zero and it is beyond the noise floor of storing the weights: {noise:.3f} "
              f"(two reports of the same weights, `default_model/curve.md`), {PSNR_NOISE:.0f} dB for PSNR.", "",
              "| task | measure | target | " + " | ".join(labels) + " | "
              + " | ".join(f"{k} − {labels[0]}" for k in labels[1:]) + " |",
              "|---|---|---|" + "---|" * (2 * len(labels) - 1)]
    span = lambda i: "" if i is None else " " + format_interval(i)
    for r in rows:
        cells = [format_value(r["values"][k]) + span(r["intervals"][k]) for k in labels]
        diffs = []
        for k in labels[1:]:
            v = r["versus_first"][k]
            diffs.append("—" if v is None else format_difference(v["delta"], v["interval"], bold=False)
                         + f" ({v['verdict']})")
        lines.append(f"| {r['task']} | {r['measure']} | {r['target']} | " + " | ".join(cells + diffs) + " |")
    lines.append("")
    for k in labels[1:]:
        verdicts = [r["versus_first"][k]["verdict"] for r in rows if r["versus_first"][k]]
        lines.append(f"**{k}** against {labels[0]}: better on {verdicts.count('better')}, worse on "
                     f"{verdicts.count('worse')}, not distinguishable on {verdicts.count('same')} of {len(verdicts)} targets.")
    tasks = sorted({t for counts in same.values() for t in counts})
    if tasks:  # (reports of two different suites share no case)
        lines += ["", "Cases with identical scores, by task (where two settings sample the same clips):", "",
                  "| reports | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        lines += [f"| {pair} | " + " | ".join("{}/{}".format(*counts[t]) if t in counts else "—" for t in tasks) + " |"
                  for pair, counts in same.items()]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
