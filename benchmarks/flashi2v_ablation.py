"""The FlashI2V leakage ablation at world scale: five image-to-video paradigms on one backbone and one
budget (configs/world-s-i2v.yaml), measured by the shapes-world oracle in distribution and on held-out
splits (unseen backgrounds, colours/shapes, styles).

    python benchmarks/flashi2v_ablation.py \\
        --model "frame replacement=runs/i2v/frame-replacement/pipeline" \\
        --model "channel concat=runs/i2v/channel-concat/pipeline" \\
        --model "latent shift=runs/i2v/latent-shift/pipeline" --model "Fourier=runs/i2v/fourier/pipeline" \\
        --model "FlashI2V=runs/i2v/flashi2v/pipeline" [--n 24] [--steps 25] [--detail-sweep FlashI2V]

For each TI2V case (the condition is the true first frame) and model:

- **first-frame fidelity**: PSNR of generated frame 0 against the condition image (dB);
- **colour consistency over time**: the share of the generated objects' detections, over all frames, in the
  object's true colour at that frame (objects matched by shape, so a recoloured object still matches);
  and the **global colour error**: |mean RGB of the generated frame − mean RGB of the true frame| (0–255),
  which sees a drifting background as well as drifting objects;
- **dynamic degree**: the oracle's ``dynamic_degree`` (motion present, relative to the truth's) and the
  mean object speed ``dynamic_degree_px`` (px / frame; the truth's beside it) — a model that copies the
  condition image freezes;
- **motion accuracy**: the oracle's ``motion_direction``;
- **chunk-wise error growth** (the analog of the paper's Fig. 7a, chunk-wise FVD): the clip split into 4
  chunks of frames; per chunk the RMSE to the true clip and the global colour error. A model that applies
  what it learned should show the same time-increasing pattern on the held-out splits as in distribution;
- **differences** from ``--reference`` (default: the first model), case by case on the same cases, each with
  its 95 % bootstrap interval over the cases.

Writes ``benchmarks/results/flashi2v_ablation.{json,md}`` and ``flashi2v_ablation_chunks.png`` /
``flashi2v_ablation_metrics.png`` (matplotlib), with the command line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from anyframe.evaluation.cache import weights_key
from anyframe.evaluation.harness import Conditioning, PipelineModel
from anyframe.evaluation.targets import difference_digits, format_difference, paired_differences
from anyframe.io import write_texts
from anyframe.progress import StageBars
from anyframe.world.scoring import match_by_shape, psnr, read_clip, score_clip, truth_of
from anyframe.world.suite import sample_suite

RESULTS = Path(__file__).parent / "results"
SPLITS = ("train", "ood_background", "ood_color_shape", "ood_style")
CHUNKS = 4
CASE_SEED = 70_000  # scenes of the benchmark: seeds 70,000 + i of each split (training draws its own stream)
METRICS = ("first_frame_psnr", "color_consistency", "global_color_error", "dynamic_degree", "dynamic_degree_px",
           "true_speed_px", "motion_direction", "identity_persistence")


def chunks(num_frames: int) -> list[np.ndarray]:
    return np.array_split(np.arange(num_frames), CHUNKS)


def color_consistency(frames: np.ndarray, cond: Conditioning) -> tuple[float | None, list[float | None]]:
    """Share of matched objects' detections in the true colour at that frame: overall and per chunk."""
    truth = truth_of(cond.scene)
    reading = read_clip(frames)
    match = match_by_shape(truth, reading)
    hits: list[tuple[int, bool]] = []
    for i, j in match.items():
        tr = reading.tracks[j]
        visible = truth.traj.visible[i]
        hits += [(int(t), c == truth.traj.color[i][int(t)]) for t, c in zip(tr.frames, tr.colors) if visible[int(t)]]
    if not hits:
        return None, [None] * CHUNKS
    per_chunk = []
    for frames_of_chunk in chunks(frames.shape[0]):
        inside = [ok for t, ok in hits if t in set(frames_of_chunk.tolist())]
        per_chunk.append(float(np.mean(inside)) if inside else None)
    return float(np.mean([ok for _, ok in hits])), per_chunk


def global_color_error(frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per frame: mean over channels of |mean colour of the frame − mean colour of the true frame|."""
    return np.abs(frames.reshape(frames.shape[0], -1, 3).mean(1) - truth.reshape(truth.shape[0], -1, 3).mean(1)).mean(1)


def measure(frames: np.ndarray, cond: Conditioning, case) -> dict:
    truth = cond.clip
    scores = score_clip(frames, cond.scene, keys=["motion_direction", "dynamic_degree", "identity_persistence"])
    consistency, consistency_chunks = color_consistency(frames, cond)
    colour = global_color_error(frames, truth)
    rmse = np.sqrt(((frames.astype(np.float64) - truth.astype(np.float64)) ** 2).reshape(frames.shape[0], -1).mean(1))
    true_speed = score_clip(truth, cond.scene, keys=["dynamic_degree"]).get("dynamic_degree_px")
    return {
        "first_frame_psnr": psnr(frames[0], truth[0]),
        "color_consistency": consistency,
        "global_color_error": float(colour.mean()),
        "dynamic_degree": scores.get("dynamic_degree"),
        "dynamic_degree_px": scores.get("dynamic_degree_px"),
        "true_speed_px": true_speed,
        "motion_direction": scores.get("motion_direction"),
        "identity_persistence": scores.get("identity_persistence"),
        "chunk_rmse": [float(rmse[c].mean()) for c in chunks(frames.shape[0])],
        "chunk_color_error": [float(colour[c].mean()) for c in chunks(frames.shape[0])],
        "chunk_color_consistency": consistency_chunks,
    }


def layer_scales(path: str, conds: list[Conditioning]) -> dict:
    """What FlashI2V's own layers learned (flashi2v_probe.py's measures: φ's scale, its correlation with and fit to
    the image latent, the Fourier embedding's loudness) on the condition images of the given cases; {} for a model
    without them."""
    sys.path.insert(0, str(Path(__file__).parent))  # the sibling script (it imports this module's scenes)
    from flashi2v_probe import probe

    from anyframe.conditioning.flashi2v import DEFAULT_DETAIL
    from anyframe.pipelines import load_pipeline

    pipe = load_pipeline(path, "float32")
    if pipe.conditioning.name != "flashi2v":
        return {}
    return probe(pipe, [c.clip[0] for c in conds], pipe.conditioning.config.get("default_detail", DEFAULT_DETAIL))


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def aggregate(rows: list[dict]) -> dict:
    out = {k: _mean(r[k] for r in rows) for k in METRICS}
    for key in ("chunk_rmse", "chunk_color_error", "chunk_color_consistency"):
        out[key] = [_mean(r[key][c] for r in rows) for c in range(CHUNKS)]
    out["n"] = len(rows)
    return out


def per_case(rows: list[dict], ids: list[str]) -> dict[str, dict[str, float]]:
    """Metric → case id → value (the cases it is defined on): what the paired intervals resample."""
    return {k: {i: float(r[k]) for i, r in zip(ids, rows) if r[k] is not None and np.isfinite(r[k])} for k in METRICS}


DIFFERENCE_METRICS = ("first_frame_psnr", "color_consistency", "global_color_error", "dynamic_degree_px",
                      "motion_direction", "identity_persistence")


def difference_lines(results: dict, models: list[str], reference: str) -> list[str]:
    """Per split, each model's paired difference from ``reference`` on the same cases, with 95 % intervals."""
    if any("cases" not in results[name][split] for name in models for split in SPLITS):
        return []
    lines = [f"### Differences from {reference}", "",
             f"Each model minus **{reference}** on the same cases (same scenes and sampling seeds), with the 95 % "
             "bootstrap interval over the cases (`anyframe.evaluation.targets.paired_differences`); **bold** where the "
             "interval excludes zero. Lower is better for global_color_error.", ""]
    for split in SPLITS:
        lines += [f"#### {split}", "", "| model | " + " | ".join(DIFFERENCE_METRICS) + " |",
                  "|---|" + "---|" * len(DIFFERENCE_METRICS)]
        for name in models:
            if name == reference:
                continue
            d = paired_differences(results[reference][split]["cases"], results[name][split]["cases"])
            lines.append(f"| {name} | " + " | ".join(
                format_difference(d[k]["delta"], d[k]["interval"], digits=difference_digits(k))
                if k in d else "—" for k in DIFFERENCE_METRICS) + " |")
        lines.append("")
    return lines


def _fmt(v, digits=3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def plots(results: dict, models: list[str], path_chunks: Path, path_metrics: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(SPLITS), figsize=(4 * len(SPLITS), 6.5), sharex=True)
    for col, split in enumerate(SPLITS):
        for name in models:
            agg = results[name][split]
            axes[0, col].plot(range(1, CHUNKS + 1), agg["chunk_rmse"], marker="o", label=name)
            axes[1, col].plot(range(1, CHUNKS + 1), agg["chunk_color_error"], marker="o", label=name)
        axes[0, col].set_title(split)
        axes[1, col].set_xlabel("chunk (4 frames each)")
        axes[1, col].set_xticks(range(1, CHUNKS + 1))
    axes[0, 0].set_ylabel("RMSE to the true clip")
    axes[1, 0].set_ylabel("global colour error (0–255)")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle("Chunk-wise error growth (the analog of FlashI2V Fig. 7a)")
    fig.tight_layout()
    fig.savefig(path_chunks, dpi=110)
    plt.close(fig)

    shown = ("first_frame_psnr", "color_consistency", "dynamic_degree", "motion_direction")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6))
    width = 0.8 / len(models)
    for ax, metric in zip(axes, shown):
        for k, name in enumerate(models):
            values = [results[name][s][metric] or 0.0 for s in SPLITS]
            ax.bar(np.arange(len(SPLITS)) + k * width, values, width, label=name)
        ax.set_xticks(np.arange(len(SPLITS)) + 0.4 - width / 2, [s.replace("ood_", "ood\n") for s in SPLITS], fontsize=8)
        ax.set_title(metric)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path_metrics, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="repeatable")
    parser.add_argument("--n", type=int, default=24, help="TI2V cases per split")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--detail-sweep", default=None, metavar="NAME",
                        help="also sample this (Fourier) model at several detail ratios on the train split")
    parser.add_argument("--out", default=str(RESULTS / "flashi2v_ablation"), help="path prefix of the results")
    parser.add_argument("--note", default="", help="how the models were trained (written into the results)")
    parser.add_argument("--cache", default="runs/flashi2v_ablation_cache",
                        help="folder of the per-model results (read back when a model's weights are unchanged)")
    parser.add_argument("--only-measure", action="store_true",
                        help="measure the models into the cache (--cache) and stop: no tables or plots")
    parser.add_argument("--reference", default=None, metavar="NAME",
                        help="the model the others are differenced against, case by case (default: the first)")
    args = parser.parse_args()
    command = "python benchmarks/flashi2v_ablation.py " + shlex.join(sys.argv[1:])
    specs = dict(spec.split("=", 1) for spec in args.model)
    models = list(specs)
    if args.reference is not None and args.reference not in specs:
        parser.error(f"--reference {args.reference!r} is not one of the models {models}")
    cases = {split: sample_suite(args.n, split, seed=CASE_SEED, tasks=("ti2v",), prefix="flashi2v") for split in SPLITS}
    conds = {c.id: Conditioning.of(c) for split in SPLITS for c in cases[split]}

    results: dict = {}
    start = time.perf_counter()
    out = Path(args.out)
    cache = Path(args.cache)  # per-model results: models can be measured as they finish
    for name in models:
        # the weights' key (path, sizes, mtimes): a model re-exported at the same path is measured again
        key = {"model": weights_key(specs[name]), "n": args.n, "steps": args.steps, "guidance": args.guidance,
               "per_case": True}
        cached = cache / f"{name.replace(' ', '_').replace('/', '_')}.json"
        if cached.is_file() and json.loads(cached.read_text()).get("key") == key:
            results[name] = json.loads(cached.read_text())["results"]
            print(f"{name}: from {cached}", flush=True)
            continue
        # renorm on every case, as the committed results were measured (the default is now `auto`)
        model = PipelineModel(specs[name], steps=args.steps, guidance=args.guidance, renorm="full", name=name)
        results[name] = {}
        with StageBars(sys.stderr.isatty()) as bars:  # bars on a terminal; a line per split in a log
            for split in SPLITS:
                rows = []
                task = bars.task(f"{name}: {split}", len(cases[split]))
                for case in cases[split]:
                    gen = model.generate(case, conds[case.id])
                    rows.append(measure(gen.frames, conds[case.id], case))
                    bars.advance(task)
                results[name][split] = aggregate(rows) | {"cases": per_case(rows, [c.id for c in cases[split]])}
                print(f"{name}: {split} done ({time.perf_counter() - start:.0f} s)", flush=True)
        write_texts({cached: json.dumps({"key": key, "results": results[name]})})  # models measured side by side
        print(f"{name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.only_measure:
        return
    layers = {name: layer_scales(specs[name], [conds[c.id] for c in cases["train"]]) for name in models}  # cheap

    sweep = {}
    if args.detail_sweep:
        for detail in (0.02, 0.1, 0.3, 0.6, 0.9):
            model = PipelineModel(specs[args.detail_sweep], steps=args.steps, guidance=args.guidance, renorm="full",
                                  detail=detail)
            rows = [measure(model.generate(c, conds[c.id]).frames, conds[c.id], c) for c in cases["train"]]
            agg = aggregate(rows)
            sweep[str(detail)] = {k: agg[k] for k in ("first_frame_psnr", "dynamic_degree", "dynamic_degree_px",
                                                       "color_consistency")}

    out.parent.mkdir(parents=True, exist_ok=True)
    chunks_png, metrics_png = out.with_name(out.name + "_chunks.png"), out.with_name(out.name + "_metrics.png")
    plots(results, models, chunks_png, metrics_png)
    payload = {"command": command, "note": args.note, "models": specs, "n_per_split": args.n, "steps": args.steps,
               "guidance": args.guidance, "results": results, "layers": layers, "detail_sweep": sweep,
               "seconds": time.perf_counter() - start}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1))

    lines = ["# FlashI2V leakage ablation at world scale", "", f"Command: `{command}`", "",
             f"{args.n} TI2V cases per split (scene seeds {CASE_SEED}+), {args.steps} Euler steps, JIT-CFG scale "
             f"{args.guidance} + renorm. PSNR in dB; speeds in px/frame; colour error in 0–255 units.", ""]
    if args.note:
        lines += [args.note, ""]
    for split in SPLITS:
        lines += [f"### {split}", "", "| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for name in models:
            agg = results[name][split]
            lines.append(f"| {name} | " + " | ".join(_fmt(agg[k], 2 if "psnr" in k or "error" in k else 3)
                                                     for k in METRICS) + " |")
        lines.append("")
    sys.path.insert(0, str(Path(__file__).parent))
    from flashi2v_probe import KEYS as LAYER_KEYS

    lines += ["### FlashI2V's own layers (the train split's condition images; definitions in flashi2v_probe.py)", "",
              "| model | " + " | ".join(LAYER_KEYS) + " |", "|---|" + "---|" * len(LAYER_KEYS)]
    lines += [f"| {name} | " + " | ".join(_fmt(layers[name].get(k)) for k in LAYER_KEYS) + " |"
              for name in models if layers[name]]
    lines += ["", "### Chunk-wise error growth (RMSE to the true clip, chunks 1→4)", "",
              "| model | " + " | ".join(SPLITS) + " |", "|---|" + "---|" * len(SPLITS)]
    for name in models:
        lines.append(f"| {name} | " + " | ".join(
            " → ".join(_fmt(v, 1) for v in results[name][s]["chunk_rmse"]) for s in SPLITS) + " |")
    lines += ["", "### Chunk-wise global colour error (chunks 1→4)", "",
              "| model | " + " | ".join(SPLITS) + " |", "|---|" + "---|" * len(SPLITS)]
    for name in models:
        lines.append(f"| {name} | " + " | ".join(
            " → ".join(_fmt(v, 1) for v in results[name][s]["chunk_color_error"]) for s in SPLITS) + " |")
    lines += ["", f"![chunks]({chunks_png.name})", "", f"![metrics]({metrics_png.name})", ""]
    lines += difference_lines(results, models, args.reference or models[0])
    if sweep:
        lines += [f"### Detail control ({args.detail_sweep}, train split)", "",
                  "| detail | first_frame_psnr | dynamic_degree | dynamic_degree_px | color_consistency |", "|---|---|---|---|---|"]
        for detail, agg in sweep.items():
            lines.append(f"| {detail} | {_fmt(agg['first_frame_psnr'], 2)} | {_fmt(agg['dynamic_degree'])} | "
                         f"{_fmt(agg['dynamic_degree_px'])} | {_fmt(agg['color_consistency'])} |")
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
