"""STIV backbone invariants on tiny configs."""

import pytest
import torch

from anyframe.models.dit import STIV_SIZES, STIVTransformer, build_stiv, stiv_tiny

from model_helpers import randomise

_randomise = randomise


def _inputs(b=2, c=4, t=4, h=8, w=8, text_dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, 6, dtype=torch.bool)
    mask[0, 4:] = False
    return dict(
        hidden_states=torch.randn(b, c, t, h, w, generator=g),
        timestep=torch.tensor([700.0, 250.0])[:b],
        encoder_hidden_states=torch.randn(b, 6, text_dim, generator=g),
        encoder_attention_mask=mask,
        micro_conditions=torch.tensor([[1.0, 32, 32, 0, 0]] * b),
    )


@pytest.fixture(scope="module")
def model():
    return _randomise(stiv_tiny(in_channels=4, text_dim=32))


def test_shapes_and_zero_init_output():
    fresh = stiv_tiny(in_channels=4, text_dim=32, extra_out_channels=2)
    out = fresh(**_inputs()).sample
    assert out.shape == (2, 6, 4, 8, 8)
    assert torch.count_nonzero(out) == 0  # adaLN-Zero + zero output layer


def test_untrained_blocks_are_identity():
    # adaLN-Zero: every gate starts at 0, and the (ungated, PixArt) cross-attention output projection
    # starts at 0, so no other block weight can affect the output
    m = stiv_tiny(in_channels=4, text_dim=32)
    with torch.no_grad():
        m.proj_out.weight.normal_()  # make the output non-zero
    a = m(**_inputs()).sample
    assert a.abs().max() > 0
    with torch.no_grad():
        for block in m.blocks:
            for name, p in block.named_parameters():
                if name not in ("modulation_offset", "cross_attn.to_out.weight", "cross_attn.to_out.bias"):
                    p.add_(torch.randn_like(p))
    torch.testing.assert_close(m(**_inputs()).sample, a, rtol=0, atol=0)
    with torch.no_grad():
        m.blocks[0].modulation_offset[2].fill_(0.5)  # open the spatial gate of block 0
    assert (m(**_inputs()).sample - a).abs().max() > 1e-3


def test_per_frame_timesteps_equal_scalar_when_equal(model):
    inp = _inputs()
    a = model(**inp).sample
    inp["timestep"] = inp["timestep"][:, None].expand(-1, 4).contiguous()
    b = model(**inp).sample
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and per-frame timesteps really are per frame: changing one frame's σ changes the output
    inp["timestep"] = inp["timestep"].clone()
    inp["timestep"][:, 1] = 0.0
    c = model(**inp).sample
    assert (c - a).abs().max() > 1e-3


def test_temporal_patch_pools_per_frame_timesteps():
    m = _randomise(stiv_tiny(in_channels=4, text_dim=32, patch_size=(2, 2, 2)))
    inp = _inputs()
    out = m(**inp).sample
    assert out.shape == inp["hidden_states"].shape
    inp["timestep"] = inp["timestep"][:, None].expand(-1, 4).contiguous()
    torch.testing.assert_close(m(**inp).sample, out, atol=1e-5, rtol=1e-5)
    inp["hidden_states"] = inp["hidden_states"][:, :, :3]
    with pytest.raises(ValueError, match="divisible"):
        m(**inp)


def test_padding_tokens_are_ignored(model):
    inp = _inputs()
    a = model(**inp).sample
    inp["encoder_hidden_states"] = inp["encoder_hidden_states"].clone()
    inp["encoder_hidden_states"][0, 4:] = 100.0  # padded positions of sample 0
    b = model(**inp).sample
    torch.testing.assert_close(a[0], b[0])
    inp["encoder_hidden_states"][0, 1] = 100.0  # a real token
    assert (model(**inp).sample[0] - a[0]).abs().max() > 1e-4


def test_conditions_change_the_output(model):
    base = model(**_inputs()).sample
    for key, value in [
        ("timestep", torch.tensor([10.0, 990.0])),
        ("micro_conditions", torch.tensor([[3.0, 64, 48, 4, 2]] * 2)),
    ]:
        inp = _inputs()
        inp[key] = value
        assert (model(**inp).sample - base).abs().max() > 1e-4, key


def test_factorized_attention_mixes_space_and_time(model):
    inp = _inputs(b=1)
    inp["timestep"] = inp["timestep"][:1]
    a = model(**inp).sample
    inp["hidden_states"] = inp["hidden_states"].clone()
    inp["hidden_states"][:, :, 0, 0:2, 0:2] += 5.0  # one token of frame 0
    b = model(**inp).sample
    changed = (b - a).abs().amax(dim=(0, 1))  # [T, H, W]
    assert changed[0, 6:, 6:].max() > 1e-4  # another position of the same frame (spatial attention)
    assert changed[3, 0:2, 0:2].max() > 1e-4  # the same position in another frame (temporal attention)


def test_rope_makes_attention_position_aware():
    # with a spatially constant input, only RoPE distinguishes positions... and rotating all
    # positions equally keeps relative structure: shifting content shifts the output (translation
    # equivariance away from borders is not exact with patching; test distinct outputs instead)
    m = _randomise(stiv_tiny(in_channels=4, text_dim=32))
    inp = _inputs(b=1)
    inp["timestep"] = inp["timestep"][:1]
    x = torch.zeros_like(inp["hidden_states"])
    x[:, :, :, 2:4, 2:4] = 1.0
    inp["hidden_states"] = x
    out = m(**inp).sample
    # tokens with identical content but different positions get different outputs
    assert (out[..., 0:2, 0:2] - out[..., 6:8, 6:8]).abs().max() > 1e-4


def test_gradient_checkpointing_gives_same_gradients():
    m = _randomise(stiv_tiny(in_channels=4, text_dim=32)).train()
    inp = _inputs()
    m(**inp).sample.square().mean().backward()
    ref = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.enable_gradient_checkpointing()
    m(**inp).sample.square().mean().backward()
    for r, p in zip(ref, m.parameters()):
        torch.testing.assert_close(p.grad, r, atol=1e-6, rtol=1e-5)


def test_extra_channels_start_as_identity(model):
    inp = _inputs()
    ref = model(**inp).sample
    grown = model.with_extra_channels(extra_in_channels=5, extra_out_channels=4)
    assert grown.config.extra_in_channels == 5 and grown.config.extra_out_channels == 4
    extra = torch.randn(2, 5, 4, 8, 8)
    out = grown(**inp, extra_channels=extra).sample
    assert out.shape == (2, 8, 4, 8, 8)
    torch.testing.assert_close(out[:, :4], ref, rtol=0, atol=1e-6)
    assert torch.count_nonzero(out[:, 4:]) == 0
    with pytest.raises(ValueError, match="extra input channels"):
        grown(**inp)  # missing the extra channels
    # a fresh model with extra channels also ignores them at init
    fresh = _randomise(stiv_tiny(in_channels=4, text_dim=32, extra_in_channels=3))
    with torch.no_grad():
        fresh.patch_embed.weight[:, 4:].zero_()
    a = fresh(**inp, extra_channels=torch.zeros(2, 3, 4, 8, 8)).sample
    b = fresh(**inp, extra_channels=torch.randn(2, 3, 4, 8, 8)).sample
    torch.testing.assert_close(a, b)


def test_extra_channel_weights_initialised_to_zero():
    m = stiv_tiny(in_channels=4, text_dim=32, extra_in_channels=3)
    assert torch.count_nonzero(m.patch_embed.weight[:, 4:]) == 0
    assert torch.count_nonzero(m.patch_embed.weight[:, :4]) > 0


def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = STIVTransformer.from_pretrained(tmp_path / "m").eval()
    inp = _inputs()
    assert torch.equal(model(**inp).sample, loaded(**inp).sample)


def test_image_input_skips_temporal_attention():
    m = _randomise(stiv_tiny(in_channels=4, text_dim=32))
    inp = _inputs(t=1)
    a = m(**inp).sample
    with torch.no_grad():
        for block in m.blocks:
            block.temporal_attn.to_out.weight.add_(1.0)
    torch.testing.assert_close(m(**inp).sample, a)  # single frame: temporal layers unused


def test_bad_inputs():
    m = stiv_tiny(in_channels=4, text_dim=32)
    inp = _inputs()
    inp["timestep"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="per-frame timestep"):
        m(**inp)
    inp = _inputs()
    inp["micro_conditions"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="micro_conditions"):
        m(**inp)
    with pytest.raises(ValueError, match="divisible by 4"):
        STIVTransformer(hidden_size=30, num_heads=3)


@pytest.mark.parametrize(
    "size,layers,width,heads,params",
    [("XL", 28, 1152, 18, 0.77e9), ("XXL", 38, 1536, 24, 1.84e9), ("M", 46, 3072, 48, 8.84e9)],
)
def test_named_sizes_match_stiv_table_1(size, layers, width, heads, params):
    with torch.device("meta"):
        m = build_stiv(size, in_channels=8, text_dim=1024)
    assert (m.config.num_layers, m.config.hidden_size, m.config.num_heads) == (layers, width, heads)
    n = sum(p.numel() for p in m.parameters())
    assert n == pytest.approx(params, rel=0.02)


def test_size_registry():
    assert set(STIV_SIZES) == {"tiny", "S", "XL", "XXL", "M"}
    with pytest.raises(ValueError):
        build_stiv("XXXL")


def test_qk_norm_is_rmsnorm_in_fp32_and_fused_under_bf16_autocast():
    from anyframe.models.dit import RMSNorm

    norm = RMSNorm(8, eps=1e-6)
    ref = torch.nn.RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        ref.weight.copy_(norm.weight)
    x = torch.randn(3, 5, 8)
    assert torch.equal(norm(x), ref(x))  # fp32: nn.RMSNorm exactly
    assert set(norm.state_dict()) == set(ref.state_dict())
    m = _randomise(stiv_tiny(in_channels=4, text_dim=32))
    seen = []
    real = torch.nn.functional.rms_norm

    def spy(x, shape, weight=None, eps=None):
        seen.append((x.dtype, None if weight is None else weight.dtype))
        return real(x, shape, weight, eps)

    # torch warns only once per process when the dtypes differ, so watch the call instead of the warning
    with pytest.MonkeyPatch.context() as mp, torch.autocast("cpu", dtype=torch.bfloat16):
        mp.setattr(torch.nn.functional, "rms_norm", spy)
        out = m(**_inputs()).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert seen and all(x == w == torch.bfloat16 for x, w in seen)  # the fused kernel's condition: one dtype


def test_attention_runs_in_fp32_under_cpu_bf16_autocast_and_stays_bf16_outside():
    """torch's CPU attention backward is slower in bf16 than in fp32, so in training under CPU bf16 autocast the
    backbone attends in fp32 — every SDPA call gets fp32 inputs with autocast off — and returns to bf16 after.
    Without gradients (inference, where bf16's forward is the faster) and in fp32 nothing changes."""
    m = _randomise(stiv_tiny(in_channels=4, text_dim=32))
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return real(q, k, v, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
        fp32 = m(**_inputs()).sample
        assert seen and all(d == (torch.float32,) * 3 + (False,) for d in seen)
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(**_inputs()).sample
        assert seen and all(d == (torch.float32,) * 3 + (False,) for d in seen), seen
        seen.clear()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            m(**_inputs())
        assert seen and all(d == (torch.bfloat16,) * 3 + (True,) for d in seen), seen
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert torch.allclose(out.float(), fp32, atol=0.1 * fp32.abs().max().item())  # the same model, to bf16's precision
    out.float().sum().backward()  # the backward crosses the fp32 island
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in m.parameters())


def test_without_a_refiner_cross_attention_reads_a_bag_of_words(model):
    # No position reaches the text tokens: permuting them (and their mask) leaves the velocity unchanged.
    # With a text refiner (1D RoPE over the tokens) word order matters.
    inp = _inputs()
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    shuffled = {**inp, "encoder_hidden_states": inp["encoder_hidden_states"][:, perm],
                "encoder_attention_mask": inp["encoder_attention_mask"][:, perm]}
    torch.testing.assert_close(model(**shuffled).sample, model(**inp).sample, rtol=0, atol=1e-5)
    refined = _randomise(stiv_tiny(in_channels=4, text_dim=32, text_refiner_layers=1))
    assert (refined(**shuffled).sample - refined(**inp).sample).abs().max() > 1e-3
    # padding still does not count with the refiner
    padded = {**inp, "encoder_hidden_states": inp["encoder_hidden_states"].clone()}
    padded["encoder_hidden_states"][0, 4:] = 100.0
    torch.testing.assert_close(refined(**padded).sample[0], refined(**inp).sample[0], rtol=0, atol=1e-5)


def test_text_refiner_added_to_a_trained_model_starts_as_the_identity(model, tmp_path):
    inp = _inputs()
    grown = model.with_text_refiner(2)
    assert grown.config.text_refiner_layers == 2 and len(grown.text_refiner) == 2
    torch.testing.assert_close(grown(**inp).sample, model(**inp).sample, rtol=0, atol=0)
    with torch.no_grad():  # its layers are live: once their outputs leave zero the velocity changes
        grown.text_refiner[0].attn.to_out.weight.normal_(std=0.1)
    assert (grown(**inp).sample - model(**inp).sample).abs().max() > 1e-4
    # it round-trips, keeps trained layers when grown again, and cannot shrink
    grown.save_pretrained(tmp_path / "g")
    loaded = STIVTransformer.from_pretrained(tmp_path / "g").eval()
    assert torch.equal(loaded(**inp).sample, grown(**inp).sample)
    again = grown.with_text_refiner(3)
    torch.testing.assert_close(again(**inp).sample, grown(**inp).sample, rtol=0, atol=0)
    with pytest.raises(ValueError, match="cannot drop"):
        grown.with_text_refiner(1)
