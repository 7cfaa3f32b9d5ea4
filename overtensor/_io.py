"""Atomic file writes: a crash or a kill never leaves a half-written file in place of a good one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``.

    The rename is atomic on POSIX file systems, so readers see either the old file or the new one.
    The temporary file keeps ``path``'s suffix (writers such as matplotlib pick the format from it).
    The file gets the mode ``0666 & ~umask``, as ``open(path, "w")`` would give it (``mkstemp``
    alone creates it ``0600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask: from ``/proc/self/status`` on Linux (no race with other threads), else
    by setting it and setting it back at once (``os.umask`` can only be read that way)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
