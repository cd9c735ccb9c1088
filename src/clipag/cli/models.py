"""`clipag models`: the registered models and whether their weights are on this machine."""
from __future__ import annotations

import argparse

from ..registry import list_models, model_dir


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list named models and whether each is available here",
                              description="List the registered models. Any OpenCLIP reference works "
                              "too: ARCH:TAG, ARCH:/path/to/checkpoint, hf-hub:ORG/REPO, local-dir:PATH.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..loading import describe_availability
    rows = [(spec, *describe_availability(spec)) for spec in list_models()]
    width = max(len(spec.name) for spec, *_ in rows)
    arch_width = max(len(spec.arch) for spec, *_ in rows)
    for spec, available, where in rows:
        mark = "available" if available else "missing  "
        print(f"{spec.name:<{width}}  {spec.arch:<{arch_width}}  {mark}  {spec.description}")
        print(f"{'':<{width}}  {'':<{arch_width}}  {'':9}  {where}")
    print(f"\nmodel files are looked for in {model_dir()} (set CLIPAG_HOME to move it)")
    return 0
