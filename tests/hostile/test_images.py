"""Keyframe images that cannot be used: refused before any model loads, with the reason on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

BAD_FILES = {  # file → what the line must say
    "bomb": r"30000×30000|too large",
    "wide_bomb": r"200000×1 image is too elongated",
    "zero": r"empty|cannot read",
    "truncated": r"truncated|cannot read",
    "text": r"cannot read|not an image",
    "random_bytes": r"cannot read|not an image",
    "directory": r"folder|directory",
    "jpeg_header_only": r"truncated|cannot read",
    "binary": r"cannot read|not an image",
}
SUFFIXES = ["", "@0", "@-1", "@3"]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_image_file_is_refused(cli, hostile_files, kind, suffix):
    path = hostile_files[kind]
    named = () if kind == "wide_bomb" else (path.name,)  # (that one is named by its size: it is refused once fitted)
    cli.refuses(["generate", "-p", "a red circle moves left", "--image", f"{path}{suffix}"], BAD_FILES[kind], *named)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_image_beside_a_good_one_is_refused(cli, hostile_files, kind):
    cli.refuses(["generate", "--image", f"{hostile_files['good']}@0", "--image", f"{hostile_files[kind]}@-1"],
                BAD_FILES[kind])


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_image_to_narrate_is_refused(cli, hostile_files, kind):
    """``anyframe narrate`` reads its image as ``generate`` does: the same one line, before any narrator runs."""
    cli.refuses(["narrate", "--image", hostile_files[kind], "--prompt", "a red circle moves left"], BAD_FILES[kind])


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_image_to_score_is_refused(cli, hostile_files, kind):
    clip = Path(__file__).parents[2] / "checkpoints" / "anyframe-world-clip"
    cli.refuses(["clip", "score", "--clip", clip, "--image", hostile_files[kind], "--text", "a red circle"],
                BAD_FILES[kind])


def test_a_missing_image_is_named(cli, tmp_path):
    cli.refuses(["generate", "-p", "x", "--image", str(tmp_path / "nowhere.png")], r"not found", "nowhere.png")


BAD_INDICES = {
    "1.5": r"whole number|integer",
    "abc": r"whole number|integer",
    "": r"after @|index",
    "--1": r"whole number|integer",
    "1e3": r"whole number|integer",
    "0x10": r"whole number|integer",
    " ": r"whole number|integer|index",
    "9999": r"9999.*(frames|range)|out of range",
    "-9999": r"-9999.*(frames|range)|out of range",
    "99999999999999999999999": r"out of range|frames",
}


@pytest.mark.parametrize("index", sorted(BAD_INDICES))
def test_a_bad_frame_index_says_what_is_wrong_with_it(cli, hostile_files, index):
    cli.refuses(["generate", "-p", "x", "--image", f"{hostile_files['good']}@{index}"], BAD_INDICES[index])


def test_two_images_at_one_frame_are_refused(cli, hostile_files):
    good = hostile_files["good"]
    cli.refuses(["generate", "-p", "x", "--image", f"{good}@2", "--image", f"{good}@2"], r"frame 2|same frame|twice")


def test_two_images_at_one_frame_counted_from_both_ends_are_refused(cli, hostile_files):
    good = hostile_files["good"]
    cli.refuses(["generate", "-p", "x", "--image", f"{good}@-1", "--image", f"{good}@15"], r"same frame|twice|frame 15")
