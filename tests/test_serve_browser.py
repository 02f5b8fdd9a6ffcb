"""``anyframe serve`` end to end, in a real browser: Debian's Chromium, headless, driven by Playwright.

A tiny untrained model (16 frames of 16×16) is saved to a temporary folder and served as ``anyframe serve --model
DIR`` serves it (the function the command calls, on a free port, in this process: a second process would import
torch and gradio again, 20 s more on one core; tests/test_serve.py checks what the command passes it). The browser
types a prompt, picks the Keyframes task, uploads an image at frame 8, clicks Generate, and waits for the video;
the test then downloads the mp4 the page serves (the <video>'s own URL, through the browser's context) and checks
that it decodes to 16 frames, and that frame 8 is the keyframe. A second test gives the page an impossible frame
index and a file that is not an image, and finds each said in one line.

Frame 8 is compared with the keyframe as the model carries it: frame replacement puts the keyframe's latent at its
frame bit for bit (tests/test_pipeline.py), and the world autoencoder decodes each frame alone, so frame 8 of the
clip is exactly the autoencoder's round trip of the uploaded image (an untrained autoencoder: not the image
itself). What is left is the mp4: H.264 with yuv420p keeps luma at full resolution and chroma at a quarter, so
the test holds the luma, and the colour at chroma resolution (2×2 means), to the project's mp4 bound
(tests/test_io.py's MP4_MAE_BOUND, 8/255 mean absolute error); the untrained decoder's pixel-scale colour noise is
what 4:2:0 cannot keep (the full-resolution RGB error is ~16/255). Every other frame, and the round trip of
another image, is at least twice that bound away, so the comparison tells frame 8 apart.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRAMES, SIZE, KEY_FRAME = 16, 16, 8
MP4_MAE_BOUND = 8 / 255  # tests/test_io.py: an mp4 round trip's mean absolute error, on [0, 1]
LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as libx264's rgb24 → yuv420p conversion

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (Debian's `chromium`: "
                       "apt-get install -y --no-install-recommends chromium; .ci/run installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from anyframe.models.autoencoder import spatial_compression
    from anyframe.pipelines import build_world_pipeline

    latent = SIZE // spatial_compression(build_world_pipeline("tiny", seed=0).vae)
    path = tmp_path_factory.mktemp("model") / "tiny-16"
    build_world_pipeline("tiny", seed=0, sample_size=(FRAMES, latent, latent)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """The page served as ``anyframe serve --model DIR`` serves it (``serve.launch``, which the command calls),
    on a free port, from this process's threads; its URL."""
    from anyframe.serve import Models, launch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))  # (Gradio's cache: its files)
        app = launch(Models.from_folders([model_dir]), tmp_path_factory.mktemp("clips"), "127.0.0.1", _free_port())
        try:
            yield app.local_url
        finally:
            app.close()


def _keyframe(path: Path, left=(220, 30, 30), right=(30, 30, 220)) -> np.ndarray:
    arr = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    arr[:, : SIZE // 2] = left
    arr[:, SIZE // 2 :] = right
    Image.fromarray(arr).save(path)
    return arr


def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float64) @ LUMA / 255


def _chroma_blocks(frame: np.ndarray) -> np.ndarray:
    """RGB at chroma resolution: the means of 2×2 blocks, on [0, 1]."""
    h, w, _ = frame.shape
    return frame.astype(np.float64).reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)) / 255


def _distances(frame: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    return (float(np.abs(_luma(frame) - _luma(expected)).mean()),
            float(np.abs(_chroma_blocks(frame) - _chroma_blocks(expected)).mean()))


def _round_trip(model_dir: Path, image: np.ndarray) -> np.ndarray:
    """The model's autoencoder round trip of ``image`` as a keyframe at frame 8: what frame 8 of its clip holds."""
    from anyframe.io import to_uint8
    from anyframe.pipelines import Keyframe, load_pipeline

    pipe = load_pipeline(model_dir, "float32")
    latents = pipe.encode_keyframes([Keyframe(image, KEY_FRAME)], SIZE, SIZE, [KEY_FRAME])
    return to_uint8(pipe.decode_latents(latents)[0, 0].cpu().numpy())


@contextlib.contextmanager
def _page_with_an_image(server, prompt: str, frame: int, image: Path):
    """The page in headless Chromium, the keyframes preset chosen, ``prompt`` typed and ``image`` uploaded into the
    first slot at ``frame``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(server)
            page.locator("#generate").wait_for()
            page.locator("#prompt textarea").fill(prompt)
            page.get_by_label("Keyframes: images at any frames").check()
            page.locator("#slot-4").wait_for(state="visible")  # the preset shows every image slot
            page.locator("#frame-1 input").fill(str(frame))
            page.locator("#image-1 input[type=file]").set_input_files(str(image))
            page.locator("#image-1 img").wait_for()
            yield page
        finally:
            browser.close()


def test_generate_in_the_browser_keeps_the_keyframe(server, model_dir, tmp_path):
    key = _keyframe(tmp_path / "key.png")
    prompt = "On a black background, a large red circle moves right."
    with _page_with_an_image(server, prompt, KEY_FRAME, tmp_path / "key.png") as page:
        page.locator("#steps input").fill("4")
        page.locator("#generate").click()
        page.locator("#video video[src]").wait_for(timeout=120_000)
        info = page.locator("#info").inner_text()
        video_url = page.locator("#video video").get_attribute("src")
        strip_url = page.locator("#filmstrip img").get_attribute("src")
        video = page.request.get(video_url)
        strip = page.request.get(strip_url)
        assert video.ok and strip.ok, (video.status, strip.status)
        (tmp_path / "clip.mp4").write_bytes(video.body())
        (tmp_path / "strip.png").write_bytes(strip.body())

    assert f"keyframes at {KEY_FRAME}" in info and "4 steps" in info, info
    assert video_url.endswith(".mp4"), video_url
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)
    with Image.open(tmp_path / "strip.png") as image:  # the filmstrip: 16 frames side by side
        assert image.format == "PNG" and image.width > FRAMES * SIZE and image.height > SIZE

    expected = _round_trip(model_dir, key)
    luma, chroma = _distances(frames[KEY_FRAME], expected)
    assert luma < MP4_MAE_BOUND and chroma < MP4_MAE_BOUND, (luma, chroma)
    # the bound tells frame 8 apart: the other frames, and what another image would have given, are far from it
    others = [_distances(frames[i], expected) for i in range(FRAMES) if i != KEY_FRAME]
    assert min(d[0] for d in others) > 2 * MP4_MAE_BOUND, others
    other_image = _round_trip(model_dir, _keyframe(tmp_path / "other.png", (30, 200, 40), (250, 250, 250)))
    assert min(_distances(frames[KEY_FRAME], other_image)) > 2 * MP4_MAE_BOUND


def test_bad_input_in_the_browser_is_one_clear_error(server, tmp_path):
    """An impossible frame index, and a file that is not an image (uploaded through the page like any image):
    each an error box with one line that says what is wrong, and no video."""
    from playwright.sync_api import expect

    _keyframe(tmp_path / "key.png")
    (tmp_path / "notes.png").write_text("not an image")
    with _page_with_an_image(server, "a red circle moves left", 99, tmp_path / "key.png") as page:
        page.locator("#generate").click()
        out_of_range = "Image 1: frame index 99 is out of range for 16 frames (valid: -16..15)"
        expect(page.get_by_text(out_of_range)).to_be_visible()

        page.locator("#frame-1 input").fill("3")
        page.locator("#image-2 input[type=file]").set_input_files(str(tmp_path / "notes.png"))  # (at frame 5)
        page.locator("#image-2 img").wait_for(state="attached")  # (uploaded: a preview, broken, of no image)
        page.locator("#generate").click()
        expect(page.get_by_text("Image 2: cannot read image notes.png: not an image file anyframe can read "
                                "(PNG, JPEG, WebP, BMP, GIF...)")).to_be_visible()
        assert page.locator("#video video[src]").count() == 0
        assert "Traceback" not in page.content()
