"""``overtensor.fit``: one entry point for every method, with validation before any work.

The options are grouped by concern in the frozen config objects of
:mod:`overtensor.tensors.config`; ``fit`` checks that each group given is one its method and
regime use, then hands the flat, validated options to the engines below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from overtensor._checks import (
    check_callable,
    check_callables,
    check_choice,
    check_float,
    check_int,
    check_stopping,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from overtensor.tensors.config import (
    GROUP_OF,
    GROUPS,
    Extraction,
    GradientSchedule,
    Runtime,
    as_dict,
    changed,
    check_group,
    is_default,
)
from overtensor.tensors.memory import check_fit_memory
from overtensor.tensors.methods import (
    DIRECT_METHODS,
    GRADIENT_DEFAULTS,
    METHODS,
    _target_rank,
    gradient_options,
)
from overtensor.tensors.option_rules import unused_options
from overtensor.tensors.orthogonal_fit import OrthogonalOptions
from overtensor.tensors.power import PowerOptions
from overtensor.tensors.regimes import fit_regimes
from overtensor.tensors.result import FitResult, rescale_result
from overtensor.tensors.targets import as_target, check_single
from overtensor.tensors.threads import choose_threads, step_work, torch_threads


def fit(
    target: Any,
    width: int | None = None,
    method: str = "beyond-lazy",
    *,
    regime: str = "full",
    alpha: float = 1.0,
    tol: float = 1e-4,
    schedule: GradientSchedule | None = None,
    extraction: Extraction | None = None,
    power: PowerOptions | None = None,
    orthogonal: OrthogonalOptions | None = None,
    random_state: Any = None,
    callback: Callable | None = None,
    recorders: Sequence[Callable] = (),
    runtime: Runtime | None = None,
) -> FitResult:
    """Decompose a symmetric tensor with an over-parameterized gradient method.

    Parameters
    ----------
    target : Target, SymmetricCP, (weights, factors) or dense array
        The tensor ``T*``; see :func:`overtensor.as_target` (which takes the ``order`` of a
        ``(weights, factors)`` pair; default 3).
    width : int
        Number of rank-one terms ``m``. Required except for ``exact-rank``, ``power-method`` and
        ``spm`` (which use the target's rank).
    method : {"beyond-lazy", "gd", "exact-rank", "deflation", "power-method", "spm"}
        ``beyond-lazy``: the paper's variant (homogeneous model, weight decay, re-initialization,
        final phase without weight decay; docs/theory/tensors.md §5). ``gd``: gradient descent
        on the ``plain`` model from the same small init. ``exact-rank``: ``m = r`` on the
        homogeneous model, no re-initialization. ``deflation``: like ``beyond-lazy`` with
        geometric epochs (``γ = 2``) and a number of main-phase epochs that follows from ``tol``
        (Ge, Ren, Wang, Zhou 2021; :mod:`overtensor.tensors.deflation_schedule`).
        ``power-method``: tensor power method with deflation, each component refined by the
        shifted power method (SS-HOPM, Kolda & Mayo 2011; see ``power``).
        ``spm``: the subspace power method (Kileel & Pereira 2019,
        :mod:`overtensor.tensors.spm`): exact for ranks up to the flattening's rank (``r ≤ d``
        at order 3, ``r ≤ d(d+1)/2`` at order 4), ``ValueError`` beyond; order ``≥ 3``.
    regime : {"full", "lazy", "random-features", "alpha-scaled", "orthogonal"} or a registered name
        What is trained (docs/theory/tensors.md §4, :mod:`overtensor.tensors.regimes`): ``full``
        runs ``method`` as is; the others train the method's model, from rows of norm
        ``schedule.init_scale`` (default 1), by gradient descent: ``lazy`` its linearization at
        the initialization, ``random-features`` only the coefficients, ``alpha-scaled``
        ``T(W_0) + α (T(W) − T(W_0))`` on the loss ``/α²``, ``orthogonal`` ``W = W_0 R`` with
        ``R`` orthogonal (see ``orthogonal``). Any other regime registered with
        :func:`overtensor.regimes.layer.register_regime` (the registry
        :func:`overtensor.networks.train.train_network` uses) transforms the model function
        ``θ ↦ (a, V)`` and is trained with autograd. ``schedule.lr=None`` then means ``1/L``
        from the top Hessian eigenvalue at the start; ``lazy`` with the default optimizer and
        step runs conjugate gradients (same limit, far fewer steps; ``docs/lazy.md``). These
        regimes have one phase and no extraction.
    alpha : float
        ``α`` of ``alpha-scaled`` (refused with another regime). At the default ``α = 1`` that
        regime is exactly the full model on the full loss (only its step rule differs): pass
        the ``α`` you mean (the CLI requires ``--alpha`` with ``--regime alpha-scaled``).
    tol : float
        Target relative error ``ε ≥ 0`` (every method).
    schedule : GradientSchedule, optional
        The gradient methods' schedule (:class:`overtensor.tensors.config.GradientSchedule`:
        model, ``δ_0``, ``μ``, ``δ_1``, epochs, phases, step size, optimizer, evaluation
        period); refused by ``power-method`` and ``spm``.
    extraction : Extraction, optional
        Merge, drop, polish and rank reduction of the over-parameterized solution
        (:class:`overtensor.tensors.config.Extraction`, including the cap ``rank`` on the
        number of returned terms); ``full`` regime of the gradient methods only.
    power : PowerOptions, optional
        Options of ``power-method`` (:class:`overtensor.tensors.power.PowerOptions`): the
        shifted (SS-HOPM, default) or plain variant, the shift rule, restarts and iterations.
    orthogonal : OrthogonalOptions, optional
        Options of ``regime="orthogonal"``
        (:class:`overtensor.tensors.orthogonal_fit.OrthogonalOptions`): the way of keeping ``R``
        orthogonal (``cayley`` by default, ``matrix_exp``, ``householder``, ``gram-schmidt``,
        ``lowdin``, ``riemannian``, ``stochastic``), whether the coefficients are trained, and the
        block size and period of stochastic OPT.
    random_state : int, torch.Generator or None
        Seeds every random draw (init and re-initializations).
    callback : callable ``(record, state) -> bool``, optional
        Called at every evaluation of a gradient method; returning True stops the fit.
    recorders : sequence of callables ``state -> dict``
        Extra per-evaluation diagnostics merged into the history records.
    runtime : Runtime, optional
        How it computes (:class:`overtensor.tensors.config.Runtime`): the engine (``auto``, the
        default fast route: compress, subspace power method, shortcuts on the small core, else
        the paper's schedule, :func:`overtensor.tensors.route.fast_route`; ``paper``, the
        paper's exact schedule, pinned by the experiments; ``autograd``), its shortcuts, device,
        dtype, threads and progress bar.

    Returns
    -------
    FitResult
        ``seconds`` is the wall time of the whole call (training, extraction and polish; the parts
        are ``info["seconds_train"]``, ``info["seconds_extract"]``, ``info["seconds_polish"]``);
        ``info["threads"]`` the number of threads used; ``info["route"]`` the engine that ran
        (``"spm"``, ``"shortcuts"``, ``"paper"``, or the direct method) and why. When the default
        route answers by the subspace power method, ``method`` is ``"spm"``, ``history`` is empty
        and there are no model parameters (``Runtime(engine="paper")`` gives the gradient
        method's).

    Raises
    ------
    ValueError
        Before any work, naming the argument and its value: an unknown method or regime, a bad
        width or tol, a field set away from its default that the method or regime does not use
        (``GradientSchedule(lr=0.1)`` with ``method="spm"``, ``Extraction(merge_cos=0.9)`` with
        ``regime="lazy"``, ``alpha`` without ``alpha-scaled``), a target that does not fit in
        memory.
    TypeError
        A group of the wrong type (``schedule={"lr": 0.1}``), a callback that is not callable.
    """
    t0 = time.perf_counter()
    check_choice("method", method, METHODS)
    check_choice("regime", regime, fit_regimes())
    schedule = check_group("schedule", schedule, GradientSchedule)
    extraction = check_group("extraction", extraction, Extraction)
    runtime = check_group("runtime", runtime, Runtime)
    power = None if power is None else check_group("power", power, PowerOptions)
    orthogonal = None if orthogonal is None else check_group("orthogonal", orthogonal,
                                                             OrthogonalOptions)
    alpha = check_float("alpha", alpha, minimum=0.0, strict=True)
    check_callable("callback", callback)
    recorders = check_callables("recorders", recorders)
    _refuse_unused(method, regime, alpha, schedule, extraction, runtime, power, orthogonal,
                   callback, recorders)
    tgt = as_target(target)
    check_single(tgt)
    if width is not None:
        width = check_int("width", width, 1)
    _, tol, _ = check_stopping(None, tol, None)
    dev = resolve_device(runtime.device if runtime.device is not None else tgt.device)
    dt = resolve_dtype(runtime.dtype if runtime.dtype is not None else tgt.dtype, dev)
    check_fit_memory(tgt, width, method, dt, dev)
    gen = make_generator(random_state)
    call = _Call(tgt, width, method, regime, alpha, tol, schedule, extraction, power, orthogonal,
                 gen, dt, dev, callback, recorders, runtime)
    with torch_threads(choose_threads(step_work(tgt, width), runtime.threads)) as used:
        result = call.run()
    result.seconds = time.perf_counter() - t0
    result.info["threads"] = used
    return result


def _refuse_unused(method, regime, alpha, schedule, extraction, runtime, power, orthogonal,
                   callback, recorders) -> None:
    """``ValueError`` naming every option that ``method`` in ``regime`` would ignore
    (:func:`overtensor.tensors.option_rules.unused_options`) and its value."""
    given = {**changed(schedule), **changed(extraction), **changed(runtime)}
    for key, value in (("power", power), ("orthogonal", orthogonal), ("callback", callback)):
        if value is not None:
            given[key] = value
    if len(recorders):
        given["recorders"] = recorders
    if alpha != 1.0:
        given["alpha"] = alpha
    bad = unused_options(method, regime, {k: GROUP_OF.get(k) for k in given})
    if bad:
        shown = ", ".join(f"{GROUPS[k].__name__}({k}={given[k]!r})" if k in GROUPS
                          else f"{k}={given[k]!r}" for k in bad)
        raise ValueError(f"method={method!r} with regime={regime!r} does not use {shown}; "
                         f"remove {'it' if len(bad) == 1 else 'them'}")


class _Call:
    """One validated call of :func:`fit`: runs the regime, the direct method, the fast route or
    the paper's schedule."""

    def __init__(self, tgt, width, method, regime, alpha, tol, schedule, extraction, power,
                 orthogonal, gen, dt, dev, callback, recorders, runtime) -> None:
        self.tgt, self.width, self.method, self.regime, self.alpha = tgt, width, method, regime, alpha
        self.tol, self.power, self.orthogonal, self.gen, self.dt, self.dev = (
            tol, power, orthogonal, gen, dt, dev)
        self.callback, self.recorders, self.runtime = callback, recorders, runtime
        # The flat, validated options of the engines below (the names of
        # overtensor.tensors.methods.GRADIENT_DEFAULTS).
        self.options = {**as_dict(schedule), **as_dict(extraction), "tol": tol}

    def run(self) -> FitResult:
        if self.regime != "full":
            return self._regime()
        if self.method in DIRECT_METHODS:
            return self._direct()
        options = self.options
        gradient_options(self.tgt, self.width, self.method, **options)  # all checked before work
        engine = self.runtime.engine
        why = f"engine={engine!r}"
        if engine == "auto":
            from overtensor.tensors.route import DEFAULT_SHORTCUTS, fast_route, route_blocker

            # The progress bar changes nothing the route computes: it shows the paper fallback's.
            given = {**options, "device": self.runtime.device, "dtype": self.runtime.dtype,
                     "callback": self.callback, "recorders": self.recorders}
            passed = {k: v for k, v in given.items() if not is_default(v, ROUTE_DEFAULTS[k])}
            blocker = route_blocker(self.method, passed, self.width, ROUTE_DEFAULTS)
            shortcuts = self.runtime.shortcuts
            if blocker is None:
                return fast_route(self.tgt, self.width, generator=self.gen,
                                  shortcuts=DEFAULT_SHORTCUTS if shortcuts is None else shortcuts,
                                  fit_options=passed, defaults=ROUTE_DEFAULTS,
                                  paper_fit=self._paper_on)
            if shortcuts is not None:
                raise ValueError(f"an explicit shortcuts=Shortcuts(...) cannot apply with "
                                 f"{blocker}; pass Runtime(engine='paper') or remove the option")
            why = f"the fast route does not apply with {blocker}"
        result = self._paper(self.tgt, self.width, self.gen,
                             "autograd" if engine == "autograd" else "paper")
        result.info["route"] = {"engine": "paper", "why": why}
        return result

    def _regime(self) -> FitResult:
        from overtensor.tensors.regimes import fit_regime

        keep = ("model", "init_scale", "weight_decay", "reinit_threshold", "epoch_steps",
                "max_steps", "tol", "lr", "optimizer", "signs", "patience", "eval_every")
        work, exponent = self.tgt.normalized()  # T/2^k: no square overflows (issue 10, item 4)
        return rescale_result(fit_regime(
            work, self.width, self.method, regime=self.regime, alpha=self.alpha,
            **{k: self.options[k] for k in keep}, generator=self.gen, dtype=self.dt,
            device=self.dev, callback=self.callback, recorders=self.recorders,
            progress=self.runtime.progress, orthogonal=self.orthogonal), self.tgt, exponent)

    def _direct(self) -> FitResult:
        rank = self.width if self.width is not None else _target_rank(self.tgt, self.method)
        if self.method == "spm":
            from overtensor.tensors.spm import spm

            out = spm(self.tgt, rank, generator=self.gen, dtype=self.dt, device=self.dev,
                      tol=self.tol)
        else:
            from overtensor.tensors.power import power_method

            out = power_method(self.tgt, rank, generator=self.gen, dtype=self.dt, device=self.dev,
                               tol=self.tol, progress=self.runtime.progress, options=self.power)
        out.info["route"] = {"engine": self.method, "why": f"method={self.method!r}"}
        return out

    def _paper_on(self, work, width, generator, _passed) -> FitResult:
        """The paper's schedule on the fast route's core (``work``), with the threads chosen
        for the core's size (as a fit of the core would choose them)."""
        with torch_threads(choose_threads(step_work(work, width), self.runtime.threads)):
            return self._paper(work, width, generator, "paper")

    def _paper(self, tgt, width, gen, engine) -> FitResult:
        """The paper's schedule (``engine="paper"`` or ``"autograd"``) of a gradient method."""
        from overtensor.tensors.gradient import gradient_fit

        cfg = gradient_options(tgt, width, self.method, **self.options)
        common = dict(device=self.dev, dtype=self.dt, callback=self.callback,
                      recorders=self.recorders, progress=self.runtime.progress)
        if engine == "paper" and cfg["optimizer"] in (None, "gd"):
            # Plain gradient descent: the batched engine (closed-form gradients, no autograd or
            # optimizer overhead) with a batch of one is ~4x faster per step on the CPU and takes
            # the same decisions (shared EpochSchedule, same random draws).
            from overtensor.tensors.batched import fit_batched

            out = fit_batched([tgt], width, self.method, random_states=[gen], **common,
                              **self.options)[0]
            if isinstance(out, Exception):
                raise out
            return out
        work, exponent = tgt.normalized()  # the batched engine above does the same per run
        return rescale_result(gradient_fit(work, **cfg, generator=gen, **common), tgt, exponent)


#: Defaults of the options the fast route looks at (a non-default one outside
#: :data:`overtensor.tensors.route.SHORTCUT_OPTIONS` sends the fit to the paper route).
ROUTE_DEFAULTS: dict[str, Any] = {
    **GRADIENT_DEFAULTS, "device": None, "dtype": None, "callback": None, "recorders": (),
}
