"""Hyperspherical energy of a set of neurons (Liu et al., "Learning towards minimum hyperspherical
energy", NeurIPS 2018; used as the diversity measure of OPT, Liu et al. 2021; docs/theory/networks.md §3).

For rows ``w_1, …, w_m ∈ R^d`` with unit directions ``ŵ_i = w_i/‖w_i‖``:

* ``s > 0`` (Riesz ``s``-energy): ``E_s = Σ_{i≠j} ‖ŵ_i − ŵ_j‖^{−s}``;
* ``s = 0`` (logarithmic energy): ``E_0 = Σ_{i≠j} log ‖ŵ_i − ŵ_j‖^{−1}``.

Both sums run over ordered pairs (each unordered pair counted twice, as in the paper's code). The
distances are computed from the differences ``ŵ_i − ŵ_j`` (``torch.cdist`` without its
matrix-product shortcut), not from the Gram identity ``2 − 2 ŵ_i·ŵ_j``, which cancels: with it a
duplicated neuron gave an energy of ``9e15`` instead of ``inf`` and two neurons ``1e-8`` apart
gave ``inf`` (issue 22, item 8). Coincident directions (unit rows equal up to ``8·eps`` of the
dtype, the rounding of the normalization) give ``inf``; the cost is
``O(m² d)``; every function broadcasts over leading batch dimensions. A rotation ``W ↦ W Rᵀ``
(``R ∈ O(d)``) keeps every pairwise angle and so both energies; this is what orthogonal
over-parameterized training preserves.

Use :func:`energy_recorder` as a ``recorders`` entry of :func:`overtensor.fit` (same convention as
:func:`overtensor.tensors.recorders.laziness_recorder`)::

    overtensor.fit(target, width=50, regime="orthogonal", recorders=[energy_recorder()])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from overtensor._checks import check_float


def pairwise_sq_distances(W: torch.Tensor) -> torch.Tensor:
    """``‖ŵ_i − ŵ_j‖²`` for the unit directions of the rows of ``W`` (``(..., m, d)`` →
    ``(..., m, m)``), from the differences of the unit rows (exactly 0 for coincident
    directions; ``O(m² d)``, module docstring)."""
    norms = W.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("W has a zero row: its direction (and the energy) is undefined")
    U = W / norms
    D = torch.cdist(U, U, compute_mode="donot_use_mm_for_euclid_dist")
    # Rows with one direction (w and 3w) may differ after normalization by a few rounding
    # units: that is coincidence, not a distance of 1e-16.
    return torch.where(D <= 8 * torch.finfo(D.dtype).eps, 0.0, D) ** 2


def hyperspherical_energy(W: torch.Tensor, s: float = 1.0) -> torch.Tensor:
    """Hyperspherical energy of the rows of ``W``.

    Parameters
    ----------
    W : Tensor ``(..., m, d)``
        Rows (neurons, or the rows of a CP decomposition); norms do not matter. ``m ≥ 2``.
    s : float, ≥ 0
        ``s > 0``: Riesz energy ``Σ_{i≠j} ‖ŵ_i − ŵ_j‖^{−s}``; ``s = 0``: logarithmic energy
        ``Σ_{i≠j} log ‖ŵ_i − ŵ_j‖^{−1}``.

    Returns
    -------
    Tensor ``(...)``
        The energy (``inf`` when two rows share a direction), in ``W``'s dtype.

    Raises
    ------
    ValueError
        ``s < 0``, ``W`` not at least 2-D with ``m ≥ 2``, or a zero row.
    """
    s = check_float("s", s, minimum=0.0)
    if not isinstance(W, torch.Tensor) or W.dim() < 2 or W.shape[-2] < 2:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"W must be a tensor of shape (..., m, d) with m >= 2, got {shape}")
    D2 = pairwise_sq_distances(W)
    m = W.shape[-2]
    off = ~torch.eye(m, dtype=torch.bool, device=W.device)
    D2 = D2.masked_fill(~off, 1.0)  # the diagonal is excluded below; 1 keeps log/pow finite
    terms = -0.5 * torch.log(D2) if s == 0 else D2 ** (-0.5 * s)
    return (terms * off).sum(dim=(-1, -2))


def energy_of_fit(result, s: float = 1.0) -> float:
    """Energy of the rows of a finished :class:`~overtensor.tensors.result.FitResult` (float64), from
    ``result.params["W"]`` (the over-parameterized rows, before extraction)."""
    return float(hyperspherical_energy(result.params["W"].detach().double(), s))


def energy_recorder(s: Sequence[float] = (1.0, 0.0)) -> Callable[[Any], dict[str, float]]:
    """A ``recorders`` entry adding ``energy_s{s}`` (e.g. ``energy_s1``, ``energy_s0``) to every
    history record, computed in float64 from the rows ``state.params["W"]`` the fit moves (for
    ``random-features``, which moves only coefficients, the frozen rows of
    ``state.extra["regime_cp"]``).

    Raises
    ------
    ValueError
        An ``s`` below 0 (before any fit starts).
    """
    values = [check_float("s", v, minimum=0.0) for v in s]

    def record(state) -> dict[str, float]:
        with torch.no_grad():
            if "W" in state.params:  # the rows the regime moves (θ_0 + Δ for lazy)
                V = state.params["W"]
            else:  # random-features moves only coefficients: its rows are the frozen ones
                regime_cp = (state.extra or {}).get("regime_cp")
                V = regime_cp()[1] if regime_cp is not None else state.cp()[1]
            V = V.detach().double()
            return {f"energy_s{v:g}": float(hyperspherical_energy(V, v)) for v in values}

    return record
