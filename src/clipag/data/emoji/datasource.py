"""emoji-datasource's emoji.json: the emoji's names, categories and code points, skin tones included.

Each entry's `name` is its Unicode name ("red apple"); `unified` its code points (1F34E, 1F44B-1F3FB).
Code points are compared as `key`s: lower case, without the FE0F variation selector, as Iconify's
`chars` tables spell them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from ...errors import ClipagError
from .packages import Package

SKIN_TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark",
              "1F3FF": "dark"}


@dataclass(frozen=True)
class Emoji:
    name: str  # lower case, skin tone included, e.g. "waving hand: medium skin tone"
    base: str  # the base emoji's name, the unit of the held-out split
    short_name: str
    category: str
    subcategory: str
    image: str  # file name inside img/STYLE/64/, and of every style's picture in images/STYLE/
    key: str = ""  # code points, e.g. "1f44b-1f3fd"
    tone: bool = False  # a skin-tone variant


def code_key(codepoints: str) -> str:
    """'1F44B-1F3FB' or '2764-FE0F' -> '1f44b-1f3fb', '2764': Iconify's spelling."""
    return "-".join(part for part in codepoints.lower().split("-") if part and part != "fe0f")


def read_emoji(package: Package, only_with_images: bool = True) -> list[Emoji]:
    """Every emoji of the package's emoji.json, skin tones included (those it has pictures of, or all)."""
    entries = package.read_json("emoji.json")
    style = package.style if only_with_images else None
    try:
        return list(_entries(entries, style))
    except (KeyError, TypeError, AttributeError) as err:
        raise ClipagError(f"{package.path}: emoji.json is not an emoji-datasource list ({type(err).__name__}: "
                          f"{err}); use the package as npm publishes it") from None


def _entries(entries: list[dict], style: Optional[str]) -> Iterator[Emoji]:
    has_image = lambda entry: style is None or entry.get(f"has_img_{style}", True)
    for entry in entries:
        if not has_image(entry):
            continue
        base = (entry.get("name") or entry["short_name"].replace("_", " ")).lower()
        common = dict(base=base, short_name=entry["short_name"], category=entry["category"],
                      subcategory=entry["subcategory"])
        yield Emoji(name=base, image=entry["image"], key=_key(entry), **common)
        for tones, variant in (entry.get("skin_variations") or {}).items():
            if has_image(variant):
                words = ", ".join(f"{SKIN_TONES.get(t, t)} skin tone" for t in dict.fromkeys(tones.split("-")))
                yield Emoji(name=f"{base}: {words}", image=variant["image"], key=_key(variant), tone=True, **common)


def _key(entry: dict) -> str:
    unified = entry.get("unified") or entry["image"].rsplit(".", 1)[0]
    return code_key(str(unified))


def captions(emoji: Emoji) -> list[str]:
    """Two or three captions: the name, the name with its category, the short name if it adds a word."""
    category = emoji.category.lower()
    article = "an" if emoji.name[0] in "aeiou" else "a"
    result = [emoji.name, f"{article} {emoji.name}, {category}"]
    short = emoji.short_name.replace("_", " ").replace("-", " ")
    if short not in emoji.name:
        result.append(short)
    return result
