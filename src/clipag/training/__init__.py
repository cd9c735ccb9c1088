"""Adversarial vision-language fine-tuning (`clipag train`): config, objectives, loop, checkpoints."""
from .config import OBJECTIVES, TrainConfig, read_recipe
from .loop import train

__all__ = ["OBJECTIVES", "TrainConfig", "read_recipe", "train"]
