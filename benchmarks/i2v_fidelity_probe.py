"""Where does an image-to-video model lose its condition image? (issue 27's targeted probes)

    python benchmarks/i2v_fidelity_probe.py --model 'FlashI2V γ₀=1 @1000=runs/i2v/flashi2v-gamma1/checkpoints/step-00001000' \\
        --model 'channel concat @1000=runs/i2v/channel-concat/checkpoints/step-00001000' [--n 16] [--name NAME]

A model is a pipeline folder or a training checkpoint (its EMA weights are exported to a temporary folder). On the
fixed validation scenes of ``benchmarks/i2v_curves.py`` (train split, seeds 70,000 + i), three probes of the
first-frame PSNR (generated frame 0 against the condition image, dB):

1. **The ceiling**: the autoencoder's reconstruction of the condition image (what frame replacement's exact
   re-imposition reaches).
2. **The denoiser alone** (teacher forcing): the true clip's latents noised to σ (one noise draw per case),
   one conditional forward pass (text and image, no guidance), the one-step estimate
   x̂₀ = x_σ − σ·v decoded; its frame 0 against the condition image, for σ in ``--sigmas``. A model that
   carries the image's content reproduces it at every σ; one that relies on the noisy state only at small σ.
3. **The sampler**: full generations with the benchmark's sampling (25 Euler steps, JIT-CFG 7.5 + renorm) and one
   setting changed at a time: no guidance, guidance 3, 50 steps, the timestep shift 3 (more steps at high noise)
   and, for a FlashI2V model, the Fourier cutoff ``detail`` 0.02 and 0.5. A setting that lifts first-frame PSNR
   says the limit is in sampling, not in what the model learned. For a FlashI2V model also its trained weights
   with one of its two paths switched off at inference (the latent shift, or the Fourier embedding): what each
   path carries of the image.

Writes ``benchmarks/results/<--name>.{json,md}`` (default ``i2v_fidelity_probe``) with the command line. Each
model's results are cached under ``--cache`` (keyed by its weights and the probe's settings), so models can be
probed in separate processes (``--only-measure``) and a later call only writes the tables.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from anyframe.evaluation.cache import weights_key
from anyframe.evaluation.harness import Conditioning, PipelineModel
from anyframe.flow.guidance import FULL
from anyframe.flow.sampling import make_scheduler
from anyframe.io import to_uint8, write_texts
from anyframe.pipelines.anyframe import PipelineEncoders
from anyframe.pipelines.request import GenerationRequest, Keyframe
from anyframe.progress import StageBars
from anyframe.training.export import export_checkpoint
from anyframe.world.scoring import psnr
from anyframe.world.suite import sample_suite

sys.path.insert(0, str(Path(__file__).parent))
from flashi2v_ablation import CASE_SEED, measure

RESULTS = Path(__file__).parent / "results"
BENCHMARK = {"steps": 25, "guidance": 7.5, "renorm": "full"}  # flashi2v_ablation.py's sampling
SETTINGS = {  # one change at a time from the benchmark's sampling
    "benchmark sampling": {},
    "no guidance": {"guidance": 1.0},
    "guidance 3": {"guidance": 3.0},
    "50 steps": {"steps": 50},
    "timestep shift 3": {"shift": 3.0},
    "detail 0.02": {"detail": 0.02},
    "detail 0.5": {"detail": 0.5},
    # which of FlashI2V's two paths carries the image: one switched off at inference (the trained weights kept)
    "without the shift": {"drop": "shift"},
    "without the Fourier path": {"drop": "fourier_embed"},
}
FLASH_ONLY = ("detail", "drop")


def clip_tensor(clip: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] → [1, 3, T, H, W] in [−1, 1]."""
    return torch.from_numpy(clip).float().div(127.5).sub(1).permute(3, 0, 1, 2).unsqueeze(0)


@torch.no_grad()
def teacher_forced(pipe, case, cond: Conditioning, sigmas: list[float]) -> dict:
    """Frame-0 PSNR of the one-step estimate from the true clip noised to each σ, and the autoencoder's."""
    clip = cond.clip
    t, h, w, _ = clip.shape
    request = pipe.validate(GenerationRequest(prompt=case.conditions["prompt"], keyframes=[Keyframe(clip[0], 0)],
                                              num_frames=t, height=h, width=w, seed=case.seed))
    x0 = PipelineEncoders(pipe).encode_video(clip_tensor(clip)).float()
    generator = torch.Generator("cpu").manual_seed(CASE_SEED + case.seed)
    noise = torch.randn(x0.shape, generator=generator)
    extra = pipe.conditioning.extra_out_channels
    if extra:  # a method with channels of its own (JDM's masks): not what this probe is for
        raise SystemExit("error: this probe takes image-to-video methods without extra output channels")
    _, state = pipe.encode_request(request, noise)
    velocities = pipe.branch_velocity(state)
    out = {"autoencoder": psnr(to_uint8(pipe.decode_latents(x0)[0].cpu().numpy())[0], clip[0])}
    for sigma in sigmas:
        x = (1 - sigma) * x0 + sigma * noise
        x = pipe.conditioning.after_step(x, torch.full((1,), sigma), state)  # frame replacement re-imposes
        v = velocities(x, torch.full((1,), sigma), [FULL])[0]
        estimate = x - sigma * v
        estimate = pipe.conditioning.finalize(estimate, state)
        frames = to_uint8(pipe.decode_latents(estimate)[0].cpu().numpy())
        out[f"{sigma:g}"] = psnr(frames[0], clip[0])
    return out


def load(spec: str, stack: ExitStack) -> str:
    path = Path(spec)
    if (path / "model_index.json").is_file():
        return str(path)
    if not path.is_dir():
        raise SystemExit(f"error: {spec}: not a pipeline folder or a training checkpoint")
    tmp = Path(tempfile.mkdtemp(prefix="i2v-probe-"))
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    export_checkpoint(path, tmp / "pipeline")
    return str(tmp / "pipeline")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="LABEL=PIPELINE_OR_CHECKPOINT; repeat")
    ap.add_argument("--n", type=int, default=16, help="validation cases (train split)")
    ap.add_argument("--sigmas", default="0.1,0.3,0.5,0.7,0.9,1.0")
    ap.add_argument("--setting", action="append", default=None, choices=list(SETTINGS),
                    help="sampler settings to run (default: all that apply)")
    ap.add_argument("--name", default="i2v_fidelity_probe")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--cache", type=Path, default=Path("runs/i2v_fidelity_probe_cache"),
                    help="per-model results, keyed by the weights and the probe's settings")
    ap.add_argument("--only-measure", action="store_true", help="fill the cache (--cache) and stop: no tables")
    args = ap.parse_args(argv)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    specs = {}
    for spec in args.model:
        label, sep, path = spec.partition("=")
        if not sep:
            print(f"error: --model {spec}: want LABEL=PATH", file=sys.stderr)
            return 2
        specs[label] = path
    cases = sample_suite(args.n, "train", seed=CASE_SEED, tasks=("ti2v",), prefix="flashi2v")
    conds = {c.id: Conditioning.of(c) for c in cases}
    results: dict[str, dict] = {}
    start = time.perf_counter()
    with ExitStack() as stack, StageBars(sys.stderr.isatty()) as bars:
        for label, spec in specs.items():
            key = {"model": weights_key(spec), "n": args.n, "sigmas": sigmas, "settings": args.setting}
            cached = args.cache / f"{label.replace(' ', '_').replace('/', '_')}.json"
            if cached.is_file() and json.loads(cached.read_text()).get("key") == key:
                results[label] = json.loads(cached.read_text())["results"]
                print(f"{label}: from {cached}", flush=True)
                continue
            folder = load(spec, stack)
            torch.manual_seed(0)
            base = PipelineModel(folder, name=label, **BENCHMARK)
            is_flash = base.pipe.conditioning.name == "flashi2v"
            rows = []
            task = bars.task(f"{label}: denoiser", len(cases))
            for case in cases:
                rows.append(teacher_forced(base.pipe, case, conds[case.id], sigmas))
                bars.advance(task)
            results[label] = {"teacher_forced": {k: float(np.mean([r[k] for r in rows])) for k in rows[0]},
                              "sampler": {}}
            default_scheduler = base.pipe.scheduler
            for name, change in SETTINGS.items():
                if args.setting and name not in args.setting:
                    continue
                if any(k in change for k in FLASH_ONLY) and not is_flash:
                    continue
                model = PipelineModel(folder, name=label, **(BENCHMARK | {k: v for k, v in change.items()
                                                                           if k in ("steps", "guidance")}),
                                      detail=change.get("detail"))
                model.pipe.scheduler = make_scheduler("euler", change["shift"]) if "shift" in change else default_scheduler
                if "drop" in change:  # (a fresh load per setting: the other settings keep both paths)
                    if getattr(model.pipe.conditioning, change["drop"]) is None:
                        continue  # a FlashI2V trained without that path
                    setattr(model.pipe.conditioning, change["drop"], None)
                task = bars.task(f"{label}: {name}", len(cases))
                scores = []
                for case in cases:
                    scores.append(measure(model.generate(case, conds[case.id]).frames, conds[case.id], case))
                    bars.advance(task)
                results[label]["sampler"][name] = {
                    k: float(np.mean([s[k] for s in scores if s[k] is not None]))
                    for k in ("first_frame_psnr", "motion_direction", "global_color_error")}
            write_texts({cached: json.dumps({"key": key, "results": results[label]})})
            print(f"{label}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.only_measure:
        return 0
    command = "python benchmarks/i2v_fidelity_probe.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "n": args.n, "sigmas": sigmas, "benchmark_sampling": BENCHMARK, "models": specs,
               "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_texts({args.out / f"{args.name}.json": json.dumps(payload, indent=1),
                 args.out / f"{args.name}.md": render(payload)})
    print(render(payload))
    return 0


def render(payload: dict) -> str:
    sig = [f"{s:g}" for s in payload["sigmas"]]
    lines = ["# Where an image-to-video model loses its condition image", "", f"Command: `{payload['command']}`", "",
             f"{payload['n']} TI2V validation scenes (train split, seeds {CASE_SEED}+). First-frame PSNR (dB) of: the "
             "autoencoder's reconstruction (the ceiling); the denoiser's one-step estimate x̂₀ = x_σ − σ·v from the "
             "true clip noised to σ (conditional pass, no guidance); full generations with one sampler setting "
             "changed from the benchmark's (25 Euler steps, JIT-CFG 7.5 + renorm).", "",
             "## The denoiser alone (teacher forcing)", "",
             "| model | autoencoder | " + " | ".join(f"σ = {s}" for s in sig) + " |", "|---|---|" + "---|" * len(sig)]
    for label, r in payload["results"].items():
        tf = r["teacher_forced"]
        lines.append(f"| {label} | {tf['autoencoder']:.2f} | " + " | ".join(f"{tf[s]:.2f}" for s in sig) + " |")
    lines += ["", "## The sampler", "", "| model | setting | first-frame PSNR | motion direction | global colour error |",
              "|---|---|---|---|---|"]
    for label, r in payload["results"].items():
        for name, m in r["sampler"].items():
            lines.append(f"| {label} | {name} | {m['first_frame_psnr']:.2f} | {m['motion_direction']:.3f} | "
                         f"{m['global_color_error']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
