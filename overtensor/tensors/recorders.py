"""Laziness diagnostics (docs/theory/tensors.md §6): how far training moved from the lazy (NTK) regime.

Two numbers per evaluation, for every regime:

* ``distance_from_init = ‖θ − θ_0‖ / ‖θ_0‖`` over every parameter the regime moves (the model's
  parameters; the coefficients for ``random-features``);
* ``kernel_change = ‖(K(θ) − K(θ_0)) Z‖_F / ‖K(θ_0) Z‖_F``: relative change of the tangent kernel
  ``K(θ) = DT(θ)ᵀ DT(θ)`` (the NTK of the model tensor in its parameters), measured on a fixed set
  of Gaussian probe directions ``Z`` (a Hutchinson-type estimate of the Frobenius ratio; exact in
  expectation of the squared norms). ``K(θ) z`` is computed matrix-free in ``O(m² d)``: ``DT(θ) z``
  is a tangent tensor ``X_V(U)`` (forward mode, :func:`overtensor.tensors.regimes.tangent_map`) and
  ``K(θ) z = ∇_z ½‖X_V(U(z))‖²``.

The ``lazy`` and ``random-features`` regimes train a model that is linear in its parameters, so
their kernel cannot change: ``kernel_change`` is 0 by construction there. Lazy training keeps both
numbers small (Chizat, Oyallon, Bach, NeurIPS 2019); the ``full`` regime from a small
initialization leaves the lazy regime, with both numbers ≫ 1.

Use :func:`laziness_recorder` as a ``recorders`` entry of :func:`overtensor.fit`::

    overtensor.fit(target, width=50, recorders=[laziness_recorder()])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.func import grad

from overtensor._checks import check_int, make_generator
from overtensor.tensors.lazy import tangent_inner
from overtensor.tensors.regimes import tangent_map

Params = dict[str, torch.Tensor]

#: Regimes whose trained model is linear in the trained parameters (constant kernel).
LINEAR_REGIMES = ("lazy", "random-features")


def distance_from_init(params: Params, params0: Params) -> float:
    """``‖θ − θ_0‖ / ‖θ_0‖`` over all entries of the dicts (float64)."""
    num = sum(float(((params[k].detach().double() - params0[k].double()) ** 2).sum()) for k in params0)
    den = sum(float((params0[k].double() ** 2).sum()) for k in params0)
    return math.sqrt(num / den) if den > 0 else math.inf


def kernel_matvec(model: str, params: Params, signs, order: int, z: Params) -> Params:
    """``K(θ) z = DT(θ)ᵀ DT(θ) z`` for a parameter-shaped direction ``z``."""
    jac = tangent_map(model, params, signs, order)

    def half_sq(zz: Params) -> torch.Tensor:
        V, U = jac(zz)
        return 0.5 * tangent_inner(V, U, U, order)

    return grad(half_sq)(z)


def kernel_change(model: str, params: Params, params0: Params, signs, order: int,
                  probes: list[Params], k0: list[Params] | None = None) -> float:
    """``‖(K(θ) − K(θ_0)) Z‖_F / ‖K(θ_0) Z‖_F`` on the probe directions ``Z``.

    ``k0`` (optional) holds the precomputed ``K(θ_0) z`` of every probe (see :func:`initial_kernel`).
    """
    params = {k: v.detach() for k, v in params.items()}
    if k0 is None:
        k0 = initial_kernel(model, params0, signs, order, probes)
    num = den = 0.0
    for z, k0z in zip(probes, k0, strict=True):
        k1 = kernel_matvec(model, params, signs, order, z)
        num += sum(float(((k1[k] - k0z[k]).double() ** 2).sum()) for k in z)
        den += sum(float((k0z[k].double() ** 2).sum()) for k in z)
    return math.sqrt(num / den) if den > 0 else math.inf


def initial_kernel(model: str, params0: Params, signs, order: int,
                   probes: list[Params]) -> list[Params]:
    """``K(θ_0) z`` for every probe (constant during training, so computed once)."""
    return [kernel_matvec(model, params0, signs, order, z) for z in probes]


def make_probes(params0: Params, probes: int, generator: torch.Generator) -> list[Params]:
    """Gaussian probe directions shaped like the parameters (drawn on the CPU in float64)."""
    return [
        {k: torch.randn(v.shape, generator=generator, dtype=torch.float64).to(v)
         for k, v in params0.items()}
        for _ in range(probes)
    ]


def laziness_recorder(probes: int = 4, random_state: Any = 0) -> Callable[[Any], dict[str, float]]:
    """A ``recorders`` entry for :func:`overtensor.fit` adding ``distance_from_init`` and
    ``kernel_change`` to every history record.

    Parameters
    ----------
    probes : int
        Number of Gaussian probe directions for the kernel change (drawn once, at the first call).
    random_state : int, torch.Generator or None
        Seeds the probes.
    """
    probes = check_int("probes", probes, 1)
    gen = make_generator(random_state)
    cache: dict[str, Any] = {}

    def record(state) -> dict[str, float]:
        out = {"distance_from_init": distance_from_init(state.params, state.params0)}
        regime = state.extra.get("regime", "full")
        if regime in LINEAR_REGIMES:
            out["kernel_change"] = 0.0
            return out
        if "Z" not in cache:
            cache["Z"] = make_probes(state.params0, probes, gen)
            cache["K0"] = initial_kernel(state.model, state.params0, state.signs,
                                         state.target.order, cache["Z"])
        out["kernel_change"] = kernel_change(state.model, state.params, state.params0, state.signs,
                                             state.target.order, cache["Z"], cache["K0"])
        return out

    return record


def final_laziness(result, regime: str = "full", probes: int = 4,
                   random_state: Any = 0) -> dict[str, float]:
    """Both diagnostics once, for the end of a finished fit (cheaper than a recorder when only
    the final values are wanted, as in ``overtensor fit``)."""
    out = {"distance_from_init": distance_from_init(result.params, result.params0)}
    if regime in LINEAR_REGIMES:
        out["kernel_change"] = 0.0
        return out
    Z = make_probes(result.params0, check_int("probes", probes, 1), make_generator(random_state))
    out["kernel_change"] = kernel_change(result.model, result.params, result.params0,
                                         result.signs, result.target.order, Z)
    return out
