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

**Rule for** ``k`` (documented in ``docs/method.md``): sketch ``s = min(d, k_0 + 10)`` rows
(``k_0`` the width when given, else 10), take the singular values ``σ`` of the sketch in float64
and its numerical rank ``k = #{σ_i > rtol·σ_1}`` (``rtol = 1e-10``). If ``k < s`` the sketch is
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

from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_float, check_int, make_generator
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target, as_target

#: Relative singular-value threshold of the float64 sketch that defines the numerical rank.
RANGE_RTOL = 1e-10


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
    rtol: float = RANGE_RTOL,
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
    rtol : float
        Relative singular-value threshold defining the numerical rank (default ``1e-10``).
    random_state : int, torch.Generator or None
    max_rank : int, optional
        Give up (``None``) once the sketch shows a rank above it: the sketch never grows beyond
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
    rtol = check_float("rtol", rtol, minimum=0.0, maximum=1.0, strict=True)
    gen = make_generator(random_state)
    t64 = tgt.float64()
    rows: list[torch.Tensor] = []
    drawn = 0
    while True:
        G = torch.randn(s - drawn, d, generator=gen, dtype=torch.float64)
        rows.append(t64.contract(G.to(t64.device)).detach().to("cpu"))
        drawn = s
        Y = torch.cat(rows)
        # Scale-free: divide by the largest entry before the SVD (targets may be tiny or huge).
        Y = Y / Y.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        _, sv, Vh = torch.linalg.svd(Y, full_matrices=False)
        k = int((sv > rtol * sv[0]).sum()) if sv[0] > 0 else 0
        if k < s:
            return Vh[:k].T.contiguous(), sv
        if s == d or (max_rank is not None and s > max_rank):
            return None, sv
        s = min(d, 2 * s) if max_rank is None else min(d, 2 * s, max_rank + 1)


def compress(
    target: Any,
    *,
    order: int | None = None,
    max_ratio: float = 0.5,
    sketch_size: int | None = None,
    rtol: float = RANGE_RTOL,
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
