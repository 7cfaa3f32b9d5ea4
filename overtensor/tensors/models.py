"""Over-parameterized models (parametrizations) of a symmetric tensor (docs/theory/tensors.md §3).

A model maps trainable parameters to a CP tensor ``Σ_i a_i v_i^{⊗l}`` given as coefficients
``a`` (``(..., m)``) and rows ``v_i`` (``(..., m, d)``, not necessarily unit). All functions are
pure and broadcast over leading batch dimensions.

============== ========================================= =========================================
name           tensor                                    parameters
============== ========================================= =========================================
plain          ``Σ_i s_i w_i^{⊗l}``                      ``W``; fixed signs ``s``
homogeneous    ``Σ_i s_i ‖w_i‖² w̄_i^{⊗l}``                ``W``; fixed signs ``s`` (the paper's variant)
coefficients   ``Σ_i c_i w̄_i^{⊗l}``                       ``W`` and free ``c``
============== ========================================= =========================================

``w̄ = w/‖w‖``. The homogeneous model is 2-homogeneous like a two-layer network with output
weight ``‖w_i‖²``; with weight decay ``μ`` its gradient flow splits into
``d‖w_i‖/dt = ‖w_i‖ (2 R(w̄_i,…,w̄_i) − μ)`` and ``dw̄_i/dt = l (I − w̄_i w̄_iᵀ) R(w̄_i,…,w̄_i,·)``
with ``R = T* − T(W)`` (Wang et al., NeurIPS 2020, reconstructed in docs/theory/tensors.md §3).
"""

from __future__ import annotations

import torch

MODELS = ("plain", "homogeneous", "coefficients")


def _unit_rows(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The clamp keeps directions defined for a row that is exactly zero (never the case after
    # a random init, but a user may hand one in); its gradient is then zero, not NaN.
    norms = W.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny ** 0.5)
    return W / norms, norms.squeeze(-1)


def model_cp(
    model: str, params: dict[str, torch.Tensor], signs: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients and rows ``(a, V)`` with ``T(params) = Σ_i a_i v_i^{⊗l}``.

    Parameters
    ----------
    model : {"plain", "homogeneous", "coefficients"}
    params : dict
        ``{"W": (..., m, d)}``, plus ``{"c": (..., m)}`` for ``coefficients``.
    signs : Tensor ``(..., m)`` of ±1, optional
        Fixed signs ``s_i`` for ``plain`` and ``homogeneous`` (default all +1).
    """
    W = params["W"]
    if model == "plain":
        a = signs if signs is not None else W.new_ones(W.shape[:-1])
        return a.expand(W.shape[:-1]), W
    Wbar, norms = _unit_rows(W)
    if model == "homogeneous":
        a = norms**2
        return (a * signs if signs is not None else a), Wbar
    if model == "coefficients":
        return params["c"], Wbar
    raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")


def init_params(
    model: str,
    width: int,
    dim: int,
    scale: float,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    batch_shape: tuple[int, ...] = (),
) -> dict[str, torch.Tensor]:
    """Rows of norm ``scale`` in independent uniformly random directions (drawn on the CPU, so the
    same seed gives the same start on every device)."""
    G = torch.randn(*batch_shape, width, dim, generator=generator, dtype=torch.float64)
    W = (scale * G / G.norm(dim=-1, keepdim=True)).to(dtype=dtype, device=device)
    params = {"W": W}
    if model == "coefficients":
        params["c"] = torch.full((*batch_shape, width), scale**2, dtype=dtype, device=device)
    return params


def balanced_signs(width: int, needed: bool, dtype, device, batch_shape=()) -> torch.Tensor:
    """``+1`` everywhere, or alternating ``±1`` when negative terms are needed (even order with
    negative target weights: a symmetric even-order term can only add a positive multiple)."""
    s = torch.ones(width, dtype=dtype, device=device)
    if needed:
        s[1::2] = -1.0
    return s.expand(*batch_shape, width).clone()
