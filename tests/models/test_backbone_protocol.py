"""The backbone protocol (anyframe.models.backbone) on both backbones, STIV's DiT and Wan: channel inflation,
per-frame text, context-token groups, per-frame timesteps, and that both classes have every protocol member."""

from __future__ import annotations

import inspect

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanAttnProcessor

from anyframe.models.backbone import Backbone, BackboneOutput, inflate_channels
from anyframe.models.dit import STIVTransformer, stiv_tiny
from anyframe.models.wan import WanBackbone, build_wan, cast_like_from_pretrained, tiny_wan_components

from model_helpers import randomise

TEXT_DIM = 32


_randomise = randomise


def _stiv(**kwargs) -> STIVTransformer:
    return _randomise(stiv_tiny(in_channels=4, text_dim=TEXT_DIM, **kwargs))


def _stiv_inputs(b=2, t=4, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, length - 2:] = False
    return dict(
        hidden_states=torch.randn(b, 4, t, 8, 8, generator=g),
        timestep=torch.tensor([700.0, 250.0])[:b],
        encoder_hidden_states=torch.randn(b, length, TEXT_DIM, generator=g),
        encoder_attention_mask=mask,
        micro_conditions=torch.tensor([[1.0, 32, 32, 0, 0]] * b),
    )


def _wan(kind="t2v", **overrides) -> WanBackbone:
    return tiny_wan_components(kind, **overrides)["transformer"].eval()


def _wan_inputs(b=1, t=3, length=16, seed=0, channels=16):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(b, channels, t, 4, 4, generator=g), timestep=torch.tensor([400.0] * b),
                encoder_hidden_states=torch.randn(b, length, TEXT_DIM, generator=g))


def _per_frame(inputs: dict, t: int) -> dict:
    """The same text for every frame, as per-frame text ``[B, T, L, D]`` (and mask ``[B, T, L]``)."""
    out = dict(inputs, encoder_hidden_states=inputs["encoder_hidden_states"][:, None].repeat(1, t, 1, 1))
    if inputs.get("encoder_attention_mask") is not None:
        out["encoder_attention_mask"] = inputs["encoder_attention_mask"][:, None].repeat(1, t, 1)
    return out


# ----------------------------------------------------------------------------------- the protocol


def _protocol_members() -> set[str]:
    return {n for n in vars(Backbone) if not n.startswith("_")} | set(Backbone.__annotations__) | {"forward"}


@pytest.mark.parametrize("cls", [STIVTransformer, WanBackbone])
def test_both_backbones_have_every_protocol_member(cls):
    members = _protocol_members()
    assert {"latent_channels", "token_dim", "config", "context_groups", "forward", "with_context_group",
            "with_extra_channels"} <= members
    for name in members:
        assert hasattr(cls, name), name
    # forward takes the protocol's arguments, in its order, with its defaults (a backbone may add its own after)
    want = list(inspect.signature(Backbone.forward).parameters.values())
    got = list(inspect.signature(cls.forward).parameters.values())[: len(want)]
    assert [(p.name, p.default) for p in got] == [(p.name, p.default) for p in want]
    for method in ("with_context_group", "with_extra_channels"):
        want = [p.name for p in inspect.signature(getattr(Backbone, method)).parameters.values()]
        assert [p.name for p in inspect.signature(getattr(cls, method)).parameters.values()] == want


def test_both_backbones_return_a_backbone_output():
    stiv, wan = _stiv(), _wan()
    for model, inputs in ((stiv, _stiv_inputs()), (wan, _wan_inputs())):
        with torch.no_grad():
            out = model(**inputs)
            assert isinstance(out, BackboneOutput) and out.aux is None
            plain = model(**inputs, return_dict=False)
        assert isinstance(plain, tuple) and len(plain) == 1 and torch.equal(plain[0], out.sample)
        assert model.latent_channels == 4 if model is stiv else 16
    assert (stiv.token_dim, wan.token_dim) == (32, 24)


@pytest.mark.parametrize("kind", ["stiv", "wan"])
def test_equal_per_frame_timesteps_equal_one_timestep(kind):
    model, inputs = (_stiv(), _stiv_inputs()) if kind == "stiv" else (_wan(), _wan_inputs(b=2))
    t = inputs["hidden_states"].shape[2]
    with torch.no_grad():
        a = model(**inputs).sample
        b = model(**dict(inputs, timestep=inputs["timestep"][:, None].expand(-1, t).contiguous())).sample
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- inflation


def _inflation_cases():
    return {
        "stiv": (lambda: _stiv(), lambda: _stiv_inputs(), 4),
        "stiv-temporal-patch": (lambda: _stiv(patch_size=(2, 2, 2)), lambda: _stiv_inputs(), 4),
        "wan-t2v": (lambda: _wan(), lambda: _wan_inputs(), 16),
        "wan-i2v": (lambda: _wan("i2v"), lambda: dict(_wan_inputs(channels=36), context_tokens={
            "image": torch.randn(1, 1025, 4, generator=torch.Generator().manual_seed(1))}), 16),
    }


@pytest.mark.parametrize("case", ["stiv", "stiv-temporal-patch", "wan-t2v", "wan-i2v"])
def test_inflated_channels_start_as_the_base_model(case, tmp_path):
    build, make_inputs, c_out = _inflation_cases()[case]
    base, inputs = build(), make_inputs()
    c_in = inputs["hidden_states"].shape[1]
    with torch.no_grad():
        ref = base(**inputs).sample
        grown = inflate_channels(base, extra_in_channels=3, extra_out_channels=2)
        assert grown.latent_channels == base.latent_channels and grown.training == base.training
        for extra in (torch.zeros(1, 3, 1, 1, 1).expand(inputs["hidden_states"].shape[0], 3, *ref.shape[2:]),
                      torch.randn(inputs["hidden_states"].shape[0], 3, *ref.shape[2:])):
            out = grown(**dict(inputs, hidden_states=torch.cat([inputs["hidden_states"], extra], 1))).sample
            assert out.shape == (ref.shape[0], c_out + 2, *ref.shape[2:])
            torch.testing.assert_close(out[:, :c_out], ref, rtol=0, atol=1e-6)  # the old channels: the base model
            assert torch.count_nonzero(out[:, c_out:]) == 0  # the new ones: exactly zero
        # the base model is untouched (the copy shares no storage)
        assert torch.equal(base(**inputs).sample, ref)
        # grown again through the method, the model's config says so and round-trips
        again = grown.with_extra_channels(1, 1)
        assert again.latent_channels == base.latent_channels
        if isinstance(base, STIVTransformer):
            assert (again.config.extra_in_channels, again.config.extra_out_channels) == (4, 3)
        else:
            assert (again.config.in_channels, again.config.out_channels) == (c_in + 4, c_out + 3)
        again.save_pretrained(tmp_path / "m")
        loaded = type(base).from_pretrained(tmp_path / "m").eval()
        assert loaded.latent_channels == base.latent_channels
        big = torch.cat([inputs["hidden_states"], torch.randn(inputs["hidden_states"].shape[0], 4, *ref.shape[2:])], 1)
        # STIV: bit-exact; Wan: a diffusers model loaded from disk differs from the saved one in the last bit
        # already (same weights and buffers; memory alignment picks another kernel), inflated or not
        atol = 0 if isinstance(base, STIVTransformer) else 1e-6
        torch.testing.assert_close(loaded(**dict(inputs, hidden_states=big)).sample,
                                   again(**dict(inputs, hidden_states=big)).sample, atol=atol, rtol=0)


def test_inflation_keeps_dtypes_and_is_the_method():
    wan = cast_like_from_pretrained(build_wan("tiny"), torch.bfloat16)
    grown = wan.with_extra_channels(2, 1)
    dtypes = {n: p.dtype for n, p in wan.named_parameters()}
    assert {n: p.dtype for n, p in grown.named_parameters()} == dtypes  # bf16, float32 where diffusers keeps it
    assert torch.float32 in dtypes.values() and torch.bfloat16 in dtypes.values()
    stiv = _stiv()
    a, b = stiv.with_extra_channels(2, 1), inflate_channels(stiv, 2, 1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match=">= 0"):
        inflate_channels(stiv, -1)


# ------------------------------------------------------------------------------ per-frame text


@pytest.mark.parametrize("patch_size,refiner", [((1, 2, 2), 0), ((1, 2, 2), 1), ((2, 2, 2), 1)])
def test_stiv_per_frame_text_with_equal_frames_is_the_plain_text(patch_size, refiner):
    model = _stiv(patch_size=patch_size, text_refiner_layers=refiner)
    inputs = _stiv_inputs()
    with torch.no_grad():
        plain = model(**inputs).sample
        torch.testing.assert_close(model(**_per_frame(inputs, 4)).sample, plain, atol=1e-5, rtol=0)
        # a [B, L] mask with per-frame text applies to every frame
        per_frame = dict(_per_frame(inputs, 4), encoder_attention_mask=inputs["encoder_attention_mask"])
        torch.testing.assert_close(model(**per_frame).sample, plain, atol=1e-5, rtol=0)


def test_stiv_per_frame_text_reaches_its_own_frame():
    model = _stiv()
    inputs = _per_frame(_stiv_inputs(), 4)
    with torch.no_grad():
        base = model(**inputs).sample
        changed = inputs["encoder_hidden_states"].clone()
        changed[:, 3] = torch.randn(changed[:, 3].shape, generator=torch.Generator().manual_seed(5))
        diff = (model(**dict(inputs, encoder_hidden_states=changed)).sample - base).abs().amax(dim=(0, 1, 3, 4))  # [T]
    assert diff[3] > 1e-3 and diff[3] > 2 * diff[:3].max(), diff
    # padding of one frame does not count; the pooled text is each frame's masked mean
    padded = inputs["encoder_hidden_states"].clone()
    padded[0, 2, 4:] = 100.0  # sample 0's padding (its mask is False at 4:)
    with torch.no_grad():
        torch.testing.assert_close(model(**dict(inputs, encoder_hidden_states=padded)).sample, base, atol=1e-5, rtol=0)
        text, mask = inputs["encoder_hidden_states"], inputs["encoder_attention_mask"][..., None].float()
        pooled = (text * mask).sum(2) / mask.sum(2)  # [B, T, text_dim]
        assert torch.equal(model(**inputs, pooled_text=pooled).sample, base)


def test_stiv_per_frame_text_computes_each_distinct_row_once_with_the_same_values(monkeypatch):
    """Repeated per-frame narratives are refined and turned into keys / values once per distinct row, then
    gathered: outputs and gradients equal those of treating every frame's row as its own."""
    model = _stiv(text_refiner_layers=1)
    inputs = _per_frame(_stiv_inputs(), 4)
    text = torch.randn(inputs["encoder_hidden_states"].shape, generator=torch.Generator().manual_seed(3))
    text[:, 2] = text[:, 0]  # frames 0 and 2 share a narrative; 1 and 3 have their own
    text[1, 3] = text[1, 1]
    inputs = dict(inputs, encoder_hidden_states=text)

    def run():
        model.zero_grad()
        out = model(**inputs).sample
        out.square().mean().backward()
        return out.detach(), model.text_proj.linear_1.weight.grad.clone()

    calls = []
    original = STIVTransformer.text_context

    def counting(self, encoder_hidden_states, mask=None):
        calls.append(encoder_hidden_states.shape[0])
        return original(self, encoder_hidden_states, mask)

    monkeypatch.setattr(STIVTransformer, "text_context", counting)
    shared, shared_grad = run()
    assert calls == [5], calls  # 2 + 3 distinct rows of 8

    def every_row(self, text, mask):  # the reference: no sharing
        flat, flat_mask = text.flatten(0, 1), None if mask is None else mask.flatten(0, 1)
        return self.text_context(flat, flat_mask), flat_mask, torch.arange(flat.shape[0])

    monkeypatch.setattr(STIVTransformer, "_distinct_text_context", every_row)
    own, own_grad = run()
    torch.testing.assert_close(shared, own, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared_grad, own_grad, atol=1e-5, rtol=1e-4)


def test_stiv_per_frame_text_in_a_temporal_patch_is_its_first_frame():
    model = _stiv(patch_size=(2, 2, 2))
    inputs = _per_frame(_stiv_inputs(), 4)
    with torch.no_grad():
        base = model(**inputs).sample
        second = inputs["encoder_hidden_states"].clone()
        second[:, 1] = 7.0  # the second frame of the first temporal patch: not read
        assert torch.equal(model(**dict(inputs, encoder_hidden_states=second)).sample, base)
        first = inputs["encoder_hidden_states"].clone()
        first[:, 2] = 7.0  # the first frame of the second patch
        assert (model(**dict(inputs, encoder_hidden_states=first)).sample - base).abs().max() > 1e-3


def test_stiv_per_frame_text_bad_shapes():
    model = _stiv()
    inputs = _per_frame(_stiv_inputs(), 4)
    with pytest.raises(ValueError, match="per-frame encoder_hidden_states"):
        model(**dict(inputs, encoder_hidden_states=inputs["encoder_hidden_states"][:, :3]))
    with pytest.raises(ValueError, match="per-frame text mask"):
        model(**dict(inputs, encoder_attention_mask=inputs["encoder_attention_mask"][:, :3]))


@pytest.mark.parametrize("kind", ["t2v", "i2v"])
def test_wan_per_frame_text_with_equal_frames_is_the_plain_text(kind):
    model = _wan(kind)
    inputs = _wan_inputs(channels=16 if kind == "t2v" else 36)
    if kind == "i2v":
        inputs["context_tokens"] = {"image": torch.randn(1, 1025, 4, generator=torch.Generator().manual_seed(1))}
    with torch.no_grad():
        plain = model(**inputs).sample
        got = model(**_per_frame(inputs, 3)).sample
    torch.testing.assert_close(got, plain, atol=1e-5, rtol=0)
    assert all(type(block.attn2.processor) is WanAttnProcessor for block in model.blocks)  # restored


def test_wan_per_frame_text_reaches_its_own_frame_and_checkpoints():
    model = _wan()
    inputs = _per_frame(_wan_inputs(), 3)
    with torch.no_grad():
        base = model(**inputs).sample
        changed = inputs["encoder_hidden_states"].clone()
        changed[:, 1] = torch.randn(changed[:, 1].shape, generator=torch.Generator().manual_seed(5))
        diff = (model(**dict(inputs, encoder_hidden_states=changed)).sample - base).abs().amax(dim=(0, 1, 3, 4))
    assert diff[1] > 1e-3 and diff[1] > 2 * diff[[0, 2]].max(), diff
    # gradient checkpointing recomputes the blocks in the backward pass: they must fold the frames again
    model.train()
    model(**inputs).sample.square().mean().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.enable_gradient_checkpointing()
    out = model(**inputs).sample
    torch.testing.assert_close(out.detach(), base, atol=1e-6, rtol=0)
    out.square().mean().backward()
    for n, p in model.named_parameters():
        if n in ref:
            torch.testing.assert_close(p.grad, ref[n], atol=1e-6, rtol=1e-5)
    assert all(type(block.attn2.processor) is WanAttnProcessor for block in model.blocks)


def test_wan_per_frame_text_bad_shape():
    inputs = _per_frame(_wan_inputs(), 3)
    with pytest.raises(ValueError, match="per-frame encoder_hidden_states"):
        _wan()(**dict(inputs, encoder_hidden_states=inputs["encoder_hidden_states"][:, :2]))


# ------------------------------------------------------------------------------ context groups


@pytest.mark.parametrize("refiner", [0, 1])
def test_an_untrained_context_group_is_exactly_the_base_model(refiner):
    base = _stiv(text_refiner_layers=refiner)
    inputs = _stiv_inputs()
    grown = base.with_context_group("style", 12)
    assert grown.context_groups == ("style",) and grown.config.context_groups == {"style": 12}
    assert base.context_groups == () and base.config.context_groups is None
    tokens = torch.randn(2, 5, 12)
    with torch.no_grad():
        ref = base(**inputs).sample
        assert torch.equal(grown(**inputs, context_tokens={"style": tokens}).sample, ref)
        assert torch.equal(grown(**inputs).sample, ref)  # a group not given is skipped
        both = grown.with_context_group("adapter", 8)
        assert both.context_groups == ("adapter", "style")
        two = {"style": tokens, "adapter": torch.randn(2, 3, 8)}
        assert torch.equal(both(**inputs, context_tokens=two).sample, ref)
        # and with per-frame text
        per_frame = _per_frame(inputs, 4)
        torch.testing.assert_close(both(**per_frame, context_tokens={"style": tokens}).sample, ref, atol=1e-5, rtol=0)


def test_context_group_rules():
    base = _stiv()
    inputs = _stiv_inputs()
    grown = base.with_context_group("style", 12)
    with pytest.raises(ValueError, match=r"unknown context-token group 'styel'.*\['style'\]"):
        grown(**inputs, context_tokens={"styel": torch.randn(2, 5, 12)})
    with pytest.raises(ValueError, match="unknown context-token group"):
        base(**inputs, context_tokens={"style": torch.randn(2, 5, 12)})
    with pytest.raises(ValueError, match=r"\[B, N, 12\]"):
        grown(**inputs, context_tokens={"style": torch.randn(2, 5, 11)})
    with pytest.raises(ValueError, match="already has"):
        grown.with_context_group("style", 12)
    with pytest.raises(ValueError, match="identifier"):
        base.with_context_group("a.b", 12)


def test_a_context_group_trained_a_step_changes_the_output():
    base = _stiv()
    inputs = _stiv_inputs()
    model = base.with_context_group("style", 12).train()
    tokens = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(3))
    group = [p for n, p in model.named_parameters() if ".context_attn.style." in n]
    optimizer = torch.optim.SGD(group, lr=0.1)
    target = torch.randn(2, 4, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    (model(**inputs, context_tokens={"style": tokens}).sample - target).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in group)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        ref = base(**inputs).sample
        out = model(**inputs, context_tokens={"style": tokens}).sample
        assert (out - ref).abs().max() > 1e-5  # the branch is wired
        assert (model(**inputs, context_tokens={"style": -tokens}).sample - out).abs().max() > 1e-6  # tokens matter
        assert torch.equal(model(**inputs).sample, ref)  # not given: skipped
        # the group never reaches the text path: the text context is the base model's
        text = inputs["encoder_hidden_states"]
        assert torch.equal(model.text_context(text), base.text_context(text))


def test_a_model_with_context_groups_and_inflated_channels_round_trips(tmp_path):
    model = _stiv().with_context_group("style", 12).with_context_group("adapter", 8).with_extra_channels(3, 2)
    model = _randomise(model, seed=1)  # every weight non-zero, so the load is checked
    model.save_pretrained(tmp_path / "m")
    loaded = STIVTransformer.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.context_groups == {"style": 12, "adapter": 8}
    assert (loaded.config.extra_in_channels, loaded.config.extra_out_channels) == (3, 2)
    inputs = _stiv_inputs()
    inputs["extra_channels"] = torch.randn(2, 3, 4, 8, 8)
    tokens = {"style": torch.randn(2, 5, 12), "adapter": torch.randn(2, 3, 8)}
    with torch.no_grad():
        want = model(**inputs, context_tokens=tokens).sample
        assert torch.equal(loaded(**inputs, context_tokens=tokens).sample, want)


def test_wan_image_tokens_are_the_image_group():
    t2v, i2v = _wan(), _wan("i2v")
    assert t2v.context_groups == () and i2v.context_groups == ("image",)
    inputs = _wan_inputs(channels=36)
    clip = torch.randn(1, 1025, 4)
    with pytest.raises(ValueError, match=r"unknown context-token group.*\['style'\].*\['image'\]"):
        i2v(**inputs, context_tokens={"style": clip})
    with pytest.raises(ValueError, match="image tokens must be"):
        i2v(**inputs, context_tokens={"image": clip[..., :3]})
    with pytest.raises(ValueError, match="none"):
        t2v(**_wan_inputs(), context_tokens={"image": clip})
    with pytest.raises(ValueError, match="only have the context-token group 'image'"):
        t2v.with_context_group("style", 4)
    with pytest.raises(ValueError, match="already has"):
        i2v.with_context_group("image", 4)
    assert "encoder_hidden_states_image" not in inspect.signature(WanBackbone.forward).parameters


def test_wan_image_group_added_to_a_t2v_model_starts_as_the_base_model():
    """Text padded to Wan's 512 tokens: diffusers splits the image tokens from the text assuming that length."""
    base = _wan()
    inputs = _wan_inputs(length=512)
    grown = base.with_context_group("image", 4)
    assert grown.context_groups == ("image",) and grown.config.image_dim == 4
    clip = torch.randn(1, 257, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = base(**inputs).sample
        assert torch.equal(grown(**inputs, context_tokens={"image": clip}).sample, ref)
        assert torch.equal(grown(**inputs).sample, ref)  # not given: diffusers' image branch attends to nothing
    # one step on the image values wires the branch in
    grown.train()
    values = [p for n, p in grown.named_parameters() if "add_v_proj" in n]
    optimizer = torch.optim.SGD(values, lr=0.1)
    grown(**inputs, context_tokens={"image": clip}).sample.square().mean().backward()
    optimizer.step()
    with torch.no_grad():
        assert (grown.eval()(**inputs, context_tokens={"image": clip}).sample - ref).abs().max() > 1e-5
