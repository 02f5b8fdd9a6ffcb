"""What the loss_weighting method's ``object_weight`` (formerly ``flow.object_weight``) does to the loss's attention: the share of the latent area the objects cover, and
the share of the loss weight they get, over world training clips (the recipe's own data and its masks).

    python benchmarks/object_weight_share.py [--weights 0 4] [--clips 200] [--seed 1]

An element's weight is ``1 + w × coverage`` (``anyframe.flow.path.object_loss_weights``); the objects' share is
``Σ weight × coverage / Σ weight``. ``--seed`` is the recipe's seed (``configs/world-s-refiner.yaml``: 1), which
picks its clips. Writes ``benchmarks/results/object_weight_share.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 4.0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latent", type=int, default=8, help="latent grid side (32 px / 4 for the S autoencoder)")
    args = parser.parse_args()

    from anyframe.data.world import WorldDataset
    from anyframe.flow.path import object_loss_weights

    data = WorldDataset(num_clips=args.clips, size=32, frames=16, seed=args.seed)
    masks = [data[i].masks for i in range(args.clips)]
    shape = (len(masks), 4, 16, args.latent, args.latent)
    coverage = object_loss_weights(masks, shape, 1.0) - 1  # [B, 1, T, h, w]
    rows = []
    for w in args.weights:
        weight = 1 + w * coverage
        rows.append({"object_weight": w, "area_share": float(coverage.mean()),
                     "weight_share": float((weight * coverage).sum() / weight.sum())})
    command = (f"python benchmarks/object_weight_share.py --weights {' '.join(f'{w:g}' for w in args.weights)} "
               f"--clips {args.clips} --seed {args.seed}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "object_weight_share.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    lines = ["# The objects' share of the loss under flow.object_weight", "", f"Command: `{command}`", "",
             f"{args.clips} world training clips (seed {args.seed}), 16 frames, masks area-pooled to the "
             f"{args.latent}×{args.latent} latent grid.", "",
             "| object_weight | objects' share of the latent area | objects' share of the loss weight |", "|---|---|---|"]
    lines += [f"| {r['object_weight']:g} | {r['area_share']:.1%} | {r['weight_share']:.1%} |" for r in rows]
    (RESULTS / "object_weight_share.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
