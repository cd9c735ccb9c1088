"""Files written whole or not at all, and paths checked before any compute; no torch, so the CLI's
argument checks and `clipag data` start fast.

Every write goes to a temporary file in the same folder and is renamed into place, so an interrupted
run never leaves a half-written file where a good one was. Temporary names carry the writer's process id
(`.NAME.tmp-PID-XXXX.SUFFIX`), so the next run in a folder removes those of writers that were killed
(`remove_stale_temps`) and never those of a writer still running.

Paths that come from files (archive members, JSON fields) go through `inside`, which refuses any that
would leave their folder.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ClipagError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-[A-Za-z0-9_]+")


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Delete the temporary files that killed writers left in `folder`; returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.rglob(".*.tmp-*") if recursive else folder.glob(".*.tmp-*"):
        match = _TEMP_NAME.match(path.name)
        if match and path.is_file() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def inside(folder: str | os.PathLike, relative: str, what: str = "path") -> Path:
    """`folder / relative`, refused (ClipagError) when `relative` is absolute or climbs out of `folder`.

    For every path that comes from a file's content (an archive member, a JSON field): such a path may
    name a file only below its folder.
    """
    text = str(relative)
    parts = Path(text.replace("\\", "/")).parts
    if (not text or "\x00" in text or Path(text).is_absolute() or text.startswith(("/", "\\"))
            or any(part == ".." for part in parts) or (parts and ":" in parts[0])):
        raise ClipagError(f"refusing {what} {text!r}: it would leave {folder}; the input is damaged or crafted")
    root = Path(folder).resolve()
    target = (root / text).resolve()
    if target != root and root not in target.parents:
        raise ClipagError(f"refusing {what} {text!r}: it resolves outside {folder} (through a link?)")
    return Path(folder) / text


def check_out_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Make sure `path` is (or can become) a writable folder, before any compute; ClipagError if not."""
    path = Path(path)
    try:
        _check_existing_part(path, what)
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a name too long for the file system, a read-only disk, ...
        raise ClipagError(f"cannot create {what} {str(path)[:80]} ({err.strerror}); choose another folder") from None
    return path


def _check_existing_part(path: Path, what: str) -> None:
    """The nearest existing folder of `path` is a writable folder (ClipagError if not)."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == path else f"is under {parent}, which is a file"
                raise ClipagError(f"{what} {path} {where}; give a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ClipagError(f"{what} {path}: {parent} is not writable; choose another folder")
            return


def path_kind(path: str | os.PathLike, what: str = "path") -> str:
    """"dir", "file" or "missing" (also for a broken link); a ClipagError when the file system refuses
    the name itself (too long, say), which pathlib's is_dir() and exists() raise as OSError."""
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the name
        reason = getattr(err, "strerror", None) or str(err)
        raise ClipagError(f"cannot use {what} {str(path)[:80]} ({reason}); give another path") from None
    return "dir" if stat.S_ISDIR(status.st_mode) else "file"


def check_out_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Make sure the file `path` can be written (its folder writable, itself not a folder)."""
    path = Path(path)
    if path_kind(path, what) == "dir":
        raise ClipagError(f"{what} {path} is a folder; give a file name")
    check_out_dir(path.parent, what=f"the folder of {what}")
    return path


def save_json(data: dict, path: str | os.PathLike) -> None:
    """Valid JSON always: a NaN or infinity (a diverged number) is written as null."""
    text = json.dumps(plain_json(data), indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def plain_json(data):
    """`data` as it reads back from the JSON that save_json writes (str() for other types, null for NaN)."""
    return _finite(json.loads(json.dumps(data, default=str)))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
