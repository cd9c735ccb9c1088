"""Argument types shared by the commands: each rejects a bad value with a message naming the fix."""
from __future__ import annotations

import argparse
import math
import warnings

from ..errors import SEED_MAX


def positive_int(text: str) -> int:
    value = _number(text, int, "an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value




def seed(text: str) -> int:
    value = _number(text, int, "an integer")
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"seed {text} is out of range; use 0 to {SEED_MAX}")
    return value


def int_range(low: int, high: int):
    """An argument type for integers in [low, high], e.g. image sizes."""
    def parse(text: str) -> int:
        value = _number(text, int, "an integer")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range; use {low} to {high}")
        return value
    parse.__name__ = f"integer {low}-{high}"
    return parse


IMAGE_SIZE = int_range(16, 2048)  # every --size: outputs a guide can score, within one machine's memory
COUNT = int_range(1, 4096)  # views, crops, cutouts, strokes per step
COUNT_OR_ZERO = int_range(0, 4096)


def finite_float(text: str) -> float:
    return _number(text, float, "a number")


def unit_interval(text: str) -> float:
    """A share or quantile in (0, 1]."""
    value = _number(text, float, "a number")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and at most 1")
    return value


def _number(text: str, kind, name: str):
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_device_args(parser: argparse.ArgumentParser, precision: str = "fp32") -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    what = " (fp16 on CUDA, as the official notebook; fp32 elsewhere)" if precision == "auto" else ""
    parser.add_argument("--precision", default=precision, choices=("auto", "fp32", "bf16", "fp16"),
                        help=f"fp32, or bf16/fp16 autocast (default {precision}{what})")


def kept(record: dict) -> str:
    """What a command prints after a result a re-run kept instead of making it again."""
    return "  kept: made earlier with the same settings (--overwrite to redo)" if record.get("skipped") else ""


def print_usage(parser: argparse.ArgumentParser) -> int:
    """For a command group called without its sub-command: its help, and exit code 2."""
    parser.print_help()
    return 2


class _Seeds(argparse.Action):
    """--seed 0 1 2 and --seed 0 --seed 1 alike; the default list is replaced, not extended."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest)
        setattr(namespace, self.dest, ([] if current is self.default else current) + list(values))


def add_seeds(parser: argparse.ArgumentParser, what: str = "seeds, one result each") -> None:
    parser.add_argument("--seed", type=seed, nargs="+", action=_Seeds, default=[0],
                        help=f"{what}; repeatable: --seed 0 1 2 or --seed 0 --seed 1 (default 0)")


class _Renamed(argparse.Action):
    """An old spelling, kept hidden for one release: it warns and sets the new option."""

    def __init__(self, option_strings, dest, new: str, append: bool = False, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.append = new, append

    def __call__(self, parser, namespace, values, option_string=None):
        warnings.warn(f"{option_string} is now {self.new}; the old spelling goes in the next release")
        if self.append:
            values = (getattr(namespace, self.dest, None) or []) + [values]
        setattr(namespace, self.dest, values)


def add_renamed(parser: argparse.ArgumentParser, old: str, new: str, append: bool = False, **kwargs) -> None:
    """Accept `old` as a hidden alias of the option `new` (same type and nargs; append for a repeatable one)."""
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=_Renamed, new=new, append=append, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
