"""Prompt sets that ship with clipag, and a seeded sampler of MS-COCO captions.

    load_prompts("drawing")            # 100 CLIPDraw-style drawing prompts written for this project
    load_prompts("prefixes")           # the paper's style prefixes ("an oil painting of", ...)
    load_prompts("my_prompts.txt")     # any file: one prompt per line, '#' lines are comments
    sample_coco_captions("captions_val2017.json", 100, seed=0)
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

from ..errors import ClipagError
from ..models.registry import ASSETS

PROMPT_SETS = {path.stem: path for path in sorted((ASSETS / "prompts").glob("*.txt"))}


def load_prompts(name_or_path: str) -> list[str]:
    """A shipped set by name (see PROMPT_SETS) or a text file of prompts, one per line."""
    path = PROMPT_SETS.get(name_or_path) or Path(name_or_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ClipagError(f"cannot read prompts from {name_or_path} ({err}); give one of "
                          f"{', '.join(PROMPT_SETS)} or a UTF-8 text file with one prompt per line") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ClipagError(f"{name_or_path} holds no prompts; write one per line")
    return prompts


def sample_coco_captions(annotations: str | Path, count: int, seed: int = 0) -> list[str]:
    """`count` captions of distinct images from an MS-COCO captions file (captions_val2017.json), seeded."""
    try:
        data = json.loads(Path(annotations).read_text(encoding="utf-8"))
        entries = data["annotations"]
        by_image = {}
        for entry in sorted(entries, key=lambda e: e["id"]):
            by_image.setdefault(entry["image_id"], entry["caption"].strip())
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ClipagError(f"{annotations} is not an MS-COCO captions file ({err}); give e.g. "
                          f"annotations/captions_val2017.json") from None
    if count > len(by_image):
        raise ClipagError(f"asked for {count} captions but {annotations} covers {len(by_image)} images")
    images = random.Random(seed).sample(sorted(by_image), count)
    return [by_image[image] for image in images]


def parse_weighted_prompt(text: str) -> tuple[str, float]:
    """'a red apple:2' -> ('a red apple', 2.0); a negative weight makes a negative prompt; no ':w' -> 1."""
    body, colon, tail = text.rpartition(":")
    if colon:
        try:
            weight = float(tail)
        except ValueError:
            body, weight = text, 1.0  # a colon that is part of the prompt
    else:
        body, weight = text, 1.0
    body = body.strip()
    if not body:
        raise ClipagError(f"empty prompt in {text!r}; write TEXT or TEXT:WEIGHT, e.g. \"a red apple:1.5\"")
    if not math.isfinite(weight):
        raise ClipagError(f"prompt weight {tail.strip()!r} in {text!r} is not a finite number; write e.g. \"{body}:1.5\"")
    if weight == 0:
        raise ClipagError(f"prompt weight 0 in {text!r} does nothing; use a positive or negative weight")
    return body, weight


def weighted_text_features(guide, prompts: list[str]):
    """Prompts with optional ':weight' -> unit text features (P, D) and weights (P,)."""
    import torch
    parsed = [parse_weighted_prompt(p) for p in prompts]
    features = guide.encode_text([text for text, _ in parsed])  # (P, D)
    return features, torch.tensor([w for _, w in parsed], device=features.device, dtype=features.dtype)


def full_prompt(prompt: str, prefix: str = "") -> str:
    """The prompt with its prefix (e.g. "an oil painting of"); an empty prompt is refused."""
    prompt = prompt.strip()
    if not prompt:
        raise ClipagError("empty prompt; give the text to draw, e.g. clipag generate \"a red apple\"")
    return f"{prefix.strip()} {prompt}".strip()
