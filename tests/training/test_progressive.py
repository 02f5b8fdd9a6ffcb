"""STIV's progressive recipe: image → video, and lower resolution / fewer frames → more."""

import pytest
import torch

from anyframe.models.dit import rope_1d, rope_2d, stiv_tiny
from anyframe.training.progressive import (
    init_from_image_model,
    init_from_smaller_model,
    smaller_model_overrides,
)


def _randomised(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _inputs(t=4):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(1, 4, t, 8, 8, generator=g), torch.tensor([300.0]), torch.randn(1, 6, 32, generator=g))


@torch.no_grad()
def test_t2i_to_t2v_starts_as_the_image_model_frame_by_frame():
    image = _randomised(stiv_tiny(in_channels=4, text_dim=32))
    video = _randomised(stiv_tiny(in_channels=4, text_dim=32), seed=5)
    fresh = init_from_image_model(video, image)
    assert fresh and all(".temporal_attn." in name for name in fresh)
    x, t, ctx = _inputs()
    per_frame = torch.cat([image(x[:, :, i : i + 1], t, ctx).sample for i in range(x.shape[2])], dim=2)
    torch.testing.assert_close(video(x, t, ctx).sample, per_frame, rtol=0, atol=1e-6)
    # the temporal layers are live (not frozen at zero) once their gates move
    video.blocks[0].modulation_offset[5].fill_(1.0)
    assert (video(x, t, ctx).sample - per_frame).abs().max() > 1e-4


@torch.no_grad()
def test_a_video_model_with_a_text_refiner_starts_from_an_image_model_without_one():
    image = _randomised(stiv_tiny(in_channels=4, text_dim=32))
    video = stiv_tiny(in_channels=4, text_dim=32, text_refiner_layers=1)
    fresh = init_from_image_model(video, image)
    assert any(n.startswith("text_refiner.") for n in fresh)
    x, t, ctx = _inputs()
    per_frame = torch.cat([image(x[:, :, i : i + 1], t, ctx).sample for i in range(x.shape[2])], dim=2)
    torch.testing.assert_close(video(x, t, ctx).sample, per_frame, rtol=0, atol=1e-6)  # the refiner: identity


@torch.no_grad()
def test_t2i_to_t2v_with_a_temporal_patch_inflates_the_patch_embedding():
    image = _randomised(stiv_tiny(in_channels=4, text_dim=32))
    video = stiv_tiny(in_channels=4, text_dim=32, patch_size=(2, 2, 2))
    init_from_image_model(video, image)
    x, t, ctx = _inputs(t=1)
    still = x.expand(1, 4, 4, 8, 8).contiguous()  # a still clip: the image repeated
    out = video(still, t, ctx).sample
    for i in range(4):
        torch.testing.assert_close(out[:, :, i : i + 1], image(x, t, ctx).sample, rtol=0, atol=1e-5)


def test_image_and_video_models_must_match():
    with pytest.raises(ValueError, match="hidden_size"):
        init_from_image_model(stiv_tiny(in_channels=4, text_dim=32), stiv_tiny(in_channels=4, text_dim=32, hidden_size=64))


@torch.no_grad()
def test_smaller_model_init_interpolates_rope():
    small = _randomised(stiv_tiny(in_channels=4, text_dim=32, sample_size=(4, 4, 4)))
    overrides = smaller_model_overrides(small)
    assert overrides == {"rope_base_grid": (4, 2, 2)}
    big = stiv_tiny(in_channels=4, text_dim=32, sample_size=(8, 8, 8), **overrides)
    init_from_smaller_model(big, small)
    assert all(torch.equal(a, b) for a, b in zip(big.state_dict().values(), small.state_dict().values()))
    # 8 temporal tokens interpolated into the 4-token range: position 2k of the big grid is position k
    cos_big, _ = rope_1d(8, 16, 10000.0, base=4)
    cos_small, _ = rope_1d(4, 16, 10000.0)
    torch.testing.assert_close(cos_big[::2], cos_small)
    cos2_big, _ = rope_2d(4, 4, 16, 10000.0, base=(2, 2))
    cos2_small, _ = rope_2d(2, 2, 16, 10000.0)
    torch.testing.assert_close(cos2_big.view(4, 4, 16)[::2, ::2].reshape(4, 16), cos2_small)
    # at its base size the big model computes what the small one does
    x, t, ctx = _inputs(t=4)
    x = x[..., :4, :4]
    torch.testing.assert_close(big(x, t, ctx).sample, small(x, t, ctx).sample)
    with pytest.raises(ValueError, match="smaller_model_overrides"):
        init_from_smaller_model(stiv_tiny(in_channels=4, text_dim=32), small)
