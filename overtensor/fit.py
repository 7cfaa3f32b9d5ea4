"""``overtensor.fit``: one entry point for every method, with validation before any work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from overtensor._checks import (
    check_callable,
    check_callables,
    check_choice,
    check_float,
    check_int,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from overtensor.memory import check_fit_memory
from overtensor.models import MODELS
from overtensor.optimizers import check_optimizer
from overtensor.options import refuse_ignored
from overtensor.regimes import FIT_REGIMES
from overtensor.result import FitResult, rescale_result
from overtensor.targets import Target, as_target
from overtensor.threads import with_chosen_threads

#: Defaults per method. ``None`` for ``reinit_threshold`` disables re-initialization;
#: ``"half-init"`` means ``init_scale / 2`` (SPEC §5: ``δ_1 = δ_0/2``).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "beyond-lazy": dict(model="homogeneous", init_scale=1e-3, weight_decay=1e-3,
                        reinit_threshold="half-init", epoch_steps=200, epoch_growth=1.0),
    "gd": dict(model="plain", init_scale=1e-3, weight_decay=0.0, reinit_threshold=None,
               epoch_steps=200, epoch_growth=1.0),
    "exact-rank": dict(model="homogeneous", init_scale=1e-3, weight_decay=0.0,
                       reinit_threshold=None, epoch_steps=200, epoch_growth=1.0),
    # Ge, Ren, Wang, Zhou 2021: geometric epochs (γ = 2), main-phase epochs from tol ("auto").
    "deflation": dict(model="homogeneous", init_scale=1e-3, weight_decay=1e-3,
                      reinit_threshold="half-init", epoch_steps=50, epoch_growth=2.0,
                      main_epochs="auto"),
}
METHODS = (*METHOD_DEFAULTS, "power-method")


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
) -> FitResult:
    """Decompose a symmetric tensor with an over-parameterized gradient method.

    Parameters
    ----------
    target : Target, SymmetricCP, (weights, factors) or dense array
        The tensor ``T*``; see :func:`overtensor.as_target`.
    width : int
        Number of rank-one terms ``m``. Required except for ``exact-rank`` and ``power-method``
        (which use the target's rank).
    method : {"beyond-lazy", "gd", "exact-rank", "deflation", "power-method"}
        ``beyond-lazy``: the paper's variant (homogeneous model, weight decay, re-initialization,
        final phase without weight decay). ``gd``: gradient descent on the ``plain`` model from the
        same small init. ``exact-rank``: ``m = r`` on the homogeneous model, no re-initialization.
        ``deflation``: like ``beyond-lazy`` with geometric epochs (``γ = 2``) and a number of
        main-phase epochs that follows from ``tol`` (Ge, Ren, Wang, Zhou 2021;
        :mod:`overtensor.algorithms.deflation`).
        ``power-method``: tensor power method with deflation, each component refined by the
        shifted power method (SS-HOPM, Kolda & Mayo 2011; see ``power``).
    model : {"plain", "homogeneous", "coefficients"}, optional
        Override the method's model.
    regime : {"full", "lazy", "random-features", "alpha-scaled"}
        What is trained (SPEC §4, :mod:`overtensor.regimes`): ``full`` runs ``method`` as is; the
        others train the method's model, from rows of norm ``init_scale`` (default 1), by gradient
        descent: ``lazy`` its linearization at the initialization, ``random-features`` only the
        coefficients, ``alpha-scaled`` ``T(W_0) + α (T(W) − T(W_0))`` on the loss ``/α²``.
        ``lr=None`` then means ``1/L`` from the top Hessian eigenvalue at the start; ``lazy`` with
        ``optimizer=None, lr=None`` runs conjugate gradients (same limit, far fewer steps;
        ``docs/lazy.md``).
    alpha : float
        ``α`` of ``alpha-scaled``.
    init_scale, weight_decay, reinit_threshold, epoch_steps, epoch_growth
        ``δ_0``, ``μ``, ``δ_1`` (``None`` disables re-initialization), ``K`` and ``γ``.
    max_steps, final_steps, tol, patience
        Step budget, budget of the final ``μ = 0`` phase, target relative error ``ε`` and the
        number of epochs without 1 % improvement that ends a phase.
    main_epochs : int, "auto" or None, optional
        Number of epochs after which the main phase (with weight decay) ends; ``"auto"`` derives it
        from ``tol`` (:func:`overtensor.algorithms.deflation.deflation_epochs`); ``None``: only
        stagnation ends it. Default: the method's (``"auto"`` for ``deflation``, else ``None``).
    lr : float, optional
        Step size for the unit-norm normalized target. Default ``0.5 / max(order, 4)``, which is
        below the curvature of a fitted component (``≈ max(4, l)·λ_max ≤ max(4, l)``).
    optimizer : None, str, torch.optim.Optimizer class or instance, or callable
        Default plain gradient descent. Any name of :data:`overtensor.optimizers.OPTIMIZERS`
        (``"sgd"``, ``"momentum"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``, ...); see
        :func:`overtensor.optimizers.make_optimizer`.
    signs : {"auto", "positive", "balanced"}
        Fixed signs of the terms; ``auto`` balances them for even orders with negative weights.
    extract, polish_iter, polish_below, merge_cos, drop_tol
        Extraction of the over-parameterized solution (:mod:`overtensor.extraction`): merge rows
        with ``|cos| ≥ merge_cos``, drop terms below ``drop_tol·max|λ|``, then ``polish_iter``
        L-BFGS steps, only when the model's own relative error is ``≤ polish_below``. A CP that
        meets ``tol`` is then reduced to the fewest terms that still meet it
        (:mod:`overtensor.reduction`); ``result.info`` records the merges, the ranks tried and
        diagnostics (degeneracy, unsupported rank; :mod:`overtensor.diagnostics`).
    rank : int, optional
        Cap on the number of returned terms: the best CP with at most ``rank`` terms reachable
        from the over-parameterized solution (greedy removal with polish), e.g. for a noisy
        target. Without it a rank whose tail weights are comparable to the residual is reported
        in ``result.info["rank_support"]`` and ``result.info["warnings"]``. Gradient methods with
        ``regime="full"`` only (``power-method`` takes the number of components as ``width``).
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
    engine : {"auto", "autograd"}
        ``auto``: plain gradient descent runs on the batched engine (:mod:`overtensor.batched`,
        closed-form gradients) with a batch of one; other optimizers on the autograd loop
        (:func:`~overtensor.algorithms.gradient.gradient_fit`). ``autograd`` forces the latter.
        Both take the same decisions from the same random draws; numbers agree to rounding.
    power : PowerOptions, optional
        Options of ``power-method`` (:class:`overtensor.algorithms.power.PowerOptions`): the
        shifted (SS-HOPM, default) or plain variant, the shift rule, restarts and iterations.
    orthogonal : OrthogonalOptions, optional
        Options of ``regime="orthogonal"``
        (:class:`overtensor.orthogonal_fit.OrthogonalOptions`): the way of keeping ``R``
        orthogonal (``cayley`` by default, ``matrix_exp``, ``householder``, ``gram-schmidt``,
        ``lowdin``, ``riemannian``, ``stochastic``), whether the coefficients are trained, and the
        block size and period of stochastic OPT.
    threads : int, "auto" or None
        Intra-op torch threads for this fit (keyword only; added by
        :func:`overtensor.threads.with_chosen_threads`). Default ``$OVERTENSOR_THREADS``, else
        ``"auto"``: one thread for small problems, the current setting otherwise
        (:mod:`overtensor.threads`). The previous setting is restored afterwards.

    Returns
    -------
    FitResult
        ``seconds`` is the wall time of the whole call (training, extraction and polish; the parts
        are ``info["seconds_train"]``, ``info["seconds_extract"]``, ``info["seconds_polish"]``);
        ``info["threads"]`` the number of threads used.
    """
    given = dict(locals())
    check_choice("method", method, METHODS)
    check_choice("engine", engine, ("auto", "autograd"))
    check_choice("regime", regime, FIT_REGIMES)
    refuse_ignored(fit, given, method, regime)
    tgt = as_target(target, order)
    if width is not None:
        width = check_int("width", width, 1)
    max_steps = check_int("max_steps", max_steps, 1)
    final_steps = check_int("final_steps", final_steps, 0)
    tol = check_float("tol", tol, minimum=0.0)
    check_optimizer(optimizer)
    check_callable("callback", callback)
    recorders = check_callables("recorders", recorders)
    dev = resolve_device(device if device is not None else tgt.device)
    dt = resolve_dtype(dtype if dtype is not None else tgt.dtype, dev)
    check_fit_memory(tgt, width, method, dt, dev)
    gen = make_generator(random_state)

    if power is not None:
        from overtensor.algorithms.power import PowerOptions

        if method != "power-method":
            raise ValueError(f"power is only used with method='power-method', got method={method!r}")
        if not isinstance(power, PowerOptions):
            raise TypeError(f"power must be a PowerOptions, got {type(power).__name__}: {power!r}")

    if orthogonal is not None:
        from overtensor.orthogonal_fit import OrthogonalOptions

        if regime != "orthogonal":
            raise ValueError(f"orthogonal is only used with regime='orthogonal', got regime={regime!r}")
        if not isinstance(orthogonal, OrthogonalOptions):
            raise TypeError(f"orthogonal must be an OrthogonalOptions, got "
                            f"{type(orthogonal).__name__}: {orthogonal!r}")

    if regime != "full":
        from overtensor.regimes import fit_regime

        work, exponent = tgt.normalized()  # T/2^k: no square overflows (issue 10, item 4)
        return rescale_result(fit_regime(
            work, width, method, regime=regime, alpha=alpha, model=model, init_scale=init_scale,
            weight_decay=weight_decay, reinit_threshold=reinit_threshold, epoch_steps=epoch_steps,
            max_steps=max_steps, tol=tol, lr=lr, optimizer=optimizer, signs=signs,
            patience=patience, eval_every=eval_every, generator=gen, dtype=dt, device=dev,
            callback=callback, recorders=recorders, progress=progress, orthogonal=orthogonal,
        ), tgt, exponent)

    if method == "power-method":
        from overtensor.algorithms.power import power_method

        rank = width if width is not None else _target_rank(tgt, method)
        return power_method(tgt, rank, generator=gen, dtype=dt, device=dev, tol=tol,
                            progress=progress, options=power)

    from overtensor.algorithms.gradient import gradient_fit

    options = dict(
        model=model, init_scale=init_scale, weight_decay=weight_decay,
        reinit_threshold=reinit_threshold, epoch_steps=epoch_steps, epoch_growth=epoch_growth,
        max_steps=max_steps, final_steps=final_steps, tol=tol, lr=lr, optimizer=optimizer,
        signs=signs, patience=patience, eval_every=eval_every, extract=extract,
        polish_iter=polish_iter, polish_below=polish_below, merge_cos=merge_cos, drop_tol=drop_tol,
        main_epochs=main_epochs, rank=rank,
    )
    cfg = gradient_options(tgt, width, method, **options)
    if engine == "auto" and cfg["optimizer"] in (None, "gd"):
        # Plain gradient descent: the batched engine (closed-form gradients, no autograd or
        # optimizer overhead) with a batch of one is ~4x faster per step on the CPU and takes
        # the same decisions (shared EpochSchedule, same random draws).
        from overtensor.batched import fit_batched

        out = fit_batched([tgt], width, method, random_states=[gen], device=dev, dtype=dt,
                          callback=callback, recorders=recorders, progress=progress, **options)[0]
        if isinstance(out, Exception):
            raise out
        return out
    work, exponent = tgt.normalized()  # the batched engine above does the same per run
    return rescale_result(
        gradient_fit(work, **cfg, generator=gen, dtype=dt, device=dev, callback=callback,
                     recorders=recorders, progress=progress), tgt, exponent)


def gradient_options(
    tgt: Target, width: int | None, method: str, *, model, init_scale, weight_decay,
    reinit_threshold, epoch_steps, epoch_growth, max_steps, final_steps, tol, lr, optimizer,
    signs, patience, eval_every, extract, polish_iter, polish_below, merge_cos, drop_tol,
    main_epochs: int | str | None = "default", rank: int | None = None,
) -> dict[str, Any]:
    """Validated keyword arguments of :func:`~overtensor.algorithms.gradient.gradient_fit` for a
    gradient method (method defaults filled in); shared by :func:`fit` and
    :func:`overtensor.batched.fit_batched`. Arguments as in :func:`fit`."""
    cfg = dict(METHOD_DEFAULTS[method])
    width = resolve_width(tgt, width, method)
    for key, value in dict(model=model, init_scale=init_scale, weight_decay=weight_decay,
                           epoch_steps=epoch_steps, epoch_growth=epoch_growth).items():
        if value is not None:
            cfg[key] = value
    if reinit_threshold != "default":
        cfg["reinit_threshold"] = reinit_threshold
    check_choice("model", cfg["model"], MODELS)
    cfg["init_scale"] = check_float("init_scale", cfg["init_scale"], minimum=0.0, strict=True)
    cfg["weight_decay"] = check_float("weight_decay", cfg["weight_decay"], minimum=0.0)
    cfg["epoch_steps"] = check_int("epoch_steps", cfg["epoch_steps"], 1)
    cfg["epoch_growth"] = check_float("epoch_growth", cfg["epoch_growth"], minimum=1.0)
    if cfg["reinit_threshold"] == "half-init":
        cfg["reinit_threshold"] = cfg["init_scale"] / 2
    elif cfg["reinit_threshold"] is not None:
        cfg["reinit_threshold"] = check_float("reinit_threshold", cfg["reinit_threshold"],
                                              minimum=0.0)
    if lr is None:
        lr = 0.5 / max(tgt.order, 4)
    lr = check_float("lr", lr, minimum=0.0, strict=True)
    if main_epochs != "default":
        cfg["main_epochs"] = main_epochs
    if cfg.get("main_epochs") == "auto":
        from overtensor.algorithms.deflation import deflation_epochs

        cfg["main_epochs"] = deflation_epochs(
            tgt.order, tgt.dim, tol, init_scale=cfg["init_scale"], epoch_steps=cfg["epoch_steps"],
            epoch_growth=cfg["epoch_growth"], lr=lr, main_budget=max_steps - final_steps)
    elif cfg.get("main_epochs") is not None:
        cfg["main_epochs"] = check_int("main_epochs", cfg["main_epochs"], 1)
    check_choice("signs", signs, ("auto", "positive", "balanced"))
    patience = check_int("patience", patience, 1)
    eval_every = check_int("eval_every", eval_every, 1)
    polish_iter = check_int("polish_iter", polish_iter, 0)
    polish_below = check_float("polish_below", polish_below, minimum=0.0)
    merge_cos = check_float("merge_cos", merge_cos, minimum=0.0, maximum=1.0)
    drop_tol = check_float("drop_tol", drop_tol, minimum=0.0, maximum=1.0)
    if rank is not None:
        rank = check_int("rank", rank, 1)

    return dict(
        method=method, width=width, max_steps=max_steps, final_steps=final_steps, tol=tol,
        lr=lr, optimizer=optimizer, signs=signs, patience=patience, eval_every=eval_every,
        extract=extract, polish_iter=polish_iter, polish_below=polish_below, merge_cos=merge_cos,
        drop_tol=drop_tol, rank=rank, **cfg,
    )


def resolve_width(tgt: Target, width: int | None, method: str) -> int:
    """The width of a gradient method: the target's rank for ``exact-rank`` (the width passed
    when the rank is unknown), else required."""
    if method == "exact-rank":
        if tgt.truth is None and width is not None:
            return width  # the rank is unknown: the width passed is the rank to fit
        rank = _target_rank(tgt, method)
        if width is not None and width != rank:
            raise ValueError(f"method='exact-rank' uses width = rank = {rank}, got width={width}")
        return rank
    if width is None:
        raise ValueError(f"width is required for method={method!r}")
    return width


def _target_rank(target: Target, method: str) -> int:
    if target.truth is None:
        raise ValueError(
            f"method={method!r} needs the rank: pass width=RANK (the target's rank is unknown)"
        )
    return target.truth.rank
