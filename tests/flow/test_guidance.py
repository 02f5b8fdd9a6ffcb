import pytest
import torch

from anyframe.flow.guidance import (
    CFG,
    FULL,
    IMAGE_ONLY,
    JITCFG,
    UNCOND,
    NoGuidance,
    Renormalized,
    TextImageCFG,
    guided_velocity,
    make_guidance,
    renormalize,
)


def _velocities(seed=0, shape=(3, 4, 5, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    return {b: torch.randn(shape, generator=g) for b in (FULL, IMAGE_ONLY, UNCOND)}


def test_jit_cfg_scale_one_equals_conditional():
    v = _velocities()
    out = JITCFG(1.0).combine(v)
    torch.testing.assert_close(out, v[FULL], rtol=0, atol=1e-6)


def test_jit_cfg_formula_drops_text_and_image_together():
    v = _velocities()
    s = 7.5
    out = JITCFG(s).combine(v)
    torch.testing.assert_close(out, v[UNCOND] + s * (v[FULL] - v[UNCOND]))
    assert JITCFG.branches == (FULL, UNCOND)
    # it must not use the image-only branch
    v2 = dict(v)
    v2[IMAGE_ONLY] = v[IMAGE_ONLY] * 100
    torch.testing.assert_close(JITCFG(s).combine(v2), out)


def test_text_only_cfg_keeps_image_in_both_passes():
    v = _velocities()
    out = CFG(4.0).combine(v)
    torch.testing.assert_close(out, v[IMAGE_ONLY] + 4.0 * (v[FULL] - v[IMAGE_ONLY]))
    torch.testing.assert_close(CFG(1.0).combine(v), v[FULL])


def test_text_image_three_pass_formula():
    v = _velocities()
    out = TextImageCFG(5.0, image_scale=2.0).combine(v)
    expected = v[UNCOND] + 2.0 * (v[IMAGE_ONLY] - v[UNCOND]) + 5.0 * (v[FULL] - v[IMAGE_ONLY])
    torch.testing.assert_close(out, expected)
    assert set(TextImageCFG.branches) == {FULL, IMAGE_ONLY, UNCOND}
    # both scales 1 → the conditional velocity
    torch.testing.assert_close(TextImageCFG(1.0, 1.0).combine(v), v[FULL], rtol=0, atol=1e-5)


def test_renorm_full_preserves_conditional_norm_per_sample():
    v = _velocities()
    guided = JITCFG(9.0).combine(v)
    out = renormalize(guided, v[FULL], "full")
    for i in range(out.shape[0]):
        assert out[i].norm().item() == pytest.approx(v[FULL][i].norm().item(), rel=1e-5)
        # direction unchanged
        cos = torch.nn.functional.cosine_similarity(out[i].flatten(), guided[i].flatten(), dim=0)
        assert cos.item() == pytest.approx(1.0, abs=1e-5)
    # the renormalised guidance object does the same
    torch.testing.assert_close(JITCFG(9.0, renorm="full").combine(v), out)
    torch.testing.assert_close(Renormalized(JITCFG(9.0), "full").combine(v), out)


def test_renorm_clamp_only_shrinks():
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(2, 8, generator=g)
    big = cond * 5.0  # norm 5x larger → clamped down to the conditional norm
    small = cond * 0.5  # smaller → untouched
    out = renormalize(torch.stack([big[0], small[1]]), cond, "clamp")
    assert out[0].norm().item() == pytest.approx(cond[0].norm().item(), rel=1e-5)
    torch.testing.assert_close(out[1], small[1])
    # full mode would scale the small one up
    full = renormalize(torch.stack([big[0], small[1]]), cond, "full")
    assert full[1].norm().item() == pytest.approx(cond[1].norm().item(), rel=1e-5)
    # max_ratio loosens the bound
    out2 = renormalize(big, cond, "clamp", max_ratio=2.0)
    assert out2[0].norm().item() == pytest.approx(2.0 * cond[0].norm().item(), rel=1e-5)


def test_renorm_mask_restricts_the_norm_to_generated_frames():
    g = torch.Generator().manual_seed(2)
    cond = torch.randn(1, 2, 4, 3, 3, generator=g)
    guided = torch.randn(1, 2, 4, 3, 3, generator=g)
    guided[:, :, 0] *= 1000  # a replaced frame with a huge (discarded) velocity
    mask = torch.ones(1, 1, 4, 1, 1)
    mask[:, :, 0] = 0
    out = renormalize(guided, cond, "full", mask=mask)
    assert out[:, :, 1:].norm().item() == pytest.approx(cond[:, :, 1:].norm().item(), rel=1e-5)
    unmasked = renormalize(guided, cond, "full")
    assert unmasked[:, :, 1:].norm().item() < 0.1 * cond[:, :, 1:].norm().item()


def test_guided_velocity_calls_one_batched_function():
    calls = []

    def branch_velocity(x, sigma, branches):
        calls.append(tuple(branches))
        return [x * (2.0 if b.text else 1.0) + (0.5 if b.image else 0.0) for b in branches]

    x = torch.ones(2, 3)
    v = guided_velocity(branch_velocity, JITCFG(3.0))(x, torch.ones(2))
    assert calls == [(FULL, UNCOND)]
    torch.testing.assert_close(v, x * 1.0 + 3.0 * ((x * 2 + 0.5) - x))


def test_make_guidance():
    assert isinstance(make_guidance("jit", 7.5), JITCFG)
    assert isinstance(make_guidance("cfg", 7.5), CFG)
    assert isinstance(make_guidance("text-image", 7.5, 2.0), TextImageCFG)
    assert isinstance(make_guidance("none", 7.5), NoGuidance)
    assert isinstance(make_guidance("jit", 1.0), NoGuidance)  # scale 1 = one pass
    with pytest.raises(ValueError):
        make_guidance("bogus")
    with pytest.raises(ValueError):
        make_guidance("jit", 7.5, renorm="bogus")


def test_auto_renorm_is_full_without_frames_and_off_with_them():
    from anyframe.flow.guidance import resolve_renorm

    assert resolve_renorm("auto", with_frames=False) == "full"
    assert resolve_renorm("auto", with_frames=True) is None
    assert [resolve_renorm(r, with_frames=True) for r in ("full", "clamp", None)] == ["full", "clamp", None]
