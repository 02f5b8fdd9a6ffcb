"""The default world model's quality targets (issue 5): one list, read by the model card
(``scripts/ship_world_model.py``), the quality curve and report comparisons (``benchmarks/``)."""

from __future__ import annotations

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


def compare_targets(reports: dict[str, dict], noise: float) -> list[dict]:
    """One row per target with each report's value (``None`` where a report lacks the task or key), and
    each later report's difference from the first with a verdict: ``better`` / ``worse`` beyond the
    noise floor (``noise`` for rates, :data:`PSNR_NOISE` for PSNR), else ``same``."""
    labels = list(reports)
    rows = []
    for task, measure, key, target in TARGETS:
        values = {label: reports[label].get("by_task", {}).get(task, {}).get(key) for label in labels}
        floor = PSNR_NOISE if key == "keyframe_psnr" else noise
        base, versus = values[labels[0]], {}
        for label in labels[1:]:
            if values[label] is None or base is None:
                versus[label] = None
                continue
            d = values[label] - base
            versus[label] = {"delta": d, "verdict": "better" if d > floor else "worse" if d < -floor else "same"}
        rows.append({"task": task, "measure": measure, "key": key, "target": target, "values": values,
                     "versus_first": versus})
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
