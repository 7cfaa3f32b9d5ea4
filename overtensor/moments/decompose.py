"""The best rank-``k`` symmetric CP of a small, noisy tensor (a whitened moment).

An empirical moment is never exactly of rank ``k``: ``T = Σ_j λ_j u_j^{⊗l} + E``. Asking an
over-parameterized fit for an *exact* decomposition then fits ``E`` with extra terms. Here the
question is the method-of-moments one: the rank-``k`` CP closest to ``T``,

    min_{λ, u_j ∈ S^{d−1}}  ½ ‖Σ_{j≤k} λ_j u_j^{⊗l} − T‖²,

found in two stages:

1. **discovery** — candidate starts: the tensor power method with deflation (Anandkumar et al.
   2014, Alg. 1, via ``overtensor.fit(method="power-method")``) and the over-parameterized
   ``beyond-lazy`` fit, whose ``k`` heaviest extracted terms are the start;
2. **refinement** — L-BFGS (SciPy's ``L-BFGS-B``, gradients by autograd; a result that does not
   lower the loss is discarded, so the loss never increases) on ``(λ, u)`` from each start,
   ``u_j`` normalized inside the objective, then a Levenberg–Marquardt polish (:func:`polish`)
   to a gradient at rounding level.

With ``discovery="auto"`` (the default) the power-method start is refined first, and the
over-parameterized start is added only when that leaves a relative residual above
``escalate_above`` (default 0.05): whitened moments of mixtures are close to orthogonally
decomposable, where the power method is the right start and costs milliseconds, while the
over-parameterized fit (about a second at ``k = 4``) is kept for the tensors it is needed on.
The candidate with the smallest residual wins. Because the power method's own output is among
the starts and refinement never increases the loss, the result is never farther from ``T`` than
the power method's. Every evaluation uses the Gram identity (no array beyond the ``k^l`` input).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor._checks import check_choice, check_float, check_int, make_generator
from overtensor.tensors.config import GradientSchedule
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.targets import DenseTarget

DISCOVERY = ("power-method", "beyond-lazy")
ESCALATE_ABOVE = 0.05


@dataclass
class Decomposition:
    """What :func:`best_rank_cp` returns.

    Attributes
    ----------
    cp : SymmetricCP
        ``k`` terms, canonical signs (odd order: positive weights), sorted by ``|λ|``.
    relative_error : float
        ``‖cp − T‖ / ‖T‖`` in float64.
    candidates : dict[str, float]
        The refined relative error of every discovery start (for diagnosis).
    starts, refined : dict[str, SymmetricCP]
        Every discovery start before and after refinement (a model-specific criterion, such as a
        mixture's likelihood, may prefer another one than the closest in Frobenius norm).
    """

    cp: SymmetricCP
    relative_error: float
    candidates: dict[str, float] = field(default_factory=dict)
    starts: dict[str, SymmetricCP] = field(default_factory=dict)
    refined: dict[str, SymmetricCP] = field(default_factory=dict)


def _values(T: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """``T(u_j, …, u_j)`` for the rows of ``U``."""
    letters = string.ascii_lowercase[: T.ndim]
    spec = ",".join(f"r{c}" for c in letters)
    return torch.einsum(f"{letters},{spec}->r", T, *([U] * T.ndim))


def _loss(T: torch.Tensor, sq: torch.Tensor, lam: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    U = Y / Y.norm(dim=1, keepdim=True)
    G = (U @ U.T) ** T.ndim
    return 0.5 * lam @ G @ lam - lam @ _values(T, U) + 0.5 * sq


def refine(T: torch.Tensor, cp: SymmetricCP, *, max_iter: int = 200) -> SymmetricCP:
    """L-BFGS on ``½‖Σ λ_j u_j^{⊗l} − T‖²`` from ``cp`` (float64); never increases the loss.

    SciPy's ``L-BFGS-B`` drives it, with gradients from autograd (``torch.optim.LBFGS`` would
    import ``torch._dynamo``, seconds of start-up for a millisecond problem).
    """
    import numpy as np
    from scipy.optimize import minimize

    T = T.to(torch.float64)
    sq = (T * T).sum()
    r, d = cp.components.shape

    def fun(x):
        z = torch.from_numpy(x).requires_grad_(True)
        loss = _loss(T, sq, z[:r], z[r:].view(r, d))
        loss.backward()
        return loss.item(), z.grad.numpy().copy()

    x0 = np.concatenate([cp.weights.detach().to(torch.float64).cpu().numpy(),
                         cp.components.detach().to(torch.float64).cpu().numpy().ravel()])
    res = minimize(fun, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": 1e-16, "gtol": 1e-14})
    if not res.fun <= fun(x0)[0]:  # also catches NaN
        return polish(T, cp)
    x = torch.from_numpy(res.x)
    lam, Y = x[:r], x[r:].view(r, d)
    return polish(T, SymmetricCP(lam, Y / Y.norm(dim=1, keepdim=True), T.ndim).canonical())


def polish(T: torch.Tensor, cp: SymmetricCP, *, max_iter: int = 20) -> SymmetricCP:
    """Levenberg–Marquardt steps on ``½‖Σ λ_j u_j^{⊗l} − T‖²`` from ``cp``
    (:func:`overtensor.tensors.gauss_newton.levenberg_marquardt`, never a worse CP than it was given).

    L-BFGS stops at a gradient of ~1e-7 on whitened moments: two methods that reach the same
    local optimum then differ in the 6th digit of their means. Gauss–Newton steps converge fast
    near a small-residual optimum (quadratically as the residual goes to 0) and bring the
    gradient to ~1e-10 or below in a few steps. Skipped above ``MAX_UNKNOWNS`` unknowns.
    """
    from overtensor.tensors.gauss_newton import MAX_UNKNOWNS, levenberg_marquardt

    if cp.rank * (cp.dim + 1) > MAX_UNKNOWNS:
        return cp
    return levenberg_marquardt(cp, DenseTarget(T.to(torch.float64)), max_iter=max_iter)[0]


def _relative_error(T: torch.Tensor, cp: SymmetricCP) -> float:
    sq = (T * T).sum()
    loss = _loss(T, sq, cp.weights.to(torch.float64), cp.components.to(torch.float64))
    return float((2 * loss).clamp_min(0).sqrt() / sq.sqrt())


def best_rank_cp(
    T: Any,
    rank: int,
    *,
    discovery: str | tuple[str, ...] = "auto",
    random_state: Any = None,
    max_iter: int = 200,
    escalate_above: float = ESCALATE_ABOVE,
) -> Decomposition:
    """The best symmetric CP with ``rank`` terms of a small dense symmetric tensor.

    Parameters
    ----------
    T : array-like ``(k,)*l``
        Dense symmetric tensor (a whitened moment), any float dtype; computed in float64.
    rank : int
        Number of terms.
    discovery : "auto" or tuple of {"power-method", "beyond-lazy"}
        Starts to refine (see the module docstring).
    escalate_above : float
        With ``"auto"``: add the ``beyond-lazy`` start when the refined power-method start leaves
        a relative error above this.
    random_state : int, torch.Generator or None
    max_iter : int
        L-BFGS iterations per start.

    Returns
    -------
    Decomposition

    Raises
    ------
    ValueError
        On an empty or unknown ``discovery``, a bad ``rank`` or a non-symmetric ``T``.
    """
    from overtensor.tensors.fitting import fit

    rank = check_int("rank", rank, 1)
    escalate_above = check_float("escalate_above", escalate_above, minimum=0.0)
    auto = discovery == "auto"
    if auto:
        discovery = ("power-method",)
    elif isinstance(discovery, str) or not discovery:
        raise ValueError(f"discovery must be 'auto' or a non-empty tuple of {DISCOVERY}, "
                         f"got {discovery!r}")
    for name in discovery:
        check_choice("discovery", name, DISCOVERY)
    target = DenseTarget(torch.as_tensor(T).to(torch.float64), symmetry_tol=1e-6)
    T = target.array
    gen = make_generator(random_state)
    starts: dict[str, SymmetricCP] = {}
    if "power-method" in discovery:
        starts["power-method"] = fit(target, rank, method="power-method", random_state=gen).cp
    refined = {name: refine(T, cp, max_iter=max_iter) for name, cp in starts.items()}
    if auto and _relative_error(T, refined["power-method"]) > escalate_above:
        discovery = (*discovery, "beyond-lazy")
    if "beyond-lazy" in discovery:
        cp = fit(target, 2 * rank + 2, random_state=gen, tol=1e-6,
                 schedule=GradientSchedule(max_steps=4000, final_steps=1000)).cp.sorted()
        if cp.rank < rank:  # too few terms survived extraction: complete with the power method
            extra = starts.get("power-method") or fit(target, rank, method="power-method",
                                                      random_state=gen).cp
            cp = SymmetricCP(torch.cat([cp.weights, extra.weights[: rank - cp.rank]]),
                             torch.cat([cp.components, extra.components[: rank - cp.rank]]),
                             cp.order)
        starts["beyond-lazy"] = SymmetricCP(cp.weights[:rank], cp.components[:rank], cp.order)
        refined["beyond-lazy"] = refine(T, starts["beyond-lazy"], max_iter=max_iter)
    errors = {name: _relative_error(T, cp) for name, cp in refined.items()}
    best = min(errors, key=errors.get)
    return Decomposition(refined[best], errors[best], errors, starts, refined)
