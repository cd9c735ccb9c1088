"""The npm packages the emoji set is built from, read as `npm pack` .tgz files or unpacked folders.

Two kinds: emoji-datasource (PNG pictures and emoji.json, the emoji's names) and Iconify JSON sets
(`@iconify-json/PREFIX`: SVG bodies in icons.json, licence in info.json). An archive is read in memory,
never extracted; only regular members below the package are read, links and devices never.
"""
from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Optional

from ...errors import ClipagError
from ...files import inside, path_kind

# style name -> npm package. The style is the folder name under images/ and the `style` column.
DATASOURCE = {"twitter": "emoji-datasource-twitter", "google": "emoji-datasource-google"}
# The Iconify colour sets, with the versions the shipped data was built from (any version is read).
ICONIFY_VERSIONS = {"fluent-emoji-flat": "1.2.6", "fluent-emoji": "1.2.7", "noto": "1.2.9", "twemoji": "1.2.5",
                    "emojione": "1.2.3", "emojione-v1": "1.2.3", "fxemoji": "1.2.2", "noto-v1": "1.2.5"}
ICONIFY = {prefix: f"@iconify-json/{prefix}" for prefix in ICONIFY_VERSIONS}
PACKAGES = {**DATASOURCE, **ICONIFY}
PACK_COMMAND = ("npm pack emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0 "
                + " ".join(f"{ICONIFY[p]}@{v}" for p, v in ICONIFY_VERSIONS.items()))


class Package:
    """One npm package, unpacked or as the .tgz that `npm pack` writes."""

    def __init__(self, path: Path, style: str):
        self.path, self.style = path, style
        self._tar = tarfile.open(path) if path.is_file() else None

    @property
    def name(self) -> str:
        return PACKAGES[self.style]

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

    def read_json(self, relative: str, required: bool = True):
        raw = self.read(relative)
        if raw is None:
            if required:
                raise ClipagError(f"{self.path} has no {relative}; is it an unpacked {self.name} package?")
            return None
        try:
            return json.loads(raw)
        except ValueError as err:  # not JSON, or not UTF-8
            raise ClipagError(f"{self.path}: {relative} is not JSON ({err}); use the package as npm "
                              f"publishes it") from None

    def version(self) -> str:
        try:
            manifest = self.read_json("package.json", required=False)
        except ClipagError:
            return "?"
        return str(manifest.get("version", "?")) if isinstance(manifest, dict) else "?"


def find_packages(folder: Path) -> dict[str, Package]:
    """The known packages in `folder`, by style: .tgz files, or unpacked folders up to two levels down."""
    folder = Path(folder)
    if path_kind(folder, "--from folder") != "dir":
        raise ClipagError(f"folder not found: {folder}; run `{PACK_COMMAND}` in it first")
    manifests = [*folder.glob("package.json"), *folder.glob("*/package.json"), *folder.glob("*/*/package.json")]
    unpacked = {_package_name(m): m.parent for m in manifests}
    found = {}
    for style, package in PACKAGES.items():
        stem = package.lstrip("@").replace("/", "-")  # npm pack's file name: @scope/name -> scope-name-V.tgz
        tgz = sorted(p for p in folder.glob(f"{stem}-*.tgz") if re.fullmatch(rf"{re.escape(stem)}-\d.*\.tgz", p.name))
        if package in unpacked:
            found[style] = Package(unpacked[package], style)
        elif tgz:
            found[style] = Package(tgz[-1], style)
    if not any(style in found for style in DATASOURCE):
        raise ClipagError(f"no emoji-datasource packages in {folder} (they give the emoji's names); run there: "
                          f"{PACK_COMMAND}")
    return found


def _package_name(manifest: Path) -> Optional[str]:
    try:
        name = json.loads(manifest.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, or not an object
        return None
    return name if isinstance(name, str) else None
