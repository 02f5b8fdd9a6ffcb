"""Wan2.1 text-to-video speed: diffusers' ``WanPipeline`` and anyframe's pipeline, same weights, same run.

    python benchmarks/wan_speed.py                      # GPU: the Wan2.1-1.3B config, 480×832, 81 frames, 50 steps, bf16
    python benchmarks/wan_speed.py --size tiny --device cpu --frames 9 --height 32 --width 32 --steps 3 --dtype float32 \
        --out /tmp/wan_speed            # a CPU smoke run of the script itself (not a result)

Both pipelines get the *same* randomly initialised transformer (speed does not depend on the weights), the
same VAE (Wan2.1's architecture, random, float32 as Wan recommends), the same UniPC scheduler (flow shift
3.0) and CFG 5.0 — anyframe with ``guidance_mode="cfg", renorm=None``, i.e. Wan's own guidance. The text
encoder is a one-layer UMT5 of Wan's width (4096): UMT5-XXL's cost (once per video, well under a step) is
left out of both.

Measured per pipeline, alternating the two, ``--repeats`` times after one warm-up video each:
seconds per denoising step (from step-end callbacks; median over steps and repeats), seconds per video
(prompt to decoded frames) and peak GPU memory (``torch.cuda.max_memory_allocated``). The outputs
are compared as latents (max |Δ|; in bf16 the two differ by rounding only, since anyframe batches the two
CFG branches into one forward). Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/wan_speed``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from anyframe.models.autoencoder import decode_video

RESULTS = Path(__file__).parent / "results"
PROMPT = "A red fox runs across a snowy field at sunrise, cinematic lighting."


def build(size: str, dtype: torch.dtype, device: str):
    """The shared components, on ``device``."""
    from diffusers import UniPCMultistepScheduler

    from anyframe.models.text_encoder import build_word_tokenizer
    from anyframe.models.wan import build_umt5_encoder, build_wan, build_wan_vae, cast_like_from_pretrained

    torch.manual_seed(0)
    transformer = cast_like_from_pretrained(build_wan(size), dtype).to(device).eval()
    tokenizer = build_word_tokenizer(max_length=512)
    text_encoder = build_umt5_encoder(len(tokenizer), d_model=transformer.config.text_dim).to(device, dtype).eval()
    vae = build_wan_vae("2.1" if size != "tiny" else "tiny").to(device).eval()  # float32
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def run_once(name: str, pipe, args, device: str) -> dict:
    """One video; per-step times from step-end callbacks."""
    marks: list[float] = []

    def on_step(_pipe, _i, _t, kwargs):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        return {}

    common = dict(num_frames=args.frames, height=args.height, width=args.width, num_inference_steps=args.steps,
                  guidance_scale=5.0, output_type="latent", callback_on_step_end=on_step)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if name == "diffusers":
        latents = pipe(PROMPT, negative_prompt="", generator=torch.Generator().manual_seed(0), **common).frames
    else:
        latents = pipe(PROMPT, guidance_mode="cfg", renorm=None, seed=0, **common).frames
    video = decode_video(pipe.vae, latents)  # both pipelines' latents are normalised the same way
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    steps = [b - a for a, b in zip([start] + marks[:-1], marks)][1:]  # drop the first (includes encoding)
    return {"video_s": total, "step_s": steps, "latents": latents.float().cpu(), "frames": video.shape[2],
            "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1.3B", choices=["tiny", "1.3B", "14B"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "wan_speed")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: no CUDA device (run with --device cpu --size tiny for a smoke run of the script)")
    dtype = getattr(torch, args.dtype)

    from diffusers import WanPipeline

    from anyframe.conditioning import FrameReplacement
    from anyframe.pipelines import AnyFramePipeline

    components = build(args.size, dtype, args.device)
    pipes = {
        "diffusers": WanPipeline(**components),
        "anyframe": AnyFramePipeline(**components, conditioning=FrameReplacement()),
    }
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    runs = {name: [] for name in pipes}
    with torch.no_grad():
        for name, pipe in pipes.items():  # warm-up (kernels, allocator)
            run_once(name, pipe, argparse.Namespace(**{**vars(args), "steps": min(args.steps, 3)}), args.device)
        for _ in range(args.repeats):
            for name, pipe in pipes.items():
                runs[name].append(run_once(name, pipe, args, args.device))

    rows = {}
    for name, results in runs.items():
        steps = [s for r in results for s in r["step_s"]]
        rows[name] = {
            "step_s": statistics.median(steps),
            "video_s": statistics.median(r["video_s"] for r in results),
            "peak_gb": max((r["peak_gb"] or 0.0) for r in results) if args.device.startswith("cuda") else None,
        }
    diff = float((runs["anyframe"][-1]["latents"] - runs["diffusers"][-1]["latents"]).abs().max())
    speedup = rows["diffusers"]["video_s"] / rows["anyframe"]["video_s"]
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    command = "python " + " ".join(["benchmarks/wan_speed.py", *sys.argv[1:]])
    record = {"command": command, "device": device_name, "torch": torch.__version__, "config": vars(args) | {"out": str(args.out)},
              "results": rows, "max_abs_latent_diff": diff, "anyframe_speedup": speedup}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")

    def gb(v):
        return "—" if v is None else f"{v:.1f}"

    lines = [
        "# Wan2.1 T2V speed: diffusers' WanPipeline vs anyframe",
        "",
        f"`{command}` — {device_name}, torch {torch.__version__}; Wan2.1-{args.size} config (random weights), "
        f"{args.height}×{args.width}, {args.frames} frames, {args.steps} steps, {args.dtype}, CFG 5.0, UniPC; "
        f"median of {args.repeats} videos after a warm-up.",
        "",
        "| pipeline | s / step | s / video | peak GPU memory (GiB) |",
        "|---|---|---|---|",
        *(f"| {n} | {r['step_s']:.3f} | {r['video_s']:.2f} | {gb(r['peak_gb'])} |" for n, r in rows.items()),
        "",
        f"anyframe / diffusers speed: **{speedup:.2f}×**; outputs: max |Δ latent| = {diff:.2e}.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
