"""`clipag data emoji --from DIR`: rebuild the emoji training set of the embedded models."""
from __future__ import annotations

import argparse

from ..emoji import build_emoji_dataset
from .args import positive_float, print_usage, seed


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="build training sets")
    p.set_defaults(run=lambda args: print_usage(p))
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    emoji = kinds.add_parser(
        "emoji", help="the emoji set from the emoji-datasource npm packages",
        description="Rebuild the emoji training set from emoji-datasource-twitter and -google, as .tgz files "
                    "from `npm pack emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0` "
                    "or unpacked folders.")
    emoji.add_argument("--from", dest="source", required=True, help="folder holding the npm packages")
    emoji.add_argument("--out", default="data/emoji", help="output folder (default data/emoji)")
    emoji.add_argument("--holdout", type=positive_float, default=0.1,
                       help="share of emoji held out of training, with all their variants (default 0.1)")
    emoji.add_argument("--seed", type=seed, default=0, help="seed of the held-out choice (default 0)")
    emoji.set_defaults(run=run_emoji)


def run_emoji(args: argparse.Namespace) -> int:
    manifest = build_emoji_dataset(args.source, args.out, holdout=args.holdout, seed=args.seed)
    images = ", ".join(f"{n} {style}" for style, n in manifest["images"].items())
    print(f"{args.out}: {manifest['emoji']} emoji, images {images}; {manifest['rows']['train']} training and "
          f"{manifest['rows']['heldout']} held-out caption rows ({manifest['heldout_emoji']} emoji held out)")
    return 0
