"""Settings of a training run, with the paper's defaults, and their checks."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..attack import AttackConfig
from ..errors import ClipagError

OBJECTIVES = ("clipag", "tecoa", "fare", "clean")
NEGATIVES = ("local", "global")


@dataclass
class TrainConfig:
    model: str  # reference of the model to start from (see clipag.loading)
    data: list[str]  # data sources (see clipag.data), each optionally SPEC@FRACTION
    out: str  # run folder: settings, logs, checkpoints, exported model
    objective: str = "clipag"
    attack: AttackConfig = field(default_factory=AttackConfig)
    batch_size: int = 256  # global: images per optimiser step, over all ranks and micro-batches
    accum_steps: int = 1  # micro-batches per optimiser step (the paper: 10)
    steps: int = 1000  # optimiser steps
    lr: float = 2e-5
    weight_decay: float = 1e-4
    warmup_steps: Optional[int] = None  # None = 5% of the steps
    grad_clip: Optional[float] = 1.0
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    negatives: str = "local"  # contrastive negatives under DDP: this rank's, or gathered from all ranks
    train_text: Optional[bool] = None  # None: only for `clean` (CLIPAG, TeCoA and FARE freeze the text)
    workers: int = 2
    cache_images: bool = False  # keep decoded images in memory (small map-style datasets)
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: Optional[str] = None  # "latest" or a checkpoint path
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    tecoa_template: str = "a photo of a {}."

    @property
    def text_trainable(self) -> bool:
        return self.objective == "clean" if self.train_text is None else self.train_text

    @property
    def warmup(self) -> int:
        return round(0.05 * self.steps) if self.warmup_steps is None else self.warmup_steps

    def validate(self, world_size: int = 1) -> None:
        if self.objective not in OBJECTIVES:
            raise ClipagError(f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        if self.objective != "clean":
            self.attack.validate()
        if self.negatives not in NEGATIVES:
            raise ClipagError(f"unknown negatives {self.negatives!r}; use local or global")
        if not self.data:
            raise ClipagError("no training data; pass --data PATH (CSV/TSV, tar shards or a captioned folder)")
        for name in ("batch_size", "accum_steps", "steps", "save_every", "log_every", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ClipagError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        per_step = world_size * self.accum_steps
        if self.batch_size % per_step:
            raise ClipagError(
                f"batch size {self.batch_size} does not divide across {world_size} rank(s) x "
                f"{self.accum_steps} accumulation step(s); use a multiple of {per_step}")
        if not self.lr > 0:
            raise ClipagError(f"learning rate must be positive, got {self.lr}")
        if self.weight_decay < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ClipagError("weight decay must be >= 0 and gradient clipping > 0")

    def micro_batch(self, world_size: int) -> int:
        """Images per micro-batch on one rank."""
        return self.batch_size // (world_size * self.accum_steps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> "TrainConfig":
        settings = dict(settings)
        attack = AttackConfig(**settings.pop("attack", {}))
        unknown = set(settings) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ClipagError(f"unknown training settings {sorted(unknown)}; see `clipag train --help`")
        return cls(attack=attack, **settings)


def read_recipe(path: str | Path) -> dict:
    """A recipe file: JSON whose keys are `clipag train` option names (dashes or underscores)."""
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ClipagError(f"cannot read recipe {path} ({err}); give a JSON file of training options") from None
    if not isinstance(recipe, dict):
        raise ClipagError(f"recipe {path} must be a JSON object of option names to values")
    return {key.replace("-", "_"): value for key, value in recipe.items() if not key.startswith("_")}
