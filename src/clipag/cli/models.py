"""`clipag models`: the registered models and whether their weights are on this machine."""
from __future__ import annotations

import argparse

from ..models.registry import list_models, model_dir


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list named models and whether each is here; download one",
                              description="List the registered models. Any OpenCLIP reference works "
                              "too: ARCH:TAG, ARCH:/path/to/checkpoint, hf-hub:ORG/REPO, local-dir:PATH.")
    p.set_defaults(run=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    d = actions.add_parser("download", help="download a named model's weights into the model folder",
                           description="Download NAME's weights file into the model folder ($CLIPAG_HOME/models), "
                                       "resuming an interrupted download, and check its size and checksum "
                                       "against the publisher's record before putting it in place.")
    d.add_argument("name", help="a registered model with a download address (e.g. clipag-vit-b-32)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(run=run_download)


def run_download(args: argparse.Namespace) -> int:
    from ..models.download import download_model
    path = download_model(args.name, progress=not args.quiet)
    print(f"{args.name}: {path} (size and checksum match the publisher's record)")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..models.loading import describe_availability
    rows = [(spec, *describe_availability(spec)) for spec in list_models()]
    width = max(len(spec.name) for spec, *_ in rows)
    arch_width = max(len(spec.arch) for spec, *_ in rows)
    for spec, available, where in rows:
        mark = "available" if available else "missing  "
        print(f"{spec.name:<{width}}  {spec.arch:<{arch_width}}  {mark}  {spec.description}")
        print(f"{'':<{width}}  {'':<{arch_width}}  {'':9}  {where}")
    print(f"\nmodel files are looked for in {model_dir()} (set CLIPAG_HOME to move it)")
    return 0
