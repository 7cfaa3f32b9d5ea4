"""Default step sizes: the rules that pick a step when the user gives none.

Every family's default is one of these, applied to a curvature measured by
:mod:`overtensor.optim.curvature` (the one top-eigenvalue routine, and the per-block steps
:func:`~overtensor.optim.curvature.block_steps` of the networks):

* :func:`curvature_step` — ``factor / L`` for the top curvature ``L``, at most ``cap``; ``flat``
  where no positive curvature was measured. Gradient descent on a quadratic is stable for
  ``η L < 2``; ``factor = 1`` is the classical step (lazy and random-features tensor regimes, a
  regression's ``1/λ_max(X D Xᵀ)``), ``factor = ½`` the safe one for losses whose curvature grows
  as the parameters move (:func:`tensor_curvature_step`).
* :func:`tensor_step` — the tensor fits' fixed step ``½ / max(l, 4)`` (docs/theory/tensors.md §5;
  the normalized target has unit norm, so the step does not depend on the target's scale).
* :func:`minibatch_step` — the mini-batch step of Ma, Bassily & Belkin (ICML 2018, Thm 2).
"""

from __future__ import annotations


def curvature_step(top: float, *, factor: float = 1.0, cap: float | None = None,
                   flat: float) -> float:
    """``min(factor / top, cap)``, or ``flat`` when ``top`` is not positive (nor a number).

    Parameters
    ----------
    top : float
        The top eigenvalue of the loss's Hessian (or of the preconditioned curvature).
    factor : float
        ``η · top``: 1 the classical step on a quadratic, ½ a safe one on a non-linear loss.
    cap : float, optional
        The largest step taken whatever the curvature.
    flat : float
        The step when no positive curvature was measured.
    """
    if not top > 0:
        return flat
    step = factor / top
    return step if cap is None else min(step, cap)


def tensor_step(order: int) -> float:
    """The tensor fits' fixed step ``½ / max(l, 4)`` on the unit-norm target of order ``l``."""
    return 0.5 / max(order, 4)


def tensor_curvature_step(top: float, order: int) -> float:
    """``½ / L`` capped at :func:`tensor_step`: the default of the non-linear tensor regimes
    (``full``, ``alpha-scaled`` and ``orthogonal`` from their start), whose curvature grows as the
    rows move away from a small start."""
    cap = tensor_step(order)
    return curvature_step(top, factor=0.5, cap=cap, flat=cap)


def minibatch_step(full: float, n: int, batch: int, beta: float, top: float) -> float:
    """``min(full, b / (n β + (b − 1) λ_max))``: the step of mini-batches of ``b`` of ``n`` rows
    for a gradient rescaled by ``n/b`` (Ma, Bassily & Belkin, ICML 2018, "The power of
    interpolation", Thm 2), with ``β`` the largest per-sample curvature and ``λ_max`` the full
    one; ``full`` (the full-batch step) when the denominator is not positive.

    Why: a mini-batch's curvature ``(n/b) X_bᵀ X_b`` can reach ``n β`` (one row drawn ``b``
    times), far above ``λ_max`` when ``b ≪ n``, and the full-batch ``1/λ_max`` then diverges.
    """
    denom = n * beta + (batch - 1) * top
    return min(full, batch / denom) if denom > 0 else full
