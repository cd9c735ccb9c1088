"""Labelled image sets as users have them: Tiny-ImageNet's folders and a Hugging Face dataset (offline fakes)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipag.errors import ClipagError
from clipag.generation.gmm import fit_gmm
from clipag.generation.image_sets import read_labelled_images, small_pixels

WNIDS = {"n01443537": (230, 120, 20), "n01629819": (20, 90, 220)}  # goldfish orange, salamander blue
WORDS = "n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander, Salamandra salamandra\n"


def _jpeg(path, colour, grey=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((64, 64, 3), colour, dtype=np.uint8)
    image = Image.fromarray(pixels).convert("L") if grey else Image.fromarray(pixels)
    image.save(path, quality=95)


@pytest.fixture
def tiny_imagenet(tmp_path):
    """The layout of tiny-imagenet-200.zip: wnids.txt, words.txt, train/WNID/images, val/ with annotations."""
    root = tmp_path / "tiny-imagenet-200"
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text(WORDS)
    annotations = []
    for wnid, colour in WNIDS.items():
        for i in range(3):
            _jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", colour)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    for i, wnid in enumerate(list(WNIDS) * 2):
        _jpeg(root / "val" / "images" / f"val_{i}.JPEG", WNIDS[wnid])
        annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    _jpeg(root / "val" / "images" / "val_9.JPEG", (128, 128, 128), grey=True)
    annotations.append("val_9.JPEG\tn01443537\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    _jpeg(root / "test" / "images" / "test_0.JPEG", (0, 0, 0))
    return root


def test_the_tiny_imagenet_root_reads_its_validation_split_with_readable_names(tiny_imagenet):
    images = read_labelled_images(tiny_imagenet, 16, progress=False)
    assert images.classes == ["goldfish", "European fire salamander"]
    assert images.labels.tolist() == [0, 0, 1, 1] and images.grey == 1  # the grey JPEG is dropped
    assert "val_annotations.txt" in images.source
    orange = images.data[0].view(3, 16, 16).mean((1, 2))
    assert orange[0] > 0.85 and orange[2] < 0.15


def test_tiny_imagenet_val_folder_is_labelled_by_its_annotations_not_read_as_one_class(tiny_imagenet):
    images = read_labelled_images(tiny_imagenet / "val", 16, progress=False, drop_grey=False)
    assert len(images.classes) == 2 and images.labels.tolist() == [0, 0, 0, 1, 1] and images.grey == 0


def test_tiny_imagenet_train_split_and_train_folder_are_the_same_classes(tiny_imagenet):
    by_split = read_labelled_images(tiny_imagenet, 16, split="train", progress=False)
    by_folder = read_labelled_images(tiny_imagenet / "train", 16, progress=False)
    assert by_split.classes == by_folder.classes == ["goldfish", "European fire salamander"]
    assert by_split.labels.tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(by_split.data, by_folder.data)
    with pytest.raises(ClipagError, match="splits val and train"):
        read_labelled_images(tiny_imagenet, 16, split="test", progress=False)


def test_small_pixels_is_torchvisions_antialiased_resize_in_0_1():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    expected = F.interpolate(tensor, size=(16, 16), mode="bilinear", antialias=True)[0]  # (3, 16, 16)
    np.testing.assert_allclose(small_pixels(image, 16).reshape(3, 16, 16), expected.numpy(), atol=1e-6)
    box = tensor.view(1, 3, 16, 4, 16, 4).mean((3, 5))[0]
    assert not np.allclose(small_pixels(image, 16).reshape(3, 16, 16), box.numpy(), atol=1e-3)  # not a box filter


def test_gmm_fit_on_tiny_imagenet_writes_named_classes(tiny_imagenet, tmp_path):
    gmm, read = fit_gmm(tiny_imagenet, tmp_path / "g.safetensors", progress=False)
    assert gmm.classes == ["goldfish", "European fire salamander"] and gmm.counts.tolist() == [2, 2]
    assert read.grey == 1


@pytest.fixture
def hf_folder(tmp_path):
    """A local copy of a Hub image dataset as the Hub stores it: parquet files and a card naming the splits."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(WNIDS))})
    rows = {"image": [], "label": []}
    for i in range(6):
        wnid = list(WNIDS)[i % 2]
        pixels = np.full((64, 64, 3), WNIDS[wnid], dtype=np.uint8)
        rows["image"].append(Image.fromarray(pixels).convert("L") if i == 5 else Image.fromarray(pixels))
        rows["label"].append(i % 2)
    folder = tmp_path / "fake-tiny-imagenet"
    (folder / "data").mkdir(parents=True)
    for split in ("train", "valid"):
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  - split: valid\n    path: data/valid-*\n---\n")
    return folder


def test_a_hugging_face_dataset_is_read_from_its_valid_split_through_datasets(hf_folder, monkeypatch, tmp_path):
    import datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    images = read_labelled_images(f"hf:{hf_folder}", 16, progress=False)
    assert images.classes == list(WNIDS) and images.source.endswith("split valid")
    assert images.labels.tolist() == [0, 1, 0, 1, 0] and images.grey == 1
    with pytest.raises(ClipagError, match="no split 'test'"):
        read_labelled_images(f"hf:{hf_folder}", 16, split="test", progress=False)
    with pytest.raises(ClipagError, match="cannot read the dataset"):
        read_labelled_images(f"hf:{tmp_path / 'nothing-here'}", 16, progress=False)
