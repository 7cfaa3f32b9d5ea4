"""Compression of a symmetric target to the span of its components (CANDELINC / Tucker compression).

The mode-1 unfolding of a symmetric tensor ``T = Σ_j λ_j u_j^{⊗l}`` has column space
``span{u_j}``, of dimension at most ``r``. With an orthonormal basis ``Q`` (``d × k``) of that space,
``T = T_Q ×_1 Q ⋯ ×_l Q`` exactly, where the *core* ``T_Q = T ×_1 Qᵀ ⋯ ×_l Qᵀ`` has only ``k^l``
entries; a CP of the core lifts to a CP of ``T`` with components ``Q u``, and

    ‖T − Q^{⊗l}·C‖ = ‖T_Q − C‖        for every core-space tensor C,

so the relative error is the same in both spaces. This is the classical compression step of
CANDELINC (Carroll, Pruzansky, Kruskal 1980) and of compressed PARAFAC (Bro & Andersson 1998,
"Improving the speed of multiway algorithms: Part II. Compression"), applied to a symmetric tensor.

The basis is found by a randomized range finder (Halko, Martinsson, Tropp 2011, Alg. 4.2) whose
test vectors are Khatri–Rao powers ``g^{⊗(l−1)}`` of Gaussian vectors ``g``: then the sketch of the
unfolding is ``T(g, …, g, ·)``, the target's own ``contract``, so no unfolding and no ``d^l`` array
is formed for implicit targets.

**Rule for** ``k`` (documented in ``docs/method.md``): sketch ``s = min(d, 20)`` rows (or the
``sketch_size`` asked), take the singular values ``σ`` of the sketch in float64
and its numerical rank ``k = #{σ_i > rtol·σ_1}`` (``rtol = 1e-10`` for float64 data, ``10·eps`` of a
lower precision: :func:`overtensor.precision.rank_rtol`). If ``k < s`` the sketch is
rank-deficient, which for Gaussian test vectors happens only when the unfolding's rank is ``k``
(with probability one): the range is captured exactly and ``Q`` is the top ``k`` right singular
vectors. Otherwise ``s`` doubles until it reaches ``d``. Compression is used only when
``k ≤ max_ratio·d`` (default ½); otherwise — full-rank moments, noisy dense tensors — it is
refused and the fast route works on the full problem.

:func:`overtensor.tensors.route.fast_route`, the default route of :func:`overtensor.fit`
(``engine="auto"``), uses it: compress,
try the subspace power method (:mod:`overtensor.tensors.spm`) when the flattening's rank is at
most the width, else run ``beyond-lazy`` with the speed-ups of
:mod:`overtensor.tensors.shortcuts` (early switch to a Levenberg–Marquardt extraction, a curvature
step size, NumPy steps) on the core, and lift. ``engine="paper"`` runs the paper's schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_float, check_int, make_generator
from overtensor.precision import rank_rtol
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target, as_target

#: First number of Gaussian columns of :func:`slice_range_basis`'s sketch (doubled as needed).
SLICE_SKETCH = 8


@dataclass(frozen=True)
class Compression:
    """A target written in an orthonormal basis of its components' span.

    Attributes
    ----------
    basis : Tensor, shape ``(d, k)``
        ``Q`` with orthonormal columns, in the target's dtype and device.
    core : Target
        ``T ×_1 Qᵀ ⋯ ×_l Qᵀ``: same kind as the target (CP, moments or dense), dimension ``k``.
    singular_values : Tensor, shape ``(s,)``
        Singular values of the last sketch (float64, CPU), for diagnosis.
    """

    basis: torch.Tensor
    core: Target
    singular_values: torch.Tensor

    @property
    def dim(self) -> int:
        """The compressed dimension ``k``."""
        return self.basis.shape[1]

    def lift(self, cp: SymmetricCP) -> SymmetricCP:
        """The CP of the core mapped back to ``R^d``: components ``Q u_j`` (still unit vectors)."""
        Q = self.basis.to(dtype=cp.components.dtype, device=cp.components.device)
        return SymmetricCP(cp.weights, cp.components @ Q.T, cp.order)


def range_basis(
    target: Target,
    *,
    sketch_size: int | None = None,
    rtol: float | None = None,
    random_state: Any = None,
    max_rank: int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Orthonormal basis of the column space of the target's unfolding, or ``None`` if full rank.

    Parameters
    ----------
    target : Target
        Any target (only ``contract`` is called, on its float64 twin).
    sketch_size : int, optional
        First number of Gaussian test vectors (default ``min(d, 20)``); doubled until the sketch
        is rank-deficient or reaches ``d``.
    rtol : float, optional
        Relative singular-value threshold defining the numerical rank (default
        :func:`overtensor.precision.rank_rtol` of the target's dtype: ``1e-10`` for float64).
    random_state : int, torch.Generator or None
    max_rank : int, optional
        Give up (``None``) when the sketch shows a rank above it: the sketch never grows beyond
        ``max_rank + 1`` rows (for a caller that would refuse a larger basis anyway).

    Returns
    -------
    basis : Tensor ``(d, k)`` in float64 on the CPU, or None when the unfolding has rank ``d``
        (or above ``max_rank``).
    singular_values : Tensor ``(s,)``, float64
    """
    tgt = as_target(target)
    d = tgt.dim
    s = min(d, check_int("sketch_size", sketch_size, 1) if sketch_size is not None else 20)
    rtol = _rtol(rtol, tgt.dtype)
    gen = make_generator(random_state)
    t64 = tgt.float64()

    def draw(n: int) -> torch.Tensor:  # n rows T(g, …, g, ·) of the unfolding's sketch
        G = torch.randn(n, d, generator=gen, dtype=torch.float64)
        return t64.contract(G.to(t64.device)).detach().to("cpu")

    return _grow_range(draw, d, s, rtol, max_rank)


def _rtol(rtol: float | None, dtype: torch.dtype) -> float:
    if rtol is None:
        return rank_rtol(dtype)
    return check_float("rtol", rtol, minimum=0.0, maximum=1.0, strict=True)


def _grow_range(draw: Callable[[int], torch.Tensor], d: int, s: int, rtol: float,
                max_rank: int | None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The range finder's loop (Halko et al. 2011): sketch rows ``draw(n)`` (``n × d``) until the
    sketch of ``s`` rows is rank-deficient, doubling ``s`` up to ``d`` (or ``max_rank + 1``)."""
    rows: list[torch.Tensor] = []
    drawn = 0
    while True:
        rows.append(draw(s - drawn))
        drawn = s
        Y = torch.cat(rows)
        # Scale-free: divide by the largest entry before the SVD (targets may be tiny or huge).
        Y = Y / Y.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        _, sv, Vh = torch.linalg.svd(Y, full_matrices=False)
        k = int((sv > rtol * sv[0]).sum()) if sv[0] > 0 else 0
        if k < s:
            return (None if max_rank is not None and k > max_rank
                    else Vh[:k].T.contiguous()), sv
        if s == d or (max_rank is not None and s > max_rank):
            return None, sv
        s = min(d, 2 * s) if max_rank is None else min(d, 2 * s, max_rank + 1)


def slice_range_basis(
    target: DenseTarget,
    *,
    rtol: float | None = None,
    random_state: Any = None,
    max_rank: int | None = None,
    slices: int = 4,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """:func:`range_basis` of a dense target from a few slices, in one pass over its array.

    Each slice ``M_g = T(g, …, g, ·, ·) = Σ_j λ_j (gᵀu_j)^{l−2} u_j u_jᵀ`` (``d × d``, Gaussian
    ``g``, ``l − 2`` modes contracted) has its columns in ``span{u_j}``, and all of it when its
    coefficients are non-zero (probability one). ``slices`` of them are stacked (``d × slices·d``,
    a component is then lost only if it is weak in every slice), and the range of that small
    matrix found as in :func:`range_basis`: ``s`` Gaussian combinations of its columns (from
    ``SLICE_SKETCH``, doubled until the sketch is rank-deficient), numerical rank
    ``k = #{σ_i > rtol·σ_1}``, ``Q`` the top ``k`` left singular vectors.
    The Khatri–Rao sketch of :func:`range_basis` reads the ``d^l`` array once per round of
    doubling and multiplies it by every test vector (``2 s d^l`` operations for ``s`` vectors);
    the slices read it once, with ``2·slices·d^l`` operations, then ``O(slices·d²·s)``.

    Returns
    -------
    basis : Tensor ``(d, k)`` float64 on the CPU, or None when ``k = d`` or ``k > max_rank``.
    singular_values : Tensor ``(s,)``, float64, of the last sketch.
    """
    rtol = _rtol(rtol, target.dtype)
    slices = check_int("slices", slices, 1)
    gen = make_generator(random_state)
    t64 = target.float64()
    d = t64.dim
    G = torch.randn(slices, d, generator=gen, dtype=torch.float64)
    M = t64._contract_k(G.to(t64.device), t64.order - 2).detach().to("cpu")  # (slices, d, d)
    M = M.transpose(0, 1).reshape(d, slices * d)
    # The range of the stacked slices by the range finder on this small matrix (its SVD would
    # cost O(slices·d³)): sketch rows are Gaussian combinations of its columns.
    return _grow_range(
        lambda n: (M @ torch.randn(slices * d, n, generator=gen, dtype=torch.float64)).T,
        d, min(d, SLICE_SKETCH), rtol, max_rank)


def compress(
    target: Any,
    *,
    order: int | None = None,
    max_ratio: float = 0.5,
    sketch_size: int | None = None,
    rtol: float | None = None,
    random_state: Any = None,
) -> Compression | None:
    """Compress ``target`` to the span of its components when that space is small.

    Parameters
    ----------
    target : Target, SymmetricCP, (weights, factors) or dense array
        CP, moment and dense targets are compressed; other :class:`Target` subclasses are not
        (``None``).
    order : int, optional
        Needed when the target is given as ``(weights, factors)`` rows.
    max_ratio : float
        Compress only when ``k ≤ max_ratio · d`` (default ½).
    sketch_size, rtol, random_state
        See :func:`range_basis`.

    Returns
    -------
    Compression or None
        ``None`` when the unfolding's rank exceeds ``max_ratio · d`` or the target kind is unknown.

    Raises
    ------
    ValueError
        On a bad ``max_ratio``, ``sketch_size`` or ``rtol``.
    """
    tgt = as_target(target, order)
    max_ratio = check_float("max_ratio", max_ratio, minimum=0.0, maximum=1.0, strict=True)
    if not isinstance(tgt, CPTarget | MomentTarget | DenseTarget):
        return None
    Q64, sv = range_basis(tgt, sketch_size=sketch_size, rtol=rtol, random_state=random_state,
                          max_rank=int(max_ratio * tgt.dim))
    if Q64 is None or Q64.shape[1] == 0 or Q64.shape[1] > max_ratio * tgt.dim:
        return None
    Q = Q64.to(dtype=tgt.dtype, device=tgt.device)
    return Compression(Q, _core(tgt, Q), sv)


def _core(tgt: Target, Q: torch.Tensor) -> Target:
    """``T ×_1 Qᵀ ⋯ ×_l Qᵀ`` of the same kind as ``tgt`` (cost: CP ``O(r d k)``, moments
    ``O(n d k)``, dense ``O(d^l k)``)."""
    if isinstance(tgt, CPTarget):
        return CPTarget(tgt.weights, tgt.factors @ Q, tgt.order)
    if isinstance(tgt, MomentTarget):
        return MomentTarget(tgt.samples @ Q, tgt.order, tgt.chunk_size)
    core = tgt.array
    for _ in range(tgt.order):
        # Contract the first mode by one matrix product and append the new mode last: after l
        # rounds every mode is contracted and back in place (d^l k, then d^{l-1} k^2, ...).
        core = (core.reshape(core.shape[0], -1).T @ Q).reshape(*core.shape[1:], Q.shape[1])
    # The core of a symmetric tensor is symmetric up to rounding; a tolerance well above it.
    return DenseTarget(core, symmetry_tol=1e-6)
