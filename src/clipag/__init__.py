"""clipag: CLIP models with Perceptually Aligned Gradients, and what they make possible.

    import clipag
    guide = clipag.Guide.from_pretrained("clipag-vit-b-32", device="cuda")
    result = clipag.generate(guide, "a red apple", seed=0)

Names are imported on first use, so `import clipag` is fast until one that needs torch is touched.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from ._lazy import lazy_exports

try:
    __version__ = _version("clipag")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "ClassGMM": ".gmm", "ClipagError": ".errors", "GenerateConfig": ".configs", "GenerationResult": ".generate",
    "Guide": ".guide", "ModelSpec": ".registry", "ViewConfig": ".configs", "fit_gmm": ".gmm",
    "generate": ".generate", "generate_to_folder": ".generate", "list_models": ".registry",
    "load_model": ".loading", "register_model": ".registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
