"""Levenberg–Marquardt (damped Gauss–Newton) refinement of a symmetric CP, without a ``d^l`` array.

Residual ``R(θ) = Σ_j c_j u_j^{⊗l} − σT*`` with free weights ``c`` and unnormalized ``u_j``
(``θ = (c, u_1, …, u_r)``, ``n = r(d+1)`` unknowns). The Gauss–Newton matrix ``JᵀJ`` of this
residual has a closed form through inner products of symmetric tensors (the Gram identity):

* ``⟨∂R/∂c_i, ∂R/∂c_j⟩ = g_ij^l`` with ``g_ij = u_i·u_j``;
* ``⟨∂R/∂c_i, ∂R/∂u_j⟩ = l c_j g_ij^{l−1} u_iᵀ``;
* ``⟨∂R/∂u_i, ∂R/∂u_j⟩ = l c_i c_j (g_ij^{l−1} I + (l−1) g_ij^{l−2} u_j u_iᵀ)``, from
  ``⟨Sym(e ⊗ a^{⊗l−1}), f ⊗ b^{⊗l−1}⟩ = ((e·f)(a·b)^{l−1} + (l−1)(e·b)(f·a)(a·b)^{l−2}) / l``;

and ``Jᵀ R`` is the gradient of ``½‖R‖²`` (closed form of :mod:`overtensor.gradients`).
Each step solves ``(JᵀJ + λ diag(JᵀJ)) δ = −JᵀR`` (Marquardt 1963) and adapts ``λ``. Why: near an
exact but ill-conditioned CP (correlated components, nearly parallel terms) L-BFGS crawls — its
error stalls around ``1e-4`` for hundreds of iterations — where Gauss–Newton converges
quadratically on a zero-residual problem. Cost ``O(n³)`` per step, so it is used only for
``n ≤ MAX_UNKNOWNS`` (:mod:`overtensor.reduction` falls back to L-BFGS above).
"""

from __future__ import annotations

import torch

from overtensor.cp import SymmetricCP
from overtensor.gradients import residual_contraction
from overtensor.loss import half_sq_distance
from overtensor.targets import Target

#: Largest ``r(d+1)`` refined by Levenberg–Marquardt (a dense ``n × n`` solve per step).
MAX_UNKNOWNS = 2500


def gauss_newton_matrix(c: torch.Tensor, U: torch.Tensor, order: int) -> torch.Tensor:
    """``JᵀJ`` ``(n, n)``, ``n = r(d+1)``, of ``Σ_j c_j u_j^{⊗l}`` in the unknowns ``(c, vec U)``
    (``U`` is ``(r, d)``, rows unnormalized; formulas in the module docstring)."""
    r, d = U.shape
    l = order
    G = U @ U.T
    cc = G**l
    cu = (l * c.unsqueeze(0).unsqueeze(-1) * (G ** (l - 1)).unsqueeze(-1)
          * U.unsqueeze(1))  # [i, j, :] = l c_j g_ij^{l-1} u_i
    cicj = c.unsqueeze(1) * c.unsqueeze(0)
    eye = torch.eye(d, dtype=U.dtype, device=U.device)
    g2 = G ** (l - 2) if l >= 2 else torch.zeros_like(G)
    uu = (l * cicj * G ** (l - 1)).unsqueeze(-1).unsqueeze(-1) * eye  # (r, r, d, d)
    # (e·u_j)(f·u_i): [i, j, e, f] = u_j[e] u_i[f]
    uu = uu + (l * (l - 1) * cicj * g2).unsqueeze(-1).unsqueeze(-1) * (
        U.unsqueeze(0).unsqueeze(-1) * U.unsqueeze(1).unsqueeze(-2))
    n = r * (d + 1)
    H = U.new_zeros(n, n)
    H[:r, :r] = cc
    H[:r, r:] = cu.reshape(r, r * d)
    H[r:, :r] = cu.reshape(r, r * d).T
    H[r:, r:] = uu.permute(0, 2, 1, 3).reshape(r * d, r * d)
    return H


def levenberg_marquardt(
    cp: SymmetricCP,
    target: Target,
    *,
    max_iter: int = 50,
    stop_below: float = 0.0,
) -> tuple[SymmetricCP, float]:
    """Refine ``cp`` by Levenberg–Marquardt in float64; returns the CP and its relative error.

    Stops after ``max_iter`` steps, when the relative error is ``≤ stop_below``, or when ``λ``
    grows past ``1e12`` (no step lowers the loss). Never returns a worse CP than it was given.
    """
    t64 = target.float64()
    sq = t64.sq_norm()
    scale = 1.0 / sq.sqrt()
    l, r, d = cp.order, cp.rank, cp.dim

    def loss_grad(c: torch.Tensor, U: torch.Tensor, grad: bool = True):
        if not grad:
            return float(half_sq_distance(c, U, t64, scale, sq)), None
        # Closed form (overtensor.gradients, rows not normalized): ∂/∂c_i = g_i,
        # ∂/∂u_i = l c_i r_i; the same values as autograd to rounding, without its overhead.
        r, g, t = residual_contraction(c, U, t64, scale)
        loss = 0.5 * (c * (g - t)).sum() + 0.5 * scale**2 * sq
        return float(loss), torch.cat([g, (l * c.unsqueeze(-1) * r).reshape(-1)])

    c = (cp.weights.detach().to(torch.float64) * scale).clone()
    U = cp.components.detach().to(torch.float64).clone()
    f, g = loss_grad(c, U)
    rel = (2 * max(f, 0.0)) ** 0.5
    lam = 1e-3
    for _ in range(max_iter):
        if rel <= stop_below:
            break
        H = gauss_newton_matrix(c, U, l)
        diag = H.diagonal().clamp_min(1e-12 * float(H.diagonal().max()))
        while lam < 1e12:
            try:
                step = torch.linalg.solve(H + lam * torch.diag(diag), -g)
            except RuntimeError:  # singular: more damping
                lam *= 10
                continue
            c_new, U_new = c + step[:r], U + step[r:].reshape(r, d)
            f_new, _ = loss_grad(c_new, U_new, grad=False)
            if f_new < f:
                c, U = c_new, U_new
                f, g = loss_grad(c, U)
                rel = (2 * max(f, 0.0)) ** 0.5
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
        else:
            break
    dt, dev = cp.weights.dtype, cp.weights.device
    out = SymmetricCP((c / scale).to(dev, dt), U.to(dev, dt), l, normalize=True).canonical()
    return out, rel
