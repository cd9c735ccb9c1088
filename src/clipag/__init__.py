"""clipag: CLIP models with Perceptually Aligned Gradients, and what they make possible.

    import clipag
    guide = clipag.Guide.from_pretrained("clipag-vit-b-32", device="cuda")
    result = clipag.generate(guide, "a red apple", seed=0)
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .augment import ViewConfig
from .errors import ClipagError
from .generate import GenerateConfig, GenerationResult, generate, generate_to_folder
from .gmm import ClassGMM, fit_gmm
from .guide import Guide
from .loading import load_model
from .registry import ModelSpec, list_models, register_model

try:
    __version__ = _version("clipag")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ClassGMM", "ClipagError", "GenerateConfig", "GenerationResult", "Guide", "ModelSpec", "ViewConfig",
    "fit_gmm", "generate", "generate_to_folder", "list_models", "load_model", "register_model",
]
