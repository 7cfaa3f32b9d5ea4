"""Metrics (docs/theory/tensors.md §6), all in float64: relative error, recovery with Hungarian matching,
laziness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from overtensor._checks import ArgumentTypeError, as_tensor, check_float
from overtensor.regimes.diagnostics import relative_distance
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.loss import relative_error as _relative_error
from overtensor.tensors.targets import Target, as_target, cp_pair


def check_cp(cp: Any, order: int | None = None, dim: int | None = None,
             name: str = "cp") -> SymmetricCP:
    """``cp`` as a :class:`SymmetricCP` with real, finite weights ``(r,)`` and components
    ``(r, dim)`` of the given ``order``; a TensorLy ``CPTensor``, a ``(weights, [U]*order)`` pair
    and a :class:`~overtensor.tensors.result.FitResult` are accepted
    (:func:`overtensor.tensors.targets.cp_pair`; unequal factors are refused, see
    :func:`overtensor.as_target`).

    Raises ``TypeError`` (also a ``ValueError``) for other types or complex values and
    ``ValueError`` for NaN/inf, inconsistent shapes or an order/dimension other than the target's.
    """
    inner = getattr(cp, "cp", None)
    if isinstance(inner, SymmetricCP):  # a FitResult
        cp = inner
    if not isinstance(cp, SymmetricCP):
        parts = cp_pair(cp, allow_list=True)
        if parts is None:
            raise ArgumentTypeError(
                f"{name} must be a SymmetricCP, a TensorLy CPTensor or a (weights, factors) "
                f"pair, got {type(cp).__name__}")
        pair = as_target((parts[0], list(parts[1])), order)
        cp = SymmetricCP(pair.weights, pair.factors, pair.order)
    w = as_tensor(f"{name}.weights", cp.weights)
    U = as_tensor(f"{name}.components", cp.components)
    if U.ndim != 2 or w.shape != U.shape[:1]:
        raise ValueError(f"{name} must have weights of shape (r,) and components of shape (r, d), "
                         f"got {tuple(w.shape)} and {tuple(U.shape)}")
    if order is not None and cp.order != order:
        raise ValueError(f"{name} has order {cp.order}, the target has order {order}")
    if dim is not None and U.shape[1] != dim:
        raise ValueError(f"{name} has dimension {U.shape[1]}, the target has dimension {dim}")
    return cp


def cp_relative_error(cp: SymmetricCP, target: Target) -> float:
    """``‖cp − T*‖_F / ‖T*‖_F`` in float64, through the Gram identity (no ``d^l`` array).

    ``cp``: a :class:`SymmetricCP` (or a TensorLy-style pair, see :func:`check_cp`) of the
    target's order and dimension; errors as in :func:`check_cp` and :func:`overtensor.as_target`.
    """
    tgt = as_target(target)
    cp = check_cp(cp, tgt.order, tgt.dim)
    return float(_relative_error(cp.weights, cp.components, tgt))


@dataclass(frozen=True)
class Recovery:
    """One-to-one matching of true components to found ones.

    Attributes
    ----------
    recovered : int
        Number of true components whose matched ``|cos|`` is at least ``threshold``.
    rank : int
        Number of true components.
    cosines : numpy.ndarray
        Matched ``|cos|`` per true component (0 where unmatched), in the order of the truth.
    matching : numpy.ndarray
        Index of the found component matched to each true component (−1 where unmatched).
    threshold : float
    """

    recovered: int
    rank: int
    cosines: np.ndarray
    matching: np.ndarray
    threshold: float

    @property
    def all_recovered(self) -> bool:
        return self.recovered == self.rank


def recovery(cp: SymmetricCP, target, threshold: float = 0.99) -> Recovery:
    """Match true components ``u_j`` to found components by the Hungarian method on ``|cos|``.

    ``target`` is a :class:`~overtensor.tensors.targets.Target` with a known ``truth``, a
    :class:`SymmetricCP`, a TensorLy ``CPTensor`` or a ``(weights, factors)`` pair; ``cp`` any CP
    form of :func:`check_cp`. Components of ``cp`` with zero weight are ignored.
    """
    truth = target if isinstance(target, SymmetricCP) else as_target(target).truth
    if truth is None:
        raise ValueError("recovery needs a target with known components (target.truth is None)")
    truth = check_cp(truth, name="target")
    cp = check_cp(cp, truth.order, truth.dim)
    threshold = check_float("threshold", threshold, minimum=0.0, maximum=1.0)
    U = truth.components.detach().to("cpu", torch.float64)
    U = U / U.norm(dim=-1, keepdim=True)
    V = cp.components.detach().to("cpu", torch.float64)
    keep = cp.weights.detach().cpu() != 0
    V = V[keep]
    kept_index = torch.nonzero(keep).flatten().numpy()
    r = U.shape[0]
    cos = np.zeros(r)
    match = -np.ones(r, dtype=int)
    if V.shape[0] > 0:
        V = V / V.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        C = (U @ V.T).abs().clamp(max=1.0).numpy()  # |cos| ≤ 1 despite rounding
        best = C.argmax(axis=1)
        if len(np.unique(best)) == r:
            # Every true component's best match is a different found one: that assignment
            # reaches the bound Σ_j max_k C_jk, so it is the Hungarian optimum (and SciPy's
            # ~0.7 s import is not needed; issue 21).
            rows, cols = np.arange(r), best
        else:
            from scipy.optimize import linear_sum_assignment

            rows, cols = linear_sum_assignment(-C)
        cos[rows] = C[rows, cols]
        match[rows] = kept_index[cols]
    return Recovery(int((cos >= threshold).sum()), r, cos, match, threshold)


def laziness(W: torch.Tensor, W0: torch.Tensor) -> float:
    """Relative distance from initialization ``‖W − W_0‖_F / ‖W_0‖_F``.

    ``W`` and ``W0``: real, finite tensors of the same shape (``ValueError``/``TypeError``).
    """
    W, W0 = as_tensor("W", _tensor("W", W)), as_tensor("W0", _tensor("W0", W0))
    if W.shape != W0.shape:
        raise ValueError(f"W and W0 must have the same shape, got {tuple(W.shape)} and "
                         f"{tuple(W0.shape)}")
    return relative_distance({"W": W}, {"W": W0})


def _tensor(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a tensor, got {type(value).__name__}")
    return value
