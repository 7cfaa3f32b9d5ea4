"""Diagnostics of a returned CP that a user cannot see from its error alone (issue 10, items 2, 10).

* :func:`degeneracy`: CP degeneracy (Kruskal, Harshman, Lundy 1989; De Silva & Lim 2008, "Tensor
  rank and the ill-posedness of the best low-rank approximation problem"). When a target has no
  best approximation with the available number of terms (its rank exceeds its border rank, e.g.
  ``Sym(a^{⊗3} ⊗ b)`` at order 4: border rank 2, rank 4), the fit drives two or more terms toward
  the same direction with large weights of opposite sign, whose difference approximates a
  derivative ``d/dε (a + εb)^{⊗l}``. Signature: a *cancelling* pair (``λ_i λ_j cos_ij^l < 0``)
  with ``|cos_ij|`` near 1 and weights larger than the whole tensor (``|λ| > ‖T*‖``).
* :func:`rank_support`: terms whose weight is comparable to the residual are not supported by
  the data (with a noisy target they fit the noise): ``|λ_j| ≤ SUPPORT · ‖cp − T*‖``.

Pure functions on tensors; the loop (:func:`overtensor.tensors.gradient.finish_fit`) stores
their outcome in ``FitResult.info``.
"""

from __future__ import annotations

from typing import Any

import torch

#: Degeneracy flagged when a cancelling pair has ``|cos| ≥ DEGENERATE_COS`` and some
#: ``|λ_j| ≥ DEGENERATE_WEIGHT · ‖T*‖``.
DEGENERATE_COS = 0.9
DEGENERATE_WEIGHT = 1.0

#: A term is unsupported when ``|λ_j| ≤ SUPPORT · ‖cp − T*‖`` (absolute residual).
SUPPORT = 2.0


def degeneracy(weights: torch.Tensor, components: torch.Tensor, order: int,
               target_norm: float, *, min_weight: float = 1e-3) -> dict[str, Any] | None:
    """Largest ``|cos|`` of a cancelling pair and largest ``|λ|/‖T*‖``; ``None`` unless degenerate.

    Parameters
    ----------
    weights : Tensor ``(r,)``, components : Tensor ``(r, d)``
        Terms in the target's scale (rows need not be normalized).
    order : int
    target_norm : float
        ``‖T*‖`` (float64).
    min_weight : float
        Terms below ``min_weight · max|λ|`` are ignored (leftovers of an over-parameterized fit).

    Returns
    -------
    dict or None
        ``{"max_cos", "max_weight", "pair"}`` (``max_weight`` relative to ``‖T*‖``; ``pair`` the
        indices of the cancelling pair in the given order) when the signature is present.
    """
    w = weights.detach().to(torch.float64)
    U = components.detach().to(torch.float64)
    norms = U.norm(dim=-1).clamp_min(1e-300)
    w = w * norms**order
    U = U / norms.unsqueeze(-1)
    if w.numel() < 2 or not target_norm > 0:
        return None
    big = w.abs() >= min_weight * w.abs().max()
    idx = torch.nonzero(big).flatten()
    w, U = w[idx], U[idx]
    cos = U @ U.T
    cancelling = (w.unsqueeze(0) * w.unsqueeze(1) * cos**order) < 0
    score = torch.where(cancelling, cos.abs(), torch.zeros_like(cos))
    score.fill_diagonal_(0.0)
    max_cos = float(score.max())
    max_weight = float(w.abs().max()) / target_norm
    if max_cos < DEGENERATE_COS or max_weight < DEGENERATE_WEIGHT:
        return None
    flat = int(torch.argmax(score))
    i, j = divmod(flat, score.shape[0])
    return {"max_cos": max_cos, "max_weight": max_weight,
            "pair": [int(idx[i]), int(idx[j])]}


def degeneracy_advice(diag: dict[str, Any], width: int) -> str:
    """The one-line warning for a degenerate fit, with what to try."""
    return (f"CP degeneracy: nearly parallel terms (|cos| = {diag['max_cos']:.4f}) with weights of "
            f"opposite sign up to {diag['max_weight']:.1f}x ||T||; the target has no best "
            f"approximation with this many terms (rank > border rank). Try a wider fit "
            f"(width > {width}; measured in docs/method.md) or treat the result as an "
            f"approximation whose terms are not components")


def rank_support(weights: torch.Tensor, residual: float) -> dict[str, Any] | None:
    """Terms whose weight is comparable to the absolute residual ``‖cp − T*‖``.

    Returns ``{"found", "supported", "residual"}`` when some term has
    ``|λ_j| ≤ SUPPORT · residual``, else ``None``.
    """
    w = weights.detach().abs().to(torch.float64)
    supported = int((w > SUPPORT * residual).sum())
    if supported == w.numel():
        return None
    return {"found": int(w.numel()), "supported": supported, "residual": float(residual)}


def rank_support_advice(diag: dict[str, Any]) -> str:
    """The one-line warning for an unsupported rank, with what to try."""
    return (f"found rank {diag['found']} is not supported: {diag['found'] - diag['supported']} "
            f"term(s) have weights <= {SUPPORT:g}x the residual ({diag['residual']:.2e}), as when "
            f"noise is fitted; pass extraction=Extraction(rank=K) (CLI: --max-rank K) to get the "
            f"best CP with at most K terms")
