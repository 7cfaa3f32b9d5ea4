"""Closed-form losses and gradients of the tensor regimes, and their steppers (issue 16, item 3).

:mod:`overtensor.tensors.regimes` defines every regime once, as a transformation of
:mod:`overtensor.regimes.layer` (``torch.func``), and trains it with autograd; that is the
reference. This module gives the same losses and gradients in closed form, so that a regime step
costs about what a full-regime step costs (one ``O(m² d)`` kernel product, no autograd graph and
no optimizer object), as :mod:`overtensor.tensors.gradients` does for the full regime. The tests check
every gradient against the autograd one of :class:`~overtensor.tensors.regimes.Regime` in float64.

``lazy`` (the NTK linearization ``T_0 + DT(θ_0)[Δ]``). By :func:`overtensor.tensors.regimes.linearize`
the model is the tangent tensor ``X_V(U)`` with ``V`` the model rows at ``θ_0`` and
``U = U_0 + M Δ``, ``U_0 = diag(a_0) V`` and ``M`` a per-row linear map (``n_i = ‖w_i‖``,
``w̄_i = w_i/n_i``, ``s`` the fixed signs, ``l`` the order):

* ``plain``:        ``(MΔ)_i = l s_i Δw_i``;
* ``homogeneous``:  ``(MΔ)_i = s_i n_i (l Δw_i + (2 − l)(w̄_i·Δw_i) w̄_i)`` (symmetric);
* ``coefficients``: ``(MΔ)_i = Δc_i w̄_i + (l c_i/n_i)(Δw_i − (w̄_i·Δw_i) w̄_i)``.

With the tangent kernel ``K`` of :mod:`overtensor.tensors.lazy` and ``b_i = σT*(v_i,…,v_i,·)`` the loss is
``½⟨U, KU⟩ − ⟨U, b⟩ + ½σ²‖T*‖²`` and its gradient ``Mᵀ(KU − b)``: the kernel product
(``O(m² d)``, the powers of ``V Vᵀ`` computed once) and two row-wise maps. The loss is quadratic in
``Δ`` with Hessian ``H = Mᵀ K M`` (the neural tangent kernel in parameter space).

``random-features`` (directions ``V`` frozen, coefficients ``c`` trained): the loss
``½ cᵀ (V Vᵀ)^{∘l} c − σ cᵀ T*(v_i,…,v_i) + ½σ²‖T*‖²`` is quadratic in ``c``; the Gram matrix and
the target values are computed once, a step costs ``O(m²)``.

``alpha-scaled``: ``½‖T_0 + α(T(θ) − T_0) − σT*‖² / α² = ½‖T(θ) − R_α‖²`` with the *shifted
target* ``R_α = (1 − 1/α) T_0 + (σ/α) T*`` (:class:`ShiftedTarget`, a CP part and the user's
target), so the loss and gradient are those of the full model (:mod:`overtensor.tensors.gradients`) against
``R_α``: one more ``O(m² d)`` product per step for the ``T_0`` part.

Steppers advance the trained parameters in place: :class:`GradientDescent` (``θ ← θ − η∇L``) for
any regime, and :class:`ConjugateGradients` for the quadratic ones, which minimizes the same
quadratic over the same Krylov space that gradient descent explores; started at ``Δ = 0`` it
converges to the same point as gradient flow, the minimum-norm minimizer (Hestenes & Stiefel
1952; Nocedal & Wright, *Numerical Optimization*, §5.1), in at most ``rank H`` steps in exact
arithmetic instead of ``O(κ(H) log(1/ε))``.
"""

from __future__ import annotations

import torch

from overtensor.tensors.gradients import loss_and_grad
from overtensor.tensors.lazy import _gram_powers, tangent_kernel_matvec
from overtensor.tensors.models import get_model
from overtensor.tensors.targets import Target

Params = dict[str, torch.Tensor]


class LazyQuadratic:
    """The lazy loss ``½⟨U, KU⟩ − ⟨U, b⟩ + ½σ²‖T*‖²`` of ``Δ`` in closed form.

    Parameters
    ----------
    model, params0, signs, order
        The model and its parameters ``θ_0`` (``Δ`` has the same keys and shapes).
    a0, V0 : Tensor ``(m,)``, ``(m, d)``
        The model's coefficients and rows at ``θ_0``.
    target : Target
    scale, target_sq_norm
        ``σ`` and ``‖T*‖²``.
    """

    def __init__(self, model: str, params0: Params, signs: torch.Tensor | None, order: int,
                 a0: torch.Tensor, V0: torch.Tensor, target: Target, scale, target_sq_norm) -> None:
        self.order = order
        self.V = V0
        self.powers = _gram_powers(V0, order)  # V is frozen: G^{∘(l−1)}, G^{∘(l−2)} once
        self.forward, self.adjoint = get_model(model).tangent_map(params0, signs, order)
        self.U0 = a0.unsqueeze(-1) * V0
        self.b = scale * target.contract(V0)
        self.const = 0.5 * scale**2 * target_sq_norm

    def K(self, U: torch.Tensor) -> torch.Tensor:
        return tangent_kernel_matvec(self.V, U, self.order, self.powers)

    def loss_and_grad(self, delta: Params, with_loss: bool = True):
        """``(loss or None, ∇_Δ loss)``."""
        U = self.U0 + self.forward(delta)
        KU = self.K(U)
        loss = ((U * (0.5 * KU - self.b)).sum() + self.const) if with_loss else None
        return loss, self.adjoint(KU - self.b)

    def hvp(self, z: Params) -> Params:
        """``H z = Mᵀ K M z``."""
        return self.adjoint(self.K(self.forward(z)))


class RandomFeaturesQuadratic:
    """``½ cᵀ H c − cᵀ y + ½σ²‖T*‖²`` with ``H = (V Vᵀ)^{∘l}``, ``y_i = σT*(v_i,…,v_i)``."""

    def __init__(self, V0: torch.Tensor, target: Target, scale, target_sq_norm) -> None:
        self.H = (V0 @ V0.transpose(-1, -2)) ** target.order
        self.y = scale * target.values(V0)
        self.const = 0.5 * scale**2 * target_sq_norm

    def loss_and_grad(self, theta: Params, with_loss: bool = True):
        c = theta["c"]
        Hc = self.H @ c
        loss = ((c * (0.5 * Hc - self.y)).sum() + self.const) if with_loss else None
        return loss, {"c": Hc - self.y}

    def hvp(self, z: Params) -> Params:
        return {"c": self.H @ z["c"]}


class ShiftedTarget(Target):
    """``R = β·Σ_j a_j v_j^{⊗l} + γ·T*``: a CP part plus a scaled target (for ``alpha-scaled``).

    Implements what the closed-form gradient needs (``contract``, ``values``, ``sq_norm``) without
    forming any ``d^l`` array.
    """

    def __init__(self, a: torch.Tensor, V: torch.Tensor, beta: float, target: Target,
                 gamma) -> None:
        self.order, self.dim, self.truth = target.order, target.dim, None
        self.a, self.V, self.beta, self.target, self.gamma = a, V, beta, target, gamma

    @property
    def dtype(self):
        return self.target.dtype

    @property
    def device(self):
        return self.target.device

    def contract(self, X):
        P = (X @ self.V.transpose(-1, -2)) ** (self.order - 1)
        return self.beta * (P @ (self.a.unsqueeze(-1) * self.V)) + self.gamma * self.target.contract(X)

    def values(self, X):
        return torch.linalg.vecdot(self.contract(X), X)

    def sq_norm(self):
        cp_sq = self.a @ ((self.V @ self.V.T) ** self.order) @ self.a
        cross = self.a @ self.target.values(self.V)
        return (self.beta**2 * cp_sq + 2 * self.beta * self.gamma * cross
                + self.gamma**2 * self.target.sq_norm())


class NonlinearRegime:
    """Closed-form loss and gradient of ``full`` and ``alpha-scaled`` (the model against ``R``)."""

    def __init__(self, model: str, signs: torch.Tensor | None, target: Target, scale,
                 target_sq_norm, alpha: float | None = None, a0=None, V0=None) -> None:
        self.model, self.signs = model, signs
        if alpha is None:  # full: the target itself
            self.target, self.scale, self.sq = target, scale, target_sq_norm
        else:
            self.target = ShiftedTarget(a0, V0, 1 - 1 / alpha, target, scale / alpha)
            self.scale, self.sq = 1.0, self.target.sq_norm()

    def loss_and_grad(self, theta: Params, with_loss: bool = True):
        return loss_and_grad(self.model, theta, self.signs, self.target, self.scale, self.sq,
                             with_loss=with_loss)


def _dot(x: Params, y: Params) -> torch.Tensor:
    return sum((x[k] * y[k]).sum() for k in x)


class GradientDescent:
    """``θ ← θ − η ∇L(θ)`` in place with a closed-form ``loss_and_grad``."""

    def __init__(self, problem, theta: Params, lr: float) -> None:
        self.problem, self.theta, self.lr = problem, theta, lr

    @torch.no_grad()
    def steps(self, n: int) -> torch.Tensor:
        """``n`` steps; the loss before the last one (as :func:`overtensor.training.loop.gd_steps`)."""
        loss = None
        for i in range(n):
            loss, grads = self.problem.loss_and_grad(self.theta, with_loss=i == n - 1)
            for k, g in grads.items():
                self.theta[k].sub_(g, alpha=self.lr)
        return loss


class ConjugateGradients:
    """Conjugate gradients on a quadratic loss ``½θᵀHθ − cᵀθ + const``, one ``H`` product a step.

    The classical iteration (Hestenes & Stiefel 1952); it needs ``problem.hvp`` and
    ``problem.loss_and_grad``. No periodic restart: near the lazy threshold ``κ(H) ≈ 1e7`` and CG
    restarted every ``dim θ`` steps stalls like gradient descent (measured: relative error 1e-2
    after 20 000 steps at ``l = 3, d = 8, m = 15``, against 1e-11 after ~500 steps without
    restarts). Instead, once the recursive residual has fallen below ``eps²`` times the first
    gradient's squared norm, or the curvature along the search direction is not positive, the
    residual is recomputed from the true gradient and CG restarted there; if that gradient is
    already at the rounding level (or the restart stalls at once) the iterate stays where it is.
    """

    def __init__(self, problem, theta: Params) -> None:
        self.problem, self.theta = problem, theta
        self.rr0: float | None = None
        self.products = 0  # Hessian products taken (steps after convergence take none)
        self._fresh()

    @torch.no_grad()
    def _fresh(self) -> None:
        loss, g = self.problem.loss_and_grad(self.theta)
        self.loss = loss
        self.r = {k: -v for k, v in g.items()}
        self.p = {k: v.clone() for k, v in self.r.items()}
        self.rr = _dot(self.r, self.r)
        if self.rr0 is None:
            self.rr0 = float(self.rr)
        self.floor = torch.finfo(self.rr.dtype).eps ** 2 * self.rr0
        self.since = 0
        self.stuck = not float(self.rr) > self.floor

    def _stall(self) -> None:
        if self.since == 0:  # a fresh start stalled at once: the minimum is reached to rounding
            self.stuck = True
        else:
            self._fresh()

    @torch.no_grad()
    def steps(self, n: int) -> torch.Tensor:
        """``n`` steps; the loss before the last one."""
        loss = self.loss
        for _ in range(n):
            loss = self.loss
            if self.stuck:
                continue
            Hp = self.problem.hvp(self.p)
            self.products += 1
            pHp = _dot(self.p, Hp)
            if not float(pHp) > 0:
                # p lies in range(H) in exact arithmetic, so pᵀHp ≤ 0 only at rounding level.
                self._stall()
                continue
            step = self.rr / pHp
            # Loss along the step: L(θ + t p) = L(θ) − t rᵀp + ½ t² pᵀHp, with rᵀp = rᵀr.
            self.loss = self.loss - step * self.rr + 0.5 * step**2 * pHp
            for k in self.theta:
                self.theta[k].add_(self.p[k], alpha=float(step))
                self.r[k].sub_(Hp[k], alpha=float(step))
            rr_new = _dot(self.r, self.r)
            beta = rr_new / self.rr
            self.rr = rr_new
            self.p = {k: self.r[k] + beta * self.p[k] for k in self.p}
            self.since += 1
            if not float(rr_new) > self.floor:
                self._stall()
        return loss
