"""The default route of :func:`overtensor.fit` (``engine="auto"``): the fastest way to the same
decomposition (issue 21).

:func:`fast_route` tries the subspace power method (:mod:`overtensor.tensors.spm`) when the
flattening's rank is at most the width; else it compresses the target to the span of its
components (:mod:`overtensor.tensors.compression`) and runs ``beyond-lazy`` with
:class:`~overtensor.tensors.shortcuts.Shortcuts` on the small core
(:func:`overtensor.tensors.shortcuts.fit_small`), or the paper's schedule on the core when the
shortcuts cannot apply; the CP is lifted back and measured against the user's target.
``fit(..., runtime=Runtime(engine="paper"))`` keeps the paper's exact schedule
(``docs/method.md``, "Which settings reproduce the paper").

This module sits below :mod:`overtensor.tensors.fitting` (which calls it); the paper's fit it
falls back to is passed in as a function, so that the import graph stays acyclic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from overtensor._checks import check_int
from overtensor.tensors.compression import compress
from overtensor.tensors.config import GROUPS
from overtensor.tensors.loss import cp_inner
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.result import FitResult
from overtensor.tensors.shortcuts import Shortcuts
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target

#: The default of ``Runtime(shortcuts=...)`` on the fast route: where the shortcuts cannot apply the
#: route runs the paper's schedule on the core and says why in ``info``; an explicit
#: :class:`Shortcuts` is refused instead.
DEFAULT_SHORTCUTS = Shortcuts()


def route_blocker(method: str, fit_options: dict[str, Any], width: int | None,
                  defaults: dict[str, Any]) -> str | None:
    """Why :func:`overtensor.fit`'s fast route cannot apply whatever the target (``"method='gd'"``,
    ``"optimizer='adam'"``, ``"width=None"``), or ``None``; ``defaults``: ``fit``'s defaults."""
    if method != "beyond-lazy":
        return f"method={method!r}"
    if width is None:
        return "width=None"
    from overtensor.tensors.config import is_default

    bad = [k for k, v in fit_options.items()
           if k not in SHORTCUT_OPTIONS and not (k in defaults and is_default(v, defaults[k]))]
    return ", ".join(f"{k}={fit_options[k]!r}" for k in bad) or None


def fast_route(
    target: Target,
    width: int,
    *,
    generator: torch.Generator,
    shortcuts: Shortcuts,
    fit_options: dict[str, Any],
    defaults: dict[str, Any],
    paper_fit: Callable[..., FitResult],
    max_ratio: float = 0.5,
) -> FitResult:
    """The default route of :func:`overtensor.fit` (``engine="auto"``) for ``beyond-lazy``.

    1. **Subspace power method** (:func:`overtensor.tensors.spm.spm`, which first compresses the
       target to the span of its components) for order ``≥ 3`` when the flattening's numerical
       rank ``q`` is at most ``width`` and its basis fits the memory budget; its power iterations
       stop at ``SPM_CONV_FACTOR·tol``. Accepted when the CP meets ``tol`` against the target and
       is not degenerate (:func:`overtensor.tensors.diagnostics.degeneracy`), then reduced like
       every fit (:func:`~overtensor.tensors.reduction.reduce_rank`) unless the flattening's
       spectrum proves ``q`` terms minimal. Its random draws come from a copy of the generator,
       so a refused attempt leaves the next steps' draws as they were.
    2. Else **compress** (:func:`~overtensor.tensors.compression.compress`): the span of the
       components, found through ``contract``, when its dimension ``k ≤ max_ratio·d``;
    3. and ``beyond-lazy`` with :class:`Shortcuts` on the small (compressed) target
       (:func:`overtensor.tensors.shortcuts.fit_small`), or the paper's schedule when it is not
       small; the CP is lifted back to ``R^d`` and its error measured against ``target``.

    ``result.info["route"]`` records ``engine`` (``"spm"``, ``"shortcuts"`` or ``"paper"``), ``why``,
    ``compressed_dim`` (``k`` or None), ``spm`` (the attempt: flattening rank, error, or why it
    was skipped) and seconds; ``info["compression"]``: ``dim`` (``k`` or None) and ``seconds``
    (None when SPM answered: it compresses within its own time). ``result.params`` of a gradient
    fit stay in core coordinates (rows in ``R^k``). ``defaults`` are :func:`overtensor.fit`'s
    keyword defaults and ``paper_fit(target, width, generator, fit_options)`` its paper's schedule.
    """
    gen = generator
    # The paper's schedule from the generator as the caller handed it: the fallback below then
    # returns exactly what engine="paper" returns, so the route is never worse than it.
    paper_gen = torch.Generator(device=gen.device).set_state(gen.get_state())
    tol = fit_options.get("tol", 1e-4)
    route: dict[str, Any] = {"compressed_dim": None}
    result, route["spm"] = (
        _try_spm(target, width, gen, tol, fit_options)
        if shortcuts.spm else (None, {"skipped": "Shortcuts(spm=False)"}))
    if result is not None:
        k = result.info["spm"]["dim"]  # SPM compressed the target itself (module spm)
        comp_dim = k if k < target.dim else None
        route.update(engine="spm", compressed_dim=comp_dim, why=(
            f"the flattening has rank {route['spm']['rank']} <= width={width} and the subspace "
            f"power method met tol={tol:g}"))
        result.info["compression"] = {"dim": comp_dim, "seconds": None}
        result.info["route"] = route
        return result
    start = time.perf_counter()
    comp = compress(target, max_ratio=max_ratio, random_state=gen)
    seconds = time.perf_counter() - start
    work = target if comp is None else comp.core
    route.update(compressed_dim=None if comp is None else comp.dim, seconds_compress=seconds)
    lift = comp  # the basis the result's CP lives in (None: R^d already)
    result, skipped = _fit_with_shortcuts(work, width, gen, shortcuts, fit_options, defaults)
    # Why the subspace power method did not answer, at the head of every fallback's "why".
    no_spm = f"SPM did not answer ({route['spm'].get('skipped', '?')}); "
    if result is None:
        if shortcuts is not DEFAULT_SHORTCUTS:
            raise ValueError(f"an explicit shortcuts=Shortcuts(...) cannot apply: {skipped}; "
                             f"pass runtime=Runtime(engine='paper')")
        result = paper_fit(work, width, gen, fit_options)
        result.info["shortcuts"], result.info["shortcuts_skipped"] = None, skipped
        route.update(engine="paper", why=f"{no_spm}shortcuts skipped: {skipped}")
    elif not result.converged and shortcuts is DEFAULT_SHORTCUTS:
        # The shortcuts trade the paper's long phases for speed; where they stop short of
        # tol (e.g. the monomial xyz at symmetric rank 4 > d), the paper's schedule decides.
        missed = (f"the shortcuts stopped at {result.relative_error:.2e} > tol={tol:g} "
                  f"({result.stop_reason})")
        paper = paper_fit(target, width, paper_gen, fit_options)
        paper.seconds += result.seconds
        if paper.relative_error <= result.relative_error:  # the better of the two answers
            result, lift = paper, None
            route.update(engine="paper", why=f"{no_spm}{missed}: the paper's schedule on the target",
                         compressed_dim=None)
        else:
            result.seconds = paper.seconds
            route.update(engine="shortcuts", why=f"{no_spm}{missed}; the paper's schedule did no "
                         f"better ({paper.relative_error:.2e})")
    else:
        route.update(engine="shortcuts", why=f"{no_spm}beyond-lazy with Shortcuts() on the "
                     + ("compressed core" if comp is not None else "target (not compressed: the "
                        "components span more than half the dimensions, or noise)"))
    if lift is not None or result.cp.weights.dtype != target.dtype:
        cp = result.cp if lift is None else lift.lift(result.cp)
        cp = cp.to(dtype=target.dtype)  # the shortcuts work in float64
        rel = cp_relative_error(cp, target)
        result.cp, result.relative_error, result.converged = cp, rel, rel <= tol
        result.target = target
    result.seconds += seconds
    result.info["compression"] = {"dim": None if comp is None else comp.dim, "seconds": seconds}
    result.info["route"] = route
    return result


def _try_spm(target: Target, width: int, gen: torch.Generator, tol: float,
             fit_options: dict[str, Any]) -> tuple[FitResult | None, dict[str, Any]]:
    """Step 1 of :func:`fast_route`: the SPM result (in ``R^d``, float64) when it meets ``tol``
    against ``target``, else ``None``; and the attempt's record."""
    from overtensor.tensors.diagnostics import DEGENERATE_COS, degeneracy
    from overtensor.tensors.reduction import reduce_rank
    from overtensor.tensors.spm import SPMOptions, spm

    l = target.order
    if l < 3:
        return None, {"skipped": f"order {l} < 3"}
    if "rank" in fit_options:
        return None, {"skipped": "rank cap given"}
    # Options that shape the gradient method's trajectory or its extraction mean the gradient
    # method: SPM would leave them unused. Budgets and cadence (BUDGET_OPTIONS) are caps that an
    # answer without gradient steps honours, and SPM's rank reduction uses polish_iter.
    gradient = [k for k in fit_options if k in GROUPS and k not in BUDGET_OPTIONS]
    if gradient:
        return None, {"skipped": "gradient options given: " + ", ".join(
            f"{k}={fit_options[k]!r}" for k in gradient)}
    if not isinstance(target, CPTarget | MomentTarget | DenseTarget):
        return None, {"skipped": f"SPM does not read a {type(target).__name__}"}
    # The power iterations stop at SPM_CONV_FACTOR·tol (the reference's 1e-13 at most): the
    # components' error then sits orders of magnitude below tol, which is checked below.
    opts = SPMOptions(conv_tol=max(SPMOptions.conv_tol, SPM_CONV_FACTOR * tol))
    t0 = time.perf_counter()
    copy = torch.Generator(device=gen.device).set_state(gen.get_state())
    try:
        # A decomposition with more terms than asked is not the answer: refused before the
        # power iterations when the flattening's rank exceeds the width; the memory budget is
        # checked before the flattening is formed.
        res = spm(target, None, generator=copy, tol=tol, options=opts, max_rank=width)
    except ValueError as exc:
        return None, {"skipped": str(exc).replace("max_rank=", "width="),
                      "seconds": time.perf_counter() - t0}
    q = res.cp.rank
    rel = res.relative_error  # against the user's target (module spm)
    record: dict[str, Any] = {"rank": q, "relative_error": rel}
    if not rel <= tol:
        record["skipped"] = f"relative error {rel:.2e} > tol={tol:g}"
        record["seconds"] = time.perf_counter() - t0
        return None, record
    # A CP degeneracy (rank above border rank, e.g. Sym(a^3 b) at order 4) can meet tol with two
    # nearly parallel, cancelling terms: not the answer; the gradient route diagnoses it. It needs
    # a pair at |cos| >= DEGENERATE_COS, checked first in NumPy (the full test costs ~20 torch ops).
    A = res.cp.components.detach().cpu().numpy()
    n = np.linalg.norm(A, axis=1)
    G = np.abs(A @ A.T) / (n[:, None] * n)
    np.fill_diagonal(G, 0.0)
    if G.size and G.max() >= DEGENERATE_COS:
        # ‖T̂‖ stands in for ‖T‖ (they differ by at most tol·‖T‖ here): the check's threshold is
        # coarse, and a dense target's norm would cost a pass over its d^l entries. (Weights
        # divided by the largest first: no square overflows for targets near 1e300.)
        W, top = res.cp.components, float(res.cp.weights.abs().max())
        a = res.cp.weights / top
        norm = top * math.sqrt(max(float(cp_inner(a, W, a, W, l)), 0.0))
        diag = degeneracy(res.cp.weights, W, l, norm)
        if diag is not None:
            record["skipped"] = (f"CP degeneracy (|cos| = {diag['max_cos']:.4f}, weights up to "
                                 f"{diag['max_weight']:.1f}x ||T||)")
            record["seconds"] = time.perf_counter() - t0
            return None, record
    svs = res.info["spm"]["singular_values"]
    tail = math.sqrt(sum(x * x for x in svs[q - 1:]))  # error floor of q − 1 terms (Eckart–Young)
    if tail > tol:
        res.info["rank_reduction"] = {"tried": [], "stop": (
            f"rank {q} is minimal: the flattening's singular values exclude {q - 1} terms")}
    else:
        red = reduce_rank(res.cp, target.float64(), tol=tol,
                          polish_iter=fit_options.get("polish_iter", 100))
        res.info["rank_reduction"] = {"tried": red.tried, "stop": red.stop}
        res.cp = red.cp
        res.relative_error = red.relative_error
    if res.cp.weights.dtype != target.dtype:  # SPM works in float64; the CP in the target's
        res.cp = res.cp.to(dtype=target.dtype)
        res.relative_error = cp_relative_error(res.cp, target)
    res.converged = res.relative_error <= tol
    res.width = width
    record["seconds"] = res.seconds = time.perf_counter() - t0
    return res, record


#: The subspace power method's iterations on the route stop at this fraction of ``tol``.
SPM_CONV_FACTOR = 1e-3

#: Fields of fit's groups that bound or pace the gradient method without shaping it: given, they
#: keep the subspace-power-method step of the route (it takes no gradient steps).
BUDGET_OPTIONS = ("max_steps", "final_steps", "patience", "eval_every", "polish_iter")

#: Options of :func:`overtensor.fit` that the shortcut path accepts; any other one (a callback,
#: an optimizer, a rank cap, a regime, ...) runs the paper's schedule instead.
SHORTCUT_OPTIONS = (
    "init_scale", "weight_decay", "reinit_threshold", "epoch_steps", "epoch_growth", "max_steps",
    "final_steps", "tol", "lr", "signs", "patience", "eval_every", "polish_iter", "polish_below",
    "merge_cos", "drop_tol",
)


def _fit_with_shortcuts(core: Target, width: int, gen: torch.Generator, shortcuts: Shortcuts,
                        fit_options: dict[str, Any],
                        defaults: dict[str, Any]) -> tuple[FitResult | None, str | None]:
    """:func:`overtensor.tensors.shortcuts.fit_small` on the core, or ``(None, reason)`` when the core's
    kind or size needs the paper's schedule (options were checked by :func:`route_blocker`)."""
    from overtensor.tensors.methods import gradient_options
    from overtensor.tensors.shortcuts import fit_small

    if core.dtype != torch.float64:
        return None, f"the core is {core.dtype}, the shortcuts run in float64"
    opts = {k: fit_options.get(k, defaults[k]) for k in (
        *SHORTCUT_OPTIONS, "model", "optimizer", "extract", "main_epochs", "rank")}
    opts["width"] = check_int("width", width, 1)
    cfg = gradient_options(core, method="beyond-lazy", **opts)
    result = fit_small(core, cfg["width"], generator=gen, shortcuts=shortcuts, options=cfg)
    if result is None:
        return None, (f"the core is not small ({type(core).__name__} with {core.dim}^{core.order} "
                      f"entries; see overtensor.tensors.shortcuts.small_core)")
    return result, None
