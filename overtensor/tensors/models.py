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

from collections.abc import Callable
from typing import ClassVar

import torch

Params = dict[str, torch.Tensor]


def _unit_rows(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The clamp keeps directions defined for a row that is exactly zero (never the case after
    # a random init, but a user may hand one in); its gradient is then zero, not NaN.
    norms = W.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny ** 0.5)
    return W / norms, norms.squeeze(-1)


def _signs(signs: torch.Tensor | None, W: torch.Tensor) -> torch.Tensor:
    return (signs if signs is not None else W.new_ones(W.shape[:-1])).unsqueeze(-1)


class TensorModel:
    """A parametrization ``θ ↦ (a, V)`` of ``Σ_i a_i v_i^{⊗l}``: the tensor model as a function of
    its parameters, like a network's ``model_fn(params)``, with its derivatives in closed form.

    :meth:`cp` is the model function (autograd differentiates it: the reference, and what any
    regime of :mod:`overtensor.regimes.layer` transforms). :meth:`pullback` (the vector-Jacobian
    product) and :meth:`tangent_map` (the Jacobian at ``θ_0`` and its adjoint) are the closed forms
    that the batched engine and the regimes' fast steps use instead of autograd
    (:mod:`overtensor.tensors.gradients`, :mod:`overtensor.tensors.regime_gradients`); the tests
    check each against autograd. Shapes: ``W`` ``(..., m, d)``, ``c`` and ``signs`` ``(..., m)``.
    """

    name: ClassVar[str]
    #: Whether the terms carry fixed signs ``s_i`` (``plain``, ``homogeneous``) rather than free
    #: coefficients: only then can a row be re-oriented or two aligned rows be merged into one.
    signed: ClassVar[bool] = True

    def cp(self, params: Params, signs: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients ``a`` ``(..., m)`` and rows ``V`` ``(..., m, d)``."""
        raise NotImplementedError

    def weight_power(self, order: int) -> int:
        """``k`` with ``|a_i| = ‖w_i‖^k`` for the signed models (a term's weight from its row)."""
        raise NotImplementedError

    def init(self, width: int, dim: int, scale: float, generator: torch.Generator,
             dtype: torch.dtype, device: torch.device, batch_shape: tuple[int, ...] = ()) -> Params:
        """Rows of norm ``scale`` in independent uniformly random directions (drawn on the CPU, so
        the same seed gives the same start on every device)."""
        G = torch.randn(*batch_shape, width, dim, generator=generator, dtype=torch.float64)
        W = (scale * G / G.norm(dim=-1, keepdim=True)).to(dtype=dtype, device=device)
        return {"W": W}

    def pullback(self, params: Params, a: torch.Tensor, V: torch.Tensor, r: torch.Tensor,
                 g: torch.Tensor, signs: torch.Tensor | None, order: int,
                 mu_rows: torch.Tensor) -> Params:
        """``∇_θ L`` from ``∂L/∂a_i = g_i`` and ``∂L/∂v_i = l a_i r_i`` (plus the weight decay
        ``μ W``; docs/theory/tensors.md §2, :mod:`overtensor.tensors.gradients`). ``r`` may be
        overwritten."""
        raise NotImplementedError

    def tangent_map(self, params0: Params, signs: torch.Tensor | None, order: int
                    ) -> tuple[Callable[[Params], torch.Tensor], Callable[[torch.Tensor], Params]]:
        """The per-row linear maps ``Δ ↦ MΔ`` and ``g ↦ Mᵀg`` of the linearization at ``θ_0``
        (``MΔ = U(Δ) − U(0)`` with ``U = diag(a) V``; :mod:`overtensor.tensors.regime_gradients`)."""
        raise NotImplementedError


class Plain(TensorModel):
    """``Σ_i s_i w_i^{⊗l}``: rows ``W``, fixed signs ``s``."""

    name = "plain"

    def cp(self, params, signs=None):
        W = params["W"]
        a = signs if signs is not None else W.new_ones(W.shape[:-1])
        return a.expand(W.shape[:-1]), W

    def weight_power(self, order):
        return order

    def pullback(self, params, a, V, r, g, signs, order, mu_rows):
        W = params["W"]
        return {"W": torch.addcmul(mu_rows.unsqueeze(-1) * W, (order * a).unsqueeze(-1), r)}

    def tangent_map(self, params0, signs, order):
        ls = order * _signs(signs, params0["W"])

        def forward(delta: Params) -> torch.Tensor:
            return ls * delta["W"]

        def adjoint(g: torch.Tensor) -> Params:
            return {"W": ls * g}

        return forward, adjoint


class Homogeneous(TensorModel):
    """``Σ_i s_i ‖w_i‖² w̄_i^{⊗l}`` (the paper's variant, 2-homogeneous like a two-layer network)."""

    name = "homogeneous"

    def cp(self, params, signs=None):
        Wbar, norms = _unit_rows(params["W"])
        a = norms**2
        return (a * signs if signs is not None else a), Wbar

    def weight_power(self, order):
        return 2

    def pullback(self, params, a, V, r, g, signs, order, mu_rows):
        W = params["W"]
        s = signs if signs is not None else torch.ones_like(a)
        n = (a * s).sqrt()  # a = s‖w‖²: the row norms without another pass over W
        coef_w = s * (2 - order) * g + mu_rows
        return {"W": torch.addcmul(coef_w.unsqueeze(-1) * W, (order * s * n).unsqueeze(-1), r)}

    def tangent_map(self, params0, signs, order):
        W0 = params0["W"]
        Wbar, n = _unit_rows(W0)
        sn = _signs(signs, W0) * n.unsqueeze(-1)

        def sym(x: torch.Tensor) -> torch.Tensor:
            radial = torch.linalg.vecdot(Wbar, x).unsqueeze(-1)
            return sn * (order * x + (2 - order) * radial * Wbar)

        return (lambda delta: sym(delta["W"])), (lambda g: {"W": sym(g)})


class Coefficients(TensorModel):
    """``Σ_i c_i w̄_i^{⊗l}``: unit directions and free coefficients ``c``."""

    name = "coefficients"
    signed = False

    def cp(self, params, signs=None):
        Wbar, _ = _unit_rows(params["W"])
        return params["c"], Wbar

    def init(self, width, dim, scale, generator, dtype, device, batch_shape=()):
        params = super().init(width, dim, scale, generator, dtype, device, batch_shape)
        params["c"] = torch.full((*batch_shape, width), scale**2, dtype=dtype, device=device)
        return params

    def pullback(self, params, a, V, r, g, signs, order, mu_rows):
        W = params["W"]
        n = W.norm(dim=-1).clamp_min(torch.finfo(W.dtype).tiny ** 0.5)
        coef = (order * a / n).unsqueeze(-1)
        return {"W": torch.addcmul(mu_rows.unsqueeze(-1) * W, coef,
                                   r.addcmul_(g.unsqueeze(-1), V, value=-1)),
                "c": g}

    def tangent_map(self, params0, signs, order):
        Wbar, n = _unit_rows(params0["W"])
        lc = order * params0["c"].unsqueeze(-1) / n.unsqueeze(-1)

        def forward(delta: Params) -> torch.Tensor:
            x = delta["W"]
            tang = x - torch.linalg.vecdot(Wbar, x).unsqueeze(-1) * Wbar
            return delta["c"].unsqueeze(-1) * Wbar + lc * tang

        def adjoint(g: torch.Tensor) -> Params:
            radial = torch.linalg.vecdot(Wbar, g)
            return {"W": lc * (g - radial.unsqueeze(-1) * Wbar), "c": radial}

        return forward, adjoint


#: The tensor models by name (docs/theory/tensors.md §3).
TENSOR_MODELS: dict[str, TensorModel] = {m.name: m for m in (Plain(), Homogeneous(), Coefficients())}
MODELS = tuple(TENSOR_MODELS)


def get_model(model: str | TensorModel) -> TensorModel:
    """The :class:`TensorModel` named ``model`` (or ``model`` itself); ``ValueError`` naming the
    known ones otherwise."""
    if isinstance(model, TensorModel):
        return model
    found = TENSOR_MODELS.get(model) if isinstance(model, str) else None
    if found is None:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    return found


def model_cp(
    model: str, params: Params, signs: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients and rows ``(a, V)`` with ``T(params) = Σ_i a_i v_i^{⊗l}`` (:meth:`TensorModel.cp`).

    Parameters
    ----------
    model : {"plain", "homogeneous", "coefficients"}
    params : dict
        ``{"W": (..., m, d)}``, plus ``{"c": (..., m)}`` for ``coefficients``.
    signs : Tensor ``(..., m)`` of ±1, optional
        Fixed signs ``s_i`` for ``plain`` and ``homogeneous`` (default all +1).

    Raises
    ------
    ValueError
        An unknown model.
    """
    return get_model(model).cp(params, signs)


def init_params(
    model: str,
    width: int,
    dim: int,
    scale: float,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    batch_shape: tuple[int, ...] = (),
) -> Params:
    """The model's initial parameters (:meth:`TensorModel.init`)."""
    return get_model(model).init(width, dim, scale, generator, dtype, device, batch_shape)


def balanced_signs(width: int, needed: bool, dtype, device, batch_shape=()) -> torch.Tensor:
    """``+1`` everywhere, or alternating ``±1`` when negative terms are needed (even order with
    negative target weights: a symmetric even-order term can only add a positive multiple)."""
    s = torch.ones(width, dtype=dtype, device=device)
    if needed:
        s[1::2] = -1.0
    return s.expand(*batch_shape, width).clone()
