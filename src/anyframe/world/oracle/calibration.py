"""The evidence behind the oracle's calibrated constants (:mod:`anyframe.world.oracle`), recomputed from
renders of sampled scenes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from anyframe.world import vocab
from anyframe.world.oracle.detect import detect
from anyframe.world.oracle.style import style_statistics
from anyframe.world.render import render
from anyframe.world.sampling import scene_for_seed


def calibration_report(
    seeds: Sequence[int] = range(40), sizes: Sequence[int] = (32, 64), split: str = "train"
) -> dict:
    """Recompute what the oracle's calibrated constants rest on, from renders of ``split`` scenes (each
    seed in every style, at every size). Returns:

    - ``shape_accuracy[style][size]``: shape accuracy on *clean* objects (visible, no other object within
      1.25 (r_a + r_b) + 1 px, fully inside by 1.25 r) — the claim in the package docstring;
    - ``residual_clean`` / ``residual_merged``: percentiles (5, 50, 95, 99) of the best shape residual of
      clean objects and of blobs covering two objects of one colour — FIT_RESIDUAL sits at the clean
      95th percentile, FIT_SCALE below the merged median;
    - ``temperature_loglik``: the mean log posterior of the true shape over clean objects for a grid of
      temperatures. Clean objects are all classified right, so it keeps rising as the temperature falls;
      SHAPE_TEMPERATURE = 0.02 keeps it at ≈ −0.03 (a mean posterior ≈ 0.97 for the true shape) while
      look-alikes a few pixels wide (residuals differing by less than ≈ 0.02) keep a split posterior
      and a low confidence;
    - ``style_statistics[style]``: (min, max) of each :func:`style_statistics` value — the thresholds of
      :func:`classify_style` sit between the ranges.

    The oracle's constants were set from ``calibration_report(range(40))`` (and spot checks on other
    seeds); it takes about a minute.
    """
    shape_ok: dict = {}
    clean_res, merged_res, residuals, truths = [], [], [], []
    stats: dict[str, list[dict]] = {s: [] for s in vocab.STYLES}
    for size in sizes:
        for style in vocab.STYLES:
            hits = []
            for seed in seeds:
                scene = replace(scene_for_seed(seed, split, size=size), style=style)
                rendering = render(scene)
                traj = rendering.trajectory
                dets, pix = detect(rendering.frames, return_pixels=True)
                if size == sizes[0]:
                    stats[style].append(style_statistics(rendering.frames, dets, pix))
                reach = 1.25 * traj.radius
                inside = (traj.x - reach >= 0) & (traj.x + reach <= size) & (traj.y - reach >= 0)
                inside &= traj.y + reach <= size
                for t in range(scene.frames):
                    for d in dets[t]:
                        masks_t = rendering.masks[:, t]
                        over = [i for i in range(len(scene.objects)) if (masks_t[i][d.mask] > 0.5).sum() >= 3]
                        if len(over) >= 2 and all(traj.color[i][t] == d.color for i in over):
                            merged_res.append(float(d.residuals.min()))
                    for i, obj in enumerate(scene.objects):
                        apart = all(
                            not traj.visible[j, t]
                            or math.hypot(traj.x[i, t] - traj.x[j, t], traj.y[i, t] - traj.y[j, t])
                            > reach[i, t] + reach[j, t] + 1
                            for j in range(len(scene.objects)) if j != i
                        )  # fmt: skip
                        if not (traj.visible[i, t] and inside[i, t] and apart):
                            continue
                        x, y, r = traj.x[i, t], traj.y[i, t], traj.radius[i, t]
                        near = [d for d in dets[t] if math.dist(d.centroid, (x, y)) < 0.7 * r]
                        if not near:
                            hits.append(False)
                            continue
                        d = near[0]
                        hits.append(d.shape == obj.shape)
                        clean_res.append(float(d.residuals.min()))
                        residuals.append(d.residuals)
                        truths.append(vocab.SHAPES.index(obj.shape))
            shape_ok.setdefault(style, {})[size] = float(np.mean(hits)) if hits else float("nan")
    res = np.array(residuals)
    loglik = {}
    for temp in (0.005, 0.01, 0.02, 0.03, 0.05, 0.08):
        z = -(res - res.min(axis=1, keepdims=True)) / temp
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loglik[temp] = round(float(logp[np.arange(len(truths)), truths].mean()), 4)
    return {
        "shape_accuracy": shape_ok,
        "residual_clean": np.percentile(clean_res, [5, 50, 95, 99]).round(3).tolist(),
        "residual_merged": np.percentile(merged_res, [5, 50, 95, 99]).round(3).tolist() if merged_res else [],
        "temperature_loglik": loglik,
        "style_statistics": {
            style: {key: (min(v[key] for v in vals), max(v[key] for v in vals)) for key in vals[0]}
            for style, vals in stats.items() if vals
        },
    }
