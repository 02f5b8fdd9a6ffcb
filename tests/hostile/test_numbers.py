"""Numbers a command cannot use (out-of-range seeds, non-finite or zero rates and scales, sizes no machine holds):
refused on one line that names the flag, the value and what is allowed — before anything is written."""

from __future__ import annotations

import itertools

import pytest

BAD_SEEDS = [-1, -(2**70), 2**63, 2**70]
SEED_RULE = r"--seed.*0\.\.(2\^63|9223372036854775807)"

# each command with the smallest arguments that would otherwise run it, and where its seed goes
COMMANDS_WITH_A_SEED = {
    "generate": ["generate", "-p", "a red circle moves left", "--seed"],
    "eval": ["eval", "--model", "truth", "--suite", "smoke", "--out", "report", "--seed"],
    "world render": ["world", "render", "--out", "clip", "--seed"],
    "world sample": ["world", "sample", "--n", "2", "--out", "suite.jsonl", "--seed"],
    "model init": ["model", "init", "--size", "tiny", "--out", "model", "--seed"],
}


@pytest.mark.parametrize("seed", BAD_SEEDS)
@pytest.mark.parametrize("command", sorted(COMMANDS_WITH_A_SEED))
def test_a_seed_out_of_range_is_refused(cli, command, seed):
    cli.refuses([*COMMANDS_WITH_A_SEED[command], str(seed)], SEED_RULE, str(seed))


@pytest.mark.parametrize("seed", [*BAD_SEEDS, "1.5", "abc", "[1]"])
def test_a_recipe_seed_out_of_range_is_refused(cli, seed):
    cli.refuses(["train", "--check", "--set", f"seed={seed}"], r"seed")


BAD_FPS = ["nan", "inf", "-inf", "0", "-1", "0.0", "1e9"]


@pytest.mark.parametrize("fps", BAD_FPS)
def test_generate_refuses_a_bad_frame_rate(cli, fps):
    cli.refuses(["generate", "-p", "a red circle moves left", "--fps", fps], r"--fps", r"\(0, 1000\]|between|positive")


@pytest.mark.parametrize("fps", BAD_FPS)
def test_world_render_refuses_a_bad_frame_rate(cli, fps):
    cli.refuses(["world", "render", "--seed", "3", "--out", "clip", "--fps", fps], r"--fps")


NON_FINITE = ["nan", "inf", "-inf", "NaN", "Infinity"]
FLOAT_FLAGS = ["--guidance", "--image-guidance", "--detail"]


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("flag", FLOAT_FLAGS)
def test_generate_refuses_a_non_finite_scale(cli, flag, value):
    cli.refuses(["generate", "-p", "a red circle moves left", flag, value], flag, r"finite|\[0, 1\]")


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("flag", ["--guidance", "--detail"])
def test_eval_refuses_a_non_finite_scale(cli, flag, value):
    cli.refuses(["eval", "--model", "truth", "--suite", "smoke", "--out", "report", flag, value], flag)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_model_init_refuses_a_bad_shift(cli, value):
    cli.refuses(["model", "init", "--size", "tiny", "--out", "model", "--shift", value], "--shift")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_method_option_must_be_finite(cli, value):
    cli.refuses(["generate", "-p", "a red circle moves left", "--option", f"detail={value}"], r"detail")


# sizes: the limits are named (a fixed cap, or what this machine's memory holds)
HUGE = {
    "--steps": ["0", "-1", "1000000000", "1000000000000"],
    "--num-frames": ["0", "-1", "1000000", "1000000000"],
    "--width": ["0", "-32", "1000000", "1000000000"],
    "--height": ["0", "-32", "1000000", "1000000000"],
}


@pytest.mark.parametrize(("flag", "value"), [(f, v) for f, values in HUGE.items() for v in values])
def test_generate_refuses_a_size_that_cannot_run(cli, flag, value):
    cli.refuses(["generate", "-p", "a red circle moves left", flag, value], flag.lstrip("-").replace("-", "[-_ ]"))


@pytest.mark.parametrize(("frames", "size"), [(4096, 4096), (100_000, 64), (64, 100_000)])
def test_generate_names_the_memory_a_size_needs(cli, frames, size):
    cli.refuses(["generate", "-p", "a red circle moves left", "--num-frames", str(frames), "--height", str(size),
                 "--width", str(size)], r"memory|at most")


WORLD_SIZES = {  # command → flag → values
    ("world", "render", "--seed", "1", "--out", "clip"): {"--size": ["0", "7", "9", "100000"], "--frames": ["0", "-1", "1000000"]},
    ("world", "sample", "--n", "2", "--out", "suite.jsonl"): {"--size": ["0", "7", "9", "100000"], "--frames": ["0", "-1", "1000000"],
                                                             "--n": ["0", "-5", "1000000000"]},
}


@pytest.mark.parametrize(("command", "flag", "value"),
                         [(c, f, v) for c, flags in WORLD_SIZES.items() for f, values in flags.items() for v in values])
def test_world_commands_refuse_sizes_out_of_range(cli, command, flag, value):
    cli.refuses([*command, flag, value], flag)


@pytest.mark.parametrize("value", ["0", "-3", "1000000000"])
def test_eval_refuses_a_bad_subset_size(cli, value):
    cli.refuses(["eval", "--model", "truth", "--suite", "smoke", "--out", "report", "--n", value], "--n")


RECIPE_VALUES = {
    "optim.lr": ["inf", "nan", ".inf", "-.inf", "0", "-1e-3", "abc"],
    "optim.eps": ["nan", ".inf"],
    "optim.betas": ["[.nan, 0.9]", "[0.9]", "abc"],
    "flow.shift": [".nan", ".inf"],
    "flow.logit_mean": [".nan", ".inf"],
    "ema.decay": [".nan", "1.5"],
    "sample.guidance_scale": [".nan", ".inf"],
    "train.steps": ["-3", "0", "abc", "1.5", "1e30"],
    "data.batch_size": ["0", "-1", "abc", "1000000000"],
    "data.toy.size": ["0", "1000000"],
    "data.toy.num_frames": ["0", "1000000"],
    "data.world.size": ["7", "1000000"],
    "data.world.frames": ["0", "1000000"],
    "model.shift": [".nan", ".inf", "0"],
    "model.backbone.num_layers": ["-3", "0", "abc", "1.5", "[1]"],
    "model.backbone.hidden_size": ["-64", "abc"],
    "model.backbone.not_a_key": ["3"],
}


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, values in RECIPE_VALUES.items() for v in values])
def test_a_recipe_value_that_cannot_train_is_refused(cli, key, value):
    cli.refuses(["train", "--check", "--set", f"{key}={value}"], key.rsplit(".", 1)[-1])


BAD_FLAGS = [("--seed", "-1"), ("--fps", "nan"), ("--guidance", "inf"), ("--steps", "0"), ("--num-frames", "-4"),
             ("--detail", "2"), ("--width", "1000000000"), ("--sampler", "ddim"), ("--guidance-mode", "magic")]


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(BAD_FLAGS, 2)),
                         ids=lambda pair: "=".join(pair))
def test_several_bad_flags_give_one_line_about_one_of_them(cli, first, second):
    outcome = cli.refuses(["generate", "-p", "a red circle moves left", *first, *second])
    assert first[0] in outcome.err or second[0] in outcome.err
