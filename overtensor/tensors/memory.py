"""Size of the largest array a computation will allocate, checked before it starts.

Each estimate names the argument that drives the size and refuses, through
:func:`overtensor._checks.check_memory` (budget documented there), a size whose largest array
would not fit, before any allocation.
"""

from __future__ import annotations

from typing import Any

import torch

from overtensor._checks import check_memory
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target

#: Random starts of the power method iterated together (``power_method``'s ``n_restarts``).
_POWER_RESTARTS = 10


def _target_columns(target: Target) -> int:
    """Columns of the largest ``(m, ·)`` array the target's ``values``/``contract`` form."""
    if isinstance(target, CPTarget):
        return target.factors.shape[-2]  # (m, r): rows against components
    if isinstance(target, MomentTarget):
        return min(target.chunk_size, target.n)  # (m, chunk): rows against samples
    if isinstance(target, DenseTarget):
        return target.dim ** (target.order - 1)  # (m, d^{l-1}): first contraction
    return 0


def check_fit_memory(target: Target, width: int | None, method: str, dtype: torch.dtype,
                     device: Any) -> None:
    """Refuse a fit whose largest array would not fit: ``(m, m)`` Gram matrices and ``(m, d)``
    rows for the gradient methods (``m`` = width, or the rank for ``exact-rank``), ``(r, d)``
    components and ``(L, r)`` overlaps for the power method."""
    m = width
    if m is None and target.truth is not None:
        m = target.truth.rank
    if m is None:
        return  # refused later with "width is required"
    if method in ("power-method", "spm"):  # spm checks its flattening itself (spm_memory)
        cols = max(target.dim, _POWER_RESTARTS)
        what = "an array of components"
    else:
        cols = max(m, target.dim, _target_columns(target))
        what = "Gram/row arrays"
    check_memory("width", m, (m, cols), dtype, what, device)


def check_rows_memory(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: Any, *,
                      explicit_kernel: bool = False) -> None:
    """Refuse least squares at rows ``W0`` of ``shape`` ``(m, d)`` whose ``(m, m)`` Gram matrix,
    or ``(md, md)`` explicit tangent kernel, would not fit."""
    m, d = shape
    size = (m * d, m * d) if explicit_kernel else (m, max(m, d))
    what = "an explicit (m d, m d) tangent kernel" if explicit_kernel else "an (m, m) Gram matrix"
    check_memory(f"{name}.shape", tuple(shape), size, dtype, what, device)
