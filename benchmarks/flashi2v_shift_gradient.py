"""At which noise levels does the denoising objective push FlashI2V's latent shift down? (issue 27's probes)

    python benchmarks/flashi2v_shift_gradient.py \\
        --model 'FlashI2V @4000=runs/i2v/exports/flashi2v-gamma1-4000' [--n 16] [--name NAME]

A model is a FlashI2V pipeline folder or a training checkpoint (its EMA weights). Its shift is scaled by a factor
α per sample, the backbone seeing ``z_σ − α·φ(s)`` (α = 1: the model as trained), and the training loss (the flow
target ``ε − x``, image and text kept) is differentiated with respect to α at α = 1, on the fixed validation
scenes of ``benchmarks/i2v_curves.py`` (train split, seeds 70,000 + i; one noise draw per scene), at each σ of
``--sigmas``:

- ``dL/dα``: positive where gradient descent shrinks the shift (a smaller shift lowers the loss), negative where
  it grows it; split into the loss on the latent frame of the condition image (frame 0) and on the frames after.
- ``loss``: the training loss there, and ``loss without the shift`` (α = 0): what the shift buys at that σ.

The training objective averages over σ from the recipe's logit-normal distribution; ``net`` is the
distribution-weighted mean of dL/dα over the grid (a trapezoid quadrature of the density): the direction training
moves the shift's scale. Intervals: 95 % bootstrap over the scenes (``anyframe.evaluation.targets.mean_interval``).

Writes ``benchmarks/results/<--name>.{json,md}`` (default ``flashi2v_shift_gradient``) with the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from anyframe.conditioning.base import Denoiser, TrainingBatch, base_training_inputs, diffusion_loss
from anyframe.evaluation.harness import Conditioning
from anyframe.evaluation.targets import mean_interval
from anyframe.io import write_texts
from anyframe.pipelines import load_pipeline
from anyframe.pipelines.anyframe import PipelineEncoders
from anyframe.progress import StageBars
from anyframe.world.suite import sample_suite

sys.path.insert(0, str(Path(__file__).parent))
from flashi2v_ablation import CASE_SEED
from i2v_fidelity_probe import clip_tensor, load

RESULTS = Path(__file__).parent / "results"
SIGMAS = (0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.98)


def logit_normal_weights(sigmas: list[float], mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Trapezoid weights of the logit-normal density (the recipe's σ distribution) on the grid, summing to 1."""
    s = np.asarray(sigmas, dtype=np.float64)
    logit = np.log(s / (1 - s))
    density = np.exp(-0.5 * ((logit - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi) * s * (1 - s))
    edges = np.concatenate([[s[0]], (s[1:] + s[:-1]) / 2, [s[-1]]])
    w = density * np.diff(edges)
    return w / w.sum()


def shift_gradients(pipe, case, cond: Conditioning, sigmas: list[float]) -> dict[str, np.ndarray]:
    """For one scene: per σ, dL/dα at α = 1 (all frames, frame 0, the frames after) and the loss at α = 1 and 0."""
    method = pipe.conditioning
    if getattr(method, "name", None) != "flashi2v" or (method.shift is None and method.shift_gain is None):
        raise SystemExit("error: this probe takes FlashI2V models with a latent shift")
    b = len(sigmas)
    with torch.no_grad():
        x0 = PipelineEncoders(pipe).encode_video(clip_tensor(cond.clip)).float().expand(b, -1, -1, -1, -1)
        text = pipe.encode_text([case.conditions["prompt"]] * b)
        null = pipe.encode_text([""] * b)
    h, w = cond.clip.shape[1:3]
    batch = TrainingBatch(latents=x0, text=text, null_text=null,
                          micro_conditions=torch.tensor([[1.0, float(h), float(w), 0.0, 0.0]] * b))
    generator = torch.Generator().manual_seed(CASE_SEED + case.seed)
    noise = torch.randn(x0[:1].shape, generator=generator).expand(b, -1, -1, -1, -1)
    sigma = torch.tensor(sigmas, dtype=torch.float32)
    keep = torch.zeros(b, dtype=torch.bool)
    inputs = method.apply_training(base_training_inputs(batch, sigma, noise, keep, keep), batch, generator)
    mi = dict(inputs.model_inputs.method_inputs)  # one Fourier cutoff (the first draw) for every σ of the scene
    mi["flashi2v_ratio"] = mi["flashi2v_ratio"][:1].expand(b)
    inputs = replace(inputs, model_inputs=replace(inputs.model_inputs, method_inputs=mi))
    denoiser = Denoiser(pipe.transformer, method)
    phi = method.phi
    out = {}
    try:
        for alpha_value in (0.0, 1.0):
            alpha = torch.full((b,), alpha_value, requires_grad=True)
            method.phi = lambda image, a=alpha: a.view(-1, 1, 1, 1, 1).to(image.dtype) * phi(image)
            pred = denoiser(**inputs.model_inputs.denoiser_kwargs()).sample.float()
            err = (pred - inputs.target) ** 2  # [B, C, T, H, W]
            loss = err.mean(dim=(1, 2, 3, 4))
            if alpha_value == 0.0:
                out["loss_without_shift"] = loss.detach().numpy()
                continue
            out["loss"] = loss.detach().numpy()
            assert torch.allclose(loss, diffusion_loss(pred, inputs), rtol=1e-4, atol=1e-6)  # the training loss
            t = err.shape[2]
            first = err[:, :, :1].mean(dim=(1, 2, 3, 4)) / t  # the frame-0 share of the loss, and the rest's
            rest = err[:, :, 1:].mean(dim=(1, 2, 3, 4)) * (t - 1) / t
            (g_first,) = torch.autograd.grad(first.sum(), alpha, retain_graph=True)
            (g_rest,) = torch.autograd.grad(rest.sum(), alpha)
            out["grad_frame0"], out["grad_rest"] = g_first.numpy(), g_rest.numpy()
            out["grad"] = out["grad_frame0"] + out["grad_rest"]
    finally:
        del method.phi  # the instance attribute: back to the class's method
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="LABEL=PIPELINE_OR_CHECKPOINT; repeat")
    ap.add_argument("--start", action="append", default=[], metavar="LABEL=CONFIG",
                    help="also the model a recipe starts from (step 0: its pretrained model with the method's new "
                         "layers), with --set overrides; repeat")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of every --start recipe")
    ap.add_argument("--n", type=int, default=16, help="validation scenes (train split)")
    ap.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS))
    ap.add_argument("--logit-mean", type=float, default=0.0, help="the recipe's σ distribution (flow.logit_mean)")
    ap.add_argument("--logit-std", type=float, default=1.0, help="the recipe's σ distribution (flow.logit_std)")
    ap.add_argument("--name", default="flashi2v_shift_gradient")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    if not sigmas or not all(0 < s < 1 for s in sigmas) or sorted(sigmas) != sigmas:
        print("error: --sigmas: increasing values strictly between 0 and 1", file=sys.stderr)
        return 2
    specs, starts = {}, {}
    for flag, given, into in (("--start", args.start, starts), ("--model", args.model, specs)):
        for spec in given:
            label, sep, path = spec.partition("=")
            if not sep:
                print(f"error: {flag} {spec}: want LABEL=PATH", file=sys.stderr)
                return 2
            into[label] = path
    if not specs and not starts:
        print("error: give --model or --start", file=sys.stderr)
        return 2
    weights = logit_normal_weights(sigmas, args.logit_mean, args.logit_std)
    cases = sample_suite(args.n, "train", seed=CASE_SEED, tasks=("ti2v",), prefix="flashi2v")
    results = {}
    with ExitStack() as stack, StageBars(sys.stderr.isatty()) as bars:
        for label, spec in [*starts.items(), *specs.items()]:
            torch.manual_seed(0)
            if label in starts:
                from anyframe.training.build import build_components
                from anyframe.training.config import load_config

                pipe = build_components(load_config(spec, args.overrides))  # float32, as built
            else:
                pipe = load_pipeline(load(spec, stack), "float32")
            pipe.transformer.eval()
            rows = []
            task = bars.task(label, len(cases))
            for case in cases:
                rows.append(shift_gradients(pipe, case, Conditioning.of(case), sigmas))
                bars.advance(task)
            per_sigma = []
            for k, s in enumerate(sigmas):
                entry = {"sigma": s, "weight": float(weights[k])}
                for key in ("grad", "grad_frame0", "grad_rest", "loss", "loss_without_shift"):
                    values = [float(r[key][k]) for r in rows]
                    entry[key] = float(np.mean(values))
                    entry[f"{key}_interval"] = mean_interval(values)
                per_sigma.append(entry)
            net = [float(np.dot(weights, r["grad"])) for r in rows]
            net_frame0 = [float(np.dot(weights, r["grad_frame0"])) for r in rows]
            results[label] = {"per_sigma": per_sigma, "net": float(np.mean(net)), "net_interval": mean_interval(net),
                              "net_frame0": float(np.mean(net_frame0)), "net_frame0_interval": mean_interval(net_frame0)}
            print(f"{label}: net dL/dα {results[label]['net']:+.4f}", flush=True)
    command = "python benchmarks/flashi2v_shift_gradient.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "n": args.n, "sigmas": sigmas, "models": specs, "starts": starts,
               "start_overrides": args.overrides,
               "sigma_distribution": {"logit_mean": args.logit_mean, "logit_std": args.logit_std}, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_texts({args.out / f"{args.name}.json": json.dumps(payload, indent=1),
                 args.out / f"{args.name}.md": render(payload)})
    print(render(payload))
    return 0


def _ci(value: float, interval) -> str:
    return f"{value:+.4f}" + (f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "")


def render(payload: dict) -> str:
    lines = ["# Where the objective pushes FlashI2V's shift", "", f"Command: `{payload['command']}`", "",
             f"{payload['n']} TI2V validation scenes (train split, seeds {CASE_SEED}+), one noise draw each. The "
             "backbone sees z_σ − α·φ(s); dL/dα at α = 1 is the derivative of the training loss with respect to the "
             "shift's scale: **positive: descent shrinks the shift**. Frame 0 / after: the same for the loss on the "
             "condition image's latent frame and on the frames after (they sum to the total). Loss without the "
             "shift: α = 0. Weight: the recipe's logit-normal σ density on the grid; net: the weighted mean, with "
             "95 % bootstrap intervals over the scenes.", ""]
    for label, r in payload["results"].items():
        lines += [f"## {label}", "", f"net dL/dα {_ci(r['net'], r['net_interval'])}; frame 0 alone "
                  f"{_ci(r['net_frame0'], r['net_frame0_interval'])}", "",
                  "| σ | weight | dL/dα | frame 0 | frames after | loss | loss without the shift |",
                  "|---|---|---|---|---|---|---|"]
        for e in r["per_sigma"]:
            lines.append(f"| {e['sigma']:g} | {e['weight']:.3f} | {_ci(e['grad'], e['grad_interval'])} | "
                         f"{e['grad_frame0']:+.4f} | {e['grad_rest']:+.4f} | {e['loss']:.4f} | "
                         f"{e['loss_without_shift']:.4f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
