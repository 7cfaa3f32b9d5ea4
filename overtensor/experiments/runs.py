"""General-purpose run functions (one fit per run)."""

from __future__ import annotations

import math
from typing import Any

from overtensor.experiments.params import FitParams
from overtensor.experiments.registry import register_run
from overtensor.tensors.config import split_options
from overtensor.tensors.methods import DIRECT_METHODS

#: Metrics that measure time: they differ between two executions of the same config.
TIMING_METRICS = frozenset({"seconds", "seconds_train", "seconds_extract", "seconds_polish", "time_to_eps"})

#: Methods that use the target's rank as width (a sweep's ``width``/``width_factor`` is ignored).
_RANK_WIDTH_METHODS = ("exact-rank", "power-method")

#: Every metric a ``fit`` run may return: :meth:`overtensor.tensors.result.FitResult.summary` (its
#: fixed keys, then the ``info`` entries of each method, regime and route, as
#: :func:`~overtensor.tensors.result.summarize_info` flattens them) and the ``eps`` hit. A spec's
#: ``metrics``/``success.metric`` are checked against it before any run; a test fits every
#: method and regime and checks that what they return is listed here.
FIT_METRICS = (
    # summary()
    "method", "order", "dim", "width", "found_rank", "relative_error", "model_relative_error",
    "steps", "seconds", "converged", "stop_reason", "rank", "recovered", "min_cos", "laziness",
    # summarize_info(): the short forms of the structured records
    "degeneracy_max_cos", "degeneracy_max_weight", "ranks_tried", "rank_stop", "merges_refused",
    "warnings", "route",
    # info of the gradient methods and the routes
    "polished", "seconds_train", "seconds_extract", "seconds_polish", "threads",
    "compression", "shortcuts", "shortcuts_skipped", "switch",
    # info of the regimes (lazy, random-features, alpha-scaled, orthogonal)
    "regime", "lr", "init_scale", "solver", "alpha", "kernel_products", "lazy_optimum_error",
    "rotation", "orthogonality_error", "energy_s1", "energy_s0", "energy_s1_change",
    "energy_s0_change",
    # info of the power method
    "found_order", "found_cos", "found_weights", "n_restarts", "n_iter", "variant",
    # the eps hit (config key eps)
    "steps_to_eps", "time_to_eps",
)


@register_run("fit", params=FitParams, metrics=FIT_METRICS)
def run_fit(config: dict[str, Any]) -> dict[str, Any]:
    """One :func:`overtensor.fit` on a :func:`overtensor.random_target`.

    Config keys: ``order, dim, rank, components, weights, noise`` (target); ``seed`` seeds both
    the target and the fit; ``width_factor`` sets ``width = ceil(width_factor * rank)``
    (ignored, like ``width``, by ``exact-rank`` and ``power-method``, which use the rank);
    ``eps`` adds ``steps_to_eps`` and ``time_to_eps``: the first evaluation at which the model's
    relative error is ``<= eps`` (None if never; for ``power-method``, the whole run's time when its
    final error is ``<= eps``). Every other key is a keyword of :func:`overtensor.fit`.
    """
    import time

    import overtensor as ot

    target, cfg, seed, eps = fit_inputs(config)
    hit: dict[str, Any] = {}
    if eps is not None and cfg.get("method") != "power-method":
        cfg["callback"] = eps_callback(eps, hit, time.perf_counter())
    if cfg.get("method", "beyond-lazy") not in ("power-method", "spm") and (
            cfg.get("regime", "full") == "full"):
        # The experiments reproduce the papers: their schedule, not fit's fast default route.
        cfg.setdefault("engine", "paper")
    result = ot.fit(target, random_state=seed + 10_000, **split_options(cfg))
    return fit_outputs(result, cfg.get("method"), eps, hit)


def fit_inputs(config: dict[str, Any]) -> tuple[Any, dict[str, Any], int, float | None]:
    """``(target, fit keywords, seed, eps)`` of a ``fit`` run config (see :func:`run_fit`); shared
    with the batched variant (:mod:`overtensor.experiments.batched_runs`)."""
    import overtensor as ot

    cfg = dict(config)
    seed = int(cfg.pop("seed", 0))
    target = ot.random_target(
        order=cfg.pop("order", 3), dim=cfg.pop("dim", 20), rank=cfg.pop("rank", 3),
        components=cfg.pop("components", "random"), weights=cfg.pop("weights", "equal"),
        noise=cfg.pop("noise", 0.0), random_state=seed,
    )
    factor = cfg.pop("width_factor", None)
    eps = cfg.pop("eps", None)
    if factor is not None:
        cfg["width"] = math.ceil(float(factor) * target.truth.rank)
    if cfg.get("method") in _RANK_WIDTH_METHODS:
        cfg.pop("width", None)
    if cfg.get("method") in DIRECT_METHODS:
        # A sweep's step budget is the gradient methods' (one spec compares methods under one
        # max_steps); the direct methods take no gradient steps, so it does not reach them.
        cfg.pop("max_steps", None)
    return target, cfg, seed, eps


def eps_callback(eps: float, hit: dict[str, Any], t0: float):
    """A fit callback filling ``hit`` with ``steps_to_eps``/``time_to_eps`` at the first
    evaluation whose relative error is ``<= eps``."""
    import time

    def callback(record, state):
        if not hit and record.get("relative_error", float("inf")) <= eps:
            hit.update(steps_to_eps=int(state.step), time_to_eps=time.perf_counter() - t0)
        return False

    return callback


def fit_outputs(result, method: str | None, eps: float | None, hit: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a ``fit`` run: the result's summary, the ``eps`` hit, a compact history."""
    out = result.summary()
    if eps is not None:
        if method == "power-method" and result.relative_error <= eps:
            hit.update(steps_to_eps=int(result.steps), time_to_eps=float(result.seconds))
        out.update(steps_to_eps=hit.get("steps_to_eps"), time_to_eps=hit.get("time_to_eps"))
    out["history"] = [
        {k: h[k] for k in ("step", "relative_error") if k in h} for h in result.history[::10]
    ]
    return out
