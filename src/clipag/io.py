"""Writing outputs a person can look at: PNGs, grids, trajectory strips, GIFs, settings JSON.

Every write goes to a temporary file in the same folder and is renamed into place, so an interrupted
run never leaves a half-written file where a good one was.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import struct
import tempfile
import zlib
from importlib import metadata
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0,1] -> RGB PIL image."""
    array = (image.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255).round()
    return Image.fromarray(array.astype(np.uint8))


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        to_pil(image).save(tmp, format="PNG")


def save_json(data: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def image_grid(images: Sequence[torch.Tensor], columns: int, pad: int = 2) -> torch.Tensor:
    """Equal-size (3, H, W) images -> one (3, H', W') grid on a white background, row by row."""
    h, w = images[0].shape[-2:]
    rows = (len(images) + columns - 1) // columns
    grid = torch.ones(3, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[:, top:top + h, left:left + w] = image.detach().float().cpu().clamp(0, 1)
    return grid


def save_gif(frames: Sequence[torch.Tensor], path: str | os.PathLike, frame_ms: int = 100) -> None:
    pictures = [to_pil(f) for f in frames]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=frame_ms, loop=0)


def save_trajectory(frames: Sequence[torch.Tensor], stem: str | os.PathLike) -> dict[str, str]:
    """A run's frames as STEM-trajectory.png (a strip) and STEM.gif; returns both paths for its record."""
    paths = {"trajectory": f"{stem}-trajectory.png", "gif": f"{stem}.gif"}
    save_png(image_grid(list(frames), columns=len(frames)), paths["trajectory"])
    save_gif(frames, paths["gif"])
    return paths


def slugify(text: str, max_length: int = 60) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "prompt"


def environment() -> dict:
    """Versions of what produced an output, for its settings JSON."""
    versions = {"python": platform.python_version()}
    for package in ("clipag", "torch", "open-clip-torch", "kornia", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "platform": platform.platform()}


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file -> (1, 3, size, size) in [0,1]: centre-cropped square, transparency on white."""
    from .errors import ClipagError
    try:
        rgb = read_rgb(path)
    except (OSError, ValueError) as err:
        raise ClipagError(f"cannot read image {path} ({type(err).__name__}); give a PNG or JPEG file") from None
    return square_tensor(rgb, size).unsqueeze(0)


def square_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> (3, size, size) in [0,1]: shortest side resized to `size` (bicubic), centre crop."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    image = TF.resize(image, size, interpolation=InterpolationMode.BICUBIC)
    return TF.to_tensor(TF.center_crop(image, size))


# What PIL and its codecs raise on truncated, corrupt or non-image files (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB, compositing any transparency onto white (emoji, drawings)."""
    with Image.open(path) as image:
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
