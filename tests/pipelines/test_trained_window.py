"""A model's trained window: frame counts, sizes and strides outside what it was trained on are refused, naming the
window (or, asked for, warned about); training records the window in the exported model."""

from __future__ import annotations

import warnings

import pytest

from anyframe.errors import AnyframeInputError
from anyframe.pipelines import GenerationRequest, build_world_pipeline
from anyframe.training.build import data_window, merge_windows
from anyframe.training.config import RecipeConfig

WINDOW = {"frames": [8], "sizes": [[16, 16]], "frame_strides": [1.0, 2.0]}


@pytest.fixture(scope="module")
def pipe():
    pipe = build_world_pipeline("tiny", seed=0)
    pipe.transformer.register_to_config(trained_window=WINDOW)
    return pipe


def test_inside_the_window_is_accepted(pipe):
    request = pipe.validate(GenerationRequest(prompt="a red circle moves left", num_frames=8, height=16, width=16,
                                              frame_stride=1.5))
    assert request.num_frames == 8


@pytest.mark.parametrize(("fields", "named"), [
    (dict(num_frames=12), r"12 frames \(trained on 8\)"),
    (dict(height=32, width=32), r"32×32 px \(trained on 16×16\)"),
    (dict(height=16, width=32), r"16×32 px"),
    (dict(frame_stride=3.0), r"frame stride 3 \(trained on 1–2\)"),
    (dict(num_frames=4, height=32, width=32), r"4 frames .*; 32×32 px"),
])
def test_outside_the_window_is_one_error_naming_it(pipe, fields, named):
    with pytest.raises(AnyframeInputError, match=named) as info:
        pipe.validate(GenerationRequest(prompt="a red circle moves left", **{"height": 16, "width": 16, **fields}))
    assert "--beyond-training" in str(info.value) and "\n" not in str(info.value)
    assert ("long video" in str(info.value)) == ("num_frames" in fields)  # only a frame count waits on long video


def test_beyond_training_warns_instead(pipe):
    with pytest.warns(UserWarning, match="12 frames"):
        request = pipe.validate(GenerationRequest(prompt="a red circle", num_frames=12, beyond_training=True))
    assert request.num_frames == 12
    with pytest.raises(AnyframeInputError, match="beyond_training"):
        pipe.validate(GenerationRequest(prompt="a red circle", beyond_training="yes"))


def test_a_model_without_a_recorded_window_is_not_checked():
    pipe = build_world_pipeline("tiny", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.validate(GenerationRequest(prompt="a red circle", num_frames=12, height=48, width=48))


def test_training_records_the_data_window_and_a_fine_tune_adds_to_it():
    cfg = RecipeConfig.model_validate({"data": {"source": "world", "world": {"frames": 16, "size": 32}}})
    assert data_window(cfg) == {"frames": [16], "sizes": [[32, 32]], "frame_strides": [1.0, 1.0]}
    assert merge_windows(None, data_window(cfg)) == data_window(cfg)
    merged = merge_windows(WINDOW, data_window(cfg))
    assert merged == {"frames": [8, 16], "sizes": [[16, 16], [32, 32]], "frame_strides": [1.0, 2.0]}
    assert "sizes" not in merge_windows({"frames": [8]}, data_window(cfg))  # unknown before: not checked


def test_the_cli_refuses_outside_the_shipped_window_and_model_info_shows_it(tmp_path, capsys):
    from anyframe.cli import main

    with pytest.raises(SystemExit) as info:
        main(["generate", "-p", "a red circle moves left", "--num-frames", "24", "--out", str(tmp_path / "a.mp4")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "24 frames (trained on 16)" in err and "--beyond-training" in err
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as info:
        main(["model", "info"])
    assert info.value.code == 0
    assert "trained on: 16 frames; 32×32 px; frame stride 1" in capsys.readouterr().out
