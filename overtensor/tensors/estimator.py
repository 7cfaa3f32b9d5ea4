"""A scikit-learn / TensorLy style estimator over :func:`overtensor.fit`.

Naming: the result type :class:`overtensor.SymmetricCP` is the analogue of TensorLy's
``CPTensor`` (what a decomposition *is*) and keeps its name; the estimator is
:class:`SymmetricCPDecomposition`, the way scikit-learn names estimators after what they do
(``LatentDirichletAllocation``, ``TruncatedSVD``) and the module TensorLy keeps them in
(``tensorly.decomposition.SymmetricCP``). A TensorLy user writes
``SymmetricCPDecomposition(rank).fit_transform(tensor)`` where they wrote
``SymmetricCP(rank).fit_transform(tensor)``, and gets a ``(weights, factors)`` pair back.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from overtensor.tensors.config import Extraction, GradientSchedule
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.methods import DIRECT_METHODS, METHODS

#: Methods that return exactly the number of components they are given as ``width``.
_FIXED_WIDTH = ("power-method", "spm", "exact-rank")


def _float_array(X: Any) -> np.ndarray:
    """A float64 copy of an array-like tensor; errors name ``X`` (scikit-learn's wording for
    complex and empty input, without printing the array)."""
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: X must be real, got dtype {X.dtype}")
    if X.dtype.kind == "O":  # numbers stored as objects convert; anything else is refused
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"X must hold numbers: {exc}") from None
    if X.dtype.kind not in "fiub":
        raise ValueError(f"X must be a numeric tensor, got dtype {X.dtype}")
    if 0 in X.shape:
        raise ValueError(f"X has an empty axis: 0 feature(s) (shape={X.shape}) while a minimum of 1 "
                         "is required.")
    return np.ascontiguousarray(X, dtype=np.float64)


#: ``check_estimator`` checks that fail by design (``tests/test_moments_sklearn.py``).
EXPECTED_FAILED_CHECKS = {
    "check_pipeline_consistency": (
        "fit_transform returns the decomposition, a (weights, factors) pair in TensorLy's "
        "CPTensor convention, not a per-sample array that the check can compare"),
}


class SymmetricCPDecomposition(BaseEstimator):
    """Symmetric CP decomposition of one tensor, as an estimator (TensorLy's and scikit-learn's
    style) over :func:`overtensor.fit`.

    ``fit_transform(tensor)`` returns the decomposition, a :class:`~overtensor.SymmetricCP` that
    unpacks as ``weights, factors`` (TensorLy's ``CPTensor`` convention: ``factors`` is
    ``[U] * order`` with the components as the columns of ``U``, ``(d, r)``).

    Parameters
    ----------
    rank : int, default=1
        Number of terms returned (at most): ``width`` of the ``power-method`` and ``exact-rank``
        methods, the ``rank`` cap of the gradient methods (:func:`overtensor.fit`).
    width : int or None, default=None
        Terms of the over-parameterized model (gradient methods); ``None``: ``2 * rank + 2``,
        the width :func:`overtensor.moments.best_rank_cp` uses. Ignored by the fixed-width
        methods.
    method : str, default="beyond-lazy"
        One of :data:`overtensor.METHODS`.
    tol : float, default=1e-4
        Relative error at which training stops (:func:`overtensor.fit`).
    max_steps : int, default=20000
        Step budget of the gradient methods (``power-method`` and ``spm`` take no steps).
    random_state : None, int, numpy Generator or RandomState, or torch.Generator
        Seeds every random draw (one ``torch.Generator``).

    Attributes
    ----------
    decomposition_ : SymmetricCP
        The fitted decomposition (``weights, factors = decomposition_``).
    weights_ : ndarray ``(r,)``
    components_ : ndarray ``(r, d)``
        Unit components (rows).
    relative_error_ : float
        ``‖T − T̂‖ / ‖T‖`` in float64.
    result_ : FitResult
        Everything :func:`overtensor.fit` returned (history, diagnostics, timings).
    n_features_in_ : int
        ``d``, the tensor's dimension.

    Notes
    -----
    The input is one tensor, not a sample matrix: an order-2 tensor is a symmetric ``(d, d)``
    matrix, so the estimator declares scikit-learn's ``pairwise`` input tag and
    ``check_estimator`` feeds it symmetric kernels. It passes every check except
    ``check_pipeline_consistency`` (declared in :data:`EXPECTED_FAILED_CHECKS`):
    ``fit_transform`` returns a ``(weights, factors)`` decomposition, not a per-sample array the
    check can compare.

    Examples
    --------
    >>> import overtensor as ot
    >>> from overtensor.tensors.estimator import SymmetricCPDecomposition
    >>> t = ot.random_target(order=3, dim=10, rank=2, random_state=0)
    >>> T = ot.SymmetricCP(t.weights, t.factors, 3).to_dense()  # a dense (10, 10, 10) tensor
    >>> weights, factors = SymmetricCPDecomposition(2, random_state=0).fit_transform(T)
    >>> weights.shape, factors[0].shape
    (torch.Size([2]), torch.Size([10, 2]))
    """

    _parameter_constraints: ClassVar[dict] = {
        "rank": [Interval(Integral, 1, None, closed="left")],
        "width": [None, Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions(set(METHODS))],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_steps": [Interval(Integral, 1, None, closed="left")],
        "random_state": [None, Interval(Integral, 0, 2**64 - 1, closed="both"),
                         np.random.RandomState, np.random.Generator, torch.Generator],
    }

    def __init__(self, rank: int = 1, *, width: int | None = None, method: str = "beyond-lazy",
                 tol: float = 1e-4, max_steps: int = 20000, random_state: Any = None) -> None:
        self.rank = rank
        self.width = width
        self.method = method
        self.tol = tol
        self.max_steps = max_steps
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> SymmetricCPDecomposition:
        """Decompose the symmetric tensor ``X`` (a dense ``(d,)*l`` array, a ``Target`` or a
        ``(weights, factors)`` pair: whatever :func:`overtensor.as_target` accepts). ``y`` is
        ignored.

        Raises
        ------
        ValueError
            On bad parameters, or a tensor that is not symmetric, not finite or not square.
        """
        from overtensor._checks import estimator_generator
        from overtensor.tensors.fitting import fit
        from overtensor.tensors.targets import as_target

        if isinstance(X, np.ndarray | list) or (hasattr(X, "__array__")
                                                and not isinstance(X, torch.Tensor | SymmetricCP)):
            X = torch.from_numpy(_float_array(X))
        target = as_target(X)
        gen = estimator_generator(self.random_state)
        # The step budget is a gradient method's (the power method counts no steps).
        schedule = None if self.method in DIRECT_METHODS else GradientSchedule(
            max_steps=self.max_steps)
        if self.method in _FIXED_WIDTH:
            result = fit(target, self.rank, self.method, tol=self.tol, random_state=gen,
                         schedule=schedule)
        else:
            width = self.width if self.width is not None else 2 * self.rank + 2
            result = fit(target, width, self.method, tol=self.tol, random_state=gen,
                         extraction=Extraction(rank=self.rank), schedule=schedule)
        cp = result.cp
        self.decomposition_ = SymmetricCP(cp.weights.detach().cpu(), cp.components.detach().cpu(),
                                          cp.order)
        self.weights_ = self.decomposition_.weights.numpy().astype(np.float64)
        self.components_ = self.decomposition_.components.numpy().astype(np.float64)
        self.relative_error_ = float(result.relative_error)
        self.result_ = result
        self.n_features_in_ = int(target.dim)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> SymmetricCP:
        """``fit(X)`` and return ``decomposition_`` (unpacks as ``weights, factors``)."""
        return self.fit(X).decomposition_

    def reconstruct(self) -> torch.Tensor:
        """The dense tensor of the decomposition, ``(d,)*l`` (small ``d`` only)."""
        check_is_fitted(self)
        return self.decomposition_.to_dense()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = True  # an order-2 tensor is a symmetric (d, d) matrix
        return tags
