"""Labelled sets of small images, read as users have them, for fitting the generation GMM.

`read_labelled_images(source, size)` takes:

- an ImageFolder-style tree, `ROOT/CLASS/**/*.png` (Tiny-ImageNet's `train/` is one);
- Tiny-ImageNet's `val/` folder: `images/` plus `val_annotations.txt` (file name, then class id);
- the Tiny-ImageNet root (`wnids.txt`, `train/`, `val/`): its validation split by default, as the
  official notebook fits on it, or `split="train"`;
- a CSV/TSV of image paths (relative to it) with a class column;
- `hf:NAME` (a Hub dataset, or a local folder of its files): read through the `datasets` library
  (`pip install 'clipag[data]'`), e.g. `hf:Maysee/tiny-imagenet` with split `valid`, the notebook's.

Every image is resized to `size` x `size` with torch's antialiased bilinear resize (what torchvision's
`Resize` does to the notebook's tensors), as values in [0, 1]; transparency is composited on white.
Single-channel (grey) images are dropped by default, as the notebook drops them, and counted;
unreadable files are skipped and counted. Tiny-ImageNet class ids are named from `words.txt` when it is
there ("n01443537" -> "goldfish").
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..errors import ClipagError
from ..io import path_kind

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "I", "I;16", "F")  # one channel, no alpha: grey photos (a grey drawing with alpha stays)
HF_PREFIX = "hf:"
HF_DEFAULT_SPLITS = ("valid", "validation", "val", "train")  # the first a dataset has is read


@dataclass
class LabelledImages:
    data: torch.Tensor  # (N, 3 * size * size) in [0, 1]
    labels: torch.Tensor  # (N,) class indices
    classes: list[str]
    unreadable: int = 0  # files skipped
    grey: int = 0  # single-channel images dropped
    source: str = ""  # which layout was read, for the user


class _Grey(Exception):
    pass


def read_labelled_images(source: str | os.PathLike, size: int, *, max_per_class: Optional[int] = None,
                         class_key: Optional[str] = None, split: Optional[str] = None,
                         drop_grey: bool = True, progress: bool = True) -> LabelledImages:
    """Read any layout above into (N, 3*size*size) pixels with labels; see the module docstring."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        return _read_hf(text[len(HF_PREFIX):], size, split, class_key, max_per_class, drop_grey, progress)
    root = Path(source)
    if root.suffix.lower() in (".csv", ".tsv"):
        if path_kind(root, "dataset file") != "file":
            raise ClipagError(f"dataset file not found: {root}")
        if not class_key:
            raise ClipagError(f"{root} is a CSV; name its class column with --class-column (e.g. subcategory)")
        classes, files, what = _csv_files(root, class_key, max_per_class)
    else:
        if path_kind(root, "dataset folder") != "dir":
            raise ClipagError(f"dataset folder not found: {root}; give a folder with one sub-folder per class")
        classes, files, what = _folder_files(root, split, max_per_class)
    if not files:
        raise ClipagError(f"no images found under {root}; expected {root}/CLASS_NAME/IMAGE.png")
    images = ((label, _open(path)) for label, path in files)
    return _collect(images, len(files), classes, size, drop_grey, progress, what)


# ---------------------------------------------------------------- layouts on disk

def _folder_files(root: Path, split: Optional[str], limit: Optional[int]):
    if (root / "wnids.txt").is_file() and (root / "val" / "val_annotations.txt").is_file():
        split = split or "val"
        if split not in ("val", "train"):
            raise ClipagError(f"Tiny-ImageNet has the splits val and train (test has no labels); got {split!r}")
        root = root / split
    elif split:
        raise ClipagError(f"--split is for Tiny-ImageNet roots and hf: datasets; {root} is a plain image folder")
    if (root / "val_annotations.txt").is_file():
        return _tiny_imagenet_val(root, limit)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(c, p) for c, name in enumerate(classes) for p in _class_files(root / name, limit)]
    return _readable_names(classes, root), files, f"class folders of {root}"


def _tiny_imagenet_val(root: Path, limit: Optional[int]):
    """Tiny-ImageNet's val/: images/NAME.JPEG, labelled by val_annotations.txt (NAME<TAB>WNID<TAB>box)."""
    by_class: dict[str, list[Path]] = {}
    for line in (root / "val_annotations.txt").read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            by_class.setdefault(fields[1], []).append(root / "images" / fields[0])
    ids = sorted(by_class)
    files = [(c, p) for c, wnid in enumerate(ids) for p in sorted(by_class[wnid])[:limit]]
    return _readable_names(ids, root), files, f"Tiny-ImageNet validation split ({root}/val_annotations.txt)"


def _readable_names(ids: list[str], root: Path) -> list[str]:
    """WordNet ids -> the first name in a words.txt beside the data (or one level up); others unchanged."""
    for folder in (root, root.parent):
        words = folder / "words.txt"
        if words.is_file():
            names = dict(line.split("\t", 1) for line in words.read_text(encoding="utf-8", errors="replace")
                         .splitlines() if "\t" in line)
            readable = [names.get(i, i).split(",")[0].strip() or i for i in ids]
            return readable if len(set(readable)) == len(readable) else ids  # names must stay unique
    return ids


def _class_files(folder: Path, limit: Optional[int]) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


def _csv_files(csv_path: Path, class_key: str, limit: Optional[int], image_key: str = "filepath"):
    """Each image counts once however many rows (captions) name it."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if csv_path.suffix.lower() == ".tsv" else ",")
            if not {image_key, class_key} <= set(reader.fieldnames or []):
                raise ClipagError(f"{csv_path} lacks the column {class_key!r} or {image_key!r}; it has "
                                  f"{reader.fieldnames}; choose with --class-column")
            rows = [row for row in reader if row.get(image_key) and row.get(class_key) is not None]
    except UnicodeDecodeError:
        raise ClipagError(f"cannot read {csv_path}: it is not UTF-8 text; save it as UTF-8") from None
    except csv.Error as err:
        raise ClipagError(f"cannot read {csv_path} as CSV ({err}); check its quoting") from None
    by_image = {row[image_key]: row[class_key] for row in rows}
    classes = sorted(set(by_image.values()))
    index = {name: i for i, name in enumerate(classes)}
    files, per_class = [], {}
    for image, name in by_image.items():
        if limit and per_class.get(name, 0) >= limit:
            continue
        per_class[name] = per_class.get(name, 0) + 1
        files.append((index[name], csv_path.parent / image))
    return classes, files, f"images listed in {csv_path}"


def _open(path: Path):
    """A thunk that opens the file when the reader gets to it (so one bad file is one skip)."""
    def load() -> Image.Image:
        with Image.open(path) as image:
            image.load()
            return image
    return load


# ---------------------------------------------------------------- Hugging Face datasets

def _read_hf(name: str, size: int, split: Optional[str], class_key: Optional[str], limit: Optional[int],
             drop_grey: bool, progress: bool) -> LabelledImages:
    try:
        import datasets
    except ImportError:
        raise ClipagError("reading hf: datasets needs the datasets library; pip install 'clipag[data]'") from None
    if not name.strip():
        raise ClipagError("empty dataset name after hf:; e.g. hf:Maysee/tiny-imagenet")
    try:
        splits = datasets.get_dataset_split_names(name)
        split = split or next((s for s in HF_DEFAULT_SPLITS if s in splits), splits[0])
        if split not in splits:
            raise ClipagError(f"{name} has no split {split!r}; it has {', '.join(splits)}")
        dataset = datasets.load_dataset(name, split=split)
    except ClipagError:
        raise
    except Exception as err:  # the library raises many kinds; all mean "cannot read this dataset"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ClipagError(f"cannot read the dataset {name!r} ({first}); give a Hub name the cache holds, "
                          f"or a local folder of its files") from None
    image_key = next((k for k, f in dataset.features.items() if isinstance(f, datasets.Image)), None)
    label_key = class_key or next((k for k, f in dataset.features.items() if isinstance(f, datasets.ClassLabel)),
                                  "label")
    if image_key is None or label_key not in dataset.features:
        raise ClipagError(f"{name} needs an image column and a class column (--class-column); it has "
                          f"{', '.join(dataset.features)}")
    feature = dataset.features[label_key]
    labels = dataset[label_key]
    if isinstance(feature, datasets.ClassLabel):
        classes, ids = list(feature.names), labels
    else:
        classes = sorted({str(v) for v in labels})
        ids = [classes.index(str(v)) for v in labels]
    rows = _limit_rows(ids, limit)
    images = ((ids[i], (lambda i=i: dataset[i][image_key])) for i in rows)
    return _collect(images, len(rows), classes, size, drop_grey, progress, f"{name}, split {split}")


def _limit_rows(ids: list[int], limit: Optional[int]) -> list[int]:
    if not limit:
        return list(range(len(ids)))
    seen: dict[int, int] = {}
    rows = []
    for row, label in enumerate(ids):
        if seen.get(label, 0) < limit:
            seen[label] = seen.get(label, 0) + 1
            rows.append(row)
    return rows


# ---------------------------------------------------------------- pixels

def _collect(images: Iterable, total: int, classes: list[str], size: int, drop_grey: bool, progress: bool,
             what: str) -> LabelledImages:
    """(label, thunk giving a PIL image) pairs -> LabelledImages; bad files skipped, grey ones dropped."""
    rows, labels, unreadable, grey = [], [], 0, 0
    for label, load in tqdm(images, total=total, desc="reading images", unit="img", disable=not progress):
        try:
            rows.append(small_pixels(load(), size, drop_grey))
            labels.append(label)
        except _Grey:
            grey += 1
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            unreadable += 1
    if not rows:
        raise ClipagError(f"none of the {total} images of {what} could be read"
                          + (f" ({grey} were grey; keep them with --keep-grey)" if grey else ""))
    present = set(labels)
    empty = [name for c, name in enumerate(classes) if c not in present]
    if empty:
        raise ClipagError(f"class {empty[0]!r} has no readable images; remove it or add images")
    return LabelledImages(torch.from_numpy(np.stack(rows)), torch.tensor(labels), list(classes),
                          unreadable, grey, what)


def small_pixels(image: Image.Image, size: int, drop_grey: bool = True) -> np.ndarray:
    """A PIL image -> (3*size*size,) float32 in [0, 1], antialiased bilinear, transparency on white."""
    if drop_grey and image.mode in GREY_MODES:
        raise _Grey()
    rgba = image.convert("RGBA")
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]  # (1, 3, H, W)
    small = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return small[0].reshape(-1).numpy()

