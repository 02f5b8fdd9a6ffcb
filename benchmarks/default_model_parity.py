"""Does a refactor change what the default model generates? Fixed seeds, five conditioning cases, float32.

    python benchmarks/default_model_parity.py --save /tmp/before.npz            # on the old code
    python benchmarks/default_model_parity.py --compare /tmp/before.npz          # on the new code, same machine

Cases (the shipped model, 16 frames, 32×32, 25 steps, its default guidance): T2V; TI2V (a keyframe at
frame 0); one keyframe at frame 8; keyframes at 0 and 8; interpolation (first and last frame). The keyframes
are frames of a world clip rendered from a fixed seed, so nothing outside the repository is needed.

``--compare`` prints, per case, whether the uint8 frames and the float32 latents are identical, and the
largest differences; it exits 1 if any case differs. The same cases at a tolerance are
``tests/test_default_model_reference.py`` (CI machines differ from this one in their kernels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "checkpoints" / "anyframe-world-s"
WORLD_SEED = 7
PROMPT = "On a black background, a large red circle moves right. A medium blue square moves up."
CASES = {  # name: keyframe frame indices (of the world clip, placed at the same frames)
    "t2v": (),
    "ti2v": (0,),
    "keyframe_8": (8,),
    "keyframes_0_8": (0, 8),
    "interpolation": (0, 15),
}


def world_clip():
    from anyframe.world import caption, render, scene_for_seed

    scene = scene_for_seed(WORLD_SEED)
    return render(scene).frames, caption(scene)


def generate_all(model: Path = MODEL, seed: int = 0, steps: int | None = None) -> dict[str, np.ndarray]:
    """``{case/frames: uint8 [T, H, W, 3], case/latents: float32 [C, T, h, w]}`` for every case."""
    import torch

    try:
        from anyframe.pipelines import Keyframe, load_pipeline
    except ImportError:  # the code before the pipelines package (a before/after comparison)
        from anyframe.pipeline import Keyframe, load_pipeline
    from anyframe.io import to_uint8

    torch.set_num_threads(max(1, torch.get_num_threads()))
    pipe = load_pipeline(model, dtype="float32")
    pipe.set_progress_bar_config(disable=True)
    frames, prompt = world_clip()
    out = {}
    for name, indices in CASES.items():
        keyframes = [Keyframe(frames[i], i) for i in indices]
        result = pipe(prompt if indices else PROMPT, keyframes=keyframes, seed=seed, num_inference_steps=steps,
                      return_latents=True)
        out[f"{name}/frames"] = to_uint8(result.frames[0])
        out[f"{name}/latents"] = result.latents[0].float().cpu().numpy()
    return out


def compare(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for name in CASES:
        fb, fa = before[f"{name}/frames"].astype(int), after[f"{name}/frames"].astype(int)
        lb, la = before[f"{name}/latents"], after[f"{name}/latents"]
        rows.append({
            "case": name,
            "frames_identical": bool(np.array_equal(fb, fa)),
            "latents_identical": bool(np.array_equal(lb, la)),
            "max_frame_diff": int(np.abs(fb - fa).max()),
            "max_latent_diff": float(np.abs(lb - la).max()),
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's (25)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write the outputs to this .npz")
    group.add_argument("--compare", type=Path, help="compare with outputs saved by --save")
    args = parser.parse_args()
    outputs = generate_all(args.model, args.seed, args.steps)
    if args.save:
        np.savez_compressed(args.save, **outputs)
        print(f"saved {len(CASES)} cases to {args.save}")
        return 0
    rows = compare(dict(np.load(args.compare)), outputs)
    print("| case | frames identical | latents identical | max |Δ| uint8 | max |Δ| latent |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['frames_identical']} | {r['latents_identical']} | {r['max_frame_diff']} | "
              f"{r['max_latent_diff']:.3g} |")
    return 0 if all(r["frames_identical"] and r["latents_identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
