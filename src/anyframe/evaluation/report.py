"""Run a suite through models and the oracle; write ``report.json`` and ``report.md`` with plots.

    report = evaluate([load_model("truth"), load_model("runs/x/pipeline")], load_suite("smoke"), "reports/x")

One model: ``out/report.json`` = ``{"metrics": {key: mean}, "by_task": {task: {key: mean}},
"by_split": ..., "cases": [...]}`` and ``out/report.md``. Several: the same per model in
``out/<model>/`` and a side-by-side ``out/report.md`` + ``out/comparison.json``. On several processes
(``ranks=Ranks.from_env()``, :mod:`anyframe.evaluation.ranks`) each generates its share of the cases and rank 0
writes the same reports.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from anyframe.errors import AnyframeInputError
from anyframe.evaluation.harness import Conditioning, Model
from anyframe.evaluation.ranks import Ranks, merge_shares
from anyframe.io import atomic_path, filmstrip
from anyframe.world.prompt_scoring import PROMPT_KEYS, score_prompt
from anyframe.world.scoring import score_clip
from anyframe.world.suite import Case

# Keys on a 0..1 scale (higher is better); the others are reported in their own units.
UNIT_KEYS = ("presence", "color_binding", "count", "motion_direction", "spatial_relation", "event",
             "identity_persistence", "keyframe_ssim", "dynamic_degree", "motion_smoothness", "temporal_flicker",
             "mask_iou", "style", "edit_accuracy", "trajectory_monotone")
WORST_CASES = 4


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


def _aggregate(cases: list[dict], group: str | None = None) -> dict:
    if group is None:
        keys = sorted({k for c in cases for k in c["scores"]})
        return {k: _mean([c["scores"].get(k) for c in cases]) for k in keys}
    groups = defaultdict(list)
    for c in cases:
        groups[c[group]].append(c)
    return {name: _aggregate(members) for name, members in sorted(groups.items())}


def clip_score(clip, frames: np.ndarray, prompt: str) -> float:
    """The CLIP score of a clip: the cosine of each frame's and the prompt's embeddings (``clip``: a
    :class:`~anyframe.models.clip.ClipEmbedder`, e.g. the world CLIP), averaged over the frames — without the
    conventional ×100."""
    return float(clip.score(frames, [prompt] * len(frames)).mean())


def score_case(model: Model, case: Case, cond: Conditioning, against: str = "program",
               clip=None) -> tuple[dict, np.ndarray | None]:
    """Generate one case and score it: its report entry, and the generated clip (``None``: not attempted).
    ``clip``: also its CLIP score against the prompt (cases with a prompt that describes the clip: not edits)."""
    gen = model.generate(case, cond)
    entry = {"id": case.id, "task": case.task, "split": case.split, "seconds": round(gen.seconds, 3),
             "prompt": case.conditions.get("prompt", "")}
    if gen.frames is None:
        entry.update(scores={}, unsupported=gen.unsupported)
        return entry, None
    keys = list(case.score)
    if against == "prompt" and case.task not in ("edit", "unpaired"):
        scores = score_prompt(gen.frames, case.conditions["prompt"], [k for k in keys if k in PROMPT_KEYS])
    else:
        scores = score_clip(
            gen.frames, cond.scene, keys=keys, keyframes=cond.keyframes(case),
            masks=_masks(gen) if case.task == "masks" else None, edit_source=cond.source_scene,
        )
    entry["scores"] = {k: (None if v is None else float(v)) for k, v in scores.items()}
    prompt = case.conditions.get("prompt", "")
    if clip is not None and prompt.strip() and case.task != "edit":
        entry["scores"]["clip_score"] = clip_score(clip, gen.frames, prompt)
    return entry, gen.frames


def _masks(gen) -> np.ndarray | None:
    """Per-object masks ``[K, T, H, W]``, or a method's union mask ``[T, H, W]`` (JDM's ``masks`` extra)."""
    if gen.masks is not None:
        return gen.masks
    union = gen.extras.get("masks")
    return None if union is None else np.asarray(union, dtype=np.float32)


def summarize(model_name: str, results: list[dict], against: str = "program") -> dict:
    """The report of a model from its cases' entries (in case order: the means add up in that order)."""
    scored = [r for r in results if r["scores"]]
    return {
        "model": model_name,
        "scored_against": against,
        "metrics": _aggregate(scored),
        "by_task": _aggregate(scored, "task"),
        "by_split": _aggregate(scored, "split"),
        "unsupported": {r["id"]: r["unsupported"] for r in results if r.get("unsupported")},
        "cases": results,
    }


def _shown(results: list[dict]) -> set[str]:
    """The cases a report shows as filmstrips: the worst, and the first scored case of each task. Of a subsequence
    of a suite's cases (a rank's share) it is a superset of those the whole suite shows among them."""
    worst = sorted((r for r in results if r["scores"]), key=_case_quality)[:WORST_CASES]
    first = {}
    for r in results:
        if r["scores"]:
            first.setdefault(r["task"], r["id"])
    return {r["id"] for r in worst} | set(first.values())


def run_model(model: Model, cases: list[Case], conds: Mapping[str, Conditioning], strips: Path | None = None,
              against: str = "program", on_case: Callable[[str], None] | None = None,
              ranks: Ranks | None = None, clip=None) -> dict | None:
    """Generate and score every case; returns the report dict (and keeps worst-case filmstrips).

    ``against``: ``program`` scores each clip against the case's scene program (every key of the case);
    ``prompt`` against what its prompt alone states (:mod:`anyframe.world.prompt_scoring`: the case's keys
    among PROMPT_KEYS). Edits and unpaired cases, whose texts are an instruction and one object's action
    rather than a caption of the scene, are scored against the program either way. ``on_case(model name)`` is
    called after each case (a progress bar).

    ``ranks``: on several processes (:class:`~anyframe.evaluation.ranks.Ranks`), this one generates its share of
    the cases; rank 0 gathers them all, returns the report and writes the filmstrips; the others return ``None``."""

    if against not in ("program", "prompt"):
        raise AnyframeInputError(f"score against 'program' or 'prompt', not {against!r}")
    ranks = ranks or Ranks()
    results, clips = [], {}
    for case in ranks.share(cases):
        entry, frames = score_case(model, case, conds[case.id], against, clip)
        if frames is not None:
            clips[case.id] = frames
        if on_case is not None:
            on_case(model.name)
        results.append(entry)
    if strips is not None:  # only the clips a report may show travel to rank 0
        shown = _shown(results)
        clips = {key: clip for key, clip in clips.items() if key in shown}
    parts = ranks.gather((results, clips if strips is not None else {}))
    if parts is None:
        return None
    results = merge_shares([part[0] for part in parts])
    clips = {key: clip for part in parts for key, clip in part[1].items()}
    report = summarize(model.name, results, against)
    if strips is not None:
        report["worst"] = _write_worst(results, clips, conds, strips)
        report["examples"] = _write_examples(results, clips, conds, strips.parent / "examples")
    return report


def _write_examples(results: list[dict], clips: dict, conds: Mapping[str, Conditioning], folder: Path) -> list[dict]:
    """One filmstrip per task (its first scored case): the generated clip over the truth, with its prompt."""
    out, seen = [], set()
    for entry in results:
        if not entry["scores"] or entry["task"] in seen:
            continue
        seen.add(entry["task"])
        folder.mkdir(parents=True, exist_ok=True)
        strip = np.concatenate([filmstrip(clips[entry["id"]]), filmstrip(conds[entry["id"]].clip)], axis=0)
        path = folder / f"{_slug(entry['task'])}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(strip).save(tmp, format="PNG")
        out.append({"task": entry["task"], "id": entry["id"], "prompt": entry["prompt"], "filmstrip": path.name})
    return out


def _case_quality(entry: dict) -> float:
    """The mean of a case's unit scores (its defined ones: a NaN would leave the worst cases' order undefined)."""
    unit = [v for k, v in entry["scores"].items() if k in UNIT_KEYS and v is not None and not math.isnan(v)]
    return float(np.mean(unit)) if unit else 1.0


def _write_worst(results: list[dict], clips: dict, conds: Mapping[str, Conditioning], folder: Path) -> list[dict]:
    """Filmstrips of the lowest-scoring cases: the generated clip over the truth."""

    scored = sorted((r for r in results if r["scores"]), key=_case_quality)[:WORST_CASES]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for entry in scored:
        generated, truth = clips[entry["id"]], conds[entry["id"]].clip
        strip = np.concatenate([filmstrip(generated), filmstrip(truth)], axis=0)
        path = folder / f"{_slug(entry['id'])}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(strip).save(tmp, format="PNG")
        out.append({"id": entry["id"], "quality": round(_case_quality(entry), 4), "filmstrip": path.name})
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "model"


def _fmt(v) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def _plot_metrics(reports: list[dict], path: Path) -> None:
    import matplotlib  # (deferred: matplotlib loads only when a report is plotted)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in UNIT_KEYS if any(r["metrics"].get(k) is not None for r in reports)]
    fig, ax = plt.subplots(figsize=(max(6, len(keys) * 0.8), 3.6))
    width = 0.8 / max(1, len(reports))
    for i, r in enumerate(reports):
        values = [r["metrics"].get(k) or 0.0 for k in keys]
        ax.bar(np.arange(len(keys)) + i * width, values, width, label=r["model"])
    ax.set_xticks(np.arange(len(keys)) + width * (len(reports) - 1) / 2, keys, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _plot_tasks(report: dict, path: Path) -> None:
    import matplotlib  # (deferred: matplotlib loads only when a report is plotted)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["by_task"])
    keys = [k for k in UNIT_KEYS if any(report["by_task"][t].get(k) is not None for t in tasks)]
    grid = np.array([[report["by_task"][t].get(k) if report["by_task"][t].get(k) is not None else np.nan
                      for k in keys] for t in tasks], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6, len(keys) * 0.7), 0.5 * len(tasks) + 1.5))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# One line per metric: what it measures, its direction, its range (the full definitions: anyframe.world.scoring).
METRIC_DEFINITIONS = {
    "presence": ("each asked-for object is there, in its shape and its colour", "higher", "0–1"),
    "color_binding": ("the track with an object's shape carries that object's colour (≥ 2 objects)", "higher", "0–1"),
    "count": ("as many objects as asked for (substantial tracks against objects)", "higher", "0–1"),
    "motion_direction": ("each object moves the way it should (angle ≤ 22.5°, enough distance) or stays still",
                         "higher", "0–1"),
    "spatial_relation": ("the objects' left/right and above/below order matches the truth (≥ 2 objects)", "higher", "0–1"),
    "event": ("the scene's events (colour change, stop, appear, disappear) happen on time, and no others", "higher", "0–1"),
    "identity_persistence": ("each object keeps its colour on its track through the clip", "higher", "0–1"),
    "keyframe_psnr": ("pixel fidelity at the given keyframes (capped at 100)", "higher", "dB, 0–100"),
    "keyframe_ssim": ("structural similarity at the given keyframes", "higher", "0–1"),
    "dynamic_degree": ("how much of the true motion the clip shows (0: frozen)", "higher", "0–1"),
    "motion_smoothness": ("tracks move along smooth (piecewise linear) paths", "higher", "0–1"),
    "temporal_flicker": ("stillness of static regions between frames, beyond the true render's own (VBench's)", "higher", "0–1"),
    "mask_iou": ("intersection over union of generated and true object masks (per object, matched; a model that "
                 "returns one mask for the prompt's objects, as JDM does: against the union of the objects)", "higher",
                 "0–1"),
    "style": ("the clip is drawn in the scene's style (flat, outline, striped, ...)", "higher", "0 or 1"),
    "edit_accuracy": ("the edit asked for is made, and nothing else changes", "higher", "0–1"),
    "trajectory_monotone": ("objects never step back along their direction (interpolation)", "higher", "0–1"),
    "clip_score": ("cosine of the frames' and the prompt's CLIP embeddings, mean over frames (`eval --clip`; the "
                   "CLIP score without ×100)", "higher", "−1–1"),
}


def _definitions(keys) -> list[str]:
    rows = [(k, *METRIC_DEFINITIONS[k]) for k in keys if k in METRIC_DEFINITIONS]
    if not rows:
        return []
    return ["", "## What the metrics mean", "", "| metric | measures | better | range |", "|---|---|---|---|",
            *[f"| {k} | {what} | {better} | {span} |" for k, what, better, span in rows]]


def _calibration(report: dict) -> list[str]:
    rows = report.get("calibration")
    if not rows:
        return []
    keys = [k for k in report["metrics"] if any(r["metrics"].get(k) is not None for r in rows)]
    lines = ["", "## Calibration: the same cases, true clips and random clips", "",
             "The truth is the ceiling the oracle allows, random noise its floor.", "",
             "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys),
             f"| **{report['model']}** | " + " | ".join(_fmt(report["metrics"].get(k)) for k in keys) + " |"]
    lines += [f"| {r['model']} | " + " | ".join(_fmt(r["metrics"].get(k)) for k in keys) + " |" for r in rows]
    return lines


def _markdown(report: dict, title: str) -> str:
    lines = [f"# {title}", "", f"Model: `{report['model']}`, {len(report['cases'])} cases, scored against the "
             f"{report.get('scored_against', 'program')}.", "",
             "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in report["metrics"].items()]
    lines += _calibration(report)
    lines += _definitions(report["metrics"])
    lines += ["", "![metrics](metrics.png)", "", "## By task", "", "![tasks](tasks.png)", ""]
    tasks = list(report["by_task"])
    keys = list(report["metrics"])
    lines += ["| task | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += [f"| {t} | " + " | ".join(_fmt(report["by_task"][t].get(k)) for k in keys) + " |" for t in tasks]
    if len(report["by_split"]) > 1:
        lines += ["", "## By split", "", "| split | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        lines += [f"| {s} | " + " | ".join(_fmt(report["by_split"][s].get(k)) for k in keys) + " |"
                  for s in report["by_split"]]
    if report["unsupported"]:
        lines += ["", f"{len(report['unsupported'])} cases were not attempted (unsupported by the model), e.g. "
                  f"{next(iter(report['unsupported'].values()))}."]
    if report.get("examples"):
        lines += ["", "## One case per task (generated above, truth below)", ""]
        for e in report["examples"]:
            lines += [f"- {e['task']} (`{e['id']}`): \"{e['prompt']}\"", "", f"  ![{e['task']}](examples/{e['filmstrip']})", ""]
    if report.get("worst"):
        lines += ["", "## Worst cases (generated above, truth below)", ""]
        for w in report["worst"]:
            lines += [f"- `{w['id']}` (mean unit score {w['quality']})", "", f"  ![{w['id']}](worst/{w['filmstrip']})", ""]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_report(report: dict, folder: Path, title: str = "anyframe evaluation") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "report.json", json.dumps(report, indent=1))
    _plot_metrics([report], folder / "metrics.png")
    _plot_tasks(report, folder / "tasks.png")
    _write(folder / "report.md", _markdown(report, title))


class _Conditions(dict):
    """``{case id: Conditioning}``, each rendered when first asked for (a rank renders its own share, and rank 0
    the few cases whose filmstrips it shows)."""

    def __init__(self, cases: list[Case]):
        super().__init__()
        self.cases = {case.id: case for case in cases}

    def __missing__(self, key: str) -> Conditioning:
        self[key] = Conditioning.of(self.cases[key])
        return self[key]


def evaluate(models: list[Model], cases: list[Case], out_dir: str | Path, title: str = "anyframe evaluation",
             against: str = "program", on_case: Callable[[str], None] | None = None,
             calibrate: bool = True, ranks: Ranks | None = None, clip=None) -> list[dict]:
    """Run every model on every case; write the reports; return the report dicts (``against``, ``on_case``,
    ``ranks``: see :func:`run_model`). ``calibrate``: also score the true clips and random clips of the same cases
    (each report's calibration rows: the oracle's ceiling and floor), unless they are among the models.

    On several processes (``ranks``), each generates its share of the cases; rank 0 writes the reports and returns
    them, the others write nothing and return ``[]``. ``clip``: a CLIP embedder; every case with a prompt also
    gets its ``clip_score``."""
    ranks = ranks or Ranks()
    out = Path(out_dir)
    conds = _Conditions(cases)
    calibration = []
    if calibrate:  # the oracle's ceiling and floor on these cases, unless they are among the models
        from anyframe.evaluation.harness import RandomModel, TruthModel

        names = {m.name for m in models}
        calibration = [run_model(m, cases, conds, None, against, ranks=ranks, clip=clip) for m in (TruthModel(), RandomModel())
                       if m.name not in names]
    runs = [(model, out if len(models) == 1 else out / _slug(model.name)) for model in models]
    reports = []
    for model, folder in runs:
        report = run_model(model, cases, conds, folder / "worst", against, on_case, ranks=ranks, clip=clip)
        if report is None:  # (not rank 0)
            continue
        report["calibration"] = [{"model": c["model"], "metrics": c["metrics"]} for c in calibration]
        write_report(report, folder, title if len(models) == 1 else f"{title}: {model.name}")
        reports.append(report)
    if len(models) == 1 or not ranks.is_main:
        return reports
    keys = sorted({k for r in reports for k in r["metrics"]})
    comparison = {"models": [r["model"] for r in reports], "metrics": {k: [r["metrics"].get(k) for r in reports] for k in keys}}
    _write(out / "comparison.json", json.dumps(comparison, indent=1))
    _plot_metrics(reports, out / "metrics.png")
    lines = [f"# {title}: comparison", "", f"{len(cases)} cases.", "", "![metrics](metrics.png)", "",
             "| metric | " + " | ".join(f"`{r['model']}`" for r in reports) + " |", "|---|" + "---|" * len(reports)]
    lines += [f"| {k} | " + " | ".join(_fmt(v) for v in comparison["metrics"][k]) + " |" for k in keys]
    lines += ["", "Per model: " + ", ".join(f"[{r['model']}]({_slug(r['model'])}/report.md)" for r in reports)]
    _write(out / "report.md", "\n".join(lines) + "\n")
    return reports
