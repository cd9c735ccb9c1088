"""Named models: what `--model NAME` means, where each one's weights live, and whether they are here.

A name maps to an OpenCLIP architecture plus a source of weights: an OpenCLIP pretrained tag, or a
file that clipag looks for in its model folder (`$CLIPAG_HOME/models`, default `~/.cache/clipag/models`).
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


def spec_file(spec: ModelSpec) -> Optional[Path]:
    return model_dir() / spec.filename if spec.filename else None


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
