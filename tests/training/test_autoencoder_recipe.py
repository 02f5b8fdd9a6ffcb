"""Stage one of the world recipe (anyframe.training.autoencoder): it learns, resumes exactly, and exports a
diffusers AutoencoderKL with its latent normalisation and a PSNR report."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from anyframe.cli import main
from anyframe.errors import AnyframeInputError
from anyframe.training.autoencoder import AutoencoderRecipe, psnr, train_autoencoder
from anyframe.training.config import load_config

TINY = ["size=tiny", "data.size=16", "data.frames=4", "data.frames_per_clip=2", "data.batch_size=8",
        "optim.lr=3e-3", "optim.warmup_steps=0", "train.log_every=1", "train.eval_frames=16"]


def recipe(*extra: str) -> AutoencoderRecipe:
    return load_config(None, TINY + list(extra), schema=AutoencoderRecipe)


def test_it_learns_and_exports_a_normalised_autoencoder(tmp_path):
    result = train_autoencoder(recipe("train.steps=30"), output_dir=str(tmp_path / "run"), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["mse"] < 0.5 * log[0]["mse"]  # reconstruction improves
    vae = AutoencoderKL.from_pretrained(result["autoencoder_dir"])
    assert vae.config.scaling_factor == pytest.approx(1 / result["eval"]["latent_std"])
    assert vae.config.shift_factor == pytest.approx(result["eval"]["latent_mean"])
    report = json.loads((tmp_path / "run" / "autoencoder" / "eval.json").read_text())
    assert set(report["psnr_by_style"]) == {"flat", "outline", "striped", "grain", "pixelated"}
    assert "ood_style" in report["psnr_by_split"]


def test_resuming_continues_the_same_curve(tmp_path):
    straight = recipe("train.steps=6")
    train_autoencoder(straight, output_dir=str(tmp_path / "a"), progress=False)
    train_autoencoder(straight, output_dir=str(tmp_path / "b"), progress=False, stop_after=3)
    train_autoencoder(straight, output_dir=str(tmp_path / "b"), progress=False, resume="latest")
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step-00000006" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step-00000006" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(AnyframeInputError, match="changed in kl_weight"):
        train_autoencoder(recipe("train.steps=6", "kl_weight=0.1"), output_dir=str(tmp_path / "b"), progress=False,
                          resume="latest")


def test_psnr_is_on_the_uint8_grid():
    x = torch.full((1, 3, 4, 4), -1.0)  # uint8 0
    assert float(psnr(x, x)) > 90
    assert float(psnr(x, x + 2 / 255)) == pytest.approx(48.13, abs=0.01)  # off by one level everywhere: MSE 1
    assert float(psnr(x, x + 0.2 / 255)) > 90  # below half a level: the same uint8 image


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("size: XXL\n")
    for args, fragment in [(["--config", str(bad)], "size"), (["--set", "kl_weight=-1"], "kl_weight"),
                           (["--config", str(tmp_path / "none.yaml")], "config not found")]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["train-autoencoder", *args, "--output", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert info.value.code == 2 and fragment in err and err.count("\n") == 1
