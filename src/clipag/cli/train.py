"""`clipag train`: adversarial vision-language fine-tuning (also `torchrun ... -m clipag.train`)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import ClipagError
from ..training.config import OBJECTIVES, TrainConfig, read_recipe
from .args import non_negative_float, non_negative_int, positive_float, positive_int, seed


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a CLIP image tower adversarially (CLIPAG) or cleanly",
        description="Fine-tune an OpenCLIP model. The default is the paper's recipe: PGD images that "
                    "maximise the contrastive loss, the image tower trained on them, the text tower frozen. "
                    "Under torchrun the same options run on every rank.")
    add_arguments(p)
    p.set_defaults(run=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig(model="", data=[], out="")
    p.add_argument("--config", help="a JSON recipe of these options (see recipes/); command-line options win")
    p.add_argument("--model", help="model to start from, e.g. ViT-B-32:laion2b_s34b_b79k (see `clipag models`)")
    p.add_argument("--data", action="append", help="a source: CSV/TSV, tar shards (dir/{00000..00099}.tar), "
                   "or a folder of images with .txt captions; add @FRACTION to subsample; repeat to mix")
    p.add_argument("--out", help="run folder for settings, log.csv, checkpoints and the exported model")
    p.add_argument("--objective", choices=OBJECTIVES, help=f"training objective (default {d.objective})")
    p.add_argument("--norm", choices=("l2", "linf"), help="attack threat model (default l2)")
    p.add_argument("--eps", type=positive_float, help="attack radius: l2 in [0,1] pixels (default 1.5), linf in /255 units")
    p.add_argument("--attack-steps", type=positive_int, help="PGD steps (default 5)")
    p.add_argument("--step-size", type=positive_float, help="PGD step, in eps's units (default 2.5 * eps / steps)")
    p.add_argument("--attack-momentum", type=non_negative_float,
                   help="PGD momentum on normalised gradients (default 0; RobustVLM's recipes: 0.9)")
    p.add_argument("--batch-size", type=positive_int, help=f"images per optimiser step over all ranks (default {d.batch_size})")
    p.add_argument("--accum-steps", type=positive_int, help="micro-batches per optimiser step (default 1; the paper 10)")
    p.add_argument("--steps", type=positive_int, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--lr", type=positive_float, help=f"AdamW learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=non_negative_float, help=f"AdamW weight decay (default {d.weight_decay})")
    p.add_argument("--warmup-steps", type=non_negative_int, help="linear warmup steps before the cosine decay (default 5%% of steps)")
    p.add_argument("--grad-clip", type=positive_float, help=f"max gradient norm (default {d.grad_clip})")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="fp32, or bf16/fp16 autocast (default fp32)")
    p.add_argument("--device", help="auto (default), cpu, cuda or mps; under torchrun each rank takes cuda:LOCAL_RANK")
    p.add_argument("--seed", type=seed, help="seed of data order and attack starts, 0 to 2**32-1 (default 0)")
    p.add_argument("--negatives", choices=("local", "global"),
                   help="contrastive negatives under DDP: each rank's own batch (default) or gathered from all ranks")
    p.add_argument("--train-text", dest="train_text", action="store_true", default=None,
                   help="also train the text tower and logit scale (default only for --objective clean)")
    p.add_argument("--lock-text", dest="train_text", action="store_false", help="freeze the text tower")
    p.add_argument("--align-weight", type=non_negative_float,
                   help=f"--objective align: weight of the gradient misalignment term (default {d.align_weight})")
    p.add_argument("--classes", help="TeCoA: a file of class names, one per line (default ImageNet's)")
    p.add_argument("--workers", type=non_negative_int, help="data loader workers per rank (default 2)")
    p.add_argument("--cache-images", action="store_true", default=None,
                   help="decode each image once and keep it in memory (small CSV/folder datasets; use few workers)")
    p.add_argument("--augment", dest="augment", action="store_true", default=None,
                   help="augment each training picture on the device: zoom in/out with shift and rotation, solid or "
                        "gradient backgrounds behind transparent pictures, brightness/contrast/saturation (no hue), "
                        "blur, down-up sampling; no flips. A recipe's \"augment\": {...} sets each operation "
                        "(clipag.training.augment.AugmentConfig)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no augmentation, even if the recipe asks")
    p.add_argument("--save-every", type=positive_int, help=f"checkpoint every N steps (default {d.save_every})")
    p.add_argument("--log-every", type=positive_int, help=f"log every N steps (default {d.log_every})")
    p.add_argument("--resume", help="latest (the run's newest checkpoint, if any) or a checkpoint file")
    p.add_argument("--allow-changed-settings", action="store_true", default=None,
                   help="resume even with another model, data, objective, attack, batch size, seed, negatives, "
                        "text training or precision than the checkpoint's (changed steps, lr and the like "
                        "are always allowed, and reported)")
    p.add_argument("--csv-img-key", help="CSV column of image paths (default filepath)")
    p.add_argument("--csv-caption-key", help="CSV column of captions (default title)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


ATTACK_OPTIONS = {"norm": "norm", "eps": "eps", "attack_steps": "steps", "step_size": "step_size",
                  "attack_momentum": "momentum"}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Recipe values first, then every option given on the command line."""
    settings = read_recipe(args.config) if args.config else {}
    attack = settings.pop("attack", {})
    if not isinstance(attack, dict):
        raise ClipagError(f"the attack setting must be an object such as {{\"eps\": 1.5}}, got {attack!r}; "
                          f"fix the recipe")
    attack = dict(attack)
    for option, field in ATTACK_OPTIONS.items():
        if option in settings:
            attack[field] = settings.pop(option)
        if getattr(args, option) is not None:
            attack[field] = getattr(args, option)
    settings.pop("classes", None)
    for name in vars(args):
        if name in ("config", "run", "command", "quiet", "classes", *ATTACK_OPTIONS):
            continue
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    for required in ("model", "data", "out"):
        if not settings.get(required):
            raise ClipagError(f"--{required} is required (on the command line or in --config)")
    if isinstance(settings["data"], str):
        settings["data"] = [settings["data"]]
    try:
        config = TrainConfig.from_dict({**settings, "attack": attack})
    except TypeError as err:
        raise ClipagError(f"bad training settings: {err}") from None
    return config


def read_classes(path: str | None) -> list[str] | None:
    if not path:
        return None
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as err:
        raise ClipagError(f"cannot read class names from {path} ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ClipagError(f"cannot read class names from {path}: it is not UTF-8 text; give one name per line") from None
    if not names:
        raise ClipagError(f"{path} lists no class names; give one per line")
    return names


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from ..training.loop import train
    run_dir = train(config, progress=not args.quiet, classes=read_classes(args.classes))
    if os.environ.get("RANK", "0") == "0":
        print(f"{run_dir}: trained {config.steps} steps; model in {run_dir / 'open_clip_model.safetensors'}")
    return 0
