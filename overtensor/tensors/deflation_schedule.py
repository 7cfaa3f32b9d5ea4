"""The ``deflation`` method: over-parameterized gradient flow that fits components one at a time.

Ge, Ren, Wang, Zhou, *Understanding Deflation Process in Over-parametrized Tensor Decomposition*
(NeurIPS 2021), reconstructed in docs/theory/tensors.md §5. Inputs ``m, δ_0, δ_1, γ, ε, μ``: width, init
scale,
re-initialization threshold, epoch growth, target accuracy and weight decay. It is the loop of
``beyond-lazy`` (:func:`overtensor.tensors.gradient.gradient_fit`, ``homogeneous`` model,
weight decay, re-initialization of rows with ``‖w_i‖ < δ_1`` at epoch boundaries) with

* geometric epoch lengths ``K_s = K_0 γ^s`` (``epoch_steps = K_0``, ``epoch_growth = γ``), so that
  a component of weight ``λ``, whose escape time grows like ``1/λ``, eventually gets an epoch long
  enough to be found between two re-initializations;
* a number of main-phase epochs ``S`` that follows from ``ε`` (:func:`deflation_epochs`): the
  first ``S`` epochs together last at least the escape time of a component of normalized weight
  ``ε``; lighter components cannot matter at accuracy ``ε``. Then a final phase with ``μ = 0``
  removes the weight-decay bias (as for ``beyond-lazy``).

Why a staircase. While the residual is still ``≈ T*`` (orthogonal target), the overlap
``v_j = w̄·u_j`` of a free direction obeys ``dv_j/dt ≈ l λ_j v_j^{l−1}`` and blows up at about
``1 / (l(l−2) λ_j v_j(0)^{l−2})``: components are fitted in decreasing order of ``λ_j`` at times
roughly proportional to ``1/λ_j``. :mod:`overtensor.tensors.component_mass` measures this.
"""

from __future__ import annotations

import math

from overtensor._checks import check_float, check_int


def escape_time(order: int, dim: int, weight: float, init_scale: float = 1e-3) -> float:
    """Gradient-flow time for a component of normalized weight ``λ`` to be found and fitted.

    The direction escapes in ``d^{(l−2)/2} / (l(l−2) λ)`` from a random start (``v_j(0)² ≈ 1/d``;
    ``log(d) / (2λ)`` for ``l = 2``), then ``‖w‖²`` grows from ``δ_0²`` to ``λ`` at rate ``≈ 4λ``,
    which takes ``log(λ/δ_0²) / (4λ)``. A heuristic scale (docs/theory/tensors.md §5), not a bound.
    """
    order = check_int("order", order, 2)
    dim = check_int("dim", dim, 1)
    weight = check_float("weight", weight, minimum=0.0, strict=True)
    init_scale = check_float("init_scale", init_scale, minimum=0.0, strict=True)
    if order == 2:
        escape = max(math.log(dim), 1.0) / (2 * weight)
    else:
        escape = dim ** ((order - 2) / 2) / (order * (order - 2) * weight)
    growth = max(math.log(weight / init_scale**2), 0.0) / (4 * weight)
    return escape + growth


def deflation_epochs(order: int, dim: int, tol: float, *, init_scale: float, epoch_steps: int,
                     epoch_growth: float, lr: float, main_budget: int | None = None,
                     max_epochs: int = 60) -> int:
    """Number ``S`` of main-phase epochs for target accuracy ``ε = tol``.

    The smallest ``S ≥ 1`` with ``Σ_{s<S} K_0 γ^s ≥ escape_time(l, d, ε, δ_0) / lr`` steps (gradient
    descent with step ``lr`` runs the flow for time ``lr`` per step), at most ``max_epochs``
    (``tol = 0``: ``max_epochs``). With ``main_budget`` (``fit`` passes ``max_steps − final_steps``)
    ``S`` is also at most the number of whole epochs within that many steps (but ``≥ 1``), so
    that the step budget leaves room for the final ``μ = 0`` phase.
    """
    epoch_steps = check_int("epoch_steps", epoch_steps, 1)
    epoch_growth = check_float("epoch_growth", epoch_growth, minimum=1.0)
    lr = check_float("lr", lr, minimum=0.0, strict=True)
    steps = escape_time(order, dim, min(tol, 1.0), init_scale) / lr if tol > 0 else math.inf
    budget = math.inf if main_budget is None else main_budget
    total, K = 0, epoch_steps
    for s in range(1, max_epochs + 1):
        total += K
        if total >= steps:
            return s
        if total + max(1, round(K * epoch_growth)) > budget:
            return s
        K = max(1, round(K * epoch_growth))  # as EpochSchedule grows it
    return max_epochs
