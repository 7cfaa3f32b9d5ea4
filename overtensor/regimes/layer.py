"""Training regimes as pure transformations of a model function (docs/theory/tensors.md §4,
docs/theory/networks.md §1).

A *model function* is a pure function of a parameter dict, ``model_fn(params, *inputs)``, in the
``torch.func`` style: ``params`` maps names to tensors, ``inputs`` are data (for a network, the
inputs ``X``; for a tensor model, nothing). A *regime* is a transformation

    regime(model_fn, params0, **options) -> (new_model_fn, new_params0)

whose result has the same calling convention and is trained over ``new_params0``. The same four
transformations serve every model of the library (tensor models of :mod:`overtensor.tensors.regimes`,
networks of :mod:`overtensor.networks.model`):

=================== ==================================================== ================================
regime              new model                                            trained parameters
=================== ==================================================== ================================
``full``            ``f(θ)``                                             ``θ`` (a copy of ``θ_0``)
``lazy``            ``f(θ_0) + Df(θ_0)[θ − θ_0]`` (the NTK linearization) ``θ`` starting at ``θ_0``
``random-features`` ``f(θ_0 with the named keys replaced)``              the named keys only (``"a", "c"``)
``alpha-scaled``    ``f(θ_0) + α (f(θ) − f(θ_0))``, loss ``/α²``          ``θ`` (Chizat, Oyallon, Bach 2019)
=================== ==================================================== ================================

``lazy`` is :func:`neural_tangents.linearize` written with :func:`torch.func.jvp` (one forward-mode
pass per call). Model outputs may be any pytree of tensors (a tensor model returns its CP
coefficients and rows ``(a, V)``). The affine maps of ``lazy`` and ``alpha-scaled`` act leaf by leaf
by default, which is right whenever the output is an element of a vector space (a network's
predictions); a model whose output is a *representation* of such an element (CP terms of a tensor)
passes ``combine`` to say how ``f(θ_0) + α (f(θ) − f(θ_0))`` is represented.

Other regimes (e.g. ``orthogonal``) join the registry with :func:`register_regime`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import jvp
from torch.utils._pytree import tree_map

Params = dict[str, torch.Tensor]
ModelFn = Callable[..., Any]
RegimeTransform = Callable[..., tuple[ModelFn, Params]]

#: Regime name -> transformation ``(model_fn, params0, **options) -> (new_model_fn, new_params0)``.
REGIME_TRANSFORMS: dict[str, RegimeTransform] = {}


#: Modules that register further regimes when imported (loaded on first lookup, when installed).
PLUGIN_MODULES = ("overtensor.regimes.orthogonal",)


def load_plugins() -> None:
    """Import the :data:`PLUGIN_MODULES` that exist, so that their regimes are registered."""
    import importlib
    import importlib.util

    for mod in PLUGIN_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


def register_regime(name: str) -> Callable[[RegimeTransform], RegimeTransform]:
    """Decorator adding a transformation to :data:`REGIME_TRANSFORMS` under ``name``."""

    def deco(fn: RegimeTransform) -> RegimeTransform:
        REGIME_TRANSFORMS[name] = fn
        return fn

    return deco


def get_regime(name: str) -> RegimeTransform:
    """The transformation registered as ``name`` (``ValueError`` naming the known ones otherwise)."""
    if name not in REGIME_TRANSFORMS:
        load_plugins()
    if name not in REGIME_TRANSFORMS:
        raise ValueError(f"regime must be one of {sorted(REGIME_TRANSFORMS)}, got {name!r}")
    return REGIME_TRANSFORMS[name]


def _detached(params: Params) -> Params:
    return {k: v.detach().clone() for k, v in params.items()}


def _check_params(params0: Any) -> None:
    if not isinstance(params0, dict) or not all(isinstance(v, torch.Tensor) for v in params0.values()):
        raise TypeError(f"params0 must be a dict of tensors, got {type(params0).__name__}")


@register_regime("full")
def full(model_fn: ModelFn, params0: Params) -> tuple[ModelFn, Params]:
    """NN / beyond lazy: the model itself, trained over a copy of ``params0``."""
    _check_params(params0)
    return model_fn, _detached(params0)


@register_regime("lazy")
def lazy(model_fn: ModelFn, params0: Params) -> tuple[ModelFn, Params]:
    """NT / lazy: the first-order Taylor expansion of ``model_fn`` around ``params0``.

    ``f_lin(θ, *x) = f(θ_0, *x) + Df(θ_0, *x)[θ − θ_0]``, computed by :func:`torch.func.jvp` (so the
    Jacobian is never formed), as in ``neural_tangents.linearize``. Trained over ``θ`` from ``θ_0``.
    The returned function has an attribute ``tangent(delta, *x) -> (f(θ_0), Df(θ_0)[delta])`` for
    callers that want the primal and the tangent separately.
    """
    _check_params(params0)
    p0 = _detached(params0)

    def tangent(delta: Params, *inputs):
        return jvp(lambda p: model_fn(p, *inputs), (p0,), (delta,))

    def linearized(params: Params, *inputs):
        delta = {k: params[k] - p0[k] for k in p0}
        f0, df = tangent(delta, *inputs)
        return tree_map(lambda a, b: a + b, f0, df)

    linearized.tangent = tangent  # type: ignore[attr-defined]
    linearized.params0 = p0  # type: ignore[attr-defined]
    return linearized, _detached(p0)


@register_regime("random-features")
def random_features(model_fn: ModelFn, params0: Params,
                    trained: Sequence[str] = ("a", "c")) -> tuple[ModelFn, Params]:
    """RF: only the keys in ``trained`` are trained; the others stay frozen at ``params0``.

    Keys of ``trained`` that ``params0`` lacks are ignored (a network without offset has no
    ``"c"``); at least one must be present.
    """
    _check_params(params0)
    keys = [k for k in trained if k in params0]
    if not keys:
        raise ValueError(f"trained must name at least one key of params0 {sorted(params0)}, "
                         f"got trained={tuple(trained)!r}")
    frozen = {k: v.detach().clone() for k, v in params0.items() if k not in keys}

    def rf(params: Params, *inputs):
        return model_fn({**frozen, **{k: params[k] for k in keys}}, *inputs)

    rf.frozen = frozen  # type: ignore[attr-defined]
    return rf, {k: params0[k].detach().clone() for k in keys}


def _affine(f0, f, alpha: float):
    return tree_map(lambda a, b: a + alpha * (b - a), f0, f)


@register_regime("alpha-scaled")
def alpha_scaled(model_fn: ModelFn, params0: Params, alpha: float = 1.0,
                 combine: Callable[[Any, Any, float], Any] | None = None) -> tuple[ModelFn, Params]:
    """Chizat–Bach scaling: ``f_α(θ) = f(θ_0) + α (f(θ) − f(θ_0))``, to be trained on loss ``/α²``.

    ``α → ∞`` tends to :func:`lazy`. The returned function carries ``loss_scale = 1/α²``.
    ``combine(f0, f, α)`` represents ``f0 + α (f − f0)`` for outputs that are not vectors (default:
    leaf by leaf). Source: Chizat, Oyallon, Bach, "On lazy training in differentiable programming"
    (NeurIPS 2019).
    """
    _check_params(params0)
    alpha = float(alpha)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    p0 = _detached(params0)
    comb = _affine if combine is None else combine

    def scaled(params: Params, *inputs):
        # No torch.no_grad here: p0 is detached already, and f(θ_0, x) must stay differentiable in
        # the inputs (e.g. for the Hessian in x of networks.quadratic_form).
        return comb(model_fn(p0, *inputs), model_fn(params, *inputs), alpha)

    scaled.loss_scale = 1.0 / alpha**2  # type: ignore[attr-defined]
    scaled.alpha = alpha  # type: ignore[attr-defined]
    return scaled, _detached(p0)


def apply_regime(name: str, model_fn: ModelFn, params0: Params, **options) -> tuple[ModelFn, Params]:
    """``REGIME_TRANSFORMS[name](model_fn, params0, **options)`` with a clear error for a bad name."""
    return get_regime(name)(model_fn, params0, **options)


def loss_scale(fn: ModelFn) -> float:
    """The factor the training loss of a transformed model is multiplied by (``1/α²`` or 1)."""
    return float(getattr(fn, "loss_scale", 1.0))
