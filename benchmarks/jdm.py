"""JDM (issue 25): does joint video + mask denoising bind words to objects better than a plain fine-tune?

    python benchmarks/jdm.py --model 'ship=checkpoints/anyframe-world-s' \\
        --model '(a) control=runs/world-s-jdm-control/pipeline' --model '(b) JDM=runs/world-s-jdm/pipeline' \\
        --model "(c) JDM, w'=1=runs/world-s-jdm-w1/pipeline" --control '(a) control' --n 40 \\
        --report '(a) control=reports/jdm-control/report.json' --report '(b) JDM=reports/jdm/report.json' ... \\
        --run runs/world-s-jdm-control --run runs/world-s-jdm --run runs/world-s-jdm-w1 \\
        --cmi runs/cmi/world-train-20000.safetensors

The three fine-tunes (``configs/world-s-jdm*.yaml``) share data, seed, steps, batch and schedule; each example is
one forward and backward pass (JDM draws one term per example), so compute = steps × batch for all.

**Binding suite** (text to video; train-split scenes from ``--seed`` on, outside every training run's clips, without
events so that a swap changes only which words go with which object; ``--n`` scenes with each of 1, 2 and 3
objects). Each model generates every case from its caption with its default sampling, and the two- and
three-object cases again from two twins: the caption with two objects' colours swapped and with their motions
swapped (same seed). The oracle scores each clip:

- ``presence``, ``count``, ``motion_direction`` (direction), ``color_binding`` (≥ 2 objects), ``temporal_flicker``;
- *render error*: the mean best-shape residual of the oracle's detections (its analysis-by-synthesis fit of each
  object to the world's shapes, :func:`anyframe.world.oracle.shape_residuals`): 0 for a clean render, larger for
  smeared or malformed objects — lower is better;
- *colour / motion swap margin*: per clip, its key (``color_binding`` / ``motion_direction``) against the scene it
  was asked for minus against its twin's scene (both clips of a pair): about 0 for a model that reads a caption
  as a bag of words, positive when the words bind to their objects. The renders give the ceiling.

**Mask quality** (models with masks): the generated mask clip (decoded, thresholded at 0.5) against the oracle's
parse of the generated video — the union, per frame, of the detection masks of the tracks the oracle matches to
the prompt's objects: IoU ``|P∩G| / |P∪G|``, F1 ``2|P∩G| / (|P| + |G|)`` and pixel accuracy, taken balanced
(the mean of the foreground and the background recall: plain accuracy is dominated by the background), over all
pixels of a clip; per object count.

Every mean has a 95 % bootstrap interval over cases; a model's difference from ``--control`` is paired over the
same cases. ``--earlier LABEL=result.json`` adds a model measured by an earlier run of the script (its per-case
scores; same ``--n`` and ``--seed``). ``--report LABEL=report.json`` (``anyframe eval --suite standard``) adds the standard suite's targets,
with each model's paired difference from the control. ``--run`` adds the training curves, ``--cmi`` the training
clips' CMI distribution and the weights ``w' = w·exp(−α·Ī)`` it gives (``--w``, ``--alpha``). Writes
``benchmarks/results/<--name>.{json,md}`` and its plots (``_curves``, ``_cmi``, ``_examples`` PNGs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from anyframe.evaluation.cache import weights_key
from anyframe.evaluation.harness import Conditioning, TruthModel, load_model
from anyframe.evaluation.targets import (
    TARGETS,
    difference_interval,
    format_difference,
    mean_interval,
    task_scores,
)
from anyframe.progress import StageBars
from anyframe.world.captions import caption
from anyframe.world.corruptions import swap_colors, swap_motions
from anyframe.world.scoring import color_binding, match_objects, motion_direction, read_clip, truth_of
from anyframe.world.scoring.flicker import temporal_flicker
from anyframe.world.scoring.objects import count as count_score
from anyframe.world.scoring.objects import presence
from anyframe.world.suite import cases_where

RESULTS = Path(__file__).parent / "results"
OBJECT_COUNTS = (1, 2, 3)
CLIP_KEYS = ("presence", "count", "motion_direction", "color_binding", "temporal_flicker", "render_error")
MASK_KEYS = ("mask_iou", "mask_f1", "mask_pixel_accuracy")


# ------------------------------------------------------------------------------------------- cases


def binding_cases(n: int, seed: int) -> list[tuple]:
    """``n`` text-to-video cases per object count, each with its colour and motion twins (None where a swap does
    not apply: one object, or two objects that look or move alike)."""
    out = []
    for k in OBJECT_COUNTS:
        def keep(scene, k=k) -> bool:
            return len(scene.objects) == k and not scene.events

        for case in cases_where("t2v", n, keep, seed=seed + 100_000 * k, prefix=f"jdm-{k}obj"):
            twins = {}
            for name, swap in (("colour", swap_colors), ("motion", swap_motions)):
                twin_scene = swap(case.scene_program()) if k >= 2 else None
                twins[name] = None if twin_scene is None else dataclasses.replace(
                    case, id=f"{case.id}-{name}-twin", scene=twin_scene.to_dict(),
                    conditions={**case.conditions, "prompt": caption(twin_scene)})
            out.append((k, case, twins))
    return out


# ------------------------------------------------------------------------------------------ scores


def render_error(reading) -> float | None:
    residuals = [float(np.min(d.residuals)) for tr in reading.tracks for d in tr.detections if len(d.residuals)]
    return float(np.mean(residuals)) if residuals else None


def clip_scores(scene, frames: np.ndarray) -> tuple[dict, object, object, dict]:
    truth, reading = truth_of(scene), read_clip(frames)
    matches = match_objects(truth, reading)
    flicker, _ = temporal_flicker(truth, reading)
    scores = {
        "presence": presence(truth, reading, matches),
        "count": count_score(truth, reading),
        "motion_direction": motion_direction(truth, reading, matches),
        "color_binding": color_binding(truth, reading) if truth.n >= 2 else None,
        "temporal_flicker": flicker,
        "render_error": render_error(reading),
    }
    return scores, truth, reading, matches


def parse_mask(reading, matches: dict, shape: tuple) -> np.ndarray:
    """The oracle's parse as a mask clip ``[T, H, W]``: the detection masks of the tracks matched to the objects."""
    out = np.zeros(shape, dtype=bool)
    for track_index in matches.values():
        tr = reading.tracks[track_index]
        for t, d in zip(tr.frames, tr.detections):
            out[int(t)] |= d.mask
    return out


def mask_scores(pred: np.ndarray, parse: np.ndarray) -> dict:
    pred, parse = pred.astype(bool), parse.astype(bool)
    inter, union = float((pred & parse).sum()), float((pred | parse).sum())
    if union == 0:
        return dict.fromkeys(MASK_KEYS)
    fg, bg = parse.sum(), (~parse).sum()
    recall_fg = inter / fg if fg else None
    recall_bg = float((~pred & ~parse).sum()) / bg if bg else None
    parts = [r for r in (recall_fg, recall_bg) if r is not None]
    return {"mask_iou": inter / union, "mask_f1": 2 * inter / float(pred.sum() + parse.sum()),
            "mask_pixel_accuracy": float(np.mean(parts))}


def _swap_key(name: str) -> str:
    return "color_binding" if name == "colour" else "motion_direction"


def _score_against(key: str, scene, frames: np.ndarray) -> float | None:
    truth, reading = truth_of(scene), read_clip(frames)
    if key == "color_binding":
        return color_binding(truth, reading)
    return motion_direction(truth, reading, match_objects(truth, reading))


def measure(model, cases: list[tuple], examples: list | None = None, bars: StageBars | None = None,
            label: str = "") -> dict:
    """Per case id: the clip scores, the swap margins and the mask scores."""
    per_case: dict[str, dict] = {}
    bar = bars.task(label, len(cases)) if bars else None
    for k, case, twins in cases:
        cond = Conditioning.of(case)
        gen = model.generate(case, cond)
        scores, _truth, reading, matches = clip_scores(cond.scene, gen.frames)
        row = {"objects": k, **scores}
        if "masks" in gen.extras:
            row.update(mask_scores(gen.extras["masks"], parse_mask(reading, matches, gen.frames.shape[:3])))
            if examples is not None and len(examples) < 4 and k >= 2:
                examples.append((case.conditions["prompt"], gen.frames, gen.extras["mask_frames"]))
        elif isinstance(model, TruthModel):
            row.update(mask_scores(cond.masks.max(0) >= 0.5, parse_mask(reading, matches, gen.frames.shape[:3])))
        for name, twin in twins.items():
            if twin is None:
                continue
            key = _swap_key(name)
            tcond = Conditioning.of(twin)
            tgen = model.generate(twin, tcond)
            pairs = ((gen.frames, cond.scene, tcond.scene), (tgen.frames, tcond.scene, cond.scene))
            margins = []
            for frames, mine, theirs in pairs:
                own, other = _score_against(key, mine, frames), _score_against(key, theirs, frames)
                if own is not None and other is not None:
                    margins.append(own - other)
            row[f"{name}_margin"] = float(np.mean(margins)) if margins else None
        per_case[case.id] = row
        if bars:
            bars.advance(bar)
    return per_case


def _column(per_case: dict, key: str, objects: int | None = None) -> dict[str, float]:
    return {cid: r[key] for cid, r in per_case.items()
            if r.get(key) is not None and (objects is None or r["objects"] == objects)}


def summarise(per_case: dict, control: dict | None) -> dict:
    out = {}
    keys = [*CLIP_KEYS, "colour_margin", "motion_margin", *MASK_KEYS]
    for key in keys:
        for objects in (None, *OBJECT_COUNTS):
            scores = _column(per_case, key, objects)
            if not scores:
                continue
            entry = {"n": len(scores), "mean": float(np.mean(list(scores.values()))),
                     "interval": mean_interval(scores)}
            if control is not None:
                ref = _column(control, key, objects)
                if set(ref) & set(scores):
                    entry["vs_control"] = float(np.mean([scores[c] - ref[c] for c in set(ref) & set(scores)]))
                    entry["vs_control_interval"] = difference_interval(ref, scores)
            out[f"{key}@{objects or 'all'}"] = entry
    return out


# ------------------------------------------------------------------------------------------ extras


def standard_suite(reports: dict[str, Path], control: str | None) -> list[dict]:
    loaded = {label: json.loads(Path(p).read_text()) for label, p in reports.items()}
    rows = []
    for task, measure_name, key, target in TARGETS:
        ref = task_scores(loaded[control], task, key) if control in loaded else None
        for label, report in loaded.items():
            scores = task_scores(report, task, key)
            if not scores:
                continue
            row = {"task": task, "measure": measure_name, "key": key, "target": target, "model": label,
                   "mean": float(np.mean(list(scores.values()))), "interval": mean_interval(scores)}
            if ref and label != control:
                common = sorted(set(ref) & set(scores))  # (a model measured on a subset: paired over it)
                row["vs_control"] = float(np.mean([scores[c] - ref[c] for c in common])) if common else None
                row["vs_control_interval"] = difference_interval(ref, scores)
            rows.append(row)
    return rows


def training_curves(runs: list[Path], path: Path) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rows = []
    for run in runs:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        records = [r for r in records if "loss" in r]
        config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
        steps = [r["step"] for r in records]
        for ax, key in zip(axes, ("loss_diffusion", "loss/t2v")):
            values = [r.get(key) for r in records]
            pts = [(s, v) for s, v in zip(steps, values) if v is not None]
            if pts:
                s, v = zip(*pts)
                window = 8
                smooth = np.convolve(v, np.ones(window) / window, mode="valid") if len(v) >= window else np.asarray(v)
                ax.plot(s[len(s) - len(smooth):], smooth, label=run.name)
        batch = (config.get("data") or {}).get("batch_size")
        if batch is not None:
            batch *= (config.get("optim") or {}).get("grad_accum", 1)
        rows.append({"run": run.name, "steps": steps[-1] if steps else 0, "batch": batch,
                     "example_passes": (steps[-1] * batch) if steps and batch else None})
    axes[0].set_title("training loss (JDM: video + mask channels)")
    axes[1].set_title("t2v examples' loss")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def cmi_summary(table_path: Path, w: float, alpha: float, plot: Path) -> dict:
    import matplotlib

    from anyframe.data.cmi import CMITable

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = CMITable.load(table_path)
    values = table.values.numpy()
    has = table.has_pairs.numpy()
    weights = w * np.exp(-alpha * np.maximum(values, 0.0))  # (as the method: a negative estimate counts as 0)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(values[has], bins=50)
    axes[0].set_title("Ī of the training clips with ≥ 2 objects")
    axes[1].hist(weights, bins=50)
    axes[1].set_title(f"w' = {w:g}·exp(−{alpha:g}·Ī), all clips")
    fig.tight_layout()
    fig.savefig(plot, dpi=110)
    plt.close(fig)
    q = np.quantile(values[has], [0.05, 0.25, 0.5, 0.75, 0.95]).tolist() if has.any() else []
    return {"clips": len(values), "with_pairs": float(has.mean()), "cmi_mean": float(values[has].mean()) if has.any() else None,
            "cmi_quantiles_5_25_50_75_95": q, "w_prime_mean": float(weights.mean()),
            "w_prime_quantiles_5_50_95": np.quantile(weights, [0.05, 0.5, 0.95]).tolist(), "meta": table.meta}


def example_strips(examples: list, path: Path) -> None:
    from PIL import Image

    from anyframe.io import filmstrip, to_uint8

    rows = []
    for _prompt, frames, mask_frames in examples:
        rows.append(filmstrip(frames))
        rows.append(filmstrip(to_uint8(mask_frames)))
    if not rows:
        return
    width = max(r.shape[1] for r in rows)
    canvas = np.zeros((sum(r.shape[0] + 4 for r in rows), width, 3), dtype=np.uint8)
    y = 0
    for r in rows:
        canvas[y:y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + 4
    Image.fromarray(canvas).save(path)


# ------------------------------------------------------------------------------------------- cache


def _cache_file(folder: Path, path: str, n: int, seed: int) -> Path:
    """One file per (model weights, cases): a re-exported model is measured again (:func:`weights_key`)."""
    if path == "truth":
        import hashlib

        return folder / (hashlib.sha256(f"truth|{n}|{seed}".encode()).hexdigest()[:16] + ".json")
    return folder / (weights_key(path, n, seed) + ".json")


def _write_cache(file: Path, per_case: dict, examples: list) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (_prompt, frames, mask_frames) in enumerate(examples):
        arrays[f"frames_{i}"], arrays[f"masks_{i}"] = frames, mask_frames
    if arrays:
        tmp = file.with_name(f".{file.stem}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(file.with_suffix(".npz"))
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(json.dumps({"cases": per_case, "prompts": [e[0] for e in examples]}))
    tmp.replace(file)


def _read_cache(file: Path) -> tuple[dict, list]:
    data = json.loads(file.read_text())
    examples = []
    if data["prompts"]:
        with np.load(file.with_suffix(".npz")) as arrays:
            examples = [(p, arrays[f"frames_{i}"], arrays[f"masks_{i}"]) for i, p in enumerate(data["prompts"])]
    return data["cases"], examples


# -------------------------------------------------------------------------------------------- main


def _fmt(entry: dict | None, digits: int = 3) -> str:
    if entry is None:
        return "—"
    iv = entry.get("interval")
    text = f"{entry['mean']:.{digits}f}"
    return text + (f" [{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]" if iv else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="LABEL=PATH (a pipeline folder); repeat")
    ap.add_argument("--control", help="the LABEL every other model is compared with (paired over cases)")
    ap.add_argument("--n", type=int, default=40, help="cases per object count (1, 2, 3)")
    ap.add_argument("--seed", type=int, default=7_700_000)
    ap.add_argument("--report", action="append", default=[], help="LABEL=report.json of the standard suite; repeat")
    ap.add_argument("--run", action="append", default=[], type=Path, help="a training run folder (curves); repeat")
    ap.add_argument("--cmi", type=Path, help="the CMI table the JDM run weighted by")
    ap.add_argument("--w", type=float, default=1.0)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--name", default="jdm")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--earlier", action="append", default=[],
                    help="LABEL=result.json: a model measured by an earlier run of this script (its per-case scores "
                         "from that file's 'cases', same --n and --seed; its weights need not exist); repeat")
    ap.add_argument("--cache", type=Path, help="a folder of per-model results: a model measured before (same folder, "
                    "weights, --n, --seed) is read back, not generated again — so each model can be measured in its "
                    "own process as its run finishes, and a last call assembles the table")
    args = ap.parse_args(argv)

    models = [("truth (the renders)", TruthModel(), "truth")]
    for spec in args.model:
        label, sep, path = spec.rpartition("=")
        if not sep or not Path(path, "model_index.json").is_file():
            print(f"error: --model {spec}: want LABEL=PATH to a pipeline folder", file=sys.stderr)
            return 2
        models.append((label, None, path))  # loaded when measured (not at all when cached)
    earlier: dict[str, dict] = {}
    for spec in args.earlier:
        label, sep, path = spec.rpartition("=")
        try:
            data = json.loads(Path(path).read_text()) if sep else None
        except (OSError, ValueError) as exc:
            print(f"error: --earlier {spec}: {exc}", file=sys.stderr)
            return 2
        if data is None or label not in data.get("cases", {}):
            print(f"error: --earlier {spec}: want LABEL=PATH to a result of this script that measured LABEL",
                  file=sys.stderr)
            return 2
        if (data.get("n"), data.get("seed")) != (args.n, args.seed):
            print(f"error: --earlier {spec}: measured with --n {data.get('n')} --seed {data.get('seed')}, "
                  f"not --n {args.n} --seed {args.seed}", file=sys.stderr)
            return 2
        earlier[label] = data["cases"][label]
        models.append((label, None, "earlier"))
    labels = [label for label, *_ in models]
    if len(set(labels)) != len(labels):
        print("error: two models share a label", file=sys.stderr)
        return 2
    if args.control is not None and args.control not in labels:
        print(f"error: --control {args.control!r} is not one of the --model labels", file=sys.stderr)
        return 2
    reports = {}
    for spec in args.report:
        label, sep, path = spec.rpartition("=")
        if not sep or not Path(path).is_file():
            print(f"error: --report {spec}: want LABEL=PATH to a report.json", file=sys.stderr)
            return 2
        reports[label] = Path(path)

    args.out.mkdir(parents=True, exist_ok=True)
    cases = binding_cases(args.n, args.seed)
    per_model: dict[str, dict] = {}
    examples: list = []
    for label, model, path in models:
        start = time.perf_counter()
        if path == "earlier":
            per_model[label] = earlier[label]
            print(f"{label:28s} {len(cases)} cases (from an earlier result)", flush=True)
            continue
        cached = _cache_file(args.cache, path, args.n, args.seed) if args.cache else None
        if cached is not None and cached.is_file():
            per_model[label], mine = _read_cache(cached)
            if not examples:
                examples.extend(mine)
            print(f"{label:28s} {len(cases)} cases (cached: {cached})", flush=True)
            continue
        mine = [] if not examples else None
        with StageBars(sys.stderr.isatty()) as bars:
            per_model[label] = measure(model or load_model(path), cases, mine, bars, label)
        examples.extend(mine or [])
        if cached is not None:
            _write_cache(cached, per_model[label], mine or [])
        print(f"{label:28s} {len(cases)} cases ({time.perf_counter() - start:.0f} s)", flush=True)
    control = per_model.get(args.control) if args.control else None
    summaries = {label: summarise(per_model[label], None if label == args.control else control) for label in labels}

    payload = {"command": "python benchmarks/jdm.py " + shlex.join(argv or sys.argv[1:]),
               "n": args.n, "seed": args.seed, "control": args.control, "summaries": summaries, "cases": per_model}
    if reports:
        payload["standard_suite"] = standard_suite(reports, args.control)
    if args.run:
        payload["training"] = training_curves(args.run, args.out / f"{args.name}_curves.png")
    if args.cmi:
        payload["cmi"] = cmi_summary(args.cmi, args.w, args.alpha, args.out / f"{args.name}_cmi.png")
    if examples:
        example_strips(examples, args.out / f"{args.name}_examples.png")
    tmp = args.out / f".{args.name}.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(args.out / f"{args.name}.json")
    tmp = args.out / f".{args.name}.md.tmp"
    tmp.write_text(render_markdown(payload, labels, args))
    tmp.replace(args.out / f"{args.name}.md")
    return 0


def render_markdown(payload: dict, labels: list[str], args) -> str:
    s = payload["summaries"]
    lines = ["# JDM: joint video + mask denoising against a plain fine-tune", "",
             f"Command: `{payload['command']}`", "",
             f"{args.n} text-to-video scenes per object count (1, 2, 3; train-split scene seeds from {args.seed}, "
             "without events), each model's default sampling; the two- and three-object scenes again from their "
             "colour-swapped and motion-swapped twins (same seed). Means with 95 % bootstrap intervals over cases; "
             f"*vs control*: the paired difference from {args.control or '—'} (bold where the interval excludes 0). "
             "Metric definitions: the script's docstring; *render error* is lower-is-better, every other key "
             "higher-is-better, in [0, 1] (margins in [−1, 1]).", ""]
    lines += ["## Binding and quality (all scenes)", "",
              "| model | presence | count | direction | colour binding | colour swap margin | motion swap margin | flicker | render error |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
        cells = [_fmt(s[label].get(f"{k}@all")) for k in ("presence", "count", "motion_direction", "color_binding",
                                                          "colour_margin", "motion_margin", "temporal_flicker",
                                                          "render_error")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if args.control:
        lines += ["", f"### Paired differences from {args.control}", "",
                  "| model | presence | count | direction | colour binding | colour swap margin | motion swap margin | flicker | render error |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for label in labels:
            if label in (args.control, "truth (the renders)"):
                continue
            cells = []
            for k in ("presence", "count", "motion_direction", "color_binding", "colour_margin", "motion_margin",
                      "temporal_flicker", "render_error"):
                e = s[label].get(f"{k}@all") or {}
                cells.append(format_difference(e.get("vs_control"), e.get("vs_control_interval")) if "vs_control" in e else "—")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Masks against the oracle's parse of the generated video", "",
              "| model | objects | clips | IoU | F1 | pixel accuracy (balanced) |", "|---|---|---|---|---|---|"]
    for label in labels:
        for objects in ("all", *OBJECT_COUNTS):
            e = s[label].get(f"mask_iou@{objects}")
            if e is None:
                continue
            lines.append(f"| {label} | {objects} | {e['n']} | {_fmt(e)} | {_fmt(s[label].get(f'mask_f1@{objects}'))} | "
                         f"{_fmt(s[label].get(f'mask_pixel_accuracy@{objects}'))} |")
    lines += ["", "## By object count", "", "| model | objects | presence | count | direction | colour binding | colour swap margin | motion swap margin |",
              "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        for objects in OBJECT_COUNTS:
            cells = [_fmt(s[label].get(f"{k}@{objects}")) for k in ("presence", "count", "motion_direction", "color_binding",
                                                                   "colour_margin", "motion_margin")]
            lines.append(f"| {label} | {objects} | " + " | ".join(cells) + " |")
    if "standard_suite" in payload:
        lines += ["", "## Standard suite (anyframe eval --suite standard)", "",
                  "| task | measure | target | model | mean [95 %] | vs control |", "|---|---|---|---|---|---|"]
        for r in payload["standard_suite"]:
            vs = format_difference(r["vs_control"], r["vs_control_interval"]) if "vs_control" in r else "—"
            lines.append(f"| {r['task']} | {r['measure']} | {r['target']} | {r['model']} | {_fmt(r)} | {vs} |")
    if "training" in payload:
        lines += ["", "## Training compute", "", "| run | steps | batch | example passes |", "|---|---|---|---|"]
        for r in payload["training"]:
            lines.append(f"| {r['run']} | {r['steps']} | {r['batch']} | {r['example_passes']} |")
        lines += ["", f"![curves]({args.name}_curves.png)"]
    if "cmi" in payload:
        c = payload["cmi"]
        q = ", ".join(f"{v:.3f}" for v in c["cmi_quantiles_5_25_50_75_95"])
        lines += ["", "## CMI of the training clips", "",
                  f"{c['clips']} clips, {c['with_pairs']:.1%} with ≥ 2 objects (the others: Ī = 0). Ī mean "
                  f"{c['cmi_mean']:.3f}, quantiles 5/25/50/75/95 %: {q}. w' = {args.w:g}·exp(−{args.alpha:g}·Ī): mean "
                  f"{c['w_prime_mean']:.3f}, 5/50/95 %: " + ", ".join(f"{v:.3f}" for v in c["w_prime_quantiles_5_50_95"])
                  + " — the share of fine terms the CMI-weighted run drew.", "", f"![cmi]({args.name}_cmi.png)"]
    if (args.out / f"{args.name}_examples.png").exists():
        lines += ["", "## Examples (video above, its generated mask clip below)", "", f"![examples]({args.name}_examples.png)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
