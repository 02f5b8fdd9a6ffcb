"""The ``anyframe`` command line.

Bad input (a missing or corrupt file, an impossible frame index, an unknown model folder, a malformed
option) prints one line on stderr and exits with code 2, before anything is written.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import re
import sys
import textwrap
import time
import warnings
from pathlib import Path

import typer

from anyframe.errors import AnyframeInputError

# Heavy modules (torch, diffusers, the pipeline, the world) are imported inside the commands that use them, so
# `anyframe --help` and a bad flag answer at once (benchmarks/startup.py).

DEFAULT_MODEL_NAME = "anyframe-world-s"
EXAMPLES = """
Examples:

  anyframe generate --prompt "a red circle moves left"

  anyframe generate --prompt "a blue square moves up" --image first.png --out outputs/up.mp4

  anyframe generate --prompt "" --image start.png@0 --image end.png@-1 --json   # interpolation

  anyframe model init --size S --out models/anyframe-random   # an untrained model folder

  anyframe train --config configs/toy.yaml --set train.steps=500

  anyframe world render --seed 3 --out outputs/world-3    # a shapes-world clip with its ground truth

  anyframe world sample --n 100 --split ood_style --out suites/ood-style.jsonl

  anyframe eval --model runs/x/pipeline --model truth --suite smoke --out reports/x

  anyframe model info    # the shipped model: size, method, the words it knows

  anyframe serve         # a web page to generate from, on http://127.0.0.1:7860
"""
GENERATE_EXAMPLES = """
Examples:

  anyframe generate -p "On a black background, a large red circle moves right." --seed 0

  anyframe generate -p "a red circle moves left" --image first.png@0 --out outputs/left.mp4   # image to video

  anyframe generate -p "" --image start.png@0 --image end.png@-1 --json                      # interpolation
"""

app = typer.Typer(
    help="anyframe: generate video from text and from images placed at any frame." + EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
model_app = typer.Typer(help="Build and inspect model folders.", no_args_is_help=True)
app.add_typer(model_app, name="model")
world_app = typer.Typer(help="The shapes world: render clips with their ground truth, sample evaluation suites.",
                        no_args_is_help=True)
app.add_typer(world_app, name="world")


def _version(value: bool) -> None:
    from anyframe import __version__
    if value:
        typer.echo(f"anyframe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


def default_model_dir() -> Path | None:
    """``$ANYFRAME_MODEL``; else the shipped ``checkpoints/anyframe-world-s`` of a source checkout (an editable
    install); else the copy a plain ``pip install .`` puts under ``<prefix>/share/anyframe/`` (pyproject's
    data-files). None if there is none."""
    env = os.environ.get("ANYFRAME_MODEL")
    if env:
        return Path(env)
    import sysconfig

    candidates = [Path(__file__).resolve().parents[2] / "checkpoints" / DEFAULT_MODEL_NAME,
                  *(Path(base) / "share" / "anyframe" / DEFAULT_MODEL_NAME
                    for base in (sysconfig.get_path("data"), sys.prefix, sysconfig.get_path("data", f"{os.name}_user")))]
    return next((c for c in candidates if (c / "model_index.json").is_file()), None)


def shipped_models() -> list[Path]:
    """The shipped model folders: the default and the extra models beside it (``checkpoints/`` of a checkout, or
    ``share/anyframe/`` of an install), default first."""
    default = default_model_dir()
    if default is None or os.environ.get("ANYFRAME_MODEL"):
        return [default] if default is not None else []
    extras = sorted(p for p in default.parent.iterdir() if p != default and (p / "model_index.json").is_file())
    return [default, *extras]


def model_arg(model: Path | None) -> Path | None:
    """``--model``: a folder, or the name of a shipped model (``anyframe-world-s-jdm``) when no such folder is
    here; None stays None (the default model)."""
    if model is None or model.exists() or len(model.parts) != 1:
        return model
    return next((p for p in shipped_models() if p.name == model.name), model)


def parse_image_spec(spec: str, default: int | None = 0) -> tuple[Path, int | None]:
    """``PATH[@INDEX]`` → (path, index); INDEX defaults to ``default`` (None: a narrator places the image). A path that
    itself contains ``@`` is taken whole if it exists. A malformed INDEX (``@1.5``, ``@abc``, ``@``) is an error that
    says what is wrong with it; whether the index fits the clip is checked against the model later."""
    if Path(spec).exists():
        return Path(spec), default
    path, sep, index = spec.rpartition("@")
    if not sep or "/" in index or os.sep in index:  # no @, or an @ inside a folder name: all of it is the path
        return Path(spec), default
    if not index.strip():
        raise AnyframeInputError(f"--image {spec}: nothing after @; give a frame index such as @0 or @-1")
    if not re.fullmatch(r"[+-]?\d+", index.strip()):
        raise AnyframeInputError(f"--image {spec}: the frame index after @ must be a whole number "
                                 f"(0 is the first frame, -1 the last), got {index!r}")
    return Path(path), int(index)


def _silence_libraries() -> None:
    import diffusers
    import transformers

    # CRITICAL, not ERROR: diffusers logs a failed component fetch at ERROR before raising, and the
    # CLI reports that failure itself, on one line.
    diffusers.utils.logging.set_verbosity(diffusers.utils.logging.CRITICAL)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def check_writable(path: Path) -> None:
    """Fail early (before sampling) if ``path`` cannot be created: its nearest existing ancestor must be
    a writable folder. Nothing is created here."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise AnyframeInputError(f"cannot write {path}: {parent} is not a writable folder")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "video"


# request fields → the flags that set them (errors from the request's checks name the flag)
FLAGS = {"steps": "--steps", "guidance_scale": "--guidance", "guidance_mode": "--guidance-mode", "renorm": "--renorm",
         "sampler": "--sampler", "seed": "--seed", "num_frames": "--num-frames", "height": "--height", "width": "--width",
         "image_guidance_scale": "--image-guidance", "detail": "--detail"}


def check_request_flags(**fields) -> None:
    """The model-independent checks of a request (``pipelines.request.check_settings``: the same checks the
    Python API runs), before a model is loaded; the error names the flag instead of the field."""
    from anyframe.pipelines.request import GenerationRequest, check_settings


    try:
        check_settings(GenerationRequest(**fields))
    except AnyframeInputError as exc:
        message = str(exc)
        field = message.split(" ", 1)[0]
        raise AnyframeInputError(FLAGS.get(field, field) + message[len(field):]) from None


def _check_sampling_flags(steps: int | None, guidance_mode: str | None, renorm: str | None, detail: float | None,
                          **more) -> None:
    """The sampling flags generate and eval share (``None``: the model's own)."""
    from anyframe.flow.guidance import RENORM_CHOICES

    if renorm is not None and renorm not in (*RENORM_CHOICES, "none"):
        raise AnyframeInputError(f"--renorm must be one of {', '.join((*RENORM_CHOICES, 'none'))}, got {renorm!r}")
    check_request_flags(steps=steps, guidance_mode=guidance_mode, renorm=_renorm_flag(renorm), **more)
    if detail is not None and not 0.0 <= detail <= 1.0:
        raise AnyframeInputError(f"--detail must be in [0, 1], got {detail}")


def parse_options(items: list[str]) -> dict:
    """``--option key=value`` (repeatable) → the method's request options; values read as YAML (numbers, bools)."""
    import yaml

    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise AnyframeInputError(f"--option expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, float) and not math.isfinite(value):
            raise AnyframeInputError(f"--option {item}: {key.strip()} must be a finite number, got {value}")
        options[key.strip()] = value
    return options


def _check_dtype(dtype: str) -> None:
    from anyframe.pipelines.loading import DTYPES

    if dtype not in DTYPES:
        raise AnyframeInputError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def _renorm_flag(renorm: str | None) -> str | None:
    """``--renorm`` → the pipeline's ``renorm``: not given → the model's own, ``none`` → no renormalisation."""
    from anyframe.flow.guidance import MODEL_DEFAULT

    return MODEL_DEFAULT if renorm is None else None if renorm == "none" else renorm


MAX_FPS = 1000.0
MAX_SUITE_CASES = 100_000  # world sample: a suite is built in memory and written as one file


def _check_seed(seed: int | None) -> None:
    """A seed for any command: 0 … 2^63−1 (what every generator here takes)."""
    check_request_flags(seed=seed)


def _check_fps(fps: float) -> None:
    if not math.isfinite(fps) or not 0 < fps <= MAX_FPS:
        raise AnyframeInputError(f"--fps must be a frame rate in (0, {MAX_FPS:g}], got {fps}")


def _check_world_size(size: int, frames: int) -> None:
    """The canvas and clip length of a shapes-world clip (``world render``, ``world sample``)."""
    if not 8 <= size <= 512 or size % 2:
        raise AnyframeInputError(f"--size must be an even number of pixels in [8, 512], got {size}")
    if not 1 <= frames <= 256:
        raise AnyframeInputError(f"--frames must be in [1, 256], got {frames}")


def _check_new_folder(out: Path, force: bool, flag: str = "--out") -> None:
    """``out`` is a folder to create (or, with ``force``, to replace): never an existing file."""
    if out.exists() and not out.is_dir():
        raise AnyframeInputError(f"{flag} {out} is an existing file; give a folder path")
    if out.exists() and not force:
        raise AnyframeInputError(f"{out} already exists (pass --force to replace it)")
    check_writable(out / "x")


def _check_new_file(out: Path, flag: str = "--out") -> None:
    """``out`` is a file to write: never an existing folder, and its folder must be writable."""
    if out.is_dir():
        raise AnyframeInputError(f"{flag} {out} is an existing folder; give a file path")
    check_writable(out)


@app.command(epilog=GENERATE_EXAMPLES)
def generate(
    prompt: str = typer.Option("", "--prompt", "-p", help="What happens in the video."),
    image: list[str] = typer.Option(
        [], "--image", "-i", metavar="PATH[@INDEX]", help="Keyframe image PATH[@INDEX]; INDEX defaults to 0, negative counts from the end. Repeatable."
    ),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Pipeline folder: an anyframe one, or a diffusers Wan2.1 folder (default: the shipped model)."
    ),
    lora: Path | None = typer.Option(None, "--lora", help="A LoRA fine-tune folder (a recipe's <run>/lora) to load into the model."),
    transformer_file: Path | None = typer.Option(
        None, "--transformer-file", help="Wan: an original-layout Wan2.1 transformer .safetensors to use instead of the folder's."
    ),
    dtype: str = typer.Option(
        "auto", "--dtype", help="Weights: auto (bfloat16 where the device has native bf16 — a CPU with AVX512-BF16 or AMX, a bf16 GPU — else float32) | float32 | bfloat16. The VAE stays float32."
    ),
    offload: bool = typer.Option(False, "--offload", help="Keep models on the CPU and move each to the GPU only while it runs (diffusers' model CPU offload)."),
    negative_prompt: str | None = typer.Option(None, "--negative-prompt", help="Replaces the empty prompt in guidance."),
    num_frames: int | None = typer.Option(None, "--num-frames", "-n", help="Frames (default: the model's)."),
    height: int | None = typer.Option(None, "--height", help="Pixels (default: the model's)."),
    width: int | None = typer.Option(None, "--width", help="Pixels (default: the model's)."),
    beyond_training: bool = typer.Option(
        False, "--beyond-training", help="Allow frame counts, sizes and strides outside the model's trained window (`anyframe model info` shows it) with a warning, instead of an error."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (default: the model's; anyframe 25, Wan 50)."),
    guidance: float | None = typer.Option(
        None, "--guidance", "-g", help="Guidance scale, 1 = none (default: the model's; anyframe 7.5, Wan 5)."
    ),
    guidance_mode: str | None = typer.Option(
        None, "--guidance-mode", help="jit | cfg | text-image | none (default: the model's; anyframe jit, Wan cfg)."
    ),
    image_guidance: float | None = typer.Option(None, "--image-guidance", help="Image scale for --guidance-mode text-image."),
    renorm: str | None = typer.Option(
        None, "--renorm", help="CFG renormalisation: full | clamp | none | auto (full without keyframes, none with; default: the model's; anyframe auto, Wan none)."
    ),
    sampler: str | None = typer.Option(None, "--sampler", help="euler | unipc (default: the model's scheduler)."),
    seed: int | None = typer.Option(None, "--seed", "-s", help="Random seed (default: a random one, reported)."),
    detail: float | None = typer.Option(
        None, "--detail", help="FlashI2V models: Fourier cutoff ratio in [0, 1]; lower keeps more of the image's fine detail (default 0.1)."
    ),
    option: list[str] = typer.Option(
        [], "--option", metavar="KEY=VALUE", help="An option of the model's conditioning method (e.g. detail=0.2 for FlashI2V). Repeatable."
    ),
    fps: float = typer.Option(8.0, "--fps", help="Frame rate of the written video."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available) | cpu | cuda | cuda:N."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output .mp4 (or .gif); a <out>.png filmstrip is written beside it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line with the paths, frame count, size, seconds and seed."),
    batch: Path | None = typer.Option(
        None, "--batch", help="A JSONL file of requests, one per line (fields of GenerationRequest; docs/methods.md#batches): --out is then a folder; finished lines are skipped on a re-run; under torchrun/accelerate each process takes its share."
    ),
    masks: bool = typer.Option(
        False, "--masks", help="JDM models: also write the objects' mask clip beside --out: <out>.masks.mp4, <out>.masks.png and <out>.masks.npz (per-frame binary masks, threshold 0.5; docs/methods/jdm.md)."
    ),
    narrator: str = typer.Option(
        "auto", "--narrator", help="Who places an --image (or a --batch line's image) given without @INDEX: auto (the world narrator on a ReasonDiff world model, else frame 0) | none (frame 0) | world | openai | transformers (docs/methods/narrators.md)."
    ),
    narrator_url: str | None = typer.Option(None, "--narrator-url", help="openai narrator: the endpoint's base URL, e.g. http://localhost:8000/v1."),
    narrator_model: str | None = typer.Option(None, "--narrator-model", help="openai narrator: the served model's name."),
    narrator_key_env: str = typer.Option("OPENAI_API_KEY", "--narrator-key-env", help="openai narrator: the environment variable holding the API key."),
    narrator_vlm: Path | None = typer.Option(None, "--narrator-vlm", help="transformers narrator: a local vision-language model folder."),
    narrator_prompt: bool = typer.Option(
        False, "--narrator-prompt", help="The narrator's description of the whole clip becomes the prompt (with an --image placed by a narrator; on the world as good as ReasonDiff: docs/methods/reasondiff.md)."
    ),
) -> None:
    """Generate a video from a prompt and/or keyframe images; writes the video and a PNG filmstrip."""
    import torch
    from rich.console import Console

    from anyframe.io import atomic_paths, load_image, to_uint8, write_filmstrip, write_gif, write_mp4
    from anyframe.pipelines import GenerationRequest, Keyframe, load_pipeline, resolve_dtype

    # ---- validate everything that needs no model, before loading one
    if batch is not None:
        if masks:
            raise AnyframeInputError("--masks writes beside one --out video; it does not combine with --batch")
        if prompt.strip() or image:
            raise AnyframeInputError("--batch takes each request's prompt and images from its file; drop --prompt and --image")
        if out is None or out.suffix.lower() in (".mp4", ".gif"):
            raise AnyframeInputError("--batch writes into a folder: give --out DIR")
    elif not prompt.strip() and not image:
        raise AnyframeInputError("give --prompt, --image, or both")
    _check_sampling_flags(steps, guidance_mode, renorm, detail, sampler=sampler, seed=seed, guidance_scale=guidance,
                          image_guidance_scale=image_guidance, num_frames=num_frames, height=height, width=width)
    _check_fps(fps)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise AnyframeInputError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if batch is None and out is not None and out.suffix.lower() not in (".mp4", ".gif"):
        raise AnyframeInputError(f"--out must end in .mp4 or .gif, got {out}")
    _check_dtype(dtype)
    if lora is not None and not lora.is_dir():
        raise AnyframeInputError(f"--lora {lora}: {'not a folder' if lora.exists() else 'folder not found'} "
                                 "(a LoRA fine-tune is a folder, e.g. runs/<name>/lora)")
    if narrator not in ("auto", "none", "world", "openai", "transformers"):
        raise AnyframeInputError(f"--narrator must be auto, none, world, openai or transformers, got {narrator!r}")
    specs = [parse_image_spec(s, default=None) for s in image]
    images = [(load_image(path), index) for path, index in specs]  # missing / corrupt → input error

    items = None
    if batch is not None:
        from anyframe.pipelines.batch import read_batch

        if out.exists() and not out.is_dir():
            raise AnyframeInputError(f"--out {out} is an existing file; --batch writes into a folder")
        check_writable(out / "x")
        defaults = {k: v for k, v in dict(
            negative_prompt=negative_prompt, num_frames=num_frames, height=height, width=width, steps=steps,
            guidance_scale=guidance, guidance_mode=guidance_mode, image_guidance_scale=image_guidance,
            sampler=sampler, seed=seed).items() if v is not None}
        if beyond_training:
            defaults["beyond_training"] = True
        if renorm is not None:
            defaults["renorm"] = _renorm_flag(renorm)
        batch_options = parse_options(option)
        if detail is not None:
            batch_options["detail"] = detail
        if batch_options:
            defaults["options"] = batch_options
        items = read_batch(batch, defaults)  # a missing or unreadable file stops here; a bad line is reported later
    elif out is not None:
        _check_new_file(out)
        _check_new_file(out.with_suffix(".png"), "the filmstrip beside --out,")
        for path in _mask_paths(out) if masks else ():
            _check_new_file(path, "the masks beside --out,")
    model_dir = model_arg(model) or default_model_dir()
    if model_dir is None:
        raise AnyframeInputError(
            "no --model given and no shipped default model; build one with "
            "`anyframe model init --out models/anyframe-random` and pass --model models/anyframe-random"
        )

    _silence_libraries()

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise AnyframeInputError(f"--device {device}: no CUDA device is available")
    if offload and not device.startswith("cuda"):
        raise AnyframeInputError("--offload moves models to a GPU while they run; it needs --device cuda")
    dtype = resolve_dtype(dtype, device)  # auto → what this device runs natively; reported below
    pipe = load_pipeline(model_dir, dtype, transformer_file)
    if lora is not None:
        pipe.load_lora(lora)
    if offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)  # the noise is drawn on the CPU either way, so a seed gives the same video
    if as_json or items is not None:
        pipe.set_progress_bar_config(disable=True)
    if items is not None:
        # a line's image without its index: placed by the narrator (the same rule as --image PATH; frame 0 without one)
        placer = _narrator(narrator, pipe, narrator_url, narrator_model, narrator_key_env, narrator_vlm) \
            if any(k.frame_index is None for it in items if it.request for k in it.request.keyframes) else None
        if narrator_prompt and placer is None:
            raise AnyframeInputError("--narrator-prompt needs batch lines with an image without @INDEX and a narrator "
                                     "to place it (--narrator world | openai | transformers)")
        _run_batch(pipe, items, out, fps, quiet=as_json, narrator=placer, narrator_prompt=narrator_prompt)
        return
    if masks and "masks" not in pipe.conditioning.extra_outputs:
        raise AnyframeInputError(f"--masks: the model {model_dir} does not generate masks (a JDM model does: "
                                 "docs/methods/jdm.md)")
    options = parse_options(option)
    if detail is not None:
        options["detail"] = detail
    placer = _narrator(narrator, pipe, narrator_url, narrator_model, narrator_key_env, narrator_vlm) \
        if any(index is None for _, index in images) else None
    request = GenerationRequest(
        prompt=prompt,
        negative_prompt=negative_prompt,
        keyframes=[Keyframe(img, 0 if index is None and placer is None else index) for img, index in images],
        num_frames=num_frames,
        height=height,
        width=width,
        steps=steps,
        guidance_scale=guidance,
        guidance_mode=guidance_mode,
        image_guidance_scale=image_guidance,
        renorm=_renorm_flag(renorm),  # a flag not given: the model's own setting (sampling_defaults)
        sampler=sampler,
        seed=seed,
        options=options,
        beyond_training=beyond_training,
    )
    if narrator_prompt and placer is None:
        raise AnyframeInputError("--narrator-prompt needs an --image without @INDEX and a narrator to place it "
                                 "(--narrator world | openai | transformers)")
    request, narrative = pipe.place_keyframes(request, placer, narrator_prompt)
    if narrative is not None and not as_json:
        typer.echo(f"narrator ({narrative.backend}): the image is frame {narrative.position} of "
                   f"{len(narrative.descriptions)}" + (f" — {narrative.note}" if narrative.note else ""), err=True)
        if narrator_prompt:
            typer.echo(f"prompt (the narrator's): {narrative.caption}" if narrative.caption else
                       "the narrator wrote no caption of the whole clip: the prompt stays", err=True)
    request = pipe.validate(request)  # every check against the model, before sampling

    for text in dict.fromkeys(request.prompts):
        for problem in pipe.prompt_problems(text, request.max_sequence_length):
            typer.echo(f"warning: {problem}", err=True)
    start = time.perf_counter()
    pipe.set_progress_bar_config(disable=True)  # (a rich bar with ETA instead of diffusers' tqdm)
    # (the bar appears at the first step: an input error found inside generate stays the only line printed)
    with warnings.catch_warnings(), _progress(request.steps, "sampling", enabled=not as_json and sys.stderr.isatty(), lazy=True,
                                                         transient=True) as advance:
        warnings.filterwarnings("ignore", message="this model does not know|the prompt is|.*outside what this model was trained on")
        result = pipe.generate(request, output_type="np", callback_on_step_end=lambda *_: advance() or {})
    seconds = time.perf_counter() - start
    video = to_uint8(result.frames[0])  # [T, H, W, 3]

    out = out or Path("outputs") / f"{_slug(prompt or 'keyframes')}-s{result.seed}.mp4"
    strip_path = out.with_suffix(".png")
    _check_new_file(out)
    _check_new_file(strip_path, "the filmstrip beside --out,")
    mask_paths = _mask_paths(out) if masks else ()
    for path in mask_paths:
        _check_new_file(path, "the masks beside --out,")
    try:
        # All files are written to temporaries and renamed only when all succeeded: they appear
        # together or not at all, and a failure leaves earlier files at those paths untouched.
        with atomic_paths(out, strip_path, *mask_paths) as (video_tmp, strip_tmp, *mask_tmps):
            (write_gif if out.suffix.lower() == ".gif" else write_mp4)(video, video_tmp, fps=fps)
            write_filmstrip(video, strip_tmp, marked=result.keyframe_indices)
            if masks:
                _write_masks(result, mask_tmps, out, fps)
    except OSError as exc:
        raise AnyframeInputError(f"cannot write {out}: {exc}") from None

    t, h, w = video.shape[:3]
    record = {
        "video": str(out),
        "filmstrip": str(strip_path),
        "frames": t,
        "height": h,
        "width": w,
        "fps": fps,
        "seconds": round(seconds, 3),
        "seed": result.seed,
        "keyframes": list(result.keyframe_indices),
        "model": str(model_dir),
        "dtype": dtype,
    }
    if masks:
        record["masks"] = [str(p) for p in mask_paths]
    if narrative is not None:
        record["narrative"] = {**narrative.to_dict(), "backend": narrative.backend}
    if as_json:
        typer.echo(json.dumps(record))
    else:

        Console(soft_wrap=True).print(
            f"[green]wrote[/green] {out} ({t} frames, {w}×{h}) and {strip_path}"
            + (f" (masks: {', '.join(str(p) for p in mask_paths)})" if masks else "")
            + f" in {seconds:.2f}s ({dtype}), seed {result.seed}"
        )


def _narrator(name: str, pipe, url: str | None, model: str | None, key_env: str, vlm: Path | None):
    """The narrator that places an image given without its index, or None (the image goes to frame 0). ``auto``:
    the world narrator where the model's method reads unplaced images (ReasonDiff) and is a world model."""
    from anyframe.models.dit import STIVTransformer

    if name == "none":
        return None
    if name == "auto":
        takes = "unplaced_keyframes" in pipe.conditioning.request_fields
        if not (takes and isinstance(pipe.transformer, STIVTransformer)):
            return None
        name = "world"
    from anyframe.narrators import narrator_for

    if name == "openai":
        if not url or not model:
            raise AnyframeInputError("--narrator openai needs --narrator-url and --narrator-model")
        return narrator_for("openai", base_url=url, model=model, api_key_env=key_env)
    if name == "transformers":
        if vlm is None:
            raise AnyframeInputError("--narrator transformers needs --narrator-vlm (a local vision-language model folder)")
        return narrator_for("transformers", path=vlm)
    return narrator_for(name)


def _mask_paths(out: Path) -> tuple[Path, Path, Path]:
    """Where ``--masks`` writes beside ``out``: the mask clip, its filmstrip and the binary masks."""
    stem = out.with_suffix("")
    return (Path(f"{stem}.masks{out.suffix.lower()}"), Path(f"{stem}.masks.png"), Path(f"{stem}.masks.npz"))


def _write_masks(result, temps, out: Path, fps: float) -> None:
    """The mask clip (as decoded, grey levels), its filmstrip, and ``masks`` [T, H, W] bool with its threshold."""
    from anyframe.io import write_mask_outputs

    write_mask_outputs(result.extras["mask_frames"][0], result.masks[0], result.extras.get("mask_threshold", 0.5),
                       *temps, fps=fps, gif=out.suffix.lower() == ".gif")


def _run_batch(pipe, items, out: Path, fps: float, quiet: bool, narrator=None, narrator_prompt: bool = False) -> None:
    """``generate --batch``: this process's share of the requests, with a progress bar; exit 1 if a line failed."""
    from anyframe.pipelines.batch import generate_batch, shard

    rank, world = shard()
    share = len(items[rank::world])
    with _progress(share, "batch" if world == 1 else f"batch (process {rank + 1} of {world})", enabled=not quiet) as advance:
        result = generate_batch(pipe, items, out, fps=fps, rank=rank, world=world,
                                on_item=lambda key, status: advance(f"{key}: {status}"), narrator=narrator,
                                narrator_prompt=narrator_prompt)
    for key, why in result.failed.items():
        typer.echo(f"failed: {key}: {why}", err=True)
    line = {"out": str(out), "written": result.done, "already_there": result.skipped, "failed": result.failed}
    typer.echo(json.dumps(line) if quiet else f"{out}: {result.summary().split(';')[0]}")
    if result.failed:
        raise typer.Exit(1)


@app.command("narrate")
def narrate_command(
    image: Path = typer.Option(..., "--image", "-i", help="The condition image (PNG, JPEG, ...)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The action the clip shows (the text the image is unpaired with)."),
    frames: int = typer.Option(16, "--frames", help="Frames of the clip the image is placed in."),
    narrator: str = typer.Option("world", "--narrator", help="world (the shapes world, exact) | openai (a chat endpoint) | transformers (a local VLM)."),
    url: str | None = typer.Option(None, "--url", help="openai: the endpoint's base URL, e.g. http://localhost:8000/v1."),
    model_name: str | None = typer.Option(None, "--model", metavar="NAME", help="openai: the served model, e.g. Qwen/Qwen2.5-VL-7B-Instruct."),
    key_env: str = typer.Option("OPENAI_API_KEY", "--key-env", metavar="VAR", help="openai: the environment variable that holds the API key (read, never printed)."),
    vlm: Path | None = typer.Option(None, "--vlm", metavar="PATH", help="transformers: a local VLM folder (AutoModelForImageTextToText)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line: position, descriptions (and note)."),
) -> None:
    """Place an image in time for a prompt (ReasonDiff's narrator): the frame of the clip the image shows, and one
    description per frame. Frames count from 0."""
    from anyframe.narrators import NARRATORS

    if narrator not in NARRATORS:
        raise AnyframeInputError(f"--narrator must be one of {', '.join(NARRATORS)}, got {narrator!r}")
    if not 1 <= frames <= 1024:
        raise AnyframeInputError(f"--frames must be in [1, 1024], got {frames}")
    if not prompt.strip():
        raise AnyframeInputError("--prompt is empty; give the action the clip shows")
    if narrator != "openai" and (url is not None or model_name is not None):
        raise AnyframeInputError(f"--url and --model are for --narrator openai (this is --narrator {narrator})")
    if narrator != "transformers" and vlm is not None:
        raise AnyframeInputError(f"--vlm is for --narrator transformers (this is --narrator {narrator})")
    options: dict = {}
    if narrator == "openai":
        if not url or not model_name:
            raise AnyframeInputError("--narrator openai needs --url (e.g. http://localhost:8000/v1) and --model NAME")
        options = dict(base_url=url, model=model_name, api_key_env=key_env)
    elif narrator == "transformers":
        if vlm is None:
            raise AnyframeInputError("--narrator transformers needs --vlm PATH (a local VLM folder)")
        options = dict(path=vlm)
    from anyframe.io import check_aspect, load_image
    from anyframe.narrators import narrator_for

    picture = check_aspect(load_image(image))
    if vlm is not None and (vlm / "config.json").is_file():  # (a bad folder is reported before the slow imports)
        _silence_libraries()
    result = narrator_for(narrator, **options).narrate(picture, prompt, frames)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    typer.echo(f"position: frame {result.position} (frames 0–{frames - 1})")
    if result.note:
        typer.echo(f"note: {result.note}")
    width = len(str(frames - 1))
    for i, text in enumerate(result.descriptions):
        typer.echo(f"{i:>{width}}{'*' if i == result.position else ' '} {text}")
    if result.caption:
        typer.echo(f"caption: {result.caption}")


@app.command("serve")
def serve_command(
    model: list[Path] = typer.Option(
        [], "--model", "-m", metavar="DIR", help="A pipeline folder to offer on the page (repeatable); the first is picked when the page opens. The shipped model is offered too."
    ),
    models_dir: Path | None = typer.Option(None, "--models-dir", metavar="DIR", help="Also offer each pipeline folder directly inside this folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(7860, "--port", help="Port to listen on."),
) -> None:
    """Serve a web page to generate from (Gradio): a prompt, keyframe images at any frame, task presets, steps,
    guidance and seed, a model picker; the video and its filmstrip. Runs until interrupted (Ctrl-C)."""
    import errno
    import socket

    not_model = "not a pipeline folder (no model_index.json)"
    model = [model_arg(m) for m in model]
    for folder in model:
        if not (folder / "model_index.json").is_file():
            raise AnyframeInputError(f"--model {folder}: {not_model if folder.is_dir() else 'folder not found'}")
    found: list[Path] = []
    if models_dir is not None:
        if not models_dir.is_dir():
            raise AnyframeInputError(f"--models-dir {models_dir}: {'not a folder' if models_dir.exists() else 'folder not found'}")
        found = sorted(p for p in models_dir.iterdir() if (p / "model_index.json").is_file())
        if not found:
            raise AnyframeInputError(f"--models-dir {models_dir} holds no pipeline folder (a folder with model_index.json)")
    shipped = default_model_dir()
    if shipped is not None and not (shipped / "model_index.json").is_file():  # ($ANYFRAME_MODEL)
        raise AnyframeInputError(f"ANYFRAME_MODEL={shipped}: {not_model}")
    folders = list(dict.fromkeys(p.resolve() for p in [*model, *shipped_models(), *found]))
    if not folders:
        raise AnyframeInputError("no model to serve: no --model, no --models-dir and no shipped default model")
    if not 1 <= port <= 65535:
        raise AnyframeInputError(f"--port must be in 1..65535, got {port}")
    if not host.strip():
        raise AnyframeInputError("--host is empty; give an address such as 127.0.0.1")
    try:  # a taken port or an address this machine does not have: said now, not after the model loads
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        reason = "the port is in use" if getattr(exc, "errno", None) == errno.EADDRINUSE else " ".join(str(exc).split())
        raise AnyframeInputError(f"cannot listen on --host {host} --port {port}: {reason}") from None
    _silence_libraries()
    try:
        from anyframe.serve import Models, serve
    except ImportError as exc:
        raise AnyframeInputError(f"anyframe serve needs the web extra: pip install -e '.[web]' ({exc})") from None

    serve(Models.from_folders(folders), host=host, port=port)


@app.command("train")
def train_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML recipe (configs/NAME.yaml)."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a recipe key, e.g. --set optim.lr=3e-4. Repeatable."),
    resume: str | None = typer.Option(None, "--resume", help="latest, or a checkpoint folder."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run folder (default: the recipe's output_dir)."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="End this run at this step, with a checkpoint."),
    check: bool = typer.Option(False, "--check", help="Validate the recipe and print it; do not train."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train from a YAML recipe; on one process, or under `accelerate launch` on several."""
    from anyframe.training.config import load_config

    cfg = load_config(config, overrides)
    if stop_after is not None and stop_after < 1:
        raise AnyframeInputError(f"--stop-after must be at least 1, got {stop_after}")
    run_dir = output or Path(cfg.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AnyframeInputError(f"{'--output' if output else 'output_dir'} {run_dir} is an existing file; give a folder")
    if check:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    _silence_libraries()
    from anyframe.training.recipe import train  # (deferred: accelerate and peft load only for training)

    result = train(cfg, resume=resume, output_dir=str(output) if output else None, progress=not quiet, stop_after=stop_after)
    typer.echo(
        f"step {result.step}: loss {result.final_loss:.4f}; run folder {result.output_dir}"
        + (f"; {'LoRA' if cfg.lora.enabled else 'pipeline'} {result.pipeline_dir}" if result.pipeline_dir else "")
    )


@app.command("train-autoencoder")
def train_autoencoder_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML recipe (configs/world-autoencoder.yaml)."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a recipe key. Repeatable."),
    resume: str | None = typer.Option(None, "--resume", help="latest, or a checkpoint folder."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run folder (default: the recipe's output_dir)."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="End this run at this step, with a checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Stage one of the world recipe: train the per-frame autoencoder on shapes-world frames; writes
    OUTPUT/autoencoder (with eval.json: reconstruction PSNR per style and split)."""
    from anyframe.training.autoencoder import (  # (deferred: accelerate loads only for training)
        AutoencoderRecipe,
        train_autoencoder,
    )
    from anyframe.training.config import load_config

    cfg = load_config(config, overrides, schema=AutoencoderRecipe)
    if stop_after is not None and stop_after < 1:
        raise AnyframeInputError(f"--stop-after must be at least 1, got {stop_after}")
    run_dir = output or Path(cfg.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AnyframeInputError(f"{'--output' if output else 'output_dir'} {run_dir} is an existing file; give a folder")
    _silence_libraries()
    result = train_autoencoder(cfg, resume=resume, output_dir=str(output) if output else None, progress=not quiet,
                               stop_after=stop_after)
    line = f"step {result['step']}: loss {result['loss']:.5f}"
    if result["autoencoder_dir"]:
        ps = result["eval"]["psnr_by_split"]
        line += f"; autoencoder {result['autoencoder_dir']} (PSNR train {ps['train']:.1f} dB, ood_style {ps['ood_style']:.1f} dB)"
    typer.echo(line)


@app.command("eval")
def eval_command(
    model: list[str] = typer.Option([], "--model", "-m", help="Pipeline folder, or `truth` / `random` / `autoencoder:DIR` (calibration: the ceiling and floor, and the true clips through a model's autoencoder). Repeatable (default: the shipped model)."),
    suite: str = typer.Option("smoke", "--suite", help="smoke | standard | ood, or a suite .jsonl."),
    n: int | None = typer.Option(None, "--n", "--num-cases", help="Score a seeded random subset of N cases (--num-cases under torchrun, whose own flags make --n ambiguous)."),
    seed: int = typer.Option(0, "--seed", help="Subset and sampling seed."),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (pipeline models; default: the model's)."),
    guidance: float | None = typer.Option(None, "--guidance", "-g", help="Guidance scale (pipeline models; default: the model's)."),
    guidance_mode: str | None = typer.Option(None, "--guidance-mode", help="jit | cfg | text-image | none (default: the model's)."),
    renorm: str | None = typer.Option(None, "--renorm", help="CFG renormalisation: full | clamp | none | auto (default: the model's)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N (pipeline models; cuda on several processes: each its own GPU)."),
    against: str = typer.Option("program", "--against", help="Score against the scene program, or the prompt alone."),
    detail: float | None = typer.Option(None, "--detail", help="FlashI2V models: Fourier cutoff ratio in [0, 1] (default: the model's)."),
    dtype: str = typer.Option(
        "float32", "--dtype", help="Pipeline models' weights: float32 (default: a report any host reproduces) | bfloat16 | auto (as `generate`: bfloat16 where native). The VAE stays float32."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    calibration: bool = typer.Option(True, "--calibration/--no-calibration", help="Also score the true and random clips of the same cases (the report's ceiling and floor rows)."),
    narrator: str = typer.Option("none", "--narrator", help="Who places the unpaired task's image: none (frame 0) | world (the world narrator; ReasonDiff models also get its narratives)."),
    clip: Path | None = typer.Option(None, "--clip", help="A CLIP folder (e.g. checkpoints/anyframe-world-clip): every case with a prompt also gets its clip_score (frames against the prompt)."),
) -> None:
    """Generate every case of a suite with each model and score it with the shapes-world oracle:
    writes report.json and report.md with plots (and a side-by-side comparison for several models). Under torchrun or
    `accelerate launch --multi_gpu` each process generates its share of the cases and process 0 writes the report."""
    import numpy as np

    from anyframe.world.suite import load_suite


    _check_seed(seed)
    if not model:
        shipped = default_model_dir()
        if shipped is None:
            raise AnyframeInputError("no --model given and no shipped default model")
        model = [str(shipped)]
    model = [m if m in ("truth", "random") or m.startswith("autoencoder:") else str(model_arg(Path(m))) for m in model]
    cases = load_suite(suite)
    if n is not None:
        if n < 1:
            raise AnyframeInputError(f"--n must be at least 1, got {n}")
        if n > len(cases):
            raise AnyframeInputError(f"--n {n} is more than the {len(cases)} cases of suite {suite}")
        if n < len(cases):

            keep = sorted(np.random.default_rng(seed).choice(len(cases), n, replace=False).tolist())
            cases = [cases[i] for i in keep]
    _check_sampling_flags(steps, guidance_mode, renorm, detail, guidance_scale=guidance)
    if narrator not in ("none", "world"):
        raise AnyframeInputError(f"--narrator must be none or world, got {narrator!r}")
    _check_dtype(dtype)
    if against not in ("program", "prompt"):
        raise AnyframeInputError(f"--against must be program or prompt, got {against!r}")
    is_calibration = lambda spec: spec in ("truth", "random") or spec.startswith("autoencoder:")
    for spec in model:
        if not is_calibration(spec) and not (Path(spec) / "model_index.json").is_file():
            raise AnyframeInputError(f"--model {spec}: not a pipeline folder (no model_index.json), nor truth/random/autoencoder:DIR")
    if clip is not None and not (clip / "config.json").is_file():
        raise AnyframeInputError(f"--clip {clip}: not a CLIP folder (no config.json)")
    _check_new_file(out / "report.json", "--out")
    _silence_libraries()
    from anyframe.evaluation.harness import (
        load_model,  # (deferred: matplotlib and scipy load only for evaluation)
    )
    from anyframe.evaluation.ranks import Ranks
    from anyframe.evaluation.report import evaluate

    # under torchrun / accelerate launch: each process generates its share of the cases, rank 0 writes the report
    ranks = Ranks.from_env()
    try:
        device = ranks.device(device)
        sampling = dict(steps=steps, guidance=guidance, guidance_mode=guidance_mode,
                        renorm=_renorm_flag(renorm))
        placer = None
        if narrator == "world":
            from anyframe.narrators import narrator_for

            placer = narrator_for("world")
        embedder = None
        if clip is not None:
            from anyframe.models.clip import ClipEmbedder

            embedder = ClipEmbedder.from_pretrained(clip, device=device)
        models = [load_model(spec, **sampling, seed=seed, device=device, detail=detail, dtype=dtype, narrator=placer)
                  if not is_calibration(spec) else load_model(spec, device=device) for spec in model]
        label = "eval" if ranks.world == 1 else f"eval (process 1 of {ranks.world})"
        with _progress(len(models) * len(ranks.share(cases)), label, enabled=not quiet and ranks.is_main) as advance:
            reports = evaluate(models, cases, out, title=f"anyframe evaluation on {suite}", against=against,
                               on_case=lambda name: advance(name), calibrate=calibration, ranks=ranks,
                               clip=embedder)
    finally:
        ranks.close()
    if not ranks.is_main:
        return
    for report in reports:
        summary = ", ".join(f"{k} {v:.3f}" for k, v in report["metrics"].items() if v is not None and k in
                            ("presence", "color_binding", "motion_direction", "keyframe_psnr"))
        typer.echo(f"{report['model']}: {len(report['cases'])} cases; {summary}")
    typer.echo(f"report: {out / 'report.md'}")


@world_app.command("render")
def world_render(
    seed: int = typer.Option(..., "--seed", help="Scene seed."),
    split: str = typer.Option("train", "--split", help="train | ood_color_shape | ood_background | ood_style | more_objects."),
    size: int = typer.Option(32, "--size", help="Canvas side, pixels."),
    frames: int = typer.Option(16, "--frames", help="Clip length."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create."),
    fps: float = typer.Option(8.0, "--fps", help="Frame rate of the written video."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
) -> None:
    """Render one scene: video.mp4, filmstrip.png, frames/frame_NNNN.png, masks.npz + masks.png, scene.json,
    captions.json."""
    import shutil
    import tempfile

    import numpy as np

    from anyframe.io import default_permissions, write_filmstrip, write_mp4, write_png_frames
    from anyframe.world import SPLITS, caption, frame_captions, regional_captions, render, scene_for_seed



    _check_seed(seed)
    if split not in SPLITS:
        raise AnyframeInputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    _check_world_size(size, frames)
    _check_fps(fps)
    _check_new_folder(out, force)
    scene = scene_for_seed(seed, split, size=size, frames=frames)
    clip = render(scene)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # the folder appears whole or not at all
    default_permissions(tmp, directory=True)
    try:
        write_mp4(clip.frames, tmp / "video.mp4", fps=fps)
        write_filmstrip(clip.frames, tmp / "filmstrip.png")
        write_png_frames(clip.frames, tmp / "frames")  # keyframe images for `anyframe generate --image`
        masks = np.clip(clip.masks * 255 + 0.5, 0, 255).astype(np.uint8)  # [N, T, H, W]
        np.savez_compressed(tmp / "masks.npz", masks=masks, object_ids=np.array([o.id for o in scene.objects]))
        union = masks.max(axis=0) if len(masks) else np.zeros(clip.frames.shape[:3], np.uint8)
        write_filmstrip(np.repeat(union[..., None], 3, axis=-1), tmp / "masks.png")
        (tmp / "scene.json").write_text(json.dumps(scene.to_dict(), indent=1, sort_keys=True))
        (tmp / "captions.json").write_text(json.dumps({
            "caption": caption(scene),
            "regional_captions": dict(zip([str(o.id) for o in scene.objects], regional_captions(scene))),
            "frame_captions": frame_captions(scene, clip.trajectory),
        }, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(f"wrote {out}: {caption(scene)}")


@world_app.command("sample")
def world_sample(
    n: int = typer.Option(..., "--n", help="Number of cases."),
    split: str = typer.Option("train", "--split", help="The scene split."),
    seed: int = typer.Option(0, "--seed", help="First scene seed (case i uses seed + i)."),
    task: list[str] = typer.Option([], "--task", help="Tasks to cycle through (default: all). Repeatable."),
    size: int = typer.Option(32, "--size", help="Canvas side, pixels."),
    frames: int = typer.Option(16, "--frames", help="Clip length."),
    out: Path = typer.Option(..., "--out", "-o", help="Suite file to write (.jsonl)."),
) -> None:
    """Write an evaluation suite (JSONL: task, scene program, conditions, what to score)."""
    from anyframe.world import SPLITS
    from anyframe.world.suite import TASKS, make_case, write_suite

    if split not in SPLITS:
        raise AnyframeInputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    unknown = [t for t in task if t not in TASKS]
    if unknown:
        raise AnyframeInputError(f"--task must be among {', '.join(TASKS)}, got {', '.join(unknown)}")
    _check_seed(seed)
    if not 1 <= n <= MAX_SUITE_CASES:
        raise AnyframeInputError(f"--n must be in 1..{MAX_SUITE_CASES:,} cases, got {n}")
    _check_world_size(size, frames)
    if out.suffix != ".jsonl":
        raise AnyframeInputError(f"--out must end in .jsonl, got {out}")
    _check_new_file(out)
    tasks = tuple(task) or TASKS
    with _progress(n, "cases", enabled=n >= 200) as advance:
        cases = []
        for i in range(n):
            cases.append(make_case(tasks[i % len(tasks)], seed + i, split, size, frames, out.stem))
            advance()
    write_suite(cases, out)
    typer.echo(f"wrote {len(cases)} cases to {out}")


@contextlib.contextmanager
def _progress(total: int, label: str, enabled: bool = True, lazy: bool = False, transient: bool = False):
    """A rich progress bar with ETA on stderr for ``total`` units; yields ``advance(text)``. ``lazy``: shown from
    the first ``advance`` on (nothing printed if it is never called). ``transient``: removed when done (a command
    whose last line is its summary, or its one error line)."""
    from anyframe.progress import progress_bar

    if not enabled:
        yield lambda text="": None
        return
    with contextlib.ExitStack() as stack:
        state = {}

        def start():
            bar = stack.enter_context(progress_bar("{task.fields[what]}", stderr=True, transient=transient))
            state.update(bar=bar, task=bar.add_task(label, total=total, what=""))

        def advance(text=""):
            if not state:
                start()
            state["bar"].update(state["task"], advance=1, what=text)

        if not lazy:
            start()
        yield advance


@model_app.command("info")
def model_info(
    model: Path | None = typer.Option(None, "--model", "-m", help="Pipeline folder (default: the shipped model)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """What a model folder is: its method, backbone, the video size it makes, its sampling defaults and the words
    its text encoder knows."""
    from anyframe.pipelines import load_pipeline

    model_dir = model_arg(model) or default_model_dir()
    if model_dir is None:
        raise AnyframeInputError("no --model given and no shipped default model")
    _silence_libraries()
    pipe = load_pipeline(model_dir, "float32")
    limits = pipe.limits
    frames, height, width = limits.default_video_size
    vocabulary = pipe.vocabulary
    info = {
        "model": str(model_dir),
        "method": "+".join(m.name for m in pipe.conditioning.methods),
        "backbone": type(pipe.transformer).__name__,
        "parameters": sum(p.numel() for p in pipe.transformer.parameters()),
        "video": {"frames": frames, "height": height, "width": width},
        "trained_window": limits.trained_window,
        "sampling": limits.sampling_defaults,
        "text_encoder": type(pipe.text_encoder).__name__,
        "max_prompt_tokens": pipe.tokenizer.model_max_length,
        "vocabulary": vocabulary,
    }
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"{model_dir}: {info['backbone']} ({info['parameters'] / 1e6:.1f}M parameters), method {info['method']}")
    typer.echo(f"video: {frames} frames of {width}×{height}; sampling: "
               + ", ".join(f"{k} {v}" for k, v in limits.sampling_defaults.items()))
    w = limits.trained_window
    if w:
        strides = sorted({float(s) for s in w.get("frame_strides") or ()})
        typer.echo(f"trained on: {', '.join(map(str, w.get('frames') or ['any']))} frames; "
                   f"{', '.join(f'{h}×{v}' for h, v in w.get('sizes') or []) or 'any size'} px; frame stride "
                   f"{'–'.join(f'{s:g}' for s in strides) or 'any'} (others: an error, or --beyond-training)")
    else:
        typer.echo("trained on: not recorded (sizes and frame counts are not checked against training)")
    typer.echo(f"text: {info['text_encoder']}, up to {info['max_prompt_tokens']} tokens")
    if vocabulary is None:
        typer.echo("vocabulary: subword (any word is spelled out)")
    else:
        typer.echo(f"vocabulary ({len(vocabulary)} words; other words are ignored):")
        typer.echo(textwrap.fill(" ".join(vocabulary), width=100, break_on_hyphens=False))


@model_app.command("init")
def model_init(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create."),
    size: str = typer.Option("S", "--size", help="World preset: tiny | S."),
    seed: int = typer.Option(0, "--seed", help="Initialisation seed."),
    shift: float = typer.Option(1.0, "--shift", help="Timestep shift of the sampler."),
    clean_timestep: bool = typer.Option(False, "--clean-timestep", help="Conditioned frames carry σ = 0 (frame replacement)."),
    method: str = typer.Option("frame_replacement", "--method", help="Conditioning method: frame_replacement | channel_concat | flashi2v (`anyframe.conditioning.METHODS`)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
) -> None:
    """Create an untrained (randomly initialised) world-scale pipeline folder."""
    from anyframe.conditioning import METHODS
    from anyframe.pipelines import WORLD_PRESETS, build_world_pipeline
    from anyframe.training.config import ConditioningConfig

    if method not in METHODS:
        raise AnyframeInputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    try:  # the recipe's rules: an option the method does not take is an error
        conditioning = ConditioningConfig(method=method, clean_timestep=clean_timestep)
    except ValueError as exc:
        message = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise AnyframeInputError(f"--method {method}: {message.removeprefix('Value error, ')}") from None

    if size not in WORLD_PRESETS:
        raise AnyframeInputError(f"--size must be one of {', '.join(WORLD_PRESETS)}, got {size!r}")
    _check_seed(seed)
    if not math.isfinite(shift) or shift <= 0:
        raise AnyframeInputError(f"--shift must be a positive finite number, got {shift}")
    _check_new_folder(out, force)
    _silence_libraries()
    try:
        pipe = build_world_pipeline(size, seed=seed, shift=shift, method=method, method_options=conditioning.method_options())
    except ValueError as exc:  # a method that does not fit a world backbone (wan_i2v)
        raise AnyframeInputError(f"--method {method}: {exc}") from None
    pipe.save_pretrained(out)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    typer.echo(f"wrote an untrained {size} pipeline ({params / 1e6:.1f}M backbone parameters) to {out}")


@model_app.command("export")
def model_export(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="A checkpoint folder (<run>/checkpoints/step-N)."),
    out: Path = typer.Option(..., "--out", "-o", help="Pipeline folder to create."),
    raw: bool = typer.Option(False, "--raw", help="The raw weights instead of the EMA ones."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
) -> None:
    """Export a training checkpoint as a pipeline folder (EMA weights), by the recipe it records."""
    _check_new_folder(out, force)
    _silence_libraries()
    from anyframe.training.recipe import (
        export_checkpoint,  # (deferred: accelerate and peft load only for training)
    )

    path = export_checkpoint(checkpoint, out, ema=not raw)
    typer.echo(f"wrote {'raw' if raw else 'EMA'} weights of {checkpoint} to {path}")


@model_app.command("slim")
def model_slim(
    model: Path = typer.Option(..., "--model", "-m", help="The pipeline folder (e.g. runs/x/pipeline)."),
    base: Path = typer.Option(..., "--base", help="The folder whose autoencoder, text encoder and tokenizer it shares "
                              "(e.g. checkpoints/anyframe-world-s)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create (e.g. checkpoints/anyframe-world-s-jdm)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
    lora_rank: int | None = typer.Option(None, "--lora-rank", help="Share the base's transformer too and hold this "
                                         "fine-tune of it as a LoRA of this rank (extracted: truncated SVD of each "
                                         "adapted layer's difference; the other changed weights whole)."),
) -> None:
    """Write a model as an extra shipped model: its transformer and method in bfloat16, the autoencoder, text
    encoder and tokenizer read from --base when loaded (base_model.json names it, relative to the folder).
    Refused unless those three are the base's, bit for bit. With --lora-rank the transformer is the base's and
    the fine-tune a LoRA on it (a fraction of the size; the share of the difference it keeps is printed)."""
    if lora_rank is not None and lora_rank < 1:
        raise AnyframeInputError(f"--lora-rank must be at least 1, got {lora_rank}")
    _check_new_folder(out, force)
    _silence_libraries()
    from anyframe.pipelines import load_pipeline
    from anyframe.pipelines.base_folder import write_with_base

    pipe = load_pipeline(model, "float32")
    path, lora = write_with_base(pipe, out, base, lora_rank=lora_rank)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    shared = "vae, text_encoder and tokenizer" if lora is None else "vae, text_encoder, tokenizer and transformer"
    typer.echo(f"wrote {path} ({size:.1f} MB; shares {shared} with {base})")
    if lora is not None:
        typer.echo(f"LoRA rank {lora.rank}: keeps {lora.kept:.1%} of the fine-tune's difference on its adapted layers; "
                   f"{len(lora.whole)} other weights whole")


# ------------------------------------------------------------------------------ anyframe clip (world CLIP, CMI)

clip_app = typer.Typer(help="Image–text embedders (CLIP folders): train the world CLIP, JDM's CMI table, CLIP scores.",
                       no_args_is_help=True)
app.add_typer(clip_app, name="clip")


@clip_app.command("train")
def clip_train(
    out: Path = typer.Option(..., "--out", "-o", help="CLIP folder to create (model, tokenizer, processor, README.md)."),
    steps: int = typer.Option(..., "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(128, "--batch-size", help="Image–text pairs per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW; warm-up, then cosine to 10 %)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation and pair-sampling seed."),
    num_clips: int = typer.Option(8000, "--num-clips", help="World clips rendered for training."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train the world CLIP contrastively on shapes-world frames with full and regional captions; writes the
    folder with a model card (held-out retrieval accuracy). Run with OMP_NUM_THREADS=1 for the card's timing."""
    _check_seed(seed)
    if steps < 1:
        raise AnyframeInputError(f"--steps must be at least 1, got {steps}")
    if batch_size < 2:
        raise AnyframeInputError(f"--batch-size must be at least 2, got {batch_size}")
    if num_clips < batch_size:
        raise AnyframeInputError(f"--num-clips must be at least --batch-size ({batch_size}), got {num_clips}")
    if not math.isfinite(lr) or lr <= 0:
        raise AnyframeInputError(f"--lr must be a positive number, got {lr}")
    _check_new_folder(out, force)
    from anyframe.training.world_clip import train_world_clip

    result = train_world_clip(out, steps=steps, batch_size=batch_size, lr=lr, seed=seed, num_clips=num_clips,
                              progress=not quiet)
    r = result["retrieval"]
    typer.echo(f"wrote {out} ({result['model']['parameters'] / 1e6:.2f}M parameters, {result['size_bytes'] / 1e6:.1f} MB) "
               f"in {result['cpu_seconds'] / 60:.1f} CPU min ({result['seconds'] / 60:.1f} wall): loss {result['loss_last']:.3f}; held-out top-1 among {r['clips']} "
               f"clips: text→image {r['text_to_image_top1']:.3f}, image→text {r['image_to_text_top1']:.3f} "
               f"(chance {r['chance_top1']:.4f})")


@clip_app.command("cmi")
def clip_cmi(
    clip: Path = typer.Option(..., "--clip", help="CLIP folder (e.g. checkpoints/anyframe-world-clip)."),
    num_clips: int = typer.Option(..., "--num-clips", help="World clips 0…N−1 of the dataset."),
    out: Path = typer.Option(..., "--out", "-o", help="Table to write (.safetensors)."),
    negatives: int = typer.Option(256, "--negatives", help="M: nearest-neighbour negatives per clip (< --num-clips)."),
    temperature: float = typer.Option(0.1, "--temperature", help="τ of the InfoNCE critic."),
    split: str = typer.Option("train", "--split", help="The dataset's split."),
    seed: int = typer.Option(0, "--seed", help="The dataset's seed (WorldDataset(seed=...): the training run's)."),
    size: int = typer.Option(32, "--size", help="Canvas side, pixels."),
    frames: int = typer.Option(16, "--frames", help="Clip length."),
    num_objects: int | None = typer.Option(None, "--num-objects", help="The dataset's fixed object count (default: the split's)."),
    duplicates: float = typer.Option(0.0, "--duplicates", help="The dataset's share of scenes with a duplicated look."),
    paraphrase: float = typer.Option(0.0, "--paraphrase", help="The dataset's share of free-form captions."),
    draw_seed: int = typer.Option(0, "--draw-seed", help="Seed of the negatives' caption draws."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the table's full summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """JDM's conditional mutual information between each clip's regional captions given the clip (paper §3.3,
    eq. 12), for every clip of a world dataset: a table the JDM recipe reads (w' = w·exp(−α·Ī))."""
    from anyframe.world import SPLITS

    if split not in SPLITS:
        raise AnyframeInputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    _check_seed(seed)
    _check_seed(draw_seed)
    _check_world_size(size, frames)
    if num_clips < 2:
        raise AnyframeInputError(f"--num-clips must be at least 2, got {num_clips}")
    if not 1 <= negatives < num_clips:
        raise AnyframeInputError(f"--negatives must be in 1…{num_clips - 1} (fewer than --num-clips), got {negatives}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise AnyframeInputError(f"--temperature must be a positive number, got {temperature}")
    if num_objects is not None and not 1 <= num_objects <= 8:
        raise AnyframeInputError(f"--num-objects must be in 1…8, got {num_objects}")
    for flag, share in (("--duplicates", duplicates), ("--paraphrase", paraphrase)):
        if not 0.0 <= share <= 1.0:
            raise AnyframeInputError(f"{flag} must be a share in [0, 1], got {share}")
    if out.suffix != ".safetensors":
        raise AnyframeInputError(f"--out must end in .safetensors, got {out}")
    _check_new_file(out)
    from anyframe.data.cmi import estimate_cmi
    from anyframe.data.world import WorldDataset
    from anyframe.models.clip import ClipEmbedder

    embedder = ClipEmbedder.from_pretrained(clip, device=device)
    dataset = WorldDataset(num_clips, split=split, size=size, frames=frames, seed=seed, num_objects=num_objects,
                           duplicates=duplicates, paraphrase=paraphrase)
    table = estimate_cmi(embedder, dataset, negatives=negatives, temperature=temperature, seed=draw_seed,
                         progress=not quiet)
    table.save(out)
    summary = table.summary(w=1.0, alpha=1.0)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    c, w = summary["cmi"], summary["weight"]
    typer.echo(f"wrote {out}: {num_clips} clips in {table.meta['seconds']:.0f} s, "
               f"{summary['share_with_pairs']:.1%} with pairs of regional captions")
    if c:
        typer.echo(f"Ī over clips with pairs: mean {c['mean']:.3f}, median {c['median']:.3f}, 5/25/75/95 % "
                   f"{c['q05']:.3f} / {c['q25']:.3f} / {c['q75']:.3f} / {c['q95']:.3f}; "
                   f"{summary['share_negative']:.1%} negative")
        typer.echo(f"w' = exp(−Ī) (w = 1, α = 1): mean {w['with_pairs']['mean']:.3f} over clips with pairs, "
                   f"{w['mean_all_clips']:.3f} over all; with Ī clamped at 0: {w['clamped_with_pairs']['mean']:.3f}, "
                   f"{w['clamped_mean_all_clips']:.3f}")


@clip_app.command("score")
def clip_score(
    clip: Path = typer.Option(..., "--clip", help="CLIP folder."),
    image: Path = typer.Option(..., "--image", help="An image file (PNG, JPEG, ...)."),
    text: list[str] = typer.Option(..., "--text", help="Text to score against the image. Repeatable."),
) -> None:
    """The cosine similarity of an image and each text (the CLIP score without its ×100), one line each."""
    import numpy as np

    from anyframe.io import check_aspect, load_image
    from anyframe.models.clip import ClipEmbedder

    pixels = np.asarray(check_aspect(load_image(image)), dtype=np.uint8)[None]
    embedder = ClipEmbedder.from_pretrained(clip)
    scores = embedder.score(np.repeat(pixels, len(text), axis=0), list(text))
    for value, t in zip(scores.tolist(), text):
        typer.echo(f"{value:.4f}" if len(text) == 1 else f"{value:.4f}\t{t}")


def _click_exceptions() -> list:
    """Click's exception modules: recent typer vendors click as ``typer._click``, older typer uses click."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass
    return modules


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Python warnings as one line, ``warning: ...`` (not the file and source line of the code that warned). The
    format, not ``showwarning``: a caller recording warnings (``warnings.catch_warnings``) still records them."""
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> None:
    """Entry point: input errors → one line on stderr, exit 2; no tracebacks for them."""
    modules = _click_exceptions()
    no_args = tuple(m.NoArgsIsHelpError for m in modules if hasattr(m, "NoArgsIsHelpError"))
    usage = tuple(m.UsageError for m in modules if hasattr(m, "UsageError"))
    aborts = tuple(m.Abort for m in modules if hasattr(m, "Abort")) + (typer.Abort,)
    exits = tuple(m.Exit for m in modules if hasattr(m, "Exit")) + (typer.Exit,)
    warnings.formatwarning = _format_warning
    try:
        code = app(args=argv, prog_name="anyframe", standalone_mode=False)
    except AnyframeInputError as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)  # libraries' messages may span lines
        sys.exit(2)
    except no_args as exc:  # bare `anyframe` or `anyframe model`: show the help
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except usage as exc:
        typer.echo(f"error: {exc.format_message()} (see --help)", err=True)
        sys.exit(2)
    except aborts:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except exits as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
