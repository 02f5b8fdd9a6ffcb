"""Parity with diffusers' Wan pipelines: the same weights, prompt, seed and scheduler through diffusers'
``WanPipeline`` / ``WanImageToVideoPipeline`` (also with ``last_image``: FLF2V) and through anyframe's pipeline
loaded from the same diffusers folder, with Wan's guidance (text CFG 5.0, no renormalisation).

    python benchmarks/wan_parity.py

Tiny random Wan components built in code (``anyframe.models.wan.tiny_wan_components``: diffusers' test sizes),
9 frames of 32×32, 4 steps (image-conditioned: 3). Reports max |Δ| of the final latents (and of the decoded
frames for T2V). ``tests/models/test_wan.py`` asserts the same cases within 1e-4. Writes
``benchmarks/results/wan_parity.{json,md}``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from PIL import Image

from anyframe.models.wan import tiny_wan_components
from anyframe.pipelines import AnyFramePipeline, Keyframe

RESULTS = Path(__file__).parent / "results"
PROMPT = "a red circle moves left"
SIZE = dict(num_frames=9, height=32, width=32, max_sequence_length=16)


def pipelines(kind: str, folder: Path, scheduler=None):
    components = tiny_wan_components(kind)
    if scheduler is not None:
        components["scheduler"] = scheduler
    ours = components["transformer"]
    components["transformer"] = WanTransformer3DModel(**{k: v for k, v in ours.config.items() if not k.startswith("_")})
    components["transformer"].load_state_dict(ours.state_dict())
    reference = (WanPipeline if kind == "t2v" else WanImageToVideoPipeline)(**components)
    reference.save_pretrained(folder)
    anyframe = AnyFramePipeline.from_pretrained(folder)
    for pipe in (reference, anyframe):
        pipe.set_progress_bar_config(disable=True)
    return reference, anyframe


def image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def max_diff(a, b) -> float:
    return float((torch.as_tensor(np.asarray(a)) - torch.as_tensor(np.asarray(b))).abs().max())


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    wan = dict(guidance_scale=5.0)
    ours_guidance = dict(guidance_mode="cfg", renorm=None)
    rows = []
    for sampler, scheduler in (("UniPC (shift 3)", None), ("Euler (shift 7)", FlowMatchEulerDiscreteScheduler(shift=7.0))):
        reference, anyframe = pipelines("t2v", tmp / f"t2v-{len(rows)}", scheduler)
        for output in ("latent", "np"):
            want = reference(PROMPT, negative_prompt="", generator=torch.Generator().manual_seed(3), output_type=output,
                             num_inference_steps=4, **wan, **SIZE).frames
            got = anyframe(PROMPT, seed=3, output_type=output, num_inference_steps=4, **wan, **ours_guidance, **SIZE).frames
            rows.append({"pipeline": "WanPipeline (T2V)", "sampler": sampler,
                         "compared": "latents" if output == "latent" else "frames", "max_abs_diff": max_diff(want, got)})
    for kind, name in (("i2v", "WanImageToVideoPipeline (I2V)"), ("flf2v", "WanImageToVideoPipeline + last_image (FLF2V)")):
        reference, anyframe = pipelines(kind, tmp / kind)
        first, last = image(0), image(1)
        extra = {"last_image": last} if kind == "flf2v" else {}
        keyframes = [Keyframe(first, 0)] + ([Keyframe(last, -1)] if kind == "flf2v" else [])
        want = reference(image=first, prompt=PROMPT, negative_prompt="", generator=torch.Generator().manual_seed(1),
                         output_type="latent", num_inference_steps=3, **extra, **wan, **SIZE).frames
        got = anyframe(PROMPT, keyframes=keyframes, seed=1, output_type="latent", num_inference_steps=3, **wan,
                       **ours_guidance, **SIZE).frames
        rows.append({"pipeline": name, "sampler": "UniPC (shift 3)", "compared": "latents", "max_abs_diff": max_diff(want, got)})

    command = "python " + " ".join(["benchmarks/wan_parity.py", *sys.argv[1:]])
    RESULTS.mkdir(exist_ok=True)
    record = {"command": command, "torch": torch.__version__, "rows": rows}
    (RESULTS / "wan_parity.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# Parity with diffusers' Wan pipelines", "",
             f"`{command}` — torch {torch.__version__}, CPU, float32; tiny random Wan (diffusers' test sizes), "
             "9×32×32, CFG 5.0; the tests require ≤ 1e-4.", "",
             "| diffusers pipeline | scheduler | compared | max abs difference |", "|---|---|---|---|",
             *(f"| {r['pipeline']} | {r['sampler']} | {r['compared']} | {r['max_abs_diff']:.1e} |" for r in rows)]
    (RESULTS / "wan_parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
