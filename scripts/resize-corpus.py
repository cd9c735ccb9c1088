"""Copy an image-caption corpus (CSV files beside an images folder) with every picture stored already
resized to SIZE px, the way clipag's loader resizes it (premultiplied alpha, bicubic, centre crop).

Why: a device machine takes at most 64 MiB of files per call; the 32 px emoji corpus is a fraction of
the full one. The loader then reads each picture at its stored size, so the tensors it trains on differ
from the full corpus's only by 8-bit rounding of the resized pixels.

    python scripts/resize-corpus.py data/emoji data/emoji32 32
"""
import shutil
import sys
from pathlib import Path

from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from clipag.io import read_premultiplied


def resize_corpus(src: Path, dst: Path, size: int) -> int:
    count = 0
    for path in sorted((src / "images").rglob("*.png")):
        image = TF.resize(read_premultiplied(path), size, interpolation=InterpolationMode.BICUBIC)
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        TF.center_crop(image, size).convert("RGBA").save(out, optimize=True)
        count += 1
    for meta in src.iterdir():
        if meta.is_file():
            shutil.copy2(meta, dst / meta.name)
    return count


if __name__ == "__main__":
    src, dst, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    print(f"{resize_corpus(src, dst, size)} pictures at {size} px in {dst}")
