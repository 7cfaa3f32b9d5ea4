"""The loss through the Gram identity (docs/theory/tensors.md §2), and the float64 relative error.

For a model tensor ``Σ_i a_i v_i^{⊗l}`` and a target ``T*`` scaled by ``σ``:

    ½‖T(W) − σT*‖² = ½ aᵀ (V Vᵀ)^{∘l} a − σ Σ_i a_i T*(v_i,…,v_i) + ½ σ² ‖T*‖²

which costs ``O(m² d + m · cost(values))`` and never forms a ``d^l`` array. Gradients come from
autograd (``∇_v T(v,…,v) = l T(v,…,v,·)``).

Precision: the three terms cancel. In float32 a relative error much below ``~3e-4`` cannot be
resolved, in float64 not below ``~1e-8`` (the floor is stated once, in :mod:`overtensor.precision`);
reported errors are therefore always computed in float64.
"""

from __future__ import annotations

import torch

from overtensor.tensors.scaling import ldexp
from overtensor.tensors.targets import Target


def cp_inner(a: torch.Tensor, V: torch.Tensor, b: torch.Tensor, U: torch.Tensor, order: int):
    """``⟨Σ_i a_i v_i^{⊗l}, Σ_j b_j u_j^{⊗l}⟩ = aᵀ (V Uᵀ)^{∘l} b``."""
    G = (V @ U.transpose(-1, -2)) ** order
    return (a.unsqueeze(-2) @ G @ b.unsqueeze(-1)).squeeze(-1).squeeze(-1)


def half_sq_distance(
    a: torch.Tensor,
    V: torch.Tensor,
    target: Target,
    scale: float | torch.Tensor = 1.0,
    target_sq_norm: torch.Tensor | None = None,
) -> torch.Tensor:
    """``½‖Σ_i a_i v_i^{⊗l} − scale·T*‖²`` by the Gram identity (shape: the batch shape)."""
    sq = target.sq_norm() if target_sq_norm is None else target_sq_norm
    model_sq = cp_inner(a, V, a, V, target.order)
    cross = (a * target.values(V)).sum(-1)
    return 0.5 * model_sq - scale * cross + 0.5 * scale**2 * sq


@torch.no_grad()
def relative_error(a: torch.Tensor, V: torch.Tensor, target: Target,
                   scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``‖Σ_i a_i v_i^{⊗l} − scale·T*‖ / ‖scale·T*‖`` computed in float64.

    Scale-free: the target's float64 twin is taken as ``T*/2^k`` (:meth:`Target.normalized`) and
    the coefficients divided by the same ``2^k`` (exact), so that no squared norm overflows or
    underflows for any target representable in float64 (issue 10, item 4).
    """
    t64, k = target.float64().normalized()
    a64, V64 = a.detach().to(torch.float64), V.detach().to(torch.float64)
    if k:
        a64 = ldexp(a64, -k)
    scale = torch.as_tensor(scale, dtype=torch.float64, device=a64.device)
    sq = t64.sq_norm()
    d2 = 2 * half_sq_distance(a64, V64, t64, scale, sq)
    return d2.clamp_min(0).sqrt() / (scale.abs() * sq.sqrt())
