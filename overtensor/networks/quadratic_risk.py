"""Exact population risks and regime optima for quadratic activations (docs/theory/networks.md §1, *derived*).

Target ``y = xᵀBx − tr B`` with ``x ~ N(0, I_d)`` (plus independent label noise of variance
``noise²``). Every network with ``σ(t) = t²``, in every regime, is a quadratic form ``xᵀMx + c``
(``M = s_N Σ a_i w_i w_iᵀ`` for NN), and ``E[(xᵀDx − tr D)²] = 2‖D‖_F²`` gives the exact risk

    R(M, c) = 2‖M − B‖_F² + (tr M + c)² + noise²,         R_0 = 2‖B‖_F² + noise² (predict 0 = E[y]).

With the offset fitted the trace term vanishes. The optima over each regime's function class
(Ghorbani, Mei, Misiakiewicz, Montanari, NeurIPS 2019), all without sampling:

* RF (``a``, ``c`` trained, ``W`` frozen): ``min_a ‖B − Σ a_i w_i w_iᵀ‖_F²``, least squares with Gram
  ``G_ij = (w_i·w_j)²`` and right-hand side ``r_i = w_iᵀ B w_i`` — ``O(N² d + N³)``;
* NT (linearization in ``W, a``): every ``M`` with ``(I − P_W) M (I − P_W) = 0`` is reachable, so
  ``R_NT = 2‖(I − P_W) B (I − P_W)‖_F²`` — ``O(N d² + d³)``; 0 once ``rank W = d``;
* NN (everything trained): any symmetric ``M`` of rank ``≤ N``; Eckart–Young gives
  ``R_NN = 2 Σ_{k>N} λ_(k)(B)²`` (eigenvalues by decreasing modulus) — ``O(d³)``.

All risks here assume the offset is fitted (the trace term 0) and exclude the label noise, which
every regime pays alike; :func:`population_risk` adds both for a given ``(M, c)``.
"""

from __future__ import annotations

import torch


def _sym(M: torch.Tensor) -> torch.Tensor:
    return 0.5 * (M + M.transpose(-1, -2))


def population_risk(M: torch.Tensor, c: torch.Tensor | float, B: torch.Tensor,
                    noise: float = 0.0) -> float:
    """``E[(xᵀMx + c − y)²] = 2‖M − B‖_F² + (tr M + c)² + noise²`` in float64 (``M``, ``B``: ``(d, d)``)."""
    B64 = _sym(B.detach().double())
    M64 = _sym(M.detach().double().to(B64.device))
    c64 = float(c)
    return float(2 * ((M64 - B64) ** 2).sum() + (torch.trace(M64) + c64) ** 2) + noise**2


def null_risk(B: torch.Tensor, noise: float = 0.0) -> float:
    """``R_0 = 2‖B‖_F² + noise²``: the risk of the best constant (``E[y] = 0``)."""
    return float(2 * (B.double() ** 2).sum()) + noise**2


def rf_optimum(W: torch.Tensor, B: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Random-features optimum ``(R_RF, a)``: ``min_a 2‖B − Σ_i a_i w_i w_iᵀ‖_F²`` (offset fitted).

    Normal equations ``G a = r`` with ``G = (W Wᵀ)^{∘2}``, ``r_i = w_iᵀ B w_i``, solved by a
    symmetric eigendecomposition with the pseudo-inverse's cut at ``N·eps·λ_max`` (``G`` is singular
    once ``N > d(d+1)/2``). ``W``: ``(N, d)``. Returns the risk and the coefficients of ``w_i w_iᵀ``.
    """
    W64, B64 = W.detach().double(), _sym(B.detach().double())
    G = (W64 @ W64.T) ** 2
    r = ((W64 @ B64) * W64).sum(-1)
    lam, Q = torch.linalg.eigh(G)
    cut = lam.abs().max() * G.shape[0] * torch.finfo(torch.float64).eps
    inv = torch.where(lam > cut, 1.0 / lam.clamp_min(cut), torch.zeros_like(lam))
    a = Q @ (inv * (Q.T @ r))
    M = (W64.T * a) @ W64
    return float(2 * ((B64 - M) ** 2).sum()), a


def nt_optimum(W: torch.Tensor, B: torch.Tensor) -> float:
    """Neural-tangent optimum ``R_NT = 2‖(I − P_W) B (I − P_W)‖_F²`` (offset fitted).

    ``P_W`` projects on ``span(w_i)``, from an SVD of ``W`` (singular values above
    ``max(N, d)·eps·s_max`` count). Assumes every ``a_i ≠ 0`` at the initialization, as with
    :func:`overtensor.networks.model.init_network` (otherwise those neurons' directions drop out).
    """
    W64, B64 = W.detach().double(), _sym(B.detach().double())
    _, s, Vh = torch.linalg.svd(W64, full_matrices=False)
    rank = int((s > s.max() * max(W64.shape) * torch.finfo(torch.float64).eps).sum())
    Q = Vh[:rank].T  # (d, rank), orthonormal basis of span(w_i)
    C = B64 - Q @ (Q.T @ B64)
    C = C - (C @ Q) @ Q.T
    return float(2 * (C**2).sum())


def nn_optimum(B: torch.Tensor, width: int) -> float:
    """Fully-trained optimum ``R_NN = 2 Σ_{k>N} λ_(k)(B)²`` (Eckart–Young; eigenvalues of the
    symmetric ``B`` sorted by decreasing modulus). Needs per-neuron output weights of free sign
    (a shared ``a`` reaches only semidefinite ``M``)."""
    lam = torch.linalg.eigvalsh(_sym(B.detach().double()))
    tail = lam.abs().sort(descending=True).values[width:]
    return float(2 * (tail**2).sum())


def nn_optimal_form(B: torch.Tensor, width: int) -> torch.Tensor:
    """The NN optimum ``M``: ``B`` truncated to its ``N`` eigenvalues of largest modulus."""
    lam, Q = torch.linalg.eigh(_sym(B.detach().double()))
    keep = lam.abs().argsort(descending=True)[:width]
    return (Q[:, keep] * lam[keep]) @ Q[:, keep].T


def rf_asymptotic(B: torch.Tensor, rho: float) -> float:
    """``2[‖B_0‖² + (tr B)²/(d(1+ρ))]`` with ``B_0 = B − (tr B/d) I``: the RF risk for ``N/d → ρ``
    (docs/theory/networks.md §1, *derived*; ``ρ`` fixed as ``d → ∞``, so ``N ≪ d²``)."""
    B64 = _sym(B.double())
    d = B64.shape[0]
    tr = float(torch.trace(B64))
    b0 = float((B64**2).sum()) - tr**2 / d
    return 2 * (b0 + tr**2 / (d * (1 + rho)))


def nt_asymptotic(B: torch.Tensor, rho: float) -> float:
    """``2[(1−ρ)²‖B_0‖² + (1−ρ)(tr B)²/d]`` for ``ρ < 1``, 0 beyond (docs/theory/networks.md §1,
    *derived*)."""
    if rho >= 1:
        return 0.0
    B64 = _sym(B.double())
    d = B64.shape[0]
    tr = float(torch.trace(B64))
    b0 = float((B64**2).sum()) - tr**2 / d
    return 2 * ((1 - rho) ** 2 * b0 + (1 - rho) * tr**2 / d)


def regime_optima(W: torch.Tensor, B: torch.Tensor) -> dict[str, float]:
    """``{"rf", "nt", "nn", "null"}``: the three exact optima at ``W`` and the null risk."""
    return {"rf": rf_optimum(W, B)[0], "nt": nt_optimum(W, B), "nn": nn_optimum(B, W.shape[0]),
            "null": null_risk(B)}


__all__ = ["nn_optimal_form", "nn_optimum", "nt_asymptotic", "nt_optimum", "null_risk",
           "population_risk", "regime_optima", "rf_asymptotic", "rf_optimum"]
