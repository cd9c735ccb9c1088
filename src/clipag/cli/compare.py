"""`clipag compare [METHOD] PROMPT... --model A --model B --evaluator E`: the same prompts and seeds through
one method with several guides, one report.

Each METHOD (generate, the default; draw; vqgan; style) takes every option of its own command, with that
command's defaults, so a comparison runs what `clipag METHOD` runs.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..configs import AESTHETIC_EMBEDDER, COMPARE_METHODS
from ..errors import ClipagError
from ..generation.prompts import PROMPT_SETS, load_prompts
from . import draw, generate, style, vqgan
from .args import add_device_args, add_quiet, add_renamed, add_seeds, positive_int, print_usage

METHOD_COMMANDS = {"generate": generate, "draw": draw, "vqgan": vqgan, "style": style}
assert tuple(METHOD_COMMANDS) == COMPARE_METHODS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="run one method with several guides on the same prompts; write an HTML report",
        description="Run every prompt x seed through METHOD (default generate) with each guide (--model, two or "
                    "more), score all runs with the evaluators, and write report.html and report.md (metrics "
                    "table, chart, side-by-side strips). `clipag compare METHOD --help` lists the method's options.")
    methods = p.add_subparsers(dest="method", metavar="METHOD")
    for name, command in METHOD_COMMANDS.items():
        m = methods.add_parser(name, help=f"compare guides on `clipag {name}`, with its options and defaults")
        add_common_arguments(m, precision="auto" if name == "generate" else "fp32")  # as the command
        if name == "style":
            m.add_argument("--content", required=True, help="the content image every prompt restyles")
        command.add_method_arguments(m)
        m.set_defaults(run=run)
    p.set_defaults(run=lambda args: print_usage(p))


def add_common_arguments(p: argparse.ArgumentParser, precision: str) -> None:
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="prompts (or use --prompts)")
    p.add_argument("--prompts", dest="prompt_set", help=f"a prompt file, or a shipped set: {', '.join(PROMPT_SETS)}")
    p.add_argument("--limit", type=positive_int, help="use only the first N prompts")
    p.add_argument("--model", action="append", default=[], help="guide model; give two or more")
    add_renamed(p, "--guide", "--model", append=True)
    p.add_argument("--evaluator", action="append", required=True, help="evaluator model; repeatable")
    add_seeds(p)
    p.add_argument("--top-k", type=positive_int, nargs="+", default=[1], help="R-Precision k values (default 1)")
    p.add_argument("--aesthetic", help="aesthetic predictor file; adds scores and pairwise preference")
    p.add_argument("--aesthetic-embedder", default=AESTHETIC_EMBEDDER, help=f"its embedder (default {AESTHETIC_EMBEDDER})")
    p.add_argument("--out", default="outputs/compare", help="report folder (default outputs/compare)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    add_quiet(p)
    add_device_args(p, precision)


def rewrite_argv(argv: list[str]) -> list[str]:
    """`compare --method draw ...` (the old spelling) and `compare PROMPT ...` (no method: generate) as
    `compare draw ...` and `compare generate PROMPT ...`."""
    if not argv or argv[0] != "compare" or (len(argv) > 1 and argv[1] in METHOD_COMMANDS):
        return argv
    rest = list(argv[1:])
    for i, arg in enumerate(rest):
        if arg == "--method" and i + 1 < len(rest) or arg.startswith("--method="):
            value = arg.split("=", 1)[1] if "=" in arg else rest[i + 1]
            del rest[i:i + (1 if "=" in arg else 2)]
            warnings.warn(f"--method {value} is now `clipag compare {value}`; the old spelling goes in the next release")
            return ["compare", value, *rest]
    if not rest or rest[0] in ("-h", "--help"):
        return argv
    return ["compare", "generate", *rest]


def run(args: argparse.Namespace) -> int:
    from ..measure.aesthetic import optional_scorer
    from ..measure.compare import StyleMethod, VQGANMethod, compare, metric_rows
    prompts = list(args.prompts) + (load_prompts(args.prompt_set) if args.prompt_set else [])
    if not prompts:
        raise ClipagError("no prompts; give them as arguments or with --prompts FILE_OR_SET (e.g. --prompts drawing)")
    if len(args.model) < 2:
        raise ClipagError("compare needs two or more guides, e.g. --model clip-emoji --model clipag-emoji")
    prompts = prompts[:args.limit] if args.limit else prompts
    config = METHOD_COMMANDS[args.method].config_from_args(args)
    if args.method == "vqgan":
        config = VQGANMethod(config, args.vqgan_config, args.vqgan_checkpoint)
    elif args.method == "style":
        config = StyleMethod(config, args.content)
    scorer = optional_scorer(args.aesthetic, args.aesthetic_embedder, args.device)
    report = compare(prompts, args.model, args.out, args.evaluator, args.seed, args.method, config, args.top_k,
                     scorer, args.device, args.precision, progress=not args.quiet, overwrite=args.overwrite)
    header, rows = metric_rows(report)
    print("| " + " | ".join(header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"wrote {Path(args.out) / 'report.html'} and {Path(args.out) / 'report.md'}")
    return 0
