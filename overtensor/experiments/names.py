"""Experiment names are identifiers, never paths.

A name from a spec, the command line or a store (``../x``, ``/tmp/outside``, ``a/b``, a name with a
newline) must never lead to a file outside the folder the user chose. Names are checked on entry
with :func:`check_name`; file names derived from a name that someone else wrote (a store opened for a
report) go through :func:`slug`, which always returns one safe path component.
"""

from __future__ import annotations

import hashlib
import re

#: What an experiment name may look like: starts with a letter or digit, then letters, digits,
#: ``.``, ``_`` and ``-``; no separators, no control characters, no ``..``.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
MAX_NAME_LENGTH = 100
_NAME = re.compile(NAME_PATTERN)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid experiment name, or None when it is."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not _NAME.fullmatch(name):
        return (f"{name!r} is not a valid experiment name: use letters, digits, '.', '_' and '-' "
                "(starting with a letter or digit; no path separators or control characters)")
    if ".." in name:
        return f"{name!r} is not a valid experiment name: it contains '..'"
    if len(name) > MAX_NAME_LENGTH:
        return f"experiment name is longer than {MAX_NAME_LENGTH} characters ({len(name)})"
    return None


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid experiment name (see :data:`NAME_PATTERN`).

    Raises
    ------
    ValueError
        Naming ``what`` and the value.
    """
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"{what}: {problem}")
    return name  # type: ignore[return-value]


def slug(name: object) -> str:
    """One safe path component for ``name``: the name itself when valid, else its safe characters
    followed by a short hash of the original (so that two different names never share a file)."""
    text = str(name)
    if name_problem(text) is None:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    base = _UNSAFE.sub("_", text).replace("..", "_").strip("._-")[:60]
    return f"{base}-{digest}" if base else f"experiment-{digest}"
