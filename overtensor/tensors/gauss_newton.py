"""Levenberg–Marquardt (damped Gauss–Newton) refinement of a symmetric CP, without a ``d^l`` array.

Residual ``R(θ) = Σ_j c_j u_j^{⊗l} − σT*`` with free weights ``c`` and unnormalized ``u_j``
(``θ = (c, u_1, …, u_r)``, ``n = r(d+1)`` unknowns). The Gauss–Newton matrix ``JᵀJ`` of this
residual has a closed form through inner products of symmetric tensors (the Gram identity):

* ``⟨∂R/∂c_i, ∂R/∂c_j⟩ = g_ij^l`` with ``g_ij = u_i·u_j``;
* ``⟨∂R/∂c_i, ∂R/∂u_j⟩ = l c_j g_ij^{l−1} u_iᵀ``;
* ``⟨∂R/∂u_i, ∂R/∂u_j⟩ = l c_i c_j (g_ij^{l−1} I + (l−1) g_ij^{l−2} u_j u_iᵀ)``, from
  ``⟨Sym(e ⊗ a^{⊗l−1}), f ⊗ b^{⊗l−1}⟩ = ((e·f)(a·b)^{l−1} + (l−1)(e·b)(f·a)(a·b)^{l−2}) / l``;

and ``Jᵀ R`` is the gradient of ``½‖R‖²`` (closed form of :mod:`overtensor.tensors.gradients`).
Each step solves ``(JᵀJ + λ diag(JᵀJ)) δ = −JᵀR`` (Marquardt 1963) and adapts ``λ``. Why: near an
exact but ill-conditioned CP (correlated components, nearly parallel terms) L-BFGS crawls — its
error stalls around ``1e-4`` for hundreds of iterations — where Gauss–Newton converges
quadratically on a zero-residual problem. Cost ``O(n³)`` per step, so it is used only for
``n ≤ MAX_UNKNOWNS`` (:mod:`overtensor.tensors.reduction` falls back to L-BFGS above).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.gradients import residual_contraction
from overtensor.tensors.loss import half_sq_distance
from overtensor.tensors.targets import Target

#: Largest ``r(d+1)`` refined by Levenberg–Marquardt (a dense ``n × n`` solve per step).
MAX_UNKNOWNS = 2500


def gauss_newton_matrix(c: np.ndarray, U: np.ndarray, order: int) -> np.ndarray:
    """``JᵀJ`` ``(n, n)``, ``n = r(d+1)``, of ``Σ_j c_j u_j^{⊗l}`` in the unknowns ``(c, vec U)``
    (``c`` ``(r,)``, ``U`` ``(r, d)``, rows unnormalized, float64 NumPy; formulas in the module
    docstring)."""
    r, d = U.shape
    l = order
    G = U @ U.T
    Gl1 = G ** (l - 1)
    cu = l * (c[None, :] * Gl1)[:, :, None] * U[:, None, :]  # [i, j, :] = l c_j g_ij^{l-1} u_i
    cicj = np.outer(c, c)
    g2 = G ** (l - 2) if l >= 2 else np.zeros_like(G)
    uu = (l * cicj * Gl1)[:, :, None, None] * np.eye(d)  # (r, r, d, d)
    # (e·u_j)(f·u_i): [i, j, e, f] = u_j[e] u_i[f]
    uu = uu + (l * (l - 1) * cicj * g2)[:, :, None, None] * (U[None, :, :, None] * U[:, None, None, :])
    n = r * (d + 1)
    H = np.zeros((n, n))
    H[:r, :r] = G**l
    H[:r, r:] = cu.reshape(r, r * d)
    H[r:, :r] = cu.reshape(r, r * d).T
    H[r:, r:] = uu.transpose(0, 2, 1, 3).reshape(r * d, r * d)
    return H


LossGrad = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]


def damped_steps(c: np.ndarray, U: np.ndarray, order: int, loss_grad: LossGrad,
                 loss_only: Callable[[np.ndarray, np.ndarray], float], *, max_iter: int,
                 stop_below: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The Levenberg–Marquardt loop on ``(c, U)`` (float64 NumPy); returns ``(c, U, rel)``.

    ``loss_grad(c, U)`` gives ``½‖R‖²`` (of the scaled target, ``‖σT*‖ = 1``) and its gradient
    ``(n,)`` in ``(c, vec U)``; ``loss_only`` the loss alone. Stops after ``max_iter`` steps, when
    ``rel = sqrt(2·loss) ≤ stop_below``, or when ``λ`` grows past ``1e12``; only steps that lower
    the loss are taken, so the result is never worse than the start.
    """
    r, d = U.shape
    f, g = loss_grad(c, U)
    rel = (2 * max(f, 0.0)) ** 0.5
    lam = 1e-3
    for _ in range(max_iter):
        if rel <= stop_below:
            break
        H = gauss_newton_matrix(c, U, order)
        diag = np.maximum(H.diagonal(), 1e-12 * float(H.diagonal().max()))
        while lam < 1e12:
            try:
                step = np.linalg.solve(H + lam * np.diag(diag), -g)
            except np.linalg.LinAlgError:  # singular: more damping
                lam *= 10
                continue
            c_new, U_new = c + step[:r], U + step[r:].reshape(r, d)
            f_new = loss_only(c_new, U_new)
            if f_new < f:
                c, U = c_new, U_new
                f, g = loss_grad(c, U)
                rel = (2 * max(f, 0.0)) ** 0.5
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
        else:
            break
    return c, U, rel


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
    l = cp.order

    def as_t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(t64.device)

    def loss_grad(c: np.ndarray, U: np.ndarray) -> tuple[float, np.ndarray]:
        # Closed form (overtensor.tensors.gradients, rows not normalized): ∂/∂c_i = g_i,
        # ∂/∂u_i = l c_i r_i; the same values as autograd to rounding, without its overhead.
        ct, Ut = as_t(c), as_t(U)
        r, g, t = residual_contraction(ct, Ut, t64, scale)
        loss = 0.5 * (ct * (g - t)).sum() + 0.5 * scale**2 * sq
        return float(loss), torch.cat([g, (l * ct.unsqueeze(-1) * r).reshape(-1)]).cpu().numpy()

    def loss_only(c: np.ndarray, U: np.ndarray) -> float:
        return float(half_sq_distance(as_t(c), as_t(U), t64, scale, sq))

    c = (cp.weights.detach().to(torch.float64) * scale).cpu().numpy()
    U = cp.components.detach().to(torch.float64).cpu().numpy()
    c, U, rel = damped_steps(c, U, l, loss_grad, loss_only, max_iter=max_iter,
                             stop_below=stop_below)
    c, U = as_t(c), as_t(U)
    dt, dev = cp.weights.dtype, cp.weights.device
    out = SymmetricCP((c / scale).to(dev, dt), U.to(dev, dt), l, normalize=True).canonical()
    return out, rel
