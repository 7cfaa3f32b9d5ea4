"""Second moments in one or a few passes, and whitening (Anandkumar et al. 2014, §4.3.1).

Whitening maps a second-moment matrix ``M2 = Σ_i w_i μ_i μ_iᵀ`` (rank ``k``) to the identity:
with the top-``k`` eigenpairs ``M2 = U diag(s) Uᵀ``, ``W = U diag(s)^{−1/2}`` gives ``Wᵀ M2 W = I``,
so the vectors ``v_i = √w_i Wᵀ μ_i`` are orthonormal and the whitened third moment
``M3(W, W, W) = Σ_i w_i^{−1/2} v_i^{⊗3}`` is an orthogonally decomposable ``k × k × k`` tensor.
Unwhitening maps a whitened vector back: ``μ = U diag(s)^{1/2} v`` (the pseudo-inverse of ``Wᵀ``).

The top-``k`` eigenpairs of ``E[x xᵀ]`` come from an exact ``d × d`` eigendecomposition when
``d ≤ exact_below`` (one pass, ``O(n d²)``), and otherwise from randomized subspace iteration
(Halko, Martinsson, Tropp 2011, Algorithm 4.4) with Rayleigh–Ritz on the whole block Krylov
space (Musco & Musco 2015) on the streamed matrix: ``2 + power_iters`` passes
over the data, ``O(n d (k + oversample))`` each, ``O(d (k + oversample))`` memory; the mean and
the trace come with the first pass. Each chunk is multiplied in its own dtype (float32 streams:
twice the speed) and the products are summed over chunks in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_int, make_generator
from overtensor.moments.sources import Source


@dataclass(frozen=True)
class SecondMoment:
    """Streaming summary of ``E[x xᵀ]``: sample count, mean, trace and top eigenpairs.

    Attributes
    ----------
    n : int
    mean : Tensor ``(d,)``, float64
    trace : float
        ``E‖x‖²``.
    eigenvalues : Tensor ``(k',)``, float64, decreasing
        The top eigenvalues of ``E[x xᵀ]`` (``k' ≥ k``: the Ritz values of the block Krylov space
        on the randomized path, ``k' = d`` on the exact one).
    eigenvectors : Tensor ``(d, k')``, float64, orthonormal columns
    """

    n: int
    mean: torch.Tensor
    trace: float
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor


def second_moment(
    source: Source,
    k: int,
    *,
    oversample: int = 10,
    power_iters: int = 3,
    exact_below: int = 2000,
    random_state: Any = None,
    progress: Any = None,
) -> SecondMoment:
    """Top eigenpairs of ``E[x xᵀ]`` over a source, without forming it when ``d`` is large.

    Parameters
    ----------
    source : Source
        See :mod:`overtensor.moments.sources`.
    k : int
        Number of eigenpairs needed (at least ``k`` are returned).
    oversample, power_iters : int
        Extra sketch columns and subspace iterations of the randomized path.
    exact_below : int
        Dimension up to which ``E[x xᵀ]`` is formed and diagonalized exactly.
    random_state : int, torch.Generator or None
        Seeds the Gaussian test matrix of the randomized path.
    progress : callable, optional
        ``progress(pass_index, n_passes)``, called before each pass.

    Raises
    ------
    ValueError
        If ``k`` is not between 1 and ``d``.
    """
    d = source.dim
    k = check_int("n_components", k, 1)
    if k > d:
        raise ValueError(f"n_components must be <= n_features={d}, got {k}")
    oversample = check_int("oversample", oversample, 0)
    power_iters = check_int("power_iters", power_iters, 0)
    if d <= exact_below:
        if progress:
            progress(0, 1)
        n, total, trace, S = 0, torch.zeros(d, dtype=torch.float64), 0.0, torch.zeros(d, d,
                                                                                      dtype=torch.float64)
        for X in source.chunks():
            X = X.to(torch.float64)  # the d × d sum is formed exactly: O(n d²) dominates anyway
            n += X.shape[0]
            total += X.sum(0)
            trace += float((X * X).sum())
            S += X.T @ X
        evals, evecs = torch.linalg.eigh(S / n)
        return SecondMoment(n, total / n, trace / n, evals.flip(0), evecs.flip(1))

    width = min(d, k + oversample)
    gen = make_generator(random_state)
    Y = torch.randn(d, width, generator=gen, dtype=torch.float64)
    n_passes = 2 + power_iters
    n, total, trace = 0, torch.zeros(d, dtype=torch.float64), 0.0
    blocks, products = [], []
    for p in range(n_passes):
        if progress:
            progress(p, n_passes)
        Q = torch.linalg.qr(Y).Q
        Y = torch.zeros(d, width, dtype=torch.float64)
        for X in source.chunks():
            P = X @ Q.to(X.dtype)
            if p == 0:
                # The first moment rides along as one more column of the same product
                # (Xᵀ [XQ | 1]); the trace from the row norms (a float32 sum of squares over all
                # entries at once loses digits, the per-row sums do not).
                P = torch.cat([P, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1)
                n += X.shape[0]
                trace += float(torch.einsum("ij,ij->i", X, X).to(torch.float64).sum())
            XtP = (X.T @ P).to(torch.float64)
            if p == 0:
                total += XtP[:, -1]
                XtP = XtP[:, :-1]
            Y += XtP
        Y /= n
        blocks.append(Q)
        products.append(Y)
    # Block Krylov (Musco & Musco 2015): Rayleigh–Ritz on the span of every block Q_0 … Q_q, not
    # only the last one. S times that basis is already known (the Y of each pass), so it costs no
    # extra pass and converges with the square root of the spectral gap instead of the gap itself
    # (a spherical mixture's signal sits only ~2x above its noise bulk at d = 10⁴).
    K, SK = torch.cat(blocks, dim=1), torch.cat(products, dim=1)
    U, sv, Vh = torch.linalg.svd(K, full_matrices=False)
    keep = sv > 1e-10 * sv[0]
    U, SU = U[:, keep], SK @ (Vh[keep].T / sv[keep])
    B = U.T @ SU
    evals, V = torch.linalg.eigh((B + B.T) / 2)
    Q = U
    return SecondMoment(n, total / n, trace / n, evals.flip(0), (Q @ V).flip(1))


def check_whitenable(eigenvalues: Any, noun: str = "components") -> None:
    """Raise a short ``ValueError`` unless the top-``k`` eigenvalues ``(k,)`` of a second moment
    are all positive (whitening divides by their square roots).

    The message says how many are positive (at most that many ``noun`` can be learned from these
    data) and shows only the smallest few values, never the whole spectrum.
    """
    values = torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
    positive = int((values > 0).sum())
    if positive < values.numel():
        tail = ", ".join(f"{v:.3g}" for v in values[-3:].tolist())
        raise ValueError(
            f"cannot whiten: the second moment has only {positive} positive eigenvalues among the "
            f"top {values.numel()} (smallest: {tail}); ask for at most {max(positive, 1)} {noun}")


@dataclass(frozen=True)
class Whitening:
    """``W = U diag(s)^{−1/2}`` for a rank-``k`` PSD matrix ``U diag(s) Uᵀ``.

    Attributes
    ----------
    basis : Tensor ``(d, k)``
        ``U``, orthonormal columns.
    eigenvalues : Tensor ``(k,)``
        ``s``, all positive.
    """

    basis: torch.Tensor
    eigenvalues: torch.Tensor

    def __post_init__(self) -> None:
        check_whitenable(self.eigenvalues)

    @property
    def matrix(self) -> torch.Tensor:
        """``W`` of shape ``(d, k)``."""
        return self.basis / self.eigenvalues.sqrt()

    def whiten(self, X: torch.Tensor) -> torch.Tensor:
        """``X W``: rows of ``X`` (``(..., d)``) in whitened coordinates (``(..., k)``)."""
        return X @ self.matrix

    def unwhiten(self, V: torch.Tensor) -> torch.Tensor:
        """``V diag(s)^{1/2} Uᵀ``: whitened rows (``(..., k)``) back to ``R^d`` (``(..., d)``)."""
        return (V * self.eigenvalues.sqrt()) @ self.basis.T
