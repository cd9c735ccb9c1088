"""The emoji training set of clipag's embedded models, rebuilt from the public npm packages.

    npm pack emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0   # into DIR
    clipag data emoji --from DIR --out data/emoji

Each package's `emoji.json` names 1,911 emoji (name, short names, category, subcategory); its
`img/STYLE/64/` folder holds a 64 px PNG of each, skin tones included (3,786 per style). The packages are
read as the .tgz files `npm pack` writes or as unpacked folders. Output, in --out:

  images/STYLE/*.png        the 64 px pictures, copied unchanged
  train.csv, heldout.csv    filepath,title (what `clipag train` reads) plus name, subcategory, category, style
  heldout.txt               the held-out emoji names, one per line
  LICENSES.md, manifest.json

A fixed, seeded share of the emoji (10% by default), with all their skin tones and both styles, is held
out of train.csv for honest evaluation. Captions come from the name, the short names and the category:
"red apple", "a red apple, food & drink", "apple".
"""
from __future__ import annotations

import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .errors import ClipagError
from .io import atomic_path, inside, path_kind, save_json

STYLES = {"twitter": "emoji-datasource-twitter", "google": "emoji-datasource-google"}
LICENCES = {
    "twitter": "Twemoji graphics, Copyright Twitter, Inc. and other contributors, CC-BY 4.0 "
               "(https://creativecommons.org/licenses/by/4.0/), via the npm package emoji-datasource-twitter",
    "google": "Noto Color Emoji graphics, Copyright Google Inc., Apache License 2.0 "
              "(https://www.apache.org/licenses/LICENSE-2.0), via the npm package emoji-datasource-google",
}
METADATA_LICENCE = "emoji.json from emoji-datasource by Cal Henderson (iamcal), MIT licence"
SKIN_TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark",
              "1F3FF": "dark"}
CSV_FIELDS = ("filepath", "title", "name", "subcategory", "category", "style")


@dataclass(frozen=True)
class Emoji:
    name: str  # lower case, skin tone included, e.g. "waving hand: medium skin tone"
    base: str  # the base emoji's name, the unit of the held-out split
    short_name: str
    category: str
    subcategory: str
    image: str  # file name inside img/STYLE/64/


class Package:
    """An emoji-datasource package, unpacked or as the .tgz that `npm pack` writes."""

    def __init__(self, path: Path, style: str):
        self.path, self.style = path, style
        self._tar = tarfile.open(path) if path.is_file() else None

    def read(self, relative: str) -> Optional[bytes]:
        """One file of the package, read in memory (an archive is never extracted to disk)."""
        if self._tar is None:
            file = inside(self.path, relative, what="package file")
            return file.read_bytes() if file.is_file() else None
        inside(self.path.parent, relative, what="package member")  # same rule for archives
        try:
            member = self._tar.getmember(f"package/{relative}")
        except KeyError:
            return None
        if not member.isfile():  # links and devices are never followed
            return None
        return self._tar.extractfile(member).read()

    def version(self) -> str:
        raw = self.read("package.json")
        try:
            manifest = json.loads(raw) if raw else {}
        except ValueError:  # not JSON, or not UTF-8
            return "?"
        return str(manifest.get("version", "?")) if isinstance(manifest, dict) else "?"

    def emoji(self) -> list[Emoji]:
        raw = self.read("emoji.json")
        if raw is None:
            raise ClipagError(f"{self.path} has no emoji.json; is it an unpacked {STYLES[self.style]} package?")
        try:
            return list(_entries(json.loads(raw), self.style))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ClipagError(f"{self.path}: emoji.json is not an emoji-datasource list ({type(err).__name__}: "
                              f"{err}); use the package as npm publishes it") from None


def find_packages(folder: Path) -> dict[str, Package]:
    """The twitter and google packages in `folder`: .tgz files, or unpacked folders up to two levels down."""
    folder = Path(folder)
    if path_kind(folder, "--from folder") != "dir":
        raise ClipagError(f"folder not found: {folder}; run `npm pack {' '.join(STYLES.values())}` in it first")
    manifests = [*folder.glob("package.json"), *folder.glob("*/package.json"), *folder.glob("*/*/package.json")]
    unpacked = {_package_name(m): m.parent for m in manifests}
    found = {}
    for style, package in STYLES.items():
        tgz = sorted(folder.glob(f"{package}-*.tgz"))
        if package in unpacked:
            found[style] = Package(unpacked[package], style)
        elif tgz:
            found[style] = Package(tgz[-1], style)
    if not found:
        raise ClipagError(f"no emoji-datasource packages in {folder}; run there: "
                          f"npm pack {' '.join(STYLES.values())}")
    return found


def _package_name(manifest: Path) -> Optional[str]:
    try:
        name = json.loads(manifest.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, or not an object
        return None
    return name if isinstance(name, str) else None


def _entries(entries: list[dict], style: str) -> Iterator[Emoji]:
    for entry in entries:
        if not entry.get(f"has_img_{style}", True):
            continue
        base = (entry.get("name") or entry["short_name"].replace("_", " ")).lower()
        common = dict(base=base, short_name=entry["short_name"], category=entry["category"],
                      subcategory=entry["subcategory"])
        yield Emoji(name=base, image=entry["image"], **common)
        for tones, variant in (entry.get("skin_variations") or {}).items():
            if variant.get(f"has_img_{style}", True):
                words = ", ".join(f"{SKIN_TONES.get(t, t)} skin tone" for t in dict.fromkeys(tones.split("-")))
                yield Emoji(name=f"{base}: {words}", image=variant["image"], **common)


def captions(emoji: Emoji) -> list[str]:
    """Two or three captions: the name, the name with its category, the short name if it adds a word."""
    category = emoji.category.lower()
    article = "an" if emoji.name[0] in "aeiou" else "a"
    result = [emoji.name, f"{article} {emoji.name}, {category}"]
    short = emoji.short_name.replace("_", " ").replace("-", " ")
    if short not in emoji.name:
        result.append(short)
    return result


def holdout_names(bases: list[str], share: float, seed: int) -> set[str]:
    names = sorted(set(bases))
    count = max(1, round(share * len(names)))
    return set(random.Random(seed).sample(names, count))


def build_emoji_dataset(source: Path, out: Path, holdout: float = 0.1, seed: int = 0) -> dict:
    """Rebuild the emoji training set from npm packages; returns the manifest it writes."""
    if not 0 < holdout < 1:
        raise ClipagError(f"held-out share must be between 0 and 1, got {holdout}")
    out = Path(out)
    packages = find_packages(Path(source))
    per_style = {style: package.emoji() for style, package in packages.items()}
    held = holdout_names([e.base for emoji in per_style.values() for e in emoji], holdout, seed)
    rows = {"train": [], "heldout": []}
    written = {style: 0 for style in per_style}
    missing = 0
    for style, emoji in per_style.items():
        for e in emoji:
            _check_image_name(e.image)
            picture = packages[style].read(f"img/{style}/64/{e.image}")
            if picture is None:
                missing += 1
                continue
            relative = f"images/{style}/{e.image}"
            with atomic_path(inside(out, relative, what="image name in emoji.json")) as tmp:
                tmp.write_bytes(picture)
            written[style] += 1
            split = "heldout" if e.base in held else "train"
            for caption in captions(e):
                rows[split].append((relative, caption, e.name, e.subcategory, e.category, style))
    for split, split_rows in rows.items():
        _write_csv(out / f"{split}.csv", split_rows)
    with atomic_path(out / "heldout.txt") as tmp:
        tmp.write_text("\n".join(sorted(held)) + "\n")
    _write_licences(out / "LICENSES.md", packages)
    manifest = {
        "styles": sorted(packages), "emoji": len({e.base for emoji in per_style.values() for e in emoji}),
        "images": written, "missing_images": missing,
        "heldout_emoji": len(held), "heldout_share": holdout, "seed": seed,
        "rows": {split: len(r) for split, r in rows.items()},
        "packages": {STYLES[style]: p.version() for style, p in packages.items()},
    }
    save_json(manifest, out / "manifest.json")
    return manifest


def _check_image_name(name: str) -> None:
    """emoji.json's `image` must be a plain file name such as 1f34e.png: nothing else is written."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise ClipagError(f"refusing image name {name!r} in emoji.json: not a plain file name; "
                          f"the package is damaged or crafted")


def _write_csv(path: Path, rows: list[tuple]) -> None:
    import csv
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        writer.writerows(rows)


def _write_licences(path: Path, packages: dict[str, Package]) -> None:
    lines = ["# Licences and attribution of the emoji data", ""]
    lines += [f"- images/{style}/: {LICENCES[style]}" for style in packages]
    lines += [f"- captions: built from {METADATA_LICENCE}", "",
              "The pictures are copied unchanged; captions are derived from the emoji names."]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
