"""Optimizers as plug-ins: one registry from a name (or a ``torch.optim`` object) to an optimizer.

Every gradient loop of the library (tensor fits, regimes, regression, networks) builds its optimizer
with :func:`make_optimizer`, so the same spellings work everywhere:

* a registered **name** (:data:`OPTIMIZERS`): ``"gd"``, ``"sgd"``, ``"momentum"``, ``"nesterov"``,
  ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"`` (the ``torch.optim`` classes, not
  re-implemented), ``"span-preserving"`` (:class:`SpanPreservingPreconditioner`) and
  ``"diagonal"`` (:class:`DiagonalPreconditioner`, a fixed ``D``);
* a ``torch.optim.Optimizer`` **subclass**, called as ``cls(params, lr=lr, **options)``;
* a ``torch.optim.Optimizer`` **instance**, used as a template: its class and its hyper-parameters
  (``instance.defaults``, its own ``lr`` included) are applied to the parameters of the new fit;
* any other **callable** ``params -> optimizer`` (e.g. ``functools.partial(torch.optim.Adam, lr=1e-3)``).

The span-preserving class is the family ``D_k = I + Xᵀ S_k X`` (``S_k ⪰ 0``) of Shah, Basu,
Kyrillidis, Sanghavi (see ``docs/theory/networks.md`` §2): for ``f(w) = ½‖Xw − y‖²``, ``(I − P) D_k Xᵀ = 0``
with ``P = X⁺X``, so an iterate started in the row space of ``X`` never leaves it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from overtensor._checks import ArgumentTypeError

#: Names that need an option only a regression problem gives (``optimizer_options`` of
#: :func:`overtensor.regression.core.fit_regression`): option -> what it is.
REQUIRED_OPTIONS: dict[str, tuple[str, str]] = {
    "span-preserving": ("design", "a design matrix X (D_k = I + Xᵀ S_k X)"),
    "diagonal": ("diag", "a fixed diagonal preconditioner D (w ← w − η D g)"),
}
#: The names of :data:`REQUIRED_OPTIONS`: regression problems only.
DESIGN_OPTIMIZERS = tuple(REQUIRED_OPTIONS)


def _sgd(params, lr, **kw):
    return torch.optim.SGD(params, lr=lr, **kw)


def _momentum(params, lr, **kw):
    kw.setdefault("momentum", 0.9)
    return torch.optim.SGD(params, lr=lr, **kw)


def _nesterov(params, lr, **kw):
    kw.setdefault("momentum", 0.9)
    return torch.optim.SGD(params, lr=lr, nesterov=True, **kw)


def _adagrad(params, lr, **kw):
    return torch.optim.Adagrad(params, lr=lr, **kw)


def _rmsprop(params, lr, **kw):
    return torch.optim.RMSprop(params, lr=lr, **kw)


def _adam(params, lr, **kw):
    return torch.optim.Adam(params, lr=lr, **kw)


def _adamw(params, lr, **kw):
    return torch.optim.AdamW(params, lr=lr, **kw)


def _span(params, lr, **kw):
    return SpanPreservingPreconditioner(params, lr=lr, **kw)


def _diagonal(params, lr, **kw):
    return DiagonalPreconditioner(params, lr=lr, **kw)


#: name -> ``factory(params, lr, **options)``.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "gd": _sgd,
    "sgd": _sgd,
    "momentum": _momentum,
    "nesterov": _nesterov,
    "adagrad": _adagrad,
    "rmsprop": _rmsprop,
    "adam": _adam,
    "adamw": _adamw,
    "span-preserving": _span,
    "diagonal": _diagonal,
}


def check_optimizer(optimizer: Any) -> Any:
    """Validate an optimizer spelling without building it (for API boundaries).

    Raises
    ------
    ValueError
        ``optimizer`` is a string that is not a registered name.
    TypeError
        ``optimizer`` is neither None, a name, an optimizer class or instance, nor a callable.
    """
    if optimizer is None or isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer):
        return optimizer
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, a torch.optim.Optimizer "
                             f"class or instance, or a callable params -> optimizer; got {optimizer!r}")
        return optimizer
    raise ArgumentTypeError(f"optimizer must be a name, a torch.optim.Optimizer class or instance, or a "
                    f"callable params -> optimizer; got {optimizer!r} ({type(optimizer).__name__})")


def make_optimizer(
    optimizer: Any,
    params: Iterable[torch.Tensor],
    lr: float,
    **options: Any,
) -> torch.optim.Optimizer:
    """Build the optimizer of ``params`` from any accepted spelling (see the module docstring).

    Parameters
    ----------
    optimizer : None, str, torch.optim.Optimizer class or instance, or callable
        ``None`` means ``"gd"`` (``torch.optim.SGD`` without momentum).
    params : iterable of tensors
        The trained parameters.
    lr : float
        Step size for names and classes (an instance keeps its own, a callable sets its own).
    **options
        Extra keyword arguments for a name or a class (e.g. ``momentum=0.5``, ``betas=(0.9, 0.99)``;
        ``design=X, targets=y`` for ``"span-preserving"``).

    Raises
    ------
    ValueError, TypeError
        See :func:`check_optimizer`; ``"span-preserving"`` without ``design``.
    """
    check_optimizer(optimizer)
    params = list(params)
    if optimizer is None:
        optimizer = "gd"
    if isinstance(optimizer, str):
        needed = REQUIRED_OPTIONS.get(optimizer)
        if needed is not None and options.get(needed[0]) is None:
            raise ValueError(f"optimizer={optimizer!r} needs {needed[1]}: use it on a regression problem "
                             "(overtensor.regression.core.fit_regression)")
        return OPTIMIZERS[optimizer](params, lr, **options)
    if isinstance(optimizer, torch.optim.Optimizer):
        # A template: same class, same hyper-parameters, on our parameters.
        return type(optimizer)(params, **{**optimizer.defaults, **options})
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr, **options)
    built = optimizer(params)
    # A factory that returns nothing (a forgotten `return`) would fail later as a raw
    # AttributeError inside the training loop: name it here.
    if not all(callable(getattr(built, a, None)) for a in ("step", "zero_grad")):
        raise TypeError(f"optimizer factory {optimizer_name(optimizer)!r} returned "
                        f"{type(built).__name__}, not an optimizer: it must return a "
                        "torch.optim.Optimizer of the parameters it is given")
    return built


def optimizer_name(optimizer: Any) -> str:
    """A short label: the registered name, or the optimizer class's name."""
    if optimizer is None:
        return "gd"
    if isinstance(optimizer, str):
        return optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        return type(optimizer).__name__
    if isinstance(optimizer, type):
        return optimizer.__name__
    return getattr(optimizer, "__name__", type(optimizer).__name__)


def residual_weights(residual: torch.Tensor) -> torch.Tensor:
    """``diag(S_k) = |r_k| / n``: the residual-weighted choice of ``S_k`` (``docs/theory/networks.md`` §2)."""
    return residual.abs() / residual.shape[0]


class SpanPreservingPreconditioner(torch.optim.Optimizer):
    """Preconditioned gradient step ``w ← w − η D_k g`` with ``D_k = I + Xᵀ S_k X``, ``S_k ⪰ 0``.

    For least squares ``f(w) = ½‖Xw − y‖²`` the gradient ``g = Xᵀ r`` lies in the row space of
    ``X`` and so does ``D_k g``: the iterates from ``w_0 ∈ row(X)`` stay there and an interpolating
    limit is the minimum-norm interpolant ``X⁺y`` (Shah, Basu, Kyrillidis, Sanghavi; the
    span-preserving class of ``docs/theory/networks.md`` §2). ``D_k`` is applied matrix-free: ``Xᵀ(S_k (X
    g))``.

    Parameters
    ----------
    params : iterable with exactly one tensor ``w`` of shape ``(p,)``
    lr : float
        ``η > 0``.
    design : tensor (n, p)
        ``X``.
    targets : tensor (n,), optional
        ``y``; needed when ``weights`` uses the residual ``r_k = X w_k − y``.
    weights : "residual", "normalized-residual", "identity", tensor (n,) or (n, n), or callable
        ``S_k``: ``"residual"`` = ``diag(|r_k|)/n`` (default, ``docs/theory/networks.md`` §2);
        ``"normalized-residual"`` = ``diag(|r_k|/‖r_k‖_∞)/‖X‖₂²``, so that ``Xᵀ S_k X ⪯ I`` and
        ``D_k ⪯ 2I`` (a step of ``1/‖X‖₂²`` stays stable however large the residual); ``"identity"``
        = ``I/n``; a fixed vector (diagonal, entries ``≥ 0``) or PSD matrix; or a function of the
        residual returning a non-negative vector or a PSD matrix.

    The matrix ``S_k`` used at the last step is kept in ``state[w]["S"]`` (for diagnostics).

    Raises
    ------
    ValueError
        Shapes that do not match, ``lr <= 0``, a negative diagonal weight, a residual weighting
        without ``targets``.
    """

    def __init__(self, params, lr: float, design: torch.Tensor, targets: torch.Tensor | None = None,
                 weights: Any = "residual") -> None:
        if not (isinstance(lr, int | float) and lr > 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if not isinstance(design, torch.Tensor) or design.ndim != 2:
            raise ValueError(f"design must be a 2-d tensor (n, p), got {getattr(design, 'shape', design)!r}")
        if isinstance(weights, str) and weights not in ("residual", "normalized-residual", "identity"):
            raise ValueError(f"weights must be 'residual', 'normalized-residual', 'identity', a tensor or "
                             f"a callable, got {weights!r}")
        needs_y = (isinstance(weights, str) and weights != "identity") or \
            (callable(weights) and not isinstance(weights, torch.Tensor))
        if needs_y and targets is None:
            raise ValueError("targets (y) is required when weights depend on the residual")
        if isinstance(weights, torch.Tensor) and weights.ndim == 1 and bool((weights < 0).any()):
            raise ValueError("weights must be non-negative (S_k must be positive semi-definite)")
        super().__init__(params, dict(lr=lr))
        plist = [p for g in self.param_groups for p in g["params"]]
        if len(plist) != 1 or plist[0].ndim != 1 or plist[0].shape[0] != design.shape[1]:
            raise ValueError(f"params must be one vector of length p={design.shape[1]}, got shapes "
                             f"{[tuple(p.shape) for p in plist]}")
        self.design, self.targets, self.weights = design, targets, weights
        self._sq_norm = float(torch.linalg.matrix_norm(design, 2)) ** 2 \
            if isinstance(weights, str) and weights == "normalized-residual" else None

    def _S(self, w: torch.Tensor) -> torch.Tensor:
        X, wts = self.design, self.weights
        if isinstance(wts, torch.Tensor):
            return wts
        if wts == "identity":
            return torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=X.dtype, device=X.device)
        r = X @ w - self.targets
        if wts == "normalized-residual":
            top = r.abs().max()
            return r.abs() / (top * self._sq_norm) if float(top) > 0 else torch.zeros_like(r)
        S = residual_weights(r) if wts == "residual" else wts(r)
        if S.ndim == 1 and bool((S < 0).any()):
            raise ValueError("weights(r) returned negative entries: S_k must be positive semi-definite")
        return S

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                S = self._S(w)
                Xg = self.design @ g
                SXg = S * Xg if S.ndim == 1 else S @ Xg
                w.sub_(g + self.design.T @ SXg, alpha=group["lr"])
                self.state[w]["S"] = S
        return loss


class DiagonalPreconditioner(torch.optim.Optimizer):
    """Gradient step with a fixed diagonal preconditioner: ``w ← w − η diag(d) g``.

    With ``d = 1/s²`` for coordinates of scale ``s`` this is gradient descent in whitened
    coordinates; on least squares it converges to the interpolant of minimum ``Σ_j w_j² / d_j``
    (Shah, Kyrillidis, Sanghavi: the minimum-norm solution is not always the best).

    Parameters
    ----------
    params : iterable with one tensor
    lr : float
    diag : tensor broadcastable to the parameter, entries ``> 0``
    """

    def __init__(self, params, lr: float, diag: torch.Tensor) -> None:
        if not (isinstance(lr, int | float) and lr > 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if not isinstance(diag, torch.Tensor) or bool((diag <= 0).any()):
            raise ValueError("diag must be a tensor of positive entries")
        super().__init__(params, dict(lr=lr))
        self.diag = diag

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is not None:
                    w.sub_(self.diag * w.grad, alpha=group["lr"])
        return loss
