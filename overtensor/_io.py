"""Atomic file writes: a crash or a kill never leaves a half-written file in place of a good one;
and the check of a command's ``-o`` path before any work (:func:`check_output_path`).

The temporary file lives next to the target as ``.<stem>.<pid>.otmp<random><suffix>``, created
uniquely by :func:`tempfile.mkstemp` (``O_EXCL``: never an existing file, never through a link).
It is removed when the write fails or is interrupted (any exception, including KeyboardInterrupt
and the ``Terminated`` exception the CLI raises on SIGTERM). A process killed with SIGKILL cannot
clean up: its temporary file is removed by the next write to the same target once its pid is
gone, but only if it carries the extended attribute :data:`MARK` that :func:`atomic_write` sets
on the files it creates; a file that merely looks like one (same name pattern, no mark, or a
file system without user attributes) is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

#: Extended attribute marking a temporary file as :func:`atomic_write`'s own (value: the pid).
MARK = "user.overtensor.tmp"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``.

    The rename is atomic on POSIX file systems, so readers see either the old file or the new one.
    The temporary file keeps ``path``'s suffix (writers such as matplotlib pick the format from it).
    The file gets the mode ``0666 & ~umask``, as ``open(path, "w")`` would give it (``mkstemp``
    alone creates it ``0600``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.otmp", suffix=path.suffix,
                                   dir=path.parent)
    except OSError as exc:
        if _temporary(exc):
            raise _about(exc, path) from None
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with contextlib.suppress(OSError, AttributeError):  # no user xattrs: no stale clean-up
            os.setxattr(fd, MARK, str(os.getpid()).encode())
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and _temporary(exc):
            raise _about(exc, path) from None
        raise
    return path


def _temporary(exc: OSError) -> bool:
    """Whether ``exc`` names one of :func:`atomic_write`'s temporary files."""
    return ".otmp" in str(exc.filename or "")


def _about(exc: OSError, path: Path) -> OSError:
    """The same error, naming the file the user asked for rather than a temporary one."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` for ``path`` left by processes that no
    longer exist (killed with SIGKILL); returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(\d+)\.otmp[A-Za-z0-9_]+{re.escape(path.suffix)}")
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and not _pid_alive(int(match.group(1))) and _marked(entry, match.group(1)):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def _marked(entry: Path, pid: str) -> bool:
    """Whether ``entry`` is a regular file (not a link) that :func:`atomic_write` of process
    ``pid`` created (its :data:`MARK` attribute holds that pid)."""
    try:
        if entry.is_symlink() or not entry.is_file():
            return False
        return os.getxattr(entry, MARK, follow_symlinks=False) == pid.encode()
    except (OSError, AttributeError):
        return False


class LinkInOutput(ValueError):
    """A folder overtensor writes into, inside the output folder, is a symbolic link."""


def check_not_link(folder: str | Path, what: str = "figures folder") -> Path:
    """``folder`` itself, refused when it is a symbolic link: files overtensor names inside an
    output folder are never written through a link planted there (to a place outside it). A
    link *file* at a target path needs no check: :func:`atomic_write` replaces the link itself.

    Raises
    ------
    LinkInOutput
        Naming the folder and where the link points.
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise LinkInOutput(f"{what} {str(folder)!r} is a symbolic link (to "
                           f"{os.readlink(folder)!r}); overtensor never writes through links: "
                           "remove it or choose another folder")
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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


def check_output_path(output: str, suffixes: tuple[str, ...]) -> Path:
    """A command's ``-o`` path, checked before any work.

    Raises
    ------
    IsADirectoryError
        ``output`` is a directory (CLI exit code 4).
    ValueError
        Its suffix is none of ``suffixes`` (exit code 2).
    FileNotFoundError
        Its folder does not exist (exit code 4); no folder is ever created.
    """
    path = Path(output)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "-o must be a file path, got a directory", output)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"-o {output}: unknown output format {path.suffix or '(none)'!r}; use "
                         f"{', '.join(suffixes)}")
    if not path.resolve().parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "-o: no such folder (create it first)",
                                str(path.parent))
    return path
