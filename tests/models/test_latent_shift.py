"""FlashI2V's layers: φ starts as the zero shift, the Fourier extractor against a numpy reference and its
limits, and the Fourier embedding starts at zero but trains."""

import itertools

import numpy as np
import pytest
import torch

from anyframe.models.latent_shift import FourierEmbedding, LatentShiftProjection, fourier_high_frequency


def _numpy_reference(s: np.ndarray, ratio: float) -> np.ndarray:
    """Direct numpy transcription of the extractor for one ``[C, H, W]`` latent, loop by loop."""
    _c, h, w = s.shape
    spectrum = np.fft.fftshift(np.fft.fft2(s, axes=(-2, -1)), axes=(-2, -1))
    magnitude = np.abs(spectrum).mean(axis=0)
    cy, cx = h // 2, w // 2
    radius = np.array([[np.hypot(y - cy, x - cx) for x in range(w)] for y in range(h)])
    total = magnitude.sum()
    cutoff = None
    for r in np.unique(radius):  # increasing radii; all bins at a radius enter together
        if magnitude[radius <= r].sum() >= ratio * total - 1e-9 * total:
            cutoff = r
            break
    mask = radius >= cutoff
    return np.abs(np.fft.ifft2(np.fft.ifftshift(spectrum * mask, axes=(-2, -1)), axes=(-2, -1)))


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("size", [(8, 8), (6, 10)])
def test_extractor_matches_a_numpy_reference(ratio, size):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 4, 1, *size, generator=g) + 0.5  # a DC component, like real latents
    out = fourier_high_frequency(s, ratio)
    assert out.shape == s.shape
    for b in range(2):
        ref = _numpy_reference(s[b, :, 0].double().numpy(), ratio)
        np.testing.assert_allclose(out[b, :, 0].numpy(), ref, atol=1e-5)


def test_ratio_near_zero_keeps_almost_everything_and_near_one_almost_nothing():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 4, 1, 16, 16, generator=g) + 1.0
    keep_all = fourier_high_frequency(s, 0.001)
    torch.testing.assert_close(keep_all, s.abs(), atol=1e-5, rtol=1e-5)  # |ifft(fft(s))| = |s|
    nearly_none = fourier_high_frequency(s, 0.999)
    assert nearly_none.norm() < 0.1 * s.norm()  # the outermost ring: one bin of 256
    # in between, the kept energy falls as the ratio rises
    energies = [fourier_high_frequency(s, r).norm().item() for r in (0.05, 0.3, 0.6, 0.9)]
    assert all(a > b for a, b in itertools.pairwise(energies))


def test_per_sample_ratios_and_4d_input():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 4, 8, 8, generator=g)
    both = fourier_high_frequency(s, torch.tensor([0.1, 0.9]))
    torch.testing.assert_close(both[0], fourier_high_frequency(s[:1], 0.1)[0])
    torch.testing.assert_close(both[1], fourier_high_frequency(s[1:], 0.9)[0])
    with pytest.raises(ValueError, match="one per sample"):
        fourier_high_frequency(s, torch.tensor([0.1, 0.2, 0.3]))


def test_extractor_passes_no_gradient():
    s = torch.randn(1, 4, 1, 8, 8, requires_grad=True)
    assert not fourier_high_frequency(s, 0.5).requires_grad


def test_untrained_phi_is_the_zero_shift_and_trains():
    phi = LatentShiftProjection(4)
    s = torch.randn(2, 4, 1, 8, 8)
    assert phi(s).abs().max() == 0
    phi(s).pow(2).add(phi(s)).sum().backward()
    assert phi.conv_out.weight.grad.abs().sum() > 0  # the zero conv receives a gradient


def test_fourier_embedding_starts_at_zero_broadcasts_over_frames_and_trains():
    embed = FourierEmbedding(4, 32, (1, 2, 2))
    features = torch.rand(2, 4, 1, 8, 8)
    out = embed(features, num_frames=5)
    assert out.shape == (2, 32, 5, 4, 4) and out.abs().max() == 0
    with torch.no_grad():
        embed.zero_proj.weight.normal_()
    out = embed(features, num_frames=5)
    torch.testing.assert_close(out[:, :, 0], out[:, :, 4])  # the same image at every frame
    # a temporal patch > 1 takes the explicit path and agrees with per-frame embedding of repeats
    wide = FourierEmbedding(4, 32, (2, 2, 2))
    assert wide(features, num_frames=4).shape == (2, 32, 2, 4, 4)
