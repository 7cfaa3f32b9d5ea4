"""``beyond-lazy`` with fewer, cheaper steps on a small (compressed) target.

Users reach this through ``overtensor.fit(target, width)`` (``engine="auto"``, the default; options
``fit(..., shortcuts=Shortcuts(...))``), whose fast route
(:func:`overtensor.tensors.route.fast_route`) calls :func:`fit_small`, the internal loop.

The paper's schedule (docs/theory/tensors.md §5, :func:`overtensor.fit`) keeps training with weight decay
until the
error has stagnated for ``patience`` epochs, then trains ``μ = 0`` until ``tol``, and only then
extracts and polishes. On a well-posed target the rows have found the components long before:
in a typical order-3, rank-5 fit the error reaches the weight-decay plateau (~1e-3) after 150
steps and the remaining ~1 300 steps only confirm the stagnation. :func:`fit_small` runs the same
dynamics — homogeneous model, same initialization and re-initializations from the same generator,
same :class:`~overtensor.training.schedule.EpochSchedule`, plain gradient descent — with
these :class:`Shortcuts`:

* **early switch** (``early_switch``): at each evaluation where the model's own error is at most
  ``switch_below`` (the bar below which extraction may polish at all, ``polish_below``), the
  rows are merged (:func:`~overtensor.tensors.extraction.merge_components` at the coarsest merge
  ``COARSE_MERGES[-1]``). When two consecutive checks give the same number of terms with
  components agreeing to ``|cos| ≥ stable_cos``, the extracted CPs (merged at ``merge_cos`` and
  at each coarser merge, fewest terms first) are refined by Levenberg–Marquardt
  (:func:`~overtensor.tensors.gauss_newton.levenberg_marquardt`). The first within ``tol`` ends the fit;
  if none is, training goes on (the next stable check tries again).
  The polish is gated on the model's error exactly as in :func:`finish_fit` (it refines a fit,
  it does not solve the problem on its own);
* **curvature step size** (``adaptive_lr``): ``η = lr_factor / L`` with ``L`` the top
  eigenvalue of the loss's Hessian at the current parameters, estimated at every evaluation by
  a few power iterations on Hessian-vector products (finite differences of the closed-form
  gradient), capped at ``max_lr_ratio`` times the default step, and halved on a loss increase;
* **float32 discovery** (``float32``): steps in float32, errors, decisions and polish in
  float64 (off by default: on a core of a few dozen entries a step costs the same in both);
* **NumPy steps**: the step itself is :func:`overtensor.tensors.small_core.gd_steps` (same closed form as
  the batched engine, without torch's per-operation overhead).

The minimal number of terms is certified when the unfolding's spectrum proves that one term
fewer cannot reach ``tol`` (:mod:`overtensor.tensors.unfolding`); otherwise
:func:`~overtensor.tensors.reduction.reduce_rank` runs as in :func:`finish_fit`.

``fit(..., engine="paper")`` runs the paper's schedule instead; see ``docs/method.md``, "Which
settings reproduce the paper".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from overtensor._checks import check_float, check_int
from overtensor.optim.steps import curvature_step
from overtensor.tensors import small_core as small
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.extraction import merge_components
from overtensor.tensors.gauss_newton import MAX_UNKNOWNS
from overtensor.tensors.gradient import (
    COARSE_MERGES,
    _diagnose,
    finish_fit,
    prepare_fit,
    restart_rows,
    signs_follow_residual,
)
from overtensor.tensors.models import model_cp
from overtensor.tensors.reduction import HEADROOM, reduce_rank
from overtensor.tensors.result import FitResult, rescale_result
from overtensor.tensors.small_core import MAX_DENSE_ENTRIES, SmallCore, gd_steps, loss_and_error
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target
from overtensor.tensors.unfolding import min_relative_error, unfolding_singular_values
from overtensor.training.loop import check_divergence
from overtensor.training.schedule import EpochSchedule

#: Power iterations per curvature estimate (the first starts from the gradient's direction; at a
#: small initialization it only has to show that ``L`` is below ``1/(max_lr_ratio·lr)``).
CURVATURE_ITERS = 3


@dataclass(frozen=True)
class Shortcuts:
    """Speed-ups of ``beyond-lazy`` on a small core, passed as
    ``overtensor.fit(target, width, shortcuts=Shortcuts(...))``.

    ``Shortcuts()`` (the default of ``fit``'s ``engine="auto"``) turns them on;
    ``engine="paper"`` runs the paper's schedule. What each switch does, and why it keeps the
    answer, is described in the docstring of the module :mod:`overtensor.tensors.shortcuts`; when
    they apply in :func:`overtensor.tensors.route.fast_route`.

    Attributes
    ----------
    early_switch : bool
        Extract and polish as soon as the extracted CP is stable (default True).
    check_every : int
        Steps between two evaluations (and switch checks): ``min(eval_every, check_every)``
        (default 5; an evaluation costs about as much as two steps).
    stable_cos : float
        ``|cos|`` two checks' components must share to count as unchanged (default 0.99).
    confirm : bool
        Require two agreeing checks before every attempt. Default False: the first attempt comes
        at the first check below ``polish_below`` (Levenberg–Marquardt decides whether the
        extraction is good enough); after a failed attempt the next ones wait for a stable
        extraction.
    adaptive_lr : bool
        Step size ``lr_factor / L`` from the current Hessian's top eigenvalue (default True).
    curvature_every : int
        Steps between two estimates of ``L`` (default 50).
    lr_factor : float
        Fraction of ``1/L`` (``< 2`` is stable for a quadratic; default 1).
    max_lr_ratio : float
        Cap of the adaptive step as a multiple of the default step (default 8).
    float32 : bool
        Gradient steps in float32 (default False).
    lm_iter : int
        Levenberg–Marquardt iterations per switch attempt (default 30).
    spm : bool
        Let :func:`overtensor.fit`'s fast route try the subspace power method first (default
        True; :func:`overtensor.tensors.route.fast_route`, step 1).
    """

    early_switch: bool = True
    check_every: int = 5
    stable_cos: float = 0.99
    confirm: bool = False
    adaptive_lr: bool = True
    curvature_every: int = 50
    lr_factor: float = 1.0
    max_lr_ratio: float = 8.0
    float32: bool = False
    lm_iter: int = 30
    spm: bool = True

    def __post_init__(self) -> None:
        # A non-empty string is truthy: Shortcuts(float32="no") must not switch float32 on.
        for name in ("early_switch", "confirm", "adaptive_lr", "float32", "spm"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}: {value!r}")
        check_float("stable_cos", self.stable_cos, minimum=0.0, maximum=1.0)
        check_float("lr_factor", self.lr_factor, minimum=0.0, maximum=2.0, strict=True)
        check_float("max_lr_ratio", self.max_lr_ratio, minimum=1.0)
        for name in ("lm_iter", "check_every", "curvature_every"):
            # check_int, as every other door: NumPy integers are integers too.
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))


def small_core(target: Target, scale: float) -> SmallCore | None:
    """The NumPy form of ``scale · target`` when it is small enough for :func:`fit_small`, else
    ``None`` (dense ``k^l ≤`` :data:`~overtensor.tensors.small_core.MAX_DENSE_ENTRIES`; CP and moment
    targets in CP form, a moment target with more samples than ``k^{l−1}`` made dense first when
    that is within the same limit — one ``O(n k^l)`` pass instead of ``O(n k)`` per row and step)."""
    t64 = target.float64()
    l, k = t64.order, t64.dim
    if isinstance(t64, DenseTarget):
        if k**l > MAX_DENSE_ENTRIES:
            return None
        arr = (t64.array * scale).numpy()
        return SmallCore(l, unfolded=arr.reshape(-1, k).copy())
    if isinstance(t64, MomentTarget):
        X = t64.samples
        if X.shape[0] > k ** (l - 1) and k**l <= MAX_DENSE_ENTRIES:
            arr = torch.einsum("nk,nl->kl", X, X) if l == 2 else _moment_dense(X, l)
            return SmallCore(l, unfolded=(arr * scale).reshape(-1, k).numpy().copy())
        n = X.shape[0]
        return SmallCore(l, weights=np.full(n, scale / n), factors=X.numpy().copy())
    if isinstance(t64, CPTarget) and t64.factors.ndim == 2:
        return SmallCore(l, weights=(t64.weights * scale).numpy().copy(),
                         factors=t64.factors.numpy().copy())
    return None


def _moment_dense(X: torch.Tensor, l: int) -> torch.Tensor:
    n, k = X.shape
    out = X
    for _ in range(l - 1):
        out = (out.unsqueeze(-1) * X.unsqueeze(1)).reshape(n, -1)
    return (out.sum(0) / n).reshape((k,) * l)


def _cast(core: SmallCore, dtype) -> SmallCore:
    def cast(x):
        return None if x is None else x.astype(dtype)
    return SmallCore(core.order, cast(core.unfolded), cast(core.weights), cast(core.factors))


def fit_small(
    target: Target,
    width: int,
    *,
    generator: torch.Generator,
    shortcuts: Shortcuts,
    options: dict[str, Any],
) -> FitResult | None:
    """``beyond-lazy`` on a small target with :class:`Shortcuts`; ``None`` when the target is
    not small (then use :func:`overtensor.fit`).

    Parameters
    ----------
    target : Target
        The (compressed) target; reported errors are measured against it in float64.
    width : int
        ``m``.
    generator : torch.Generator
        Every random draw (initialization, re-initializations), in the order of ``fit``.
    shortcuts : Shortcuts
    options : dict
        Validated keyword arguments of the gradient loop, as returned by
        :func:`overtensor.tensors.methods.gradient_options` for ``method="beyond-lazy"``.

    Returns
    -------
    FitResult or None
        ``info["shortcuts"]`` records the switch (``switched_at``: step or None, ``attempts``) and
        the step sizes used.
    """
    t0 = time.perf_counter()
    work, exponent = target.normalized()
    c = options
    tgt, _, scale, params, params0, signs = prepare_fit(
        work, model="homogeneous", width=width, init_scale=c["init_scale"], signs=c["signs"],
        generator=generator, dtype=torch.float64, device=torch.device("cpu"),
        flip=c["reinit_threshold"] is not None)
    core64 = small_core(tgt, float(scale))
    if core64 is None:
        return None
    dtype = np.float32 if shortcuts.float32 else np.float64
    core = _cast(core64, dtype) if shortcuts.float32 else core64
    W64 = params["W"].numpy()  # shares memory with the torch tensor (re-initializations write it)
    W0 = params0["W"].numpy()
    norm0 = float(np.linalg.norm(W0))  # laziness ‖W − W_0‖/‖W_0‖ (relative_distance)
    s = signs.numpy()
    sched = EpochSchedule(
        epoch_steps=c["epoch_steps"], epoch_growth=c["epoch_growth"], max_steps=c["max_steps"],
        final_steps=c["final_steps"], tol=c["tol"], patience=c["patience"],
        eval_every=min(c["eval_every"], shortcuts.check_every), weight_decay=c["weight_decay"],
        reinit=c["reinit_threshold"] is not None, main_epochs=c.get("main_epochs"))
    lr0 = c["lr"]
    lr = lr0
    spectrum = None
    if shortcuts.early_switch:
        # The unfolding's singular values: from the dense core's own unfolding when there is one
        # (scale-free: only ratios are used), else from the target (CP, moments).
        spectrum = (torch.from_numpy(np.linalg.svd(core64.unfolded, compute_uv=False))
                    if core64.unfolded is not None else unfolding_singular_values(tgt))
    history: list[dict[str, Any]] = []
    prev: SymmetricCP | None = None
    attempts, switched, lrs = 0, None, []
    found: tuple[SymmetricCP, float, dict[str, Any]] | None = None
    last_loss = (loss_and_error(core64, W64, s, sched.weight_decay)[0] if shortcuts.adaptive_lr
                 else np.inf)
    vec, next_curvature = None, 0
    while (n := sched.next_steps()) > 0:
        if sched.take_reinit():
            restart_rows(params, signs, "homogeneous", tgt, scale, c["reinit_threshold"],
                         c["init_scale"], generator,
                         orient_signs=signs_follow_residual(tgt, c["signs"]))
        mu = sched.weight_decay
        if shortcuts.adaptive_lr and sched.step >= next_curvature:
            next_curvature = sched.step + shortcuts.curvature_every
            L, vec = _top_curvature(core, W64.astype(dtype), s, mu, vec)
            lr = curvature_step(L, factor=shortcuts.lr_factor, cap=shortcuts.max_lr_ratio * lr0,
                                flat=lr0)
        W = W64.astype(dtype) if shortcuts.float32 else W64
        backup = W64.copy()
        # Overflow in a step that overshot is handled below (undo and halve) or reported by
        # check_divergence; NumPy's warnings would only repeat it.
        quiet = np.errstate(over="ignore", invalid="ignore")
        quiet.__enter__()
        gd_steps(core, W, s, mu, lr, n)
        if shortcuts.float32:
            W64[:] = W
        loss, rel = loss_and_error(core64, W64, s, mu)
        while shortcuts.adaptive_lr and not loss <= 1.5 * last_loss + 1e-12 and lr > lr0:
            # The steps overshot (a sharper region than the estimate): undo them and halve.
            W64[:] = backup
            lr = max(lr / 2, lr0)
            W = W64.astype(dtype) if shortcuts.float32 else W64
            gd_steps(core, W, s, mu, lr, n)
            if shortcuts.float32:
                W64[:] = W
            loss, rel = loss_and_error(core64, W64, s, mu)
        quiet.__exit__(None, None, None)
        last_loss = loss
        lrs.append(lr)
        sched.advance(n)
        if not math.isfinite(loss):
            check_divergence(torch.tensor(loss), sched.step, lr)
        rec = sched.record(loss, rel, float(np.linalg.norm(W64 - W0) / norm0))
        history.append(rec)
        sched.observe(rel)
        if shortcuts.early_switch and rel <= c["polish_below"]:
            a, V = _model_cp(W64, s)  # as models.model_cp("homogeneous"), without torch
            cand = merge_components(a / scale, V, tgt.order, merge_cos=COARSE_MERGES[-1],
                                    drop_tol=c["drop_tol"])
            confirm = shortcuts.confirm or attempts > 0
            if not confirm or (prev is not None and _same(prev, cand, shortcuts.stable_cos)):
                attempts += 1
                found = _switch(a / scale, V, tgt, core64, float(scale), c, shortcuts, spectrum,
                                coarsest=cand)
                if found is not None:
                    switched = sched.step
                    sched.stop("tol")
                    break
            prev = cand
    if found is None and shortcuts.early_switch and history and (
            history[-1]["relative_error"] <= c["polish_below"]):
        # The schedule ended (tol, stagnation or budget) before a stable check: the same
        # Levenberg-Marquardt extraction, then finish_fit's own if it fails.
        a, V = model_cp("homogeneous", params, signs)
        attempts += 1
        found = _switch(a / scale, V, tgt, core64, float(scale), c, shortcuts, spectrum)
        switched = sched.step if found is not None else None
    seconds = time.perf_counter() - t0
    info_extra = {"switched_at": switched, "attempts": attempts,
                  "lr": [float(min(lrs, default=lr)), float(max(lrs, default=lr))]}
    if found is None:
        result = finish_fit(
            tgt, scale, "homogeneous", params, params0, signs, history, sched,
            method="beyond-lazy", width=width, extract=c["extract"],
            polish_iter=c["polish_iter"], polish_below=c["polish_below"],
            merge_cos=c["merge_cos"], drop_tol=c["drop_tol"], tol=c["tol"], seconds=seconds,
            rank=c["rank"])
    else:
        result = _result(found, tgt, scale, params, params0, signs, history, sched, width, c,
                         seconds, t_start=time.perf_counter())
    result.info["shortcuts"] = info_extra
    return rescale_result(result, target, exponent)


def _model_cp(W: np.ndarray, s: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, V)`` of the homogeneous model: ``a_i = s_i ‖w_i‖²``, ``v_i = w_i/‖w_i‖``."""
    sq = np.maximum((W * W).sum(1), np.finfo(W.dtype).tiny)
    return torch.from_numpy(s * sq), torch.from_numpy(W / np.sqrt(sq)[:, None])


def _same(prev: SymmetricCP, cur: SymmetricCP, stable_cos: float) -> bool:
    """Same number of terms, and every current component has a partner with ``|cos| ≥ stable_cos``."""
    if prev.rank != cur.rank or cur.rank == 0:
        return False
    cos = (cur.components @ prev.components.T).abs()
    return bool((cos.max(dim=1).values >= stable_cos).all())


def _switch(a: torch.Tensor, V: torch.Tensor, tgt: Target, core64: SmallCore, scale: float,
            c: dict[str, Any], shortcuts: Shortcuts, spectrum: torch.Tensor | None,
            coarsest: SymmetricCP | None = None):
    """Extract and refine by Levenberg–Marquardt; the first CP within ``tol`` with its record.

    Candidates, fewest terms first and never below the rank ``need`` the spectrum requires: the
    coarsest merge (``COARSE_MERGES[-1]``; ``coarsest`` when already computed), pruned to
    ``need`` terms by the cheapest removals when it has more (a component still split over rows
    not yet aligned), then the merges at ``merge_cos`` and the coarser levels.
    """
    tol = c["tol"]
    need = 1
    if spectrum is not None:
        while need < len(spectrum) and min_relative_error(spectrum, need) > tol:
            need += 1
    levels = [COARSE_MERGES[-1], *(x for x in reversed(COARSE_MERGES[:-1]) if x < c["merge_cos"]),
              c["merge_cos"]]
    tried: list[dict[str, Any]] = []
    seen: set[int] = set()

    def attempt(cos: float, cp: SymmetricCP):
        if cp.rank in seen or cp.rank < need or cp.rank * (cp.dim + 1) > MAX_UNKNOWNS:
            return None
        seen.add(cp.rank)
        c0 = cp.weights.numpy() * scale
        cn, Un, err = small.levenberg_marquardt(core64, c0, cp.components.numpy().copy(),
                                                max_iter=shortcuts.lm_iter,
                                                stop_below=HEADROOM * tol)
        tried.append({"merge_cos": cos, "rank": cp.rank, "relative_error": err})
        if err <= tol:
            norms = np.sqrt((Un * Un).sum(1))
            # err is already the float64 error against the target (core64 is its float64
            # twin at unit norm); the fast route measures the lifted CP against the user's.
            out = SymmetricCP(torch.from_numpy(cn * norms**tgt.order / scale),
                              torch.from_numpy(Un / norms[:, None]), tgt.order).canonical()
            return out, err, {"merge_cos": cos, "tried": tried, "minimal": cp.rank == need}
        return None

    with torch.no_grad():
        first = coarsest if coarsest is not None else merge_components(
            a, V, tgt.order, merge_cos=levels[0], drop_tol=c["drop_tol"])
        if first.rank > need >= 1:
            U = first.components.numpy()
            while U.shape[0] > need:
                U = min((np.delete(U, j, axis=0) for j in range(U.shape[0])),
                        key=lambda X: small.relative_error(
                            core64, small.least_squares_weights(core64, X), X))
            w = small.least_squares_weights(core64, U) / scale
            pruned = SymmetricCP(torch.from_numpy(w), torch.from_numpy(U.copy()), tgt.order)
            if (hit := attempt(-1.0, pruned)) is not None:
                return hit
        if (hit := attempt(levels[0], first)) is not None:
            return hit
        for cos in levels[1:]:
            cp = merge_components(a, V, tgt.order, merge_cos=cos, drop_tol=c["drop_tol"])
            if (hit := attempt(cos, cp)) is not None:
                return hit
    return None


def _result(found, tgt, scale, params, params0, signs, history, sched, width, c, seconds,
            t_start) -> FitResult:
    """The :class:`FitResult` of a switched fit, with the records of :func:`finish_fit`."""
    cp, err, rec = found
    info: dict[str, Any] = {"merges": [{"merge_cos": rec["merge_cos"], "from": None,
                                        "to": cp.rank, "accepted": True,
                                        "reason": f"Levenberg-Marquardt reached {err:.1e}"}]}
    with torch.no_grad():
        a, V = model_cp("homogeneous", params, signs)
        model_rel = float(history[-1]["relative_error"])
    if rec["minimal"]:
        info["rank_reduction"] = {"tried": [], "stop": (
            f"rank {cp.rank} is minimal: the unfolding's singular values exclude "
            f"{cp.rank - 1} terms")}
    elif c["rank"] is None:
        red = reduce_rank(cp, tgt, tol=c["tol"], polish_iter=c["polish_iter"])
        info["rank_reduction"] = {"tried": red.tried, "stop": red.stop}
        cp, err = red.cp, red.relative_error
    _diagnose(info, cp, a / scale, V, tgt, err, width, c["drop_tol"])
    info["polished"] = True
    t_end = time.perf_counter()
    info.update(seconds_train=seconds, seconds_extract=0.0, seconds_polish=t_end - t_start,
                threads=torch.get_num_threads(), switch=rec["tried"])
    return FitResult(
        cp=cp, relative_error=err, model_relative_error=model_rel, history=history,
        steps=sched.step, seconds=seconds + t_end - t_start, converged=err <= c["tol"],
        stop_reason="tol", method="beyond-lazy", width=width, target=tgt,
        params={k: v.detach().clone() for k, v in params.items()}, params0=params0,
        signs=signs, model="homogeneous", info=info, scale=float(scale))


def _top_curvature(core: SmallCore, W: np.ndarray, s: np.ndarray, mu: float,
                   v: np.ndarray | None, iters: int = CURVATURE_ITERS) -> tuple[float, np.ndarray]:
    """Top eigenvalue of the loss's Hessian at ``W`` and its vector, by power iteration on
    finite-difference Hessian-vector products of the closed-form gradient, warm-started from the
    previous evaluation's vector ``v`` (the gradient's direction the first time)."""
    g0 = _grad(core, W, s, mu)
    if v is None:
        v = g0
    v = v / max(float(np.linalg.norm(v)), 1e-300)
    h = 1e-5 * max(float(np.linalg.norm(W)), 1e-3)
    lam = 0.0
    for _ in range(iters):
        Hv = (_grad(core, W + h * v, s, mu) - g0) / h
        lam = float(np.sum(v * Hv))
        nv = float(np.linalg.norm(Hv))
        if nv == 0:
            break
        v = Hv / nv
    return abs(lam), v


def _grad(core: SmallCore, W: np.ndarray, s: np.ndarray, mu: float) -> np.ndarray:
    """The gradient ``∇W`` (one step of :func:`gd_steps` with ``η = 1`` on a copy)."""
    X = W.copy()
    gd_steps(core, X, s, mu, 1.0, 1)
    return W - X
