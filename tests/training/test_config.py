"""Recipe validation: every shipped YAML validates; bad keys and values are one clear error."""

from pathlib import Path

import pytest

from anyframe.errors import AnyframeInputError
from anyframe.training.config import RecipeConfig, config_differences, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS, "configs/ holds no recipe"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_validates(path):
    from anyframe.training.autoencoder import AutoencoderRecipe

    # autoencoder recipes (anyframe train-autoencoder) have their own schema
    schema = AutoencoderRecipe if "autoencoder" in path.name else RecipeConfig
    cfg = load_config(path, schema=schema)
    assert isinstance(cfg, schema)
    assert cfg.train.steps >= 1


def test_defaults_and_overrides():
    cfg = load_config(None, ["optim.lr=3e-4", "ema.enabled=false", "conditioning.task_weights.t2v=2", "data.toy.size=32"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.ema.enabled is False
    assert cfg.conditioning.task_weights == {"t2v": 2.0}
    assert cfg.data.toy.size == 32
    assert cfg.conditioning.text_dropout == 0.10 and cfg.conditioning.image_dropout == 0.08  # STIV defaults


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["optim.bogus=1"], "optim.bogus: unknown key"),
        (["bogus=1"], "bogus: unknown key"),
        (["optim.lr=abc"], "optim.lr"),
        (["optim.lr=-1"], "optim.lr"),
        (["optim.optimizer=sgd"], "optim.optimizer"),
        (["conditioning.text_dropout=1.5"], "text_dropout must be in [0, 1]"),
        (["conditioning.latent_shift=false"], "latent_shift does not apply to the frame_replacement method (an option of flashi2v)"),
        (["conditioning.task_weights.walk=1"], "task_weights"),
        (["model.preset=XL"], "model.preset"),
        (["model.pretrained=x"], "exactly one of model.preset and model.pretrained"),
        (["data.source=manifest"], "data.manifest is missing"),
        (["train.steps=0"], "train.steps"),
        (["train.steps"], "key.path=value"),
        (["optim=3"], "optim"),
        (["flow.object_weight=4"], "data.source toy does not give object_masks, which the frame_replacement+loss_weighting"),
        (["flow.object_weight=-1"], "object_weight must be ≥ 0"),
        (["flow.temporal_weight=-1"], "temporal_weight must be ≥ 0"),
    ],
)
def test_bad_configs_are_one_clear_error(overrides, fragment):
    with pytest.raises(AnyframeInputError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_bad_files(tmp_path):
    with pytest.raises(AnyframeInputError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed")
    with pytest.raises(AnyframeInputError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(AnyframeInputError, match="mapping"):
        load_config(listing)


def test_config_differences():
    a = load_config(None).to_dict()
    b = load_config(None, ["optim.lr=1", "train.steps=5"]).to_dict()
    assert config_differences(a, b) == ["optim.lr", "train.steps"]


def test_a_recipe_recorded_with_the_old_flat_conditioning_section_still_reads():
    # checkpoints record their recipe; before per-method options the section held every method's options at
    # their defaults, and flow held the world loss weights: such a record reads, and means the same run
    old = {"conditioning": {"method": "flashi2v", "clean_timestep": False, "text_dropout": 0.1, "image_dropout": 0.08,
                            "task_weights": {}, "max_k": None, "latent_shift": False, "fourier": True,
                            "detail_range": [0.05, 0.95]},
           "flow": {"sigma_distribution": "logit_normal", "object_weight": 0.0, "temporal_weight": 0.0}}
    cfg = RecipeConfig.model_validate(old)
    assert cfg.conditioning.method == "flashi2v" and cfg.conditioning.latent_shift is False
    assert "clean_timestep" not in cfg.to_dict()["conditioning"] and cfg.conditioning.addons == []
    weighted = RecipeConfig.model_validate({"data": {"source": "world"}, "flow": {"object_weight": 4.0}})
    assert weighted.conditioning.addons == [{"method": "loss_weighting", "object_weight": 4.0, "temporal_weight": 0.0}]
    assert config_differences(RecipeConfig.model_validate(cfg.to_dict()).to_dict(), cfg.to_dict()) == []
    with pytest.raises(ValueError, match="clean_timestep does not apply to the flashi2v method"):
        RecipeConfig.model_validate({"conditioning": {"method": "flashi2v", "clean_timestep": True}})
