"""One run per folder: an exclusive lock on RUN/.lock, held for the whole life of a training run.

The lock is `fcntl.flock` on the open file, which holds the holder's pid for the error message of a
second run. The kernel releases a flock when its holder exits in any way, SIGKILL included, so a killed
run never leaves a lock behind: its .lock file stays, with a dead pid in it, and the next run simply takes
it (the file is never deleted, which would let two runs lock two different files). Forked DataLoader
workers share the lock and exit within seconds of their run.

Under torchrun only rank 0 locks (it is the one rank that writes to the folder), and every rank learns
whether it got the lock, so a refused job fails on all ranks with the same one-line error. On a file
system without locking (some network mounts) the run goes on unlocked, with a warning.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterator

from ..errors import ClipagError
from .distributed import World, all_reduce_sum

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: Path, world: World) -> Iterator[None]:
    """Hold RUN/.lock for the block (rank 0), or raise ClipagError naming the run that holds it."""
    fd, holder = _acquire(Path(run_dir)) if world.is_main else (None, None)
    if all_reduce_sum(float(holder is not None), world):
        who = f"pid {holder}" if holder else "see rank 0's error"
        raise ClipagError(f"{run_dir} is in use by another training run ({who}); wait for it to end, "
                          f"or choose another --out")
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing the file releases the lock


def _acquire(run_dir: Path) -> tuple[int | None, str | None]:
    """(the locked file's descriptor, None), or (None, the holder's pid) when another process holds it."""
    if fcntl is None:
        return None, None
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        return None, holder
    except OSError as err:
        os.close(fd)
        warnings.warn(f"cannot lock {run_dir} ({err.strerror}); make sure no other run uses this folder")
        return None, None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, None
