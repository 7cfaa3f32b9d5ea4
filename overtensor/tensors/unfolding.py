"""Singular values of a symmetric tensor's unfolding, and the error bound they give every CP.

A CP with ``j`` terms ``Σ_i λ_i u_i^{⊗l}`` has a mode-1 unfolding ``Σ_i λ_i u_i (u_i^{⊗(l−1)})ᵀ``
of rank at most ``j``, and the Frobenius norm of a tensor equals that of its unfolding. By
Eckart–Young, every such CP therefore has

    ‖T − T̂‖ ≥ sqrt(σ_{j+1}² + σ_{j+2}² + …)

with ``σ`` the singular values of ``T``'s unfolding: a *proof* that no CP with ``j`` terms can
reach a smaller relative error, used to skip rank reductions that cannot succeed
(:func:`overtensor.tensors.reduction.reduce_rank`) and to certify that an extracted CP has the fewest
terms (:mod:`overtensor.tensors.shortcuts`). Computed only when cheap: dense targets with
``d^{l+1} ≤`` :data:`MAX_FLOPS` (the ``d × d`` Gram of the unfolding), CP targets (an
``r × r`` eigenproblem, never forming the tensor) and moment targets of at most
:data:`MAX_SAMPLES` samples (the CP of the samples with weights ``1/n``).
"""

from __future__ import annotations

import torch

from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target

#: Largest ``d^{l+1}`` (operations of the unfolding's Gram) of a dense target examined.
MAX_FLOPS = 2e7

#: Largest number of samples of a moment target examined (an ``n × n`` eigenproblem).
MAX_SAMPLES = 1000


def unfolding_singular_values(target: Target) -> torch.Tensor | None:
    """Singular values (float64, descending) of the mode-1 unfolding, or ``None`` when not cheap.

    Dense: eigenvalues of ``M Mᵀ`` (``d × d``). CP ``Σ_j w_j f_j^{⊗l}`` (``F`` ``(r, d)``):
    ``M Mᵀ = Fᵀ D H D F`` with ``D = diag(w)``, ``H = (F Fᵀ)^{∘(l−1)}``, whose non-zero
    eigenvalues are those of the symmetric ``r × r`` matrix ``G^{1/2} D H D G^{1/2}``
    (``G = F Fᵀ``).
    """
    t64 = target.float64()
    if isinstance(t64, DenseTarget):
        d, l = t64.dim, t64.order
        if float(d) ** (l + 1) > MAX_FLOPS:
            return None
        M = t64.array.reshape(d, -1)
        ev = torch.linalg.eigvalsh(M @ M.T)
    elif (isinstance(t64, CPTarget) and t64.factors.ndim == 2) or (
            isinstance(t64, MomentTarget) and t64.samples.shape[0] <= MAX_SAMPLES):
        # A moment tensor (1/n) Σ_k x_k^{⊗l} is the CP with weights 1/n and the samples.
        if isinstance(t64, MomentTarget):
            F = t64.samples
            w = torch.full((F.shape[0],), 1.0 / F.shape[0], dtype=F.dtype, device=F.device)
        else:
            F, w = t64.factors, t64.weights
        G = F @ F.T
        evG, Q = torch.linalg.eigh(G)
        root = (Q * evG.clamp_min(0).sqrt()) @ Q.T
        H = G ** (t64.order - 1)
        A = root @ (w.unsqueeze(-1) * H * w) @ root
        ev = torch.linalg.eigvalsh((A + A.T) / 2)
    else:
        return None
    return ev.clamp_min(0).sqrt().flip(0)


def min_relative_error(singular_values: torch.Tensor, terms: int) -> float:
    """Lower bound on the relative error of any CP with ``terms`` terms (module docstring)."""
    sq = singular_values.to(torch.float64) ** 2
    total = float(sq.sum())
    if total <= 0:
        return 0.0
    return float(sq[terms:].sum() / total) ** 0.5


#: Largest ``d^{3l/2}`` (the cost of the square unfolding's eigenvalues) examined by
#: :func:`square_unfolding_eigenvalues`.
SIGN_MAX_FLOPS = 1e9


def square_unfolding_eigenvalues(target: Target) -> torch.Tensor | None:
    """Eigenvalues (float64) of the square unfolding ``d^{l/2} × d^{l/2}`` of a dense
    even-order target, sorted by decreasing ``|μ|``; ``None`` for other targets or above
    :data:`SIGN_MAX_FLOPS`.

    For ``T = Σ_j λ_j u_j^{⊗l}`` the unfolding is ``Σ_j λ_j v_j v_jᵀ`` with ``v_j = u_j^{⊗l/2}``:
    with independent ``v_j`` its inertia (Sylvester's law) counts the positive and the negative
    weights, and ``−T`` has the opposite signs. Used for the fixed signs of a dense target of
    unknown sign (:func:`overtensor.tensors.gradient.initial_signs`).
    """
    # Decided before any copy: a float64 copy of a moment target's samples would be wasted.
    if not isinstance(target, DenseTarget) or target.order % 2:
        return None
    n = target.dim ** (target.order // 2)
    if float(n) ** 3 > SIGN_MAX_FLOPS:
        return None
    M = target.float64().array.reshape(n, n)
    mu = torch.linalg.eigvalsh((M + M.T) / 2)
    return mu[torch.argsort(mu.abs(), descending=True)]
