"""The classical tensor power method with deflation (the reference process for ``deflation``).

Anandkumar, Ge, Hsu, Kakade, Telgarsky, *Tensor decompositions for learning latent variable
models*, JMLR 15 (2014), Algorithm 1, for a symmetric order-``l`` tensor ``T``:

for each of ``r`` components

1. draw ``L`` random unit starts ``v`` and run ``N`` power iterations on the deflated residual
   ``T_res = T − Σ_{k found} λ_k u_k^{⊗l}``::

       v ← T_res(v, …, v, ·) / ‖T_res(v, …, v, ·)‖;

2. keep the start with the largest ``|T_res(v, …, v)|``, run up to ``N`` more iterations on it;
3. ``λ = T_res(v, …, v)``, ``u = v``; deflate ``T_res ← T_res − λ u^{⊗l}``.

The residual is never formed: ``T_res(v, …, v, ·) = T(v, …, v, ·) − Σ_k λ_k (v·u_k)^{l−1} u_k``,
so one iteration costs one ``target.contract`` of the ``L × d`` matrix of starts plus ``O(L r d)``.

Scope. For an orthogonally decomposable tensor (``u_j`` orthonormal) the power map acts on the
coordinates ``c_j = v·u_j`` as ``|c_j| ← |λ_j| |c_j|^{l−1} / Z`` whatever the signs of the weights,
so it converges (up to a sign flip per step, for even ``l`` and ``λ_j < 0``) to the ``u_j``
maximising ``|λ_j| |c_j(0)|^{l−2}``, and deflation removes it exactly. With ``L`` restarts the
largest ``|λ_j|`` is found first with high probability: components come out in decreasing order of
weight. Beyond that scope it is a heuristic:

* non-orthogonal components: deflation subtracts a biased estimate, errors accumulate;
* even order with weights of both signs and non-orthogonal components: the power map is no longer
  the ascent of ``|T(v, …, v)|`` and may oscillate (convergence is tested on ``|cos|``);
* the maximiser of ``|T_res(v, …, v)|`` on the sphere need not be a component at all (e.g. equal
  weights and strongly correlated components).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from overtensor._checks import check_int
from overtensor.cp import SymmetricCP
from overtensor.metrics import cp_relative_error
from overtensor.result import FitResult
from overtensor.targets import Target
from overtensor.training import Progress


def residual_contract(target: Target, weights: torch.Tensor, components: torch.Tensor,
                      V: torch.Tensor) -> torch.Tensor:
    """``T_res(v_i, …, v_i, ·) = T(v_i, …, v_i, ·) − Σ_k λ_k (v_i·u_k)^{l−1} u_k`` for the rows of ``V``."""
    out = target.contract(V)
    if weights.numel():
        P = (V @ components.T) ** (target.order - 1)
        out = out - (P * weights) @ components
    return out


def residual_values(target: Target, weights: torch.Tensor, components: torch.Tensor,
                    V: torch.Tensor) -> torch.Tensor:
    """``T_res(v_i, …, v_i) = T(v_i, …, v_i) − Σ_k λ_k (v_i·u_k)^l`` for the rows of ``V``."""
    out = target.values(V)
    if weights.numel():
        out = out - ((V @ components.T) ** target.order) @ weights
    return out


def power_iterations(target: Target, weights: torch.Tensor, components: torch.Tensor,
                     V: torch.Tensor, n_iter: int, conv_tol: float) -> tuple[torch.Tensor, int]:
    """Run up to ``n_iter`` batched power iterations on the deflated residual.

    Stops early once every row has converged, ``‖v_new − ±v_old‖ ≤ conv_tol`` (up to sign because
    for even order and a negative weight the iterate flips sign at every step).
    Returns the final unit rows and the number of iterations run.
    """
    for it in range(1, n_iter + 1):
        new = residual_contract(target, weights, components, V)
        norms = new.norm(dim=-1, keepdim=True)
        # A start exactly orthogonal to what is left keeps its direction instead of becoming NaN.
        new = torch.where(norms > 0, new / norms.clamp_min(torch.finfo(V.dtype).tiny), V)
        sign = torch.where((new * V).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(V.dtype)
        change = (new - sign * V).norm(dim=-1)
        V = new
        if bool((change <= conv_tol).all()):
            return V, it
    return V, n_iter


@torch.no_grad()
def power_method(
    target: Target,
    rank: int,
    *,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    tol: float = 0.0,
    progress: bool = False,
    n_restarts: int = 10,
    n_iter: int = 100,
    conv_tol: float | None = None,
) -> FitResult:
    """Decompose ``target`` by the tensor power method with deflation (Anandkumar et al. 2014).

    Parameters
    ----------
    target : Target
        The symmetric tensor, accessed only through ``contract``/``values``/``sq_norm``.
    rank : int
        Number of components to extract (fewer if the residual reaches ``tol`` first).
    generator : torch.Generator
        Source of the random restarts (drawn on the CPU in float64, so a seed gives the same
        starts on every device and dtype).
    dtype, device
        Where the iterations run.
    tol : float
        Stop once the relative error ``‖Σ_k λ_k u_k^{⊗l} − T‖ / ‖T‖`` (float64) is ``≤ tol``.
    progress : bool
        Show a progress bar over components.
    n_restarts : int
        ``L``, random starts per component, iterated together as one ``L × d`` matrix.
    n_iter : int
        ``N``, the maximal number of power iterations per restart and for the refinement of the
        chosen start.
    conv_tol : float, optional
        Early-stopping threshold on the step ``‖v_new − ±v_old‖``; default ``100 · eps(dtype)``.

    Returns
    -------
    FitResult
        ``cp`` sorted by ``|weight|``; ``steps`` counts power iterations (of the whole batch);
        ``history`` has one record per extracted component (``component``, ``weight``,
        ``relative_error``, ``iterations``, ``matched``/``cos`` when ``target.truth`` is known);
        ``info["found_order"]`` lists, in the order of extraction, the index of the true component
        with the largest ``|cos|`` (``None`` without a known truth), and ``info["found_cos"]`` that
        ``|cos|``.
    """
    rank = check_int("rank", rank, 1)
    n_restarts = check_int("n_restarts", n_restarts, 1)
    n_iter = check_int("n_iter", n_iter, 1)
    t0 = time.perf_counter()
    target = target.to(dtype=dtype, device=device)
    if conv_tol is None:
        conv_tol = 100 * torch.finfo(dtype).eps
    d = target.dim
    truth = None
    if target.truth is not None:
        U_true = target.truth.components.to(device=device, dtype=torch.float64)
        truth = U_true / U_true.norm(dim=-1, keepdim=True)

    lam = torch.zeros(0, dtype=dtype, device=device)
    U = torch.zeros(0, d, dtype=dtype, device=device)
    history: list[dict[str, Any]] = []
    found_order: list[int | None] = []
    found_cos: list[float | None] = []
    steps = 0
    rel = math.inf
    bar = Progress(progress, rank, f"power-method r={rank}")
    try:
        for k in range(rank):
            G = torch.randn(n_restarts, d, generator=generator, dtype=torch.float64)
            V = (G / G.norm(dim=-1, keepdim=True)).to(dtype=dtype, device=device)
            V, it1 = power_iterations(target, lam, U, V, n_iter, conv_tol)
            vals = residual_values(target, lam, U, V)
            best = int(vals.abs().argmax())
            v, it2 = power_iterations(target, lam, U, V[best:best + 1], n_iter, conv_tol)
            steps += it1 + it2
            weight = residual_values(target, lam, U, v)
            lam = torch.cat([lam, weight])
            U = torch.cat([U, v])
            rel = cp_relative_error(SymmetricCP(lam, U, target.order), target)
            rec: dict[str, Any] = {"step": steps, "component": k, "weight": float(weight),
                                   "relative_error": rel, "iterations": it1 + it2}
            if truth is not None:
                cos = (truth @ v[0].to(torch.float64)).abs()
                j = int(cos.argmax())
                rec.update(matched=j, cos=float(cos[j]))
                found_order.append(j)
                found_cos.append(float(cos[j]))
            else:
                found_order.append(None)
                found_cos.append(None)
            history.append(rec)
            bar.update(k + 1, f"rel.err {rel:.2e}")
            if rel <= tol:
                break
    finally:
        bar.close()

    cp = SymmetricCP(lam, U, target.order).canonical()
    converged = rel <= tol
    return FitResult(
        cp=cp, relative_error=rel, model_relative_error=rel, history=history, steps=steps,
        seconds=time.perf_counter() - t0, converged=converged,
        stop_reason="tol" if converged else "rank", method="power-method", width=rank,
        target=target, params={"W": U.clone()}, params0={}, signs=None, model="cp",
        info={"found_order": found_order, "found_cos": found_cos,
              "found_weights": lam.tolist(), "n_restarts": n_restarts, "n_iter": n_iter},
    )
