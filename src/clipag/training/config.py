"""Settings of a training run, with the paper's defaults, and their checks."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..configs import AttackConfig
from ..errors import SEED_MAX, ClipagError, check_finite, check_types

OBJECTIVES = ("clipag", "tecoa", "fare", "align", "clean")
UNATTACKED = ("clean", "align")  # objectives that train on clean pictures only
NEGATIVES = ("local", "global")
PRECISIONS = ("fp32", "bf16", "fp16")
# Settings that decide what the run computes: resuming with another value is refused unless
# allow_changed_settings. The others (steps, the optimiser's lr, decay, warmup and clipping, how the
# batch is split over ranks and micro-batches, devices, workers, logging and saving) may change and
# are reported; the optimiser's state carries over and the lr schedule follows the new values.
RESUME_FIXED = ("model", "data", "objective", "attack", "batch_size", "seed", "negatives", "train_text",
                "precision", "csv_img_key", "csv_caption_key", "tecoa_template", "augment",
                "align_weight")
NOT_COMPARED = ("resume", "allow_changed_settings")


@dataclass
class AugmentConfig:
    """What `--augment` does to each training picture; 0 (or False) turns an operation off."""
    zoom_in: float = 1.5  # largest zoom: 1.5 shows 1/1.5 of the side (a square random resized crop)
    zoom_out: float = 0.6  # smallest zoom: the picture shrunk to 0.6 of the side, on the background
    shift: float = 0.15  # largest shift, a share of the side, each way
    rotate: float = 15.0  # largest rotation in degrees, either way
    flip: bool = False  # horizontal flips; off by default (arrows, text)
    background: float = 0.8  # share of pictures on a random background (half solid, half gradient), else white
    brightness: float = 0.2  # added, U(-b, b)
    contrast: float = 0.3  # factor U(1-c, 1+c)
    saturation: float = 0.4  # factor U(1-s, 1+s)
    blur: float = 0.2  # share of pictures blurred, sigma U(0.3, 1.2) px
    down_up: float = 0.2  # share of pictures resized to 1/3 or 1/2 of the side and back (bilinear)

    def validate(self) -> None:
        check_finite(self)
        if not (self.zoom_in >= 1 and 0 < self.zoom_out <= 1):
            raise ClipagError(f"augment zoom_in must be >= 1 and zoom_out in (0, 1], got {self.zoom_in}, {self.zoom_out}")
        shares = {"shift": self.shift, "background": self.background, "brightness": self.brightness,
                  "contrast": self.contrast, "saturation": self.saturation, "blur": self.blur, "down_up": self.down_up}
        for name, value in shares.items():
            if not 0 <= value <= 1:
                raise ClipagError(f"augment {name} must be between 0 and 1, got {value}")
        if not 0 <= self.rotate <= 180:
            raise ClipagError(f"augment rotate must be 0 to 180 degrees, got {self.rotate}")



@dataclass
class TrainConfig:
    """Every setting of a `clipag train` run (also its JSON --config and settings.json): model, data,
    objective, attack, optimiser, schedule, batch and accumulation, augmentation, checkpoints, scale."""
    model: str  # reference of the model to start from (see clipag.models.loading)
    data: list[str]  # data sources (see clipag.data.pairs), each optionally SPEC@FRACTION
    out: str  # run folder: settings, logs, checkpoints, exported model
    objective: str = "clipag"
    attack: AttackConfig = field(default_factory=AttackConfig)
    augment: Optional[AugmentConfig] = None  # None: pictures as they are; see .augment
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
    align_weight: float = 15.0  # align: weight of the gradient misalignment (royg27/PAG-ROB: 1.5 x 10)
    allow_changed_settings: bool = False  # resume even when a RESUME_FIXED setting changed

    @property
    def text_trainable(self) -> bool:
        return self.objective == "clean" if self.train_text is None else self.train_text

    @property
    def warmup(self) -> int:
        return round(0.05 * self.steps) if self.warmup_steps is None else self.warmup_steps

    def validate(self, world_size: int = 1) -> None:
        check_types(self, "fix the recipe or the option")
        check_types(self.attack, "fix the recipe or the option")
        numbers = {"lr": self.lr, "weight-decay": self.weight_decay, "grad-clip": self.grad_clip,
                   "align-weight": self.align_weight,
                   "eps": self.attack.eps, "step-size": self.attack.step_size}
        for name, value in numbers.items():
            if value is not None and not math.isfinite(value):
                raise ClipagError(f"{name} must be a finite number, got {value}; fix the recipe or the option")
        if self.objective not in OBJECTIVES:
            raise ClipagError(f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        if self.objective != "clean":
            self.attack.validate()
        if self.augment is not None:
            check_types(self.augment, "fix the recipe or the option")
            self.augment.validate()
        if self.negatives not in NEGATIVES:
            raise ClipagError(f"unknown negatives {self.negatives!r}; use local or global")
        if not self.data:
            raise ClipagError("no training data; pass --data PATH (CSV/TSV, tar shards or a captioned folder)")
        for name in ("batch_size", "accum_steps", "steps", "save_every", "log_every", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ClipagError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        for name in ("workers", "warmup_steps"):
            if (getattr(self, name) or 0) < 0:
                raise ClipagError(f"{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ClipagError(f"seed {self.seed} is out of range; use 0 to {SEED_MAX}")
        if self.precision not in PRECISIONS:
            raise ClipagError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        per_step = world_size * self.accum_steps
        if self.batch_size % per_step:
            raise ClipagError(
                f"batch size {self.batch_size} does not divide across {world_size} rank(s) x "
                f"{self.accum_steps} accumulation step(s); use a multiple of {per_step}")
        if not 0 < self.lr <= 1:  # AdamW moves a weight by up to lr a step: above 1 is never useful
            raise ClipagError(f"learning rate must be positive and at most 1, got {self.lr}")
        if self.weight_decay < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ClipagError("weight decay must be >= 0 and gradient clipping > 0")
        if self.align_weight < 0:
            raise ClipagError(f"align-weight must be 0 or more, got {self.align_weight}")

    def micro_batch(self, world_size: int) -> int:
        """Images per micro-batch on one rank."""
        return self.batch_size // (world_size * self.accum_steps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> "TrainConfig":
        settings = dict(settings)
        attack = settings.pop("attack", {})
        augment = settings.pop("augment", None)
        augment = {} if augment is True else augment  # "augment": true in a recipe: the defaults
        for name, kind, given in (("attack", AttackConfig, attack), ("augment", AugmentConfig, augment or {})):
            if not isinstance(given, dict):
                raise ClipagError(f"the {name} setting must be an object of {_names(kind)}, got {given!r}")
        for kind, given in ((AttackConfig, attack), (AugmentConfig, augment or {}), (cls, settings)):
            unknown = set(given) - {f.name for f in dataclasses.fields(kind)}
            if unknown:
                what = {AttackConfig: "attack", AugmentConfig: "augment"}.get(kind, "training")
                raise ClipagError(f"unknown {what} settings {sorted(unknown)}; see `clipag train --help`")
        augment = None if augment is None or augment is False else AugmentConfig(**augment)
        return cls(attack=AttackConfig(**attack), augment=augment, **settings)


def changed_settings(stored: dict, config: TrainConfig) -> dict[str, list]:
    """Settings a checkpoint was made with that `config` changes: {"steps": [4, 8], "attack.eps": [...]}.

    Settings the checkpoint does not record (made by an older version) are not compared."""
    old, new = _flat(_effective(stored)), _flat(_effective(config.to_dict()))
    return {name: [old.get(name), new.get(name)] for name in sorted(old.keys() & new.keys())
            if name.split(".")[0] not in NOT_COMPARED and old.get(name) != new.get(name)}


def fixed_changes(changes: dict[str, list]) -> dict[str, list]:
    """The changes that alter what a resumed run computes (see RESUME_FIXED)."""
    return {name: change for name, change in changes.items() if name.split(".")[0] in RESUME_FIXED}


def describe_changes(changes: dict[str, list]) -> str:
    """'steps 4 -> 8, attack.eps 1.5 -> 0.5'."""
    show = lambda value: json.dumps(value, default=str)
    return ", ".join(f"{name.replace('_', '-')} {show(a)} -> {show(b)}" for name, (a, b) in changes.items())


def _effective(settings: dict) -> dict:
    """Settings with defaults that depend on others resolved (train_text None: only for clean)."""
    settings = dict(settings)
    if settings.get("train_text") is None and "objective" in settings:
        settings["train_text"] = settings["objective"] == "clean"
    augment = settings.get("augment")  # absent (older versions, which had none) or None: off
    settings["augment"] = {"enabled": True, **augment} if isinstance(augment, dict) else {"enabled": False}
    return settings


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _names(kind) -> str:
    return ", ".join(f.name for f in dataclasses.fields(kind))


def read_recipe(path: str | Path) -> dict:
    """A recipe file: JSON whose keys are `clipag train` option names (dashes or underscores)."""
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ClipagError(f"cannot read recipe {path} ({err}); give a JSON file of training options") from None
    if not isinstance(recipe, dict):
        raise ClipagError(f"recipe {path} must be a JSON object of option names to values")
    return {key.replace("-", "_"): value for key, value in recipe.items() if not key.startswith("_")}
