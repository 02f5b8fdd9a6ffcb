"""Wan2.1 as an anyframe backbone: parity with diffusers' Wan pipelines, the causal VAE's frame mapping,
loading (diffusers folders, original single files), and anyframe's methods on a tiny random Wan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from PIL import Image
from safetensors.torch import save_file

from anyframe.conditioning import FlashI2V, FrameReplacement, ModelInputs, WanI2V
from anyframe.conditioning.wan_i2v import pixel_mask_channels
from anyframe.errors import AnyframeInputError
from anyframe.flow.guidance import FULL, UNCOND, guided_velocity, make_guidance
from anyframe.models.text_encoder import TextCondition
from anyframe.models.wan import (
    WanBackbone,
    latent_frame_index,
    num_latent_frames,
    pixel_frames_of,
    tiny_wan_components,
)
from anyframe.pipelines import AnyFramePipeline, Keyframe

PROMPT = "a red circle moves left"
SIZE = dict(num_frames=9, height=32, width=32, max_sequence_length=16)  # 3 latent frames of 4×4


def diffusers_transformer(backbone: WanBackbone) -> WanTransformer3DModel:
    """The same weights in diffusers' own class (what WanPipeline runs)."""
    ref = WanTransformer3DModel(**{k: v for k, v in backbone.config.items() if not k.startswith("_")})
    ref.load_state_dict(backbone.state_dict())
    return ref.eval()


def pipelines(kind: str, tmp_path, scheduler=None):
    """diffusers' Wan pipeline and ours, loaded from the same diffusers folder."""
    components = tiny_wan_components(kind)
    if scheduler is not None:
        components["scheduler"] = scheduler
    components["transformer"] = diffusers_transformer(components["transformer"])
    cls = WanPipeline if kind == "t2v" else WanImageToVideoPipeline
    reference = cls(**components)
    folder = tmp_path / f"wan-{kind}"
    reference.save_pretrained(folder)
    ours = AnyFramePipeline.from_pretrained(folder)
    for pipe in (reference, ours):
        pipe.set_progress_bar_config(disable=True)
    return reference, ours


def image(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------- frame mapping


def test_latent_frame_index_of_a_causal_vae():
    assert [latent_frame_index(f, 4) for f in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert num_latent_frames(81, 4) == 21 and num_latent_frames(1, 4) == 1 and num_latent_frames(16, 1) == 16
    for f in range(81):  # the inverse covers every pixel frame exactly once
        assert f in pixel_frames_of(latent_frame_index(f, 4), 4)
    assert sum(len(pixel_frames_of(j, 4)) for j in range(21)) == 81
    assert [latent_frame_index(f, 1) for f in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        num_latent_frames(10, 4)
    with pytest.raises(ValueError):
        latent_frame_index(-1, 4)


def test_the_mapping_is_the_vaes_own():
    """Changing pixel frame f changes latent frame latent_frame_index(f) and none before it (the VAE is
    causal), for every frame of a 13-frame clip."""
    vae = tiny_wan_components("t2v")["vae"]
    from anyframe.models.autoencoder import encode_video

    torch.manual_seed(0)
    clip = torch.rand(1, 3, 13, 32, 32) * 2 - 1
    base = encode_video(vae, clip)
    assert base.shape[2] == num_latent_frames(13, 4) == 4
    for f in range(13):
        changed = clip.clone()
        changed[:, :, f] = -changed[:, :, f]
        diff = (encode_video(vae, changed) - base).abs().amax(dim=(0, 1, 3, 4))
        first = int(torch.nonzero(diff > 1e-6)[0])
        assert first == latent_frame_index(f, 4), (f, diff)


# ----------------------------------------------------------------------------- parity with diffusers


@pytest.mark.parametrize("sampler", ["unipc", "euler"])
def test_t2v_matches_wan_pipeline(tmp_path, sampler):
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0) if sampler == "euler" else None
    reference, ours = pipelines("t2v", tmp_path, scheduler)
    assert isinstance(ours.transformer, WanBackbone) and isinstance(ours.conditioning, FrameReplacement)
    kwargs = dict(num_inference_steps=4, guidance_scale=5.0, **SIZE)
    for output_type in ("latent", "np"):
        want = reference(PROMPT, negative_prompt="", generator=torch.Generator().manual_seed(3),
                         output_type=output_type, **kwargs).frames
        got = ours(PROMPT, guidance_mode="cfg", renorm=None, seed=3, output_type=output_type, **kwargs).frames
        want = torch.as_tensor(np.asarray(want))
        got = torch.as_tensor(np.asarray(got))
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
        assert want.abs().mean() > 0.05  # not a trivially constant output
    assert got.shape == (1, 9, 32, 32, 3)


def test_i2v_matches_wan_image_to_video_pipeline(tmp_path):
    reference, ours = pipelines("i2v", tmp_path)
    assert isinstance(ours.conditioning, WanI2V) and ours.image_encoder is not None
    first = image(0)
    kwargs = dict(num_inference_steps=3, guidance_scale=5.0, output_type="latent", **SIZE)
    want = reference(image=first, prompt=PROMPT, negative_prompt="", generator=torch.Generator().manual_seed(1),
                     **kwargs).frames
    got = ours(PROMPT, keyframes=[Keyframe(first, 0)], guidance_mode="cfg", renorm=None, seed=1, **kwargs).frames
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    # the image matters: another image gives another video
    other = ours(PROMPT, keyframes=[Keyframe(image(5), 0)], guidance_mode="cfg", renorm=None, seed=1, **kwargs).frames
    assert (other - got).abs().max() > 1e-3


def test_flf2v_matches_wan_with_last_image(tmp_path):
    reference, ours = pipelines("flf2v", tmp_path)
    first, last = image(0), image(1)
    kwargs = dict(num_inference_steps=3, guidance_scale=5.0, output_type="latent", **SIZE)
    want = reference(image=first, last_image=last, prompt=PROMPT, negative_prompt="",
                     generator=torch.Generator().manual_seed(2), **kwargs).frames
    got = ours(PROMPT, keyframes=[Keyframe(first, 0), Keyframe(last, -1)], guidance_mode="cfg", renorm=None, seed=2,
               **kwargs).frames
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    with pytest.raises(AnyframeInputError, match="two keyframes"):
        ours(PROMPT, keyframes=[Keyframe(first, 0)], seed=2, **kwargs)


# ------------------------------------------------------------------------------------ loading


def to_original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' Wan parameter names → the original Wan2.1 checkpoint's (the inverse of diffusers'
    ``convert_wan_transformer_to_diffusers``), to write an original-layout file for the test."""
    renames = [
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
        ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
        ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"),
        ("attn2", "cross_attn"), ("attn1", "self_attn"),
        (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
        ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
        ("norm2", "norm__swap"), ("norm3", "norm2"), ("norm__swap", "norm3"),
        ("proj_out", "head.head"),
    ]
    out = {}
    for key, value in state.items():
        new = key
        for a, b in renames:
            new = new.replace(a, b)
        if new == "scale_shift_table":
            new = "head.modulation"
        new = new.replace(".scale_shift_table", ".modulation")
        out[new] = value
    return out


def test_loads_an_original_wan_checkpoint_with_from_single_file(tmp_path):
    _, ours = pipelines("t2v", tmp_path)
    original = {k: v.contiguous() for k, v in to_original_layout(ours.transformer.state_dict()).items()}
    assert "head.modulation" in original and "blocks.0.self_attn.q.weight" in original
    path = tmp_path / "wan2.1_t2v_tiny.safetensors"
    save_file(original, str(path))
    from anyframe.pipelines.wan_folder import load_wan_pipeline

    loaded = load_wan_pipeline(tmp_path / "wan-t2v", AnyFramePipeline, transformer_file=path)
    assert isinstance(loaded.transformer, WanBackbone)
    want, got = ours.transformer.state_dict(), loaded.transformer.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    with pytest.raises(AnyframeInputError, match="not found"):
        load_wan_pipeline(tmp_path / "wan-t2v", AnyFramePipeline, transformer_file=tmp_path / "missing.safetensors")
    pickle = tmp_path / "model.pth"
    pickle.write_bytes(b"x")
    with pytest.raises(AnyframeInputError, match="safetensors"):
        load_wan_pipeline(tmp_path / "wan-t2v", AnyFramePipeline, transformer_file=pickle)


def test_a_saved_anyframe_wan_pipeline_round_trips(tmp_path):
    _, ours = pipelines("i2v", tmp_path)
    ours.save_pretrained(tmp_path / "saved")
    loaded = AnyFramePipeline.from_pretrained(tmp_path / "saved")
    assert isinstance(loaded.transformer, WanBackbone) and isinstance(loaded.conditioning, WanI2V)
    kwargs = dict(keyframes=[Keyframe(image(0), 4)], num_inference_steps=2, seed=0, output_type="latent", **SIZE)
    torch.testing.assert_close(loaded(PROMPT, **kwargs).frames, ours(PROMPT, **kwargs).frames, atol=0, rtol=0)


def test_a_broken_wan_folder_is_one_input_error(tmp_path):
    pipelines("t2v", tmp_path)  # (writes the diffusers folder wan-t2v)
    (tmp_path / "wan-t2v" / "vae" / "config.json").write_text("{not json")
    with pytest.raises(AnyframeInputError, match=r"vae/config.json is not valid JSON"):
        AnyFramePipeline.from_pretrained(tmp_path / "wan-t2v")


# --------------------------------------------------------------------------- the backbone protocol


def test_per_frame_timesteps_are_per_token_timesteps():
    """[B, T] σ expand to Wan2.2-style per-token timesteps; equal per-frame σ give the [B] result."""
    torch.manual_seed(0)
    backbone = tiny_wan_components("t2v")["transformer"]
    ref = diffusers_transformer(backbone)
    x = torch.randn(2, 16, 3, 4, 4)
    text = torch.randn(2, 16, 32)
    with torch.no_grad():
        shared = backbone(x, torch.tensor([500.0, 300.0]), text).sample
        per_frame = backbone(x, torch.tensor([[500.0] * 3, [300.0] * 3]), text).sample
        torch.testing.assert_close(per_frame, shared, atol=1e-5, rtol=0)  # another kernel path, same numbers
        timesteps = torch.tensor([[0.0, 700.0, 700.0], [0.0, 0.0, 200.0]])
        got = backbone(x, timesteps, text).sample
        tokens = timesteps.repeat_interleave(2 * 2, dim=1)  # 2×2 patches of a 4×4 latent per frame
        want = ref(hidden_states=x, timestep=tokens, encoder_hidden_states=text).sample
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert (got - shared).abs().max() > 1e-4


def test_added_embeddings_and_extra_channels_reach_the_backbone():
    torch.manual_seed(0)
    backbone = tiny_wan_components("i2v")["transformer"]
    x, extra = torch.randn(1, 16, 3, 4, 4), torch.randn(1, 20, 3, 4, 4)
    text, clip = torch.randn(1, 16, 32), torch.randn(1, 1025, 4)
    with torch.no_grad():
        base = backbone(x, torch.tensor([400.0]), text, extra_channels=extra, context_tokens={"image": clip}).sample
        want = diffusers_transformer(backbone)(hidden_states=torch.cat([x, extra], 1), timestep=torch.tensor([400.0]),
                                               encoder_hidden_states=text, encoder_hidden_states_image=clip).sample
        torch.testing.assert_close(base, want, atol=0, rtol=0)
        zero = backbone(x, torch.tensor([400.0]), text, extra_channels=extra, context_tokens={"image": clip},
                        added_embeddings=torch.zeros(1, backbone.token_dim, 3, 2, 2)).sample
        assert torch.equal(zero, base)
        moved = backbone(x, torch.tensor([400.0]), text, extra_channels=extra, context_tokens={"image": clip},
                         added_embeddings=torch.randn(1, backbone.token_dim, 3, 2, 2)).sample
        assert (moved - base).abs().max() > 1e-4
    assert not backbone.patch_embedding._forward_hooks  # the hook is gone after the call


# -------------------------------------------------------------------------------- methods on Wan


def test_frame_replacement_on_wan_keeps_keyframes_at_any_pixel_frame(tmp_path):
    _, pipe = pipelines("t2v", tmp_path)
    pipe.conditioning = FrameReplacement(clean_timestep=True)
    frames = [Keyframe(image(0), 0), Keyframe(image(1), 6)]  # pixel 6 → latent frame 2
    out = pipe(PROMPT, keyframes=frames, num_inference_steps=3, seed=0, output_type="latent", **SIZE)
    clean = pipe.encode_keyframes(frames, 32, 32, [0, 6])
    assert torch.equal(out.frames[:, :, 0], clean[:, :, 0]) and torch.equal(out.frames[:, :, 2], clean[:, :, 1])
    assert not torch.equal(out.frames[:, :, 1], clean[:, :, 0])
    with pytest.raises(AnyframeInputError, match="same latent frame"):
        pipe(PROMPT, keyframes=[Keyframe(image(0), 5), Keyframe(image(1), 6)], num_inference_steps=1, seed=0, **SIZE)
    with pytest.raises(AnyframeInputError, match="1 \\+ 4·k"):
        pipe(PROMPT, num_inference_steps=1, seed=0, **{**SIZE, "num_frames": 10})
    # the conditioned frames carry σ = 0: per-frame (→ per-token) timesteps
    state = _encode(pipe, [Keyframe(image(0), 0), Keyframe(image(1), 6)])
    inputs = pipe.conditioning.model_inputs(torch.randn(1, 16, 3, 4, 4), torch.tensor([0.7]), state, FULL)
    assert inputs.timestep.tolist() == [[0.0, 700.0, 0.0]]


def _encode(pipe, keyframes):
    """The method's state for a request with ``keyframes``, encoded by the pipeline's encoders."""
    from anyframe.pipelines import GenerationRequest, PipelineEncoders

    request = pipe.validate(GenerationRequest(prompt=PROMPT, keyframes=keyframes, **SIZE))
    text = pipe.encode_text([PROMPT], 16)
    null = pipe.encode_text([""], 16)
    return pipe.conditioning.encode(request, PipelineEncoders(pipe, request, torch.randn(1, 16, 3, 4, 4), text, null))


def test_wan_i2v_mask_resolves_pixel_frames():
    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[0, 0] = mask[0, 6] = True
    channels = pixel_mask_channels(mask, 4, 2, 2)  # [1, 4, 3, 2, 2]
    assert channels.shape == (1, 4, 3, 2, 2)
    assert channels[0, :, 0, 0, 0].tolist() == [1, 1, 1, 1]  # frame 0, repeated r times
    assert channels[0, :, 1, 0, 0].tolist() == [0, 0, 0, 0]  # pixel frames 1-4
    assert channels[0, :, 2, 0, 0].tolist() == [0, 1, 0, 0]  # pixel frame 6 = the 2nd of frames 5-8


def test_jit_cfg_and_renorm_on_wan(tmp_path):
    _, pipe = pipelines("t2v", tmp_path)
    state = _encode(pipe, [Keyframe(image(0), 0)])
    x, sigma = torch.randn(1, 16, 3, 4, 4), torch.tensor([0.6])
    branches = pipe.branch_velocity(state)
    conditional, unconditional = branches(x, sigma, [FULL, UNCOND])
    assert (conditional - unconditional).abs().max() > 1e-4  # the image and the text matter
    one = guided_velocity(branches, make_guidance("jit", 1.0, None, None))(x, sigma)
    torch.testing.assert_close(one, conditional, atol=1e-5, rtol=0)
    renormed = guided_velocity(branches, make_guidance("jit", 7.5, None, "full"))(x, sigma)
    torch.testing.assert_close(renormed.norm(), conditional.norm(), atol=1e-4, rtol=1e-5)


def test_flashi2v_on_wan_starts_as_the_base_model():
    torch.manual_seed(0)
    backbone = tiny_wan_components("t2v")["transformer"]
    method = FlashI2V.for_backbone(backbone).eval()
    assert method.fourier_embed.proj.out_channels == backbone.token_dim
    x = torch.randn(2, 16, 3, 4, 4)
    text = TextCondition(torch.randn(2, 16, 32), torch.ones(2, 16, dtype=torch.bool))
    image_latent = torch.randn(2, 16, 1, 4, 4)
    inputs = ModelInputs.of(x, torch.tensor([500.0, 200.0]), text, method_inputs={
        "flashi2v_image": image_latent, "flashi2v_present": torch.ones(2), "flashi2v_ratio": torch.tensor([0.1, 0.5])})
    with torch.no_grad():
        base = backbone(**inputs.as_kwargs()).sample
        assert torch.equal(method(backbone, inputs).sample, base)  # φ = 0, zero Fourier embedding
        torch.nn.init.normal_(method.shift.conv_out.weight, std=0.1)
        shifted = method(backbone, inputs).sample
        assert (shifted - base).abs().max() > 1e-4
        torch.nn.init.zeros_(method.shift.conv_out.weight)
        torch.nn.init.normal_(method.fourier_embed.zero_proj.weight, std=0.1)
        assert (method(backbone, inputs).sample - base).abs().max() > 1e-4


def test_flashi2v_pipeline_on_wan(tmp_path):
    """An untrained FlashI2V on Wan T2V weights generates what the T2V model generates (JIT-CFG's branches
    with and without the image coincide while φ and the Fourier embedding are zero)."""
    _, pipe = pipelines("t2v", tmp_path)
    kwargs = dict(num_inference_steps=2, seed=0, output_type="latent", renorm="full", **SIZE)
    t2v = pipe(PROMPT, **kwargs).frames
    pipe.conditioning = FlashI2V.for_backbone(pipe.transformer).eval()
    i2v = pipe(PROMPT, keyframes=[Keyframe(image(0), 0)], detail=0.2, **kwargs).frames
    torch.testing.assert_close(i2v, t2v, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------- CLI


def _cli(capsys, *args):
    from anyframe.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_generates_from_a_wan_folder(capsys, tmp_path):
    pipelines("i2v", tmp_path)  # (writes the diffusers folder wan-i2v)
    folder = tmp_path / "wan-i2v"
    image(0).save(tmp_path / "first.png")
    out = tmp_path / "out" / "clip.mp4"
    size = ["--num-frames", "9", "--height", "32", "--width", "32", "--steps", "2"]
    code, stdout, err = _cli(capsys, "generate", "--model", str(folder), "--prompt", PROMPT, "--image",
                             f"{tmp_path / 'first.png'}@0", "--guidance-mode", "cfg", "--renorm", "none",
                             "--dtype", "bfloat16", "--seed", "0", "--json", "--out", str(out), *size)
    assert code == 0, err
    assert out.is_file() and out.with_suffix(".png").is_file()
    import json

    record = json.loads(stdout.strip().splitlines()[-1])
    assert (record["frames"], record["height"], record["width"]) == (9, 32, 32)

    bad = [
        (["--num-frames", "10"], "1 + 4·k"),
        (["--image", f"{tmp_path / 'first.png'}@9"], "out of range"),
        (["--dtype", "float16"], "--dtype"),
        (["--transformer-file", str(tmp_path / "none.safetensors")], "not found"),
        (["--lora", str(tmp_path / "nolora")], "--lora"),
    ]
    for extra, fragment in bad:
        target = tmp_path / "bad" / "x.mp4"
        args = ["generate", "--model", str(folder), "--prompt", PROMPT, "--out", str(target), *size, *extra]
        if "--image" not in extra:
            args += ["--image", str(tmp_path / "first.png")]
        code, _, err = _cli(capsys, *args)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and fragment in lines[0], (extra, err)
        assert not target.exists()


def test_vae_falls_back_to_tiling_on_out_of_memory(monkeypatch):
    from anyframe.models.autoencoder import decode_video, encode_video

    vae = tiny_wan_components("t2v")["vae"]
    torch.manual_seed(0)
    latents = encode_video(vae, torch.rand(1, 3, 9, 32, 32) * 2 - 1)
    want = decode_video(vae, latents)
    real_decode, calls = vae.decode, []

    def decode_once_out_of_memory(z, *args, **kwargs):
        calls.append(vae.use_tiling)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_decode(z, *args, **kwargs)

    monkeypatch.setattr(vae, "decode", decode_once_out_of_memory)
    with pytest.warns(UserWarning, match="tiling"):
        got = decode_video(vae, latents)
    assert calls == [False, True] and vae.use_tiling and vae.use_slicing
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)  # tiles cover a 32×32 clip in one piece


def test_offload_needs_a_gpu(capsys, tmp_path):
    pipelines("t2v", tmp_path)
    code, _, err = _cli(capsys, "generate", "--model", str(tmp_path / "wan-t2v"), "--prompt", PROMPT, "--offload",
                        "--device", "cpu", "--out", str(tmp_path / "x.mp4"))
    assert code == 2 and "--offload" in err and not (tmp_path / "x.mp4").exists()


def test_a_wan_model_samples_as_wan_does(capsys, tmp_path, monkeypatch):
    """Without sampling settings — from the CLI or from Python — a Wan model runs Wan's own recipe (50 steps,
    text CFG 5.0, no renorm); anyframe's models keep theirs (25 steps, JIT-CFG 7.5, renorm auto); one given wins."""
    import anyframe.pipelines.anyframe as module

    _, ours = pipelines("t2v", tmp_path)
    seen = {}
    make_guidance = module.make_guidance

    def guidance(mode, scale, image_scale, renorm):
        seen.update(mode=mode, scale=scale, renorm=renorm)
        return make_guidance(mode, scale, image_scale, renorm)

    def sample(velocity, latents, scheduler, steps, **kwargs):
        seen["steps"] = steps
        raise SystemExit(0)  # what the call samples with is known; stop before sampling

    monkeypatch.setattr(module, "make_guidance", guidance)
    monkeypatch.setattr(module, "sample", sample)
    settings = lambda: (seen["steps"], seen["scale"], seen["mode"], seen["renorm"])
    _cli(capsys, "generate", "--model", str(tmp_path / "wan-t2v"), "--prompt", PROMPT, "--out", str(tmp_path / "x.mp4"))
    assert settings() == (50, 5.0, "cfg", None)
    with pytest.raises(SystemExit):
        ours(PROMPT, **SIZE)
    assert settings() == (50, 5.0, "cfg", None)
    _cli(capsys, "generate", "--model", str(tmp_path / "wan-t2v"), "--prompt", PROMPT, "--steps", "3", "--renorm", "full",
         "--out", str(tmp_path / "x.mp4"))
    assert settings() == (3, 5.0, "cfg", "full")
    with pytest.raises(SystemExit):
        ours(PROMPT, **SIZE, num_inference_steps=4, guidance_mode="jit")
    assert settings() == (4, 5.0, "jit", None)
    from anyframe.cli import default_model_dir

    _cli(capsys, "generate", "--model", str(default_model_dir()), "--prompt", PROMPT, "--out", str(tmp_path / "x.mp4"))
    assert settings() == (25, 7.5, "jit", "full")  # auto: a prompt-only clip is renormalised
    _cli(capsys, "generate", "--model", str(default_model_dir()), "--prompt", PROMPT, "--renorm", "none",
         "--out", str(tmp_path / "x.mp4"))
    assert settings() == (25, 7.5, "jit", None)


def test_dtype_loads_weights_in_bf16_and_the_vae_in_float32(tmp_path):
    """--dtype bfloat16: transformer and encoders in bf16 (Wan: the modules diffusers keeps in float32 stay
    so), the VAE loaded in float32 — its weights exactly the saved ones, not rounded through bf16."""
    from anyframe.cli import default_model_dir
    from anyframe.pipelines import load_pipeline

    _, ours = pipelines("t2v", tmp_path)
    for folder, reference in ((tmp_path / "wan-t2v", ours), (default_model_dir(), AnyFramePipeline.from_pretrained(default_model_dir()))):
        pipe = load_pipeline(folder, "bfloat16")
        assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
        assert pipe.vae.dtype == torch.float32
        want, got = reference.vae.state_dict(), pipe.vae.state_dict()
        assert all(torch.equal(want[k], got[k]) for k in want)
    wan = load_pipeline(tmp_path / "wan-t2v", "bfloat16")
    assert wan.transformer.scale_shift_table.dtype == torch.float32  # kept in float32, as diffusers loads it
    with pytest.raises(AnyframeInputError, match="float16"):
        load_pipeline(default_model_dir(), "float16")


def test_keyframes_on_a_causal_vae_need_resolved_indices(tmp_path):
    _, pipe = pipelines("t2v", tmp_path)
    with pytest.raises(ValueError, match="pixel_indices"):
        pipe.encode_keyframes([Keyframe(image(0), -1)], 32, 32)
