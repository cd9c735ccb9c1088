"""`clipag models download NAME`: a registered model's weights file, resumable and checked.

The file is fetched into `NAME.part` beside its place in the model folder; an interrupted download
continues from there (an HTTP Range request) and the finished file is renamed into place only after
its size and checksum match what its publisher lists. For a Zenodo file both come from the record's
public API (`/api/records/ID`); otherwise from the registry (ModelSpec.size_bytes, .checksum).

Written on the standard library's urllib: huggingface_hub's downloader serves only the Hub, and the
official CLIPAG weights live on Zenodo.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from ..errors import ClipagError
from .registry import ModelSpec, get_spec, list_models, spec_file

CHUNK = 1 << 20
_RECORD_FILE = re.compile(r"^(https?://([^/]+))/records?/(\d+)/files/([^/?]+)")
ZENODO_HOSTS = {"zenodo.org"}  # hosts whose /api/records/ID lists each file's size and checksum


def download_model(name: str, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download a registered model's weights into the model folder; returns the file's path."""
    spec = _downloadable(name)
    target = spec_file(spec)
    size, checksum = published_size_and_checksum(spec, timeout)
    if target.is_file() and not _mismatch(target, size, checksum):
        return target
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    _fetch(spec.url, partial, size, progress, timeout)
    problem = _mismatch(partial, size, checksum)
    if problem:
        partial.unlink(missing_ok=True)
        raise ClipagError(f"the download of {spec.name} does not match its publisher's record ({problem}); "
                          f"it was removed, run the command again")
    os.replace(partial, target)
    return target


def published_size_and_checksum(spec: ModelSpec, timeout: float = 30.0) -> tuple[Optional[int], Optional[str]]:
    """(bytes, "md5:HEX" or "sha256:HEX") as the file's publisher lists them; the registry's if it has them."""
    if spec.checksum:
        return spec.size_bytes, spec.checksum
    match = _RECORD_FILE.match(spec.url or "")
    if not match or match.group(2) not in ZENODO_HOSTS:
        return spec.size_bytes, None
    host, _, record, filename = match.groups()
    data = json.loads(_read(f"{host}/api/records/{record}", timeout, what=f"the Zenodo record of {spec.name}"))
    for entry in data.get("files", []):
        if entry.get("key") == filename:
            return int(entry["size"]), entry.get("checksum")
    raise ClipagError(f"Zenodo record {record} lists no file {filename}; the registry entry of {spec.name} is out of date")


def file_checksum(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"


# ---------------------------------------------------------------- helpers

def _downloadable(name: str) -> ModelSpec:
    spec = get_spec(name)
    if spec is None:
        names = ", ".join(s.name for s in list_models() if s.url)
        raise ClipagError(f"unknown model {name!r}; models with a download: {names}")
    if spec.bundled:
        raise ClipagError(f"{name} ships with clipag; there is nothing to download")
    if spec.pretrained:
        raise ClipagError(f"{name} is OpenCLIP's {spec.arch}:{spec.pretrained}: OpenCLIP downloads it on first use")
    if not spec.url:
        raise ClipagError(f"{name} has no download address; put its weights at {spec_file(spec)}")
    return spec


def _mismatch(path: Path, size: Optional[int], checksum: Optional[str]) -> str:
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"{actual:,} bytes, the record says {size:,}"
    if checksum:
        algorithm = checksum.split(":", 1)[0]
        if algorithm not in hashlib.algorithms_available:
            return f"unknown checksum kind {algorithm!r}"
        if file_checksum(path, algorithm) != checksum:
            return f"its {algorithm} differs from the record's {checksum}"
    return ""


def _fetch(url: str, partial: Path, size: Optional[int], progress: bool, timeout: float) -> None:
    """Append to `partial` from where it stops; restart when the server ignores the Range request."""
    have = partial.stat().st_size if partial.is_file() else 0
    if size is not None and have > size:  # longer than the file: not a prefix of it
        partial.unlink()
        have = 0
    if size is not None and have == size:
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    response = _open(request, timeout, what=url)
    with response:
        if have and response.status != 206:
            have = 0  # the server sent the whole file
        total = size or (int(response.headers.get("Content-Length", 0)) + have) or None
        from tqdm.auto import tqdm
        with open(partial, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=partial.name[:-len(".part")], disable=not progress) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                raise _stopped(bar.n, type(err).__name__) from None
    if total is not None and partial.stat().st_size < total:  # the server closed the connection early
        raise _stopped(partial.stat().st_size, "connection closed")


def _stopped(at: int, why: str) -> ClipagError:
    return ClipagError(f"the download stopped at {at:,} bytes ({why}); run the command again to resume it from there")


def _read(url: str, timeout: float, what: str) -> bytes:
    with _open(urllib.request.Request(url), timeout, what) as response:
        return response.read()


def _open(request: urllib.request.Request, timeout: float, what: str):
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise ClipagError(f"cannot download {what}: the server answered {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ClipagError(f"cannot reach {urllib.parse.urlparse(request.full_url).netloc} for {what} ({reason}); "
                          f"check the connection and run the command again (a partial download is kept and resumed)") from None
