"""Two-layer networks ``f(x) = c + s_N Σ_{i≤N} a_i σ(⟨w_i, x⟩)`` as pure functions of their parameters.

Ghorbani, Mei, Misiakiewicz, Montanari, "Limitations of Lazy Training of Two-layers Neural
Networks" (NeurIPS 2019); formulas in ``docs/theory/networks.md`` §1. The model is a ``torch.func``-style
function ``network(params, X)`` of a parameter dict ``{"W": (N, d), "a": (N,) or (), "c": ()}`` and
inputs ``X`` (``(n, d)``), so that every regime of :mod:`overtensor.regimes.layer` applies to it.

Activations (:data:`ACTIVATIONS`): ``quadratic`` (``t²``), ``hermite`` (the normalized
probabilists' Hermite polynomial ``h_l = He_l/√(l!)``, any degree ``l``, with
``E[h_l(u·x) h_l(v·x)] = (u·v)^l`` for unit ``u, v`` and ``x ~ N(0, I)``: the tensor dictionary of
docs/theory/tensors.md §3), ``relu``, ``tanh``. Parametrizations: per-neuron ``a_i`` or one shared scalar
``a``;
``s_N = 1/N`` (mean field, the authors' code), ``1/√N`` (NTK scaling) or ``1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from overtensor._checks import check_choice, check_int

ACTIVATIONS = ("quadratic", "hermite", "relu", "tanh")
SCALINGS = ("mean-field", "ntk", "none")

Params = dict[str, torch.Tensor]


def hermite(t: torch.Tensor, degree: int) -> torch.Tensor:
    """Normalized probabilists' Hermite polynomial ``h_l(t) = He_l(t)/√(l!)`` (same shape as ``t``).

    Three-term recurrence ``He_{k+1} = t He_k − k He_{k−1}`` (stable for the degrees used here).
    """
    prev, cur = torch.ones_like(t), t
    if degree == 0:
        return prev
    for k in range(1, degree):
        prev, cur = cur, t * cur - k * prev
    return cur / math.sqrt(math.factorial(degree))


def activation_fn(name: str, degree: int = 2) -> Callable[[torch.Tensor], torch.Tensor]:
    """``σ`` by name (``degree`` is the ``l`` of ``hermite``)."""
    check_choice("activation", name, ACTIVATIONS)
    if name == "quadratic":
        return torch.square
    if name == "hermite":
        degree = check_int("degree", degree, 0)
        return lambda t: hermite(t, degree)
    if name == "relu":
        return torch.relu
    return torch.tanh


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of a two-layer network.

    Attributes
    ----------
    width, dim : int
        ``N`` neurons on inputs of dimension ``d``.
    activation : {"quadratic", "hermite", "relu", "tanh"}
    degree : int
        ``l`` of the ``hermite`` activation (ignored otherwise).
    scaling : {"mean-field", "ntk", "none"}
        Output factor ``s_N``: ``1/N``, ``1/√N`` or 1.
    shared_a : bool
        One scalar output weight ``a`` for all neurons instead of per-neuron ``a_i``.
    offset : bool
        Whether the model has a trained offset ``c``.
    unit_rows : bool
        Use ``σ(⟨w̄_i, x⟩)`` with ``w̄ = w/‖w‖`` (the tensor dictionary's normalization).
    """

    width: int
    dim: int
    activation: str = "quadratic"
    degree: int = 2
    scaling: str = "mean-field"
    shared_a: bool = False
    offset: bool = True
    unit_rows: bool = False

    def __post_init__(self) -> None:
        # The checked values are stored: a NumPy integer becomes an int (summaries stay JSON).
        object.__setattr__(self, "width", check_int("width", self.width, 1))
        object.__setattr__(self, "dim", check_int("dim", self.dim, 1))
        check_choice("activation", self.activation, ACTIVATIONS)
        object.__setattr__(self, "degree", check_int("degree", self.degree, 0))
        check_choice("scaling", self.scaling, SCALINGS)

    @property
    def output_scale(self) -> float:
        return {"mean-field": 1.0 / self.width, "ntk": 1.0 / math.sqrt(self.width),
                "none": 1.0}[self.scaling]


def network_fn(spec: NetworkSpec) -> Callable[..., torch.Tensor]:
    """The pure model ``network(params, X) -> (n,)`` of ``spec``.

    ``params``: ``W`` ``(N, d)``, ``a`` ``(N,)`` (or ``()`` with ``shared_a``), ``c`` ``()`` when
    ``spec.offset``. ``X``: ``(n, d)``.
    """
    sigma = activation_fn(spec.activation, spec.degree)
    s = spec.output_scale

    def network(params: Params, X: torch.Tensor) -> torch.Tensor:
        W = params["W"]
        if spec.unit_rows:
            W = W / W.norm(dim=-1, keepdim=True)
        h = sigma(X @ W.transpose(-1, -2))  # (n, N)
        a = params["a"]
        out = s * (h * a).sum(-1) if a.dim() == 0 else s * (h @ a)
        return out + params["c"] if "c" in params else out

    return network


def init_network(spec: NetworkSpec, generator: torch.Generator, dtype: torch.dtype = torch.float64,
                 a_init: str = "ones") -> Params:
    """``W_0`` with i.i.d. ``N(0, 1/d)`` entries (the authors' code), ``a = 1`` (``a_init="ones"``) or
    i.i.d. ``±1`` (``"signs"``), ``c = 0``. Drawn on the CPU in float64, then cast."""
    check_choice("a_init", a_init, ("ones", "signs"))
    W = torch.randn(spec.width, spec.dim, generator=generator, dtype=torch.float64) / math.sqrt(spec.dim)
    shape = () if spec.shared_a else (spec.width,)
    if a_init == "ones":
        a = torch.ones(shape, dtype=torch.float64)
    else:
        a = torch.randint(0, 2, shape, generator=generator).to(torch.float64) * 2 - 1
    params = {"W": W, "a": a}
    if spec.offset:
        params["c"] = torch.zeros((), dtype=torch.float64)
    return {k: v.to(dtype) for k, v in params.items()}


def quadratic_form(model_fn: Callable[..., torch.Tensor], params: Params, dim: int,
                   dtype: torch.dtype = torch.float64,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, c)`` with ``model_fn(params, x) = xᵀMx + c`` for a model that is a quadratic form in ``x``.

    Any regime of a network with quadratic activation is one (docs/theory/networks.md §1). ``M`` is half the
    Hessian in ``x`` at 0 (:func:`torch.func.hessian`, ``d`` vectorized passes), ``c`` the value at
    0; nothing is sampled. A model that is not quadratic in ``x`` gives its Taylor coefficients at 0.
    """
    from torch.func import hessian

    def scalar(x: torch.Tensor) -> torch.Tensor:
        return model_fn(params, x.unsqueeze(0)).squeeze(0)

    x0 = torch.zeros(dim, dtype=dtype, device=device)
    with torch.no_grad():
        c = scalar(x0)
    M = hessian(scalar)(x0) / 2
    return 0.5 * (M + M.T).detach(), c.detach()
