"""``overtensor.fit``: one entry point for every method, with validation before any work."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from overtensor._checks import (
    check_callable,
    check_callables,
    check_choice,
    check_int,
    check_stopping,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from overtensor.optim.registry import check_optimizer
from overtensor.tensors.memory import check_fit_memory
from overtensor.tensors.methods import DIRECT_METHODS, METHODS, _target_rank, gradient_options
from overtensor.tensors.options import _is_default, refuse_ignored
from overtensor.tensors.regimes import fit_regimes
from overtensor.tensors.result import FitResult, rescale_result
from overtensor.tensors.targets import as_target, check_single
from overtensor.tensors.threads import with_chosen_threads


@with_chosen_threads
def fit(
    target: Any,
    width: int | None = None,
    method: str = "beyond-lazy",
    *,
    order: int | None = None,
    model: str | None = None,
    regime: str = "full",
    alpha: float = 1.0,
    init_scale: float | None = None,
    weight_decay: float | None = None,
    reinit_threshold: float | str | None = "default",
    epoch_steps: int | None = None,
    epoch_growth: float | None = None,
    max_steps: int = 20000,
    final_steps: int = 10000,
    tol: float = 1e-4,
    lr: float | None = None,
    optimizer: Any = None,
    signs: str = "auto",
    patience: int = 5,
    eval_every: int = 50,
    extract: bool = True,
    polish_iter: int = 100,
    polish_below: float = 1e-2,
    main_epochs: int | str | None = "default",
    merge_cos: float = 0.99,
    drop_tol: float = 1e-3,
    rank: int | None = None,
    random_state: Any = None,
    device: Any = None,
    dtype: Any = None,
    callback: Callable | None = None,
    recorders: Sequence[Callable] = (),
    progress: bool = False,
    engine: str = "auto",
    power: Any = None,
    orthogonal: Any = None,
    shortcuts: Any = None,
) -> FitResult:
    """Decompose a symmetric tensor with an over-parameterized gradient method.

    Parameters
    ----------
    target : Target, SymmetricCP, (weights, factors) or dense array
        The tensor ``T*``; see :func:`overtensor.as_target`.
    width : int
        Number of rank-one terms ``m``. Required except for ``exact-rank`` and ``power-method``
        (which use the target's rank).
    method : {"beyond-lazy", "gd", "exact-rank", "deflation", "power-method", "spm"}
        ``beyond-lazy``: the paper's variant (homogeneous model, weight decay, re-initialization,
        final phase without weight decay). ``gd``: gradient descent on the ``plain`` model from the
        same small init. ``exact-rank``: ``m = r`` on the homogeneous model, no re-initialization.
        ``deflation``: like ``beyond-lazy`` with geometric epochs (``γ = 2``) and a number of
        main-phase epochs that follows from ``tol`` (Ge, Ren, Wang, Zhou 2021;
        :mod:`overtensor.tensors.deflation_schedule`).
        ``power-method``: tensor power method with deflation, each component refined by the
        shifted power method (SS-HOPM, Kolda & Mayo 2011; see ``power``).
        ``spm``: the subspace power method (Kileel & Pereira 2019,
        :mod:`overtensor.tensors.spm`): exact for ranks up to the flattening's rank (``r ≤ d``
        at order 3, ``r ≤ d(d+1)/2`` at order 4), ``ValueError`` beyond; order ``≥ 3``.
    model : {"plain", "homogeneous", "coefficients"}, optional
        Override the method's model.
    regime : {"full", "lazy", "random-features", "alpha-scaled", "orthogonal"} or a registered name
        What is trained (docs/theory/tensors.md §4, :mod:`overtensor.tensors.regimes`): ``full`` runs
        ``method`` as is; the
        others train the method's model, from rows of norm ``init_scale`` (default 1), by gradient
        descent: ``lazy`` its linearization at the initialization, ``random-features`` only the
        coefficients, ``alpha-scaled`` ``T(W_0) + α (T(W) − T(W_0))`` on the loss ``/α²``. Any
        other regime registered with :func:`overtensor.regimes.layer.register_regime` (the
        registry :func:`overtensor.networks.train.train_network` uses) transforms the model
        function ``θ ↦ (a, V)`` and is trained with autograd.
        ``lr=None`` then means ``1/L`` from the top Hessian eigenvalue at the start; ``lazy`` with
        ``optimizer=None, lr=None`` runs conjugate gradients (same limit, far fewer steps;
        ``docs/lazy.md``).
    alpha : float
        ``α`` of ``alpha-scaled``. At the default ``α = 1`` that regime is exactly the full model
        on the full loss (only its step rule differs): pass the ``α`` you mean (the CLI requires
        ``--alpha`` with ``--regime alpha-scaled``).
    init_scale, weight_decay, reinit_threshold, epoch_steps, epoch_growth
        ``δ_0``, ``μ``, ``δ_1`` (``None`` disables re-initialization), ``K`` and ``γ``.
    max_steps, final_steps, tol, patience
        Step budget, budget of the final ``μ = 0`` phase, target relative error ``ε`` and the
        number of epochs without 1 % improvement that ends a phase.
    main_epochs : int, "auto" or None, optional
        Number of epochs after which the main phase (with weight decay) ends; ``"auto"`` derives it
        from ``tol`` (:func:`overtensor.tensors.deflation_schedule.deflation_epochs`); ``None``: only
        stagnation ends it. Default: the method's (``"auto"`` for ``deflation``, else ``None``).
    lr : float, optional
        Step size for the unit-norm normalized target. Default ``0.5 / max(order, 4)``, which is
        below the curvature of a fitted component (``≈ max(4, l)·λ_max ≤ max(4, l)``).
    optimizer : None, str, torch.optim.Optimizer class or instance, or callable
        Default plain gradient descent. Any name of :data:`overtensor.optim.registry.OPTIMIZERS`
        (``"sgd"``, ``"momentum"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``, ...); see
        :func:`overtensor.optim.registry.make_optimizer`.
    signs : {"auto", "positive", "balanced"}
        Fixed signs of the terms; ``auto`` balances them for even orders with negative weights.
    extract, polish_iter, polish_below, merge_cos, drop_tol
        Extraction of the over-parameterized solution (:mod:`overtensor.tensors.extraction`): merge rows
        with ``|cos| ≥ merge_cos``, drop terms below ``drop_tol·max|λ|``, then ``polish_iter``
        L-BFGS steps, only when the model's own relative error is ``≤ polish_below``. A CP that
        meets ``tol`` is then reduced to the fewest terms that still meet it
        (:mod:`overtensor.tensors.reduction`); ``result.info`` records the merges, the ranks tried and
        diagnostics (degeneracy, unsupported rank; :mod:`overtensor.tensors.diagnostics`).
    rank : int, optional
        Cap on the number of returned terms, always applied: the best CP with at most ``rank``
        terms reachable from the over-parameterized solution (greedy removal with polish); when
        it misses ``tol``, ``result.warnings`` says so with the error reached. Without it, a CP
        that misses ``tol`` keeps only the terms whose removal more than doubles the polished
        error (the rank under noise, ``result.info["rank_support"]`` and a warning;
        :mod:`overtensor.tensors.reduction`). Gradient methods with ``regime="full"`` only
        (``power-method`` takes the number of components as ``width``).
    random_state : int, torch.Generator or None
        Seeds every random draw (init and re-initializations).
    device, dtype
        Default: the target's device; float64 on CPU, float32 on CUDA.
    callback : callable ``(record, state) -> bool``, optional
        Called at every evaluation; returning True stops the fit.
    recorders : sequence of callables ``state -> dict``
        Extra per-evaluation diagnostics merged into the history records.
    progress : bool
        Show a progress bar.
    engine : {"auto", "paper", "autograd"}
        ``auto`` (default): the fastest route to the same decomposition
        (:func:`overtensor.tensors.route.fast_route`, ``docs/method.md``): for
        ``beyond-lazy`` with options the route honours, compress the target to the span of its
        components, try the subspace power method when the flattening's rank is at most
        ``width``, else run ``beyond-lazy`` with :class:`~overtensor.tensors.shortcuts.Shortcuts`
        on the small core, lift and measure against the target; otherwise the ``paper`` route.
        ``info["route"]`` records the route taken and why.
        ``paper``: the paper's exact schedule (what the experiments pin): plain gradient descent
        on the batched engine (:mod:`overtensor.tensors.batched`, closed-form gradients) with a
        batch of one, other optimizers on the autograd loop
        (:func:`~overtensor.tensors.gradient.gradient_fit`). ``autograd`` forces the latter.
        ``paper`` and ``autograd`` take the same decisions from the same random draws.
    power : PowerOptions, optional
        Options of ``power-method`` (:class:`overtensor.tensors.power.PowerOptions`): the
        shifted (SS-HOPM, default) or plain variant, the shift rule, restarts and iterations.
    orthogonal : OrthogonalOptions, optional
        Options of ``regime="orthogonal"``
        (:class:`overtensor.tensors.orthogonal_fit.OrthogonalOptions`): the way of keeping ``R``
        orthogonal (``cayley`` by default, ``matrix_exp``, ``householder``, ``gram-schmidt``,
        ``lowdin``, ``riemannian``, ``stochastic``), whether the coefficients are trained, and the
        block size and period of stochastic OPT.
    shortcuts : Shortcuts, optional
        The speed-ups of the ``auto`` route (:class:`overtensor.tensors.shortcuts.Shortcuts`;
        default ``Shortcuts()``); an explicit one is refused where the route cannot apply it.
    threads : int, "auto" or None
        Intra-op torch threads for this fit (keyword only; added by
        :func:`overtensor.tensors.threads.with_chosen_threads`). Default ``$OVERTENSOR_THREADS``, else
        ``"auto"``: one thread for small problems, the current setting otherwise
        (:mod:`overtensor.tensors.threads`). The previous setting is restored afterwards.

    Returns
    -------
    FitResult
        ``seconds`` is the wall time of the whole call (training, extraction and polish; the parts
        are ``info["seconds_train"]``, ``info["seconds_extract"]``, ``info["seconds_polish"]``);
        ``info["threads"]`` the number of threads used; ``info["route"]`` the engine that ran
        (``"spm"``, ``"shortcuts"``, ``"paper"``, or the direct method) and why. When the default
        route answers by the subspace power method, ``method`` is ``"spm"``, ``history`` is empty
        and there are no model parameters (``engine="paper"`` gives the gradient method's).
    """
    given = dict(locals())
    check_choice("method", method, METHODS)
    check_choice("engine", engine, ENGINES)
    check_choice("regime", regime, fit_regimes())
    refuse_ignored(fit, given, method, regime)
    tgt = as_target(target, order)
    check_single(tgt)
    if width is not None:
        width = check_int("width", width, 1)
    max_steps, tol, final_steps = check_stopping(max_steps, tol, final_steps)
    check_optimizer(optimizer)
    check_callable("callback", callback)
    recorders = check_callables("recorders", recorders)
    dev = resolve_device(device if device is not None else tgt.device)
    dt = resolve_dtype(dtype if dtype is not None else tgt.dtype, dev)
    check_fit_memory(tgt, width, method, dt, dev)
    gen = make_generator(random_state)

    if power is not None:
        from overtensor.tensors.power import PowerOptions

        if method != "power-method":
            raise ValueError(f"power is only used with method='power-method', got method={method!r}")
        if not isinstance(power, PowerOptions):
            raise TypeError(f"power must be a PowerOptions, got {type(power).__name__}: {power!r}")

    if shortcuts is not None:
        from overtensor.tensors.shortcuts import Shortcuts

        if not isinstance(shortcuts, Shortcuts):
            raise TypeError(f"shortcuts must be a Shortcuts or None, got "
                            f"{type(shortcuts).__name__}: {shortcuts!r}")
        if engine != "auto":
            raise ValueError(f"shortcuts are only used with engine='auto', got engine={engine!r}")
    if method == "spm" and rank is not None:
        raise ValueError(f"method='spm' takes the number of components as width, got rank={rank}")

    if orthogonal is not None:
        from overtensor.tensors.orthogonal_fit import OrthogonalOptions

        if regime != "orthogonal":
            raise ValueError(f"orthogonal is only used with regime='orthogonal', got regime={regime!r}")
        if not isinstance(orthogonal, OrthogonalOptions):
            raise TypeError(f"orthogonal must be an OrthogonalOptions, got "
                            f"{type(orthogonal).__name__}: {orthogonal!r}")

    if regime != "full":
        from overtensor.tensors.regimes import fit_regime

        work, exponent = tgt.normalized()  # T/2^k: no square overflows (issue 10, item 4)
        return rescale_result(fit_regime(
            work, width, method, regime=regime, alpha=alpha, model=model, init_scale=init_scale,
            weight_decay=weight_decay, reinit_threshold=reinit_threshold, epoch_steps=epoch_steps,
            max_steps=max_steps, tol=tol, lr=lr, optimizer=optimizer, signs=signs,
            patience=patience, eval_every=eval_every, generator=gen, dtype=dt, device=dev,
            callback=callback, recorders=recorders, progress=progress, orthogonal=orthogonal,
        ), tgt, exponent)

    if method in DIRECT_METHODS:
        rank = width if width is not None else _target_rank(tgt, method)
        if method == "spm":
            from overtensor.tensors.spm import spm

            out = spm(tgt, rank, generator=gen, dtype=dt, device=dev, tol=tol)
        else:
            from overtensor.tensors.power import power_method

            out = power_method(tgt, rank, generator=gen, dtype=dt, device=dev, tol=tol,
                               progress=progress, options=power)
        out.info["route"] = {"engine": method, "why": f"method={method!r}"}
        return out

    options = dict(model=model, init_scale=init_scale, weight_decay=weight_decay,
                   reinit_threshold=reinit_threshold, epoch_steps=epoch_steps,
                   epoch_growth=epoch_growth, max_steps=max_steps, final_steps=final_steps,
                   tol=tol, lr=lr, optimizer=optimizer, signs=signs, patience=patience,
                   eval_every=eval_every, extract=extract, polish_iter=polish_iter,
                   polish_below=polish_below, merge_cos=merge_cos, drop_tol=drop_tol,
                   main_epochs=main_epochs, rank=rank)
    gradient_options(tgt, width, method, **options)  # every option checked before any work
    why = f"engine={engine!r}"
    if engine == "auto":
        from overtensor.tensors.route import DEFAULT_SHORTCUTS, fast_route, route_blocker

        passed = {k: given[k] for k in ROUTE_OPTIONS if not _is_default(given[k], _DEFAULTS[k])}
        blocker = route_blocker(method, passed, width, _DEFAULTS)
        if blocker is None:
            def paper_on(work, w, generator, opts):  # the paper's schedule on the core
                out = fit(work, w, method, random_state=generator, engine="paper", **opts)
                out.info.pop("route", None)
                return out

            return fast_route(tgt, width, generator=gen,
                              shortcuts=DEFAULT_SHORTCUTS if shortcuts is None else shortcuts,
                              fit_options=passed, defaults=_DEFAULTS, paper_fit=paper_on)
        if shortcuts is not None:
            raise ValueError(f"an explicit shortcuts=Shortcuts(...) cannot apply with {blocker}; "
                             f"pass engine='paper' or remove the option")
        why = f"the fast route does not apply with {blocker}"
    result = _paper_fit(tgt, width, method, gen, dt, dev, "autograd" if engine == "autograd"
                        else "paper", callback, recorders, progress, options)
    result.info["route"] = {"engine": "paper", "why": why}
    return result


#: The engines of :func:`fit` (``auto``: the fast route where it applies; ``paper``: the
#: paper's schedule; ``autograd``: the paper's schedule on the autograd loop).
ENGINES = ("auto", "paper", "autograd")

#: Options of :func:`fit` that the fast route looks at (a non-default one outside
#: :data:`overtensor.tensors.route.SHORTCUT_OPTIONS` sends the fit to the paper route).
ROUTE_OPTIONS = (
    "order", "model", "init_scale", "weight_decay", "reinit_threshold", "epoch_steps",
    "epoch_growth", "max_steps", "final_steps", "tol", "lr", "optimizer", "signs", "patience",
    "eval_every", "extract", "polish_iter", "polish_below", "main_epochs", "merge_cos", "drop_tol",
    "rank", "device", "dtype", "callback", "recorders", "progress",
)


def _paper_fit(tgt, width, method, gen, dt, dev, engine, callback, recorders, progress,
               options) -> FitResult:
    """The paper's schedule (``engine="paper"`` or ``"autograd"``) of a gradient method."""
    from overtensor.tensors.gradient import gradient_fit

    cfg = gradient_options(tgt, width, method, **options)
    if engine == "paper" and cfg["optimizer"] in (None, "gd"):
        # Plain gradient descent: the batched engine (closed-form gradients, no autograd or
        # optimizer overhead) with a batch of one is ~4x faster per step on the CPU and takes
        # the same decisions (shared EpochSchedule, same random draws).
        from overtensor.tensors.batched import fit_batched

        out = fit_batched([tgt], width, method, random_states=[gen], device=dev, dtype=dt,
                          callback=callback, recorders=recorders, progress=progress, **options)[0]
        if isinstance(out, Exception):
            raise out
        return out
    work, exponent = tgt.normalized()  # the batched engine above does the same per run
    return rescale_result(
        gradient_fit(work, **cfg, generator=gen, dtype=dt, device=dev, callback=callback,
                     recorders=recorders, progress=progress), tgt, exponent)


_DEFAULTS = {k: p.default for k, p in inspect.signature(fit).parameters.items()}
