"""Image and video I/O: read keyframe images, write mp4 / GIF / PNG frames / PNG filmstrips.

Every writer is atomic: it writes a temporary file beside the target and renames it, so a failure
never leaves a partial output. Frames are ``uint8`` arrays ``[T, H, W, 3]``.

Keyframe images are fitted to the model size by one rule (:func:`fit_image`): scale so the image
*covers* ``height × width`` (keeping its aspect ratio, Lanczos), then centre-crop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from anyframe.errors import AnyframeInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# The largest image anyframe decodes (an 8192×8192 one): stricter than PIL's own decompression-bomb limit
# (89 Mpx, only a warning up to twice that), so that a file declaring a huge size is refused from its header,
# before any pixel is decoded.
MAX_IMAGE_PIXELS = 8192 * 8192


# ------------------------------------------------------------------------------------------- read


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Floats are read as [0, 1]; integers as 0..255 (both clipped); uint8 is returned as is."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return np.clip(arr, 0, 255).astype(np.uint8)
    return (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)


def load_image(source: str | os.PathLike | Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a path (PNG/JPEG/WebP/...), a PIL image of any mode, or an array.

    Raises :class:`AnyframeInputError` for a missing or undecodable file. Transparency is composited
    on black.
    """
    if isinstance(source, np.ndarray):
        arr = to_uint8(source)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise AnyframeInputError(f"image array must be [H, W], [H, W, 3] or [H, W, 4], got {arr.shape}")
        source = Image.fromarray(arr)
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    path = Path(source)
    if path.is_dir():
        raise AnyframeInputError(f"image {path} is a folder, not an image file")
    if not path.is_file():
        raise AnyframeInputError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise AnyframeInputError(f"image {path} is an empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # reads the header only
                _check_image_size(img.size, path)
                img.load()
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)):,} pixels" if declared else "a size beyond PIL's limit"
        raise AnyframeInputError(f"image {path} is too large: it declares {size} "
                                 f"(at most {MAX_IMAGE_PIXELS:,}, e.g. 8192×8192)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = "not an image file anyframe can read (PNG, JPEG, WebP, BMP, GIF...)" \
            if isinstance(exc, UnidentifiedImageError) else " ".join(str(exc).split()) or type(exc).__name__
        raise AnyframeInputError(f"cannot read image {path}: {reason}") from None


def _check_image_size(size: tuple[int, int], path: Path) -> None:
    w, h = size
    if w < 1 or h < 1 or w * h > MAX_IMAGE_PIXELS:
        raise AnyframeInputError(f"image {path} is too large: {w}×{h} pixels (at most {MAX_IMAGE_PIXELS:,}, e.g. 8192×8192)")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img.copy()
    if img.mode.startswith("I") or img.mode == "F":
        # 16/32-bit grey (16-bit PNGs load as "I;16" or "I"): PIL's convert() clips to 0..255, so scale.
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        else:
            top = 65535.0 if (img.mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        grey = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


MAX_ASPECT = 64  # no video frame is longer than 64:1


def check_aspect(img: Image.Image) -> Image.Image:
    """The image, unless it is too elongated to be a video frame at any size (above :data:`MAX_ASPECT`:1) —
    for commands that read a frame without a model's size to fit it to (``narrate``)."""
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise AnyframeInputError(f"a {w}×{h} image is too elongated to be a video frame (more than {MAX_ASPECT}:1)")
    return img


def fit_image(img: Image.Image, height: int, width: int) -> Image.Image:
    """Resize so the image covers ``height × width`` (aspect kept, Lanczos), then centre-crop. An image so
    elongated that covering the frame would need more than :data:`MAX_IMAGE_PIXELS` is refused."""
    w, h = img.size
    scale = max(height / h, width / w)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if new_w * new_h > MAX_IMAGE_PIXELS:
        raise AnyframeInputError(f"a {w}×{h} image is too elongated to fit a {width}×{height} frame "
                                 f"(it would be scaled to {new_w}×{new_h})")
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return img.crop((left, top, left + width, top + height))


def image_to_array(img: Image.Image) -> np.ndarray:
    """RGB PIL image → float32 ``[H, W, 3]`` in [−1, 1]."""
    return np.asarray(img, dtype=np.float32) / 127.5 - 1.0


def read_jsonl(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[str, dict]]:
    """Yield ``(where, object)`` for every non-blank line of a JSONL file; ``where`` is "path, line N"
    for error messages. A missing file, bad JSON or a non-object line is an :class:`AnyframeInputError`."""
    path = Path(path)
    if not path.is_file():
        raise AnyframeInputError(f"{what} not found: {path}")
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{path}, line {number}"
            if b"\0" in raw:
                raise AnyframeInputError(f"{where}: a binary file, not JSON lines; is this a {what} file?")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AnyframeInputError(f"{where}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); "
                                         f"is this a {what} file?") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnyframeInputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise AnyframeInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON file holding one object (a model folder's config); unreadable, non-UTF-8, malformed or non-object
    content is an :class:`AnyframeInputError` that names the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise AnyframeInputError(f"{path} is not UTF-8 text: the file is damaged") from None
    except json.JSONDecodeError as exc:
        raise AnyframeInputError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except OSError as exc:
        raise AnyframeInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise AnyframeInputError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video with PyAV → ``uint8 [T, H, W, 3]``."""
    path = Path(path)
    if not path.is_file():
        raise AnyframeInputError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise AnyframeInputError(f"no video stream in {path}")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError) as exc:
        raise AnyframeInputError(f"cannot decode video {path}: {exc}") from None
    if not frames:
        raise AnyframeInputError(f"video has no frames: {path}")
    return np.stack(frames)


# ------------------------------------------------------------------------------------------ write


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_permissions(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the permissions a plain ``open`` would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    default_permissions(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """Temporary paths beside each of ``paths``; only when the block succeeds are they all renamed into place. A
    file already at a target is moved aside first and put back if any rename fails, so the outputs appear
    together or not at all, and a failure leaves earlier files untouched."""
    targets = [Path(p) for p in paths]
    with contextlib.ExitStack() as stack:
        temps = []
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            tmp = Path(tmp)
            stack.callback(tmp.unlink, missing_ok=True)
            default_permissions(tmp)
            temps.append(tmp)
        yield tuple(temps)
        moved: list[tuple[Path, Path | None]] = []  # (target, its previous file moved aside, if any)
        try:
            for target, tmp in zip(targets, temps):
                backup = None
                if target.exists():
                    backup = target.with_name(f".{target.name}.{os.getpid()}.bak")
                    os.replace(target, backup)
                moved.append((target, backup))
                os.replace(tmp, target)
        except BaseException:
            for target, backup in reversed(moved):
                target.unlink(missing_ok=True)
                if backup is not None:
                    os.replace(backup, target)
            raise
        for _, backup in moved:
            if backup is not None:
                backup.unlink(missing_ok=True)


def write_texts(files: dict[str | os.PathLike, str]) -> None:
    """Write text files together and atomically (:func:`atomic_paths`): a result and its JSON, a cache entry."""
    with atomic_paths(*files) as temps:
        for tmp, text in zip(temps, files.values()):
            tmp.write_text(text)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` (a folder) only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    default_permissions(tmp, directory=True)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {frames.shape}")
    return to_uint8(frames)


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0, crf: int = 12) -> Path:
    """H.264 mp4 (libx264, yuv420p) via PyAV. Odd sizes are padded by one pixel (yuv420p needs even)."""
    frames = _check_frames(frames)
    _t, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = w + pad_w, h + pad_h
        stream.pix_fmt = "yuv420p"
        # mbtree off: with it, x264's CRF decisions vary from run to run on a busy machine — the same
        # frames gave another bitstream in 15 of 299 encodes, 0 of 299 without it
        # (benchmarks/results/mp4_determinism.md) — and the same seed must give the same file
        stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "mbtree=0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    frames = _check_frames(frames)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return Path(path)


def write_png_frames(frames: np.ndarray, directory: str | os.PathLike) -> list[Path]:
    """``frame_0000.png``, ``frame_0001.png``... in ``directory``."""
    frames = _check_frames(frames)
    directory = Path(directory)
    paths = []
    for i, frame in enumerate(frames):
        p = directory / f"frame_{i:04d}.png"
        with atomic_path(p) as tmp:
            Image.fromarray(frame).save(tmp, format="PNG")
        paths.append(p)
    return paths


def filmstrip(frames: np.ndarray, scale: int | None = None, gap: int | None = None, marked: tuple[int, ...] = ()) -> np.ndarray:
    """Frames side by side on one row → ``uint8 [H', W', 3]``.

    ``scale``: integer nearest-neighbour upscaling (default: so that frames are at least 96 px tall,
    since world-scale clips are 32×32). ``marked`` frames (keyframes) get a white border, drawn in
    the gap between frames (default gap: twice the border), so it never covers a neighbour.
    """
    frames = _check_frames(frames)
    t, h, w, _ = frames.shape
    scale = scale or max(1, -(-96 // h))
    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    hh, ww = h * scale, w * scale
    border = max(1, scale // 2)
    gap = 2 * border if gap is None else gap
    border = min(border, gap)  # the keyframe outline lives in the gap, never over a neighbour
    strip = np.full((hh + 2 * border, t * (ww + gap) - gap + 2 * border, 3), 40, dtype=np.uint8)
    for i in range(t):
        x0 = border + i * (ww + gap)
        if i in marked:
            strip[:, x0 - border : x0 + ww + border] = 255
        strip[border : border + hh, x0 : x0 + ww] = big[i]
    return strip


def write_filmstrip(
    frames: np.ndarray, path: str | os.PathLike, scale: int | None = None, marked: tuple[int, ...] = ()
) -> Path:
    strip = filmstrip(frames, scale=scale, marked=marked)
    with atomic_path(path) as tmp:
        Image.fromarray(strip).save(tmp, format="PNG")
    return Path(path)


def write_mask_outputs(mask_frames: np.ndarray, masks: np.ndarray, threshold: float, clip_path: str | os.PathLike,
                       strip_path: str | os.PathLike, npz_path: str | os.PathLike, fps: float = 8.0,
                       gif: bool = False) -> None:
    """A joint-mask model's masks: the mask clip as decoded (``mask_frames`` [T, H, W, 3] in [0, 1], grey levels)
    as a video (mp4, or ``gif``) and a filmstrip, and ``masks`` [T, H, W] (the clip above
    ``threshold``) as ``npz_path`` with keys ``masks`` (bool) and ``threshold``. Written where told: callers
    write into temporaries and rename them together (:func:`atomic_paths`)."""
    soft = to_uint8(mask_frames)
    (write_gif if gif else write_mp4)(soft, clip_path, fps=fps)
    write_filmstrip(soft, strip_path)
    with open(npz_path, "wb") as f:  # (a file object: numpy would add .npz to a temporary's name)
        np.savez_compressed(f, masks=np.asarray(masks, dtype=bool), threshold=np.float32(threshold))

