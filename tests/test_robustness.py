"""`clipag robustness` on tiny models and synthetic labelled images."""
import json

import pytest
import torch
from PIL import Image

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.measure.metrics import zero_shot_classifier, zero_shot_predictions
from clipag.measure.robustness import RobustnessConfig, evaluate_robustness, load_labelled_images, templates_for

CLASSES = ["red", "green", "blue"]


@pytest.fixture
def self_labelled(tiny_guide):
    """Random images labelled by the tiny model's own clean predictions: clean accuracy is 1."""
    torch.manual_seed(0)
    images = torch.rand(10, 3, 32, 32)
    classifier = zero_shot_classifier(tiny_guide, CLASSES, ["{}"])
    labels = zero_shot_predictions(tiny_guide, images, torch.zeros(10, dtype=torch.long), classifier)
    return images, labels


def test_attacks_do_not_raise_accuracy(tiny_guide, self_labelled):
    images, labels = self_labelled
    result = evaluate_robustness(tiny_guide, images, labels, CLASSES, RobustnessConfig(eps=[1e-6, 2.0], attack_steps=5))
    assert result["clean"] == 1.0
    assert result["pgd l2 1e-06"] == result["clean"]  # a vanishing radius changes nothing
    assert result["pgd l2 2"] < result["clean"]


def test_apgd_needs_no_extra_package(tiny_guide, self_labelled, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # as on a machine without it: importing fails
    images, labels = self_labelled
    config = RobustnessConfig(eps=[2.0], attack_steps=5, attacks=("pgd", "apgd"))
    result = evaluate_robustness(tiny_guide, images, labels, CLASSES, config)
    assert result["apgd l2 2"] < result["clean"]


def test_labelled_images_from_folder_and_csv(tmp_path):
    for name, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
        (tmp_path / "folder" / name).mkdir(parents=True)
        Image.new("RGB", (20, 10), colour).save(tmp_path / "folder" / name / "a.png")
    images, labels, classes = load_labelled_images(tmp_path / "folder", 16)
    assert images.shape == (2, 3, 16, 16) and classes == ["cat", "dog"] and labels.tolist() == [0, 1]
    csv_file = tmp_path / "folder" / "labels.csv"
    csv_file.write_text("filepath,name\ncat/a.png,kitten\ncat/a.png,kitten\ndog/a.png,puppy\n")
    images, labels, classes = load_labelled_images(csv_file, 16, class_column="name")
    assert len(images) == 2 and classes == ["kitten", "puppy"]  # a repeated file counts once
    with pytest.raises(ClipagError, match="--class-column"):
        load_labelled_images(csv_file, 16)


def test_templates():
    assert templates_for("name") == ["{}"]
    assert len(templates_for("openai")) == 80 and all("{}" in t for t in templates_for("simple"))


def test_command_writes_table_and_files(tmp_path, capsys):
    for name, colour in (("red", (220, 0, 0)), ("blue", (0, 0, 220))):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), colour).save(tmp_path / "data" / name / "x.png")
    code = main(["robustness", str(tmp_path / "data"), "--model", "clipag-tiny:random", "--eps", "0.5",
                 "--attack-steps", "2", "--out", str(tmp_path / "out")])
    assert code == 0
    assert "| clipag-tiny:random |" in capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(result["accuracy"]["clipag-tiny:random"]) == {"clean", "pgd l2 0.5"}
    assert (tmp_path / "out" / "results.csv").read_text().startswith("model,setting,accuracy")


def test_command_bad_data_is_one_line(tmp_path, capsys):
    assert main(["robustness", str(tmp_path / "missing.txt"), "--model", "clipag-tiny:random"]) == 2
    assert "neither a folder" in capsys.readouterr().err
