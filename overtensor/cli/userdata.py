"""The user's own tensor from files, and a fit's result to a file (for ``overtensor fit``).

Readers turn ``.npy`` / ``.npz`` / ``.csv`` / ``.txt`` files into targets, with one-line
``ValueError`` messages that name the option and the file; :func:`write_result` writes the
extracted CP and the summary as ``.npz`` or ``.json`` (atomically, mode ``0666 & ~umask``).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import numpy as np

from overtensor._io import atomic_write

#: Suffixes :func:`write_result` knows.
RESULT_SUFFIXES = (".npz", ".json")


def read_array(path: str | Path, option: str) -> np.ndarray:
    """A numeric array from ``.npy``, ``.npz`` (its only array), ``.csv`` or ``.txt``
    (comma- or whitespace-separated, read by :func:`_read_text`: a header line and an index
    column written by pandas are recognized, missing values refused naming line and column).

    Raises
    ------
    ValueError
        ``"{option} {path}: ..."`` for a missing or unreadable file, an unknown suffix or
        non-numeric / non-finite content.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():  # a file-system failure (exit code 4), whatever its name
        raise IsADirectoryError(errno.EISDIR, f"{option}: is a directory", str(path))
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
        else:
            raise ValueError(f"unknown file type {suffix or '(none)'!r}; use .npy, .npz, .csv or .txt")
        if array.size == 0:
            raise ValueError(f"holds no numbers (an empty {'file' if suffix in ('.csv', '.txt') else 'array'}"
                             f" of shape {array.shape})")
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


#: Spellings of a missing value (pandas' defaults for ``read_csv(na_values=...)``, and ``?``).
_MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                      "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                      "nan", "null", "?", "NAN", "na", "Nan"})

#: Names pandas gives (``to_csv``: empty) or reads back (``read_csv``: ``Unnamed: 0``) for an
#: unnamed index column.
_INDEX_NAMES = frozenset({"", "Unnamed: 0"})


def _read_text(path: Path, delimiter: str | None) -> np.ndarray:
    """Numbers of a CSV (``delimiter=","``) or whitespace-separated text file, read with pandas.

    The rules, none of which guesses from one field:

    * A UTF-8 byte-order mark (Excel's "CSV UTF-8") is skipped; blank lines are skipped.
    * The first line is a header when none of its fields is a number and at least one is a
      name (not a missing-value spelling such as ``NA``), or when its fields are exactly
      ``0, 1, ..., d-1`` (the column names pandas writes for an unnamed-column frame), or
      those after one field that is not a number (the index's name, or empty). A first line
      that otherwise mixes names and numbers is refused.
    * A header whose first field is empty or ``Unnamed: 0`` (what ``DataFrame.to_csv`` writes
      for the index), or a name before ``0, 1, ...``, marks the first column as the row index:
      it is dropped. Without a header, a
      first column holding exactly ``0, 1, ..., n-1`` is refused as a likely index column.
    * Every other field must be a finite number: a missing value (empty, ``NA``, ``NaN``, ...),
      a word or ``inf`` is refused naming its line and column; so is a ragged line.

    Raises
    ------
    ValueError
        One line naming the line and column of the first offending field (the caller prefixes
        the option and the file).
    """
    import pandas as pd

    sep = delimiter if delimiter is not None else r"\s+"
    try:
        frame = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=False, encoding="utf-8-sig",
                            comment="#")
    except pd.errors.EmptyDataError:
        return np.zeros((0, 0))
    except pd.errors.ParserError as exc:
        raise ValueError(f"a line has more fields than the first ({_pandas_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    # Line numbers of the file (1-based) before blank lines are dropped, for the messages.
    lines = np.arange(1, len(frame) + 1)
    cells = frame.to_numpy(dtype=object)
    # Fields pandas padded (a short line) are None/NaN; blank lines are all padded or all empty.
    padded = np.vectorize(lambda v: not isinstance(v, str), otypes=[bool])(cells) if cells.size \
        else np.zeros(cells.shape, bool)
    cells = np.where(padded, "", cells)
    cells = np.vectorize(str.strip, otypes=[object])(cells) if cells.size else cells
    blank = (cells == "").all(axis=1) if cells.size else np.zeros(0, bool)
    cells, padded, lines = cells[~blank], padded[~blank], lines[~blank]
    if cells.size == 0:
        return np.zeros((0, 0))
    if padded.any():
        r, c = np.argwhere(padded)[0]
        raise ValueError(f"line {lines[r]} has {c} fields, the first line {cells.shape[1]} "
                         "(a ragged file: every line needs the same number of fields)")
    numbers = np.empty(cells.shape, dtype=np.float64)
    is_number = np.empty(cells.shape, dtype=bool)
    for j in range(cells.shape[1]):
        col = pd.to_numeric(pd.Series(cells[:, j]), errors="coerce").to_numpy(np.float64)
        numbers[:, j] = col
        # to_numeric reads "nan"/"NA" as NaN like a failed parse: spelled-out NaNs are missing.
        is_number[:, j] = ~np.isnan(col)
    names = cells[0]
    missing0 = np.isin(names, list(_MISSING))
    header, index_col = False, False
    pandas_names = _pandas_column_names(names)
    if not is_number[0].any() and not missing0.all():
        header = True
    elif pandas_names is not None:
        header, index_col = True, pandas_names == "index"
    elif is_number[0].any() and not (is_number[0] | missing0).all():
        words = [f"{n!r}" for n, num, m in zip(names, is_number[0], missing0, strict=True)
                 if not num and not m]
        raise ValueError(f"line {lines[0]} mixes names ({', '.join(words[:3])}) and numbers: a "
                         "header must name every column and a data line hold only numbers")
    index_col = index_col or (header and names[0] in _INDEX_NAMES)
    if header:
        cells, numbers, is_number, lines = cells[1:], numbers[1:], is_number[1:], lines[1:]
    if index_col:
        cells, numbers, is_number = cells[:, 1:], numbers[:, 1:], is_number[:, 1:]
    if cells.size == 0:
        return np.zeros((0, cells.shape[1]))
    offset = 2 if index_col else 1
    bad = ~is_number | ~np.isfinite(numbers)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        value = cells[r, c]
        kind = ("empty (a missing value, or a line with too few fields)" if value == ""
                else "a missing value" if value in _MISSING
                else "a non-finite number" if is_number[r, c] else "not a number")
        hint = ""
        if delimiter == "," and any(sep in value for sep in (";", "\t")):
            hint = "; the file looks separated by ';' or tabs: save it comma-separated (or as .txt)"
        raise ValueError(f"line {lines[r]}, column {c + offset}: {value!r} is {kind} (every "
                         f"field after the header must be a finite number){hint}")
    n = numbers.shape[0]
    if not header and n >= 3 and numbers.shape[1] >= 2 and np.array_equal(
            numbers[:, 0], np.arange(n)):
        raise ValueError(f"column 1 holds 0, 1, ..., {n - 1}: a row index, as DataFrame.to_csv "
                         "writes it; save with index=False (or with a header line, whose empty "
                         "first name marks the index) or remove the column")
    return numbers


def _pandas_column_names(names: np.ndarray) -> str | None:
    """``"columns"`` when a first line is ``0,1,...,d-1``, ``"index"`` when it is ``NAME,0,...,d-2``
    (``NAME`` empty or the index's name, not a number): the header ``DataFrame.to_csv`` writes
    for columns without names (at least two of them), without or with the index; else None."""
    fields = list(names)

    def counting(part: list[str]) -> bool:
        return len(part) >= 2 and part == [str(i) for i in range(len(part))]

    if counting(fields):
        return "columns"
    if fields and not _is_number(fields[0]) and counting(fields[1:]):
        return "index"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pandas_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.replace("Error tokenizing data. C error: ", "")


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


class NonFiniteResult(ValueError):
    """A fit's result holds NaN or inf: never written, never an exit 0 (exit code 5, as a
    diverged fit)."""

    exit_code = 5


def check_finite_result(result) -> None:
    """Raise :class:`NonFiniteResult` naming what is non-finite (weights, components or error)."""
    if getattr(result, "finite", True):
        return
    parts = [name for name, value in (("weights", result.cp.weights),
                                      ("components", result.cp.components))
             if not bool(np.isfinite(value.detach().to("cpu").double().numpy()).all())]
    if not np.isfinite(result.relative_error):
        parts.append(f"relative_error={result.relative_error}")
    raise NonFiniteResult(f"the fit's result holds NaN or inf ({', '.join(parts)}); nothing "
                          "written: rescale the input or lower --lr")


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
    check_finite_result(result)
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
