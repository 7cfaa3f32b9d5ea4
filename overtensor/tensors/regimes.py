"""Training regimes as transformations of the one model definition (docs/theory/tensors.md §4).

Every regime is a transformation of :mod:`overtensor.regimes.layer` (the same ones the networks of
:mod:`overtensor.networks.model` use) applied to :func:`overtensor.tensors.models.model_cp` — the model tensor
``T(θ) = Σ_i a_i(θ) v_i(θ)^{⊗l}`` as a pure function of ``θ`` — rather than re-implemented beside it:

=================== ==================================================== ===============================
regime              tensor trained                                       trainable parameters
=================== ==================================================== ===============================
``full``            ``T(θ)``                                             ``θ``
``lazy``            ``T(θ_0) + DT(θ_0)[Δ]`` (the NTK linearization)      ``Δ`` (same shapes as ``θ``)
``random-features`` ``Σ_i c_i v_i(θ_0)^{⊗l}`` (directions frozen)       ``c``, starting at ``a(θ_0)``
``alpha-scaled``    ``T_α(θ) = T(θ_0) + α (T(θ) − T(θ_0))``, loss ``/α²`` ``θ`` (Chizat & Bach, 2019)
=================== ==================================================== ===============================

The linearization is a forward-mode derivative of ``model_cp`` (:func:`torch.func.jvp`):
with ``(ȧ, V̇) = D(a, V)(θ_0)[Δ]``,

    T(θ_0) + DT(θ_0)[Δ] = Σ_i Sym(v_i^{⊗(l−1)} ⊗ u_i),    u_i = (a_i + ȧ_i) v_i + l a_i v̇_i,

a tangent tensor of :mod:`overtensor.tensors.lazy`, whose loss costs ``O(m² d)`` through the tangent
kernel. ``α → ∞`` in ``alpha-scaled`` tends to ``lazy`` (Chizat, Oyallon, Bach, "On lazy training
in differentiable programming", NeurIPS 2019). :func:`regime_fit` trains any regime by gradient
descent (``lazy``: conjugate gradients by default) on the closed-form gradients of
:mod:`overtensor.tensors.regime_gradients`, which the tests check against autograd through the definitions
here; the exact lazy optimum is :func:`overtensor.tensors.lazy.lazy_least_squares`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_choice
from overtensor.optim.curvature import autograd_hvp, top_eigenvalue
from overtensor.optim.registry import check_optimizer, make_optimizer
from overtensor.optim.steps import curvature_step, tensor_curvature_step
from overtensor.regimes import layer as regime_layer
from overtensor.regimes.diagnostics import relative_distance
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.gradient import FitState, evaluation_record, prepare_fit
from overtensor.tensors.lazy import (
    dense_evaluation_pays,
    dense_target,
    lazy_least_squares,
    tangent_half_sq_distance,
    tangent_relative_error,
    tangent_to_cp,
)
from overtensor.tensors.loss import half_sq_distance, relative_error
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.models import get_model, model_cp
from overtensor.tensors.regime_gradients import (
    ConjugateGradients,
    GradientDescent,
    LazyQuadratic,
    NonlinearRegime,
    RandomFeaturesQuadratic,
)
from overtensor.tensors.result import FitResult
from overtensor.tensors.targets import Target
from overtensor.training.loop import Divergence, Evaluation, Progress, gd_steps, train_loop
from overtensor.training.schedule import EpochSchedule

REGIMES = ("full", "lazy", "random-features", "alpha-scaled")
#: The built-in regimes ``overtensor.fit`` accepts: the transformations above and OPT
#: (:mod:`overtensor.tensors.orthogonal_fit`), which has its own loop.
FIT_REGIMES = (*REGIMES, "orthogonal")


def fit_regimes() -> tuple[str, ...]:
    """Every regime :func:`overtensor.fit` accepts: :data:`FIT_REGIMES` and any other regime of
    the shared registry (:func:`overtensor.regimes.layer.register_regime`), which trains the tensor
    model's parameters through its transformation with autograd, as it does a network's."""
    regime_layer.load_plugins()
    return (*FIT_REGIMES, *sorted(set(regime_layer.REGIME_TRANSFORMS) - set(FIT_REGIMES)))

Params = dict[str, torch.Tensor]


def _model_fn(model: str, signs: torch.Tensor | None):
    """The tensor model as a pure function of its parameter dict: ``θ ↦ (a(θ), V(θ))``."""

    def f(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        return model_cp(model, p, signs)

    return f


def _coefficient_view(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
    """``{"c", "V"} ↦ (c, V)``: the CP terms with their coefficients as parameters, on which
    ``random-features`` freezes ``V`` (whatever model produced it)."""
    return p["c"], p["V"]


def _concat_cp(f0, f, alpha: float):
    """``T_0 + α (T − T_0)`` represented as CP terms: ``((1−α) a_0 ‖ α a, V_0 ‖ V)`` (exact)."""
    (a0, V0), (a, V) = f0, f
    return torch.cat([(1 - alpha) * a0, alpha * a], -1), torch.cat([V0, V], -2)


def linearize(model: str, params0: Params, signs: torch.Tensor | None, order: int):
    """The lazy model as a function of the displacement: ``Δ ↦ (V_0, U(Δ))``.

    ``T(θ_0) + DT(θ_0)[Δ] = Σ_i Sym(v_i^{⊗(l−1)} ⊗ u_i)`` with ``u_i = (a_i + ȧ_i) v_i + l a_i v̇_i``
    and ``(ȧ, V̇)`` the forward-mode derivative of :func:`~overtensor.tensors.models.model_cp` at ``θ_0``,
    taken from :func:`overtensor.regimes.layer.lazy` (the one linearization of every model).
    ``U`` is linear (affine) in ``Δ`` and differentiable by autograd.
    """
    lin, _ = regime_layer.lazy(_model_fn(model, signs), params0)

    def tangent(delta: Params) -> tuple[torch.Tensor, torch.Tensor]:
        (a0, V0), (da, dV) = lin.tangent(delta)
        return V0, (a0 + da).unsqueeze(-1) * V0 + order * a0.unsqueeze(-1) * dV

    return tangent


def tangent_map(model: str, params: Params, signs: torch.Tensor | None, order: int):
    """``z ↦ (V, U)`` with ``X_V(U) = DT(θ)[z]`` (the Jacobian of the model tensor at ``θ``)."""
    lin, _ = regime_layer.lazy(_model_fn(model, signs), params)

    def jac(z: Params) -> tuple[torch.Tensor, torch.Tensor]:
        (a, V), (da, dV) = lin.tangent(z)
        return V, da.unsqueeze(-1) * V + order * a.unsqueeze(-1) * dV

    return jac


@dataclass
class Regime:
    """One regime of one model around ``θ_0``: what is trained and the tensor it represents.

    Build with :func:`make_regime`. Methods take the trainable parameters ``theta``. The
    transformation itself comes from :mod:`overtensor.regimes.layer`; ``lazy`` is trained in the
    displacement ``Δ = θ − θ_0`` and evaluated through the tangent kernel (:mod:`overtensor.tensors.lazy`).
    """

    name: str
    model: str
    order: int
    params0: Params
    signs: torch.Tensor | None
    alpha: float = 1.0

    def __post_init__(self) -> None:
        f = _model_fn(self.model, self.signs)
        with torch.no_grad():
            self.a0, self.V0 = f(self.params0)
        self._fn = None
        if self.name == "lazy":
            self._tangent = linearize(self.model, self.params0, self.signs, self.order)
            # The same affine map in closed form (checked against the torch.func one in the
            # tests), for evaluations: no functorch transform (whose first call in a process
            # costs seconds) and no graph.
            self._forward = get_model(self.model).tangent_map(self.params0, self.signs,
                                                              self.order)[0]
        elif self.name == "random-features":
            self._fn, self._theta0 = regime_layer.random_features(
                _coefficient_view, {"c": self.a0, "V": self.V0}, trained=("c",))
        elif self.name == "alpha-scaled":
            self._fn, self._theta0 = regime_layer.alpha_scaled(f, self.params0, alpha=self.alpha,
                                                               combine=_concat_cp)
        else:  # "full", or any regime registered in the shared layer (no options from fit)
            self._fn, self._theta0 = regime_layer.get_regime(self.name)(f, self.params0)
        self._rhs: torch.Tensor | None = None
        self._dense: tuple[Target, torch.Tensor | None] | None = None

    def init(self) -> Params:
        """Trainable parameters at the start (detached copies)."""
        if self.name == "lazy":
            return {k: torch.zeros_like(v) for k, v in self.params0.items()}
        return {k: v.clone() for k, v in self._theta0.items()}

    def cp(self, theta: Params) -> tuple[torch.Tensor, torch.Tensor]:
        """The regime's tensor as ``(a, V)`` with ``Σ_i a_i v_i^{⊗l}`` (lazy: ``2⌈l/2⌉ m`` exact terms)."""
        if self.name == "lazy":
            return tangent_to_cp(*self.tangent_rows(theta), self.order)
        return self._fn(theta)

    def tangent_rows(self, theta: Params) -> tuple[torch.Tensor, torch.Tensor]:
        """``lazy`` only: ``(V, U)`` with ``T_regime(θ) = X_V(U)`` (:mod:`overtensor.tensors.lazy`), from
        the closed-form map :meth:`overtensor.tensors.models.TensorModel.tangent_map`."""
        return self.V0, self.a0.unsqueeze(-1) * self.V0 + self._forward(theta)

    def loss(self, theta: Params, target: Target, scale, target_sq_norm) -> torch.Tensor:
        """``½‖T_regime(θ) − scale·T*‖²`` (divided by ``α²`` for ``alpha-scaled``)."""
        if self.name == "lazy":
            V, U = self._tangent(theta)
            if self._rhs is None:
                self._rhs = target.contract(V).detach()
            return tangent_half_sq_distance(V, U, target, scale, target_sq_norm, self._rhs)
        a, V = self.cp(theta)
        loss = half_sq_distance(a, V, target, scale, target_sq_norm)
        return loss * regime_layer.loss_scale(self._fn) if self.name == "alpha-scaled" else loss

    @torch.no_grad()
    def relative_error(self, theta: Params, target: Target, scale) -> float:
        """``‖T_regime(θ) − scale·T*‖ / ‖scale·T*‖`` in float64."""
        if self.name == "lazy":
            # Near the lazy threshold the Gram identity cannot resolve errors below ~1e-6; there
            # the dense residual is cheap and exact to ~1e-13 (lazy.dense_evaluation_pays).
            V, U = self.tangent_rows({k: v.detach() for k, v in theta.items()})
            if self._dense is None or self._dense[0] is not target:
                m, d = V.shape
                pays = dense_evaluation_pays(m, d, self.order)
                self._dense = (target, dense_target(target.float64()) if pays else None)
            return tangent_relative_error(V, U, target, scale, self._dense[1])
        a, V = self.cp(theta)
        return float(relative_error(a, V, target, scale))

    def moved(self, theta: Params) -> tuple[Params, Params]:
        """``(θ, θ_0)`` of what this regime moves: the model's parameters (``θ_0 + Δ`` for
        ``lazy``), or the coefficients for ``random-features``."""
        if self.name == "lazy":
            return {k: self.params0[k] + theta[k].detach() for k in theta}, self.params0
        if self.name == "random-features":
            return {"c": theta["c"].detach()}, {"c": self.a0}
        return {k: v.detach() for k, v in theta.items()}, self.params0


def closed_form_problem(reg: Regime, target: Target, scale, target_sq_norm):
    """The regime's loss and gradient in closed form (:mod:`overtensor.tensors.regime_gradients`): an
    object with ``loss_and_grad(theta, with_loss)`` (and ``hvp(z)`` for the quadratic ``lazy``
    and ``random-features`` losses), equal to :meth:`Regime.loss` and its autograd gradient."""
    with torch.no_grad():
        if reg.name == "lazy":
            return LazyQuadratic(reg.model, reg.params0, reg.signs, reg.order, reg.a0, reg.V0,
                                 target, scale, target_sq_norm)
        if reg.name == "random-features":
            return RandomFeaturesQuadratic(reg.V0, target, scale, target_sq_norm)
        if reg.name == "alpha-scaled":
            return NonlinearRegime(reg.model, reg.signs, target, scale, target_sq_norm,
                                   alpha=reg.alpha, a0=reg.a0, V0=reg.V0)
        return NonlinearRegime(reg.model, reg.signs, target, scale, target_sq_norm)


def make_regime(name: str, model: str, order: int, params0: Params,
                signs: torch.Tensor | None = None, alpha: float = 1.0) -> Regime:
    """A :class:`Regime` (see the module table). ``alpha`` is used by ``alpha-scaled`` only."""
    known = [r for r in fit_regimes() if r != "orthogonal"]
    if name not in known:
        raise ValueError(f"regime must be one of {known}, got {name!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    return Regime(name, model, order, params0, signs, float(alpha))


def regime_fit(
    target: Target,
    *,
    regime: str,
    method: str,
    model: str,
    width: int,
    init_scale: float,
    alpha: float,
    max_steps: int,
    tol: float,
    lr: float | None,
    optimizer: Any,
    signs: str,
    patience: int,
    eval_every: int,
    epoch_steps: int,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    callback: Callable | None = None,
    recorders: Sequence[Callable[[FitState], dict]] = (),
    progress: bool = False,
    lazy_optimum: bool = True,
    engine: str = "auto",
) -> FitResult:
    """Gradient descent in one regime from ``θ_0`` (rows of norm ``init_scale``, random directions).

    The target is normalized to unit norm. Plain gradient descent (``optimizer=None`` or ``"gd"``)
    runs on the closed-form gradients of :mod:`overtensor.tensors.regime_gradients` (one ``O(m² d)`` kernel
    product a step, about the cost of a full-regime step); other optimizers, and
    ``engine="autograd"``, differentiate :meth:`Regime.loss` with autograd (same values to
    rounding). ``lr=None`` takes ``1/L`` with ``L`` the top Hessian eigenvalue at ``θ_0`` (Lanczos
    on Hessian–vector products, :func:`overtensor.optim.curvature.top_eigenvalue`; the classical
    step for the quadratic ``lazy``/``random-features``
    losses; ``0.5/L``, capped at ``0.5/max(l, 4)``, for the
    non-linear regimes).

    ``lazy`` with ``optimizer=None`` and ``lr=None`` (the default) runs **conjugate gradients**
    on its quadratic loss instead, one kernel product a step: started at ``Δ = 0`` it converges
    to the same minimum-norm point as gradient descent (both stay in the Krylov space of the
    gradient), but in at most ``dim Δ`` steps in exact arithmetic instead of
    ``O(κ log(1/ε))`` — at the lazy threshold width ``κ`` is in the millions, and gradient descent
    with ``1/L`` stalls far from the optimum. ``optimizer="gd"`` or an explicit ``lr`` gives
    plain gradient descent.

    Stops at relative error ``tol``, after ``max_steps``, or when the error improved by less than
    1 % over ``patience`` epochs of ``epoch_steps``. For ``lazy`` the exact optimum of the same
    linearized model is also reported (``info["lazy_optimum_error"]``) unless
    ``lazy_optimum=False``. Arguments are validated by :func:`overtensor.fit`.
    """
    check_optimizer(optimizer)  # a misspelt name fails before the curvature estimate below
    check_choice("engine", engine, ("auto", "autograd"))
    t0 = time.perf_counter()
    target, sq, scale, _, params0, s = prepare_fit(
        target, model=model, width=width, init_scale=init_scale, signs=signs,
        generator=generator, dtype=dtype, device=device)
    l = target.order
    reg = make_regime(regime, model, l, params0, s, alpha)
    theta = reg.init()

    def loss_of(th: Params) -> torch.Tensor:
        return reg.loss(th, target, scale, sq)

    # Closed-form gradients exist for the built-in regimes; a registered one runs on autograd.
    closed = engine == "auto" and optimizer in (None, "gd") and regime in REGIMES
    conjugate = closed and regime == "lazy" and optimizer is None and lr is None
    problem = closed_form_problem(reg, target, scale, sq) if closed else None
    if lr is None:
        if closed and regime in ("lazy", "random-features"):
            L = top_eigenvalue(problem.hvp, theta, random_state=generator)
        else:
            L = top_eigenvalue(autograd_hvp(loss_of, theta), theta, random_state=generator)
        quadratic = regime in ("lazy", "random-features")
        lr = curvature_step(L, flat=1.0) if quadratic else tensor_curvature_step(L, l)
    if conjugate:
        stepper = ConjugateGradients(problem, theta)
    elif closed:
        stepper = GradientDescent(problem, theta, lr)
    else:
        for p in theta.values():
            p.requires_grad_(True)
        opt = make_optimizer(optimizer, theta.values(), lr)

    def step(n: int) -> torch.Tensor:
        return stepper.steps(n) if closed else gd_steps(lambda: loss_of(theta), opt, n)

    sched = EpochSchedule.single_phase(epoch_steps=epoch_steps, max_steps=max_steps, tol=tol,
                                       patience=patience, eval_every=eval_every)
    # Recorders see what the regime moves as params/params0 (θ_0 + Δ for lazy, the coefficients
    # for random-features) and the trained tensor through extra["regime_cp"]().
    extra = {"regime": regime, "alpha": alpha, "regime_cp": lambda: reg.cp(theta)}

    def evaluate(loss: torch.Tensor | None) -> Evaluation:
        start = loss is None
        if start:  # the starting point, checked by the divergence rule like every step's loss
            with torch.no_grad():
                loss = problem.loss_and_grad(theta)[0] if closed else loss_of(theta)
        rel = reg.relative_error(theta, target, scale)
        moved, moved0 = reg.moved(theta)
        state = FitState(target=target, scale=scale, model=model, params=moved, params0=moved0,
                         signs=s, step=sched.step, epoch=sched.epoch, phase=regime,
                         weight_decay=0.0, extra=extra)
        rec = evaluation_record(sched, state, float(loss), rel,
                                relative_distance(moved, moved0, ["W" if "W" in moved else "c"]),
                                recorders, phase=regime)
        return Evaluation(rec, state, value=rel, loss=loss if start else None,
                          note=f"rel.err {rel:.2e}")

    history = train_loop(sched, step, evaluate, divergence=Divergence(lr), callback=callback,
                         progress=Progress(progress, max_steps, f"{method}/{regime} m={width}"),
                         evaluate_start=True)
    step, stop_reason = sched.step, sched.stop_reason
    converged = stop_reason == "tol"

    with torch.no_grad():
        a, V = reg.cp(theta)
        cp = SymmetricCP(a.detach() / scale, V.detach(), l, normalize=True).canonical()
    model_rel = reg.relative_error(theta, target, scale)
    info: dict[str, Any] = {"regime": regime, "lr": None if conjugate else lr,
                            "init_scale": init_scale,
                            "solver": "conjugate-gradients" if conjugate else
                            "gradient-descent" if closed else "autograd"}
    if regime == "alpha-scaled":
        info["alpha"] = alpha
    if conjugate:  # steps after CG converged take no product: what the solve actually cost
        info["kernel_products"] = stepper.products
    if regime == "lazy" and lazy_optimum:
        info["lazy_optimum_error"] = lazy_least_squares(target.float64(),
                                                        reg.V0.detach().double()).relative_error
    moved, moved0 = reg.moved(theta)
    if regime == "random-features":  # keep the frozen directions with the trained coefficients
        moved, moved0 = {**params0, **moved}, {**params0, **moved0}
    return FitResult(
        cp=cp, relative_error=cp_relative_error(cp, target) if regime != "lazy" else model_rel,
        model_relative_error=model_rel, history=history, steps=step,
        seconds=time.perf_counter() - t0, converged=converged, stop_reason=stop_reason,
        method=method, width=width, target=target, params=moved, params0=moved0, signs=s,
        model=model, info=info, scale=float(scale),
    )




def fit_regime(
    tgt: Target, width: int | None, method: str, *, regime: str, alpha: float, model, init_scale,
    weight_decay, reinit_threshold, epoch_steps, max_steps: int, tol: float, lr, optimizer, signs,
    patience, eval_every, generator, dtype, device, callback, recorders, progress, orthogonal=None,
) -> FitResult:
    """Validate the options of a non-``full`` regime and run :func:`regime_fit` (called by
    :func:`overtensor.fit`). The method picks the model (and, for ``exact-rank``, the width)."""
    from overtensor._checks import check_float, check_int
    from overtensor.tensors.methods import METHOD_DEFAULTS, resolve_width
    from overtensor.tensors.models import MODELS

    check_choice("regime", regime, fit_regimes())
    if method not in METHOD_DEFAULTS:
        raise ValueError(f"regime={regime!r} needs a gradient method, got method={method!r}")
    alpha = check_float("alpha", alpha, minimum=0.0, strict=True)
    if weight_decay not in (None, 0, 0.0):
        raise ValueError(f"weight_decay is only used with regime='full', got weight_decay={weight_decay!r}")
    if reinit_threshold not in ("default", None):
        raise ValueError(
            f"reinit_threshold is only used with regime='full', got reinit_threshold={reinit_threshold!r}"
        )
    width = resolve_width(tgt, width, method)
    if regime == "orthogonal":  # R rotates m ≥ 2 rows (one row: a sign, nothing to train)
        width = check_int("width", width, 2)
    model = check_choice("model", model if model is not None else METHOD_DEFAULTS[method]["model"], MODELS)
    init_scale = check_float("init_scale", 1.0 if init_scale is None else init_scale, minimum=0.0,
                             strict=True)
    epoch_steps = check_int("epoch_steps", 200 if epoch_steps is None else epoch_steps, 1)
    if lr is not None:
        lr = check_float("lr", lr, minimum=0.0, strict=True)
    check_choice("signs", signs, ("auto", "positive", "balanced"))
    if regime == "orthogonal":  # OPT (docs/theory/networks.md §3) has its own loop
        from overtensor.tensors.orthogonal_fit import OrthogonalOptions, orthogonal_regime_fit

        return orthogonal_regime_fit(
            tgt, options=orthogonal or OrthogonalOptions(), method=method, model=model, width=width,
            init_scale=init_scale, max_steps=max_steps, tol=tol, lr=lr, signs=signs,
            patience=check_int("patience", patience, 1),
            eval_every=check_int("eval_every", eval_every, 1), epoch_steps=epoch_steps,
            generator=generator, dtype=dtype, device=device, callback=callback,
            recorders=recorders, progress=progress)
    return regime_fit(
        tgt, regime=regime, method=method, model=model, width=width, init_scale=init_scale,
        alpha=alpha, max_steps=max_steps, tol=tol, lr=lr, optimizer=optimizer, signs=signs,
        patience=check_int("patience", patience, 1), eval_every=check_int("eval_every", eval_every, 1),
        epoch_steps=epoch_steps, generator=generator, dtype=dtype, device=device, callback=callback,
        recorders=recorders, progress=progress,
    )
