"""The precision floor of the reported relative error, stated once (used by docs and tests).

Every relative error is computed through the Gram identity (docs/theory/tensors.md §2)

    ‖X − T‖² = ‖X‖² − 2⟨X, T⟩ + ‖T‖²,

whose three terms cancel at an exact fit: each is known to ``~eps·‖T‖²``, so the difference, and
hence ``‖X − T‖² / ‖T‖²``, only to a few ``eps``. Its square root, the relative error, therefore
cannot be resolved below ``~sqrt(eps)``: about ``1.5e-8`` in float64 (observed 1.4e-8 to 2.9e-8
for exact fits, depending on the CPU's vector instructions and the number of threads) and
``3.5e-4`` in float32. A reported error at that level means "exact to working precision"; which
value it takes there, and whether it is rounded to 0, is decided by rounding.

Hence the rules (``docs/validation.md``):

* tests assert an exact fit as ``relative_error <= FLOOR_MARGIN * gram_floor(dtype)``, never
  below the floor;
* tests never compare a decision (``converged``, a stop reason) taken by ``rel <= tol`` with
  ``tol`` at or below the floor, because rounding flips it.
"""

from __future__ import annotations

import math

import torch

#: How far above the floor a test's bound on an "exact" relative error sits.
FLOOR_MARGIN = 10.0


def gram_floor(dtype: torch.dtype = torch.float64) -> float:
    """``sqrt(eps(dtype))``: the smallest relative error the Gram identity resolves in ``dtype``.

    ``1.49e-8`` for float64, ``3.45e-4`` for float32. Reported errors are computed in float64,
    so :data:`GRAM_FLOOR` is the one that applies to them.
    """
    return math.sqrt(torch.finfo(dtype).eps)


#: The float64 floor of every reported relative error (``sqrt(eps) ≈ 1.49e-8``).
GRAM_FLOOR = gram_floor(torch.float64)

#: The bound tests use for "exact to working precision" (``FLOOR_MARGIN · GRAM_FLOOR ≈ 1.5e-7``).
EXACT = FLOOR_MARGIN * GRAM_FLOOR


def rank_rtol(dtype: torch.dtype = torch.float64) -> float:
    """Relative singular-value threshold of a numerical rank of data stored in ``dtype``.

    ``max(1e-10, 10·eps(dtype))``: ``1e-10`` for float64 (the threshold of
    :mod:`overtensor.tensors.compression` and :mod:`overtensor.tensors.spm`), ``1.2e-6`` for
    float32 — the rounding of a float32 array to its dtype leaves singular values near
    ``1e-8``, which a float64 threshold would count as rank (a low-rank float32 tensor then looks
    full-rank). A direction below it is a change of the data smaller than its own rounding.
    """
    return max(1e-10, 10.0 * torch.finfo(dtype).eps)
