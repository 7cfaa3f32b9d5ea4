"""Exact power-of-two scaling: the arithmetic behind scale-free targets (issue 10, item 4).

A decomposition problem is invariant to scaling the target, but squared quantities are not:
``‖T‖² = Σ λ_i λ_j (u_i·u_j)^l`` overflows for weights ``1e160`` and underflows to zero for
weights ``1e-170`` in float64 (``1e±20`` in float32). Every target is therefore brought to entries of
order one *before* a square is formed, by a power of two ``2^k``: multiplying by ``2^k`` is exact
in binary floating point (barring subnormals), so the scaled problem is the user's problem, bit
for bit, and a result computed on it maps back exactly (weights times ``2^k``).

Pure functions on tensors and Python numbers; no overtensor imports.
"""

from __future__ import annotations

import math

import torch


def max_exponent(dtype: torch.dtype) -> int:
    """The largest ``e`` with ``2^e`` finite in ``dtype`` (1023, 127, 127, 15 for float64,
    float32, bfloat16, float16)."""
    return math.frexp(torch.finfo(dtype).max)[1] - 1


def ldexp(x: torch.Tensor, exponent: int | torch.Tensor) -> torch.Tensor:
    """``x · 2^exponent``, exactly, also for exponents beyond the range of ``2^e`` in ``x``'s dtype.

    The factor is applied in steps of at most :func:`max_exponent`, each a power of two that is
    finite in ``x``'s dtype (``2^16`` already overflows float16, ``2^1024`` float64), so no
    intermediate factor is infinite or zero and only a result outside the range rounds.
    ``exponent`` is an int or an integer tensor broadcasting against ``x``.
    """
    step = max_exponent(x.dtype)
    e = torch.as_tensor(exponent, device=x.device).to(torch.int64)
    out = x
    while bool((e != 0).any()):
        part = e.clamp(-step, step)
        out = out * torch.pow(2.0, part.to(torch.float64)).to(x.dtype)
        e = e - part
    return out


def exponent_of(value: float) -> int:
    """``e`` with ``|value| ∈ [2^(e−1), 2^e)`` (``0`` for zero): the power of two just above."""
    return math.frexp(float(value))[1] if value != 0 and math.isfinite(value) else 0


def row_exponents(A: torch.Tensor) -> torch.Tensor:
    """Per row (last axis), the power-of-two exponent just above its largest ``|entry|`` (0 for a
    zero row), as int64: ``A / 2^e`` has entries in ``(−1, 1)`` with the largest ``≥ ½``."""
    amax = A.detach().abs().amax(dim=-1).to(torch.float64)
    e = torch.floor(torch.log2(amax.clamp_min(torch.finfo(torch.float64).tiny))) + 1
    return torch.where(amax > 0, e, torch.zeros_like(e)).to(torch.int64)

