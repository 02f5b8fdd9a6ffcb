"""Regenerate ``assets/serve.png``: the page of ``anyframe serve`` after a real generation with the shipped model.

    python scripts/screenshot_serve.py                       # → assets/serve.png
    python scripts/screenshot_serve.py --out /tmp/page.png --model runs/x/pipeline

Serves the page on a free localhost port (as ``anyframe serve``), drives Debian's Chromium headless through
Playwright at 1280 px wide: the prompt "On a black background, a large red circle moves right.", the Keyframes
task with ``assets/red_circle.png`` at frame 8, the model's own steps and guidance, seed 0; waits for the video,
shows its frame 8 (the keyframe), and saves a screenshot of the whole page, quantised to fit ``--max-kb``.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROMPT = "On a black background, a large red circle moves right."
KEY_FRAME = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save(png: bytes, out: Path, max_kb: int) -> int:
    """The screenshot as is when it fits ``max_kb``, else with fewer colours (the page is flat colour)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colors in (None, 256, 128, 64):
        buffer = io.BytesIO()
        (image if colors is None else image.quantize(colors=colors, dither=Image.Dither.NONE)).save(
            buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_kb * 1024:
            break
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    return buffer.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="pipeline folder (default: the shipped model)")
    parser.add_argument("--image", type=Path, default=ROOT / "assets" / "red_circle.png", help="the keyframe image")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "serve.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--max-kb", type=int, default=300)
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"error: no Chromium at {CHROMIUM} (apt-get install -y --no-install-recommends chromium)")

    from playwright.sync_api import sync_playwright

    from anyframe.cli import default_model_dir
    from anyframe.serve import Models, launch

    model = args.model or default_model_dir()
    with tempfile.TemporaryDirectory(prefix="anyframe-screenshot-") as clips:
        app = launch(Models.from_folders([model]), clips, "127.0.0.1", _free_port())
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": args.width, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(app.local_url)
                page.locator("#generate").wait_for()
                page.locator("#prompt textarea").fill(PROMPT)
                page.get_by_label("Keyframes: images at any frames").check()
                page.locator("#slot-4").wait_for(state="visible")
                page.locator("#frame-1 input").fill(str(KEY_FRAME))
                page.locator("#image-1 input[type=file]").set_input_files(str(args.image))
                page.locator("#image-1 img").wait_for()
                page.locator("#generate").click()
                page.locator("#video video[src]").wait_for()
                # the keyframe on screen: frame 8 of an 8 fps clip starts at 1 s (a little after: its middle)
                page.evaluate("""async (t) => {
                    const v = document.querySelector('#video video');
                    v.pause(); v.loop = false; v.autoplay = false;
                    await new Promise(r => { v.onseeked = r; v.currentTime = t; });
                }""", (KEY_FRAME + 0.5) / 8)
                page.locator("#filmstrip img").wait_for()
                page.wait_for_timeout(500)
                png = page.screenshot(full_page=True)
                info = page.locator("#info").inner_text()
                browser.close()
        finally:
            app.close()
    size = _save(png, args.out, args.max_kb)
    print(f"wrote {args.out} ({size / 1024:.0f} KB): {info}")


if __name__ == "__main__":
    main()
