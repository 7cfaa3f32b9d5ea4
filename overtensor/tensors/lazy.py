"""Lazy (NTK) training in closed form: the tangent space at ``W_0`` and its least-squares problems.

The linearization of any model of :mod:`overtensor.tensors.models` at ``W_0`` is a *tangent tensor*

    X_V(U) = Σ_i Sym(v_i^{⊗(l−1)} ⊗ u_i),        V = rows of the model at W_0,  U ∈ R^{m×d}

(:func:`overtensor.tensors.regimes.linearize` gives ``U`` for a parameter displacement). Its span
``𝒱 = {X_V(U)}`` has dimension at most ``m·d``, while symmetric tensors have dimension
``C(d+l−1, l)``; the **lazy error** ``min_U ‖X_V(U) − T*‖ / ‖T*‖`` can therefore vanish only once
``m·d ≥ C(d+l−1, l)`` — the ``Ω(d^{l−1})`` lower bound of Wang, Wu, Lee, Ma, Ge (NeurIPS 2020).
For generic ``V`` and order ``l ≥ 3`` the span has exactly that dimension, ``min(m·d, C(d+l−1, l))``
(Terracini's lemma with the Alexander–Hirschowitz theorem; the only exceptions are
``(l, d, m) ∈ {(3, 5, 7), (4, 3, 5), (4, 4, 9), (4, 5, 14)}``), so the lazy error is exactly zero
from ``m = ⌈C(d+l−1, l) / d⌉`` (docs/theory/tensors.md §4).

Everything is computed through inner products, never a ``d^l`` array. With ``G = V Vᵀ``

    ⟨Sym(a^{⊗(l−1)}⊗u), Sym(b^{⊗(l−1)}⊗v)⟩ = (1/l) [ (a·b)^{l−1} (u·v) + (l−1) (a·b)^{l−2} (a·v)(b·u) ]
    (K U)_i = (1/l) Σ_k [ G_ik^{l−1} u_k + (l−1) G_ik^{l−2} (u_k·v_i) v_k ]          (O(m² d))
    ⟨X_V(U), T*⟩ = Σ_i u_i · T*(v_i, …, v_i, ·) = Σ_i u_i · b_i

so the least-squares problem ``min_U ‖X_V(U) − T*‖`` has the normal equations ``K U = b``, solved
either with the explicit ``md × md`` kernel (small ``m·d``) or matrix-free by preconditioned
conjugate gradients (large ``m·d``). Random features (directions frozen, coefficients trained)
give the smaller problem with Gram ``(V̄ V̄ᵀ)^{∘l}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from overtensor._checks import check_choice, check_float, check_int, check_rows
from overtensor.tensors.memory import check_rows_memory
from overtensor.tensors.targets import Target, as_target

#: Above this many unknowns ``m·d``, ``solver="auto"`` switches from the explicit kernel to CG.
EXPLICIT_MAX_UNKNOWNS = 1500


def symmetric_dimension(dim: int, order: int) -> int:
    """``C(d+l−1, l)``: the dimension of the space of symmetric order-``l`` tensors on ``R^d``."""
    return math.comb(dim + order - 1, order)


def lazy_threshold_width(dim: int, order: int) -> int:
    """``⌈C(d+l−1, l) / d⌉``: the smallest width whose tangent space can hold every symmetric tensor."""
    return -(-symmetric_dimension(dim, order) // dim)


def unit_rows(W: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm (the tangent span does not depend on the row norms)."""
    return W / W.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny)


def _gram_powers(V: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    G = V @ V.transpose(-1, -2)
    # G**0 is the all-ones matrix, which is the right factor for l = 2.
    return G ** (order - 1), G ** (order - 2)


def tangent_kernel_matvec(
    V: torch.Tensor, U: torch.Tensor, order: int,
    powers: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``K U`` with ``(K U)_i = (1/l) Σ_k [G_ik^{l−1} u_k + (l−1) G_ik^{l−2} (u_k·v_i) v_k]``.

    ``⟨X_V(U'), X_V(U)⟩ = Σ_i u'_i · (K U)_i``. ``powers`` caches ``(G^{∘(l−1)}, G^{∘(l−2)})``.
    Cost ``O(m² d)``; batches over leading dimensions.
    """
    P1, P2 = _gram_powers(V, order) if powers is None else powers
    cross = V @ U.transpose(-1, -2)  # (v_i · u_k)
    return (P1 @ U + (order - 1) * (P2 * cross) @ V) / order


def tangent_inner(V: torch.Tensor, U1: torch.Tensor, U2: torch.Tensor, order: int) -> torch.Tensor:
    """``⟨X_V(U1), X_V(U2)⟩`` (shape: the batch shape)."""
    return (U1 * tangent_kernel_matvec(V, U2, order)).sum((-1, -2))


def tangent_kernel(V: torch.Tensor, order: int) -> torch.Tensor:
    """The explicit ``md × md`` kernel ``K`` (row-major flattening of ``U``); small ``m·d`` only.

    ``K[(i,a),(k,b)] = (1/l) [G_ik^{l−1} δ_ab + (l−1) G_ik^{l−2} V_ka V_ib]``.
    """
    m, d = V.shape
    P1, P2 = _gram_powers(V, order)
    eye = torch.eye(d, dtype=V.dtype, device=V.device)
    K = torch.einsum("ik,ab->iakb", P1, eye)
    K = K + (order - 1) * torch.einsum("ik,ka,ib->iakb", P2, V, V)
    return (K / order).reshape(m * d, m * d)


def tangent_half_sq_distance(
    V: torch.Tensor, U: torch.Tensor, target: Target, scale: float | torch.Tensor = 1.0,
    target_sq_norm: torch.Tensor | None = None, rhs: torch.Tensor | None = None,
) -> torch.Tensor:
    """``½‖X_V(U) − scale·T*‖² = ½⟨U, KU⟩ − scale Σ_i u_i·T*(v_i,…,v_i,·) + ½ scale²‖T*‖²``.

    ``rhs`` caches ``T*(v_i, …, v_i, ·)`` (it depends only on the fixed ``V``).
    """
    sq = target.sq_norm() if target_sq_norm is None else target_sq_norm
    b = target.contract(V) if rhs is None else rhs
    return 0.5 * tangent_inner(V, U, U, target.order) - scale * (U * b).sum((-1, -2)) + 0.5 * scale**2 * sq


def dense_evaluation_pays(width: int, dim: int, order: int) -> bool:
    """Whether the lazy error is evaluated through the dense ``d^l`` residual: ``d^l ≤ l!·m·d``.

    Why: the Gram identity of :func:`tangent_half_sq_distance` evaluates ``‖X_V(U) − T*‖²`` as a
    difference of terms of size ``‖K‖‖U‖²``; near the lazy threshold ``K`` is ill-conditioned,
    the optimal ``U`` is large (``‖U‖ ≈ 70`` at ``l = 3, d = 8, m = 15``) and the rounding floor of
    the *squared* error is ``~eps‖K‖‖U‖²``, i.e. a relative error of ``~1e-6`` that cannot be
    resolved — while the residual formed entry by entry is exact to ``~1e-13``. The dense residual
    costs ``m·d^l`` operations and ``d^l`` memory; below ``d^l ≤ l!·m·d`` (which holds from about
    the lazy threshold width ``⌈C(d+l−1, l)/d⌉ ≈ d^{l−1}/l!`` on, exactly where errors near 0 occur)
    that is at most ``l!`` kernel products ``O(m² d)`` and ``l!`` times the parameter count.
    """
    return dim**order <= math.factorial(order) * width * dim


def _kron_rows(V: torch.Tensor, k: int) -> torch.Tensor:
    """Row-wise Kronecker powers ``(m, d^k)`` of ``V`` (``(m, d)``)."""
    P = V
    for _ in range(k - 1):
        P = (P.unsqueeze(-1) * V.unsqueeze(-2)).reshape(V.shape[0], -1)
    return P


def tangent_to_dense(V: torch.Tensor, U: torch.Tensor, order: int) -> torch.Tensor:
    """The dense ``(d,)*l`` array of ``X_V(U) = Σ_i Sym(v_i^{⊗(l−1)} ⊗ u_i)`` (small ``d^l`` only).

    ``Y = Σ_i v_i^{⊗(l−1)} ⊗ u_i`` is one matrix product ``(V^{⊙(l−1)})ᵀ U`` (``m·d^l``); its
    first ``l−1`` axes are symmetric already, so ``Sym(Y)`` is the mean over the ``l`` positions of
    the last axis.
    """
    d = V.shape[-1]
    Y = (_kron_rows(V, order - 1).T @ U).reshape((d,) * order)
    return sum(Y.movedim(-1, pos) for pos in range(order)) / order


def dense_target(target: Target) -> torch.Tensor | None:
    """The target's ``(d,)*l`` array when it has one cheaply (dense, CP or moment targets), else
    ``None``."""
    from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget

    if isinstance(target, DenseTarget):
        return target.array
    if isinstance(target, CPTarget) and target.factors.ndim == 2:
        F, w = target.factors, target.weights
        return (_kron_rows(F, target.order - 1).T @ (w.unsqueeze(-1) * F)).reshape(
            (target.dim,) * target.order)
    if isinstance(target, MomentTarget):
        return target.moment()
    return None


def tangent_relative_error(V: torch.Tensor, U: torch.Tensor, target: Target,
                           scale: float | torch.Tensor = 1.0, dense: torch.Tensor | None = None,
                           ) -> float:
    """``‖X_V(U) − scale·T*‖ / ‖scale·T*‖`` in float64.

    With ``dense`` (the target's array, see :func:`dense_evaluation_pays`) the residual is formed
    entry by entry; otherwise by the Gram identity (:func:`tangent_half_sq_distance`).
    """
    t64 = target.float64()
    V64, U64 = V.double(), U.double()
    s = torch.as_tensor(scale, dtype=torch.float64)
    if dense is not None:
        T = dense.double()
        return float((tangent_to_dense(V64, U64, t64.order) - s * T).norm() / (s.abs() * T.norm()))
    sq = t64.sq_norm()
    d2 = 2 * tangent_half_sq_distance(V64, U64, t64, s, sq)
    return float(d2.clamp_min(0).sqrt() / (s.abs() * sq.sqrt()))


def tangent_to_cp(V: torch.Tensor, U: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An exact CP form ``(a, R)`` of ``X_V(U)`` with ``2⌈l/2⌉·m`` rank-one terms.

    ``Sym(v^{⊗(l−1)}⊗u) = (1/l) p'(0)`` for the degree-``l`` polynomial ``p(t) = (v + t u)^{⊗l}``.
    Its odd part ``(p(t) − p(−t))/2`` has ``⌈l/2⌉`` coefficients, so ``p'(0) = Σ_k β_k (p(kh) − p(−kh))/2``
    exactly, with ``Σ_k β_k (kh)^j = δ_{j1}`` for odd ``j ≤ l``. The step ``h_i = ‖v_i‖/‖u_i‖`` keeps
    the terms comparable in size (little cancellation). Useful to hand a lazy model to any code that
    takes a CP tensor (``FitResult.cp``, :func:`overtensor.cp_relative_error`).
    """
    K = (order + 1) // 2
    k = torch.arange(1, K + 1, dtype=torch.float64)
    odd = torch.arange(1, 2 * K, 2, dtype=torch.float64)
    A = k.unsqueeze(0) ** odd.unsqueeze(1)  # A[j, k] = k^{odd_j}
    rhs = torch.zeros(K, dtype=torch.float64)
    rhs[0] = 1.0
    beta = torch.linalg.solve(A, rhs).to(V.dtype).to(V.device)  # weights for h = 1
    vn = V.norm(dim=-1)
    un = U.norm(dim=-1)
    h = torch.where(un > 0, vn / un.clamp_min(torch.finfo(V.dtype).tiny), torch.ones_like(vn))
    kk = k.to(V.dtype).to(V.device)
    rows_plus = V.unsqueeze(-2) + (kk.unsqueeze(-1) * h[..., None, None]) * U.unsqueeze(-2)
    rows_minus = V.unsqueeze(-2) - (kk.unsqueeze(-1) * h[..., None, None]) * U.unsqueeze(-2)
    coef = beta / (2 * order)
    c = coef / h.unsqueeze(-1)  # (..., m, K): derivative weights for step h_i
    a = torch.cat([c, -c], dim=-1).reshape(*V.shape[:-2], -1)
    R = torch.cat([rows_plus, rows_minus], dim=-2).reshape(*V.shape[:-2], -1, V.shape[-1])
    return a, R


@dataclass
class LazySolution:
    """The exact lazy optimum ``X_V(U*)`` with ``U* = argmin_U ‖X_V(U) − T*‖`` (minimum norm).

    Attributes
    ----------
    directions : Tensor ``(m, d)``
        Unit rows ``v̄_i`` spanning the tangent space.
    coef : Tensor ``(m, d)``
        ``U*`` (in the target's scale).
    relative_error : float
        ``‖X_V(U*) − T*‖ / ‖T*‖`` (float64).
    solver : str
        ``"explicit"`` or ``"cg"``.
    iterations : int
        CG iterations (0 for the explicit solver).
    converged : bool
        Whether CG met its tolerance (always True for the explicit solver).
    tangent_dim : int or None
        Numerical rank of ``K``, i.e. ``dim 𝒱`` (explicit solver only).
    """

    directions: torch.Tensor
    coef: torch.Tensor
    relative_error: float
    order: int
    solver: str
    iterations: int = 0
    converged: bool = True
    tangent_dim: int | None = None

    def to_cp(self):
        """The lazy optimum as an exact :class:`~overtensor.tensors.cp.SymmetricCP` (``2⌈l/2⌉·m`` terms)."""
        from overtensor.tensors.cp import SymmetricCP

        a, R = tangent_to_cp(self.directions, self.coef, self.order)
        return SymmetricCP(a, R, self.order, normalize=True).canonical()


def lazy_least_squares(
    target,
    W0: torch.Tensor,
    *,
    solver: str = "auto",
    tol: float = 1e-12,
    max_iter: int | None = None,
    stop_error: float = 0.0,
    rcond: float | None = None,
) -> LazySolution:
    """Exact lazy optimum: least squares of ``T*`` in the tangent space at ``W_0``.

    ``min_U ‖Σ_i Sym(w̄_i^{⊗(l−1)} ⊗ u_i) − T*‖``. Since ``T(W_0)`` itself lies in the tangent space
    (``w^{⊗l} = Sym(w^{⊗(l−1)}⊗w)``), this is the error of the best linearized model
    ``T(W_0) + DT(W_0)[Δ]`` for every model of :mod:`overtensor.tensors.models` with ``W_0`` as rows,
    whatever their norms and signs.

    Parameters
    ----------
    target : Target or anything :func:`overtensor.as_target` accepts
    W0 : Tensor ``(m, d)``
        Rows at initialization (only their directions matter).
    solver : {"auto", "explicit", "cg"}
        ``explicit``: form ``K`` (``md × md``) and solve by a symmetric eigendecomposition with
        cut-off ``rcond`` (minimum-norm solution; ``K`` is singular once ``m·d > C(d+l−1, l)``).
        Its numerical rank is ``dim 𝒱``; when that equals ``C(d+l−1, l)`` the tangent space is the
        whole symmetric space and the error is exactly 0, which is what is reported (the
        normal equations square the condition number, so at ``m·d = C(d+l−1, l)`` the computed
        residual alone would only resolve ``~1e-5``).
        ``cg``: matrix-free conjugate gradients on ``K U = b`` with the ``O(m² d)`` product and
        the block-Jacobi preconditioner ``K_ii^{-1} = l (I − ((l−1)/l) w̄_i w̄_iᵀ)``.
        ``auto``: explicit up to :data:`EXPLICIT_MAX_UNKNOWNS` unknowns.
    tol : float
        CG stops when ``‖b − KU‖ ≤ tol · ‖b‖``.
    max_iter : int, optional
        CG iteration budget (default ``10 m d``).
    stop_error : float
        CG also stops once the relative lazy error is at most ``stop_error`` (it decreases
        monotonically along CG iterates, so the value reached is a certified upper bound).
    rcond : float, optional
        Relative eigenvalue cut-off of the explicit solver (default ``m d · eps``).

    Returns
    -------
    LazySolution
    """
    tgt = as_target(target)
    check_choice("solver", solver, ("auto", "explicit", "cg"))
    tol = check_float("tol", tol, minimum=0.0)
    stop_error = check_float("stop_error", stop_error, minimum=0.0)
    if rcond is not None:
        rcond = check_float("rcond", rcond, minimum=0.0)
    W0 = check_rows("W0", W0, tgt.dim)
    m, d = W0.shape
    if max_iter is None:
        max_iter = 10 * m * d
    max_iter = check_int("max_iter", max_iter, 1)
    if solver == "auto":
        solver = "explicit" if m * d <= EXPLICIT_MAX_UNKNOWNS else "cg"
    check_rows_memory("W0", (m, d), tgt.dtype, tgt.device, explicit_kernel=solver == "explicit")
    V = unit_rows(W0.to(dtype=tgt.dtype, device=tgt.device))
    sq = tgt.sq_norm()
    b = tgt.contract(V)
    if solver == "explicit":
        return _explicit(V, b, sq, tgt.order, rcond)
    return _cg(V, b, sq, tgt.order, tol, max_iter, stop_error)


def _relative(err_sq: torch.Tensor, sq: torch.Tensor) -> float:
    return float((err_sq.clamp_min(0) / sq).sqrt())


def _explicit(V, b, sq, order, rcond) -> LazySolution:
    m, d = V.shape
    K = tangent_kernel(V, order)
    evals, evecs = torch.linalg.eigh(K)
    cut = (m * d * torch.finfo(K.dtype).eps if rcond is None else rcond) * evals[-1].clamp_min(0)
    keep = evals > cut
    proj = evecs[:, keep].T @ b.reshape(-1)
    U = (evecs[:, keep] @ (proj / evals[keep])).reshape(m, d)
    rank = int(keep.sum())
    if rank == symmetric_dimension(d, order):
        rel = 0.0  # 𝒱 is all of Sym^l(R^d): T* lies in it exactly.
    else:
        # ‖X(U*) − T*‖² = ‖T*‖² − bᵀU* at the optimum (the normal equations hold on the kept space).
        rel = _relative(sq - (proj**2 / evals[keep]).sum(), sq)
    return LazySolution(V, U, rel, order, "explicit", tangent_dim=rank)


def conjugate_gradient(matvec, b, precond, *, tol, max_iter, stop=None):
    """Preconditioned conjugate gradients for ``A x = b`` with ``A`` symmetric positive semi-definite.

    A plain torch implementation rather than :func:`scipy.sparse.linalg.cg`, because it runs on
    the target's device without host copies and can stop on a problem-specific criterion:
    ``stop(x, r) -> bool`` is checked after each iteration. Returns ``(x, iterations, converged)``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    z = precond(r)
    p = z.clone()
    rz = (r * z).sum()
    bnorm = b.norm()
    if float(bnorm) == 0.0:
        return x, 0, True
    for it in range(1, max_iter + 1):
        Ap = matvec(p)
        pAp = (p * Ap).sum()
        if not float(pAp) > 0:  # p in the null space: the residual is already orthogonal to range(A)
            return x, it - 1, True
        alpha = rz / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        if float(r.norm()) <= tol * float(bnorm) or (stop is not None and stop(x, r)):
            return x, it, True
        z = precond(r)
        rz_new = (r * z).sum()
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, max_iter, False


def _cg(V, b, sq, order, tol, max_iter, stop_error) -> LazySolution:
    powers = _gram_powers(V, order)
    c = (order - 1) / order

    def precond(R):
        # Block-Jacobi: K_ii = (1/l)(I + (l−1) v̄ v̄ᵀ) for unit rows, inverted by Sherman–Morrison.
        return order * (R - c * (R * V).sum(-1, keepdim=True) * V)

    def err_sq(U, r):
        # With r = b − KU: ‖X(U) − T*‖² = ‖T*‖² − 2bᵀU + UᵀKU = ‖T*‖² − bᵀU − rᵀU.
        return sq - (b * U).sum() - (r * U).sum()

    def stop(U, r):
        return stop_error > 0 and float(err_sq(U, r)) <= stop_error**2 * float(sq)

    U, it, conv = conjugate_gradient(lambda X: tangent_kernel_matvec(V, X, order, powers), b, precond,
                                     tol=tol, max_iter=max_iter, stop=stop)
    r = b - tangent_kernel_matvec(V, U, order, powers)
    return LazySolution(V, U, _relative(err_sq(U, r), sq), order, "cg", it, conv)


def lazy_error(target, W0: torch.Tensor, **kwargs) -> float:
    """Relative lazy error ``min_Δ ‖T(W_0) + DT(W_0)[Δ] − T*‖ / ‖T*‖``; see :func:`lazy_least_squares`."""
    return lazy_least_squares(target, W0, **kwargs).relative_error


@dataclass
class RandomFeaturesSolution:
    """Best ``Σ_i c_i w̄_i^{⊗l}`` with the directions frozen: ``c* = H⁺ y``, ``H = (W̄W̄ᵀ)^{∘l}``."""

    directions: torch.Tensor
    coef: torch.Tensor
    relative_error: float
    order: int

    def to_cp(self):
        from overtensor.tensors.cp import SymmetricCP

        return SymmetricCP(self.coef, self.directions, self.order).canonical()


def random_features_least_squares(target, W0: torch.Tensor, *, rcond: float | None = None):
    """Least squares over the coefficients with directions frozen at ``W_0`` (random features).

    ``min_c ‖Σ_i c_i w̄_i^{⊗l} − T*‖`` has the normal equations ``H c = y`` with Gram
    ``H = (W̄ W̄ᵀ)^{∘l}`` and ``y_i = T*(w̄_i, …, w̄_i)``; solved by a symmetric eigendecomposition
    (minimum-norm solution, cut-off ``rcond``, default ``m · eps``). Zero error needs
    ``m ≥ C(d+l−1, l)``: a factor ``d`` more than lazy training.
    """
    tgt = as_target(target)
    if rcond is not None:
        rcond = check_float("rcond", rcond, minimum=0.0)
    W0 = check_rows("W0", W0, tgt.dim)
    check_rows_memory("W0", tuple(W0.shape), tgt.dtype, tgt.device)
    V = unit_rows(W0.to(dtype=tgt.dtype, device=tgt.device))
    m = V.shape[0]
    H = (V @ V.T) ** tgt.order
    y = tgt.values(V)
    sq = tgt.sq_norm()
    evals, evecs = torch.linalg.eigh(H)
    cut = (m * torch.finfo(H.dtype).eps if rcond is None else rcond) * evals[-1].clamp_min(0)
    keep = evals > cut
    proj = evecs[:, keep].T @ y
    c = evecs[:, keep] @ (proj / evals[keep])
    err_sq = sq - (proj**2 / evals[keep]).sum()
    return RandomFeaturesSolution(V, c, _relative(err_sq, sq), tgt.order)
