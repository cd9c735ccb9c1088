"""Metrics over a guide's embeddings: zero-shot accuracy (clean and under PGD), R-Precision, similarity.

    classifier = zero_shot_classifier(guide, ["red apple", "cat face"], ["{}", "a {}"])   # (D, C)
    accuracy = zero_shot_accuracy(guide, images, labels, classifier, attack=AttackConfig(eps=0.43))

The classifier follows OpenCLIP's zero_shot_classifier: per class, the mean of the unit text embeddings
of its templates, renormalised. The attack is the project's PGD (clipag.attack), maximising the
cross-entropy of the true class, so clean and robust accuracy use the same model call.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..attack import AttackConfig, pgd
from ..models.guide import Guide


@torch.no_grad()
def zero_shot_classifier(guide: Guide, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(D, C) unit class embeddings: the renormalised mean over templates ("a {}.") of each class."""
    columns = []
    for name in class_names:
        features = guide.encode_text([t.format(name) for t in templates], cache=False)  # (T, D)
        columns.append(F.normalize(features.float().mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)  # (D, C)


def zero_shot_logits(guide: Guide, images: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """(B, C) cosine similarities times 100, as CLIP's zero-shot evaluation scales them."""
    return 100.0 * guide.encode_image(images).float() @ classifier


def zero_shot_predictions(guide: Guide, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor,
                          attack: Optional[AttackConfig] = None, batch_size: int = 128,
                          seed: int = 0) -> torch.Tensor:
    """(N,) predicted class of each image (N, 3, H, W) in [0,1]; under PGD on the true class if `attack`."""
    predictions = []
    generator = torch.Generator(device=guide.device).manual_seed(seed)
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(guide.device)
        target = labels[start:start + batch_size].to(guide.device)
        if attack is not None:
            batch = pgd(lambda x: F.cross_entropy(zero_shot_logits(guide, x, classifier), target), batch, attack,
                        model=guide.model, generator=generator)
        with torch.no_grad():
            predictions.append(zero_shot_logits(guide, batch, classifier).argmax(dim=1).cpu())
    return torch.cat(predictions)


def zero_shot_accuracy(guide: Guide, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor,
                       attack: Optional[AttackConfig] = None, batch_size: int = 128, seed: int = 0) -> float:
    """Top-1 accuracy of zero-shot classification, clean or under `attack`."""
    predictions = zero_shot_predictions(guide, images, labels, classifier, attack, batch_size, seed)
    return (predictions == labels.cpu()).float().mean().item()


def r_precision(image_features: torch.Tensor, text_features: torch.Tensor, targets: torch.Tensor,
                k: int = 1) -> float:
    """Share of images whose own prompt (index `targets` into the prompt set) is among the k prompts
    most similar to them. image_features (N, D) and text_features (P, D) are unit vectors."""
    similarities = image_features.float() @ text_features.float().T  # (N, P)
    top = similarities.topk(min(k, similarities.shape[1]), dim=1).indices  # (N, k)
    return (top == targets.view(-1, 1)).any(dim=1).float().mean().item()


def paired_similarity(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(N,) cosine similarity of each image with its own prompt (row i with row i)."""
    return (image_features.float() * text_features.float()).sum(dim=-1)
