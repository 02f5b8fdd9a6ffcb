"""The sampling loop against plain diffusers loops, for Euler and UniPC."""

import pytest
import torch

from anyframe.flow.sampling import make_scheduler, sample


def _velocity(x, sigma):
    # a smooth, state-dependent velocity so multistep solvers differ from Euler
    return torch.tanh(x) * (1 + sigma.view(-1, *([1] * (x.ndim - 1))))


@pytest.mark.parametrize("name", ["euler", "unipc"])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_loop_matches_diffusers(name, shift):
    x1 = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    ours = sample(_velocity, x1.clone(), make_scheduler(name, shift), 12)

    ref = make_scheduler(name, shift)
    ref.set_timesteps(12)
    x = x1.clone()
    for t in ref.timesteps:
        # diffusers' pipelines give the model the scheduler's timestep t (UniPC rounds it to an integer)
        x = ref.step(_velocity(x, (t.float() / 1000).expand(2)), t, x).prev_sample
    torch.testing.assert_close(ours, x, rtol=0, atol=0)
    if name == "unipc":  # the rounding is real: the model's σ is not the scheduler's
        assert not torch.equal(ref.timesteps.float() / 1000, ref.sigmas[:-1].float())


def test_euler_is_exact_on_straight_paths():
    # with the exact velocity of a straight path, Euler recovers x0 exactly (any schedule)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(1, 2, 3, 4, 4, generator=g), torch.randn(1, 2, 3, 4, 4, generator=g)
    out = sample(lambda x, s: eps - x0, eps.clone(), make_scheduler("euler", 3.0), 7)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)


def test_after_step_and_on_step_hooks():
    seen = []
    x1 = torch.randn(1, 2, 3, 2, 2)

    def after(x, sigma_next):
        seen.append(float(sigma_next[0]))
        return x

    sample(lambda x, s: torch.zeros_like(x), x1, make_scheduler("euler"), 5, after_step=after)
    assert len(seen) == 5 and seen[-1] == 0.0 and seen == sorted(seen, reverse=True)
    # on_step may replace the state
    out = sample(lambda x, s: torch.zeros_like(x), x1, make_scheduler("euler"), 3, on_step=lambda i, s, x: x + 1)
    torch.testing.assert_close(out, x1 + 3)


def test_unknown_sampler():
    with pytest.raises(ValueError):
        make_scheduler("ddim")
