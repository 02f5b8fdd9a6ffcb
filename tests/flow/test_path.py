import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from anyframe.flow.path import add_noise, flow_matching_loss, velocity_target
from anyframe.flow.timesteps import sample_training_sigmas, shift_sigmas


def test_path_endpoints_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 5, 5, generator=g), torch.randn(2, 3, 4, 5, 5, generator=g)
    torch.testing.assert_close(add_noise(x0, eps, torch.zeros(2)), x0)
    torch.testing.assert_close(add_noise(x0, eps, torch.ones(2)), eps)
    s = torch.tensor([0.3, 0.8])
    x = add_noise(x0, eps, s)
    torch.testing.assert_close(x[1], 0.2 * x0[1] + 0.8 * eps[1])
    # d x_σ / dσ = ε − x0
    ds = 1e-3
    fd = (add_noise(x0, eps, s + ds) - x) / ds
    torch.testing.assert_close(fd, velocity_target(x0, eps), atol=2e-3, rtol=1e-3)


def test_per_frame_sigma_equals_scalar_when_equal():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 5, 5, generator=g), torch.randn(2, 3, 4, 5, 5, generator=g)
    s = torch.tensor([0.3, 0.8])
    torch.testing.assert_close(add_noise(x0, eps, s[:, None].expand(2, 4)), add_noise(x0, eps, s))
    per_frame = torch.tensor([[0.0, 0.5, 0.5, 1.0]] * 2)
    x = add_noise(x0, eps, per_frame)
    torch.testing.assert_close(x[:, :, 0], x0[:, :, 0])
    torch.testing.assert_close(x[:, :, 3], eps[:, :, 3])


def test_masked_loss_ignores_masked_frames_and_averages_per_sample():
    target = torch.zeros(2, 1, 4, 2, 2)
    pred = torch.zeros(2, 1, 4, 2, 2)
    pred[:, :, 0] = 10.0  # error only on frame 0
    mask = torch.ones(2, 1, 4, 1, 1)
    mask[:, :, 0] = 0
    assert flow_matching_loss(pred, target, mask).item() == 0.0
    assert flow_matching_loss(pred, target).item() == pytest.approx(100.0 / 4)
    pred[1, :, 1] = 2.0
    per = flow_matching_loss(pred, target, mask, reduction="none")
    torch.testing.assert_close(per, torch.tensor([0.0, 4.0 / 3]))
    w = torch.tensor([1.0, 0.5])
    assert flow_matching_loss(pred, target, mask, weight=w).item() == pytest.approx((0 + 0.5 * 4 / 3) / 2)


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
def test_shift_matches_diffusers(shift):
    # the training schedule: diffusers shifts t/1000 for t = 1000..1
    ref = FlowMatchEulerDiscreteScheduler(shift=shift)
    base = torch.arange(1000, 0, -1, dtype=torch.float32) / 1000
    torch.testing.assert_close(shift_sigmas(base, shift), ref.sigmas, atol=1e-6, rtol=1e-6)
    # the inference schedule: linear between the (shifted) training endpoints, then shifted
    ref.set_timesteps(20)
    lin = torch.linspace(1.0, float(ref.sigma_min), 20)
    torch.testing.assert_close(shift_sigmas(lin, shift), ref.sigmas[:-1], atol=1e-6, rtol=1e-6)


def test_training_sigmas_distributions_and_determinism():
    g = torch.Generator().manual_seed(0)
    s = sample_training_sigmas(20000, g, "logit_normal")
    assert 0 < s.min() and s.max() < 1
    assert s.median().item() == pytest.approx(0.5, abs=0.02)  # sigmoid(N(0,1)) is symmetric about 0.5
    u = sample_training_sigmas(20000, torch.Generator().manual_seed(0), "uniform")
    assert u.mean().item() == pytest.approx(0.5, abs=0.01)
    assert u.std().item() == pytest.approx((1 / 12) ** 0.5, abs=0.01)
    shifted = sample_training_sigmas(20000, torch.Generator().manual_seed(0), "logit_normal", shift=3.0)
    torch.testing.assert_close(shifted, shift_sigmas(s, 3.0))
    assert shifted.mean() > s.mean()
    a = sample_training_sigmas(8, torch.Generator().manual_seed(5), num_frames=4)
    b = sample_training_sigmas(8, torch.Generator().manual_seed(5), num_frames=4)
    assert a.shape == (8, 4) and torch.equal(a, b)
    with pytest.raises(ValueError):
        sample_training_sigmas(4, g, "bogus")


def test_object_loss_weights_follow_the_masks():
    from anyframe.flow.path import object_loss_weights

    masks = torch.zeros(2, 3, 8, 8)  # two objects, 3 frames, 8×8 px → a 4×4 latent grid (2×2 px cells)
    masks[0, :, 0:2, 0:2] = 1  # object 0 fills the top-left cell
    masks[1, 1, 4:5, 4:6] = 1  # object 1 covers half of cell (2, 2), in frame 1 only
    w = object_loss_weights([masks, None], (2, 4, 3, 4, 4), 4.0)
    assert w.shape == (2, 1, 3, 4, 4)
    assert torch.all(w[1] == 1)  # no masks: uniform
    assert torch.all(w[0, 0, :, 0, 0] == 5)
    assert w[0, 0, 1, 2, 2] == pytest.approx(3.0) and w[0, 0, 0, 2, 2] == 1
    assert w[0].sum() == pytest.approx(48 + 3 * 4 + 2)  # ones, plus the covered fractions × 4
    # an error on the object counts 5× one on the background, and the loss stays a weighted mean
    pred, target = torch.zeros(1, 1, 1, 4, 4), torch.zeros(1, 1, 1, 4, 4)
    on_object, off_object = pred.clone(), pred.clone()
    on_object[..., 0, 0], off_object[..., 3, 3] = 1.0, 1.0
    one = object_loss_weights([masks[:, :1]], (1, 1, 1, 4, 4), 4.0)
    assert flow_matching_loss(on_object, target, one) == pytest.approx(5 / 20)
    assert flow_matching_loss(off_object, target, one) == pytest.approx(1 / 20)
    with pytest.raises(ValueError, match="latent frames"):
        object_loss_weights([masks], (1, 4, 5, 4, 4), 4.0)


def test_temporal_difference_loss_weighs_errors_that_move():
    from anyframe.flow.path import temporal_difference_loss

    target = torch.zeros(2, 1, 4, 4, 4)
    static, moving = target.clone(), target.clone()
    static[..., 1, 1] = 1.0  # the same wrong cell in every frame
    for t in range(4):
        moving[:, :, t, 1, t] = 1.0  # a wrong cell that moves one cell a frame
    # both have the same per-element loss; only the moving one changes between frames
    assert flow_matching_loss(static, target) == pytest.approx(flow_matching_loss(moving, target).item())
    assert torch.all(temporal_difference_loss(static, target) == 0)
    torch.testing.assert_close(temporal_difference_loss(moving, target), torch.full((2,), 2 / 16))
    # a pair counts only when both frames do: with frame 0 replaced (mask 0) two pairs of three remain
    mask = torch.ones(2, 1, 4, 1, 1)
    mask[:, :, 0] = 0
    torch.testing.assert_close(temporal_difference_loss(moving, target, mask), torch.full((2,), 2 / 16))
    mask[1, :, 1:] = 0  # sample 1: no pair left
    assert temporal_difference_loss(moving, target, mask)[1] == 0
    assert torch.all(temporal_difference_loss(moving[:, :, :1], target[:, :, :1]) == 0)  # an image
