"""Training throughput of the anyframe recipe: steps/s and samples/s (and on a GPU, tokens/s and MFU).

Runs the real recipe (``anyframe.training.recipe.train``) from a latent cache of toy clips — the
path real training takes, with the autoencoder out of the loop — for ``warmup + measure`` steps, and
reads the throughput of the measured window from the run's ``metrics.jsonl``.

    python benchmarks/train_throughput.py                     # CPU: tiny and S
    python benchmarks/train_throughput.py --gpu               # + a ≥600M-parameter model on the GPU

Writes ``benchmarks/results/train_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import train

RESULTS = Path(__file__).parent / "results"

# name: (overrides, description). Clip sizes follow the presets: tiny 8×16×16 px, S 16×32×32 px.
CPU_CASES = {
    "tiny": (["model.preset=tiny", "data.toy.num_frames=8", "data.toy.size=16", "data.batch_size=8"], "tiny, 8×16×16, batch 8"),
    "S": (["model.preset=S", "data.toy.num_frames=16", "data.toy.size=32", "data.batch_size=8"], "S, 16×32×32, batch 8"),
    "S-bf16": (["model.preset=S", "data.toy.num_frames=16", "data.toy.size=32", "data.batch_size=8",
                "train.mixed_precision=bf16"], "S, 16×32×32, batch 8, bf16 autocast"),
}
GPU_CASES = {
    # STIV-XL's depth/width/heads on the S world components: ~770M parameters, 16 frames of 8×8 latents
    "XL-world": (["model.preset=S", "model.backbone.num_layers=28", "model.backbone.hidden_size=1152",
                  "model.backbone.num_heads=18", "data.toy.num_frames=16", "data.toy.size=32", "data.batch_size=32",
                  "train.gradient_checkpointing=false", "optim.optimizer=adafactor"], "XL (28×1152), 16×32×32, batch 32, bf16"),
}
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def _bf16_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return ", ".join(found) or "neither"


def tokens_per_sample(cfg) -> int:
    frames, size = cfg.data.toy.num_frames, cfg.data.toy.size
    factor = 2 if cfg.model.preset == "tiny" else 4
    pt, ph, pw = cfg.model.backbone.get("patch_size", (1, 2, 2))
    return (frames // pt) * (size // factor // ph) * (size // factor // pw)


def run_case(name: str, overrides: list[str], warmup: int, measure: int, workdir: Path) -> dict:
    out = workdir / name
    cfg = load_config(None, [
        *overrides,
        "data.source=toy", "data.toy.num_clips=256", f"data.cache_dir={workdir / (name + '-cache')}",
        f"train.steps={warmup + measure}", f"train.log_every={measure}", "train.checkpoint_every=0",
        "train.export=false", "ema.enabled=true", f"output_dir={out}",
    ])
    # log_every = measure and steps = warmup + measure: the last log window is exactly the measured steps
    if warmup % measure:
        raise ValueError("warmup must be a multiple of measure")
    start = time.perf_counter()
    train(cfg, progress=False)
    wall = time.perf_counter() - start
    window = [m for m in read_metrics(out) if "steps_per_s" in m][-1]
    from safetensors.torch import load_file

    ckpt = max((out / "checkpoints").iterdir())
    params = sum(t.numel() for t in load_file(ckpt / "model.safetensors").values())
    tokens = tokens_per_sample(cfg)
    row = {
        "case": name,
        "params_M": round(params / 1e6, 2),
        "batch": cfg.data.batch_size,
        "tokens_per_sample": tokens,
        "steps_per_s": round(window["steps_per_s"], 3),
        "samples_per_s": round(window["samples_per_s"], 2),
        "tokens_per_s": round(window["samples_per_s"] * tokens, 1),
        "wall_s_total": round(wall, 1),
    }
    if torch.cuda.is_available():
        # 6·N·tokens for the dense layers; attention's QKᵀ and AV add 12·L·d·(seq) per token per pass
        # (factorized: spatial seq = tokens per frame, temporal seq = frames)
        name_gpu = torch.cuda.get_device_name()
        peak = next((v for k, v in GPU_PEAK_BF16.items() if k in name_gpu), None)
        layers = cfg.model.backbone.get("num_layers", 8)
        width = cfg.model.backbone.get("hidden_size", 256)
        frames = cfg.data.toy.num_frames
        per_frame = tokens // frames
        attn = 12 * layers * width * (per_frame + frames)
        flops_per_token = 6 * params + attn
        row["gpu"] = name_gpu
        if peak:
            row["mfu"] = round(row["tokens_per_s"] * flops_per_token / peak, 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--measure", type=int, default=10)
    parser.add_argument("--gpu", action="store_true", help="also run the GPU cases (needs CUDA)")
    parser.add_argument("--cases", nargs="*", default=None, help="subset of case names")
    args = parser.parse_args()

    cases = dict(CPU_CASES)
    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu: no CUDA device")
        cases.update(GPU_CASES)
    if args.cases:
        cases = {k: v for k, v in cases.items() if k in args.cases}
    workdir = Path(tempfile.mkdtemp(prefix="anyframe-bench-"))
    rows = []
    try:
        for name, (overrides, description) in cases.items():
            row = run_case(name, overrides, args.warmup, args.measure, workdir)
            row["description"] = description
            rows.append(row)
            print(json.dumps(row))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    machine = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    command = "python benchmarks/train_throughput.py" + (" --gpu" if args.gpu else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps({"command": command, "machine": machine, "rows": rows}, indent=2))
    lines = [
        "# Training throughput",
        "",
        f"Command: `{command}` (warmup {args.warmup} steps, then {args.measure} measured steps).",
        f"Machine: {machine['threads']} torch threads, torch {machine['torch']}, GPU: {machine['gpu'] or 'none'}.",
        "Training from a latent cache (the autoencoder is out of the loop), AdamW unless noted, EMA on, fp32 on CPU",
        f"unless noted (bf16 autocast: fp32 weights; fast on CPUs with AVX512-BF16 / AMX — this one: {_bf16_flags()}).",
        "",
        "| case | params (M) | batch | tokens/sample | steps/s | samples/s | tokens/s | MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['description']} | {r['params_M']} | {r['batch']} | {r['tokens_per_sample']} | {r['steps_per_s']} | "
                     f"{r['samples_per_s']} | {r['tokens_per_s']} | {r.get('mfu', '—')} |")
    if not args.gpu:
        lines += ["", "No GPU case was run (`--gpu` needs CUDA): tokens/s and MFU for a ≥600M model are pending a GPU session."]
    (RESULTS / "train_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
