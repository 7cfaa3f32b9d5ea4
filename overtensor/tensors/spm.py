"""The subspace power method (SPM) for symmetric tensor decomposition.

Kileel & Pereira, "Subspace power method for symmetric tensor decomposition", arXiv:1912.04007
(Numerical Algorithms, 2025), Algorithm 1; reference code https://github.com/joaompereira/SPM.
Written here from the paper's description (no code copied).

For ``T = Σ_{i≤R} λ_i a_i^{⊗l}`` (unit ``a_i``) of order ``l ≥ 3``, let ``n = ⌈l/2⌉`` and
``n' = l − n``. The flattening ``M = mat(T)`` (``d^n × d^{n'}``) equals
``Σ_i λ_i (a_i^{⊗n})(a_i^{⊗n'})ᵀ``; when the ``a_i^{⊗n'}`` are linearly independent its column
space is ``A = span{a_i^{⊗n}}``, of dimension ``R``. So ``R ≤ C(d+n'−1, n')`` (the dimension of
symmetric ``n'``-tensors): ``R ≤ d`` for ``l = 3``, ``R ≤ d(d+1)/2`` for ``l = 4`` — these are the
ranks where the method applies (:func:`spm_rank_bound`); beyond them it raises ``ValueError``.

1. **Subspace.** ``M = V S Uᵀ`` truncated to the top ``R`` singular triplets: ``V`` (``d^n × R``)
   is an orthonormal basis of ``A``.
2. **Power method.** The rank-one points of ``A`` are exactly the ``±a_i^{⊗n}`` (generically), the
   global maxima of ``f(x) = ‖P_A x^{⊗n}‖² = ‖Vᵀ x^{⊗n}‖²`` on the unit sphere (value 1). SPM
   runs the shifted power iteration ``x ← (∇f(x)/(2n) + γ x) / ‖·‖``, with
   ``∇f(x)/(2n) = Σ_j (V_jᵀx^{⊗n}) V_j(x, …, x, ·)``, and the paper's adaptive shift
   ``γ = c_n · (1 − f/2)`` for ``f ≤ 2/3``, ``γ = c_n · sqrt(2f(1 − f))`` above,
   ``c_n = sqrt((n−1)/n)`` (the paper's Lemma on the shift that makes the iteration monotone).
   Several random starts in ``A`` run as one batch; the one with the largest ``f`` is kept.
3. **Deflation.** With ``α = Vᵀ a^{⊗n}/‖·‖`` and ``β = Uᵀ a^{⊗n'}/‖·‖``, the weight of ``a`` is the
   unique ``λ`` that drops the rank of ``S − λ αβᵀ`` (Wedderburn's rank reduction):
   ``λ = 1/(βᵀ S⁻¹ α)``. The core ``S − λ αβᵀ`` is re-diagonalized (its ``R × R`` SVD, top
   ``R − 1``) and ``V``, ``U`` are rotated accordingly; repeat with ``R − 1``.

After the ``R`` components are found, the weights are refitted by least squares against the
target (normal equations ``(AAᵀ)^{∘l} λ = T(a_j, …, a_j)``; exact targets: no change beyond
rounding; noisy ones: the best weights for the found components). After compression both sides
are computed in the core (``T(Qu, …, Qu) = T_Q(u, …, u)``), and so is the relative error's
cross term: ``‖T − T̂‖² = ‖T_Q − Ĉ‖² + ‖T‖² − ‖T_Q‖²``, so the full target is read once more, for
``‖T‖²``.

**Implicit targets and memory.** SPM needs the basis ``V`` (``k^n × R`` entries) whatever the
target, so it first compresses the target to the span of its components
(:func:`overtensor.tensors.compression.range_basis`, through ``contract`` only; for a dense
array :func:`~overtensor.tensors.compression.slice_range_basis`, one pass): it then works in
dimension ``k`` (the unfolding's rank) and the components are lifted back. The flattening of the
``k``-dimensional target comes from the factors of a CP target
(``F^{⊙n} diag(λ) (F^{⊙n'})ᵀ``, ``O(R_T k^n)`` memory), the samples of a moment target (the same
with weights ``1/N``), or the (compressed) dense array; for CP and moment targets the dense
``k^l`` flattening is formed instead only when it is smaller than that factor form (many terms or
samples) — for a target that does not compress (``k = d``) that is a ``d^l`` array, so it is
counted like everything else. :func:`spm_memory` gives the bytes needed; above
``SPMOptions.memory_budget`` (default 2 GiB) :func:`spm` raises a ``ValueError`` that states the
amount, before any large allocation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from overtensor._checks import check_float, check_int, make_generator
from overtensor.precision import rank_rtol
from overtensor.tensors.compression import _core, range_basis, slice_range_basis
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.loss import half_sq_distance
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.result import FitResult
from overtensor.tensors.scaling import ldexp
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target, as_target

#: First sketch size of the compression when the rank is not given (doubled until the sketch is
#: rank-deficient): a rank-``r`` span costs between ``r + 1`` and ``2r + 2`` contractions.
SKETCH_START = 8


@dataclass(frozen=True)
class SPMOptions:
    """Options of the subspace power method.

    Attributes
    ----------
    n_starts : int
        Random starts per component, iterated together (default 4).
    max_iter : int
        Iteration budget per component (default 5000, as the reference implementation).
    conv_tol : float
        Stop once ``‖x_new − x‖ ≤ conv_tol`` for every start (default ``1e-13``).
    memory_budget : int
        Bytes the flattening's basis may take (default 2 GiB); beyond, ``ValueError``.
    compress : bool
        Work on the span of the components first (default True; see the module docstring).
    """

    n_starts: int = 4
    max_iter: int = 5000
    conv_tol: float = 1e-13
    memory_budget: int = 2 << 30
    compress: bool = True

    def __post_init__(self) -> None:
        check_int("n_starts", self.n_starts, 1)
        check_int("max_iter", self.max_iter, 1)
        check_float("conv_tol", self.conv_tol, minimum=0.0)
        check_int("memory_budget", self.memory_budget, 1)
        if not isinstance(self.compress, bool):
            raise TypeError(f"compress must be a bool, got {type(self.compress).__name__}: "
                            f"{self.compress!r}")


def spm_rank_bound(order: int, dim: int) -> int:
    """Largest rank SPM can decompose: ``C(dim + n' − 1, n')`` with ``n' = ⌊order/2⌋``
    (the dimension of the symmetric ``n'``-tensors, which bounds the flattening's rank)."""
    low = order // 2
    return math.comb(dim + low - 1, low)


def spm_memory(target: Target, rank: int, dim: int | None = None) -> int:
    """Bytes (float64) SPM needs for the flattening's basis of ``target`` worked in dimension
    ``dim`` (default the target's): ``3·8·`` the entries of the factor Khatri–Rao powers (CP,
    moments) or of the flattening (dense), plus the basis ``V`` (``k^n × rank``)."""
    k = target.dim if dim is None else dim
    l = target.order
    high, low = (l + 1) // 2, l // 2
    dense = k**l
    if isinstance(target, CPTarget):
        entries = min(target.rank * (k**high + k**low), dense)
    elif isinstance(target, MomentTarget):
        entries = min(target.n * (k**high + k**low), dense)
    else:
        entries = dense
    return 8 * (3 * entries + k**high * rank)


def spm(
    target: Target,
    rank: int | None,
    *,
    generator: torch.Generator | int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    tol: float = 1e-4,
    options: SPMOptions | None = None,
    max_rank: int | None = None,
) -> FitResult:
    """Decompose ``target`` into ``rank`` symmetric rank-one terms by SPM (Kileel & Pereira).

    Parameters
    ----------
    target : Target
        Order ``≥ 3``; CP, moment and dense targets (others through their dense array only if
        they are dense).
    rank : int or None
        ``R``, at most :func:`spm_rank_bound` of the (compressed) dimension and at most the
        flattening's numerical rank; ``None``: that numerical rank (singular values above
        ``1e-10`` times the largest for float64 data; :func:`overtensor.precision.rank_rtol`).
    generator : torch.Generator, int or None
        The random starts (drawn on the CPU in float64).
    dtype, device
        Of the returned CP (the method itself runs in float64).
    tol : float
        ``converged`` is ``relative_error ≤ tol``.
    options : SPMOptions, optional
    max_rank : int, optional
        With ``rank=None``: refuse (``ValueError``, before the power iterations) when the
        flattening's numerical rank exceeds it; the compression's sketch then stops once the
        components' span has more than ``max_rank`` dimensions.

    Returns
    -------
    FitResult
        ``cp`` sorted by ``|weight|``; ``steps`` the power iterations of all components;
        ``info["spm"]``: ``dim`` worked in (after compression), ``f`` (final ``f`` per component,
        1 for an exact rank-one point), ``iterations`` per component, ``memory_bytes``,
        ``singular_values`` of the flattening (float64, relative to ``‖T‖``; a CP with ``j``
        terms has an error at least ``sqrt(Σ_{i>j} σ_i²)``, Eckart–Young).

    Raises
    ------
    ValueError
        ``order < 3``; ``rank`` above :func:`spm_rank_bound` or above the flattening's numerical
        rank; the memory the flattening needs above ``options.memory_budget`` (the message says
        how much); a target kind SPM cannot read.
    """
    t0 = time.perf_counter()
    options = SPMOptions() if options is None else options
    if not isinstance(options, SPMOptions):
        raise TypeError(f"options must be an SPMOptions, got {type(options).__name__}: {options!r}")
    tgt = as_target(target)
    if rank is not None:
        rank = check_int("rank", rank, 1)
    tol = check_float("tol", tol, minimum=0.0)
    l, d = tgt.order, tgt.dim
    if l < 3:
        raise ValueError(f"method='spm' needs order >= 3 (the flattening of an order-{l} tensor "
                         f"is the matrix itself), got order={l}")
    if rank is not None and rank > spm_rank_bound(l, d):
        raise ValueError(_bound_message(rank, l, d, d))
    if not isinstance(tgt, CPTarget | MomentTarget | DenseTarget):
        raise ValueError(f"method='spm' reads CP, moment or dense targets, got "
                         f"{type(tgt).__name__}")
    gen = make_generator(generator)
    dev = torch.device(device) if device is not None else tgt.device
    work, exponent = tgt.normalized()  # scale-free: T / 2^e, weights scaled back at the end
    work = work.float64()
    full = work  # the uncompressed T / 2^e, for ‖T‖²
    Q = None
    if options.compress:
        # With rank=None the sketch starts small and doubles (the span's dimension is unknown);
        # with max_rank it stops once the span exceeds it: the flattening's rank is at least the
        # span's dimension (the a_i^{⊗n} of a basis among the a_i are linearly independent).
        # (work is float64; the rank threshold is the one of the data as the user stored it.)
        common = dict(rtol=rank_rtol(tgt.dtype), random_state=gen,
                      max_rank=max_rank if rank is None else None)
        if isinstance(work, DenseTarget):  # one pass over the array, whatever the rank
            Q, _ = slice_range_basis(work, **common)
        else:
            Q, _ = range_basis(work, sketch_size=min(d, SKETCH_START if rank is None else rank + 10),
                               **common)
        if Q is None and max_rank is not None and rank is None and d > max_rank:
            raise ValueError(f"flattening rank > max_rank={max_rank}: the unfolding has rank "
                             f"above {max_rank} (components spanning more dimensions, or noise)")
        if Q is not None and Q.shape[1] < d:
            Q = Q.to(work.device)
            work = _core(work, Q)
        else:
            Q = None
    k = work.dim
    if rank is not None and rank > spm_rank_bound(l, k):
        raise ValueError(_bound_message(rank, l, d, k))
    need = spm_memory(work, spm_rank_bound(l, k) if rank is None else rank, k)
    if need > options.memory_budget:
        raise ValueError(
            f"method='spm' needs {need / 2**30:.1f} GiB for the flattening of a "
            f"{type(tgt).__name__} of order {l} in dimension {k}, above the "
            f"budget of {options.memory_budget / 2**30:.1f} GiB; use the default method "
            f"(never forms the flattening) or a larger SPMOptions(memory_budget=...)")
    V, S, U, sv = _flattening_svd(work, rank, rank_rtol(tgt.dtype))
    rank = V.shape[1]
    if max_rank is not None and rank > max_rank:
        raise ValueError(f"flattening rank {rank} > max_rank={max_rank}")
    A, lam, fs, iters = _decompose(V, S, U, k, l, rank, gen, options)
    # Found in the span: T(Qu, …, Qu) = T_Q(u, …, u) exactly, so the weights' normal equations
    # and the error's cross term are computed in the core, and only ‖T‖² reads the full target:
    # ‖T − T̂‖² = ‖T_Q − Ĉ‖² + ‖T‖² − ‖T_Q‖² (T̂ lies in span^{⊗l}; Pythagoras).
    lam = _least_squares_weights(A, lam, work)
    full_sq = float(full.sq_norm())
    err_sq = 2 * float(half_sq_distance(lam, A, work))
    if Q is not None:
        err_sq += full_sq - float(work.sq_norm())
        A = A @ Q.T.to(A)
    cp = SymmetricCP(ldexp(lam, exponent), A, l).canonical()
    cp = cp.to(dtype=dtype, device=dev)
    # The error of what is returned: of the rounded CP when a lower precision was asked.
    # (‖T‖² can round to 0 when near-collinear terms cancel: no relative error, not converged.)
    full_norm = math.sqrt(max(full_sq, 0.0))
    if cp.weights.dtype != torch.float64:
        rel = cp_relative_error(cp, tgt)
    else:
        rel = math.sqrt(max(err_sq, 0.0)) / full_norm if full_norm > 0 else math.nan
    return FitResult(
        cp=cp, relative_error=rel, model_relative_error=rel, history=[], steps=sum(iters),
        seconds=time.perf_counter() - t0, converged=rel <= tol,
        stop_reason="tol" if rel <= tol else "rank", method="spm", width=rank, target=tgt,
        params={}, params0={}, signs=None, model="cp",
        info={"spm": {"dim": k, "f": fs, "iterations": iters, "memory_bytes": need,
                                 "singular_values": (sv / full_norm).tolist()}})


def _bound_message(rank: int, order: int, dim: int, k: int) -> str:
    where = f"dimension {dim}" if k == dim else (
        f"dimension {dim}, whose components span only {k} dimensions")
    return (f"method='spm' decomposes at most rank {spm_rank_bound(order, k)} at order {order} "
            f"in {where} (the rank of the flattening), got rank={rank}; use the default method "
            f"(over-parameterized), which also fits overcomplete ranks")


def _kron_rows(X: torch.Tensor, p: int) -> torch.Tensor:
    """Row-wise ``x^{⊗p}`` flattened (C order): ``(B, k^p)``; ``p = 0`` gives ones."""
    out = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    for _ in range(p):
        out = (out.unsqueeze(-1) * X.unsqueeze(1)).reshape(X.shape[0], -1)
    return out


def _flattening_svd(work: Target, rank: int | None, rtol: float):
    """Top ``rank`` singular triplets of the ``k^n × k^{n'}`` flattening: ``V, S (rank×rank
    diagonal), U`` and all singular values; ``ValueError`` when the flattening's numerical rank
    is below ``rank`` (``None``: that numerical rank); zero: singular values below ``rtol``
    times the largest."""
    l, k = work.order, work.dim
    high, low = (l + 1) // 2, l // 2
    factors = weights = None
    if isinstance(work, CPTarget):
        factors, weights = work.factors, work.weights
    elif isinstance(work, MomentTarget):
        factors = work.samples
        weights = torch.full((factors.shape[0],), 1.0 / factors.shape[0], dtype=factors.dtype,
                             device=factors.device)
    if factors is not None and factors.shape[0] * (k**high + k**low) < k**l:
        # M = P diag(w) Qᵀ with P = F^{⊙n}, Q = F^{⊙n'}: thin QRs, then the small SVD.
        Qp, Rp = torch.linalg.qr(_kron_rows(factors, high).T)
        Qq, Rq = torch.linalg.qr(_kron_rows(factors, low).T)
        Y, sv, Zh = torch.linalg.svd(Rp @ (weights.unsqueeze(1) * Rq.T))
        left, right = Qp @ Y, Qq @ Zh.T
    else:
        if isinstance(work, DenseTarget):
            M = work.array.reshape(k**high, k**low)
        elif isinstance(work, MomentTarget):
            M = _moment_flattening(work.samples, high, low)
        else:
            P = _kron_rows(factors, high)
            M = P.T @ (weights.unsqueeze(1) * _kron_rows(factors, low))
        left, sv, Zh = torch.linalg.svd(M, full_matrices=False)
        right = Zh.T
    q = int((sv > rtol * sv[0]).sum()) if sv.numel() and sv[0] > 0 else 0
    if q == 0:
        raise ValueError("method='spm': the target is zero")
    if rank is None:
        rank = q
    if q < rank:
        raise ValueError(f"method='spm' with rank={rank}: the target's flattening has numerical "
                         f"rank {q}, so SPM determines at most {q} components; pass rank <= {q}")
    return left[:, :rank], torch.diag(sv[:rank]), right[:, :rank], sv


def _moment_flattening(X: torch.Tensor, high: int, low: int, chunk: int = 4096) -> torch.Tensor:
    """``(1/N) Σ_s x_s^{⊗n} (x_s^{⊗n'})ᵀ`` by chunks of samples."""
    M = None
    for i in range(0, X.shape[0], chunk):
        Xc = X[i:i + chunk]
        part = _kron_rows(Xc, high).T @ _kron_rows(Xc, low)
        M = part if M is None else M + part
    return M / X.shape[0]


def _decompose(V, S, U, k, l, rank, gen, options):
    """Steps 2–3 of the module docstring: components ``(rank, k)``, weights, ``f`` and
    iteration counts per component."""
    high, low = (l + 1) // 2, l // 2
    cn = math.sqrt((high - 1) / high)
    comps, lams, fs, iters = [], [], [], []
    for _ in range(rank):
        R = V.shape[1]
        Vt = V.reshape(k ** (high - 1), k, R)
        x, f, it = _power(Vt, high, cn, gen, options)
        comps.append(x)
        iters.append(it)
        fs.append(f)
        alpha = V.T @ _kron_rows(x[None], high)[0]
        beta = U.T @ _kron_rows(x[None], low)[0]
        na, nb = alpha.norm(), beta.norm()
        alpha, beta = alpha / na, beta / nb
        lam = 1.0 / float(beta @ torch.linalg.solve(S, alpha))
        lams.append(lam)
        if R > 1:
            Y, sv, Zh = torch.linalg.svd(S - lam * torch.outer(alpha, beta))
            V, U, S = V @ Y[:, :R - 1], U @ Zh[:R - 1].T, torch.diag(sv[:R - 1])
    A = torch.stack(comps)
    return A, torch.tensor(lams, dtype=A.dtype, device=A.device), fs, iters


def _power(Vt: torch.Tensor, high: int, cn: float, gen: torch.Generator,
           options: SPMOptions) -> tuple[torch.Tensor, float, int]:
    """The shifted power iteration on ``f(x) = ‖Vᵀx^{⊗n}‖²`` from ``n_starts`` random points of
    ``A`` contracted to vectors; the unit ``x`` with the largest ``f``. On the CPU the loop runs
    in NumPy: its arrays are small (``n_starts × k^{n−1}`` by ``k^{n−1} × kR``) and a NumPy
    operation costs ~1 µs against torch's 5–10 µs (as :mod:`overtensor.tensors.small_core`)."""
    K, k, R = Vt.shape
    B = options.n_starts
    g = torch.randn(B, k, generator=gen, dtype=torch.float64)
    h = torch.randn(B, R, generator=gen, dtype=torch.float64)
    if Vt.device.type == "cpu":
        x, f, it = _power_numpy(Vt.numpy(), g.numpy(), h.numpy(), high, cn, options)
        return torch.from_numpy(x), f, it
    g, h = g.to(Vt), h.to(Vt)
    flat = Vt.reshape(K, k * R)
    # A random element Σ_j h_j V_j of A, contracted with g^{⊗(n−1)}: a vector in span{a_i}.
    X = torch.einsum("bkr,br->bk", (_kron_rows(g, high - 1) @ flat).reshape(B, k, R), h)
    X = X / X.norm(dim=1, keepdim=True).clamp_min(torch.finfo(X.dtype).tiny)
    it = 0
    while it < options.max_iter:
        it += 1
        C = (_kron_rows(X, high - 1) @ flat).reshape(B, k, R)   # V_j(x, …, x, ·)
        alpha = torch.einsum("bk,bkr->br", X, C)                 # Vᵀ x^{⊗n}
        grad = torch.einsum("bkr,br->bk", C, alpha)
        f = (alpha * alpha).sum(1)
        shift = cn * torch.where(f > 2 / 3, torch.sqrt(2 * f * (1 - f).clamp_min(0)), 1 - f / 2)
        new = grad + shift.unsqueeze(1) * X
        new = new / new.norm(dim=1, keepdim=True).clamp_min(torch.finfo(X.dtype).tiny)
        change = (new - X).norm(dim=1)
        X = new
        done = change <= options.conv_tol
        # Every start settled, or one settled on a rank-one point of A (f = 1): stop.
        if bool(done.all()) or bool((done & (f >= 1 - 1e-12)).any()):
            break
    C = (_kron_rows(X, high - 1) @ flat).reshape(B, k, R)
    f = (torch.einsum("bk,bkr->br", X, C) ** 2).sum(1)
    best = int(torch.argmax(f))
    return X[best], float(f[best]), it


def _power_numpy(Vt: np.ndarray, g: np.ndarray, h: np.ndarray, high: int, cn: float,
                 options: SPMOptions) -> tuple[np.ndarray, float, int]:
    """:func:`_power`'s loop in NumPy (same steps, same stopping rule)."""
    K, k, R = Vt.shape
    B = g.shape[0]
    flat = Vt.reshape(K, k * R)
    tiny = np.finfo(np.float64).tiny

    def contract(X: np.ndarray) -> np.ndarray:  # V_j(x, …, x, ·) for every row: (B, k, R)
        P = X
        for _ in range(high - 2):
            P = (P[:, :, None] * X[:, None, :]).reshape(B, -1)
        return (P @ flat).reshape(B, k, R)

    def row_norms(Y: np.ndarray) -> np.ndarray:  # (np.linalg.norm's wrapper costs ~3 µs a call)
        return np.sqrt(np.einsum("bk,bk->b", Y, Y))

    X = np.einsum("bkr,br->bk", contract(g), h)
    X /= np.maximum(row_norms(X), tiny)[:, None]
    it = 0
    while it < options.max_iter:
        it += 1
        C = contract(X)
        alpha = np.einsum("bk,bkr->br", X, C)
        f = (alpha * alpha).sum(1)
        shift = cn * np.where(f > 2 / 3, np.sqrt(2 * f * np.maximum(1 - f, 0)), 1 - f / 2)
        new = np.einsum("bkr,br->bk", C, alpha) + shift[:, None] * X
        new /= np.maximum(row_norms(new), tiny)[:, None]
        done = row_norms(new - X) <= options.conv_tol
        X = new
        if done.all() or (done & (f >= 1 - 1e-12)).any():
            break
    f = (np.einsum("bk,bkr->br", X, contract(X)) ** 2).sum(1)
    best = int(np.argmax(f))
    return X[best].copy(), float(f[best]), it


def _least_squares_weights(A: torch.Tensor, lam: torch.Tensor, target: Target) -> torch.Tensor:
    """Weights minimizing ``‖Σ_j λ_j a_j^{⊗l} − T‖`` for the found unit ``a_j`` (float64); the
    deflation's weights when the Gram matrix is singular to working precision."""
    G = (A @ A.T) ** target.order
    rhs = target.values(A.to(target.device))
    try:
        sol = torch.linalg.solve(G, rhs.to(G))
    except RuntimeError:
        return lam
    return sol if bool(torch.isfinite(sol).all()) else lam
