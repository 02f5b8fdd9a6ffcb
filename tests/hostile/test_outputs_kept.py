"""A failed ``generate`` leaves every existing output as it was; a successful one replaces the video and its
filmstrip together. (The other refusals' "nothing changed" is checked by every case of the corpus.)"""

from __future__ import annotations

import os

import pytest

import anyframe.io


def _existing(cwd):
    (cwd / "out.mp4").write_bytes(b"an earlier video")
    (cwd / "out.png").write_bytes(b"an earlier filmstrip")


@pytest.mark.parametrize("failing", ["write_mp4", "write_filmstrip"])
def test_a_writer_that_fails_leaves_the_earlier_outputs(cli, tiny_model, monkeypatch, failing):
    _existing(cli.cwd)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(anyframe.io, failing, fail)  # (the CLI imports its writers when it runs)
    cli.refuses(["generate", "--model", tiny_model, "-p", "a red circle moves left", "--steps", "1", "--out", "out.mp4"],
                r"cannot write out.mp4", r"No space left")


def test_a_failure_in_the_second_rename_puts_the_first_file_back(cli, tiny_model, monkeypatch):
    _existing(cli.cwd)
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(str(dst))
        if str(dst).endswith("out.png") and not str(src).endswith(".bak"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    cli.refuses(["generate", "--model", tiny_model, "-p", "a red circle moves left", "--steps", "1", "--out", "out.mp4"],
                r"cannot write out.mp4")
    assert any(c.endswith("out.mp4") for c in calls)  # the video had been renamed into place, then rolled back


def test_a_successful_run_replaces_both_outputs(cli, tiny_model):
    _existing(cli.cwd)
    outcome = cli(["generate", "--model", tiny_model, "-p", "a red circle moves left", "--steps", "1", "--out", "out.mp4"])
    assert outcome.code == 0, outcome.err
    assert (cli.cwd / "out.mp4").read_bytes()[4:8] == b"ftyp"
    assert (cli.cwd / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in cli.cwd.iterdir()) == ["out.mp4", "out.png"]  # no temporaries left behind
