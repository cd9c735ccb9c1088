"""Pack the 32 px emoji corpus (scripts/resize-corpus.py) into two xz files small enough for a device
call (64 MiB in all, weights included), and unpack it there as data/emoji.

    python scripts/gpu/emoji-pack.py pack data/emoji32 gpu-carry/emoji32     # here
    python scripts/gpu/emoji-pack.py unpack gpu-carry/emoji32 data/emoji      # on the device

Why not a tar of the PNGs: one uint8 array of all pictures compresses to half of that (21 vs 42 MB).
"""
import io
import lzma
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def pack(corpus: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(corpus.glob("images/**/*.png"))
    pictures = np.stack([np.asarray(Image.open(p).convert("RGBA")) for p in paths])  # (N, S, S, 4) uint8
    buffer = io.BytesIO()
    np.save(buffer, pictures)
    (out / "pictures.npy.xz").write_bytes(lzma.compress(buffer.getvalue()))
    (out / "paths.txt").write_text("\n".join(str(p.relative_to(corpus)) for p in paths) + "\n")
    with tarfile.open(out / "tables.tar.xz", "w:xz") as tar:
        for meta in sorted(corpus.iterdir()):
            if meta.is_file():
                tar.add(meta, arcname=meta.name)
    print(f"packed {len(paths)} pictures of {corpus} into {out}")


def unpack(packed: Path, corpus: Path) -> None:
    pictures = np.load(io.BytesIO(lzma.decompress((packed / "pictures.npy.xz").read_bytes())))
    paths = (packed / "paths.txt").read_text().split()
    for relative, picture in zip(paths, pictures, strict=True):
        target = corpus / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture, "RGBA").save(target)
    with tarfile.open(packed / "tables.tar.xz") as tar:
        tar.extractall(corpus, filter="data")
    print(f"unpacked {len(paths)} pictures into {corpus}")


if __name__ == "__main__":
    verb, source, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    {"pack": pack, "unpack": unpack}[verb](source, target)
