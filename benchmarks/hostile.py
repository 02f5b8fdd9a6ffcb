"""The hostile-input corpus (``tests/hostile/``) by class: how many cases each class holds and how many hold.

    python benchmarks/hostile.py --out benchmarks/results/hostile.md

Runs the corpus with pytest in this process (a plugin records each case's outcome and time) and writes a
Markdown table and a JSON file. The corpus itself is the test suite; this script only counts and reports it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# test function → (class, what a case of it asserts); every test of tests/hostile/ must be listed
CLASSES = {
    "test_a_bad_image_file_is_refused": ("images: bombs, truncated, empty, directories, non-images", "refuse"),
    "test_a_bad_image_beside_a_good_one_is_refused": ("images: bombs, truncated, empty, directories, non-images", "refuse"),
    "test_a_missing_image_is_named": ("images: bombs, truncated, empty, directories, non-images", "refuse"),
    "test_a_bad_image_to_narrate_is_refused": ("images: bombs, truncated, empty, directories, non-images", "refuse"),
    "test_a_bad_image_to_score_is_refused": ("images: bombs, truncated, empty, directories, non-images", "refuse"),
    "test_a_bad_frame_index_says_what_is_wrong_with_it": ("frame indices: malformed or out of range", "refuse"),
    "test_two_images_at_one_frame_are_refused": ("frame indices: malformed or out of range", "refuse"),
    "test_two_images_at_one_frame_counted_from_both_ends_are_refused": ("frame indices: malformed or out of range", "refuse"),
    "test_a_seed_out_of_range_is_refused": ("seeds outside 0 … 2^63−1 (every command, recipes)", "refuse"),
    "test_a_recipe_seed_out_of_range_is_refused": ("seeds outside 0 … 2^63−1 (every command, recipes)", "refuse"),
    "test_generate_refuses_a_bad_frame_rate": ("frame rates: NaN, ∞, 0, negative, absurd", "refuse"),
    "test_world_render_refuses_a_bad_frame_rate": ("frame rates: NaN, ∞, 0, negative, absurd", "refuse"),
    "test_generate_refuses_a_non_finite_scale": ("non-finite scales and options (guidance, detail, shift)", "refuse"),
    "test_eval_refuses_a_non_finite_scale": ("non-finite scales and options (guidance, detail, shift)", "refuse"),
    "test_model_init_refuses_a_bad_shift": ("non-finite scales and options (guidance, detail, shift)", "refuse"),
    "test_a_method_option_must_be_finite": ("non-finite scales and options (guidance, detail, shift)", "refuse"),
    "test_generate_refuses_a_size_that_cannot_run": ("sizes that cannot run (steps, frames, width, height, memory)", "refuse"),
    "test_generate_names_the_memory_a_size_needs": ("sizes that cannot run (steps, frames, width, height, memory)", "refuse"),
    "test_world_commands_refuse_sizes_out_of_range": ("sizes that cannot run (steps, frames, width, height, memory)", "refuse"),
    "test_eval_refuses_a_bad_subset_size": ("sizes that cannot run (steps, frames, width, height, memory)", "refuse"),
    "test_several_bad_flags_give_one_line_about_one_of_them": ("combinations: two bad flags at once", "refuse"),
    "test_a_recipe_value_that_cannot_train_is_refused": ("recipe values: wrong types, impossible values, NaN/∞", "refuse"),
    "test_a_recipe_that_cannot_be_read_is_refused": ("recipe files: binary, non-UTF-8, empty, malformed", "refuse"),
    "test_a_folder_given_as_a_recipe_is_refused": ("recipe files: binary, non-UTF-8, empty, malformed", "refuse"),
    "test_a_suite_that_cannot_be_read_is_refused": ("suite files (JSONL): encoding, JSON, missing or wrong fields", "refuse"),
    "test_a_good_line_then_a_bad_one_names_the_line": ("suite files (JSONL): encoding, JSON, missing or wrong fields", "refuse"),
    "test_a_manifest_that_cannot_be_read_is_refused": ("video manifests: encoding, fields; a bucket smaller than the batch", "refuse"),
    "test_a_batch_larger_than_every_bucket_is_refused": ("video manifests: encoding, fields; a bucket smaller than the batch", "refuse"),
    "test_a_damaged_model_folder_is_named": ("model folders: malformed configs, impossible values, damaged weights", "refuse"),
    "test_a_folder_that_is_no_model_is_refused": ("model folders: malformed configs, impossible values, damaged weights", "refuse"),
    "test_lora_on_a_model_without_adapters_is_refused": ("--lora on a model without adapters; bad LoRA folders", "refuse"),
    "test_lora_on_a_world_model_names_the_backbone": ("--lora on a model without adapters; bad LoRA folders", "refuse"),
    "test_a_bad_lora_on_a_world_model_is_refused": ("--lora on a model without adapters; bad LoRA folders", "refuse"),
    "test_an_output_path_of_the_wrong_kind_is_refused": ("output paths of the wrong kind (file ↔ folder)", "refuse"),
    "test_a_writer_that_fails_leaves_the_earlier_outputs": ("a failed generate keeps earlier outputs", "refuse + files kept"),
    "test_a_failure_in_the_second_rename_puts_the_first_file_back": ("a failed generate keeps earlier outputs", "refuse + files kept"),
    "test_a_successful_run_replaces_both_outputs": ("a successful generate replaces both outputs", "outputs replaced together"),
    "test_the_request_validator_resolves_or_refuses": ("properties (hypothesis): request validator, frame-index parser", "property"),
    "test_a_frame_index_is_in_range_or_refused": ("properties (hypothesis): request validator, frame-index parser", "property"),
    "test_an_image_spec_parses_or_says_what_is_wrong": ("properties (hypothesis): request validator, frame-index parser", "property"),
    "test_a_whole_number_after_at_is_the_index": ("properties (hypothesis): request validator, frame-index parser", "property"),
    "test_anything_else_after_at_is_a_malformed_index": ("properties (hypothesis): request validator, frame-index parser", "property"),
}
TRAINING = ("training: damaged runs recover or refuse (metrics, state.json, temporaries, export, NaN)", "recover / refuse")
KILLS = ("kill -9 at random moments, resumed (real processes, export included)", "bit-identical")


def classify(nodeid: str) -> tuple[str, str]:
    name = nodeid.split("::")[-1].split("[")[0]
    if name in CLASSES:
        return CLASSES[name]
    if "test_kill_resume" in nodeid:
        return KILLS
    if "test_training_recover" in nodeid:
        return TRAINING
    raise SystemExit(f"{nodeid}: not in benchmarks/hostile.py's CLASSES; add it")


class Recorder:
    def __init__(self):
        self.cases: list[dict] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.cases.append({"id": report.nodeid, "outcome": report.outcome, "seconds": report.duration})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hostile.md")
    args = parser.parse_args(argv)
    recorder = Recorder()
    start = time.perf_counter()
    code = pytest.main([str(ROOT / "tests" / "hostile"), "-q", "-p", "no:cacheprovider"], plugins=[recorder])
    seconds = time.perf_counter() - start
    by_class: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for case in recorder.cases:
        by_class[classify(case["id"])].append(case)
    rows = []
    for (name, contract), cases in by_class.items():
        held = sum(c["outcome"] == "passed" for c in cases)
        rows.append({"class": name, "asserts": contract, "cases": len(cases), "held": held,
                     "seconds": round(sum(c["seconds"] for c in cases), 1)})
    total, held = sum(r["cases"] for r in rows), sum(r["held"] for r in rows)
    command = "python benchmarks/hostile.py --out " + str(args.out.relative_to(ROOT) if args.out.is_absolute() and
                                                          args.out.is_relative_to(ROOT) else args.out)
    lines = [
        "# The hostile-input corpus",
        "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}, "
        f"{seconds:.0f} s in all (pytest exit code {code}).",
        "",
        "Each case runs `anyframe.cli.main(argv)` in-process from a fresh folder. A *refuse* case holds when the command "
        "exits with code 2, prints exactly one line on stderr (`error: …`, a progress bar aside) that names the bad value "
        "and what is allowed, shows no traceback, and leaves every file of the folder unchanged. A *recover* case holds "
        "when it warns and reaches its documented end state. The kill test SIGKILLs real training processes at random "
        "moments (one during the final export) and resumes them; its final weights must be bit-identical to an "
        "uninterrupted run's. A *property* case is one hypothesis test (hundreds of generated inputs).",
        "",
        "| class | a case asserts | cases | held | seconds |",
        "|---|---|---:|---:|---:|",
        *[f"| {r['class']} | {r['asserts']} | {r['cases']} | {r['held']} | {r['seconds']} |" for r in rows],
        f"| **all** | | **{total}** | **{held}** | {sum(r['seconds'] for r in rows):.0f} |",
        "",
    ]
    failed = [c["id"] for c in recorder.cases if c["outcome"] != "passed"]
    if failed:
        lines += ["Cases that do not hold:", "", *[f"- `{f}`" for f in failed], ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "seconds": round(seconds, 1),
                                                         "classes": rows, "failed": failed}, indent=1))
    print("\n".join(lines))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
