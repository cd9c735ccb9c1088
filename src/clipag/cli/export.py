"""`clipag export RUN --out DIR [--push-to-hub REPO]`: a model as an OpenCLIP / Hub folder (clipag.models.hub)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ClipagError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a run or model as an OpenCLIP / Hugging Face Hub folder, optionally push it",
        description="Write RUN (a `clipag train` run folder, or any model reference) as a folder that "
                    "OpenCLIP loads without clipag (local-dir:DIR, or hf-hub:REPO once pushed): "
                    "open_clip_config.json, open_clip_model.safetensors, a README.md model card with Hub "
                    "metadata, the data's LICENSES.md and the run's training settings.")
    p.add_argument("source", metavar="RUN", help="a run folder (e.g. runs/clipag-emoji) or a model reference")
    p.add_argument("--out", required=True, help="the folder to write (refused if it holds files, see --overwrite)")
    p.add_argument("--name", help="the model's name in its card (default: the --out folder's name; "
                                  "a shipped model's own name)")
    p.add_argument("--half", action="store_true", help="store the weights as fp16 (half the size)")
    p.add_argument("--description", help="the card's first paragraph (default: from the run's settings)")
    p.add_argument("--metrics", help="a JSON file of measured numbers, {name: value}, for the card")
    p.add_argument("--license", help="the weights' licence, a Hub licence id (default mit; a shipped model "
                                     "keeps its card's)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out folder that holds files")
    p.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to the Hugging Face Hub as "
                                                          "REPO (ORG/NAME; token from `huggingface-cli login` or HF_TOKEN)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.hub import export_model, push_to_hub
    folder = export_model(args.source, args.out, name=args.name, half=args.half, description=args.description,
                          metrics=_read_metrics(args.metrics), license=args.license, repo_id=args.push_to_hub,
                          overwrite=args.overwrite)
    print(f"wrote {folder}: load it with open_clip.create_model_from_pretrained('local-dir:{folder}')")
    if args.push_to_hub:
        url = push_to_hub(folder, args.push_to_hub, private=args.private)
        print(f"pushed to hf-hub:{args.push_to_hub} ({url})")
    return 0


def _read_metrics(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ClipagError(f"cannot read --metrics {path} as JSON ({getattr(err, 'strerror', None) or err}); "
                          f"give a file like {{\"zero-shot top-1\": 0.35}}") from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float, str)) and not isinstance(v, bool)
                                             for v in data.values()):
        raise ClipagError(f"--metrics {path} must be one JSON object of names to numbers or strings")
    return data
