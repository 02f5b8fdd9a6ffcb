"""JDM (joint video + mask denoising): the inflated model starts as its base, exactly; it composes with frame
replacement; its training inputs follow the paper's two terms; the recipe trains it on world clips (STIV and Wan
backbones) and the exported model returns masks."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from anyframe.conditioning import FrameReplacement, JointMasks, MethodStack, TrainingBatch
from anyframe.conditioning.jdm import draw_subset, joined_captions, mask_pixels
from anyframe.data.base import collate
from anyframe.data.world import WorldDataset
from anyframe.pipelines import AnyFramePipeline, Keyframe, build_world_pipeline
from anyframe.pipelines.anyframe import PipelineEncoders
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import train
from anyframe.world import caption, scene_for_seed
from anyframe.world.captions import partial_caption

PROMPT = "On a black background, a large red circle moves left. A small blue square moves up."


def _perturbed_base(seed: int = 0):
    base = build_world_pipeline("tiny", seed=seed)
    with torch.no_grad():  # a base model whose output is not trivially zero
        torch.manual_seed(1)
        base.transformer.proj_out.weight.normal_(std=0.1)
    base.set_progress_bar_config(disable=True)
    return base


def _with_jdm(base, dropout: float | None = None, **options):
    """``base`` with frame replacement + JDM (``dropout``: both training dropout rates, else the defaults)."""
    rates = {} if dropout is None else {"text_dropout": dropout, "image_dropout": dropout}
    stack = MethodStack.of([FrameReplacement(**rates), JointMasks.for_backbone(base.transformer, **options)])
    pipe = AnyFramePipeline(**{**base.components, "conditioning": stack,
                               "transformer": stack.adapt_backbone(base.transformer)})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_an_untrained_jdm_model_generates_its_base_models_video_exactly():
    base = _perturbed_base()
    jdm = _with_jdm(base)
    c = base.transformer.latent_channels
    assert jdm.transformer.config.extra_in_channels == c and jdm.transformer.config.extra_out_channels == c
    image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    for keyframes in ([], [Keyframe(image, 0), Keyframe(image, 5)]):
        a = base(PROMPT, keyframes=keyframes, num_inference_steps=3, seed=4, output_type="latent").frames
        out = jdm(PROMPT, keyframes=keyframes, num_inference_steps=3, seed=4, output_type="latent")
        assert out.frames.shape[1] == 2 * c
        assert torch.equal(out.frames[:, :c], a)  # the zero-initialised channels leave the video untouched
    # keyframes are re-imposed on the video channels only: exact there, the mask channels still generated
    clean = jdm.encode_keyframes([Keyframe(image, 0), Keyframe(image, 5)], 16, 16)
    assert torch.equal(out.frames[:, :c, [0, 5]], clean)
    video = jdm(PROMPT, num_inference_steps=2, seed=0)
    assert video.extras["masks"].shape == (1, 8, 16, 16) and video.extras["masks"].dtype == bool
    assert video.extras["mask_frames"].shape == (1, 8, 16, 16, 3)
    assert video.masks is video.extras["masks"]


def test_once_its_channels_are_trained_the_masks_come_from_the_output_channels():
    jdm = _with_jdm(_perturbed_base())
    with torch.no_grad():  # a mask output that is not zero: the decoded mask clip changes
        proj = jdm.transformer.proj_out.weight
        proj[proj.shape[0] // 2:].normal_(std=0.5)
    a = jdm(PROMPT, num_inference_steps=2, seed=0).extras["mask_frames"]
    b = _with_jdm(_perturbed_base())(PROMPT, num_inference_steps=2, seed=0).extras["mask_frames"]
    assert not np.allclose(a, b)


# ----------------------------------------------------------------------------------- training inputs


def test_partial_captions_are_the_caption_form_of_the_chosen_objects():
    for seed in range(30):
        scene = scene_for_seed(seed, "train", size=32, frames=16)
        k = len(scene.objects)
        assert partial_caption(scene, range(k)) == caption(scene)
        if k >= 2:
            one = partial_caption(scene, [1])
            other = scene.objects[0]
            assert f"{other.size} {other.color} {other.shape}" not in one or \
                (other.size, other.color, other.shape) == (scene.objects[1].size, scene.objects[1].color,
                                                           scene.objects[1].shape)
            assert one.startswith(caption(scene).split(",")[0])  # the setting is kept
    assert joined_captions(["a red circle moving left", "a blue square staying still"], [1], None) == \
        "A blue square staying still."
    with pytest.raises(ValueError, match="out of range"):
        partial_caption(scene_for_seed(0, "train"), [9])


def test_subsets_are_uniform_over_the_non_empty_ones():
    g = torch.Generator().manual_seed(0)
    counts: dict = {}
    for _ in range(3000):
        key = tuple(draw_subset(2, g))
        counts[key] = counts.get(key, 0) + 1
    assert set(counts) == {(0,), (1,), (0, 1)} and min(counts.values()) > 850
    assert draw_subset(0, g) == []
    masks = torch.zeros(2, 3, 4, 4)
    masks[0, :, 0, 0] = 1
    masks[1, :, 1, 1] = 0.5
    clip = mask_pixels(masks, [0, 1])
    assert clip.shape == (3, 3, 4, 4) and clip[0, 0, 0, 0] == 1 and clip[0, 0, 1, 1] == 0 and clip[0, 0, 2, 2] == -1
    assert (mask_pixels(masks, []) == -1).all()


def _world_batch(pipe, n=6, cmi=None):
    data = WorldDataset(64, "train", size=16, frames=8, seed=0)
    items = []
    for i in range(n):
        item = data[i]
        if cmi is not None:
            item.meta["cmi"] = cmi[i]
        items.append(item)
    batch = collate(items)
    pixels = batch.video.permute(0, 2, 1, 3, 4)
    from anyframe.models.autoencoder import encode_video

    latents = encode_video(pipe.vae, pixels).float()
    return TrainingBatch(latents=latents, text=pipe.encode_text(batch.captions),
                         null_text=pipe.encode_text([""]).repeat(n), pixels=pixels, captions=batch.captions,
                         object_masks=batch.masks, regional_captions=batch.regional_captions, meta=batch.meta,
                         encoders=PipelineEncoders(pipe))


def _inputs(method, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = batch.latents.shape[0]
    sigma = torch.full((b,), 0.5)
    noise = torch.randn(batch.latents.shape, generator=g)
    return method.training_inputs(batch, sigma, noise, g)


def test_training_inputs_follow_the_two_terms():
    pipe = _with_jdm(_perturbed_base(), dropout=0.0, use_cmi=False)
    method = pipe.conditioning
    c = pipe.transformer.latent_channels
    batch = _world_batch(pipe)
    # w' = 1: every example is a fine one, its mask error counts; its caption names only the chosen objects
    inputs = _inputs(method, batch)
    fine = inputs.info["jdm_fine"]
    assert fine.all()
    assert inputs.target.shape[1] == 2 * c and inputs.model_inputs.extra_channels.shape[1] == c
    assert inputs.loss_mask.shape[1] == 2 * c and (inputs.loss_mask[:, c:] == 1).all()
    # w' = 0: the full caption, the mask error not counted, the mask channels still noised (not zero)
    none = _with_jdm(_perturbed_base(), w=0.0, use_cmi=False, dropout=0.0)
    inputs0 = _inputs(none.conditioning, batch)
    assert not inputs0.info["jdm_fine"].any() and (inputs0.loss_mask[:, c:] == 0).all()
    assert torch.equal(inputs0.model_inputs.encoder_hidden_states, batch.text.embeds)
    assert inputs0.model_inputs.extra_channels.abs().sum() > 0
    # with w' = 1 the text differs from the full caption where a proper subset was drawn
    differs = [not torch.equal(inputs.model_inputs.encoder_hidden_states[i], batch.text.embeds[i])
               for i in range(len(fine))]
    assert any(differs)
    # the loss runs over both halves and is finite
    out = pipe.transformer(**inputs.model_inputs.as_kwargs())
    terms = method.loss(out, inputs)
    assert torch.isfinite(terms["diffusion"]).all()


def test_diagnostics_split_the_error_into_video_and_mask_channels():
    """The training log's ``jdm/video`` and ``jdm/mask``: each channel group's own error, the mask's over the fine
    terms only; the loss itself is unchanged."""
    from types import SimpleNamespace

    pipe = _with_jdm(_perturbed_base(), dropout=0.0, use_cmi=False)
    method, c = pipe.conditioning, pipe.transformer.latent_channels
    inputs = _inputs(method, _world_batch(pipe))
    target = inputs.target
    exact_mask = target.clone()
    exact_mask[:, :c] += 1.0  # video off by 1 everywhere, mask exact
    d = method.diagnostics(SimpleNamespace(sample=exact_mask), inputs)
    assert d["jdm/mask"] == 0.0 and d["jdm/fine_share"] == 1.0
    counted = inputs.loss_mask[:, :c].expand_as(target[:, :c])
    assert counted.sum() > 0 and abs(d["jdm/video"] - 1.0) < 1e-6  # the mean over the counted elements
    exact_video = target.clone()
    exact_video[:, c:] += 2.0
    d = method.diagnostics(SimpleNamespace(sample=exact_video), inputs)
    assert d["jdm/video"] == 0.0 and abs(d["jdm/mask"] - 4.0) < 1e-5
    # no fine term in the batch: the mask error is NaN (the log leaves it out)
    none = _with_jdm(_perturbed_base(), w=0.0, use_cmi=False, dropout=0.0)
    inputs0 = _inputs(none.conditioning, _world_batch(none))
    d0 = none.conditioning.diagnostics(SimpleNamespace(sample=inputs0.target.clone()), inputs0)
    assert np.isnan(d0["jdm/mask"]) and d0["jdm/video"] == 0.0 and d0["jdm/fine_share"] == 0.0


def test_without_the_fine_video_loss_a_fine_term_counts_only_the_mask_channels():
    batch_pipe = _with_jdm(_perturbed_base(), dropout=0.0, use_cmi=False, fine_video_loss=False)
    c = batch_pipe.transformer.latent_channels
    inputs = _inputs(batch_pipe.conditioning, _world_batch(batch_pipe))
    assert inputs.info["jdm_fine"].all()
    assert (inputs.loss_mask[:, :c] == 0).all() and (inputs.loss_mask[:, c:] == 1).all()
    # a diffusion term is unchanged: the video counts, the masks do not
    half = _with_jdm(_perturbed_base(), w=0.0, use_cmi=False, dropout=0.0, fine_video_loss=False)
    inputs0 = _inputs(half.conditioning, _world_batch(half))
    assert (inputs0.loss_mask[:, :c] == 1).any() and (inputs0.loss_mask[:, c:] == 0).all()
    reference = _with_jdm(_perturbed_base(), w=0.0, use_cmi=False, dropout=0.0)
    assert torch.equal(inputs0.loss_mask, _inputs(reference.conditioning, _world_batch(reference)).loss_mask)


def test_the_cmi_sets_the_share_of_fine_terms():
    pipe = _with_jdm(_perturbed_base(), dropout=0.0, alpha=1.0)
    method = pipe.conditioning
    batch = _world_batch(pipe, n=6, cmi=[0.0, -0.5, 0.0, 50.0, 50.0, 50.0])
    weights = method.members[1].fine_weights(batch)
    # (a negative estimate counts as 0: w' never exceeds w)
    assert torch.allclose(weights, torch.tensor([1.0, 1, 1, np.exp(-50), np.exp(-50), np.exp(-50)], dtype=torch.float32))
    fine = _inputs(method, batch).info["jdm_fine"]
    assert fine[:3].all() and not fine[3:].any()
    no_cmi = _world_batch(pipe, n=2)
    with pytest.raises(ValueError, match=r"meta\['cmi'\]"):
        _inputs(method, no_cmi)


def test_options_are_checked():
    with pytest.raises(ValueError, match="w must be in"):
        JointMasks(w=1.5)
    with pytest.raises(ValueError, match="alpha"):
        JointMasks(alpha=-1)
    with pytest.raises(ValueError, match="threshold"):
        JointMasks(threshold=1.0)
    # two methods that widen the output would each split the state as [video | its own channels]
    with pytest.raises(ValueError, match="at most one method in a stack may add output channels"):
        MethodStack([{"name": "frame_replacement"}, {"name": "jdm"}, {"name": "jdm"}])


# ----------------------------------------------------------------------------------------- recipe

SMALL = ["model.preset=tiny", "data.source=world", "data.world.num_clips=16", "data.world.size=16",
         "data.world.frames=8", "data.batch_size=2", "train.steps=2", "train.log_every=1", "optim.lr=3e-3",
         "ema.enabled=false"]


def test_the_recipe_refuses_cmi_weighting_without_a_table():
    with pytest.raises(Exception, match="data.world.cmi"):
        load_config(None, [*SMALL, "conditioning.addons=[{method: jdm}]"])


def test_the_recipe_trains_jdm_and_the_exported_model_returns_masks(tmp_path):
    cfg = load_config(None, [*SMALL, f"output_dir={tmp_path / 'run'}",
                             "conditioning.addons=[{method: jdm, use_cmi: false}]"])
    result = train(cfg, progress=False)
    records = [m for m in read_metrics(tmp_path / "run") if "loss" in m]
    losses = [m["loss"] for m in records]
    assert len(losses) == 2 and None not in losses
    # the log splits the error by channel group (w' = 1: every example a fine term)
    assert all(m["jdm/fine_share"] == 1.0 and m["jdm/mask"] > 0 and m["jdm/video"] > 0 for m in records)
    weights = load_file(tmp_path / "run" / "checkpoints" / "step-00000002" / "model.safetensors")
    out_w = weights["transformer.proj_out.weight"]
    assert out_w[out_w.shape[0] // 2:].abs().sum() > 0  # the zero-initialised mask outputs learned
    pipe = AnyFramePipeline.from_pretrained(result.pipeline_dir)
    assert [m.name for m in pipe.conditioning.methods] == ["frame_replacement", "jdm"]
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, num_inference_steps=2, seed=0)
    assert out.masks.shape == (1, 8, 16, 16)
    # the evaluation scores the union mask of a `masks` case against the union of the scene's objects
    from anyframe.evaluation.harness import Conditioning, PipelineModel
    from anyframe.evaluation.report import score_case
    from anyframe.world.suite import sample_suite

    case = sample_suite(1, tasks=("masks",), size=16, frames=8)[0]
    cond = Conditioning.of(case)
    model = PipelineModel(str(result.pipeline_dir), steps=2)
    entry, _ = score_case(model, case, cond)
    assert entry["scores"]["mask_iou"] is not None and 0.0 <= entry["scores"]["mask_iou"] <= 1.0


def test_jdm_inflates_and_trains_a_wan_backbone(tmp_path):
    config = Path(__file__).parents[2] / "configs" / "wan-tiny-lora.yaml"
    cfg = load_config(config, ["data.world.num_clips=4", "train.log_every=1", "train.export=false", "train.steps=1",
                               "lora.enabled=false", f"output_dir={tmp_path}",
                               "conditioning.addons=[{method: jdm, use_cmi: false}]"])
    from anyframe.training.recipe import build_components

    pipe = build_components(cfg)
    from anyframe.pipelines import build_wan_pipeline
    from anyframe.world import world_vocabulary

    base = build_wan_pipeline("tiny", seed=0, vocabulary=world_vocabulary())
    c = base.transformer.latent_channels
    assert pipe.transformer.config.in_channels == base.transformer.config.in_channels + c
    # untrained: the video output is the base backbone's
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, 3, 4, 4, generator=g)
    mask = torch.randn(1, c, 3, 4, 4, generator=g)
    text = torch.randn(1, 16, base.transformer.config.text_dim, generator=g)
    with torch.no_grad():
        ref = base.transformer(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text).sample
        got = pipe.transformer(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text,
                               extra_channels=mask).sample
    assert got.shape[1] == 2 * c and torch.allclose(got[:, :c], ref, atol=1e-6)
    train(cfg, progress=False)
    assert next(m["loss"] for m in read_metrics(tmp_path) if "loss" in m) is not None


# -------------------------------------------------------------------------------------------- CLI


def _cli(capsys, *args):
    from anyframe.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return (info.value.code or 0), out, err


def test_generate_writes_the_masks_beside_the_video(tmp_path, capsys, monkeypatch):
    import av

    monkeypatch.chdir(tmp_path)
    model = tmp_path / "jdm"
    _with_jdm(_perturbed_base()).save_pretrained(model)
    code, out, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "--seed", "0", "-p", PROMPT,
                          "--masks", "--out", tmp_path / "v.mp4", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["masks"] == [str(tmp_path / n) for n in ("v.masks.mp4", "v.masks.png", "v.masks.npz")]
    saved = np.load(tmp_path / "v.masks.npz")
    assert saved["masks"].shape == (8, 16, 16) and saved["masks"].dtype == bool and float(saved["threshold"]) == 0.5
    with av.open(str(tmp_path / "v.masks.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8
    # a mask path that cannot be written is refused before sampling: one line, nothing written
    (tmp_path / "w.masks.npz").mkdir()
    code, _, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "-p", PROMPT, "--masks",
                        "--out", tmp_path / "w.mp4")
    assert code == 2 and "w.masks.npz" in err and err.count("\n") == 1
    assert not (tmp_path / "w.mp4").exists() and not (tmp_path / "w.masks.mp4").exists()


def test_masks_are_refused_where_the_model_has_none(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = tmp_path / "plain"
    build_world_pipeline("tiny", seed=0).save_pretrained(plain)
    code, _, err = _cli(capsys, "generate", "--model", plain, "--steps", "1", "-p", PROMPT, "--masks",
                        "--out", tmp_path / "v.mp4")
    assert code == 2 and "does not generate masks" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("v*"))
    code, _, err = _cli(capsys, "generate", "--model", plain, "--batch", tmp_path / "b.jsonl", "--masks",
                        "--out", tmp_path / "dir")
    assert code == 2 and "--batch" in err


# -------------------------------------------------------------------------------------------- learning


@pytest.mark.slow  # (CI's second step: ./scripts/test.sh -m slow)
def test_a_few_hundred_steps_learn_to_predict_the_masks(tmp_path):
    """Trained from its zero-initialised channels, the model's error on the mask channels of held-out world clips
    (the same noise and σ before and after) falls well below the untrained model's, while its video error does
    not rise."""
    cfg = load_config(None, ["model.preset=tiny", "data.source=world", "data.world.num_clips=100000",
                             "data.world.size=16", "data.world.frames=8", "data.batch_size=8", "train.steps=200",
                             "train.log_every=50", "optim.lr=2e-3", "ema.enabled=false", f"output_dir={tmp_path}",
                             "train.checkpoint_every=100000", "conditioning.addons=[{method: jdm, use_cmi: false}]"])
    from anyframe.training.recipe import build_components

    before = build_components(cfg)
    result = train(cfg, progress=False)
    after = AnyFramePipeline.from_pretrained(result.pipeline_dir)

    def errors(pipe):
        data = WorldDataset(64, "train", size=16, frames=8, seed=7)  # (a seed the run never read)
        items = collate([data[i] for i in range(16)])
        pixels = items.video.permute(0, 2, 1, 3, 4)
        from anyframe.models.autoencoder import encode_video

        batch = TrainingBatch(latents=encode_video(pipe.vae, pixels).float(), text=pipe.encode_text(items.captions),
                              null_text=pipe.encode_text([""]).repeat(16), pixels=pixels, captions=items.captions,
                              object_masks=items.masks, regional_captions=items.regional_captions, meta=items.meta,
                              encoders=PipelineEncoders(pipe))
        inputs = _inputs(pipe.conditioning, batch, seed=3)
        with torch.no_grad():
            out = pipe.transformer(**inputs.model_inputs.as_kwargs()).sample
        err = ((out - inputs.target) ** 2 * inputs.loss_mask).detach()
        c = pipe.transformer.latent_channels
        return float(err[:, c:].sum() / inputs.loss_mask[:, c:].sum()), float(err[:, :c].sum() / inputs.loss_mask[:, :c].sum())

    mask_before, video_before = errors(before)
    mask_after, video_after = errors(after)
    print(f"mask error {mask_before:.3f} → {mask_after:.3f}, video error {video_before:.3f} → {video_after:.3f}")
    assert mask_after < 0.6 * mask_before, (mask_before, mask_after)
    assert video_after < 1.05 * video_before, (video_before, video_after)
