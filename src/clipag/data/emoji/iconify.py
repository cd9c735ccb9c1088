"""Iconify JSON emoji sets: which icon draws which emoji, and the icon rasterised with resvg.

An `@iconify-json/PREFIX` package holds icons.json (SVG bodies by icon name, aliases, default size),
info.json (name, author, licence) and chars.json (code points -> icon name; empty in several sets).
An emoji's icon is looked up, first found wins: in the set's own chars table; by the CLDR names that
any set's chars table gives its code points (fluent-emoji, emojione and noto-v1 name icons so but have
no table); for a base emoji, by its name without separators (fxemoji's "redapple"). An icon draws at
most one emoji per set. Aliases that flip or rotate their parent are not used.

resvg (the resvg-py binding) rasterises: a maintained renderer in Rust that needs no system library.
A body that refers to anything outside itself (an href or url() that is not #id or data:) is refused,
so a crafted set cannot make the renderer read local files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from ...errors import ClipagError
from .datasource import Emoji, code_key
from .packages import Package

OPEN_LICENCES = ("MIT", "Apache-2.0", "CC-BY-4.0", "CC-BY-SA-4.0")  # SPDX ids accepted in info.json
EXTERNAL_REFERENCE = re.compile(r"""(?:href|src)\s*=\s*["']\s*(?!#|data:)|url\(\s*["']?\s*(?!#|data:)|@import""",
                                re.IGNORECASE)


@dataclass(frozen=True)
class Licence:
    set_name: str
    spdx: str
    title: str
    url: str
    author: str
    author_url: str


class IconSet:
    """One Iconify JSON set: icons by name, with its licence checked against OPEN_LICENCES."""

    def __init__(self, package: Package):
        self.package, self.style = package, package.style
        data = package.read_json("icons.json")
        chars = package.read_json("chars.json", required=False) or (data.get("chars") if isinstance(data, dict) else None) or {}
        if not (isinstance(data, dict) and isinstance(data.get("icons"), dict) and isinstance(chars, dict)):
            raise ClipagError(f"{package.path}: icons.json is not an Iconify JSON set; use the package as npm "
                              f"publishes it")
        self.icons, self.aliases = data["icons"], data.get("aliases") or {}
        self.width, self.height = data.get("width", 16), data.get("height", 16)
        self.chars = {code_key(str(k)): str(v) for k, v in chars.items()}
        self.licence = _licence(package)
        self.refused = 0  # icons with external references

    def icon(self, name: str) -> Optional[dict]:
        """The icon called `name`, through plain aliases; None when absent, transformed or unsafe."""
        for _ in range(8):  # alias chains are short; a loop is a damaged set
            if name in self.icons:
                icon = self.icons[name]
                if not isinstance(icon, dict) or not isinstance(icon.get("body"), str):
                    return None
                if {"rotate", "hFlip", "vFlip"} & set(icon):
                    return None
                if EXTERNAL_REFERENCE.search(icon["body"]):
                    self.refused += 1
                    return None
                return icon
            alias = self.aliases.get(name)
            if not isinstance(alias, dict) or set(alias) != {"parent"}:
                return None
            name = str(alias["parent"])
        return None

    def svg(self, icon: dict, size: int) -> str:
        """A standalone SVG document of `icon`, `size` px square (a non-square icon is centred)."""
        box = (icon.get("left", 0), icon.get("top", 0), icon.get("width", self.width), icon.get("height", self.height))
        if not all(isinstance(v, (int, float)) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise ClipagError(f"{self.package.path}: an icon has a bad view box {box}; the set is damaged")
        return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                f'viewBox="{" ".join(str(v) for v in box)}" width="{size}" height="{size}">{icon["body"]}</svg>')


def cldr_names(sets: Sequence[IconSet]) -> dict[str, list[str]]:
    """Code points -> every icon name the sets' chars tables give them, sorted."""
    names: dict[str, set[str]] = {}
    for icon_set in sets:
        for key, name in icon_set.chars.items():
            names.setdefault(key, set()).add(name)
    return {key: sorted(found) for key, found in names.items()}


def match_icons(icon_set: IconSet, emoji: Sequence[Emoji], names: dict[str, list[str]]) -> dict[str, str]:
    """Code points -> icon name in `icon_set`, for every emoji it draws (see the module's rules)."""
    found, used = {}, set()
    for e in emoji:
        if e.key in found:
            continue
        candidates = [icon_set.chars.get(e.key), *names.get(e.key, ())]
        if not e.tone:
            candidates += [_compact(e.base), *(_compact(n) for n in names.get(e.key, ()))]
        for name in candidates:
            if name and name not in used and icon_set.icon(name) is not None:
                found[e.key] = name
                used.add(name)
                break
    return found


def rasterise(svg: str, size: int) -> bytes:
    """An SVG document -> PNG bytes (RGBA, transparent background), through resvg."""
    try:
        import resvg_py
    except ImportError:
        raise ClipagError("rasterising the SVG emoji sets needs resvg-py; pip install 'clipag[data]'") from None
    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, skip_system_fonts=True))
    except Exception as err:  # resvg-py raises bare Exceptions on SVG it cannot parse
        raise ClipagError(f"resvg cannot render an icon ({err}); the set is damaged") from None


def _compact(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _licence(package: Package) -> Licence:
    info = package.read_json("info.json", required=False)
    info = info if isinstance(info, dict) else {}
    licence = info.get("license") if isinstance(info.get("license"), dict) else {}
    author = info.get("author") if isinstance(info.get("author"), dict) else {}
    spdx = str(licence.get("spdx", ""))
    if spdx not in OPEN_LICENCES:
        raise ClipagError(f"{package.path}: licence {spdx or 'unknown'!r} is not one of {', '.join(OPEN_LICENCES)}; "
                          f"remove the package from the folder")
    return Licence(str(info.get("name", package.style)), spdx, str(licence.get("title", spdx)),
                   str(licence.get("url", "")), str(author.get("name", "?")), str(author.get("url", "")))
