"""Metrics (SPEC §6), all in float64: relative error, recovery with Hungarian matching, laziness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from overtensor.cp import SymmetricCP
from overtensor.loss import relative_error as _relative_error
from overtensor.targets import Target, as_target


def cp_relative_error(cp: SymmetricCP, target: Target) -> float:
    """``‖cp − T*‖_F / ‖T*‖_F`` in float64, through the Gram identity (no ``d^l`` array)."""
    return float(_relative_error(cp.weights, cp.components, as_target(target)))


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

    ``target`` is a :class:`~overtensor.targets.Target` with a known ``truth`` or a
    :class:`SymmetricCP`. Components of ``cp`` with zero weight are ignored.
    """
    truth = target if isinstance(target, SymmetricCP) else as_target(target).truth
    if truth is None:
        raise ValueError("recovery needs a target with known components (target.truth is None)")
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
        C = (U @ V.T).abs().numpy()
        rows, cols = linear_sum_assignment(-C)
        cos[rows] = C[rows, cols]
        match[rows] = kept_index[cols]
    return Recovery(int((cos >= threshold).sum()), r, cos, match, threshold)


def laziness(W: torch.Tensor, W0: torch.Tensor) -> float:
    """Relative distance from initialization ``‖W − W_0‖_F / ‖W_0‖_F``."""
    W, W0 = W.detach().double(), W0.detach().double()
    return float((W - W0).norm() / W0.norm().clamp_min(1e-300))
