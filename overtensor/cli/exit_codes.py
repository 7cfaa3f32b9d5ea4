"""How the command line ends: one documented exit code per kind of failure, one line on stderr.

Every subcommand goes through :func:`overtensor.cli.main.main`, which calls :func:`classify` on whatever
escaped the command. An *expected* failure (bad input, a file or store that cannot be used, a
diverged fit, failed runs, an interruption) becomes one line ``overtensor: error: ...`` on stderr
and the exit code below; anything else is a bug and keeps its traceback.

=====  ==========================================================================================
code   meaning
=====  ==========================================================================================
0      success
1      unexpected internal error (a bug: the traceback is printed; please report it)
2      usage or bad input: unknown option or value, invalid spec, unknown experiment or run
       function, an argument out of range
3      the sweep finished but some runs failed (their errors are in the store)
4      a file or store cannot be used: missing, a directory, read-only, disk full, not an
       overtensor store (another application's database, empty, corrupted); out of memory
5      the fit diverged (:class:`overtensor.DivergenceError`), or its result holds NaN or inf
       (never printed as a result nor written)
130    interrupted (Ctrl-C); 128 + N when ended by signal N (SIGTERM: 143, SIGHUP: 129)
=====  ==========================================================================================

An exception can choose its code with an ``exit_code`` attribute (e.g. ``SpecError`` for an
unreadable spec file: 4, ``StoreError``: 4, :class:`RunsFailed`: 3).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator

OK, BUG, USAGE, RUNS_FAILED, FILE_ERROR, DIVERGED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

#: The table printed at the end of ``overtensor --help`` (and in docs/experiments.md).
EPILOG = """exit codes:
  0    success
  1    unexpected internal error (a bug: the traceback is printed)
  2    usage or bad input (unknown option or value, invalid spec, unknown experiment)
  3    the sweep finished but some runs failed (their errors are in the store)
  4    a file or store cannot be used (missing, directory, read-only, disk full,
       not an overtensor store, corrupted), or out of memory
  5    the fit diverged, or its result holds NaN or inf (nothing written)
  130  interrupted (Ctrl-C); 128+N when ended by signal N (SIGTERM: 143)"""

_MAX_CHARS = 2000


class RunsFailed(RuntimeError):
    """A sweep ended with failed runs (exit code 3); the message says how many and where to read why."""

    exit_code = RUNS_FAILED


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM/SIGHUP, so that ``finally`` blocks (temporary files,
    leases) run before the process ends. A BaseException: a run must not record it as failed."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (code 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USAGE, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def one_line(text: str) -> str:
    """``text`` on one line: whitespace runs (newlines included) collapsed, at most 2000 chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_CHARS else flat[: _MAX_CHARS - 1] + "…"


def classify(exc: BaseException) -> tuple[int, str] | None:
    """``(exit code, one-line message)`` for an expected failure, None for a bug."""
    # A DivergenceError exists only once its module (and torch) is loaded: importing it here
    # would cost ~1 s of torch import before a plain usage error is printed.
    loop = sys.modules.get("overtensor.training.loop")
    DivergenceError = getattr(loop, "DivergenceError", ()) if loop is not None else ()

    code = getattr(exc, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code, one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if DivergenceError is not None and isinstance(exc, DivergenceError):
        return DIVERGED, one_line(f"the fit diverged: {exc}")
    if isinstance(exc, OSError):
        return FILE_ERROR, one_line(_os_message(exc))
    if isinstance(exc, sqlite3.Error):
        return FILE_ERROR, one_line(f"result store error: {exc}")
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if isinstance(exc, MemoryError) or (oom is not None and isinstance(exc, oom)):
        return FILE_ERROR, one_line(f"out of memory{': ' + str(exc) if str(exc) else ''}")
    if isinstance(exc, ValueError | TypeError):
        return USAGE, one_line(str(exc) or type(exc).__name__)
    return None


def _os_message(exc: OSError) -> str:
    if isinstance(exc, FileExistsError) and exc.filename is not None and not os.path.isdir(exc.filename):
        return f"cannot create a folder: {str(exc.filename)!r} is a file"
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(repr(str(n)) for n in names)}" if names else what


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (a no-op in
    other threads, where handlers cannot be installed). Previous handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    old = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def report(exc: BaseException, prog: str = "overtensor") -> int | None:
    """Print the one-line message of an expected failure on stderr and return its code (None: a bug)."""
    found = classify(exc)
    if found is None:
        return None
    code, message = found
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
