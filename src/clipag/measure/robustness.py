"""`clipag robustness`: zero-shot accuracy of a model, clean and under attack, on labelled images.

    images, labels, classes = load_labelled_images("data/emoji/heldout.csv", 64, class_column="name")
    table = evaluate_robustness(guide, images, labels, classes, RobustnessConfig(eps=[0.43, 1.0]))

Attacks: the project's PGD (clipag.attack) and, because a robustness claim needs an attack its authors
did not design, APGD-CE (Croce & Hein's AutoAttack component; clipag.measure.apgd, which returns the same
images as torchattacks' APGD from the same seed).
Both maximise the cross-entropy of the true class over the zero-shot logits. Templates: OpenCLIP's
zero-shot metadata (the 80 OpenAI ImageNet templates, or its 18 "simple" ones), or "{}" alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from tqdm import tqdm
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

from .apgd import apgd
from ..attack import AttackConfig
from ..configs import RobustnessConfig
from ..distributed import World, all_reduce_sum
from ..errors import ClipagError
from ..models.guide import Guide
from ..io import path_kind, read_csv, read_picture, square_tensor
from .metrics import zero_shot_accuracy, zero_shot_classifier, zero_shot_logits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def templates_for(choice: str) -> list[str]:
    """A template set by name, or read from a file of lines holding '{}'."""
    if choice == "name":
        return ["{}"]
    if choice in ("simple", "openai"):
        functions = SIMPLE_IMAGENET_TEMPLATES if choice == "simple" else OPENAI_IMAGENET_TEMPLATES
        return [f("{}") for f in functions]
    try:
        lines = [line.strip() for line in Path(choice).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ClipagError(f"cannot read templates from {choice} ({reason}); use name, simple, openai "
                          f"or a file of lines like 'a photo of a {{}}.'") from None
    if not lines or any("{}" not in line for line in lines):
        raise ClipagError(f"every template in {choice} must contain {{}} where the class name goes")
    return lines


def load_labelled_images(source: str | Path, size: int, class_column: Optional[str] = None,
                         path_column: str = "filepath") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An image folder (one subfolder per class) or a CSV (image path + class column) ->
    images (N, 3, size, size) in [0,1], labels (N,), sorted class names. Each image file counts once."""
    source = Path(source)
    kind = path_kind(source, "data")
    if kind == "dir":
        pairs = {str(p): p.parent.name for p in sorted(source.glob("*/*")) if p.suffix.lower() in IMAGE_SUFFIXES}
    elif source.suffix.lower() == ".csv" and kind == "file":
        pairs = _csv_pairs(source, class_column, path_column)
    else:
        raise ClipagError(f"{source} is neither a folder of class subfolders nor a CSV file; give one of them")
    if not pairs:
        raise ClipagError(f"no images found in {source}; a folder needs CLASS/IMAGE.png files")
    classes = sorted(set(pairs.values()))
    images = torch.stack([square_tensor(read_picture(path), size) for path in pairs])  # (N, 3, S, S)
    labels = torch.tensor([classes.index(name) for name in pairs.values()])
    return images, labels, classes


def _csv_pairs(path: Path, class_column: Optional[str], path_column: str) -> dict[str, str]:
    if not class_column:
        raise ClipagError(f"{path} is a CSV: name its class column with --class-column (e.g. name)")
    pairs = {}
    for row in read_csv(path, (path_column, class_column)):
        pairs.setdefault(str(path.parent / row[path_column]), row[class_column])
    return pairs


def evaluate_robustness(guide: Guide, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                        config: RobustnessConfig = RobustnessConfig(), world: World = World(),
                        progress: bool = False) -> dict[str, float]:
    """{"clean": acc, "pgd l2 0.43": acc, "apgd l2 0.43": acc, ...}: top-1 accuracies in [0,1].

    Under torchrun each rank attacks its shard of the images and the counts are summed: every rank
    returns the same accuracies (the attacks' random starts differ from a single process's)."""
    config.validate()
    classifier = zero_shot_classifier(guide, list(classes), templates_for(config.templates))
    total, mine = len(images), world.shard(len(images))
    images, labels = images[mine], labels[mine]

    def overall(accuracy: float) -> float:  # this rank's accuracy -> the accuracy over all images
        return all_reduce_sum(accuracy * len(mine) if mine else 0.0, world) / total

    bar = tqdm(total=1 + len(config.eps) * len(config.attacks), desc="robustness", unit="run",
               disable=not progress or not world.is_main, leave=False)
    results = {"clean": overall(zero_shot_accuracy(guide, images, labels, classifier, batch_size=config.batch_size))}
    bar.update()
    for eps in config.eps:
        attack = AttackConfig(norm=config.norm, eps=eps, steps=config.attack_steps)
        for name in config.attacks:
            key = f"{name} {config.norm} {eps:g}"
            bar.set_postfix_str(key)
            if name == "pgd":
                accuracy = zero_shot_accuracy(guide, images, labels, classifier, attack, config.batch_size, config.seed)
            else:
                accuracy = apgd_accuracy(guide, images, labels, classifier, attack, config)
            results[key] = overall(accuracy)
            bar.update()
    bar.close()
    return results


class ZeroShotClassifier(torch.nn.Module):
    """Images in [0,1] -> zero-shot logits: what an attack library expects of a classifier."""

    def __init__(self, guide: Guide, classifier: torch.Tensor):
        super().__init__()
        self.guide, self.classifier = guide, classifier
        self.model = guide.model  # registered, so that attack libraries find the parameters' device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return zero_shot_logits(self.guide, images, self.classifier)


def apgd_accuracy(guide: Guide, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor,
                  attack: AttackConfig, config: RobustnessConfig) -> float:
    """Top-1 under APGD-CE (clipag.measure.apgd, checked against torchattacks' in the tests), batch by batch."""
    model = ZeroShotClassifier(guide, classifier).eval()
    correct = 0
    for start in range(0, len(images), config.batch_size):
        batch = images[start:start + config.batch_size].to(guide.device)
        target = labels[start:start + config.batch_size].to(guide.device)
        adversarial = apgd(model, batch, target, norm=attack.norm, eps=attack.radius, steps=attack.steps,
                           seed=config.seed)
        with torch.no_grad():
            correct += (model(adversarial).argmax(dim=1) == target).sum().item()
    return correct / len(images)
