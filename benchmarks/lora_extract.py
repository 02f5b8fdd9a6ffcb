"""How much of a full fine-tune an extracted LoRA keeps (``anyframe model slim --lora-rank``), by rank.

    python benchmarks/lora_extract.py --model runs/world-s-reasondiff-control/pipeline \\
        --base checkpoints/anyframe-world-s --rank 16 --rank 64 --rank 128

For each rank the fine-tune is written as a LoRA folder on the base's transformer (a temporary folder) and measured:

- *folder*: its size on disk (MB; the whole folder, bf16);
- *kept*: the share of the adapted layers' difference (squared Frobenius norm) the rank keeps;
- *distance*: the relative distance ‖a − b‖ / ‖b‖ of the latents the folder samples from the fine-tune's, on
  ``--n`` keyframe clips of world scenes (their caption, the true frame 8 as a keyframe, ``--steps`` Euler steps,
  the same seeds); the base model's distance is given for scale.

Writes ``benchmarks/results/<--name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from anyframe.pipelines import Keyframe, load_pipeline
from anyframe.pipelines.base_folder import write_with_base
from anyframe.world import render, scene_for_seed
from anyframe.world.captions import caption

RESULTS = Path(__file__).parent / "results"


def sample(pipe, n: int, steps: int) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    out = []
    for seed in range(n):
        scene = scene_for_seed(seed, "train", size=32, frames=16)
        out.append(pipe(caption(scene), keyframes=[Keyframe(render(scene).frames[8], 8)], num_frames=16, height=32,
                        width=32, num_inference_steps=steps, seed=seed, output_type="latent").frames)
    return torch.cat(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the full fine-tune (a pipeline folder)")
    ap.add_argument("--base", required=True, help="the model it was fine-tuned from")
    ap.add_argument("--rank", type=int, action="append", required=True, help="repeat")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--name", default="lora_extract")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    tuned = load_pipeline(args.model, "float32")
    reference = sample(tuned, args.n, args.steps)

    def distance(latents):
        return float((latents - reference).norm() / reference.norm())

    rows = [{"rank": "base", "distance": distance(sample(load_pipeline(args.base, "float32"), args.n, args.steps))}]
    with tempfile.TemporaryDirectory() as tmp:
        for rank in args.rank:
            folder, lora = write_with_base(tuned, Path(tmp) / f"r{rank}", args.base, lora_rank=rank)
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
            rows.append({"rank": rank, "folder_mb": round(size, 1), "kept": lora.kept,
                         "distance": distance(sample(load_pipeline(folder, "float32"), args.n, args.steps))})
            print(rows[-1], flush=True)
    command = "python benchmarks/lora_extract.py " + shlex.join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    lines = ["# An extracted LoRA against its full fine-tune", "", f"Command: `{command}`", "",
             "Definitions: the script's docstring.", "", "| rank | folder (MB) | kept | distance from the fine-tune |",
             "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['rank']} | {r.get('folder_mb', '—')} | "
                     f"{format(r['kept'], '.1%') if 'kept' in r else '—'} | {r['distance']:.3f} |")
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
