"""Image-caption pairs for `clipag train`, from CSV/TSV files, webdataset shards and caption folders.

A source is a spec string, optionally with a fraction appended as `SPEC@FRACTION` (0 < FRACTION <= 1):

  data.csv, data.tsv            a header row, an image path column (`filepath`) and a caption column
                                (`title`), OpenCLIP's convention; relative paths are relative to the
                                file's folder. Map-style.
  shard.tar, dir/{00000..00099}.tar, dir/ holding *.tar
                                webdataset shards in img2dataset's layout: KEY.jpg (or .jpeg, .png,
                                .webp) with KEY.txt. Streamed (an IterableDataset).
  dir/                          images with a caption file next to each: dir/**/NAME.jpg + NAME.txt;
                                images without one are ignored, with a warning. Map-style.

Several specs are concatenated without resampling, each reduced to its fraction: a map-style source
keeps a seeded random subset of round(FRACTION * N) items (at least 1), fixed for the run; a streamed
source keeps each sample with probability FRACTION, decided by a seeded hash of the shard's file
name and the sample's key, so every rank, worker and epoch agrees, wherever the shards are stored or
served from (two sources whose shards share file names and keys therefore keep the same samples).
If every source is map-style the result is map-style (a Subset, or a ConcatDataset of them); if any
is streamed, the result streams the map-style parts (in a seeded order) and the shards one after
another, split by rank and DataLoader worker.

Every item is (image (3, S, S) float in [0,1], caption str), or None where the image or caption cannot
be read; `collate` drops the Nones and counts them. Images are not mean/std-normalised (the training
attack works in pixel space); preprocessing is deterministic: the shortest side is resized to S
(bicubic), then the centre S x S is cropped, so a seeded run is exactly reproducible.

What is used and what is written here: webdataset reads the tar shards (tar streaming, grouping files
into samples by key, local files, URLs and `pipe:` commands). CSV files and caption folders are small
map-style datasets over the csv module and a file walk. The rank/worker split is written here (it does
what webdataset's split_by_node and split_by_worker do) so that one rule serves the shards and the
map-style parts of a mixture, rank is taken from torch.distributed (webdataset reads RANK from the
environment first), and the split falls back to every n-th sample when shards are fewer than the
rank x worker slots, where whole-shard splitting would leave some slots without data.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shlex
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, IterableDataset, Subset, get_worker_info

from ..errors import ClipagError
from ..io import DECODE_ERRORS, path_kind, read_premultiplied, read_rgb, square_tensor

Sample = Optional[tuple[torch.Tensor, str]]  # (image (3, S, S) in [0,1], caption), None when unreadable
TAR_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
FOLDER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
SUPPORTED = ("a .csv/.tsv file, a webdataset .tar shard, a brace pattern like dir/{00000..00009}.tar, "
             "a folder of .tar shards, or a folder of images with NAME.txt captions")


# ---------------------------------------------------------------- public API

def parse_source(spec: str) -> tuple[str, float]:
    """'SPEC@FRACTION' -> (SPEC, FRACTION); a spec without '@FRACTION' keeps everything (1.0)."""
    path, at, tail = spec.rpartition("@")
    if not at:
        return spec, 1.0
    try:
        fraction = float(tail)
    except ValueError:
        if os.path.exists(spec):  # an '@' that is part of a file name
            return spec, 1.0
        fraction = float("nan")
    if not 0 < fraction <= 1:  # NaN fails too
        raise ClipagError(f"bad fraction {tail!r} in data source {spec!r}; write SPEC@FRACTION with "
                          f"0 < FRACTION <= 1, e.g. {path or 'data.csv'}@0.5")
    return path, fraction


def build_dataset(specs: Union[str, Sequence[str]], image_size: int, seed: int = 0,
                  csv_img_key: str = "filepath", csv_caption_key: str = "title",
                  csv_separator: Optional[str] = None, rank: Optional[int] = None,
                  world_size: Optional[int] = None, alpha: bool = False) -> Dataset:
    """Source specs -> one dataset of (image (3, S, S) in [0,1], caption) items (None when unreadable).

    With `alpha`, images are (4, S, S): premultiplied RGB and opacity (1 for opaque formats), what
    `clipag train --augment` composites over its backgrounds.

    Map-style when every source is; otherwise a `StreamingDataset`. `csv_separator` defaults to a tab
    for .tsv files and a comma otherwise. `rank`/`world_size` default to torch.distributed's when it
    is initialised (so build the dataset after init_process_group), else 0/1; they only matter for
    streaming datasets (map-style ones are split by the DataLoader's sampler).
    """
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise ClipagError("no training data given; pass one or more data sources: " + SUPPORTED)
    if image_size < 1:
        raise ClipagError(f"image size {image_size} must be a positive number of pixels")
    parts = [_open_source(spec, image_size, seed, csv_img_key, csv_caption_key, csv_separator, alpha)
             for spec in specs]
    if not any(isinstance(part, Shards) for part in parts):
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)
    rank, world_size = _rank_and_world(rank, world_size)
    return StreamingDataset(parts, image_size, seed, rank, world_size, alpha)


class ImageCache(Dataset):
    """A map-style dataset whose items are decoded once and then kept in memory as 8-bit pixels.

    For small datasets read many epochs over (the emoji set: 16k rows, 200 MB at 64 px), where PNG
    decoding, not the model, would bound the speed. Each DataLoader worker keeps its own cache, so use
    it with few workers (0 is often fastest). Pixels are rounded to 1/255, which is exact for 8-bit
    images that need no resizing.
    """

    def __init__(self, dataset: Dataset):
        if is_streaming(dataset):
            raise ClipagError("--cache-images needs map-style data (CSV/TSV or a caption folder), not tar shards")
        self.dataset = dataset
        self.items: dict[int, Optional[tuple[torch.Tensor, str]]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        if index not in self.items:
            item = self.dataset[index]
            self.items[index] = None if item is None else ((item[0] * 255).round().to(torch.uint8), item[1])
        item = self.items[index]
        return None if item is None else (item[0].float() / 255, item[1])


def collate(samples: Sequence[Sample]) -> dict:
    """Items -> {"images": (B, C, S, S), "captions": [B str], "skipped": count of dropped Nones}.

    When every item of a batch was unreadable, "images" is an empty (0, 3, 0, 0) tensor.
    """
    kept = [s for s in samples if s is not None]
    images = torch.stack([image for image, _ in kept]) if kept else torch.empty(0, 3, 0, 0)
    return {"images": images, "captions": [caption for _, caption in kept], "skipped": len(samples) - len(kept)}


def is_streaming(dataset: Dataset) -> bool:
    """True for datasets that can only be iterated (webdataset sources), False for map-style ones."""
    return isinstance(dataset, IterableDataset)


def count_samples(dataset: Dataset) -> Optional[int]:
    """Items over all ranks: exact for map-style data; for shards, estimated from img2dataset's
    NNNNN_stats.json files ("successes" x fraction); None when a shard has no stats file."""
    if not is_streaming(dataset):
        return len(dataset)
    if not isinstance(dataset, StreamingDataset):
        return None
    total = 0
    for part in dataset.parts:
        if isinstance(part, Shards):
            counts = [_shard_count(url) for url in part.urls]
            if None in counts:
                return None
            total += round(sum(counts) * part.fraction)
        else:
            total += len(part)
    return total


# ---------------------------------------------------------------- preprocessing

def _image(source: Union[str, os.PathLike, bytes], size: int, alpha: bool = False) -> Optional[torch.Tensor]:
    """A path or encoded bytes -> (3, size, size) in [0,1] (or (4, size, size) premultiplied RGBA with
    `alpha`), or None when it cannot be read."""
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = read_premultiplied(file) if alpha else read_rgb(file)
    except DECODE_ERRORS:
        return None
    return square_tensor(image, size)


def _text(data: bytes) -> Optional[str]:
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def _pair(image: Optional[torch.Tensor], caption: Optional[str]) -> Sample:
    return None if image is None or caption is None else (image, caption)


# ---------------------------------------------------------------- map-style sources

class CsvDataset(Dataset):
    """Rows of a CSV/TSV file with a header: image path and caption columns."""

    def __init__(self, path: Path, image_size: int, img_key: str = "filepath", caption_key: str = "title",
                 separator: Optional[str] = None, alpha: bool = False):
        self.root, self.image_size, self.alpha = path.parent, image_size, alpha
        separator = separator or ("\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets write a BOM
                reader = csv.DictReader(f, delimiter=separator)
                columns = reader.fieldnames or []
                missing = [key for key in (img_key, caption_key) if key not in columns]
                if missing:
                    raise ClipagError(f"{path} has no column {', '.join(map(repr, missing))} (its columns: "
                                      f"{', '.join(columns) or 'none'}); name the image and caption columns "
                                      f"with --csv-img-key / --csv-caption-key")
                rows = [(row[img_key], row[caption_key]) for row in reader]
        except (UnicodeDecodeError, csv.Error) as err:
            raise ClipagError(f"cannot read {path} as UTF-8 CSV ({err}); save it as UTF-8 text") from None
        except OSError as err:
            raise ClipagError(f"cannot read {path} ({err.strerror}); check that it is a readable file") from None
        self.images = [image for image, _ in rows]  # None where a row is short
        self.captions = [caption for _, caption in rows]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        image, caption = self.images[index], self.captions[index]
        if not image or caption is None:
            return None
        return _pair(_image(self.root / image, self.image_size, self.alpha), caption.strip())


class CaptionFolder(Dataset):
    """Images under a folder, each with its caption in a .txt file of the same name beside it."""

    def __init__(self, root: Path, image_size: int, alpha: bool = False):
        self.image_size, self.alpha = image_size, alpha
        images = sorted(p for p in root.rglob("*") if p.suffix.lower() in FOLDER_IMAGE_SUFFIXES)
        self.images = [p for p in images if p.with_suffix(".txt").is_file()]
        uncaptioned = len(images) - len(self.images)
        if uncaptioned:
            warnings.warn(f"{uncaptioned} of {len(images)} images under {root} have no caption file "
                          f"(NAME.txt beside NAME.jpg) and are ignored", UserWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        path = self.images[index]
        try:
            caption = _text(path.with_suffix(".txt").read_bytes())
        except OSError:
            caption = None
        return _pair(_image(path, self.image_size, self.alpha) if caption is not None else None, caption)


def _subset(dataset: Dataset, fraction: float, seed: int, name: str) -> Dataset:
    """A seeded random round(fraction * N) items (at least 1), in file order; smaller fractions nest."""
    if fraction == 1:
        return dataset
    n = len(dataset)
    keep = max(1, round(fraction * n))
    order = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(n)
    return Subset(dataset, sorted(order[:keep].tolist()))


# ---------------------------------------------------------------- streamed sources

@dataclass
class Shards:
    """webdataset shards of one source, and the share of their samples to keep."""
    urls: list[str]
    fraction: float = 1.0


class StreamingDataset(IterableDataset):
    """Map-style parts (seeded order) and webdataset shards, one after another, split by rank and worker.

    Yields None for each unreadable sample so that `collate` counts it. `set_epoch` changes the order
    of map-style items and shards (seeded by seed and epoch); which samples a fraction keeps never
    changes; DataLoader workers copy the dataset when an epoch starts, so call it before iterating
    (with persistent_workers it would not reach them). With fewer shards than rank x worker slots every
    slot reads every shard and keeps every n-th sample. Ranks can get unequal numbers of samples
    (whole shards, fractions), so a DDP loop should run a fixed number of steps per epoch or stop all
    ranks when one runs out.
    """

    def __init__(self, parts: list[Union[Dataset, Shards]], image_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, alpha: bool = False):
        self.parts, self.image_size, self.seed, self.alpha = parts, image_size, seed, alpha
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Sample]:
        slot, slots = self._slot()
        for index, part in enumerate(self.parts):
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if isinstance(part, Shards):
                yield from self._stream(part, rng, slot, slots)
            else:
                for i in rng.permutation(len(part))[slot::slots]:
                    yield part[int(i)]

    def _slot(self) -> tuple[int, int]:
        """(this rank and worker's slot, number of slots) = (rank * workers + worker, world * workers)."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world_size * workers

    def _stream(self, part: Shards, rng: np.random.Generator, slot: int, slots: int) -> Iterator[Sample]:
        wds = _webdataset()
        urls = [part.urls[i] for i in rng.permutation(len(part.urls))]
        if len(urls) >= slots:  # whole shards per slot, as wds.split_by_node + split_by_worker
            urls, slot, slots = urls[slot::slots], 0, 1
        samples = wds.tarfile_to_samples(handler=wds.warn_and_continue)(iter([{"url": u} for u in urls]))
        for n, sample in enumerate(samples):
            if n % slots == slot and _keep(sample, part.fraction, self.seed):
                yield _tar_sample(sample, self.image_size, self.alpha)


def _keep(sample: dict, fraction: float, seed: int) -> bool:
    """Keep a sample with probability `fraction`, by a seeded hash of its shard's file name and its key
    (not the shard's full path or URL, so a moved copy of the data keeps the same samples)."""
    if fraction >= 1:
        return True
    name = f"{seed}\0{_shard_name(sample['__url__'])}\0{sample['__key__']}".encode()
    draw = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "little") / 2 ** 64  # in [0, 1)
    return draw < fraction


def _shard_name(url: str) -> str:
    """A shard's file name from its path, URL (query dropped) or `pipe:` command (the argument naming a .tar)."""
    if url.startswith("pipe:"):
        try:
            words = shlex.split(url[len("pipe:"):])
        except ValueError:  # unbalanced quotes: whitespace words are close enough
            words = url[len("pipe:"):].split()
        url = next((w for w in reversed(words) if ".tar" in w), url)
    if "://" in url:
        url = url.split("?", 1)[0]
    return re.split(r"[/\\]", url.rstrip("/\\"))[-1]


def _tar_sample(sample: dict, size: int, alpha: bool = False) -> Sample:
    """A webdataset sample dict (ext -> bytes) -> (image, caption), or None."""
    data = next((sample[ext] for ext in TAR_IMAGE_EXTS if ext in sample), None)
    text = sample.get("txt")
    if data is None or text is None:
        return None
    caption = _text(text)
    return _pair(_image(data, size, alpha) if caption is not None else None, caption)


def _shard_count(url: str) -> Optional[int]:
    """Samples in a shard from img2dataset's NNNNN_stats.json beside NNNNN.tar, or None."""
    stats = Path(url).with_name(Path(url).stem + "_stats.json")
    try:
        return int(json.loads(stats.read_text())["successes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise ClipagError("reading .tar shards needs webdataset; install it with "
                          "`pip install 'clipag[train]'`") from None
    return webdataset


def _rank_and_world(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        rank, world_size = rank or 0, world_size or 1
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size={world_size})")
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


# ---------------------------------------------------------------- telling sources apart

def check_sources(specs: Sequence[str]) -> None:
    """Refuse sources that cannot be opened (bad fraction, missing file or shard, unknown kind) without
    reading any, so that a run fails on them before it loads a model or writes anything."""
    for spec in specs:
        _locate(spec)


def _locate(spec: str) -> tuple[str, float, Optional[list[str]]]:
    """A spec -> (path, fraction, shard URLs or None for a CSV/TSV file or a folder)."""
    path, fraction = parse_source(spec)
    if not path.strip():
        raise ClipagError(f"empty data source {spec!r}; give {SUPPORTED}")
    if _is_tar(path):
        return path, fraction, _tar_urls(path)
    local = Path(path)
    if path_kind(local, "data source") == "missing":
        raise ClipagError(f"data source not found: {path}; give {SUPPORTED}")
    if local.is_dir():
        tars = sorted(str(p) for p in local.glob("*.tar"))
        return path, fraction, tars or None
    if local.suffix.lower() not in (".csv", ".tsv"):
        raise ClipagError(f"unknown kind of data source: {path}; supported: {SUPPORTED}")
    return path, fraction, None


def _open_source(spec: str, image_size: int, seed: int, img_key: str, caption_key: str,
                 separator: Optional[str], alpha: bool = False) -> Union[Dataset, Shards]:
    path, fraction, urls = _locate(spec)
    if urls is not None:
        return Shards(urls, fraction)
    local = Path(path)
    if local.is_dir():
        dataset = CaptionFolder(local, image_size, alpha)
    else:
        dataset = CsvDataset(local, image_size, img_key, caption_key, separator, alpha)
    if len(dataset) == 0:
        raise ClipagError(f"no samples found in {path}; a CSV needs data rows, a folder needs .tar shards "
                          f"or images with NAME.txt captions")
    return _subset(dataset, fraction, seed, path)


def _is_remote(path: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path)) or path.startswith("pipe:")


def _is_tar(path: str) -> bool:
    """A shard, a brace pattern of shards, or a URL / pipe: command naming shards."""
    lower = path.lower()
    return lower.endswith(".tar") or (".tar" in lower and ("{" in path or _is_remote(path)))


def _tar_urls(pattern: str) -> list[str]:
    """A shard path, URL or brace pattern -> shard list; local shards must exist."""
    _webdataset()
    import braceexpand  # comes with webdataset
    urls = list(braceexpand.braceexpand(pattern))
    if _is_remote(pattern):
        return urls
    missing = [url for url in urls if not Path(url).is_file()]
    if missing:
        more = f" ({len(missing)} of {len(urls)} shards of {pattern} missing)" if len(urls) > 1 else ""
        raise ClipagError(f"data source not found: {missing[0]}{more}; check the path and the brace range")
    return urls
