"""``anyframe serve``: a web page (Gradio) to generate from, with the models given.

    models = Models.from_folders([Path("checkpoints/anyframe-world-s")])
    app = build_app(models, out_dir="outputs/web")          # the page: a gr.Blocks
    app = launch(models, "outputs/web", port=7860)          # the page, served from Gradio's threads
    serve(models, host="127.0.0.1", port=7860)              # served until Ctrl-C (the command)

The page has one tab per capability (:data:`TABS`: a list of :class:`Tab`, each a name and a function that builds
its content); today one, "Generate": a prompt, keyframe images each at its frame index, task presets (T2V, TI2V,
interpolation, prediction, keyframes), steps, guidance and seed, a model picker, a progress bar fed by the
pipeline's per-step callback, and the video and its filmstrip, written by the writers the CLI's ``generate`` uses
(:func:`anyframe.io.write_mp4`, :func:`anyframe.io.write_filmstrip`). A new capability adds a builder to
:data:`TABS`.

Bad input on the page (an impossible frame index, a file that is not an image, a number that is not finite) is
shown as a ``gr.Error`` with one clear line; it is checked by the same code as the Python API and the CLI
(``pipelines.request``, :func:`anyframe.io.load_image`). Any other exception is a bug: Gradio shows "Error" and
the server's log has the traceback.
"""

from __future__ import annotations

import math
import os
import re
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # (before gradio is imported: it phones home otherwise)

import gradio as gr
import numpy as np

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_paths, load_image, to_uint8, write_filmstrip, write_mask_outputs, write_mp4
from anyframe.pipelines import AnyFramePipeline, GenerationRequest, Keyframe, load_pipeline, resolve_dtype
from anyframe.pipelines.request import check_settings, resolve_frame_index

IMAGE_SLOTS = 4  # keyframe images on the Generate tab, each with its frame index
RANDOM_SEED = -1  # the Seed field's value for "draw one" (the drawn seed is reported)
FPS = 8.0  # the written video's frame rate (the CLI's default)
MAX_UPLOAD = "25mb"  # per uploaded file; load_image then refuses images of more than 8192×8192 pixels


# ------------------------------------------------------------------------------------------------ task presets


def _spread(num_frames: int, count: int) -> tuple[int, ...]:
    """``count`` frames spread evenly from the first to the last."""
    if count == 1 or num_frames == 1:
        return (0,)
    return tuple(dict.fromkeys(round(i * (num_frames - 1) / (count - 1)) for i in range(count)))


@dataclass(frozen=True)
class TaskPreset:
    """A task: the image slots it shows and the frame index each starts at, for a clip of ``num_frames``."""

    label: str
    frames: Callable[[int], tuple[int, ...]]


# the tasks that work (README status), named as the evaluation suites name them (world/suite.py)
TASK_PRESETS: dict[str, TaskPreset] = {
    "t2v": TaskPreset("T2V: text only", lambda n: ()),
    "ti2v": TaskPreset("TI2V: an image at frame 0", lambda n: (0,)),
    "interpolation": TaskPreset("Interpolation: first and last frame", lambda n: (0, n - 1) if n > 1 else (0,)),
    "prediction": TaskPreset("Prediction: the first frames", lambda n: tuple(range(min(IMAGE_SLOTS, n)))),
    "keyframes": TaskPreset("Keyframes: images at any frames", lambda n: _spread(n, IMAGE_SLOTS)),
}


def preset_frames(preset: str, num_frames: int) -> tuple[int, ...]:
    """The frame index of each image slot ``preset`` shows (as many as it shows)."""
    if preset not in TASK_PRESETS:
        raise AnyframeInputError(f"unknown task preset {preset!r} ({', '.join(TASK_PRESETS)})")
    return TASK_PRESETS[preset].frames(num_frames)[:IMAGE_SLOTS]


# ------------------------------------------------------------------------------------------------------ models


def model_labels(folders: Sequence[Path]) -> dict[str, Path]:
    """A unique label for each model folder: its name, with its parent's where two share a name."""
    folders = list(dict.fromkeys(Path(f) for f in folders))
    names = [f.name or str(f) for f in folders]
    labels = {}
    for folder, name in zip(folders, names):
        label = name if names.count(name) == 1 else f"{folder.parent.name}/{name}"
        labels[label if label not in labels else str(folder)] = folder
    return labels


class Models:
    """The models the page offers (label → a pipeline folder, or a pipeline already built), loaded on first use.
    One folder's pipeline is kept loaded at a time (the last one used); built pipelines stay."""

    def __init__(self, choices: dict[str, Path | AnyFramePipeline], dtype: str = "auto", device: str = "auto"):
        if not choices:
            raise AnyframeInputError("no model to serve")
        self.choices = dict(choices)
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self._loaded: tuple[str, AnyFramePipeline] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_folders(cls, folders: Sequence[Path], **kwargs) -> Models:
        return cls(dict(model_labels(folders)), **kwargs)

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    def get(self, label: str) -> AnyFramePipeline:
        """The pipeline of ``label``, loading it (and letting the previously loaded folder go) if needed."""
        if label not in self.choices:
            raise AnyframeInputError(f"unknown model {label!r}; pick one of {', '.join(self.choices)}")
        choice = self.choices[label]
        if isinstance(choice, AnyFramePipeline):
            return choice
        with self._lock:
            if self._loaded is not None and self._loaded[0] == label:
                return self._loaded[1]
            self._loaded = None  # (the previous model's memory goes before the next one loads)
            pipe = load_pipeline(choice, self.dtype, device=self.device).to(self.device)
            pipe.set_progress_bar_config(disable=True)  # (the page has its own bar)
            self._loaded = (label, pipe)
            return pipe

    def describe(self, label: str) -> str:
        """One line on the model: what it makes, how it samples by default."""
        pipe = self.get(label)
        frames, height, width = pipe.default_video_size
        d = pipe.sampling_defaults
        method = "+".join(m.name for m in pipe.conditioning.methods)
        where = self.choices[label]
        if isinstance(where, Path):  # (a folder under the working one by its relative path)
            relative = os.path.relpath(where)
            where = where if relative.startswith("..") else relative
        return (f"`{where if isinstance(where, (str, Path)) else label}`: {frames} frames of {width}×{height}, method "
                f"{method}; by default {d['num_inference_steps']} steps of {d['guidance_mode']} guidance "
                f"{d['guidance_scale']:g}.")


# -------------------------------------------------------------------------------------------- input checking

# request fields → the page's labels (the request's errors start with the field's name)
LABELS = {"steps": "Steps", "guidance_scale": "Guidance", "seed": "Seed"}


def _number(label: str, value: Any, hint: str, integer: bool = False) -> float | int:
    """A number from the page: finite, whole if ``integer``. None is an error that gives ``hint``: the field was
    empty, or held what the browser cannot send as a number (it sends ``1e999``, an infinity, as empty too)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise AnyframeInputError(f"{label} is empty or not a finite number: {hint}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise AnyframeInputError(f"{label} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AnyframeInputError(f"{label} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise AnyframeInputError(f"{label} must be a finite number, got {value}")
    if integer:
        if float(value) != int(value):
            raise AnyframeInputError(f"{label} must be a whole number, got {value}")
        return int(value)
    return float(value)


def upload_path(upload: Any) -> tuple[Path, str]:
    """An image slot's value → (the file on the server, the name the user knows it by). The value is Gradio's
    record of an upload (``{"path": ..., "orig_name": ...}``), or a path (from Python)."""
    if isinstance(upload, (str, os.PathLike)):
        return Path(upload), Path(upload).name
    if isinstance(upload, dict) and isinstance(upload.get("path"), str):
        path = Path(upload["path"])
        return path, str(upload.get("orig_name") or path.name)
    raise AnyframeInputError("the upload is not a file (upload an image file: PNG, JPEG, WebP...)")


def build_request(pipe: AnyFramePipeline, prompt: str, preset: str, steps: Any, guidance: Any, seed: Any,
                  slots: Sequence[tuple[Any, Any]], narrate: bool = False) -> GenerationRequest:
    """The page's inputs → a request checked against ``pipe`` (the checks of the Python API and the CLI), or
    :class:`AnyframeInputError` with one line that names the page's field. ``slots``: (image, frame index) of
    each image slot; the preset's slots are read (the others are hidden), and those without an image are
    unused. ``narrate``: image 1 goes without its frame index (a narrator places it when the clip is generated:
    the request is then checked there, once placed)."""
    if prompt is not None and not isinstance(prompt, str):
        raise AnyframeInputError("the prompt must be text")
    num_frames = pipe.default_num_frames
    shown = len(preset_frames(preset, num_frames))
    defaults = pipe.sampling_defaults
    steps = _number("Steps", steps, f"give a number of steps (the model's: {defaults['num_inference_steps']})",
                    integer=True)
    guidance = _number("Guidance", guidance, f"give a number (the model's: {defaults['guidance_scale']:g})")
    seed = _number("Seed", seed, f"give a whole number, or {RANDOM_SEED} for a random one", integer=True)
    if seed == RANDOM_SEED:
        seed = None  # (the pipeline draws one, and reports it)
    keyframes = []
    for slot, (image, index) in enumerate(slots[:shown], start=1):
        if image is None:
            continue
        if narrate and slot == 1:
            index = None
        else:
            index = _number(f"Image {slot}'s frame", index, f"give the frame it belongs at (0..{num_frames - 1}, "
                            "negative from the end)", integer=True)
            try:
                index = resolve_frame_index(index, num_frames)
            except AnyframeInputError as exc:
                raise AnyframeInputError(f"Image {slot}: {exc}") from None
        path = name = None
        try:
            path, name = upload_path(image)
            keyframes.append(Keyframe(load_image(path), index))
        except AnyframeInputError as exc:
            message = str(exc) if path is None else str(exc).replace(str(path), name)
            raise AnyframeInputError(f"Image {slot}: {message}") from None
    request = GenerationRequest(prompt=prompt or "", keyframes=keyframes, steps=steps, guidance_scale=guidance,
                                seed=seed)
    try:
        check_settings(request)
    except AnyframeInputError as exc:
        field = str(exc).split(" ", 1)[0]
        raise AnyframeInputError(LABELS.get(field, field) + str(exc)[len(field):]) from None
    if not request.keyframes and not request.prompt.strip():
        raise AnyframeInputError("give a prompt, a keyframe image, or both"
                                 + (" (the T2V preset shows no image slot)" if not shown else ""))
    if narrate and not any(k.frame_index is None for k in request.keyframes):
        raise AnyframeInputError("Narrator: give image 1 for the narrator to place")
    if narrate:
        return request
    return pipe.validate(request)


# -------------------------------------------------------------------------------------------------- generate


def generate_clip(pipe: AnyFramePipeline, request: GenerationRequest, out_dir: Path,
                  on_step: Callable[[int, int], None] | None = None, masks: bool = False, narrator=None,
                  narrator_prompt: bool = False) -> dict:
    """Generate ``request`` (validated) and write its video and filmstrip into a new folder under ``out_dir``, with
    the CLI's writers; returns what was written and run (the CLI's ``--json`` record). ``masks``: also the
    objects' mask clip, its filmstrip and the binary masks (a JDM model; else an input error, before sampling).
    ``narrator_prompt``: the narrator's caption of the whole clip is the prompt (``AnyFramePipeline.generate``)."""
    if masks and "masks" not in pipe.conditioning.extra_outputs:
        raise AnyframeInputError("Masks: this model does not generate masks (a JDM model does)")
    steps = request.steps

    def callback(_pipe, i, _t, _tensors):
        if on_step is not None:
            on_step(i + 1, steps)

    start = time.perf_counter()
    with warnings.catch_warnings():  # (the page shows them itself: prompt_problems)
        warnings.filterwarnings("ignore", message="this model does not know|the prompt is")
        result = pipe.generate(request, output_type="np", callback_on_step_end=callback, narrator=narrator,
                               narrator_prompt=narrator_prompt)
    seconds = time.perf_counter() - start
    video = to_uint8(result.frames[0])  # [T, H, W, 3]
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="clip-", dir=out_dir))
    stem = re.sub(r"[^a-z0-9]+", "-", request.prompts[0].lower()).strip("-")[:48] or "keyframes"
    out, strip_path = folder / f"{stem}-s{result.seed}.mp4", folder / f"{stem}-s{result.seed}.png"
    mask_paths = tuple(folder / f"{stem}-s{result.seed}.masks.{ext}" for ext in ("mp4", "png", "npz")) if masks else ()
    with atomic_paths(out, strip_path, *mask_paths) as (video_tmp, strip_tmp, *mask_tmps):
        write_mp4(video, video_tmp, fps=FPS)
        write_filmstrip(video, strip_tmp, marked=result.keyframe_indices)
        if masks:
            write_mask_outputs(result.extras["mask_frames"][0], result.masks[0],
                               result.extras.get("mask_threshold", 0.5), *mask_tmps, fps=FPS)
    t, h, w = video.shape[:3]
    record = {"video": str(out), "filmstrip": str(strip_path), "frames": t, "height": h, "width": w, "fps": FPS,
              "seconds": round(seconds, 3), "seed": result.seed, "keyframes": list(result.keyframe_indices),
              "steps": steps, "guidance": request.guidance_scale, "prompt": result.request.prompts[0]}
    if masks:
        record["masks"] = [str(p) for p in mask_paths]
    if "narrative" in result.extras:
        record["narrative"] = result.extras["narrative"]
    return record


def summary(record: dict) -> str:
    keys = ", ".join(map(str, record["keyframes"])) or "none"
    text = (f"{record['frames']} frames of {record['width']}×{record['height']} in {record['seconds']:.2f} s: "
            f"seed {record['seed']}, {record['steps']} steps, guidance {record['guidance']:g}, keyframes at {keys}.")
    story = record.get("narrative")
    if story:
        lines = "".join(f"\n{j}. {d}" for j, d in enumerate(story["descriptions"]))
        note = f" ({story['note']})" if story.get("note") else ""
        text += f"\n\n**Narrator ({story.get('backend', '')})**: image 1 is frame {story['position']}{note}.{lines}"
        if story.get("caption"):
            used = " (the prompt)" if record.get("prompt") == story["caption"] else ""
            text += f"\n\n**The whole clip{used}**: {story['caption']}"
    return text


# ------------------------------------------------------------------------------------------------------- page


@dataclass
class PageContext:
    """What a tab's builder gets: the models, the folder for outputs, and the page's model picker (a tab that
    depends on the model listens to its changes)."""

    models: Models
    out_dir: Path
    model_picker: Any = None  # gr.Dropdown


@dataclass(frozen=True)
class Tab:
    """A tab of the page: its name and the function that builds its content (inside ``gr.Tab(name)``)."""

    name: str
    build: Callable[[PageContext], None]


def _page_error(exc: AnyframeInputError) -> gr.Error:
    return gr.Error(" ".join(str(exc).split()), print_exception=False)


def build_generate_tab(context: PageContext) -> None:
    """The Generate tab: prompt, task preset, keyframe images with their frame indices, sampling settings →
    the video, its filmstrip and what ran."""
    models = context.models
    first = models.get(models.labels[0])
    frames0, defaults0 = first.default_num_frames, first.sampling_defaults
    start = preset_frames("ti2v", frames0)

    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                                placeholder="On a black background, a large red circle moves right.")
            preset = gr.Radio([(p.label, name) for name, p in TASK_PRESETS.items()], value="ti2v", label="Task",
                              elem_id="preset")
            slots = []
            with gr.Row():
                for k in range(IMAGE_SLOTS):
                    with gr.Column(min_width=150, visible=k < len(start), elem_id=f"slot-{k + 1}") as column:
                        image = gr.Image(label=f"Image {k + 1}", type="filepath", sources=["upload", "clipboard"],
                                         height=150, elem_id=f"image-{k + 1}")
                        index = gr.Number(label=f"Image {k + 1}'s frame", value=start[k] if k < len(start) else 0,
                                          info=f"0..{frames0 - 1}; -1 is the last", elem_id=f"frame-{k + 1}")
                    slots.append((column, image, index))
            with gr.Row():
                steps = gr.Number(label="Steps", value=defaults0["num_inference_steps"], elem_id="steps")
                guidance = gr.Number(label="Guidance", value=defaults0["guidance_scale"], elem_id="guidance")
                seed = gr.Number(label="Seed", value=0, info=f"{RANDOM_SEED}: a random one", elem_id="seed")
            with gr.Row():
                want_masks = gr.Checkbox(label="Masks", value=False, elem_id="masks",
                                         info="JDM models: also the objects' masks (a mask clip, its filmstrip, .npz)")
                narrate = gr.Checkbox(label="Narrator places image 1", value=False, elem_id="narrate",
                                      info="The world narrator finds image 1's frame from the prompt and "
                                           "narrates every frame (ReasonDiff); its frame index is ignored")
                narrator_prompt = gr.Checkbox(label="Narrator's caption as prompt", value=False,
                                              elem_id="narrator-prompt",
                                              info="With the narrator: its description of the whole clip replaces "
                                                   "the prompt (on the world as good as ReasonDiff)")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=2):
            video = gr.Video(label="Video", format=None, autoplay=True, loop=True, height=320, buttons=["download"],
                             interactive=False, elem_id="video")
            info = gr.Markdown(elem_id="info")
    strip = gr.Image(label="Filmstrip (keyframes outlined)", type="filepath", format="png", interactive=False,
                     buttons=["download"], elem_id="filmstrip")
    mask_strip = gr.Image(label="Masks (the objects the prompt names)", type="filepath", format="png",
                          interactive=False, buttons=["download"], elem_id="mask-filmstrip", visible=True)

    def show_preset(model_label, preset_name):
        try:
            frames = models.get(model_label).default_num_frames
            chosen = preset_frames(preset_name, frames)
        except AnyframeInputError as exc:
            raise _page_error(exc) from None
        updates = []
        for k in range(IMAGE_SLOTS):
            updates.append(gr.update(visible=k < len(chosen)))
            updates.append(gr.update(value=chosen[k], info=f"0..{frames - 1}; -1 is the last") if k < len(chosen)
                           else gr.update(info=f"0..{frames - 1}; -1 is the last"))
        return updates

    slot_outputs = [c for column, _, index in slots for c in (column, index)]
    preset.change(show_preset, [context.model_picker, preset], slot_outputs)

    def pick_model(model_label, preset_name):
        try:
            d = models.get(model_label).sampling_defaults
        except AnyframeInputError as exc:
            raise _page_error(exc) from None
        return [d["num_inference_steps"], d["guidance_scale"], *show_preset(model_label, preset_name)]

    context.model_picker.change(pick_model, [context.model_picker, preset], [steps, guidance, *slot_outputs])

    def run(values: dict, progress=gr.Progress()):
        label = values[context.model_picker]
        try:
            progress(0, desc=f"loading {label}")
            pipe = models.get(label)
            narrator = None
            if values[narrator_prompt] and not values[narrate]:
                raise AnyframeInputError("Narrator's caption: tick Narrator places image 1 too")
            if values[narrate]:
                from anyframe.narrators import narrator_for

                narrator = narrator_for("world")
            request = build_request(pipe, values[prompt], values[preset], values[steps], values[guidance],
                                    values[seed], [(values[image], values[index]) for _, image, index in slots],
                                    narrate=narrator is not None)
            notes = [note for text in dict.fromkeys(request.prompts)
                     for note in pipe.prompt_problems(text, request.max_sequence_length)]
            for note in notes:
                gr.Warning(note)
            progress((0, request.steps), desc="sampling", unit="steps")
            record = generate_clip(pipe, request, context.out_dir,
                                   on_step=lambda i, n: progress((i, n), desc="sampling", unit="steps"),
                                   masks=bool(values[want_masks]), narrator=narrator,
                                   narrator_prompt=bool(values[narrator_prompt]))
        except AnyframeInputError as exc:
            raise _page_error(exc) from None
        text = summary(record) + "".join(f"\n\n*{note}*" for note in notes)
        return record["video"], record["filmstrip"], (record["masks"][1] if "masks" in record else None), text

    # preprocess=False: the handler gets the page's values as sent (numbers as numbers or None, each upload as
    # Gradio's file record, already checked to be in its upload folder), and checks them itself, with the
    # project's checks (load_image), so that any bad value is one clear line
    inputs = {context.model_picker, prompt, preset, steps, guidance, seed, want_masks, narrate, narrator_prompt,
              *(c for _, i, n in slots for c in (i, n))}
    for trigger in (button.click, prompt.submit):
        trigger(run, inputs, [video, strip, mask_strip, info], concurrency_limit=1, preprocess=False)


TABS: list[Tab] = [Tab("Generate", build_generate_tab)]


def build_app(models: Models, out_dir: str | os.PathLike, tabs: Sequence[Tab] | None = None) -> gr.Blocks:
    """The page: a title, the model picker, and one tab per entry of ``tabs`` (default :data:`TABS`). Outputs are
    written under ``out_dir``."""
    out = Path(out_dir)
    with gr.Blocks(title="anyframe", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as app:
        gr.Markdown("# anyframe\nVideo from a prompt and from images placed at any frame.")
        with gr.Row():
            picker = gr.Dropdown(models.labels, value=models.labels[0], label="Model", scale=1, elem_id="model")
            about = gr.Markdown(models.describe(models.labels[0]), elem_id="model-info")

        def describe(label, progress=gr.Progress()):
            progress(0, desc=f"loading {label}")
            try:
                return models.describe(label)
            except AnyframeInputError as exc:
                raise _page_error(exc) from None

        picker.change(describe, picker, about)
        context = PageContext(models=models, out_dir=out, model_picker=picker)
        with gr.Tabs():
            for tab in (TABS if tabs is None else tabs):
                with gr.Tab(tab.name):
                    tab.build(context)
    return app


def launch(models: Models, out_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 7860) -> gr.Blocks:
    """Build the page and start serving it on ``host:port`` from Gradio's threads; returns the app
    (``app.close()`` stops it). Clips are written under ``out_dir``; Gradio serves copies from its cache."""
    app = build_app(models, out_dir)
    app.queue(default_concurrency_limit=1)  # one generation at a time; the others wait in the queue
    try:
        app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, share=False,
                   ssr_mode=False, show_error=False, max_file_size=MAX_UPLOAD, footer_links=[])
    except OSError as exc:
        raise AnyframeInputError(f"cannot serve on {host}:{port}: {' '.join(str(exc).split())}") from None
    return app


def serve(models: Models, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page on ``host:port`` until interrupted (Ctrl-C, or SIGTERM); the clips go to a temporary
    folder, removed when the server stops."""
    def stop(_signum, _frame):
        raise KeyboardInterrupt

    with tempfile.TemporaryDirectory(prefix="anyframe-serve-") as out:
        app = launch(models, out, host, port)
        print(f"anyframe serve: {app.local_url} (models: {', '.join(models.labels)}); Ctrl-C stops it", flush=True)
        previous = signal.signal(signal.SIGTERM, stop)  # (a service manager's stop: as Ctrl-C, cleaned up)
        try:
            while app.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("anyframe serve: stopped", flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
            app.close()
