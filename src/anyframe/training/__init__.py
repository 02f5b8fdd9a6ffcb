"""Training: the recipe (a linear loop on accelerate), configs, checkpoints, optimizers, progressive init."""

from anyframe.training.config import RecipeConfig, load_config

__all__ = ["RecipeConfig", "load_config"]
