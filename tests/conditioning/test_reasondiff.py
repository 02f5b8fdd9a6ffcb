"""ReasonDiff: AlignFormer's shapes and zero start, per-frame narratives in the context, the predicted latents as
channels (an untrained model computes its base model's video), the training inputs and the two training stages."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from anyframe.conditioning import FrameReplacement, MethodStack, ReasonDiff, TrainingBatch
from anyframe.conditioning.reasondiff import LATENTS, latent_frame_texts
from anyframe.data.base import collate
from anyframe.data.world import WorldDataset
from anyframe.models.alignformer import AlignFormer
from anyframe.models.autoencoder import encode_video
from anyframe.pipelines import AnyFramePipeline, Keyframe, build_world_pipeline
from anyframe.pipelines.anyframe import PipelineEncoders
from anyframe.training.config import load_config
from anyframe.training.logging import read_metrics
from anyframe.training.recipe import train

PROMPT = "On a black background, a large red circle moves left."


def test_alignformer_predicts_one_latent_per_frame_and_starts_at_zero():
    torch.manual_seed(0)
    model = AlignFormer(latent_channels=4, text_dim=16, width=32, heads=4)
    anchor = torch.randn(2, 4, 8, 8)
    text = torch.randn(2, 5, 7, 16)
    mask = torch.ones(2, 5, 7, dtype=torch.bool)
    mask[:, :, 5:] = False
    out = model(anchor, torch.tensor([0, 3]), text, mask)
    assert out.shape == (2, 4, 5, 8, 8) and (out == 0).all()
    torch.nn.init.normal_(model.out.weight, std=0.1)
    out = model(anchor, torch.tensor([0, 3]), text, mask)
    # each frame's latent depends on that frame's narrative only
    changed = text.clone()
    changed[:, 2] += 1.0
    again = model(anchor, torch.tensor([0, 3]), changed, mask)
    differs = (again - out).abs().flatten(3).amax(-1).amax(1)  # [B, T]
    assert (differs[:, 2] > 1e-4).all() and (differs[:, [0, 1, 3, 4]] < 1e-6).all()
    # masked-out tokens do not matter; the anchor's frame does
    padded = text.clone()
    padded[:, :, 6] = 99.0
    assert torch.allclose(model(anchor, torch.tensor([0, 3]), padded, mask), out, atol=1e-6)
    assert not torch.allclose(model(anchor, torch.tensor([1, 3]), text, mask), out)
    out.sum().backward()
    assert model.anchor_in.weight.grad.abs().sum() > 0 and model.text_in.weight.grad.abs().sum() > 0


def test_latent_frames_read_the_middle_narrative_of_their_pixel_frames():
    texts = [f"t{i}" for i in range(9)]
    assert latent_frame_texts(texts, 9, 1) == texts
    assert latent_frame_texts(texts, 3, 4) == ["t0", "t2", "t6"]  # frames 1–4 and 5–8


def _base():
    base = build_world_pipeline("tiny", seed=0)
    with torch.no_grad():
        torch.manual_seed(1)
        base.transformer.proj_out.weight.normal_(std=0.1)
    base.set_progress_bar_config(disable=True)
    return base


def _with_reasondiff(base, dropout=None, **options):
    rates = {} if dropout is None else {"text_dropout": dropout, "image_dropout": dropout}
    stack = MethodStack.of([FrameReplacement(task_weights={"any_frame": 1.0}, **rates),
                            ReasonDiff.for_backbone(base.transformer, width=32, **options)])
    pipe = AnyFramePipeline(**{**base.components, "conditioning": stack,
                               "transformer": stack.adapt_backbone(base.transformer)})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_an_untrained_reasondiff_model_generates_its_base_models_video():
    base, image = _base(), (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    rd = _with_reasondiff(base)
    assert rd.transformer.config.extra_in_channels == base.transformer.latent_channels + 1
    keyframes = [Keyframe(image, 5)]
    a = base(PROMPT, keyframes=keyframes, num_inference_steps=3, seed=2, output_type="latent").frames
    b = rd(PROMPT, keyframes=keyframes, num_inference_steps=3, seed=2, output_type="latent").frames
    # without narratives every frame reads the prompt: the per-frame context equals the global one
    assert torch.allclose(a, b, atol=1e-4)
    assert torch.equal(b[:, :, 5], rd.encode_keyframes(keyframes, 16, 16)[:, :, 0])  # the image, exact at its frame
    # narratives change what each frame reads
    stories = {j: f"On a black background, the red circle is {'on the left' if j > 4 else 'in the center'}."
               for j in range(8)}
    c = rd(PROMPT, keyframes=keyframes, num_inference_steps=3, seed=2, output_type="latent", frame_prompts=stories).frames
    assert not torch.allclose(b, c, atol=1e-4)


def _world_batch(pipe, n=4):
    data = WorldDataset(64, "train", size=16, frames=8, seed=0)
    items = collate([data[i] for i in range(n)])
    pixels = items.video.permute(0, 2, 1, 3, 4)
    return TrainingBatch(latents=encode_video(pipe.vae, pixels).float(), text=pipe.encode_text(items.captions),
                         null_text=pipe.encode_text([""]).repeat(n), pixels=pixels, captions=items.captions,
                         frame_captions=items.frame_captions, object_masks=items.masks,
                         regional_captions=items.regional_captions, meta=items.meta, encoders=PipelineEncoders(pipe))


def test_training_reads_each_frames_caption_and_predicts_latents_around_the_anchor():
    pipe = _with_reasondiff(_base(), dropout=0.0, aux_weight=0.2)
    method = pipe.conditioning
    batch = _world_batch(pipe)
    g = torch.Generator().manual_seed(0)
    sigma = torch.full((4,), 0.5)
    inputs = method.training_inputs(batch, sigma, torch.randn(batch.latents.shape, generator=g), g)
    mi = inputs.model_inputs
    assert mi.encoder_hidden_states.ndim == 4 and mi.encoder_hidden_states.shape[:2] == (4, 8)
    own = pipe.encode_text(batch.frame_captions[0])
    length = own.embeds.shape[1]
    assert torch.allclose(mi.encoder_hidden_states[0, :, :length], own.embeds, atol=1e-6)
    frame = inputs.info["reasondiff_frame"]
    assert inputs.info["reasondiff_present"].all()
    assert torch.equal(inputs.info["frame_mask"].float().argmax(1), frame)
    with torch.no_grad():
        torch.nn.init.normal_(method.members[1].alignformer.out.weight, std=0.1)
    out = method(pipe.transformer, mi)
    assert out[LATENTS].shape == batch.latents.shape
    terms = method.loss(out, inputs)
    assert set(terms) == {"diffusion", "alignformer"} and (terms["alignformer"] > 0).all()
    # the anchor frame's prediction is not part of the auxiliary loss
    with torch.no_grad():
        out[LATENTS][torch.arange(4), :, frame] += 100.0
    assert torch.allclose(method.loss(out, inputs)["alignformer"], terms["alignformer"])


def test_ablations_and_options():
    pipe = _with_reasondiff(_base(), predicted_latents=False)
    assert pipe.transformer.config.extra_in_channels == 0
    with pytest.raises(ValueError, match="needs predicted_latents"):
        ReasonDiff(predicted_latents=False, aux_weight=0.2)
    with pytest.raises(ValueError, match="aux_weight"):
        ReasonDiff(aux_weight=-1)


SMALL = ["model.preset=tiny", "data.source=world", "data.world.num_clips=16", "data.world.size=16",
         "data.world.frames=8", "data.batch_size=2", "train.steps=2", "train.log_every=1", "optim.lr=3e-3",
         "ema.enabled=false", "conditioning.task_weights={any_frame: 1}"]


def test_two_stages_the_second_trains_alignformer_alone(tmp_path):
    cfg = load_config(None, [*SMALL, f"output_dir={tmp_path / 'one'}", "conditioning.addons=[{method: reasondiff, width: 32}]"])
    one = train(cfg, progress=False)
    stage1 = AnyFramePipeline.from_pretrained(one.pipeline_dir)
    assert [m.name for m in stage1.conditioning.methods] == ["frame_replacement", "reasondiff"]
    cfg2 = load_config(None, [*SMALL, "model.preset=null", f"model.pretrained={one.pipeline_dir}",
                              f"output_dir={tmp_path / 'two'}", "train.trainable=conditioning",
                              "conditioning.addons=[{method: reasondiff, width: 32, aux_weight: 0.2}]"])
    two = train(cfg2, progress=False)
    records = [m for m in read_metrics(tmp_path / "two") if "loss" in m]
    assert all(r["loss_alignformer"] > 0 for r in records)
    saved = load_file(tmp_path / "two" / "checkpoints" / "step-00000002" / "model.safetensors")
    assert saved and all(k.startswith("conditioning.") for k in saved)  # only AlignFormer trained
    stage2 = AnyFramePipeline.from_pretrained(two.pipeline_dir)
    for (name, p), q in zip(stage1.transformer.named_parameters(), stage2.transformer.parameters()):
        assert torch.equal(p, q), name
    a1 = dict(stage1.conditioning.named_parameters())
    assert any(not torch.equal(a1[k], v) for k, v in stage2.conditioning.named_parameters())
    out = stage2(PROMPT, keyframes=[Keyframe(np.zeros((16, 16, 3), np.uint8), 3)], num_inference_steps=2, seed=0)
    assert out.frames.shape == (1, 8, 16, 16, 3)


def test_a_method_without_layers_cannot_train_alone():
    from anyframe.errors import AnyframeInputError
    from anyframe.training.recipe import build_components

    with pytest.raises(AnyframeInputError, match="no layers of its own"):
        build_components(load_config(None, [*SMALL, "train.trainable=conditioning"]))


class _Narrator:
    """A scripted narrator: the image at frame 5, one line per frame."""

    name = "scripted"

    def __init__(self):
        self.calls, self.images = [], []

    def narrate(self, image, prompt, num_frames):
        from anyframe.narrators.base import Narrative

        self.calls.append((image.shape, prompt, num_frames))
        self.images.append(image)
        return Narrative(position=5, descriptions=[f"On a black background, frame {j}." for j in range(num_frames)],
                         backend="scripted")


def test_a_narrator_places_an_image_without_its_index():
    image = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    rd, narrator = _with_reasondiff(_base()), _Narrator()
    out = rd(PROMPT, keyframes=[Keyframe(image, None)], num_inference_steps=2, seed=0, narrator=narrator,
             output_type="latent")
    assert narrator.calls == [((16, 16, 3), PROMPT, 8)]
    # the narrator reads the image as it is (uint8), not the model's [−1, 1] floats (which it would clip at 0)
    assert narrator.images[0].dtype == np.uint8 and np.array_equal(narrator.images[0], image)
    assert out.keyframe_indices == (5,) and out.extras["narrative"]["position"] == 5
    assert out.request.frame_prompts[7] == "On a black background, frame 7."
    assert torch.equal(out.frames[:, :, 5], rd.encode_keyframes([Keyframe(image, 5)], 16, 16)[:, :, 0])
    # a model without per-frame narratives takes the position only (anyframe's keyframe baseline)
    plain = _base()
    out = plain(PROMPT, keyframes=[Keyframe(image, None)], num_inference_steps=2, seed=0, narrator=_Narrator())
    assert out.keyframe_indices == (5,) and out.request.frame_prompts == {}
    # no narrator: the image needs its index
    from anyframe.errors import AnyframeInputError

    with pytest.raises(AnyframeInputError, match="frame index"):
        plain(PROMPT, keyframes=[Keyframe(image, None)], num_inference_steps=2, seed=0)


def _cli(capsys, *args):
    """``anyframe ARGS`` in-process: (exit code, stdout, stderr)."""
    from anyframe.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_generate_asks_the_narrator_where_an_image_without_index_goes(tmp_path, capsys, monkeypatch):
    import json

    from PIL import Image

    from anyframe.world import render, scene_for_seed

    monkeypatch.chdir(tmp_path)
    model = tmp_path / "rd"
    _with_reasondiff(_base()).save_pretrained(model)
    scene = scene_for_seed(3, "train", size=16, frames=8)
    Image.fromarray(render(scene).frames[7]).save(tmp_path / "end.png")

    code, out, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "--image", tmp_path / "end.png",
                         "-p", PROMPT, "--out", tmp_path / "a.mp4", "--json")
    assert code == 0, err
    record = json.loads(out)
    story = record["narrative"]
    assert story["backend"] == "world" and len(story["descriptions"]) == 8
    assert record["keyframes"] == [story["position"]]
    # --narrator none: today's behaviour, the image at frame 0; an explicit index is never asked about
    for flags, want in ((["--narrator", "none"], [0]), ([], [3])):
        image = tmp_path / "end.png" if flags else f"{tmp_path / 'end.png'}@3"
        code, out, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "--image", image, "-p", PROMPT,
                             "--out", tmp_path / f"b{want[0]}.mp4", "--json", *flags)
        assert code == 0, err
        record = json.loads(out)
        assert record["keyframes"] == want and "narrative" not in record
    code, _, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "--image", tmp_path / "end.png", "-p", PROMPT,
                       "--narrator", "openai")
    assert code == 2 and "--narrator-url" in err and err.count("\n") == 1


def test_narrator_prompt_puts_the_narrators_caption_in_place_of_the_prompt(tmp_path, capsys, monkeypatch):
    from dataclasses import replace as with_fields

    from PIL import Image

    from anyframe.world import render, scene_for_seed

    image = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    plain = _base()

    class Captioned(_Narrator):
        def narrate(self, image, prompt, num_frames):
            return with_fields(super().narrate(image, prompt, num_frames), caption="On a black background, a red "
                               "circle moves left.")

    kwargs = dict(keyframes=[Keyframe(image, None)], num_inference_steps=1, seed=0, output_type="latent")
    out = plain(PROMPT, narrator=Captioned(), narrator_prompt=True, **kwargs)
    assert out.request.prompts == ["On a black background, a red circle moves left."] and out.keyframe_indices == (5,)
    assert [out.extras["narrative"]["caption"]] == out.request.prompts
    assert plain(PROMPT, narrator=Captioned(), **kwargs).request.prompts == [PROMPT]  # only when asked
    assert plain(PROMPT, narrator=_Narrator(), narrator_prompt=True, **kwargs).request.prompts == [PROMPT]  # none written

    # the CLI: the world narrator's caption of its solved scene, printed; refused without a narrator
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "plain"
    plain.save_pretrained(model)
    scene = scene_for_seed(3, "train", size=16, frames=8)
    Image.fromarray(render(scene).frames[7]).save(tmp_path / "end.png")

    code, _, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "--image", tmp_path / "end.png", "-p", PROMPT,
                       "--narrator", "world", "--narrator-prompt", "--out", tmp_path / "a.mp4")
    assert code == 0, err
    assert "prompt (the narrator's): On a" in err and (tmp_path / "a.mp4").is_file()
    code, _, err = _cli(capsys, "generate", "--model", model, "--steps", "1", "--image", f"{tmp_path / 'end.png'}@7",
                       "-p", PROMPT, "--narrator-prompt", "--out", tmp_path / "b.mp4")
    assert code == 2 and "--narrator-prompt needs" in err and err.count("\n") == 1
    assert not (tmp_path / "b.mp4").exists()
