"""The user's own tensor from files, and a fit's result to a file (for ``overtensor fit``).

Readers turn ``.npy`` / ``.npz`` / ``.csv`` / ``.txt`` files into targets, with one-line
``ValueError`` messages that name the option and the file; :func:`write_result` writes the
extracted CP and the summary as ``.npz`` or ``.json`` (atomically, mode ``0666 & ~umask``).
"""

from __future__ import annotations

import errno
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from overtensor._io import atomic_write

#: Suffixes :func:`write_result` knows.
RESULT_SUFFIXES = (".npz", ".json")


def read_array(path: str | Path, option: str) -> np.ndarray:
    """A numeric array from ``.npy``, ``.npz`` (its only array), ``.csv`` or ``.txt``
    (comma- or whitespace-separated; a non-numeric first line is taken as a header).

    Raises
    ------
    ValueError
        ``"{option} {path}: ..."`` for a missing or unreadable file, an unknown suffix or
        non-numeric / non-finite content.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as fh:
                if fh.read(6) != b"\x93NUMPY":  # np.load would try pickle and advise allow_pickle
                    raise ValueError("not a NumPy .npy array file (save one with numpy.save)")
            array = _load_numbers(path)
        elif suffix == ".npz":
            with _load_numbers(path) as npz:
                if len(npz.files) != 1:
                    raise ValueError(f"holds {len(npz.files)} arrays {npz.files}; expected one")
                array = _numbers_of(npz, npz.files[0])
        elif suffix in (".csv", ".txt"):
            array = _read_text(path, "," if suffix == ".csv" else None)
            if array.size == 0:
                raise ValueError("holds no numbers (an empty file)")
        else:
            raise ValueError(f"unknown file type {suffix or '(none)'!r}; use .npy, .npz, .csv or .txt")
    except FileNotFoundError:
        # A file-system failure: exit code 4 in the CLI, like every missing file.
        raise FileNotFoundError(errno.ENOENT, f"{option}: no such file", str(path)) from None
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{option} {path}: {_one_line(exc)}") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{option} {path}: expected real numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{option} {path}: contains NaN or inf")
    return array


_OBJECT_DATA = "holds object (pickled) data, which is never loaded; save an array of numbers"


def _load_numbers(path: Path) -> Any:
    """``np.load`` without pickle; its object-data error (which advises unsafe loading) reworded."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(_OBJECT_DATA) from None
        raise


def _numbers_of(npz: Any, name: str) -> np.ndarray:
    try:
        return npz[name]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(_OBJECT_DATA) from None
        raise


def _read_text(path: Path, delimiter: str | None) -> np.ndarray:
    """Numbers of a text file; the first line is a header only when one of its fields is not a
    number (so a ragged or malformed data row is an error, never a dropped row)."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    fields = [f.strip() for f in (first.split(delimiter) if delimiter else first.split())]
    header = any(not _is_number(f) for f in fields if f)
    with warnings.catch_warnings():
        # An empty file: NumPy warns "input contained no data"; read_array raises one line instead.
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=1 if header else 0)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # NumPy's advice to pass `usecols` names an option that overtensor's readers do not have.
    return text[0].split("; use `usecols`")[0] if text else type(exc).__name__


def _to_torch(array: np.ndarray, dtype: Any, device: Any):
    import torch

    from overtensor._checks import resolve_device, resolve_dtype

    dev = resolve_device(device)
    return torch.as_tensor(np.ascontiguousarray(array), dtype=resolve_dtype(dtype, dev), device=dev)


def tensor_target(path: str | Path, *, dtype: Any = None, device: Any = None):
    """:class:`~overtensor.tensors.targets.DenseTarget` from a dense symmetric array of shape ``(d,)*l``.

    Symmetry is checked to the file's precision: relative ``1e-8`` for float64, ``10·eps`` for
    lower precisions (a float32 array symmetrized in float32 differs from its transposes by
    rounding).
    """
    from overtensor.tensors.targets import DenseTarget

    array = read_array(path, "--tensor")
    eps = np.finfo(array.dtype).eps if np.issubdtype(array.dtype, np.floating) else 0.0
    try:
        return DenseTarget(_to_torch(array, dtype, device), symmetry_tol=max(1e-8, 10 * eps))
    except ValueError as exc:
        raise ValueError(f"--tensor {path}: {exc}") from None


def cp_target(weights_path: str | Path, factors_path: str | Path, order: int, *,
              dtype: Any = None, device: Any = None):
    """:class:`~overtensor.tensors.targets.CPTarget` ``Σ_j λ_j u_j^{⊗l}`` from weights ``λ`` of shape
    ``(r,)`` and factors of shape ``(r, d)`` (one component per row)."""
    from overtensor.tensors.targets import CPTarget

    weights = read_array(weights_path, "--cp")
    factors = read_array(factors_path, "--cp")
    if weights.ndim == 2 and 1 in weights.shape:  # a CSV column or row
        weights = weights.reshape(-1)
    if weights.ndim != 1:
        raise ValueError(f"--cp {weights_path}: weights must have shape (r,), got {weights.shape}")
    if factors.ndim != 2 or factors.shape[0] != weights.shape[0]:
        raise ValueError(f"--cp {factors_path}: factors must have shape (r, d) = "
                         f"({weights.shape[0]}, d) to match the weights, got {factors.shape}")
    try:
        return CPTarget(_to_torch(weights, dtype, device), _to_torch(factors, dtype, device), order)
    except ValueError as exc:
        raise ValueError(f"--cp {weights_path} {factors_path}: {exc}") from None


def samples_target(path: str | Path, order: int, *, dtype: Any = None, device: Any = None):
    """:class:`~overtensor.tensors.targets.MomentTarget` ``(1/n) Σ_k x_k^{⊗l}`` of the rows of an
    ``(n, d)`` sample matrix."""
    from overtensor.tensors.targets import MomentTarget

    X = read_array(path, "--samples")
    if X.ndim != 2:
        raise ValueError(f"--samples {path}: samples must have shape (n, d), got {X.shape}")
    try:
        return MomentTarget(_to_torch(X, dtype, device), order)
    except ValueError as exc:
        raise ValueError(f"--samples {path}: {exc}") from None


def write_result(path: str | Path, result, summary: dict[str, Any]) -> Path:
    """Write ``result.cp`` and ``summary``: ``.npz`` with arrays ``weights`` ``(r,)``, ``factors``
    ``(r, d)`` (unit rows), ``order`` and ``summary`` (a JSON string), or ``.json`` with the
    summary and the CP as lists. Returns the path.

    Raises
    ------
    ValueError
        If the suffix is not ``.npz`` or ``.json``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        raise ValueError(f"-o {path}: unknown result format {suffix or '(none)'!r}; "
                         f"use {' or '.join(RESULT_SUFFIXES)}")
    weights = result.cp.weights.detach().to("cpu").double().numpy()
    factors = result.cp.components.detach().to("cpu").double().numpy()
    if suffix == ".npz":
        def write(tmp: Path) -> None:
            np.savez(tmp, weights=weights, factors=factors, order=np.int64(result.cp.order),
                     summary=np.array(json.dumps(summary)))
    else:
        doc = {"summary": summary, "order": result.cp.order, "weights": weights.tolist(),
               "factors": factors.tolist()}

        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return atomic_write(path, write)
