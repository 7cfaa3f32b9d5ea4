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

#: Values of ``random_state`` the estimators accept: scikit-learn's (None, an int, a NumPy
#: ``RandomState``), a NumPy ``Generator`` and a ``torch.Generator``; every one becomes one
#: ``torch.Generator`` (:func:`overtensor._checks.make_generator`).
RANDOM_STATE = [None, Interval(Integral, 0, 2**64 - 1, closed="both"), np.random.RandomState,
                np.random.Generator, torch.Generator]


def check_matrix_shape(name: str, X: Any, rows: str = "n_samples", cols: str = "n_features") -> None:
    """Raise ``ValueError`` naming ``name`` and its shape unless ``X`` is a real 2-D matrix
    (sparse matrices, DataFrames, tensors and nested lists alike); complex data is refused with
    scikit-learn's wording ("Complex data not supported") but without the array in the message."""
    dtype = getattr(X, "dtype", None)
    if isinstance(X, torch.Tensor) and X.is_complex() or (
            isinstance(dtype, np.dtype) and dtype.kind == "c"):
        raise ValueError(f"Complex data not supported: {name} must be real, got dtype {dtype}")
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            shape = np.shape(X)
        except ValueError:  # ragged nested lists
            raise ValueError(f"{name} must be a ({rows}, {cols}) matrix, got ragged rows") from None
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape ({rows}, {cols}), got {tuple(shape)}")
