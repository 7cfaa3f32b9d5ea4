"""Model-agnostic diagnostics of a regime: how far training moved the parameters.

One definition of the *distance from initialization* (laziness; docs/theory/tensors.md §6,
docs/theory/networks.md §1) for every family: the tensor loops, the batched engine, the network
loop and the public :func:`overtensor.laziness` all compute it here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch


def relative_distance(params: Mapping[str, torch.Tensor], params0: Mapping[str, torch.Tensor],
                      keys: Iterable[str] | None = None) -> float:
    """``‖θ − θ_0‖ / ‖θ_0‖`` over the entries ``keys`` of two parameter dicts, in float64.

    Parameters
    ----------
    params, params0 : mapping name -> tensor
        The parameters now and at initialization (same shapes per name).
    keys : iterable of str, optional
        The entries to measure (default: every entry of ``params0``); an entry missing from
        either dict is skipped.

    Returns
    -------
    float
        The relative Frobenius distance; ``0.0`` when nothing moved (or no entry is measured),
        ``inf`` when ``θ_0 = 0`` and ``θ`` moved.
    """
    keys = list(params0) if keys is None else [k for k in keys if k in params and k in params0]
    num = den = 0.0
    for k in keys:
        p0 = params0[k].detach().double()
        num += float(((params[k].detach().double() - p0) ** 2).sum())
        den += float((p0**2).sum())
    if num == 0.0:
        return 0.0
    return math.sqrt(num / den) if den > 0 else math.inf
