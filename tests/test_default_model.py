"""The shipped default model (checkpoints/anyframe-world-s): small, safe, complete, and what `anyframe
generate` uses without --model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anyframe.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "anyframe-world-s"


def test_the_folder_is_small_and_only_safetensors():
    files = [f for f in SHIPPED.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 50 * 2**20
    weights = [f for f in files if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(f.suffix == ".safetensors" for f in weights)
    card = (SHIPPED / "README.md").read_text()
    for fact in ("configs/world-s.yaml", "configs/world-autoencoder.yaml", "seed", "steps", "wall time", "standard"):
        assert fact in card, fact


def test_generate_uses_it_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("ANYFRAME_MODEL", raising=False)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.mp4"
        with pytest.raises(SystemExit) as info:
            main(["generate", "--prompt", "On a black background, a large red circle moves right.", "--steps", "2",
                  "--seed", "3", "--out", str(out)])
        assert (info.value.code or 0) == 0
        assert out.is_file() and out.with_suffix(".png").is_file()
        outs.append(out)
    from PIL import Image

    from anyframe.io import read_video

    # same seed, same video: the lossless filmstrips (the generation itself), then the decoded mp4s
    strips = [np.asarray(Image.open(p.with_suffix(".png"))) for p in outs]
    assert np.array_equal(*strips), f"filmstrips differ: max |Δ| {np.abs(strips[0].astype(int) - strips[1]).max()}"
    a, b = (read_video(p) for p in outs)
    assert a.shape == b.shape == (16, 32, 32, 3), (a.shape, b.shape)
    assert np.array_equal(a, b), f"the mp4s differ (same filmstrips): max |Δ| {np.abs(a.astype(int) - b).max()}"


def test_its_autoencoder_is_not_what_holds_it_back():
    """The true clips through the shipped autoencoder (the ceiling of any generator in its latent space) keep
    the oracle's content scores high: the gap to the targets is the backbone's."""
    from anyframe.evaluation.harness import AutoencoderModel, Conditioning
    from anyframe.evaluation.report import run_model
    from anyframe.world.suite import sample_suite

    cases = sample_suite(16, seed=7_000_000, tasks=("t2v", "ti2v"))
    report = run_model(AutoencoderModel(str(SHIPPED)), cases, {c.id: Conditioning.of(c) for c in cases})
    for key, floor in (("presence", 0.85), ("color_binding", 0.8), ("motion_direction", 0.9), ("keyframe_psnr", 30)):
        assert report["metrics"][key] >= floor, (key, report["metrics"][key])


def test_a_plain_install_carries_every_file_of_the_default_model():
    """pyproject's data-files put the shipped models under <prefix>/share/anyframe/ (a plain `pip install .`): every
    file of checkpoints/ (the default model, the world CLIP...) is matched by one of its globs, in the folder of the
    same name."""
    import glob

    import tomllib

    root = Path(__file__).resolve().parents[1]
    data_files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    carried = {}
    for target, patterns in data_files.items():
        for pattern in patterns:
            for path in glob.glob(str(root / pattern)):
                carried[Path(path).relative_to(root / "checkpoints")] = target
    shipped = [p.relative_to(root / "checkpoints") for p in (root / "checkpoints").rglob("*") if p.is_file()]
    assert any(p.parts[0] == "anyframe-world-s" for p in shipped) and sorted(carried) == sorted(shipped)
    for rel, target in carried.items():
        assert target == f"share/anyframe/{rel.parent}"


def test_the_default_model_is_found_in_a_plain_install(tmp_path, monkeypatch):
    import sysconfig

    from anyframe import cli

    installed = tmp_path / "prefix" / "share" / "anyframe" / "anyframe-world-s"
    installed.mkdir(parents=True)
    (installed / "model_index.json").write_text("{}")
    monkeypatch.delenv("ANYFRAME_MODEL", raising=False)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "anyframe" / "cli.py"))  # no checkout
    monkeypatch.setattr(sysconfig, "get_path", lambda name, scheme=None: str(tmp_path / "prefix"))
    assert cli.default_model_dir() == installed
