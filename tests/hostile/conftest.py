"""The hostile-input corpus: every case runs through the CLI's entry point in-process (``anyframe.cli.main``),
from a fresh working folder, and is checked for the one contract a user sees.

A *refused* case exits with code 2, prints exactly one line on stderr (``error: ...``) that names what was wrong,
shows no traceback, and leaves every file in the working folder as it was (nothing written, nothing changed).
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyframe.cli import main

PROGRESS = re.compile(r"\d+%\|.*\| *\d+/\d+")  # tqdm's bar: " 40%|████      | 2/5 [00:01<...]"


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr's lines, less a progress bar's (a long command shows one while it runs, before any failure)."""
        lines = re.split(r"[\r\n]+", self.err)
        return [line for line in lines if line.strip() and not PROGRESS.search(line)]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` → its content hash (folders: ``dir``)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link"
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


class CLI:
    """Runs ``anyframe`` argv in-process from ``cwd`` and checks the outcome."""

    def __init__(self, cwd: Path, capsys, monkeypatch):
        self.cwd, self.capsys, self.monkeypatch = cwd, capsys, monkeypatch

    def __call__(self, argv: list[str]) -> Outcome:
        self.monkeypatch.chdir(self.cwd)
        self.capsys.readouterr()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = self.capsys.readouterr()
        return Outcome(code, out, err)

    def refuses(self, argv: list[str], *needles: str) -> Outcome:
        """Run ``argv`` and assert the refusal contract; each needle (a regex, case-insensitive) must be on the line."""
        before = snapshot(self.cwd)
        outcome = self(argv)
        assert "Traceback" not in outcome.err, outcome.err
        assert outcome.code == 2, (outcome.code, outcome.err[-2000:], outcome.out[-500:])
        lines = outcome.err_lines
        assert len(lines) == 1, outcome.err
        assert lines[0].startswith("error: "), lines[0]
        for needle in needles:
            assert re.search(needle, lines[0], re.IGNORECASE), (needle, lines[0])
        assert snapshot(self.cwd) == before, "the folder changed"
        return outcome


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch) -> CLI:
    work = tmp_path / "work"
    work.mkdir()
    return CLI(work, capsys, monkeypatch)


# ------------------------------------------------------------------------------------------ files


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG header that declares ``width × height`` (a decompression bomb's header), with one tiny
    IDAT: a few hundred bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    """Bad inputs of every kind, each a path (made once per session)."""
    root = tmp_path_factory.mktemp("hostile-files")
    good = root / "good.png"
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(good)
    files = {"good": good}
    files["bomb"] = root / "bomb.png"
    files["bomb"].write_bytes(png_declaring(30000, 30000))
    files["wide_bomb"] = root / "wide.png"  # a real image, small on disk, that covering a frame would blow up
    Image.new("RGB", (200_000, 1), (200, 10, 10)).save(files["wide_bomb"])
    files["zero"] = root / "zero.png"
    files["zero"].write_bytes(b"")
    files["truncated"] = root / "truncated.png"
    files["truncated"].write_bytes(good.read_bytes()[:60])
    files["text"] = root / "notes.png"
    files["text"].write_text("this is not an image\n")
    files["random_bytes"] = root / "noise.jpg"
    files["random_bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    files["directory"] = root / "folder.png"
    files["directory"].mkdir()
    files["jpeg_header_only"] = root / "header.jpg"
    files["jpeg_header_only"].write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    files["binary"] = root / "binary.bin"
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["latin1"] = root / "latin1.txt"
    files["latin1"].write_bytes("caf\xe9: 1\n".encode("latin-1"))
    files["empty_text"] = root / "empty.txt"
    files["empty_text"].write_text("")
    return files


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained tiny world pipeline folder (fast to load and to sample from)."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    try:
        main(["model", "init", "--size", "tiny", "--out", str(out)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out
