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
    "AttackConfig": ".configs", "DrawConfig": ".configs", "GenerateConfig": ".configs", "StyleConfig": ".configs",
    "VQGANCLIPConfig": ".configs", "ViewConfig": ".configs", "ClipagError": ".errors", "pgd": ".attack",
    "Guide": ".models.guide", "load_model": ".models.loading", "export_model": ".models.hub",
    "push_to_hub": ".models.hub", "ModelSpec": ".models.registry", "list_models": ".models.registry",
    "register_model": ".models.registry", "ClassGMM": ".generation.gmm", "fit_gmm": ".generation.gmm",
    "GenerationResult": ".generation.generate", "generate": ".generation.generate",
    "generate_to_folder": ".generation.generate", "draw": ".tools.draw", "style": ".tools.style",
    "vqgan_clip": ".tools.vqgan",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
