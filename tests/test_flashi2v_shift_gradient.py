"""benchmarks/flashi2v_shift_gradient.py: the derivative of the training loss with respect to the shift's scale."""

import json

import numpy as np
import pytest
import torch

from anyframe.evaluation.harness import Conditioning
from anyframe.pipelines import build_world_pipeline
from anyframe.world.suite import sample_suite


@pytest.fixture(scope="module")
def probe(load_script):
    return load_script("benchmarks/flashi2v_shift_gradient.py")


@pytest.fixture(scope="module")
def case():
    case = sample_suite(1, "train", seed=70_000, tasks=("ti2v",), prefix="flashi2v")[0]
    return case, Conditioning.of(case)


def flash_model(**options):
    pipe = build_world_pipeline("tiny", seed=0, method="flashi2v", method_options=options)
    torch.manual_seed(0)
    with torch.no_grad():  # a fresh backbone's zero-initialised output layers answer every input with 0
        for p in pipe.transformer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return pipe


def test_the_derivative_is_the_finite_difference_of_the_loss(probe, case, monkeypatch):
    pipe = flash_model(shift_init=1.0)
    sigmas = [0.3, 0.9]
    out = probe.shift_gradients(pipe, *case, sigmas)
    assert out["grad"] == pytest.approx(out["grad_frame0"] + out["grad_rest"])
    phi = type(pipe.conditioning).phi
    losses = {}
    for scale in (0.99, 1.01):  # the whole shift scaled, as the probe's α does
        monkeypatch.setattr(type(pipe.conditioning), "phi", lambda self, image, k=scale: k * phi(self, image))
        losses[scale] = probe.shift_gradients(pipe, *case, sigmas)["loss"]
    monkeypatch.setattr(type(pipe.conditioning), "phi", phi)
    finite = (losses[1.01] - losses[0.99]) / 0.02
    np.testing.assert_allclose(out["grad"], finite, rtol=0.05, atol=1e-4)
    assert np.all(out["loss_without_shift"] != out["loss"])  # α = 0 is another input
    assert "phi" not in vars(pipe.conditioning)  # the method's own phi is back


def test_a_model_without_a_shift_is_refused(probe, case):
    with pytest.raises(SystemExit, match="latent shift"):
        probe.shift_gradients(build_world_pipeline("tiny", seed=0), *case, [0.5])


def test_the_weights_are_the_logit_normal_density_on_the_grid(probe):
    w = probe.logit_normal_weights([0.1, 0.3, 0.5, 0.7, 0.9])
    assert w.sum() == pytest.approx(1.0) and w[2] == w.max() and w[0] == pytest.approx(w[4])
    assert probe.logit_normal_weights([0.1, 0.5, 0.9], mean=1.0).argmax() == 2  # shifted towards noise


def test_the_script_writes_its_table_and_refuses_bad_sigmas(probe, tmp_path, capsys):
    folder = tmp_path / "flash"
    flash_model(shift_init=1.0).save_pretrained(folder)
    args = ["--model", f"m={folder}", "--n", "2", "--sigmas", "0.2,0.8", "--out", str(tmp_path), "--name", "g"]
    assert probe.main(args) == 0
    result = json.loads((tmp_path / "g.json").read_text())["results"]["m"]
    assert [e["sigma"] for e in result["per_sigma"]] == [0.2, 0.8]
    assert result["net"] == pytest.approx(sum(e["weight"] * e["grad"] for e in result["per_sigma"]))
    assert "| 0.8 |" in (tmp_path / "g.md").read_text()
    assert probe.main(args[:4] + ["--sigmas", "0.8,1.0"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
