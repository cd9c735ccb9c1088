"""Writing outputs a person can look at: PNGs, grids, trajectory strips, GIFs, settings JSON.

Every write is atomic (clipag.files, whose helpers this module re-exports); output names within one
call come from `unique_stems`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
import struct
import unicodedata
import zlib
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .files import (atomic_path, check_out_dir, check_out_file, inside, path_kind, plain_json,  # re-exported
                    remove_stale_temps, save_json)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0,1] -> RGB PIL image."""
    array = (image.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255).round()
    return Image.fromarray(array.astype(np.uint8))


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        to_pil(image).save(tmp, format="PNG")


def earlier_result(stem: str | os.PathLike, identity: dict, overwrite: bool = False) -> Optional[dict]:
    """A re-run's view of the result at `stem`: its record when it was made with the same `identity`
    (model, prompt, seed, settings: it is skipped), None when absent or `overwrite`; a ClipagError when
    it was made with other settings, so nothing a user made is silently replaced.
    """
    from .errors import ClipagError
    if overwrite:
        return None
    record = finished_result(stem)
    if record is None:
        return None
    wanted = plain_json(identity)
    changed = [key for key, value in wanted.items() if record.get(key) != value]
    if not changed:
        return record
    raise ClipagError(f"{Path(stem).with_suffix('.png')} was made with other {', '.join(changed)}; "
                      f"pass --overwrite to replace it, or choose another --out")


DISPLAY_SIDE = 128  # pictures meant for a person (grids, trajectories, GIFs) show tiles at least this wide


def enlarged(images: Sequence[torch.Tensor], min_side: int) -> list[torch.Tensor]:
    """(3, H, W) images narrower than `min_side` enlarged by a whole factor, nearest-neighbour, so that a
    32 px picture shows its pixels on a screen instead of a speck; wider ones are returned as they are."""
    scale = max(1, -(-min_side // images[0].shape[-1]))  # ceil
    if scale == 1:
        return list(images)
    return [torch.nn.functional.interpolate(i[None].detach().float(), scale_factor=scale, mode="nearest")[0]
            for i in images]


def image_grid(images: Sequence[torch.Tensor], columns: int, pad: int = 2, min_side: int = 0) -> torch.Tensor:
    """Equal-size (3, H, W) images -> one (3, H', W') grid on a white background, row by row (tiles narrower
    than `min_side` enlarged, see `enlarged`)."""
    images = enlarged(images, min_side)
    h, w = images[0].shape[-2:]
    rows = (len(images) + columns - 1) // columns
    grid = torch.ones(3, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[:, top:top + h, left:left + w] = image.detach().float().cpu().clamp(0, 1)
    return grid


def titled_grid(images: Sequence[torch.Tensor], columns: int, titles: Sequence[str], min_side: int = 128,
                pad: int = 2) -> torch.Tensor:
    """image_grid with a title over each column (each title up to two lines, split at its first space).
    Tiles narrower than `min_side` are enlarged, nearest-neighbour, so that the titles fit over them."""
    from PIL import ImageDraw
    images = enlarged(images, min_side)
    w = images[0].shape[-1]
    grid = to_pil(image_grid(images, columns, pad))
    header = 28
    sheet = Image.new("RGB", (grid.width, grid.height + header), "white")
    sheet.paste(grid, (0, header))
    draw = ImageDraw.Draw(sheet)
    chars = max(4, w // 6)  # the default bitmap font is about 6 px a character
    for c, title in enumerate(titles[:columns]):
        first, _, rest = title.partition(" ")
        for line, text in enumerate((first, rest) if rest else (first,)):
            draw.text((pad + c * (w + pad) + 2, 2 + 12 * line), text[:chars], fill="black")
    return torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255).permute(2, 0, 1)


def save_gif(frames: Sequence[torch.Tensor], path: str | os.PathLike, frame_ms: int = 100) -> None:
    pictures = [to_pil(f) for f in frames]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=frame_ms, loop=0)


def save_trajectory(frames: Sequence[torch.Tensor], stem: str | os.PathLike) -> dict[str, str]:
    """A run's frames as STEM-trajectory.png (a strip) and STEM.gif, for a person to look at (tiles at
    least DISPLAY_SIDE wide); returns both paths for its record."""
    paths = {"trajectory": f"{stem}-trajectory.png", "gif": f"{stem}.gif"}
    frames = enlarged(list(frames), DISPLAY_SIDE)
    save_png(image_grid(frames, columns=len(frames)), paths["trajectory"])
    save_gif(frames, paths["gif"])
    return paths


def slugify(text: str, max_length: int = 60) -> str:
    """Readable ASCII file name: accents folded ("café" -> "cafe"), other characters become dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", _ascii_fold(text)).strip("-")
    return slug[:max_length].rstrip("-") or "prompt"


def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def unique_stems(texts: Sequence[str], max_length: int = 60) -> list[str]:
    """One file stem per text, distinct within the call: the slug, plus a short hash of the text when
    the slug says nothing (non-Latin text) or another text of the call gives the same slug.

    A text keeps the same stem whatever else is asked beside it unless their slugs collide.
    """
    slugs = [slugify(t, max_length) for t in texts]
    counts: dict[str, set] = {}
    for text, slug in zip(texts, slugs):
        counts.setdefault(slug, set()).add(text)
    stems = []
    for text, slug in zip(texts, slugs):
        lossy = not re.search(r"[a-z0-9]", _ascii_fold(text))
        stems.append(f"{slug}-{short_hash(text)}" if lossy or len(counts[slug]) > 1 else slug)
    return stems


def results_per_seed(out_dir: str | os.PathLike, text: str, seeds: Sequence[int], identity: dict,
                     make: Callable[[int, Path], dict], overwrite: bool = False) -> list[dict]:
    """One result per distinct seed at OUT/STEM-seedN (STEM from `unique_stems([text])`), made by
    `make(seed, stem)` unless an earlier one with the same `identity` (plus the seed) is kept.

    Every earlier result is checked before the first is made, so a conflict costs no compute.
    """
    stem = unique_stems([text])[0]
    stems = {seed: Path(out_dir) / f"{stem}-seed{seed}" for seed in dict.fromkeys(seeds)}
    earlier = {seed: earlier_result(path, {**identity, "seed": seed}, overwrite) for seed, path in stems.items()}
    return [{**earlier[seed], "skipped": True} if earlier[seed] else make(seed, path)
            for seed, path in stems.items()]


def environment() -> dict:
    """Versions of what produced an output, for its settings JSON."""
    versions = {"python": platform.python_version()}
    for package in ("clipag", "torch", "open-clip-torch", "kornia", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "platform": platform.platform(), "accelerator": _accelerator()}


def _accelerator() -> str | None:
    """The GPU's name where CUDA is up (a model card says where each stage ran), else None."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def save_result(image: torch.Tensor, record: dict, stem: str | os.PathLike,
                companions: Sequence[Callable[[], dict | None]] = ()) -> dict:
    """A picture and its settings JSON as a pair: both change, or (after a kill) the JSON is gone.

    The JSON is the pair's commit mark, written last: the old one is removed before the new picture
    replaces the old, so a kill in between leaves a picture with no JSON, which `finished_result` treats
    as not done, never a new picture beside an old record. `companions` write the result's other files
    (SVG, GIF, strip) in between; a dict they return joins the record. The JSON records the picture's
    sha256; returns the record as written.
    """
    stem = Path(stem)
    png, record_path = stem.with_suffix(".png"), stem.with_suffix(".json")
    record_path.unlink(missing_ok=True)
    with atomic_path(png) as tmp:
        to_pil(image).save(tmp, format="PNG")
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    record = {**record, "image": str(png)}
    for write in companions:
        record.update(write() or {})
    record["image_sha256"] = digest
    save_json(record, record_path)
    return record


def finished_result(stem: str | os.PathLike) -> Optional[dict]:
    """The record of a complete result at `stem` (PNG and JSON that match), else None."""
    stem = Path(stem)
    png, record_path = stem.with_suffix(".png"), stem.with_suffix(".json")
    try:
        record = json.loads(record_path.read_text())
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("image_sha256") != digest:
        return None
    return record


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file -> (1, 3, size, size) in [0,1]: centre-cropped square, transparency on white."""
    return square_tensor(read_picture(path), size).unsqueeze(0)


def load_image_resized(path: str | os.PathLike, width: int, height: int) -> torch.Tensor:
    """An image file -> (1, 3, height, width) in [0,1], resized to exactly that (bicubic, aspect not kept),
    as CLIPStyler loads its content image; transparency on white."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    image = TF.resize(read_picture(path), [height, width], interpolation=InterpolationMode.BICUBIC)
    return TF.to_tensor(image).unsqueeze(0)


def read_csv(path: str | os.PathLike, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV file that has `columns`, each a dict with those columns filled.

    Text that is not UTF-8, a malformed CSV, missing columns and rows short of a needed cell are
    one-line ClipagErrors naming the file (and the row)."""
    from .errors import ClipagError
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            names = reader.fieldnames or []
            missing = [c for c in columns if c not in names]
            if missing:
                raise ClipagError(f"{path} has no column {missing[0]!r} (its columns: {', '.join(names) or 'none'}); "
                                  f"add it or name another column")
            rows = list(reader)
    except UnicodeDecodeError:
        raise ClipagError(f"cannot read {path}: it is not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as err:
        raise ClipagError(f"cannot read {path} as CSV ({err}); check its quoting") from None
    except OSError as err:
        raise ClipagError(f"cannot read {path} ({err.strerror})") from None
    for number, row in enumerate(rows, start=2):
        if any(row.get(c) is None for c in columns):
            raise ClipagError(f"{path}, line {number}: a row without {' and '.join(columns)}; fill or delete it")
    return rows


def read_picture(path: str | os.PathLike) -> Image.Image:
    """`read_rgb` with a one-line ClipagError for a file that is not a readable image."""
    from .errors import ClipagError
    try:
        return read_rgb(path)
    except DECODE_ERRORS as err:  # missing, not an image, truncated, or a decompression bomb
        raise ClipagError(f"cannot read image {path} ({type(err).__name__}); give a PNG or JPEG file") from None


def square_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB (or RGBa) PIL image -> (3 (or 4), size, size) in [0,1]: shortest side resized to `size`
    (bicubic), centre crop."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    image = TF.resize(image, size, interpolation=InterpolationMode.BICUBIC)
    return TF.to_tensor(TF.center_crop(image, size))


# What PIL and its codecs raise on truncated, corrupt or non-image files (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def read_premultiplied(path: str | os.PathLike) -> Image.Image:
    """Open an image as premultiplied RGBA (PIL's "RGBa"), so that resizing does not bleed the colour of
    transparent pixels into the edges; opaque formats get alpha 1."""
    with Image.open(path) as image:
        return image.convert("RGBA").convert("RGBa")


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB, compositing any transparency onto white (emoji, drawings)."""
    with Image.open(path) as image:
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
