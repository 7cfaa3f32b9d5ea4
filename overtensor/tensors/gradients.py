"""Closed-form loss and gradient of the Gram-identity loss, for all models, without autograd.

The single-run loop (:mod:`overtensor.tensors.gradient`) differentiates the loss with autograd.
The batched engine (:mod:`overtensor.tensors.batched`) advances thousands of runs at once, where the
memory traffic of autograd's intermediates dominates; it uses the formulas below, which need two
batched matrix products of size ``m² d`` and one ``target.contract`` per step.

For a model tensor ``Σ_i a_i v_i^{⊗l}`` (rows ``v_i`` not necessarily unit) and the loss
``L = ½‖Σ_i a_i v_i^{⊗l} − σT*‖² + (μ/2)‖W‖²`` (docs/theory/tensors.md §2), write ``G = V Vᵀ`` and

    r_i = Σ_j a_j G_ij^{l−1} v_j − σ T*(v_i,…,v_i,·)     (the residual contracted l−1 times)
    g_i = v_i · r_i = Σ_j a_j G_ij^l − σ T*(v_i,…,v_i)

Then ``∂L/∂a_i = g_i`` and ``∂L/∂v_i = l a_i r_i``. Through each model (``n_i = ‖w_i‖``,
``w̄_i = w_i/n_i``):

* ``plain`` (``a = s``, ``v = w``):          ``∇w_i = l s_i r_i + μ w_i``;
* ``homogeneous`` (``a = s n²``, ``v = w̄``): ``∇w_i = s_i ((2 − l) g_i w_i + l n_i r_i) + μ w_i``
  (the tangential projection of ``∂L/∂v_i`` and the radial term combine because ``v_i·r_i = g_i``);
* ``coefficients`` (``a = c``, ``v = w̄``):   ``∇c_i = g_i``, ``∇w_i = l c_i (r_i − g_i w̄_i)/n_i + μ w_i``.

The loss itself is ``½ Σ_i a_i (g_i − σ t_i) + ½σ²‖T*‖² + (μ/2)‖W‖²`` with ``t_i = T*(v_i,…,v_i)``.
All functions broadcast over leading batch dimensions; ``scale``, ``target_sq_norm`` and
``weight_decay`` may be tensors of the batch shape. The code is written for few passes over memory
(products instead of ``pow``, in-place updates of fresh temporaries), which bound its speed at
large ``B``.
"""

from __future__ import annotations

import torch

from overtensor.tensors.models import get_model, model_cp
from overtensor.tensors.targets import Target


def _entrywise_power(G: torch.Tensor, k: int) -> torch.Tensor:
    # Products instead of pow for the common small exponents: one pass over G each.
    if k == 1:
        return G
    if k == 2:
        return G * G
    return G**k


def residual_contraction(
    a: torch.Tensor, V: torch.Tensor, target: Target, scale=1.0, with_values: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(r, g, t)``: ``r_i = (T(W) − σT*)(v_i,…,v_i,·)``, ``g_i = v_i·r_i``, ``t_i = σT*(v_i,…,v_i)``.

    ``O(m² d)`` for the model part plus one ``target.contract(V)``; ``t`` comes from the same
    contraction (``T*(v,…,v) = v·T*(v,…,v,·)``); it is ``None`` unless ``with_values``. ``scale`` is
    a number or a batch-shaped tensor (``1`` skips a pass: pre-scale the target instead).
    """
    l = target.order
    P = _entrywise_power(V @ V.transpose(-1, -2), l - 1)
    C = target.contract(V)
    if not (isinstance(scale, int | float) and scale == 1):
        C = C * torch.as_tensor(scale, dtype=V.dtype, device=V.device).unsqueeze(-1).unsqueeze(-1)
    r = (P @ (a.unsqueeze(-1) * V)).sub_(C)
    g = torch.linalg.vecdot(r, V)
    t = torch.linalg.vecdot(C, V) if with_values else None  # σ T*(v_i, …, v_i)
    return r, g, t


def loss_and_grad(
    model: str,
    params: dict[str, torch.Tensor],
    signs: torch.Tensor | None,
    target: Target,
    scale=1.0,
    target_sq_norm: torch.Tensor | None = None,
    weight_decay=0.0,
    with_loss: bool = True,
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Loss (batch shape; ``None`` unless ``with_loss``) and gradients (same keys and shapes as
    ``params``), in closed form.

    Agrees with autograd through :func:`overtensor.tensors.loss.half_sq_distance` plus
    ``(μ/2)‖W‖²`` up to rounding (checked in the tests for every model).
    """
    W = params["W"]
    l = target.order
    a, V = model_cp(model, params, signs)
    r, g, t = residual_contraction(a, V, target, scale, with_values=with_loss)
    mu = torch.as_tensor(weight_decay, dtype=W.dtype, device=W.device)
    loss = None
    if with_loss:
        sq = target.sq_norm() if target_sq_norm is None else target_sq_norm
        sigma = torch.as_tensor(scale, dtype=W.dtype, device=W.device)
        loss = (0.5 * (a * (g - t)).sum(-1) + 0.5 * sigma**2 * sq
                + 0.5 * mu * torch.linalg.vecdot(W, W).sum(-1))
    mu_rows = mu.unsqueeze(-1) if mu.ndim else mu
    grads = get_model(model).pullback(params, a, V, r, g, signs, l, mu_rows)
    return loss, grads
