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
    "AttackConfig": ".configs", "ClassGMM": ".gmm", "ClipagError": ".errors", "DrawConfig": ".configs",
    "GenerateConfig": ".configs", "GenerationResult": ".generate", "Guide": ".guide", "ModelSpec": ".registry",
    "StyleConfig": ".configs", "VQGANCLIPConfig": ".configs", "ViewConfig": ".configs",
    "draw": ".draw", "export_model": ".hub", "fit_gmm": ".gmm", "generate": ".generate",
    "generate_to_folder": ".generate", "list_models": ".registry", "load_model": ".loading", "pgd": ".attack",
    "push_to_hub": ".hub", "register_model": ".registry", "style": ".style", "vqgan_clip": ".vqgan",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
