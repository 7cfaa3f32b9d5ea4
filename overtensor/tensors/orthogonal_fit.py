"""The ``orthogonal`` regime of the tensor models (docs/theory/networks.md §3): fit ``R^{⊗l}·T_0(c)``.

From the random initialization ``W_0`` of the method's model (coefficients ``a_0``, unit or
scaled rows ``V_0``, :func:`overtensor.tensors.models.model_cp`), OPT trains a rotation ``R ∈ O(d)`` of all
rows at once and, by default, the coefficients ``c`` (starting at ``a_0``):

    T(R, c) = Σ_i c_i (R v_i⁰)^{⊗l} = R^{⊗l} · T_0(c)

so it only rotates the initial decomposition: the span of ``{v_i⁰ ^{⊗l}}`` (random features) is
reachable, turned as a whole. Pairwise angles of the rows, and their hyperspherical energy
(:mod:`overtensor.regimes.energy`), stay those of ``W_0``. ``R`` is kept orthogonal by one of
:data:`overtensor.regimes.orthogonal.ORTHOGONAL_METHODS` (:mod:`overtensor.regimes.orthogonal`); every history
record carries ``orthogonality_error = ‖RᵀR − I‖_F`` and the energies.

:func:`overtensor.fit` with ``regime="orthogonal"`` runs :func:`orthogonal_regime_fit`;
``fit(..., orthogonal=OrthogonalOptions(...))`` chooses the way of keeping ``R`` orthogonal (default
the Cayley map) and what else is trained. There is no second door: this is the one entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import (
    check_choice,
    check_float,
    check_int,
)
from overtensor.optim.cayley import riemannian_sgd
from overtensor.optim.curvature import autograd_hvp, top_eigenvalue
from overtensor.optim.steps import tensor_curvature_step
from overtensor.regimes.diagnostics import relative_distance
from overtensor.regimes.energy import hyperspherical_energy
from overtensor.regimes.orthogonal import BLOCK_STEPS, ORTHOGONAL_METHODS, orthogonal, orthogonality_error
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.gradient import FitState, evaluation_record, prepare_fit
from overtensor.tensors.loss import half_sq_distance, relative_error
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.models import model_cp
from overtensor.tensors.result import FitResult
from overtensor.tensors.targets import Target
from overtensor.training.loop import (
    Divergence,
    Evaluation,
    Progress,
    optimizer_step,
    train_loop,
)
from overtensor.training.schedule import EpochSchedule

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class OrthogonalOptions:
    """How the ``orthogonal`` regime keeps and trains ``R``.

    Attributes
    ----------
    rotation : str
        One of :data:`~overtensor.regimes.orthogonal.ORTHOGONAL_METHODS`.
    train_coefficients : bool
        Train the coefficients ``c`` (output weights) too; ``False`` trains ``R`` only.
    block_size : int or None
        ``k`` of ``stochastic`` (default ``min(d, 32)``).
    block_steps : int
        ``K`` of ``stochastic``: steps per block before it is merged into ``W_0``.
    momentum : float
        Momentum of the optimizer (heavy ball; for ``riemannian`` in the Lie algebra).
    """

    rotation: str = "cayley"
    train_coefficients: bool = True
    block_size: int | None = None
    block_steps: int = BLOCK_STEPS
    momentum: float = 0.0

    def __post_init__(self) -> None:
        check_choice("rotation", self.rotation, ORTHOGONAL_METHODS)
        if self.block_size is not None:
            check_int("block_size", self.block_size, 1)
        check_int("block_steps", self.block_steps, 1)
        if not 0 <= check_float("momentum", self.momentum, minimum=0.0) < 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum!r}")


def _optimizer(fn, theta: Params, lr: float, opts: OrthogonalOptions) -> torch.optim.Optimizer:
    return riemannian_sgd(theta, lr, orthogonal=fn.manifold, momentum=opts.momentum)


def orthogonal_regime_fit(
    target: Target, *, options: OrthogonalOptions, method: str, model: str, width: int,
    init_scale: float, max_steps: int, tol: float, lr: float | None, signs: str, patience: int,
    eval_every: int, epoch_steps: int, generator: torch.Generator, dtype: torch.dtype,
    device: torch.device, callback: Callable | None = None,
    recorders: Sequence[Callable[[FitState], dict]] = (), progress: bool = False,
) -> FitResult:
    """Gradient descent on ``(R, c)`` from ``R = I``, ``c = a_0`` (arguments validated).

    Stopping rules as in :func:`overtensor.tensors.regimes.regime_fit`; ``lr=None`` takes ``0.5/L``
    (``L`` the top Hessian eigenvalue at the start), capped at ``0.5/max(l, 4)``. The optimizer is
    :class:`~overtensor.optim.cayley.CayleySGD` (plain SGD on every group but the ``riemannian`` one).
    """

    t0 = time.perf_counter()
    target, sq, scale, _, params0, s = prepare_fit(
        target, model=model, width=width, init_scale=init_scale, signs=signs,
        generator=generator, dtype=dtype, device=device)
    l = target.order
    with torch.no_grad():
        a0, V0 = model_cp(model, params0, s)
    base = {"W": V0.detach().clone(), "c": a0.detach().clone()}

    def tensor_model(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        return p["c"], p["W"]

    train = ("c",) if options.train_coefficients else ()
    fn, theta = orthogonal(tensor_model, base, key="W", method=options.rotation, train=train,
                           k=options.block_size, random_state=generator)

    def loss_of(th: Params) -> torch.Tensor:
        a, V = fn(th)
        return half_sq_distance(a, V, target, scale, sq)

    if lr is None:
        # The curvature along O(d): for `riemannian` (R itself is trained) measure it through the
        # Cayley map at R = I, since the Euclidean Hessian in R also sees the off-manifold
        # directions (a scaling of R scales the tensor by (1+t)^l) that the retraction never takes.
        probe_fn, probe = (fn, theta) if options.rotation != "riemannian" else orthogonal(
            tensor_model, base, key="W", method="cayley", train=train)

        def probe_loss(th: Params) -> torch.Tensor:
            a, V = probe_fn(th)
            return half_sq_distance(a, V, target, scale, sq)

        L = top_eigenvalue(autograd_hvp(probe_loss, probe), probe, random_state=generator)
        lr = tensor_curvature_step(L, l)
    for p in theta.values():
        p.requires_grad_(True)
    opt = _optimizer(fn, theta, lr, options)
    energy0 = {f"energy_s{v:g}": float(hyperspherical_energy(V0.double(), v)) for v in (1.0, 0.0)}

    sched = EpochSchedule.single_phase(epoch_steps=epoch_steps, max_steps=max_steps, tol=tol,
                                       patience=patience, eval_every=eval_every)
    extra = {"regime": "orthogonal", "rotation": options.rotation,
             "regime_cp": lambda: fn(theta)}

    def evaluate(loss: torch.Tensor | None) -> Evaluation:
        start = loss is None
        if start:  # the starting point, checked by the divergence rule like every step's loss
            loss = loss_of(theta).detach()
        with torch.no_grad():
            a, V = fn(theta)
            rel = float(relative_error(a, V, target, scale))
            moved = {"W": V.detach(), "c": a.detach()}
            R = fn.rotation(theta)
        state = FitState(target=target, scale=scale, model="coefficients", params=moved,
                         params0=base, signs=None, step=sched.step, epoch=sched.epoch,
                         phase="orthogonal", weight_decay=0.0, extra=extra)
        rec = evaluation_record(sched, state, float(loss), rel,
                                relative_distance({"V": V}, {"V": V0}), recorders,
                                phase="orthogonal", orthogonality_error=orthogonality_error(R))
        return Evaluation(rec, state, value=rel, loss=loss if start else None,
                          note=f"rel.err {rel:.2e}")

    stochastic = options.rotation == "stochastic"

    def step(n: int) -> torch.Tensor:  # n = 1: every step's loss is checked (per_step)
        nonlocal opt
        loss = loss_of(theta)
        optimizer_step(opt, loss)
        if stochastic and (sched.step + 1) % options.block_steps == 0:
            # merge the k × k block into W_0 and draw a new one, with fresh optimizer state
            theta.update(fn.resample(theta))
            theta["R"].requires_grad_(True)
            opt = _optimizer(fn, theta, lr, options)
        return loss.detach()

    # Checked every step: a rotation stepped from an exploded loss has no Cayley map (singular
    # solve), so the rule must see the loss before the next step.
    history = train_loop(
        sched, step, evaluate, divergence=Divergence(lr), callback=callback, evaluate_start=True,
        per_step=True,
        progress=Progress(progress, max_steps, f"{method}/orthogonal[{options.rotation}] m={width}"))

    with torch.no_grad():
        a, V = fn(theta)
        cp = SymmetricCP(a.detach() / scale, V.detach(), l, normalize=True).canonical()
        R = fn.rotation(theta).detach()
        model_rel = float(relative_error(a, V, target, scale))
        energy = {f"energy_s{v:g}": float(hyperspherical_energy(V.double(), v)) for v in (1.0, 0.0)}
    info: dict[str, Any] = {
        "regime": "orthogonal", "rotation": options.rotation, "lr": lr, "init_scale": init_scale,
        "orthogonality_error": orthogonality_error(R), **energy,
        **{f"{k}_change": abs(energy[k] - energy0[k]) / abs(energy0[k]) for k in energy},
    }
    return FitResult(
        cp=cp, relative_error=cp_relative_error(cp, target), model_relative_error=model_rel,
        history=history, steps=sched.step, seconds=time.perf_counter() - t0,
        converged=sched.stop_reason == "tol", stop_reason=sched.stop_reason, method=method,
        width=width, target=target, params={"W": V.detach(), "c": a.detach()}, params0=base,
        signs=None, model="coefficients", info=info,
    )
