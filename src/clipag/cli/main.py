"""`clipag` entry point: builds the parser from each command module and turns errors into one line."""
from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import ClipagError
from ..files import check_out_dir, check_out_file
from . import (compare, data, draw, evaluate, explain, export, generate, gmm, models, pag, reproduce, robustness, serve,
               style, train, vqgan)

COMMANDS = (generate, draw, vqgan, style, train, export, models, gmm, data, evaluate, compare, robustness, pag, explain,
            reproduce, serve)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to read more, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="clipag", description="CLIP models with Perceptually Aligned Gradients: "
                    "generate images with no generator, list and load models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = lambda message, category, *rest: f"clipag: warning: {message}\n"
    parser = build_parser()
    args = parser.parse_args(compare.rewrite_argv(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        _check_out(args)
        return args.run(args) or 0
    except ClipagError as err:
        print(f"clipag: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused (disk full, permissions): no traceback for that
        where = f" ({err.filename})" if err.filename else ""
        print(f"clipag: error: {err.strerror or err}{where}; free space or fix permissions, then run again "
              f"(finished outputs are kept)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("clipag: interrupted; files already written are complete", file=sys.stderr)
        return 130


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an --out that cannot be written before loading any model or computing anything."""
    out = getattr(args, "out", None)
    if not out:
        return
    if getattr(args, "out_is_file", False):
        check_out_file(out)
    else:
        check_out_dir(out)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("clipag")
    except PackageNotFoundError:  # run from a source tree (PYTHONPATH=src) without installing
        return "(not installed)"


if __name__ == "__main__":
    sys.exit(main())
