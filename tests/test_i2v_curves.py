"""benchmarks/i2v_curves.py: milestones of a run measured on the fixed validation set, cached, flatness."""

import json
from pathlib import Path

import pytest

from anyframe.training.config import load_config
from anyframe.training.recipe import train

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def curves(load_script):
    return load_script("benchmarks/i2v_curves.py")


def test_flatness_gain_and_slope(curves):
    flat = curves.flatness([500, 1000, 1500, 2000, 2500], [10.0, 12.0, 12.2, 12.4, 12.5], window=1500)
    assert flat["gain"] == pytest.approx(0.5) and flat["slope_per_1000"] == pytest.approx(0.34)
    short = curves.flatness([500, 1000], [10.0, None], window=2000)
    assert short == {"gain": None, "slope_per_1000": None}
    assert curves.flatness([500, 1000], [10.0, 11.0], window=2000)["gain"] is None  # no point 2,000 steps back


def test_a_run_measured_at_its_milestones_then_read_from_cache(curves, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = load_config(ROOT / "configs" / "toy.yaml", [
        f"output_dir={run}", "data.toy.num_clips=8", "data.toy.size=32", "data.toy.num_frames=16", "train.steps=4", "train.checkpoint_every=1",
        "train.keep_checkpoints=1", "train.keep_every=2", "train.export=false", "train.log_every=2"])
    train(cfg, progress=False)
    assert [s for s, _ in curves.milestones(run, 2)] == [2, 4]
    out = tmp_path / "results"
    args = ["--run", f"toy={run}", "--every", "2", "--n", "1", "--window", "2", "--out", str(out), "--name", "c"]
    assert curves.main(args) == 0
    payload = json.loads((out / "c.json").read_text())
    points = payload["curves"]["toy"]
    assert [p["step"] for p in points] == [2, 4]
    assert all(p["train"]["n"] == 1 and p["train"]["first_frame_psnr"] is not None for p in points)
    assert payload["flatness"]["toy"]["train"]["first_frame_psnr"]["gain"] is not None
    assert (out / "c.png").stat().st_size > 0 and "Flatness" in (out / "c.md").read_text()
    # a second call measures nothing: every point comes from the cache beside the run
    monkeypatch.setattr(curves, "measure_step", lambda *a, **k: pytest.fail("measured again"))
    assert curves.main(args) == 0
    assert curves.main(["--run", f"toy={tmp_path / 'nope'}"]) == 2
