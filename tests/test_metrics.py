"""Metrics on hand-built embeddings with known answers, and zero-shot accuracy on a tiny model."""
import pytest
import torch
import torch.nn.functional as F

from clipag.attack import AttackConfig
from clipag.measure.metrics import (paired_similarity, r_precision, zero_shot_accuracy, zero_shot_classifier,
                            zero_shot_predictions)


def test_r_precision_on_a_constructed_case():
    texts = torch.eye(3)  # three orthogonal prompts
    images = F.normalize(torch.tensor([[1.0, 0.2, 0.0],   # nearest prompt 0, its own -> hit
                                       [0.9, 0.5, 0.0],   # nearest 0, own is 1 -> miss at k=1, hit at k=2
                                       [0.0, 0.0, 1.0],   # hit
                                       [0.0, 1.0, 0.1]]), dim=1)  # own is 2: second nearest
    targets = torch.tensor([0, 1, 2, 2])
    assert r_precision(images, texts, targets, k=1) == pytest.approx(0.5)
    assert r_precision(images, texts, targets, k=2) == pytest.approx(1.0)
    assert r_precision(images, texts, targets, k=10) == pytest.approx(1.0)  # k above the prompt count


def test_paired_similarity_is_rowwise_cosine():
    a = F.normalize(torch.randn(5, 8), dim=1)
    assert torch.allclose(paired_similarity(a, a), torch.ones(5))
    assert torch.allclose(paired_similarity(a, -a), -torch.ones(5))


def test_zero_shot_classifier_is_unit_and_template_mean(tiny_guide):
    classifier = zero_shot_classifier(tiny_guide, ["cat", "dog"], ["{}", "a {}"])
    assert classifier.shape == (tiny_guide.embed_dim, 2)
    assert torch.allclose(classifier.norm(dim=0), torch.ones(2), atol=1e-5)
    both = tiny_guide.encode_text(["cat", "a cat"], cache=False).mean(0)
    assert torch.allclose(classifier[:, 0], F.normalize(both, dim=0), atol=1e-5)


def test_attack_lowers_accuracy_and_labels_from_predictions(tiny_guide):
    torch.manual_seed(0)
    images = torch.rand(12, 3, 32, 32)
    classifier = zero_shot_classifier(tiny_guide, ["red", "green", "blue"], ["{}"])
    labels = zero_shot_predictions(tiny_guide, images, torch.zeros(12, dtype=torch.long), classifier)
    assert zero_shot_accuracy(tiny_guide, images, labels, classifier) == 1.0  # labelled by the model itself
    attacked = zero_shot_accuracy(tiny_guide, images, labels, classifier,
                                  attack=AttackConfig(norm="linf", eps=64, steps=10), batch_size=5)
    assert attacked < 1.0
