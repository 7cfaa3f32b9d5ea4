"""Per-component fitted mass: how much of each true component the model has fitted, over time.

For a target ``T* = Σ_j λ_j u_j^{⊗l}`` (unit ``u_j``) and a model tensor ``Σ_k a_k v_k^{⊗l}``
(for the ``homogeneous`` model ``a_k = s_k ‖w_k‖²`` and ``v_k = w̄_k``), assign every model row to
the true component with the largest ``|cos(v_k, u_j)|`` and define the fitted mass of ``u_j``

    M_j = Σ_{k assigned to j} a_k (v_k·u_j)^l / λ_j,

which is 0 at a small initialization and 1 once the component is fitted exactly (for an orthogonal
target). The staircase of Ge, Ren, Wang, Zhou (*Understanding Deflation Process in
Over-parametrized Tensor Decomposition*, NeurIPS 2021) is the picture of ``M_j(t)``: the
components jump from 0 to 1 one at a time, largest ``λ_j`` first.

:class:`MassRecorder` records ``M`` at every evaluation of a fit (``fit(..., recorders=[...])``);
:func:`crossing_steps` and :func:`fit_order` read the fit times and their order from the history.
Inside the gradient loop the target is normalized to unit norm (``FitState.scale``), so the
weights are rescaled the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch

from overtensor.tensors.targets import Target


def assign_components(V: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Index of the true component (row of ``U``) with the largest ``|cos|`` for each row of ``V``."""
    Vn = V / V.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(V.dtype).tiny)
    Un = U / U.norm(dim=-1, keepdim=True)
    return (Vn @ Un.T).abs().argmax(dim=-1)


def component_mass(a: torch.Tensor, V: torch.Tensor, weights: torch.Tensor, U: torch.Tensor,
                   order: int) -> torch.Tensor:
    """``M_j = Σ_{k assigned to j} a_k (v_k·u_j)^l / λ_j`` for every true component ``j``.

    Parameters
    ----------
    a : Tensor ``(m,)``
        Model coefficients (``s_k ‖w_k‖²`` for the homogeneous model, signs for ``plain``).
    V : Tensor ``(m, d)``
        Model rows (any norm: ``a_k (v_k·u_j)^l`` already carries ``‖v_k‖^l``).
    weights : Tensor ``(r,)``
        ``λ_j``, in the same scale as the model.
    U : Tensor ``(r, d)``
        True components (normalized here).
    order : int

    Returns
    -------
    Tensor ``(r,)`` in float64.
    """
    a, V = a.detach().to(torch.float64), V.detach().to(torch.float64)
    weights, U = weights.detach().to(torch.float64), U.detach().to(torch.float64)
    U = U / U.norm(dim=-1, keepdim=True)
    owner = assign_components(V, U)
    proj = (V @ U.T).gather(-1, owner.unsqueeze(-1)).squeeze(-1)
    contrib = a * proj**order
    mass = torch.zeros(U.shape[0], dtype=torch.float64, device=V.device).index_add_(0, owner, contrib)
    return mass / weights


class MassRecorder:
    """Recorder for ``fit(..., recorders=[MassRecorder(target)])`` adding ``"mass"`` (a list, one
    entry per true component, in the order of ``target.truth``) to every history record.

    Parameters
    ----------
    target : Target
        A target with a known ``truth`` (planted components).
    """

    def __init__(self, target: Target) -> None:
        if target.truth is None:
            raise ValueError("MassRecorder needs a target with known components (target.truth is None)")
        self.order = target.order
        self.weights = target.truth.weights.detach().to("cpu", torch.float64)
        self.U = target.truth.components.detach().to("cpu", torch.float64)
        self._norm = target.norm()
        self._seen: tuple[Any, float] | None = None

    def __call__(self, state: Any) -> dict[str, Any]:
        a, V = state.cp()
        # The loop works on its own copy of the target, rescaled by an exact power of two
        # (Target.normalized); state.scale is relative to that copy, so convert once.
        if self._seen is None or self._seen[0] is not state.target:
            self._seen = (state.target, state.target.norm() / self._norm)
        scale = float(state.scale) * self._seen[1]
        mass = component_mass(a.cpu(), V.cpu(), self.weights * scale, self.U, self.order)
        return {"mass": mass.tolist()}


def mass_matrix(history: Sequence[dict[str, Any]]) -> tuple[list[int], list[list[float]]]:
    """Steps and masses (``n_records × r``) from a history with ``"mass"`` records."""
    rows = [(h["step"], h["mass"]) for h in history if "mass" in h]
    return [s for s, _ in rows], [m for _, m in rows]


def crossing_steps(history: Sequence[dict[str, Any]], level: float = 0.5) -> list[float]:
    """For every true component, the first recorded step at which its mass is ``≥ level``.

    ``nan`` for a component that never reaches ``level``. The fit time of the staircase is the
    crossing of ``level = 0.5``; ``0.99`` marks the end of the jump.
    """
    steps, masses = mass_matrix(history)
    if not masses:
        raise ValueError("history has no 'mass' records: fit with recorders=[MassRecorder(target)]")
    out = []
    for j in range(len(masses[0])):
        hit = next((s for s, m in zip(steps, masses, strict=True) if m[j] >= level), math.nan)
        out.append(float(hit))
    return out


def fit_order(times: Sequence[float]) -> list[int]:
    """Components in the order they were fitted (by crossing time); unfitted ones (``nan``) left out."""
    fitted = [(t, j) for j, t in enumerate(times) if not math.isnan(t)]
    return [j for _, j in sorted(fitted)]


def is_strictly_ordered(times: Sequence[float]) -> bool:
    """Whether every component was fitted and strictly after the previous one (``t_1 < t_2 < …``).

    With the truth sorted by decreasing weight, this is "fitted in strictly decreasing order of
    weight".
    """
    if any(math.isnan(t) for t in times):
        return False
    return all(t0 < t1 for t0, t1 in itertools.pairwise(times))


def time_ratios(times: Sequence[float]) -> list[float]:
    """Ratios ``t_{j+1} / t_j`` of consecutive fit times (``nan`` where undefined)."""
    return [t1 / t0 if t0 > 0 and not (math.isnan(t0) or math.isnan(t1)) else math.nan
            for t0, t1 in itertools.pairwise(times)]
