"""Named models: what `--model NAME` means, where each one's weights live, and whether they are here.

A name maps to an OpenCLIP architecture plus a source of weights: an OpenCLIP pretrained tag, a file
that clipag looks for in its model folder (`$CLIPAG_HOME/models`, default `~/.cache/clipag/models`), or
a model folder that ships inside the package (`clipag/assets/models/NAME/`: the small emoji models
trained by this project, so that a machine with no internet has real weights). A shipped folder is an
OpenCLIP `local-dir:` folder with a Hub model card (see clipag.models.hub): OpenCLIP loads it without
clipag, except a CLIPAG model that shares its frozen text tower with the clean model it started from:
its folder holds only the image tower (see clipag.models.towers), and `clipag export` writes it whole.
A model may name a default GMM file (in `clipag/assets/gmm/`) that `clipag generate --init gmm`
starts from when no --gmm is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str  # OpenCLIP architecture (a built-in config or one of clipag's model_configs)
    description: str
    pretrained: Optional[str] = None  # OpenCLIP pretrained tag, resolved through OpenCLIP's cache
    filename: Optional[str] = None  # weights file looked for in model_dir()
    url: Optional[str] = None  # where a person can download `filename`
    size_bytes: Optional[int] = None
    checksum: Optional[str] = None  # "md5:HEX" or "sha256:HEX" of `filename`; None = the publisher's record (Zenodo)
    folder: Optional[str] = None  # a model folder shipped in clipag/assets/models/ (local-dir: layout)
    gmm: Optional[str] = None  # default GMM file in clipag/assets/gmm/ for --init gmm
    text_from: Optional[str] = None  # a shipped model whose text tower this one shares (see models.towers)

    @property
    def bundled(self) -> bool:
        return self.folder is not None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model name {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> Optional[ModelSpec]:
    return _REGISTRY.get(name)


def model_dir() -> Path:
    """Where named models' weight files are looked for: `$CLIPAG_HOME/models`."""
    home = os.environ.get("CLIPAG_HOME") or Path.home() / ".cache" / "clipag"
    return Path(home) / "models"


ASSETS = Path(__file__).parent.parent / "assets"
IMAGE_TOWER_NAME = "image_tower.safetensors"  # a shipped model stored as its image tower (models.towers)


def spec_file(spec: ModelSpec) -> Optional[Path]:
    """The weights file of a named model (None for an OpenCLIP pretrained tag)."""
    if spec.folder:
        return spec_folder(spec) / (IMAGE_TOWER_NAME if spec.text_from else "open_clip_model.safetensors")
    return model_dir() / spec.filename if spec.filename else None


def spec_folder(spec: ModelSpec) -> Optional[Path]:
    """The shipped model folder of a named model, or None."""
    return ASSETS / "models" / spec.folder if spec.folder else None


def spec_card(spec: ModelSpec) -> Optional[Path]:
    """The model card of a shipped model (its folder's README.md), or None."""
    return spec_folder(spec) / "README.md" if spec.folder else None


TINY_IMAGENET_GMM = "tiny-imagenet-16px.safetensors"  # in model_dir(): the official notebook's prior


def tiny_imagenet_gmm() -> Path:
    return model_dir() / TINY_IMAGENET_GMM


def default_gmm(reference: str) -> Optional[Path]:
    """The GMM file a model starts generation from: a named model's own, else the Tiny-ImageNet GMM of
    the model folder when it has been made (the GMM is an image prior: any model can use it), else None."""
    spec = get_spec(reference)
    if spec is not None and spec.gmm:
        return ASSETS / "gmm" / spec.gmm
    return tiny_imagenet_gmm() if tiny_imagenet_gmm().is_file() else None


def missing_gmm_message(reference: str) -> Optional[str]:
    """For a named model that should start from the Tiny-ImageNet GMM and cannot: how to make it."""
    if get_spec(reference) is None or default_gmm(reference) is not None:
        return None
    path = tiny_imagenet_gmm()
    return (f"{reference} starts from the Tiny-ImageNet GMM, and {path} is missing; make it with "
            f"`clipag gmm fit hf:Maysee/tiny-imagenet --out {path}` (pip install 'clipag[data]'; or a "
            f"tiny-imagenet-200 folder instead of hf:...), or pass --gmm FILE or --init noise")


register_model(ModelSpec(
    name="clipag-vit-b-32",
    arch="ViT-B-32",
    description="official CLIPAG ViT-B/32 (Ganz & Elad, WACV 2024), L2 eps 1.5 from laion2b_s34b_b79k",
    filename="CLIPAG_ViTB32.pt",
    url="https://zenodo.org/records/10446026/files/CLIPAG_ViTB32.pt",
    size_bytes=1_310_567_621,
))
register_model(ModelSpec(
    name="clip-vit-b-32",
    arch="ViT-B-32",
    description="OpenCLIP ViT-B/32 laion2b_s34b_b79k, the vanilla model CLIPAG starts from",
    pretrained="laion2b_s34b_b79k",
))

EMOJI_GMM = "emoji-subcategories-16px.safetensors"
register_model(ModelSpec(
    name="clipag-emoji",
    arch="emoji-resnet-32-w64",
    description="CLIPAG fine-tune (L2 PGD, radii 1 -> 4 at 32 px) of a 2x wider image tower beside clip-emoji's "
                "frozen text tower, trained by this project on ten openly licensed emoji styles; ships here",
    folder="clipag-emoji", gmm=EMOJI_GMM, text_from="clip-emoji",
))
register_model(ModelSpec(
    name="clip-emoji",
    arch="emoji-resnet-32",
    description="vanilla CLIP (ResNet, 32 px) trained from scratch by this project on ten openly licensed "
                "emoji styles; ships here",
    folder="clip-emoji", gmm=EMOJI_GMM,
))
register_model(ModelSpec(
    name="emoji-judge",
    arch="emoji-resnet-64",
    description="independent evaluator of emoji images (64 px, another width, text tower and seed than the "
                "guides), never a guide; ships here",
    folder="emoji-judge",
))
