"""Adversarial vision-language fine-tuning (`clipag train`): config, objectives, loop, checkpoints."""
from .._lazy import lazy_exports

_EXPORTS = {"OBJECTIVES": ".config", "TrainConfig": ".config", "read_recipe": ".config", "train": ".loop"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
