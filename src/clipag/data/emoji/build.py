"""`build_emoji_dataset`: the pictures, captions, held-out split, licences and counts of the emoji set."""
from __future__ import annotations

import csv
import io
import random
import statistics
from collections import Counter
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ...errors import ClipagError
from ...files import atomic_path, inside, save_json
from .datasource import Emoji, captions, read_emoji
from .iconify import IconSet, Licence, cldr_names, match_icons, rasterise
from .packages import DATASOURCE, ICONIFY, Package, find_packages

DATASOURCE_SIZE = 64  # emoji-datasource's largest PNGs, img/STYLE/64/
DATASOURCE_LICENCES = {
    "twitter": Licence("Twemoji", "CC-BY-4.0", "CC-BY 4.0", "https://creativecommons.org/licenses/by/4.0/",
                       "Twitter, Inc. and other contributors", "https://github.com/twitter/twemoji"),
    "google": Licence("Noto Color Emoji", "Apache-2.0", "Apache License 2.0",
                      "https://www.apache.org/licenses/LICENSE-2.0", "Google Inc.",
                      "https://github.com/googlefonts/noto-emoji"),
}
METADATA_LICENCE = "emoji.json from emoji-datasource by Cal Henderson (iamcal), MIT licence"
CSV_FIELDS = ("filepath", "title", "name", "subcategory", "category", "style")


FORMATS = ("png", "webp")


def build_emoji_dataset(source: Path, out: Path, holdout: float = 0.1, seed: int = 0, size: int = 64,
                        progress: bool = False, image_format: str = "png") -> dict:
    """Rebuild the emoji training set from the npm packages in `source`; returns the manifest it writes.

    Names come from emoji-datasource; its PNGs are copied (resized when `size` is not 64), and each
    Iconify set found adds a picture, rasterised at `size` px, of every emoji it draws. The held-out
    names, a seeded share `holdout` of the base emoji, depend only on emoji-datasource, so adding a
    style never moves a name between train.csv and heldout.csv. `image_format="webp"` stores the
    pictures as lossless WebP (the same pixels, about 0.57x the bytes of PNG: for moving the set).
    """
    if not 0 < holdout < 1:
        raise ClipagError(f"held-out share must be between 0 and 1, got {holdout}")
    if image_format not in FORMATS:
        raise ClipagError(f"unknown picture format {image_format!r}; use png or webp")
    if not 16 <= size <= 512:
        raise ClipagError(f"picture size {size} is out of range; use 16 to 512 px")
    out = Path(out)
    packages = find_packages(Path(source))
    datasource = {style: read_emoji(p) for style, p in packages.items() if style in DATASOURCE}
    icon_sets = [IconSet(p) for style, p in packages.items() if style in ICONIFY]
    everyone = _all_emoji(packages, datasource)
    for e in everyone:  # before anything is written
        _check_image_name(e.image)
    held = holdout_names([e.base for emoji in datasource.values() for e in emoji], holdout, seed)

    rows = {"train": [], "heldout": []}
    pictures, missing = Counter(), 0
    for style, emoji in datasource.items():
        missing += _add_pictures(style, emoji, lambda e, p=packages[style]: _datasource_png(p, e, size),
                                 out, held, rows, pictures, progress, image_format)
    names = cldr_names(icon_sets)
    matched = {}
    for icon_set in icon_sets:
        icons = match_icons(icon_set, everyone, names)
        matched[icon_set.style] = len(icons)
        drawn = [e for e in everyone if e.key in icons]
        render = lambda e, s=icon_set, i=icons: rasterise(s.svg(s.icon(i[e.key]), size), size)
        _add_pictures(icon_set.style, drawn, render, out, held, rows, pictures, progress, image_format)

    for split, split_rows in rows.items():
        _write_csv(out / f"{split}.csv", split_rows)
    with atomic_path(out / "heldout.txt") as tmp:
        tmp.write_text("\n".join(sorted(held)) + "\n")
    licences = {**{s: DATASOURCE_LICENCES[s] for s in datasource}, **{s.style: s.licence for s in icon_sets}}
    _write_licences(out / "LICENSES.md", packages, licences, size)
    manifest = {
        "styles": sorted(packages), "emoji": len({e.base for e in everyone}), "size": size,
        "images": {style: sum(n for (s, _), n in pictures.items() if s == style) for style in packages},
        "missing_images": missing, "icons_matched": matched,
        "icons_refused": {s.style: s.refused for s in icon_sets},
        "pictures_per_name": _spread(pictures, everyone, by="name"),
        "pictures_per_base_emoji": _spread(pictures, everyone, by="base"),
        "heldout_emoji": len(held), "heldout_share": holdout, "seed": seed,
        "rows": {split: len(r) for split, r in rows.items()}, "format": image_format,
        "packages": {p.name: p.version() for p in packages.values()},
        "licences": {style: licence.spdx for style, licence in licences.items()},
    }
    save_json(manifest, out / "manifest.json")
    return manifest


def holdout_names(bases: list[str], share: float, seed: int) -> set[str]:
    names = sorted(set(bases))
    count = max(1, round(share * len(names)))
    return set(random.Random(seed).sample(names, count))


def _all_emoji(packages: dict[str, Package], datasource: dict[str, list[Emoji]]) -> list[Emoji]:
    """Every emoji emoji-datasource names, pictured there or not, once each (the first package's list)."""
    first = next(style for style in DATASOURCE if style in datasource)
    return list({e.key: e for e in read_emoji(packages[first], only_with_images=False)}.values())


def _add_pictures(style, emoji, picture_of, out, held, rows, pictures, progress, image_format="png") -> int:
    """Write each emoji's picture under images/STYLE/ and its caption rows; returns how many had none."""
    missing = 0
    for e in tqdm(emoji, desc=style, unit="emoji", disable=not progress, leave=False):
        picture = picture_of(e)
        if picture is None:
            missing += 1
            continue
        relative = f"images/{style}/{e.image}"
        if image_format == "webp":
            relative, picture = relative.rsplit(".", 1)[0] + ".webp", _lossless_webp(picture)
        with atomic_path(inside(out, relative, what="image name in emoji.json")) as tmp:
            tmp.write_bytes(picture)
        pictures[(style, e.name)] += 1
        split = "heldout" if e.base in held else "train"
        for caption in captions(e):
            rows[split].append((relative, caption, e.name, e.subcategory, e.category, style))
    return missing


def _datasource_png(package: Package, emoji: Emoji, size: int):
    picture = package.read(f"img/{package.style}/{DATASOURCE_SIZE}/{emoji.image}")
    if picture is None or size == DATASOURCE_SIZE:
        return picture
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(picture)) as image:
        image.convert("RGBA").resize((size, size), Image.LANCZOS).save(buffer, format="PNG")
    return buffer.getvalue()


def _lossless_webp(png: bytes) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGBA").save(buffer, format="WEBP", lossless=True, quality=100, method=6, exact=True)
    return buffer.getvalue()


def _spread(pictures: Counter, emoji: list[Emoji], by: str) -> dict:
    """min / median / mean / max pictures per name (or per base emoji, skin tones together)."""
    base_of = {e.name: e.base for e in emoji}
    counts = Counter()
    for (_, name), n in pictures.items():
        counts[name if by == "name" else base_of.get(name, name)] += n
    values = sorted(counts.values()) or [0]
    return {"count": len(counts), "min": values[0], "median": statistics.median(values),
            "mean": round(statistics.fmean(values), 2), "max": values[-1]}


def _check_image_name(name: str) -> None:
    """emoji.json's `image` must be a plain file name such as 1f34e.png: nothing else is written."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise ClipagError(f"refusing image name {name!r} in emoji.json: not a plain file name; "
                          f"the package is damaged or crafted")


def _write_csv(path: Path, rows: list[tuple]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        writer.writerows(rows)


def _write_licences(path: Path, packages: dict[str, Package], licences: dict[str, Licence], size: int) -> None:
    lines = ["# Licences and attribution of the emoji data", ""]
    for style, licence in licences.items():
        package = packages[style]
        how = ("PNG copied unchanged" if style in DATASOURCE and size == DATASOURCE_SIZE else
               f"PNG resized to {size} px" if style in DATASOURCE else f"SVG rasterised with resvg at {size} px")
        lines.append(f"- images/{style}/: {licence.set_name} by {licence.author} ({licence.author_url}), "
                     f"{licence.title} ({licence.url}); from the npm package {package.name}@{package.version()}, "
                     f"{how}.")
    lines += [f"- captions: built from {METADATA_LICENCE}", "",
              "Captions are derived from the emoji names. Pictures under a ShareAlike licence (CC-BY-SA) "
              "stay under it."]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
