"""Files a command cannot use — recipes, suites, manifests, model folders, LoRA folders — and output paths of the
wrong kind: refused on one line that names the file, before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anyframe.io import write_mp4

# ------------------------------------------------------------------------------------------ recipes

RECIPES = {  # file content → what the line must say
    "binary": (bytes(range(256)), r"not UTF-8|binary"),
    "nul bytes": (b"name: x\n\0\0\0", r"binary"),
    "latin-1": ("name: caf\xe9\n".encode("latin-1"), r"not UTF-8"),
    "utf-16": ("name: x\n".encode("utf-16"), r"not UTF-8|binary"),
    "empty": (b"", r"empty"),
    "only comments": (b"# nothing here\n", r"empty"),
    "a list": (b"- 1\n- 2\n", r"mapping"),
    "a scalar": (b"42\n", r"mapping"),
    "bad yaml": (b"name: [unclosed\n", r"not valid YAML"),
    "tabs": (b"train:\n\tsteps: 3\n", r"not valid YAML"),
    "unknown section": (b"nonsense: 1\n", r"nonsense.*unknown key"),
    "wrong type": (b"train: {steps: many}\n", r"steps"),
    "lr inf": (b"optim: {lr: .inf}\n", r"lr"),
    "lr nan": (b"optim: {lr: .nan}\n", r"lr"),
    "seed negative": (b"seed: -1\n", r"seed"),
    "seed huge": (b"seed: 1180591620717411303424\n", r"seed"),
    "num_layers -3": (b"model: {preset: tiny, backbone: {num_layers: -3}}\n", r"num_layers"),
    "num_layers string": (b"model: {preset: tiny, backbone: {num_layers: eight}}\n", r"num_layers"),
    "section not a mapping": (b"optim: 3\n", r"optim"),
    "lr_scale negative": (b"optim: {lr_scale: {transformer.: -1}}\n", r"lr_scale"),
    "lr_scale not a mapping": (b"optim: {lr_scale: 3}\n", r"lr_scale"),
    "lr_scale nan": (b"optim: {lr_scale: {transformer.: .nan}}\n", r"lr_scale"),
    "keep_every negative": (b"train: {keep_every: -5}\n", r"keep_every"),
    "method option nan": (b"conditioning: {method: flashi2v, default_detail: .nan}\n", r"default_detail|finite"),
}


@pytest.mark.parametrize("kind", sorted(RECIPES))
@pytest.mark.parametrize("command", [["train"], ["train", "--check"]])
def test_a_recipe_that_cannot_be_read_is_refused(cli, tmp_path, kind, command):
    content, needle = RECIPES[kind]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(content)
    cli.refuses([*command, "--config", recipe, "--output", "run"], needle)


def test_a_folder_given_as_a_recipe_is_refused(cli, tmp_path):
    cli.refuses(["train", "--config", tmp_path], r"not found|folder")


# ------------------------------------------------------------------------------------ suites (JSONL)

GOOD_CASE = None


def _good_case() -> dict:
    from anyframe.world.suite import make_case

    global GOOD_CASE
    if GOOD_CASE is None:
        GOOD_CASE = json.loads(make_case("t2v", 3).to_json())
    return dict(GOOD_CASE)


def _case_with(**changes) -> bytes:
    case = _good_case()
    for key, value in changes.items():
        if value is ...:
            case.pop(key)
        else:
            case[key] = value
    return (json.dumps(case) + "\n").encode()


SUITES = {
    "binary": (bytes(range(256)), r"line 1.*(not UTF-8|binary)"),
    "latin-1": ('{"id": "caf\xe9"}\n'.encode("latin-1"), r"not UTF-8"),
    "empty": (b"", r"no cases"),
    "blank lines": (b"\n\n  \n", r"no cases"),
    "not json": (b"{task: t2v}\n", r"line 1.*not valid JSON"),
    "a list": (b"[1, 2]\n", r"JSON object"),
    "half a line": (b'{"id": "a", "task": ', r"not valid JSON"),
    "missing task": (None, r"needs task"),
    "missing scene": (None, r"needs scene"),
    "task is a number": (None, r"task.*must be str"),
    "unknown task": (None, r"unknown task"),
    "scene is a string": (None, r"scene.*must be dict"),
    "score is a string": (None, r"score.*must be list"),
    "score holds numbers": (None, r"score"),
    "seed is a string": (None, r"seed.*must be int"),
    "unknown field": (None, r"unknown field 'colour'"),
    "keyframes not numbers": (None, r"keyframes"),
    "keyframe out of range": (None, r"out of range"),
    "scene size a string": (None, r"canvas size"),
    "scene frames huge": (None, r"frames"),
    "object colour a list": (None, r"colour|wrong type"),
    "object position a string": (None, r"position"),
}


def _suite_bytes(kind: str) -> bytes:
    content = SUITES[kind][0]
    if content is not None:
        return content
    case = _good_case()
    scene = dict(case["scene"])
    objects = [dict(o) for o in scene["objects"]]
    return {
        "missing task": lambda: _case_with(task=...),
        "missing scene": lambda: _case_with(scene=...),
        "task is a number": lambda: _case_with(task=5),
        "unknown task": lambda: _case_with(task="sing"),
        "scene is a string": lambda: _case_with(scene="a red circle"),
        "score is a string": lambda: _case_with(score="presence"),
        "score holds numbers": lambda: _case_with(score=[1, 2]),
        "seed is a string": lambda: _case_with(seed="three"),
        "unknown field": lambda: _case_with(colour="red"),
        "keyframes not numbers": lambda: _case_with(conditions={"keyframes": ["first"]}),
        "keyframe out of range": lambda: _case_with(conditions={"keyframes": [99]}),
        "scene size a string": lambda: _case_with(scene={**scene, "size": "big"}),
        "scene frames huge": lambda: _case_with(scene={**scene, "frames": 10**9}),
        "object colour a list": lambda: _case_with(scene={**scene, "objects": [{**objects[0], "color": ["red"]}]}),
        "object position a string": lambda: _case_with(scene={**scene, "objects": [{**objects[0], "x": "left"}]}),
    }[kind]()


@pytest.mark.parametrize("kind", sorted(SUITES))
def test_a_suite_that_cannot_be_read_is_refused(cli, tmp_path, kind):
    suite = tmp_path / "suite.jsonl"
    suite.write_bytes(_suite_bytes(kind))
    cli.refuses(["eval", "--model", "truth", "--suite", suite, "--out", "report"], SUITES[kind][1])


def test_a_good_line_then_a_bad_one_names_the_line(cli, tmp_path):
    suite = tmp_path / "suite.jsonl"
    suite.write_bytes(_case_with() + b"\xff\xfe\n")
    cli.refuses(["eval", "--model", "truth", "--suite", suite, "--out", "report"], r"line 2")


# ------------------------------------------------------------------------------------------ manifests


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("videos")
    paths = []
    for i in range(3):
        frames = np.random.default_rng(i).integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)
        paths.append(write_mp4(frames, root / f"v{i}.mp4", fps=8))
    return paths


MANIFESTS = {
    "binary": lambda videos: bytes(range(256)),
    "latin-1": lambda videos: f'{{"video": "{videos[0]}", "caption": "caf\xe9"}}\n'.encode("latin-1"),
    "no caption": lambda videos: json.dumps({"video": str(videos[0])}).encode() + b"\n",
    "video a number": lambda videos: b'{"video": 3, "caption": "x"}\n',
    "empty": lambda videos: b"",
}


def _manifest_recipe(tmp_path: Path, manifest: Path, batch: int = 2) -> Path:
    recipe = tmp_path / "manifest.yaml"
    recipe.write_text(json.dumps({
        "model": {"preset": "tiny"},
        "data": {"source": "manifest", "batch_size": batch,
                 "manifest": {"path": str(manifest), "num_frames": 4, "size": [16, 16]}},
        "train": {"steps": 2, "export": False},
    }))
    return recipe


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_a_manifest_that_cannot_be_read_is_refused(cli, tmp_path, three_videos, kind):
    manifest = tmp_path / "clips.jsonl"
    manifest.write_bytes(MANIFESTS[kind](three_videos))
    cli.refuses(["train", "--config", _manifest_recipe(tmp_path, manifest), "--output", "run", "--quiet"], r"clips.jsonl")


def test_a_batch_larger_than_every_bucket_is_refused(cli, tmp_path, three_videos):
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("".join(json.dumps({"video": str(v), "caption": "noise"}) + "\n" for v in three_videos))
    out = cli.refuses(["train", "--config", _manifest_recipe(tmp_path, manifest, batch=8), "--output", "run", "--quiet"],
                      r"batch_size 8", r"largest has 3")
    assert "lower data.batch_size" in out.err


# ------------------------------------------------------------------------------------------ model folders


def _damaged(tiny_model: Path, tmp_path: Path, damage) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    damage(folder)
    return folder


def _edit_json(path: Path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


MODEL_DAMAGE = {  # damage → what the line must say
    "config not json": (lambda f: (f / "transformer" / "config.json").write_text("{hidden_size: 8"),
                        r"transformer/config.json is not valid JSON"),
    "config binary": (lambda f: (f / "transformer" / "config.json").write_bytes(b"\xff\xfe\x00"),
                      r"transformer/config.json.*UTF-8"),
    "config a list": (lambda f: (f / "transformer" / "config.json").write_text("[]"), r"JSON object"),
    "num_layers -3": (lambda f: _edit_json(f / "transformer" / "config.json", num_layers=-3), r"num_layers must be ≥ 1"),
    "num_layers a string": (lambda f: _edit_json(f / "transformer" / "config.json", num_layers="8"),
                            r"num_layers must be a whole number"),
    "hidden_size negative": (lambda f: _edit_json(f / "transformer" / "config.json", hidden_size=-64), r"hidden_size"),
    "mlp_ratio nan": (lambda f: (f / "transformer" / "config.json").write_text(
        (f / "transformer" / "config.json").read_text().replace('"mlp_ratio": 4.0', '"mlp_ratio": NaN')), r"mlp_ratio"),
    "patch_size strings": (lambda f: _edit_json(f / "transformer" / "config.json", patch_size=["a", "b", "c"]),
                           r"patch_size"),
    "vae config broken": (lambda f: (f / "vae" / "config.json").write_text("not json"), r"vae/config.json"),
    "scheduler shift negative": (lambda f: _edit_json(f / "scheduler" / "scheduler_config.json", shift=-1.0),
                                 r"shift"),
    "index not json": (lambda f: (f / "model_index.json").write_text("{"), r"model_index.json is not valid JSON"),
    "index entry wrong": (lambda f: _edit_json(f / "model_index.json", vae="AutoencoderKL"), r"vae must be \[library"),
    "component folder missing": (lambda f: shutil.rmtree(f / "vae"), r"no vae/"),
    "weights truncated": (lambda f: (f / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 10),
                          r"cannot load"),
    "weights missing": (lambda f: (f / "transformer" / "diffusion_pytorch_model.safetensors").unlink(), r"cannot load"),
    "weights of another size": (lambda f: _edit_json(f / "transformer" / "config.json", num_layers=3), r"cannot load"),
}


@pytest.mark.parametrize("kind", sorted(MODEL_DAMAGE))
def test_a_damaged_model_folder_is_named(cli, tiny_model, tmp_path, kind):
    damage, needle = MODEL_DAMAGE[kind]
    folder = _damaged(tiny_model, tmp_path, damage)
    outcome = cli.refuses(["generate", "--model", folder, "-p", "a red circle moves left", "--steps", "1"], needle)
    assert "huggingface" not in outcome.err.lower() and "connect" not in outcome.err.lower()


def test_a_folder_that_is_no_model_is_refused(cli, tmp_path):
    cli.refuses(["generate", "--model", tmp_path, "-p", "x"], r"no model_index.json")


def _lora_file(p, data: bytes):
    p.mkdir()
    (p / "pytorch_lora_weights.safetensors").write_bytes(data)


def _lora_safetensors(p, shapes: dict):
    import torch
    from safetensors.torch import save_file

    p.mkdir()
    save_file({k: torch.zeros(v) for k, v in shapes.items()}, str(p / "pytorch_lora_weights.safetensors"))


def _concat_lora(p, model: Path, layers: dict | None):
    """A channel-concat LoRA folder: an adapter, the method's config, and ``layers`` as its adapted layers."""
    import torch
    from safetensors.torch import save_file

    from anyframe.conditioning import build_method
    from anyframe.models.dit import STIVTransformer

    _lora_safetensors(p, {"transformer.blocks.0.spatial_attn.to_q.lora_A.weight": (2, 32),
                          "transformer.blocks.0.spatial_attn.to_q.lora_B.weight": (32, 2)})
    build_method("channel_concat", STIVTransformer.from_pretrained(model / "transformer")).save_pretrained(
        p / "conditioning")
    if layers is not None:
        save_file({k: torch.zeros(v) for k, v in layers.items()}, str(p / "adapted_layers.safetensors"))


LORAS = {
    "no adapted layers": (lambda p, m: _concat_lora(p, m, None), r"adds backbone layers .*export it again"),
    "adapted layers that do not fit": (lambda p, m: _concat_lora(p, m, {"transformer.patch_embed.weight": (3, 3)}),
                                       r"adapted_layers.safetensors does not fit"),
    "not a folder": (lambda p, _: p.write_text("x"), r"not a folder"),
    "empty folder": (lambda p, _: p.mkdir(), r"no LoRA weights"),
    "corrupt weights": (lambda p, _: _lora_file(p, b"\0" * 16), r"cannot load the LoRA"),
    "not safetensors": (lambda p, _: _lora_file(p, b"PK\3\4 not a safetensors file at all"), r"cannot load the LoRA"),
    "another model's": (lambda p, _: _lora_safetensors(p, {"unet.down.0.to_q.lora_A.weight": (4, 8)}), r"no adapter"),
    "other modules": (lambda p, _: _lora_safetensors(p, {"transformer.blocks.0.attn1.to_q.lora_A.weight": (4, 8),
                                                      "transformer.blocks.0.attn1.to_q.lora_B.weight": (8, 4)}),
                      r"cannot load the LoRA.*not found"),
}


@pytest.mark.parametrize("kind", sorted(LORAS))
def test_a_bad_lora_on_a_world_model_is_refused(cli, tiny_model, tmp_path, kind):
    make, needle = LORAS[kind]
    lora = tmp_path / "lora"
    make(lora, tiny_model)
    cli.refuses(["generate", "--model", tiny_model, "-p", "x", "--steps", "1", "--lora", lora], needle)


# ------------------------------------------------------------------------------------------ output paths


def _make(cwd: Path, kind: str, name: str) -> Path:
    path = cwd / name
    if kind == "file":
        path.write_text("keep me")
    else:
        path.mkdir()
        (path / "inside.txt").write_text("keep me")
    return path


OUTPUTS = [  # (command before --out / the output flag, the flag, what exists there, its name, needle)
    (["generate", "-p", "a red circle moves left", "--steps", "1"], "--out", "dir", "clip.mp4", r"existing folder"),
    (["generate", "-p", "a red circle moves left", "--steps", "1"], "--out", "file_parent", "clip.mp4", r"not a writable folder"),
    (["generate", "-p", "a red circle moves left", "--steps", "1"], "--out", "strip_dir", "clip.mp4", r"filmstrip.*existing folder"),
    (["world", "render", "--seed", "1"], "--out", "file", "clip", r"existing file"),
    (["world", "render", "--seed", "1", "--force"], "--out", "file", "clip", r"existing file"),
    (["world", "render", "--seed", "1"], "--out", "dir", "clip", r"already exists"),
    (["world", "render", "--seed", "1"], "--out", "file_parent", "clip", r"not a writable folder"),
    (["world", "sample", "--n", "2"], "--out", "dir", "suite.jsonl", r"existing folder"),
    (["world", "sample", "--n", "2"], "--out", "file_parent", "suite.jsonl", r"not a writable folder"),
    (["eval", "--model", "truth", "--suite", "smoke", "--n", "1"], "--out", "file", "report", r"not a writable folder|existing"),
    (["model", "init", "--size", "tiny"], "--out", "file", "model", r"existing file"),
    (["model", "init", "--size", "tiny", "--force"], "--out", "file", "model", r"existing file"),
    (["model", "init", "--size", "tiny"], "--out", "dir", "model", r"already exists"),
    (["train", "--set", "train.steps=1"], "--output", "file", "run", r"existing file"),
    (["train", "--check"], "--output", "file", "run", r"existing file"),
    (["train-autoencoder", "--set", "train.steps=1"], "--output", "file", "run", r"existing file"),
]


@pytest.mark.parametrize(("command", "flag", "kind", "name", "needle"), OUTPUTS,
                         ids=[f"{' '.join(c[:2])}-{f}-{k}-{i}" for i, (c, f, k, _, _) in enumerate(OUTPUTS)])
def test_an_output_path_of_the_wrong_kind_is_refused(cli, command, flag, kind, name, needle):
    if kind == "file_parent":
        _make(cli.cwd, "file", "blocker")
        target = Path("blocker") / name
    elif kind == "strip_dir":
        _make(cli.cwd, "dir", Path(name).with_suffix(".png").name)
        target = Path(name)
    else:
        _make(cli.cwd, kind, name)
        target = Path(name)
    cli.refuses([*command, flag, target], needle)
