"""Gradient methods on over-parameterized models: ``beyond-lazy``, ``gd``, ``exact-rank``.

All three share one loop (:func:`gradient_fit`); they differ in model, width, weight decay and
re-initialization, as set by :data:`METHOD_DEFAULTS`.

``beyond-lazy`` (Wang, Wu, Lee, Ma, Ge, NeurIPS 2020; reconstructed in docs/theory/tensors.md §5):

1. the target is normalized to ``‖T*‖ = 1``; every row starts with norm ``δ_0`` in a uniformly
   random direction;
2. epochs of ``K`` gradient steps on ``½‖T(W) − T*‖² + (μ/2)‖W‖²`` on the ``homogeneous`` model;
   epoch lengths grow by the factor ``γ`` (``epoch_growth``; 1 keeps them fixed);
3. at each epoch boundary, rows whose norm fell below ``δ_1``, and rows parked on a heavier
   row's direction (:func:`_redundant_rows`; merged into it first when their terms reinforce),
   are re-drawn with norm ``δ_0`` in a fresh random
   direction, so that free directions keep searching the residual. For odd ``l``,
   fresh rows (at the start and when re-drawn) whose direction sees a negative residual
   (``s_i R(w̄_i) < 0``) are flipped, ``w_i → −w_i``. Why: with ``l`` odd a direction with
   negative overlap ``v_j`` obeys ``dv_j/dt ≈ l λ_j v_j^{l−1} > 0`` and stalls near ``v_j = 0``,
   orthogonal to everything left, while its norm decays only slowly; its mirror image escapes.
   Rows already under way are never flipped (that would undo an escape in progress). For even
   ``l`` and a dense target of unknown sign the twin rule sets the sign of a re-drawn row,
   ``s_i = sign R(w̄_i)`` (:func:`signs_follow_residual`, issue 22);
4. once the error stops improving (at the ``μ``-bias level) or reaches ``tol``, a final phase with
   ``μ = 0`` removes the weight-decay bias; then merge/drop/polish (:mod:`overtensor.tensors.extraction`),
   rank reduction or a rank cap (:mod:`overtensor.tensors.reduction`) and diagnostics
   (:mod:`overtensor.tensors.diagnostics`), all in :func:`finish_fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor.optim.registry import make_optimizer
from overtensor.regimes.diagnostics import relative_distance
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.diagnostics import (
    degeneracy,
    degeneracy_advice,
    rank_support,
    rank_support_advice,
)
from overtensor.tensors.extraction import merge_components, polish
from overtensor.tensors.loss import half_sq_distance, relative_error
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.models import balanced_signs, get_model, init_params, model_cp
from overtensor.tensors.reduction import reduce_rank
from overtensor.tensors.result import FitResult
from overtensor.tensors.targets import DenseTarget, Target
from overtensor.tensors.unfolding import square_unfolding_eigenvalues
from overtensor.training.loop import Divergence, Evaluation, Progress, gd_steps, train_loop
from overtensor.training.schedule import EpochSchedule


@dataclass
class FitState:
    """What recorders and callbacks see at an evaluation point."""

    target: Target
    scale: torch.Tensor
    model: str
    params: dict[str, torch.Tensor]
    params0: dict[str, torch.Tensor]
    signs: torch.Tensor | None
    step: int
    epoch: int
    phase: str
    weight_decay: float
    extra: dict[str, Any] = field(default_factory=dict)

    def cp(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The model tensor as ``(a, V)`` in the normalized scale (target has unit norm)."""
        return model_cp(self.model, self.params, self.signs)


Recorder = Callable[[FitState], dict[str, Any]]


def needs_negative_terms(target: Target) -> bool:
    """Even order and (known negative weights, or a dense array of unknown sign)."""
    if target.order % 2 == 1:
        return False
    if target.truth is not None:
        return bool((target.truth.weights < 0).any())
    return isinstance(target, DenseTarget)


def signs_follow_residual(target: Target, signs: str) -> bool:
    """Whether the fixed signs are set by the residual (issue 22, item 1): ``signs="auto"``, even
    order, and a target whose sign is unknown (a dense array without a known truth).

    Then every re-drawn row takes the sign of the residual in its direction,
    ``s_i = sign R(w̄_i)`` (:func:`_flip_small_rows`; the rows at the start take theirs from the
    square unfolding, :func:`initial_signs`, or, where that is too large, from the residual as
    well): the even-order twin of the
    odd-order mirror ``w_i → −w_i``. A term can only grow while ``s_i R(w̄_i) > μ/2``
    (module docstring, step 3), and the rule is symmetric under ``T → −T`` (every sign flips with
    the target), so a fit of ``−T`` is the mirror image of the fit of ``T`` from the same seed:
    the answer does not depend on the sign of the target. Fixed alternating signs instead gave a
    single-term fit a positive term whatever the target (Kofidis & Regalia's tensor, whose best
    rank-1 term is ``−1.0954``, was fitted by ``0.8893``).
    """
    return (signs == "auto" and target.order % 2 == 0 and target.truth is None
            and isinstance(target, DenseTarget))


def initial_signs(target: Target, signs: str, width: int, dtype: torch.dtype,
                  device: torch.device) -> tuple[torch.Tensor, bool]:
    """The fixed signs ``s`` (shape ``(width,)``) at the start, and whether they are still to be
    oriented by the residual at the start (:func:`_flip_small_rows`).

    ``positive``: all +1; ``balanced``: alternating ±1. ``auto``: +1 unless the order is even and
    negative terms may be needed; then, with a known truth, the truth's signs in decreasing order
    of ``|λ_j|``, cycled over the rows (row ``i`` gets the sign of the ``(i mod r)``-th heaviest
    term: a width-1 fit the sign of the heaviest term, ``width = r`` exactly the truth's signs,
    and ``−T`` the opposite signs of ``T``). Without a truth (a dense array), the same rule with
    the eigenvalues of the square unfolding in place of the weights (their signs count the
    positive and negative terms, :func:`~overtensor.tensors.unfolding.square_unfolding_eigenvalues`;
    the significant ones, ``|μ| ≥ 1e-8 max|μ|``); where that is too large, +1 everywhere, then
    oriented by the residual (:func:`signs_follow_residual`).
    """
    if signs == "balanced":
        return balanced_signs(width, True, dtype, device), False
    if signs == "auto" and needs_negative_terms(target):
        if target.truth is not None:
            w = target.truth.weights.detach().to("cpu", torch.float64)
            w = w[torch.argsort(w.abs(), descending=True)]
        else:
            w = square_unfolding_eigenvalues(target)
            if w is None:
                return balanced_signs(width, False, dtype, device), True
            w = w[w.abs() >= 1e-8 * w.abs().max()]
        ordered = torch.where(w < 0, -1.0, 1.0).to(torch.float64)
        return ordered[torch.arange(width) % ordered.numel()].to(dtype=dtype, device=device), False
    return balanced_signs(width, False, dtype, device), False


def gradient_fit(
    target: Target,
    *,
    method: str,
    model: str,
    width: int,
    init_scale: float,
    weight_decay: float,
    reinit_threshold: float | None,
    epoch_steps: int,
    epoch_growth: float,
    max_steps: int,
    final_steps: int,
    tol: float,
    lr: float,
    optimizer: Any,
    signs: str,
    patience: int,
    eval_every: int,
    extract: bool,
    polish_iter: int,
    polish_below: float,
    merge_cos: float,
    drop_tol: float,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    callback: Callable[[dict[str, Any], FitState], bool | None] | None = None,
    recorders: Sequence[Recorder] = (),
    progress: bool = False,
    main_epochs: int | None = None,
    rank: int | None = None,
) -> FitResult:
    """The shared loop. See the module docstring; arguments are validated by :func:`overtensor.fit`.

    The epoch, evaluation and stopping logic lives in
    :class:`~overtensor.training.schedule.EpochSchedule`, the loop in
    :func:`~overtensor.training.loop.train_loop`, and the set-up and
    extraction in :func:`prepare_fit` / :func:`finish_fit`, which the batched engine
    (:mod:`overtensor.tensors.batched`) shares.
    """
    t0 = time.perf_counter()
    target, sq, scale, params, params0, s = prepare_fit(
        target, model=model, width=width, init_scale=init_scale, signs=signs,
        generator=generator, dtype=dtype, device=device, flip=reinit_threshold is not None,
        orient_odd=True)
    for p in params.values():
        p.requires_grad_(True)
    opt = make_optimizer(optimizer, params.values(), lr)
    sched = EpochSchedule(
        epoch_steps=epoch_steps, epoch_growth=epoch_growth, max_steps=max_steps,
        final_steps=final_steps, tol=tol, patience=patience, eval_every=eval_every,
        weight_decay=weight_decay, reinit=reinit_threshold is not None, main_epochs=main_epochs)

    def loss_fn() -> torch.Tensor:
        a, V = model_cp(model, params, s)
        loss = half_sq_distance(a, V, target, scale, sq)
        mu = sched.weight_decay
        if mu > 0:
            loss = loss + 0.5 * mu * (params["W"] ** 2).sum()
        return loss

    def evaluate(loss: torch.Tensor) -> Evaluation:
        with torch.no_grad():
            a, V = model_cp(model, params, s)
            rel = float(relative_error(a, V, target, scale))
            state = FitState(target, scale, model, params, params0, s, sched.step, sched.epoch,
                             sched.phase, sched.weight_decay)
            rec = evaluation_record(sched, state, float(loss), rel,
                                    relative_distance(params, params0, ["W"]), recorders)
        return Evaluation(rec, state, value=rel, note=f"rel.err {rel:.2e}")

    def step(n: int) -> torch.Tensor:
        if sched.take_reinit():  # an epoch of the main phase just ended
            restart_rows(params, s, model, target, scale, reinit_threshold, init_scale,
                         generator, orient_signs=signs_follow_residual(target, signs))
        return gd_steps(loss_fn, opt, n)

    history = train_loop(sched, step, evaluate, divergence=Divergence(lr), callback=callback,
                         progress=Progress(progress, max_steps, f"{method} m={width}"))
    return finish_fit(
        target, scale, model, params, params0, s, history, sched, method=method, width=width,
        extract=extract, polish_iter=polish_iter, polish_below=polish_below, merge_cos=merge_cos,
        drop_tol=drop_tol, tol=tol, seconds=time.perf_counter() - t0, rank=rank)


def evaluation_record(sched: EpochSchedule, state: FitState, loss: float, rel: float,
                      laziness: float, recorders: Sequence[Recorder], **fields: Any) -> dict[str, Any]:
    """The record of one evaluation point (plus ``fields``), extended by the recorders. Shared by
    every tensor loop (:func:`overtensor.training.loop.train_loop` appends it to the history and
    shows it to the callback)."""
    rec = sched.record(loss, rel, laziness)
    rec.update(fields)
    for fn in recorders:
        rec.update(fn(state))
    return rec


def log_evaluation(sched: EpochSchedule, history: list[dict[str, Any]], state: FitState,
                   loss: float, rel: float, laziness: float, recorders: Sequence[Recorder],
                   callback: Callable | None, **fields: Any) -> dict[str, Any]:
    """:func:`evaluation_record`, appended to ``history`` and shown to the callback, which may stop
    the run: what :func:`~overtensor.training.loop.train_loop` does with it, for the batched
    engine, which steps many runs at once."""
    rec = evaluation_record(sched, state, loss, rel, laziness, recorders, **fields)
    history.append(rec)
    if callback is not None:
        with torch.no_grad():  # as train_loop calls it
            if callback(rec, state):
                sched.stop("callback")
    return rec


def prepare_fit(target: Target, *, model: str, width: int, init_scale: float, signs: str,
                generator: torch.Generator, dtype: torch.dtype, device: torch.device,
                flip: bool = False, orient_odd: bool = False):
    """Target in the working dtype/device, ``‖T*‖²``, the scale ``σ = 1/‖T*‖``, the initial
    parameters (a copy kept as ``params0``) and the fixed signs: the set-up of one run.

    The only random draws are those of :func:`~overtensor.tensors.models.init_params` from ``generator``.
    ``flip``: mirror fresh rows toward the residual (odd order; re-initializing methods);
    ``orient_odd``: otherwise mirror the whole start by the target's sign (odd order;
    :func:`_orient_globally`; the full-regime engines).
    """
    target = target.working(dtype, device)  # float64() stays the user's tensor (issue 10)
    sq = target.sq_norm()
    if not float(sq) > 0:
        terms = getattr(target, "weights", None)
        if terms is not None and bool((terms != 0).any()):
            # Nonzero terms whose sum rounds to zero: opposite weights on (near-)collinear
            # components, T = Σ λ_j u_j^⊗l cancelling below the float rounding of the terms.
            raise ValueError(f"target's terms cancel to below rounding (‖T‖² computed as "
                             f"{float(sq):.3g} from nonzero weights): components with opposite "
                             "weights are (nearly) collinear; merge them or fit the difference")
        raise ValueError("target has zero norm: nothing to decompose")
    scale = 1.0 / sq.sqrt()
    params = init_params(model, width, target.dim, init_scale, generator, dtype, device)
    s, orient = initial_signs(target, signs, width, dtype, device)
    if flip or orient:  # methods with re-initialization start from mirrored rows where useful
        # (docstring); signs set by the residual are set at the start by every method
        _flip_small_rows(params, s, model, target, scale, orient_signs=orient, mirror=flip)
    if orient_odd and not flip and target.order % 2 == 1:
        _orient_globally(params, s, model, target, scale)
    params0 = {k: v.clone() for k, v in params.items()}
    return target, sq, scale, params, params0, s


@torch.no_grad()
def _orient_globally(params, signs, model: str, target: Target, scale) -> None:
    """Odd order, methods without re-initialization: mirror the whole start, ``W_0 → −W_0``,
    when ``Σ_i s_i T(w̄_i, …, w̄_i) < 0`` (issue 22, item 1).

    Why: at odd order the run on ``−T`` from ``W_0`` is the mirror image of the run on ``T`` from
    ``−W_0``; one global sign chosen by the target makes the start flip with the target, so that
    ``fit(−T)`` is exactly the mirror of ``fit(T)`` from the same seed. One global flip keeps the
    start's distribution (row by row it is as random as before; mirroring each row toward the
    residual, as the re-initializing methods do, lowered ``exact-rank``'s recovery on
    ``random_target(3, 20, 5)`` from 7/8 to 4/8 seeds).
    """
    W = params["W"]
    Wbar = W / W.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny)
    a, _ = model_cp(model, params, signs)
    total = float((torch.sign(a) * target.values(Wbar)).sum())
    if total < 0:
        W.neg_()


def finish_fit(
    target: Target, scale: torch.Tensor, model: str, params: dict[str, torch.Tensor],
    params0: dict[str, torch.Tensor], signs: torch.Tensor | None, history: list[dict[str, Any]],
    schedule: EpochSchedule, *, method: str, width: int, extract: bool, polish_iter: int,
    polish_below: float, merge_cos: float, drop_tol: float, tol: float, seconds: float,
    rank: int | None = None,
) -> FitResult:
    """Extraction (merge, drop, polish, rank reduction), diagnostics and the :class:`FitResult`
    of one finished run (``docs/method.md``, steps 7–10).

    ``info`` records what extraction did: ``merges`` (each merge tried, accepted or refused, and
    why), ``rank_reduction`` (ranks tried and why it stopped; :mod:`overtensor.tensors.reduction`),
    ``degeneracy`` and ``rank_support`` (:mod:`overtensor.tensors.diagnostics`) and ``warnings`` (one line
    each, with what to try); ``seconds_train``, ``seconds_extract``, ``seconds_polish`` (the
    result's ``seconds`` covers all three) and the number of intra-op ``threads``.
    """
    t_extract = time.perf_counter()
    l = target.order
    info: dict[str, Any] = {}
    merges: list[dict[str, Any]] = []
    with torch.no_grad():
        a, V = model_cp(model, params, signs)
        model_rel = float(relative_error(a, V, target, scale))
        if extract:
            cp = merge_components(a / scale, V, l, merge_cos=merge_cos, drop_tol=drop_tol)
        else:
            cp = SymmetricCP(a / scale, V, l, normalize=True).canonical()
    # Polish refines a fit; it must not solve the problem on its own (that would credit a failed
    # run with the work of L-BFGS), so it only runs once the model itself is close. Under a rank
    # cap the user asks for the best CP with at most `rank` terms whatever the error (a noisy
    # target keeps the model's error at the noise level; the best rank-1 term of a full-rank
    # tensor is far from it): the cap is always applied, and a miss of tol is a warning.
    below = polish_below if rank is None else math.inf
    red = None
    polished = extract and polish_iter > 0 and model_rel <= below
    t_polish = time.perf_counter()
    if polished:
        cp = polish(cp, target, max_iter=polish_iter)
    final_rel = cp_relative_error(cp, target)
    if polished:
        cp, final_rel = _guarded_merges(cp, final_rel, a / scale, V, target, merges,
                                        merge_cos=merge_cos, drop_tol=drop_tol,
                                        polish_iter=polish_iter, tol=tol)
        cp, final_rel = _drop_small(cp, final_rel, target, drop_tol, polish_iter)
        # A CP that misses tol walks the removal path (reduction._walk): rescued when a
        # smaller polished CP meets tol (rank = dimension), else its rank is chosen against the
        # residual (noise).
        red = reduce_rank(cp, target, tol=tol, polish_iter=polish_iter, max_rank=rank,
                          rescue_below=polish_below)
        info["rank_reduction"] = {"tried": red.tried, "stop": red.stop}
        if red.cp is not cp:
            cp, final_rel = _drop_small(red.cp, red.relative_error, target, drop_tol,
                                        polish_iter)
    elif extract and polish_iter > 0 and rank is None and model_rel <= NOISE_BELOW:
        # The model has fitted the target up to a residual above polish_below (noise): only
        # the rank is chosen against that residual, nothing is accepted by tol.
        red = reduce_rank(cp, target, tol=tol, polish_iter=polish_iter,
                          rescue_below=polish_below, accept_tol=False)
        info["rank_reduction"] = {"tried": red.tried, "stop": red.stop}
        cp, final_rel = red.cp, red.relative_error
    elif extract:
        info["rank_reduction"] = {"tried": [], "stop": (
            f"not tried: no polish (the model's error is above {below:g})")}
    noise = red.noise if red is not None else None
    info["merges"] = merges
    if rank is not None:
        info["rank_cap"] = rank
        if cp.rank > rank:  # not polished (extract=False or polish_iter=0): still a cap
            red = reduce_rank(cp, target, tol=tol, polish_iter=polish_iter, max_rank=rank)
            info["rank_reduction"] = {"tried": red.tried, "stop": red.stop}
            cp, final_rel = red.cp, red.relative_error
    _diagnose(info, cp, a / scale, V, target, final_rel, width, drop_tol,
              noise=noise if rank is None else None, tol=tol)
    if rank is not None and not final_rel <= tol:
        info["warnings"].append(
            f"rank cap {rank}: the best CP found with at most {rank} terms has relative error "
            f"{final_rel:.3e} > tol {tol:g}; a larger rank (or tol) is needed to meet tol")
    elif not final_rel <= tol and not info["warnings"]:  # never a silent miss of tol
        info["warnings"].append(_not_converged_advice(final_rel, tol, schedule, width))
    info["polished"] = polished
    t_end = time.perf_counter()
    info.update(seconds_train=seconds, seconds_extract=t_polish - t_extract,
                seconds_polish=t_end - t_polish, threads=torch.get_num_threads())
    return FitResult(
        cp=cp, relative_error=final_rel, model_relative_error=model_rel, history=history,
        steps=schedule.step, seconds=seconds + t_end - t_extract, converged=final_rel <= tol,
        stop_reason=schedule.stop_reason, method=method, width=width, target=target,
        params={k: v.detach() for k, v in params.items()}, params0=params0, signs=signs,
        model=model, info=info, scale=float(scale),
    )


def _not_converged_advice(rel: float, tol: float, schedule: EpochSchedule, width: int) -> str:
    """The one-line warning of a run whose CP misses ``tol`` (no other diagnosis explains it):
    the error, the budget or rule that ended the run and what to try (issue 22, item 3)."""
    why = {"max_steps": "the step budget max_steps ran out",
           "final_steps": "the final phase's budget final_steps ran out (raise final_steps; "
                          "max_steps was not reached)",
           "stagnation": "the error stagnated",
           "callback": "the callback stopped it"}.get(schedule.stop_reason or "",
                                                      str(schedule.stop_reason))
    return (f"not converged: relative error {rel:.3e} > tol {tol:g} after {schedule.step} steps; "
            f"{why}. The CP is not an exact decomposition: a noisy target cannot be fitted below "
            f"its noise level; otherwise try a larger budget, another random_state, or "
            f"width={width} with extraction=Extraction(rank=K) (the rank-capped polish)")


def _guarded_merges(cp: SymmetricCP, rel: float, a: torch.Tensor, V: torch.Tensor,
                    target: Target, merges: list[dict[str, Any]], *, merge_cos: float,
                    drop_tol: float, polish_iter: int, tol: float) -> tuple[SymmetricCP, float]:
    """Merges that keep the fit (issue 10, item 6), each recorded in ``merges``.

    The first merge (at ``merge_cos``) is refused when the merged, polished CP misses ``tol``
    while the rows merged only at :data:`FINE_MERGE` (near-duplicates), polished, meet it: two
    true components closer than ``merge_cos`` stay two. Then coarser merges (a component split
    over rows not yet aligned when the run stopped): a smaller CP is kept when, polished, it is
    as accurate as the current one or within ``tol``.
    """
    l = target.order
    with torch.no_grad():
        fine = merge_components(a, V, l, merge_cos=FINE_MERGE, drop_tol=drop_tol)
    entry: dict[str, Any] = {"merge_cos": merge_cos, "from": fine.rank, "to": cp.rank}
    if fine.rank > cp.rank and not rel <= tol:
        fine = polish(fine, target, max_iter=polish_iter)
        fine_rel = cp_relative_error(fine, target)
        if fine_rel <= tol and fine_rel < rel:
            merges.append({**entry, "accepted": False, "reason": (
                f"merged CP misses tol ({rel:.1e}); unmerged meets it ({fine_rel:.1e})")})
            cp, rel = fine, fine_rel
        else:
            merges.append({**entry, "accepted": True, "reason": (
                f"unmerged CP no better ({fine_rel:.1e})")})
    elif fine.rank > cp.rank:
        merges.append({**entry, "accepted": True, "reason": f"merged CP meets tol ({rel:.1e})"})
    for cos in (merge_cos, *(c for c in COARSE_MERGES if c < merge_cos)):
        again = merge_components(cp.weights, cp.components, l, merge_cos=cos, drop_tol=drop_tol)
        if again.rank < cp.rank:
            again = polish(again, target, max_iter=polish_iter)
            again_rel = cp_relative_error(again, target)
            ok = again_rel <= max(rel, tol)
            merges.append({"merge_cos": cos, "from": cp.rank, "to": again.rank, "accepted": ok,
                           "reason": (f"merged CP error {again_rel:.1e} "
                                      f"{'within' if ok else 'above'} max(current, tol)")})
            if ok:
                cp, rel = again, again_rel
    return cp, rel


def _drop_small(cp: SymmetricCP, rel: float, target: Target, drop_tol: float,
                polish_iter: int) -> tuple[SymmetricCP, float]:
    """Drop terms below ``drop_tol · max|λ|`` left by a polish (they are noise by the definition
    of ``drop_tol``), and polish the rest."""
    if cp.rank == 0:
        return cp, rel
    keep = cp.weights.abs() >= drop_tol * cp.weights.abs().max()
    if bool(keep.all()):
        return cp, rel
    cp = polish(SymmetricCP(cp.weights[keep], cp.components[keep], cp.order), target,
                max_iter=polish_iter)
    return cp, cp_relative_error(cp, target)


def _diagnose(info: dict[str, Any], cp: SymmetricCP, a: torch.Tensor, V: torch.Tensor,
              target: Target, rel: float, width: int, drop_tol: float,
              noise: dict[str, Any] | None = None, tol: float = 0.0) -> None:
    """Degeneracy (of the returned CP, else of the model's own terms) and rank support: the
    rank chosen under noise (``noise``, :func:`overtensor.tensors.reduction._walk`) when there was
    one, else the terms whose weight is comparable to the residual
    (:func:`~overtensor.tensors.diagnostics.rank_support`)."""
    warnings: list[str] = []
    norm = float(target.float64().sq_norm().sqrt())
    deg = degeneracy(cp.weights, cp.components, cp.order, norm, min_weight=drop_tol)
    if deg is None:
        deg = degeneracy(a, V, cp.order, norm, min_weight=drop_tol)
    if deg is not None:
        info["degeneracy"] = deg
        warnings.append(degeneracy_advice(deg, width))
    if noise is not None:
        info["rank_support"] = {**noise, "residual": rel * norm}
        if noise["supported"] < noise["found"]:  # (else the not-converged warning speaks)
            warnings.append(
                f"rank {noise['supported']} chosen under noise: the extracted CP's residual "
                f"(relative error {noise['start_relative_error']:.3e}) was above tol {tol:g}, so "
                f"every term was tested against it; "
                f"{noise['found'] - noise['supported']} of {noise['found']} term(s) removed (a "
                f"term is kept only if removing it more than doubles the error); pass "
                f"extraction=Extraction(rank=K) (CLI: --max-rank K) to choose")
        info["warnings"] = warnings
        return
    support = rank_support(cp.weights, rel * norm)
    if support is not None:
        info["rank_support"] = support
        warnings.append(rank_support_advice(support))
    info["warnings"] = warnings


#: Without a polish (model error above ``polish_below``), the rank is still chosen against the
#: residual when the model's error is at most this (a noisy target; :func:`finish_fit`).
NOISE_BELOW = 0.2

#: Coarser merge thresholds tried after polishing (see :func:`finish_fit`).
COARSE_MERGES = (0.95, 0.9, 0.8)

#: Rows this aligned are one term whatever the error (the merge a refused merge falls back to).
FINE_MERGE = 0.9999


def restart_rows(params, signs, model: str, target: Target, scale, threshold: float,
                 init_scale: float, generator: torch.Generator, *,
                 orient_signs: bool = False) -> None:
    """What happens to the rows at the end of a main-phase epoch (docs/theory/tensors.md §5 step 3):
    re-draw the small ones and mirror those of them that face a negative residual (odd order),
    or, with ``orient_signs`` (:func:`signs_follow_residual`), give them the residual's sign
    (even order; ``signs`` is changed in place). Shared with the batched engine."""
    redrawn = _reinit_small_rows(params, threshold, init_scale, generator, signs, model,
                                 target.order)
    _flip_small_rows(params, signs, model, target, scale, redrawn, orient_signs=orient_signs)


@torch.no_grad()
def _flip_small_rows(params, signs, model: str, target: Target, scale,
                     rows: torch.Tensor | None = None, *, orient_signs: bool = False,
                     mirror: bool = True) -> int:
    """Make ``s_i R(w̄_i) ≥ 0`` for the chosen fresh rows (all if ``rows`` is None): odd order
    (with ``mirror``) by flipping the row, ``w_i → −w_i`` (see module docstring); even order with
    ``orient_signs`` by flipping its sign ``s_i`` (:func:`signs_follow_residual`). Returns the
    number of rows changed."""
    even = target.order % 2 == 0
    if ((even and not orient_signs) or (not even and not mirror) or not get_model(model).signed
            or (rows is not None and not rows.any())):
        return 0
    W = params["W"]
    norms = W.norm(dim=-1)
    a, V = model_cp(model, params, signs)
    Wbar = W / norms.clamp_min(torch.finfo(W.dtype).tiny).unsqueeze(-1)
    residual = scale * target.values(Wbar) - ((Wbar @ V.transpose(-1, -2)) ** target.order) @ a
    flip = signs * residual < 0
    if rows is not None:
        flip &= rows
    if even:
        signs[flip] = -signs[flip]
    else:
        W[flip] = -W[flip]
    return int(flip.sum())


def _redundant_rows(W: torch.Tensor, norms: torch.Tensor, signs: torch.Tensor | None = None,
                    model: str = "homogeneous", order: int = 3) -> torch.Tensor:
    """Rows parked on the direction of a heavier row (``|cos| ≥ REDUNDANT_COS``): merged into it
    when their terms reinforce, re-drawn; returns their mask. Rows of the ``coefficients`` model
    and cancelling rows are only freed when light (mass ``‖w_i‖² ≤ REDUNDANT_MASS·‖w_k‖²``).

    Why light rows: once a component is fitted, the residual along it is ``≈ μ/2`` and flat, so a
    light row sitting on it neither moves nor shrinks (its norm decays only at rate ``μ``): it is
    lost to the search for the components still missing. This is what happens to most rows with
    an orthogonal target, where every row first runs to one of the heavy components.

    Why heavy ones too (issue 10, item 9): two heavy rows sharing one component are one term
    spent twice; with an odd order the run can end with every other row stuck in a spurious
    mixture and a component missing (``random_target(3, 40, 5, random_state=701)``, ``m = 8``).
    The lighter row's term is added to the heavier one (``s_k ‖w_k‖^p ← s_k ‖w_k‖^p +
    s_i ‖w_i‖^p sign(cos)^l``, ``p = 2`` homogeneous, ``l`` plain), so the model tensor changes
    only by the small angle between them, and the freed row searches the residual again. The
    criterion is on the rows' own state, not on the target's truth.
    """
    m = W.shape[0]
    unit = W / norms.clamp_min(torch.finfo(W.dtype).tiny).unsqueeze(-1)
    cos = unit @ unit.T
    mass = norms**2
    aligned_all = cos.abs() >= REDUNDANT_COS
    aligned_all.fill_diagonal_(False)
    freed = torch.zeros(m, dtype=torch.bool, device=W.device)
    if not aligned_all.any():
        return freed
    kind = get_model(model)
    merge = kind.signed  # free coefficients are never merged
    power = kind.weight_power(order) if kind.signed else order
    s = signs if signs is not None else torch.ones(m, dtype=W.dtype, device=W.device)
    c = s * norms**power
    candidates = set(torch.nonzero(aligned_all.any(dim=1)).flatten().tolist())
    for k in torch.argsort(mass, descending=True).tolist():
        if k not in candidates or freed[k]:
            continue
        lighter = aligned_all[k] & ~freed & (mass <= mass[k])
        lighter[k] = False
        if not lighter.any():
            continue
        idx = torch.nonzero(lighter).flatten()
        contrib = c[idx] * torch.sign(cos[k, idx]) ** order  # their terms, on unit[k]
        reinforce = (contrib * s[k] > 0) & merge
        light = mass[idx] <= REDUNDANT_MASS * mass[k]
        if reinforce.any():
            total = (c[k] + contrib[reinforce].sum()).abs()
            W[k] = unit[k] * total ** (1.0 / power)
        freed[idx[reinforce | light]] = True
    return freed


#: Thresholds of :func:`_redundant_rows`.
REDUNDANT_COS = 0.99
REDUNDANT_MASS = 1e-2


@torch.no_grad()
def _reinit_small_rows(params, threshold: float, init_scale: float, generator,
                       signs: torch.Tensor | None = None, model: str = "homogeneous",
                       order: int = 3) -> torch.Tensor:
    """Re-draw rows with ``‖w_i‖ < threshold`` and redundant rows (:func:`_redundant_rows`, merged
    first) at norm ``init_scale``; returns their mask."""
    W = params["W"]
    norms = W.norm(dim=-1)
    small = norms < threshold
    small |= _redundant_rows(W, norms, signs, model, order) & ~small
    n = int(small.sum())
    if n:
        G = torch.randn(n, W.shape[-1], generator=generator, dtype=torch.float64)
        W[small] = (init_scale * G / G.norm(dim=-1, keepdim=True)).to(W.dtype).to(W.device)
        if "c" in params:
            params["c"][small] = init_scale**2
    return small
