"""What FlashI2V's own layers learned, checkpoint by checkpoint (issue 27's targeted probes): does the latent shift
φ grow, and does it carry the image?

    python benchmarks/flashi2v_probe.py --run 'FlashI2V=runs/i2v/flashi2v' \\
        --run 'FlashI2V, φ LR ×10=runs/i2v/flashi2v-phi10' [--every 250] [--n 32]

For each kept checkpoint (EMA weights) at a multiple of ``--every``, on the condition images of ``--n`` validation
scenes (``flashi2v_ablation.py``'s TI2V cases, train split: first frames, encoded by the model's autoencoder):

- ``phi_scale``: std φ(s) / std s — how large the shift is against the image latent (0 at initialisation);
- ``phi_corr``: the correlation of φ(s) with s over every latent value (the paper's φ starts as a stand-in for
  −γ·s; a shift that carries the image correlates with it, with either sign);
- ``phi_fit``: the share of φ(s)'s variance a per-channel affine map of s explains (R²): how much of the shift is
  the image itself rather than features of it;
- ``fourier_scale``: std of the Fourier embedding's tokens / std of the backbone's patch embedding of the
  clean first frame — how loud the high-frequency guidance is against the content it is added to.

Writes ``benchmarks/results/<--name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from anyframe.io import write_texts
from anyframe.pipelines import Keyframe, load_pipeline
from anyframe.training.checkpoint import list_checkpoints
from anyframe.training.export import export_checkpoint
from anyframe.world.suite import sample_suite

sys.path.insert(0, str(Path(__file__).parent))
from flashi2v_ablation import CASE_SEED

from anyframe.models.latent_shift import fourier_high_frequency

RESULTS = Path(__file__).parent / "results"
KEYS = ("phi_scale", "phi_corr", "phi_fit", "fourier_scale")


@torch.no_grad()
def probe(pipe, images: list[np.ndarray], detail: float) -> dict:
    method = pipe.conditioning
    h, w = images[0].shape[:2]
    s = torch.cat([pipe.encode_keyframes([Keyframe(img, 0)], h, w) for img in images])  # [N, C, 1, h, w]
    out = {}
    if getattr(method, "shift", None) is not None:
        phi = method.phi(s)
        out["phi_scale"] = float(phi.std() / s.std())
        a, b = s.flatten(), phi.flatten()
        out["phi_corr"] = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if b.std() > 0 else 0.0
        # per-channel affine fit φ_c ≈ k_c·s_c + m_c: the share of φ's variance the image itself explains
        resid = 0.0
        for c in range(s.shape[1]):
            x, y = s[:, c].flatten(), phi[:, c].flatten()
            design = torch.stack([x, torch.ones_like(x)], 1)
            coef = torch.linalg.lstsq(design, y[:, None]).solution
            resid += float(((y - (design @ coef)[:, 0]) ** 2).sum())
        total = float(((phi - phi.mean(dim=(0, 2, 3, 4), keepdim=True)) ** 2).sum())
        out["phi_fit"] = 1.0 - resid / total if total > 0 else 0.0
    if getattr(method, "fourier_embed", None) is not None:
        feats = fourier_high_frequency(s, torch.full((s.shape[0],), detail))
        added = method.fourier_embed(feats, 1)
        tokens = pipe.transformer.patch_embed(torch.cat([s, s.new_zeros(s.shape[0], pipe.transformer.patch_embed.in_channels
                                                                           - s.shape[1], *s.shape[2:])], 1)
                                              if pipe.transformer.patch_embed.in_channels > s.shape[1] else s)
        out["fourier_scale"] = float(added.std() / tokens.std())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (a FlashI2V training folder); repeat")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--n", type=int, default=32, help="validation condition images (train split)")
    ap.add_argument("--detail", type=float, default=0.1, help="the Fourier cutoff ratio (inference default 0.1)")
    ap.add_argument("--name", default="flashi2v_probe")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    runs = []
    for spec in args.run:
        label, sep, path = spec.partition("=")
        if not sep or not (Path(path) / "checkpoints").is_dir():
            raise SystemExit(f"error: --run {spec}: want LABEL=RUN_DIR with checkpoints/")
        runs.append((label, Path(path)))
    cases = sample_suite(args.n, "train", seed=CASE_SEED, tasks=("ti2v",), prefix="flashi2v")
    from anyframe.evaluation.harness import Conditioning

    images = [Conditioning.of(c).clip[0] for c in cases]
    rows: dict[str, list[dict]] = {}
    for label, run in runs:
        rows[label] = []
        for ckpt in list_checkpoints(run / "checkpoints"):
            step = int(ckpt.name.split("-")[1])
            if step % args.every:
                continue
            tmp = Path(tempfile.mkdtemp(prefix="flashi2v-probe-"))
            try:
                export_checkpoint(ckpt, tmp / "pipeline")
                pipe = load_pipeline(tmp / "pipeline", "float32")
                rows[label].append({"step": step, **probe(pipe, images, args.detail)})
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(label, rows[label][-1], flush=True)
    command = "python benchmarks/flashi2v_probe.py " + shlex.join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["# FlashI2V's own layers over training", "", f"Command: `{command}`", "",
             f"{args.n} condition images (train split); definitions in the script's docstring.", "",
             "| run | step | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for label, points in rows.items():
        for p in points:
            lines.append(f"| {label} | {p['step']} | " + " | ".join(
                f"{p[k]:.3f}" if p.get(k) is not None else "—" for k in KEYS) + " |")
    write_texts({args.out / f"{args.name}.json": json.dumps({"command": command, "n": args.n, "rows": rows}, indent=1),
                 args.out / f"{args.name}.md": "\n".join(lines) + "\n"})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
