"""What the moment estimators share as scikit-learn estimators: parameter constraints and the
shape check that runs before scikit-learn's own validation.

scikit-learn's ``check_array`` message for a 1-D or 3-D input prints the whole array; this check
names the argument and its shape instead, before any copy or conversion.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from overtensor._checks import check_magnitude

#: Values of ``random_state`` the estimators accept: scikit-learn's (None, an int, a NumPy
#: ``RandomState``), a NumPy ``Generator`` and a ``torch.Generator``; every one becomes one
#: ``torch.Generator`` (:func:`overtensor._checks.estimator_generator`).
RANDOM_STATE = [None, Interval(Integral, 0, 2**64 - 1, closed="both"), np.random.RandomState,
                np.random.Generator, torch.Generator]


def check_matrix_shape(name: str, X: Any, rows: str = "n_samples", cols: str = "n_features",
                       min_rows: int = 1) -> None:
    """Raise ``ValueError`` naming ``name`` and its shape unless ``X`` is a real 2-D matrix
    (sparse matrices, DataFrames, tensors and nested lists alike); complex data is refused with
    scikit-learn's wording ("Complex data not supported") but without the array in the message."""
    dtype = getattr(X, "dtype", None)
    if (isinstance(X, torch.Tensor) and X.is_complex()) or (
            isinstance(dtype, np.dtype) and dtype.kind == "c"):
        raise ValueError(f"Complex data not supported: {name} must be real, got dtype {dtype}")
    shape = getattr(X, "shape", None)
    if shape is None:
        try:  # np.asarray, not np.shape: array-likes that define only __array__
            shape = np.asarray(X).shape
        except ValueError:  # ragged nested lists
            raise ValueError(f"{name} must be a ({rows}, {cols}) matrix, got ragged rows") from None
    if len(shape) != 2:
        hint = (" (Reshape your data: X.reshape(1, -1) for a single row, X.reshape(-1, 1) for a "
                "single column)") if len(shape) == 1 else ""
        raise ValueError(f"{name} must have shape ({rows}, {cols}), got {tuple(shape)}{hint}")
    if shape[0] < min_rows:
        raise ValueError(f"{name} has {shape[0]} sample(s) (shape={tuple(shape)}); at least "
                         f"{min_rows} samples are needed")


def validate_counts(estimator: Any, X: Any, *, reset: bool, name: str = "X") -> Any:
    """A CSR float64 ``(n_documents, n_words)`` count matrix from dense, sparse or DataFrame
    input, validated as scikit-learn does (finite, 2-D, at least one document) and non-negative;
    sets ``n_features_in_`` and ``feature_names_in_`` when ``reset``. Counts may be floats
    (weighted or fractional counts): the moments only need non-negative row sums of at least 3."""
    import scipy.sparse as sp
    from sklearn.utils.validation import check_non_negative, validate_data

    check_matrix_shape(name, X, "n_documents", "n_words")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    C = validate_data(estimator, X, reset=reset, accept_sparse="csr", dtype=np.float64)
    check_non_negative(C, f"{type(estimator).__name__} ({name}: word counts)")
    C = sp.csr_matrix(C)
    # The moments divide by L(L-1)(L-2) of each document's length L: it must be finite.
    check_magnitude(name, torch.as_tensor(np.asarray(C.sum(axis=1)).ravel()), 3,
                    "the cubes of the document lengths", advice="these are not word counts of a corpus")
    return C


def drop_short_documents(C: Any, min_words: float | None, name: str = "X") -> tuple[Any, int]:
    """``(kept rows of C, number dropped)``: documents with fewer than ``min_words`` words.

    ``min_words=None`` drops nothing and raises ``ValueError`` if a document has fewer than 3
    words (the third moment needs 3 distinct word positions); the message names ``min_words``.

    Raises
    ------
    ValueError
        On short documents with ``min_words=None``, or when every document is dropped.
    """
    L = np.asarray(C.sum(axis=1)).ravel()
    if min_words is None:
        short = int((L < 3).sum())
        if short:
            raise ValueError(
                f"{name}: {short} of {len(L)} document(s) have fewer than 3 words; the third "
                "moment needs 3 distinct word positions (pass min_words=3 to drop them)")
        return C, 0
    keep = L >= min_words
    if not keep.any():
        raise ValueError(f"{name}: all {len(L)} documents have fewer than min_words={min_words} "
                         "words")
    return C[keep], int((~keep).sum())


def vocabulary_array(vocabulary: Any, n_words: int, feature_names: Any = None) -> np.ndarray:
    """The words of the columns, ``(V,)`` of str: ``vocabulary`` if given, else the DataFrame's
    column names, else ``word_0 … word_{V−1}`` (the ``-o .csv`` header's names).

    Raises
    ------
    ValueError
        When ``vocabulary`` does not have ``n_words`` entries.
    """
    if vocabulary is None:
        if feature_names is not None:
            return np.asarray(feature_names, dtype=object)
        return np.asarray([f"word_{i}" for i in range(n_words)], dtype=object)
    words = np.asarray(list(vocabulary), dtype=object)
    if words.ndim != 1 or len(words) != n_words:
        raise ValueError(f"vocabulary must hold one word per column ({n_words}), got "
                         f"{len(words)} entries")
    return words


def top_words(topic_word: np.ndarray, vocabulary: np.ndarray, n: int) -> list[list[str]]:
    """The ``n`` most probable words of each topic (row of ``topic_word``), most probable first."""
    order = np.argsort(-np.asarray(topic_word), axis=1, kind="stable")[:, :n]
    return [[str(vocabulary[j]) for j in row] for row in order]
