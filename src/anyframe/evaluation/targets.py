"""The default world model's quality targets (issue 5): one list, read by the model card
(``scripts/ship_world_model.py``), the quality curve and report comparisons (``benchmarks/``)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import bootstrap

# (task, measure, report key, target): a standard-suite report's ``by_task[task][key]`` against ``target``
TARGETS = [
    ("ti2v", "keyframe PSNR (dB)", "keyframe_psnr", 30), ("ti2v", "motion direction", "motion_direction", 0.9),
    ("ti2v", "identity persistence", "identity_persistence", 0.95), ("t2v", "presence", "presence", 0.85),
    ("t2v", "colour binding (≥ 2 objects)", "color_binding", 0.8), ("t2v", "motion direction", "motion_direction", 0.8),
    ("interpolation", "endpoint PSNR (dB)", "keyframe_psnr", 30),
    ("interpolation", "trajectory monotone between the endpoints", "trajectory_monotone", 0.9),
    ("prediction", "motion continued", "motion_direction", 0.9),
    ("keyframes", "PSNR at the keyframe (dB)", "keyframe_psnr", 30),
    ("keyframes", "motion consistent on both sides", "motion_direction", 0.85),
]


PSNR_NOISE = 1.0  # dB: a PSNR difference below this is no difference
LEVEL = 0.95  # the confidence level of the bootstrap intervals
RESAMPLES = 2000


def task_scores(report: dict, task: str, key: str) -> dict[str, float]:
    """Case id → score ``key`` for each of ``task``'s cases that has one: what ``by_task[task][key]`` averages."""
    out = {}
    for case in report.get("cases", []):
        value = case["scores"].get(key) if case["task"] == task else None
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[case["id"]] = float(value)
    return out


def _interval(data: tuple, statistic, seed: int) -> tuple[float, float]:
    # scipy's percentile bootstrap (BCa is undefined when every resample agrees, e.g. all cases scoring 1)
    result = bootstrap(data, statistic, n_resamples=RESAMPLES, confidence_level=LEVEL, method="percentile",
                       vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def mean_interval(scores: dict[str, float] | list[float], seed: int = 0) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of a task's mean score over its cases (``None`` under two cases): how far
    the figure could move on another draw of cases from the same world."""
    values = np.asarray(list(scores.values()) if isinstance(scores, dict) else scores, dtype=float)
    if len(values) < 2:
        return None
    return _interval((values,), lambda x, axis=-1: np.mean(x, axis=axis), seed)


def difference_interval(a: dict[str, float], b: dict[str, float], seed: int = 0) -> dict | None:
    """The 95 % bootstrap interval of ``mean(b) − mean(a)``. Paired over the cases both scored when the two
    share case ids (one suite, two models or settings: each case's difference is resampled, so what the
    cases have in common cancels); otherwise the two as independent draws (two suites)."""
    shared = sorted(set(a) & set(b))
    if shared:
        if len(shared) < 2:
            return None
        d = np.array([b[i] - a[i] for i in shared])
        low, high = _interval((d,), lambda x, axis=-1: np.mean(x, axis=axis), seed)
        return {"paired": True, "cases": len(shared), "low": low, "high": high}
    if len(a) < 2 or len(b) < 2:
        return None
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    low, high = _interval((x, y), lambda x, y, axis=-1: np.mean(y, axis=axis) - np.mean(x, axis=axis), seed)
    return {"paired": False, "cases": len(x) + len(y), "low": low, "high": high}


def excludes_zero(interval: dict | None) -> bool:
    """Whether a :func:`difference_interval` tells the two apart at 95 %."""
    return interval is not None and (interval["low"] > 0 or interval["high"] < 0)


def difference_digits(key: str) -> int:
    """Decimals to show a difference of ``key`` with: 2 for dB and error scales, 4 for ``temporal_flicker``
    (it sits near 0.99, so its real differences are in the fourth decimal), else 3."""
    if "psnr" in key or "error" in key:
        return 2
    return 4 if key == "temporal_flicker" else 3


def format_value(value: float | None) -> str:
    """A target's value as the reports print it: three decimals, one for PSNR-sized figures, ``—`` for none."""
    return "—" if value is None else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def format_interval(interval: tuple[float, float] | None) -> str:
    """A value's 95 % interval as every table prints it, ``[0.404, 0.605]`` (``—`` for none)."""
    return "—" if interval is None else f"[{format_value(interval[0])}, {format_value(interval[1])}]"


def format_difference(delta: float | None, interval: dict | None, digits: int = 3, bold: bool = True) -> str:
    """A difference with its 95 % interval, ``+0.075 [+0.000, +0.148]``; in bold (Markdown) where the interval
    excludes zero, unless ``bold`` is off."""
    if delta is None:
        return "—"
    text = f"{delta:+.{digits}f}" + ("" if interval is None else
                                      f" [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]")
    return f"**{text}**" if bold and excludes_zero(interval) else text


def paired_differences(base: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Per key of two settings scored on the same cases (key → case id → score): the mean difference
    ``other − base`` over the cases both scored, with its paired 95 % interval (``None`` under two cases) —
    for ablations, sweeps and paradigm comparisons, where the same cases are sampled under each setting."""
    out = {}
    for key, a in base.items():
        b = other.get(key, {})
        shared = sorted(set(a) & set(b))
        if shared:  # (difference_interval pairs over the same shared cases)
            out[key] = {"delta": float(np.mean([b[i] - a[i] for i in shared])), "interval": difference_interval(a, b)}
    return out


def case_scores(report: dict, keys) -> dict[str, dict[str, dict[str, float]]]:
    """Task → key → case id → score, for each of ``keys`` a report's cases have: the per-case record an
    ablation keeps so that its differences can be given intervals (:func:`paired_differences`)."""
    tasks = sorted({c["task"] for c in report.get("cases", [])})
    out = {task: {key: task_scores(report, task, key) for key in keys} for task in tasks}
    return {task: {k: v for k, v in by_key.items() if v} for task, by_key in out.items()}


def compare_targets(reports: dict[str, dict], noise: float) -> list[dict]:
    """One row per target with each report's value (``None`` where a report lacks the task or key) and its
    95 % interval, and each later report's difference from the first with its 95 % interval
    (:func:`difference_interval`) and a verdict: ``better`` / ``worse`` when the interval excludes zero
    and the difference is beyond the noise floor of storing the weights (``noise`` for rates,
    :data:`PSNR_NOISE` for PSNR), else ``same``. (Reports without per-case scores: the floor alone.)"""
    labels = list(reports)
    rows = []
    for task, measure, key, target in TARGETS:
        values = {label: reports[label].get("by_task", {}).get(task, {}).get(key) for label in labels}
        scores = {label: task_scores(reports[label], task, key) for label in labels}
        intervals = {label: mean_interval(scores[label]) for label in labels}
        floor = PSNR_NOISE if key == "keyframe_psnr" else noise
        base, versus = values[labels[0]], {}
        for label in labels[1:]:
            if values[label] is None or base is None:
                versus[label] = None
                continue
            d = values[label] - base
            interval = difference_interval(scores[labels[0]], scores[label])
            clear = interval is None or excludes_zero(interval)
            verdict = "better" if d > floor and clear else "worse" if d < -floor and clear else "same"
            versus[label] = {"delta": d, "interval": interval, "verdict": verdict}
        rows.append({"task": task, "measure": measure, "key": key, "target": target, "values": values,
                     "intervals": intervals, "versus_first": versus})
    return rows


def same_case_scores(a: dict, b: dict) -> dict[str, tuple[int, int]]:
    """Per task of two reports of the same suite: (cases whose every score is identical, cases in both) —
    where two sampling settings coincide case for case (e.g. ``renorm auto`` and ``full`` without keyframes)."""
    theirs = {c["id"]: c for c in b.get("cases", [])}
    out: dict[str, list[int]] = {}
    for case in a.get("cases", []):
        other = theirs.get(case["id"])
        if other is None or not case["scores"]:  # not in b, or not scored (a task the model cannot do)
            continue
        counts = out.setdefault(case["task"], [0, 0])
        counts[0] += case["scores"] == other["scores"]
        counts[1] += 1
    return {task: (same, total) for task, (same, total) in out.items()}
