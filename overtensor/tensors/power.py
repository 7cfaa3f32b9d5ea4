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

Shifted refinement (the default, ``PowerOptions(variant="shifted")``). The plain map need not
converge on a symmetric tensor: on ``Σ λ_i q_i q_iᵀ`` with ``λ = (−½, −½, ½, ½)`` the iterate
alternates between the ``±½`` eigenspaces for ever. The chosen start is therefore refined by the
*shifted symmetric higher-order power method* (SS-HOPM; Kolda & Mayo, "Shifted power method for
computing tensor eigenpairs", SIAM J. Matrix Anal. Appl. 32(4), 2011, Alg. 1)::

    v ← (σ T_res(v, …, v, ·) + α v) / ‖σ T_res(v, …, v, ·) + α v‖,

with ``σ = sign T_res(v, …, v)`` (maximise ``σ T_res(v, …, v)``; for odd ``l`` the start is flipped
instead, ``σ = 1``). For ``α`` above ``β = (l−1) max_{‖x‖=1} ρ(T_res x^{l−2})`` the function
``σ T x^l + α ‖x‖^l`` is convex, so ``σ T_res(v, …, v)`` increases monotonically and the iterates
converge to an eigenpair (Kolda & Mayo 2011, Thm 4.4). Shift choices (``PowerOptions.shift``):

* ``"adaptive"`` (default): at each iterate, the smallest ``α`` that makes that function locally
  convex, ``α_k = max(0, τ − λ_min(σ J_k))`` with ``J_k = (l−1) T_res v_k^{l−2}`` the Jacobian of
  ``v ↦ T_res(v, …, v, ·)`` (exact, from one batched ``target.contract`` of ``≤ l·d`` rows:
  :func:`contract_jacobian`; then one ``d × d`` eigenvalue problem per iteration) and ``τ = 10⁻⁶‖T‖``: the
  adaptive shift of Kolda & Mayo, "An adaptive shifted power method for computing generalized
  tensor eigenpairs", SIAM J. Matrix Anal. Appl. 35(4), 2014 (GEAP, with ``B = I``). Near a
  well-separated component ``α_k ≈ 0`` and the iteration is as fast as the plain one. Should
  ``σ T_res(v, …, v)`` ever decrease (beyond rounding), the row switches to the conservative shift;
* ``"conservative"``: ``α = (l−1) ‖T_res‖_F``, a bound on ``β`` (``ρ(T x^{l−2}) ≤ ‖T‖_F`` for
  unit ``x``), for which Thm 4.4 guarantees monotone convergence; slow when ``α ≫ |λ|``;
* a number: that fixed ``α``.

``variant="plain"`` keeps the plain map for the restarts and the refinement (Anandkumar et al.
as stated).

Signed restarts (issue 22, item 1). For even ``l`` the best one-term approximation is the
maximiser of ``|T_res(v, …, v)|`` (Banach 1938; Kolda & Mayo 2011 §3), which may be a *minimum*
of ``T_res(v, …, v)`` on the sphere: Kofidis & Regalia's ``3×3×3×3`` example has the local
maximum ``0.8893`` and the minimum ``−1.0954`` (Kolda & Mayo 2011, Table 4.1). The plain map
does not converge on it and the start it hands the refinement ascends to ``0.8893`` from every
start. The shifted variant therefore runs its restarts as SS-HOPM too, each random start once
with ``σ = +1`` (ascent to a local maximum) and once with ``σ = −1`` (descent to a local
minimum), all ``2L`` rows in one batch with the global shift ``α = (l−1)‖T_res‖_F`` (monotone for
both signs, Thm 4.4; one number per component, so no per-row eigenvalue problem), and keeps the
row with the largest ``|T_res(v, …, v)|``. The search is symmetric under ``T → −T`` (the ``σ = ±1``
rows swap roles), so the answer does not depend on the sign of the target. For odd ``l``,
``T(−v, …) = −T(v, …)``: a minimum is the mirror image of a maximum, and one sign suffices
(the plain restarts with the mirrored start, as before).

Scale: the target is worked on as ``T / 2^k`` (:meth:`~overtensor.tensors.targets.Target.normalized`), so
weights ``1e±250`` in float64 work; the returned weights are scaled back exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_choice, check_float, check_int
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.result import FitResult, rescale_result
from overtensor.tensors.scaling import ldexp
from overtensor.tensors.targets import Target
from overtensor.training.loop import Progress


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


def signed_restarts(target: Target, weights: torch.Tensor, components: torch.Tensor,
                    V: torch.Tensor, n_iter: int, conv_tol: float) -> tuple[torch.Tensor, int]:
    """SS-HOPM from every row of ``V`` (shape ``(L, d)``) with both signs ``σ = ±1`` at the global
    shift ``α = (l−1)‖T_res‖_F`` (module docstring, "Signed restarts"), batched.

    Returns the ``2L`` final unit rows (first the ``σ = +1`` runs, then the ``σ = −1`` runs) and
    the number of iterations run; stops early once every row moved by at most ``conv_tol``.
    """
    l = target.order
    alpha = (l - 1) * math.sqrt(residual_sq_norm(target, weights, components))
    X = torch.cat([V, V])
    sigma = torch.cat([torch.ones(V.shape[0]), -torch.ones(V.shape[0])]).to(V).unsqueeze(-1)
    for it in range(1, n_iter + 1):
        new = sigma * residual_contract(target, weights, components, X) + alpha * X
        norms = new.norm(dim=-1, keepdim=True)
        new = torch.where(norms > 0, new / norms.clamp_min(torch.finfo(X.dtype).tiny), X)
        change = (new - X).norm(dim=-1)
        X = new
        if bool((change <= conv_tol).all()):
            return X, it
    return X, n_iter


@dataclass(frozen=True)
class PowerOptions:
    """Options of ``method="power-method"`` (``fit(..., power=PowerOptions(...))``).

    Attributes
    ----------
    variant : {"shifted", "plain"}
        Refinement of the chosen start by SS-HOPM (default) or by the plain power map.
    shift : "adaptive", "conservative" or float
        The SS-HOPM shift (module docstring); ignored by ``plain``.
    n_restarts, n_iter : int
        ``L`` random starts per component and the iteration budget ``N`` of the restarts and of
        the refinement.
    """

    variant: str = "shifted"
    shift: str | float = "adaptive"
    n_restarts: int = 10
    n_iter: int = 100

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, ("shifted", "plain"))
        if isinstance(self.shift, str):
            check_choice("shift", self.shift, ("adaptive", "conservative"))
        else:
            check_float("shift", self.shift, minimum=0.0)
        check_int("n_restarts", self.n_restarts, 1)
        check_int("n_iter", self.n_iter, 1)


def residual_sq_norm(target: Target, weights: torch.Tensor, components: torch.Tensor) -> float:
    """``‖T − Σ_k λ_k u_k^{⊗l}‖_F²`` by the Gram identity (unit ``u_k``), clamped at 0."""
    sq = target.sq_norm()
    if weights.numel():
        l = target.order
        sq = (sq - 2 * (target.values(components) * weights).sum()
              + weights @ ((components @ components.T) ** l) @ weights)
    return max(float(sq), 0.0)


def contract_jacobian(target: Target, weights: torch.Tensor, components: torch.Tensor,
                      x: torch.Tensor) -> torch.Tensor:
    """``J = (l−1) T_res(x, …, x, ·, ·)``, the Jacobian of ``v ↦ T_res(v, …, v, ·)`` at the row
    ``x`` (shape ``(d,)``), as a symmetric ``d × d`` float64 matrix.

    Exact, from ``target.contract`` alone (any target, no autodiff): ``g(t) = T_res(x + t e_a, …)``
    is a polynomial of degree ``l − 1`` in ``t``, so its derivative at 0 is a fixed combination
    of the odd differences ``g(kh) − g(−kh)``, ``k = 1 … ⌈(l−1)/2⌉`` (the weights ``β`` solve
    ``Σ_k β_k k^j = δ_{j1}`` for odd ``j``, as in :func:`overtensor.tensors.lazy.tangent_to_cp`), with
    ``h = 1``. One batched contraction of ``2⌈(l−1)/2⌉·d`` rows.
    """
    d = x.shape[-1]
    K = max(1, target.order // 2)  # ⌈(l−1)/2⌉
    k = torch.arange(1, K + 1, dtype=torch.float64)
    odd = torch.arange(1, 2 * K, 2, dtype=torch.float64)
    rhs = torch.zeros(K, dtype=torch.float64)
    rhs[0] = 1.0
    beta = torch.linalg.solve(k.unsqueeze(0) ** odd.unsqueeze(1), rhs)
    E = torch.eye(d, dtype=x.dtype, device=x.device)
    steps = k.to(x.dtype).to(x.device).view(K, 1, 1) * E  # (K, d, d): k e_a
    rows = torch.cat([(x + steps).reshape(-1, d), (x - steps).reshape(-1, d)])
    G = residual_contract(target, weights, components, rows).to(torch.float64)
    diff = (G[: K * d] - G[K * d:]).reshape(K, d, d) / 2  # [k, a, :] = (g(k) − g(−k)) / 2
    J = torch.einsum("k,kab->ab", beta.to(diff.device), diff)  # row a: J e_a
    return (J + J.T) / 2


def shifted_iterations(target: Target, weights: torch.Tensor, components: torch.Tensor,
                       v: torch.Tensor, n_iter: int, conv_tol: float, shift: str | float,
                       tau: float) -> tuple[torch.Tensor, int, dict[str, Any]]:
    """SS-HOPM (Kolda & Mayo 2011; adaptive shift: Kolda & Mayo 2014) on the deflated residual
    from the single unit row ``v`` (shape ``(1, d)``); see the module docstring.

    Returns the final unit row, the number of iterations and ``{"sigma", "shift", "shift_rule"}``
    (the last shift used and the rule, ``"conservative"`` after a fallback).
    """
    l = target.order
    f = float(residual_values(target, weights, components, v))
    if l % 2 == 1 and f < 0:  # odd order: T(−v, …) = −T(v, …), maximise from the mirror image
        v, f = -v, -f
    sigma = 1.0 if f >= 0 or l % 2 == 1 else -1.0
    rule = shift if isinstance(shift, str) else "fixed"
    conservative = None

    def conservative_shift() -> float:
        return (l - 1) * math.sqrt(residual_sq_norm(target, weights, components))

    alpha = 0.0
    value = sigma * f
    for it in range(1, n_iter + 1):
        if rule == "adaptive":
            J = contract_jacobian(target, weights, components, v[0])
            lam_min = float(torch.linalg.eigvalsh(sigma * J)[0])
            alpha = max(0.0, tau - lam_min)
        elif rule == "conservative":
            if conservative is None:
                conservative = conservative_shift()
            alpha = conservative
        else:
            alpha = float(shift)
        new = sigma * residual_contract(target, weights, components, v) + alpha * v
        norm = new.norm()
        if not float(norm) > 0:
            return v, it, {"sigma": sigma, "shift": alpha, "shift_rule": rule}
        new = new / norm
        new_value = sigma * float(residual_values(target, weights, components, new))
        # Monotone ascent is what the shift guarantees; a decrease beyond rounding means the
        # local (adaptive) shift was too small here: fall back to the global bound.
        slack = 100 * torch.finfo(v.dtype).eps * max(abs(value), tau)
        if rule == "adaptive" and new_value < value - slack:
            rule = "conservative"
            continue
        change = float((new - v).norm())
        v, value = new, new_value
        if change <= conv_tol:
            return v, it, {"sigma": sigma, "shift": alpha, "shift_rule": rule}
    return v, n_iter, {"sigma": sigma, "shift": alpha, "shift_rule": rule}


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
    conv_tol: float | None = None,
    options: PowerOptions | None = None,
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
    conv_tol : float, optional
        Early-stopping threshold on the step ``‖v_new − ±v_old‖``; default ``100 · eps(dtype)``.
    options : PowerOptions, optional
        Variant (``shifted``: SS-HOPM refinement, the default; ``plain``), shift rule, ``L``
        random starts per component (iterated together as one ``L × d`` matrix) and ``N``, the
        maximal number of power iterations per restart and for the refinement of the chosen start.

    Returns
    -------
    FitResult
        ``cp`` sorted by ``|weight|``; ``steps`` counts power iterations (of the whole batch);
        ``history`` has one record per extracted component (``component``, ``weight``,
        ``relative_error``, ``iterations``, ``matched``/``cos`` when ``target.truth`` is known,
        and for the shifted variant ``sigma``, ``shift``, ``shift_rule`` of the refinement);
        ``info["found_order"]`` lists, in the order of extraction, the index of the true component
        with the largest ``|cos|`` (``None`` without a known truth), and ``info["found_cos"]`` that
        ``|cos|``.
    """
    rank = check_int("rank", rank, 1)
    options = PowerOptions() if options is None else options
    if not isinstance(options, PowerOptions):
        raise TypeError(f"options must be a PowerOptions, got {type(options).__name__}")
    n_restarts, n_iter = options.n_restarts, options.n_iter  # checked by PowerOptions
    t0 = time.perf_counter()
    given = target
    work, exponent = target.normalized()  # T/2^k: nothing overflows (scaled back at the end)
    target = work.working(dtype, device)
    tau = 1e-6 * math.sqrt(max(float(target.float64().sq_norm()), 0.0))  # cached norm
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
            if options.variant == "shifted" and target.order % 2 == 0:
                V, it1 = signed_restarts(target, lam, U, V, n_iter, conv_tol)
            else:
                V, it1 = power_iterations(target, lam, U, V, n_iter, conv_tol)
            vals = residual_values(target, lam, U, V)
            best = int(vals.abs().argmax())
            if options.variant == "plain":
                v, it2 = power_iterations(target, lam, U, V[best:best + 1], n_iter, conv_tol)
            else:
                v, it2, how = shifted_iterations(target, lam, U, V[best:best + 1], n_iter,
                                                 conv_tol, options.shift, tau)
            steps += it1 + it2
            weight = residual_values(target, lam, U, v)
            lam = torch.cat([lam, weight])
            U = torch.cat([U, v])
            rel = cp_relative_error(SymmetricCP(lam, U, target.order), target)
            rec: dict[str, Any] = {"step": steps, "component": k, "weight": float(weight),
                                   "relative_error": rel, "iterations": it1 + it2}
            if options.variant == "shifted":
                rec.update(how)  # sigma, shift, shift_rule of the refinement
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
    user_lam = ldexp(lam.to(torch.float64), exponent)
    for rec, w in zip(history, user_lam.tolist(), strict=True):
        rec["weight"] = w
    result = FitResult(
        cp=cp, relative_error=rel, model_relative_error=rel, history=history, steps=steps,
        seconds=time.perf_counter() - t0, converged=converged,
        stop_reason="tol" if converged else "rank", method="power-method", width=rank,
        target=target, params={"W": U.clone()}, params0={}, signs=None, model="cp",
        info={"found_order": found_order, "found_cos": found_cos,
              "found_weights": user_lam.tolist(), "n_restarts": n_restarts, "n_iter": n_iter,
              "variant": options.variant,
              "warnings": [] if converged else [
                  f"not converged: relative error {rel:.3e} > tol {tol:g} after {len(history)} "
                  f"component(s) (the number asked for); the power method with deflation is "
                  f"exact for orthogonally decomposable tensors only: try more components or a "
                  f"gradient method"]},
    )
    return rescale_result(result, given, exponent)
