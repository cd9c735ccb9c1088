"""`clipag data emoji --from DIR`: rebuild the emoji training set of the embedded models."""
from __future__ import annotations

import argparse

from ..data.emoji.packages import PACK_COMMAND
from .args import positive_float, positive_int, print_usage, seed


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="build training sets")
    p.set_defaults(run=lambda args: print_usage(p))
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    emoji = kinds.add_parser(
        "emoji", help="the emoji set from the emoji-datasource and Iconify emoji npm packages",
        description="Rebuild the emoji training set from the npm packages in a folder, as .tgz files from "
                    f"`{PACK_COMMAND}` or unpacked folders. emoji-datasource gives the names (and PNGs); "
                    "each Iconify set found adds its SVG drawings, rasterised (needs clipag[data]).")
    emoji.add_argument("--from", dest="source", required=True, help="folder holding the npm packages")
    emoji.add_argument("--out", default="data/emoji", help="output folder (default data/emoji)")
    emoji.add_argument("--holdout", type=positive_float, default=0.1,
                       help="share of emoji held out of training, with all their variants (default 0.1)")
    emoji.add_argument("--seed", type=seed, default=0, help="seed of the held-out choice (default 0)")
    emoji.add_argument("--size", type=positive_int, default=64, help="picture side in pixels (default 64)")
    emoji.add_argument("--format", choices=("png", "webp"), default="png",
                       help="picture files: png, or lossless webp (the same pixels, about 0.57x the bytes) (default png)")
    emoji.add_argument("--quiet", action="store_true", help="no progress bar")
    emoji.set_defaults(run=run_emoji)


def run_emoji(args: argparse.Namespace) -> int:
    from ..data.emoji import build_emoji_dataset
    manifest = build_emoji_dataset(args.source, args.out, holdout=args.holdout, seed=args.seed, size=args.size,
                                   progress=not args.quiet, image_format=args.format)
    images = ", ".join(f"{n} {style}" for style, n in manifest["images"].items())
    spread = manifest["pictures_per_name"]
    print(f"{args.out}: {manifest['emoji']} emoji, images {images}; {manifest['rows']['train']} training and "
          f"{manifest['rows']['heldout']} held-out caption rows ({manifest['heldout_emoji']} emoji held out); "
          f"pictures per name {spread['min']}-{spread['max']}, median {spread['median']}")
    return 0
