"""Frame replacement: inference inputs per branch, the keyframe path, training inputs, task mixture."""

import pytest
import torch

from anyframe.conditioning import (
    FrameReplacement,
    ModelInputs,
    TaskMixture,
    TrainingBatch,
)
from anyframe.flow.guidance import FULL, IMAGE_ONLY, UNCOND
from anyframe.models.text_encoder import TextCondition

from fake_encoders import encode

B, C, T, H, W = 2, 4, 8, 4, 4


def _text(value, b=B):
    return TextCondition(torch.full((b, 3, 5), float(value)), torch.ones(b, 3, dtype=torch.bool))


def _state(method, indices=(0, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(B, C, T, H, W, generator=g)
    keyframes = torch.randn(B, C, len(indices), H, W, generator=g)
    state = encode(method, noise, _text(1), _text(-1), keyframes, indices)
    return state, noise, keyframes


def test_full_branch_replaces_frames_and_keeps_shared_sigma():
    method = FrameReplacement()
    state, _noise, kf = _state(method)
    x = torch.randn(B, C, T, H, W)
    sigma = torch.tensor([0.7, 0.7])
    inp = method.model_inputs(x, sigma, state, FULL)
    assert torch.equal(inp.hidden_states[:, :, 0], kf[:, :, 0])
    assert torch.equal(inp.hidden_states[:, :, 5], kf[:, :, 1])
    others = [1, 2, 3, 4, 6, 7]
    assert torch.equal(inp.hidden_states[:, :, others], x[:, :, others])
    assert inp.timestep.shape == (B,) and torch.allclose(inp.timestep, sigma * 1000)
    assert torch.equal(inp.encoder_hidden_states, _text(1).embeds)


def test_clean_timestep_gives_conditioned_frames_sigma_zero():
    method = FrameReplacement(clean_timestep=True)
    state, _, _ = _state(method)
    inp = method.model_inputs(torch.randn(B, C, T, H, W), torch.tensor([0.7, 0.4]), state, FULL)
    assert inp.timestep.shape == (B, T)
    assert inp.timestep[:, [0, 5]].abs().max() == 0
    torch.testing.assert_close(inp.timestep[:, 1], torch.tensor([700.0, 400.0]))
    # without an image the timestep stays scalar
    uncond = method.model_inputs(torch.randn(B, C, T, H, W), torch.tensor([0.7, 0.4]), state, UNCOND)
    assert uncond.timestep.shape == (B,)


def test_unconditional_branch_drops_text_and_image_together():
    method = FrameReplacement()
    state, _, _ = _state(method)
    x = torch.randn(B, C, T, H, W)
    inp = method.model_inputs(x, torch.tensor([0.5, 0.5]), state, UNCOND)
    assert torch.equal(inp.hidden_states, x)
    assert torch.equal(inp.encoder_hidden_states, _text(-1).embeds)
    img_only = method.model_inputs(x, torch.tensor([0.5, 0.5]), state, IMAGE_ONLY)
    assert torch.equal(img_only.encoder_hidden_states, _text(-1).embeds)
    assert not torch.equal(img_only.hidden_states, x)


def test_after_step_keeps_keyframes_on_their_path_and_finalize_is_exact():
    method = FrameReplacement()
    state, noise, kf = _state(method)
    x = torch.randn(B, C, T, H, W)
    s = torch.tensor([0.3, 0.3])
    y = method.after_step(x, s, state)
    torch.testing.assert_close(y[:, :, 5], 0.7 * kf[:, :, 1] + 0.3 * noise[:, :, 5])
    assert torch.equal(y[:, :, 3], x[:, :, 3])
    end = method.after_step(x, torch.zeros(2), state)
    assert torch.equal(end[:, :, 0], kf[:, :, 0]) and torch.equal(end[:, :, 5], kf[:, :, 1])
    final = method.finalize(torch.randn(B, C, T, H, W), state)
    assert torch.equal(final[:, :, [0, 5]], kf)


def test_no_keyframes_is_text_to_video():
    method = FrameReplacement()
    noise = torch.randn(B, C, T, H, W)
    state = encode(method, noise, _text(1), _text(-1))
    assert not state.has_image and state.generated_mask() is None
    x = torch.randn(B, C, T, H, W)
    assert torch.equal(method.model_inputs(x, torch.ones(B), state, FULL).hidden_states, x)
    assert method.canonical_branch(IMAGE_ONLY, state) == UNCOND
    assert torch.equal(method.finalize(x, state), x)


def test_prepare_rejects_bad_indices():
    method = FrameReplacement()
    with pytest.raises(ValueError):
        _state(method, indices=(2, 2))
    with pytest.raises(ValueError):
        _state(method, indices=(0, T))


def test_model_inputs_cat_expands_scalar_timesteps():
    a = ModelInputs(torch.zeros(1, C, T, H, W), torch.tensor([500.0]), torch.zeros(1, 3, 5))
    b = ModelInputs(torch.ones(1, C, T, H, W), torch.full((1, T), 200.0), torch.ones(1, 3, 5))
    cat = ModelInputs.cat([a, b])
    assert cat.timestep.shape == (2, T)
    assert cat.timestep[0].tolist() == [500.0] * T and cat.timestep[1].tolist() == [200.0] * T
    assert cat.hidden_states.shape[0] == 2 and cat.encoder_attention_mask is None


# ------------------------------------------------------------------ training


def _batch(b=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TrainingBatch(latents=torch.randn(b, C, T, H, W, generator=g), text=_text(1, b), null_text=_text(-1, b))


def test_training_inputs_replace_frames_and_mask_the_loss():
    method = FrameReplacement(task_weights={"t2v": 0, "ti2v": 0, "any_frame": 0, "first_last": 1, "first_k": 0}, image_dropout=0.0, text_dropout=0.0)
    batch = _batch()
    noise = torch.randn_like(batch.latents)
    sigma = torch.tensor([0.6, 0.2])
    out = method.training_inputs(batch, sigma, noise, torch.Generator().manual_seed(0))
    x0 = batch.latents
    hidden = out.model_inputs.hidden_states
    assert torch.equal(hidden[:, :, [0, T - 1]], x0[:, :, [0, T - 1]])
    torch.testing.assert_close(hidden[0, :, 3], 0.4 * x0[0, :, 3] + 0.6 * noise[0, :, 3])
    torch.testing.assert_close(out.target, noise - x0)
    assert out.loss_mask.shape == (B, 1, T, 1, 1)
    assert out.loss_mask[:, 0, [0, T - 1]].sum() == 0 and out.loss_mask[:, 0, 1:-1].min() == 1
    assert out.info["tasks"] == ["first_last"] * B


def test_training_dropout_rates_match_stiv():
    method = FrameReplacement(task_weights={"t2v": 0, "ti2v": 1, "any_frame": 0, "first_last": 0, "first_k": 0})
    n = 4000
    batch = _batch(b=n)
    out = method.training_inputs(batch, torch.full((n,), 0.5), torch.randn_like(batch.latents), torch.Generator().manual_seed(1))
    drop_text, drop_image = out.info["drop_text"].float(), out.info["drop_image"].float()
    assert drop_text.mean().item() == pytest.approx(0.10, abs=0.02)
    assert drop_image.mean().item() == pytest.approx(0.08, abs=0.02)
    # independent: P(both) ≈ 0.008
    assert (drop_text * drop_image).mean().item() == pytest.approx(0.008, abs=0.006)
    # dropped text → the null text; dropped image → no replaced frame and a full loss mask
    dropped = out.info["drop_text"]
    assert torch.equal(out.model_inputs.encoder_hidden_states[dropped], _text(-1, int(dropped.sum())).embeds)
    di = out.info["drop_image"]
    assert not out.info["frame_mask"][di].any() and out.loss_mask[di].min() == 1
    assert out.info["frame_mask"][~di, 0].all()


def test_task_mixture_masks_and_frequencies():
    mixture = TaskMixture(max_k=3)
    masks, names = mixture.sample(5000, T, torch.Generator().manual_seed(0))
    for task in ("t2v", "ti2v", "any_frame", "first_last", "first_k"):
        assert names.count(task) / 5000 == pytest.approx(0.2, abs=0.03), task
    for m, name in zip(masks, names):
        idx = m.nonzero().flatten().tolist()
        if name == "t2v":
            assert idx == []
        elif name == "ti2v":
            assert idx == [0]
        elif name == "any_frame":
            assert len(idx) == 1
        elif name == "first_last":
            assert idx == [0, T - 1]
        else:
            assert 1 <= len(idx) <= 3 and idx == list(range(len(idx)))
    any_frames = {int(m.nonzero()) for m, n in zip(masks, names) if n == "any_frame"}
    assert any_frames == set(range(T))
    a, _ = TaskMixture().sample(16, T, torch.Generator().manual_seed(3))
    b, _ = TaskMixture().sample(16, T, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        FrameReplacement(task_weights={"t2v": 0, "ti2v": 0, "any_frame": 0, "first_last": 0, "first_k": 0})


def test_training_clean_timestep():
    method = FrameReplacement(clean_timestep=True, task_weights={"t2v": 0, "ti2v": 1, "any_frame": 0, "first_last": 0, "first_k": 0}, image_dropout=0.0)
    out = method.training_inputs(_batch(), torch.tensor([0.5, 0.9]), torch.randn(B, C, T, H, W), torch.Generator().manual_seed(0))
    ts = out.model_inputs.timestep
    assert ts.shape == (B, T) and ts[:, 0].abs().max() == 0
    torch.testing.assert_close(ts[:, 1], torch.tensor([500.0, 900.0]))


def test_method_config_round_trip(tmp_path):
    method = FrameReplacement(clean_timestep=True, image_dropout=0.2, task_weights={"t2v": 2.0}, max_k=4)
    method.save_pretrained(tmp_path / "c")
    loaded = FrameReplacement.from_pretrained(tmp_path / "c", use_safetensors=True)
    assert loaded.config.clean_timestep and loaded.config.image_dropout == 0.2 and loaded.config.max_k == 4
    assert loaded.mixture == method.mixture


def test_training_step_through_the_backbone():
    # the training half end to end: method → backbone → masked loss → gradients; the prediction at
    # replaced frames does not enter the loss
    from anyframe.flow.path import flow_matching_loss
    from anyframe.models.dit import stiv_tiny

    model = stiv_tiny(in_channels=C, text_dim=5)
    with torch.no_grad():
        model.proj_out.weight.normal_(std=0.1)
    method = FrameReplacement(task_weights={"t2v": 0, "ti2v": 1, "any_frame": 0, "first_last": 0, "first_k": 0}, image_dropout=0.0)
    batch = _batch()
    out = method.training_inputs(batch, torch.tensor([0.5, 0.3]), torch.randn_like(batch.latents), torch.Generator().manual_seed(0))
    pred = model(**out.model_inputs.as_kwargs()).sample
    loss = flow_matching_loss(pred, out.target, out.loss_mask, out.loss_weight)
    loss.backward()
    assert torch.isfinite(loss) and model.proj_out.weight.grad.abs().sum() > 0
    tampered = pred.detach().clone()
    tampered[:, :, 0] += 100.0  # frame 0 is the replaced (TI2V) frame
    assert flow_matching_loss(tampered, out.target, out.loss_mask).item() == pytest.approx(
        flow_matching_loss(pred.detach(), out.target, out.loss_mask).item()
    )


def test_task_weights_name_the_tasks_trained_and_the_others_get_zero():
    assert FrameReplacement(task_weights={"ti2v": 1}).mixture.weights().tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert FrameReplacement().mixture.weights().tolist() == [0.2] * 5  # none named: every task
    with pytest.raises(ValueError, match="unknown tasks"):
        FrameReplacement(task_weights={"walk": 1})
