"""clipag's APGD-CE returns what torchattacks' APGD returns from the same seed (where torchattacks is
installed: `make install` puts it in the dev environment), and it attacks."""
import pytest
import torch

from clipag.measure.apgd import apgd
from clipag.measure.metrics import zero_shot_classifier
from clipag.measure.robustness import ZeroShotClassifier

CLASSES = ["a red square", "a green circle", "a blue triangle", "a yellow star"]


@pytest.fixture
def classifier(tiny_guide):
    return ZeroShotClassifier(tiny_guide, zero_shot_classifier(tiny_guide, CLASSES, ["{}"])).eval()


def images_it_classifies_both_ways(classifier, n=12):
    torch.manual_seed(1)
    images = torch.rand(n, 3, 32, 32)
    with torch.no_grad():
        predicted = classifier(images).argmax(dim=1)
    labels = predicted.clone()
    labels[::3] = (predicted[::3] + 1) % len(CLASSES)  # a third already wrong: they must come back as they are
    return images, labels


@pytest.mark.parametrize("norm, eps, steps", [("l2", 0.5, 10), ("l2", 2.0, 25), ("linf", 4 / 255, 10), ("linf", 16 / 255, 30)])
def test_apgd_returns_torchattacks_images_from_the_same_seed(classifier, norm, eps, steps):
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = images_it_classifies_both_ways(classifier)
    theirs = torchattacks.APGD(classifier, norm="L2" if norm == "l2" else "Linf", eps=eps, steps=steps, seed=3,
                               loss="ce")(images, labels)
    ours = apgd(classifier, images, labels, norm=norm, eps=eps, steps=steps, seed=3)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm, eps", [("l2", 1.0), ("linf", 8 / 255)])
def test_apgd_fools_a_random_model_within_its_radius_and_leaves_wrong_images_alone(classifier, norm, eps):
    images, labels = images_it_classifies_both_ways(classifier)
    adversarial = apgd(classifier, images, labels, norm=norm, eps=eps, steps=20, seed=0)
    delta = (adversarial - images).flatten(1)
    size = delta.norm(dim=1) if norm == "l2" else delta.abs().max(dim=1)[0]
    assert (size <= eps + 1e-5).all() and adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        clean_right = classifier(images).argmax(1) == labels
        still_right = classifier(adversarial).argmax(1) == labels
    assert still_right.sum() < clean_right.sum()  # it fools some
    assert torch.equal(adversarial[~clean_right], images[~clean_right])
