"""Batched engine: ``B`` independent gradient fits of the same shape advancing together.

A sweep is thousands of small fits. One fit at a time is bound by per-operation overhead (about
0.4 ms per step on a CPU whatever the size, about as much in kernel launches on a GPU), so
:func:`fit_batched` stacks the runs along a leading batch dimension: every step is one set of
batched matrix products for all runs. Each run keeps its own

* target, seed (one ``torch.Generator`` per run: the initial draw and every re-initialization come
  from it in the same order as in :func:`overtensor.fit`), weight decay, init scale, step size and
  any other scalar option (a list of length ``B`` gives one value per run);
* epochs, evaluation points, phase switch and stopping: one
  :class:`~overtensor.training.schedule.EpochSchedule` per run, the very object that drives
  :func:`~overtensor.tensors.gradient.gradient_fit`;
* end: a finished run is frozen (taken out of the batch, which shrinks) while the others go on; a
  run that diverges gets the :class:`~overtensor.training.loop.DivergenceError` that ``fit`` would have
  raised, in its slot of the returned list, and the others go on.

So the results equal those of calling :func:`overtensor.fit` on each run with the same seed, up to
floating-point rounding (batched and single matrix products round differently).

Differences from the single-run loop, on purpose:

* plain gradient descent only (``optimizer=None`` or ``"gd"``): the step ``W ← W − η_b ∇W`` with a
  per-run ``η_b`` is done here directly;
* the gradient is the closed form of :mod:`overtensor.tensors.gradients` rather than autograd (same
  values to rounding; no graph, fewer passes over memory);
* on the CPU the steps between two evaluations are taken tile by tile (``tile_size`` runs at a
  time, about 512 KB per tensor by default), so that each tile stays in cache: the runs are
  independent, so this changes nothing but the speed (about 2× at ``m = d = 50``).

Measured in ``docs/performance.md`` (``benchmarks/bench_batched.py``): at ``m = d = 50`` on one
CPU core, ``B = 256`` batched runs take about 11× more steps per second than a loop of the
autograd loop (``fit(engine="autograd")``) and 3× more than a loop of plain ``fit``, which runs
plain gradient descent through this engine with ``B = 1``.

On CUDA, put the targets there (or pass ``device="cuda"``): the default dtype is then float32, and
TF32 matrix products can be allowed globally with ``torch.backends.cuda.matmul.allow_tf32 = True``.
Reported errors are computed in float64 as everywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor._checks import (
    check_callable,
    check_callables,
    check_float,
    check_int,
    check_memory,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from overtensor.regimes.diagnostics import relative_distance
from overtensor.tensors.gradient import (
    FitState,
    finish_fit,
    log_evaluation,
    prepare_fit,
    restart_rows,
    signs_follow_residual,
)
from overtensor.tensors.gradients import loss_and_grad
from overtensor.tensors.loss import relative_error
from overtensor.tensors.memory import check_fit_memory
from overtensor.tensors.methods import GRADIENT_DEFAULTS, METHOD_DEFAULTS, gradient_options
from overtensor.tensors.models import model_cp
from overtensor.tensors.result import FitResult, rescale_result
from overtensor.tensors.targets import CPTarget, Target, as_target
from overtensor.training.loop import DivergenceError, Progress, check_divergence
from overtensor.training.schedule import EpochSchedule

#: Options of :func:`overtensor.fit` that :func:`fit_batched` accepts, per run or common.
OPTIONS = tuple(GRADIENT_DEFAULTS)


class TargetBatch(Target):
    """``B`` targets of one order and dimension seen as one target with a leading batch dimension.

    CP targets of equal rank are stacked into one :class:`~overtensor.tensors.targets.CPTarget` (``(B, r)``
    weights, ``(B, r, d)`` factors), whose operations are batched matrix products. Any other mix is
    served run by run (``values``/``contract`` of ``V[b]`` by target ``b``): correct, not faster.
    """

    def __init__(self, targets: Sequence[Target], _stacked: CPTarget | None = None) -> None:
        self.targets = list(targets)
        if not self.targets:
            raise ValueError("a TargetBatch needs at least one target")
        first = self.targets[0]
        self.order, self.dim = first.order, first.dim
        self.truth = None
        self._cp = _stacked
        stackable = all(isinstance(t, CPTarget) and t.factors.ndim == 2 for t in self.targets)
        if _stacked is None and stackable and len({t.factors.shape for t in self.targets}) == 1:
            self._cp = CPTarget(torch.stack([t.weights for t in self.targets]),
                                torch.stack([t.factors for t in self.targets]), self.order)

    @property
    def dtype(self):
        return self.targets[0].dtype

    @property
    def device(self):
        return self.targets[0].device

    def sq_norm(self):
        if self._cp is not None:
            return self._cp.sq_norm()
        return torch.stack([t.sq_norm() for t in self.targets])

    def values(self, V):
        if self._cp is not None:
            return self._cp.values(V)
        return torch.stack([t.values(v) for t, v in zip(self.targets, V, strict=True)])

    def contract(self, V):
        if self._cp is not None:
            return self._cp.contract(V)
        return torch.stack([t.contract(v) for t, v in zip(self.targets, V, strict=True)])

    def to(self, dtype=None, device=None):
        return TargetBatch([t.to(dtype=dtype, device=device) for t in self.targets])

    def float64(self) -> TargetBatch:
        """The batch of the members' float64 twins (each measured against its user's tensor)."""
        if self.dtype == torch.float64:
            return self
        return TargetBatch([t.float64() for t in self.targets])

    def scaled(self, scale: torch.Tensor) -> TargetBatch | None:
        """The batch of ``scale_b · T_b`` for a stacked CP batch (``None`` otherwise): with it the
        gradient step runs at ``σ = 1`` and saves one pass over memory."""
        if self._cp is None:
            return None
        stacked = CPTarget(self._cp.weights * scale.unsqueeze(-1), self._cp.factors, self.order)
        return TargetBatch(self.targets, stacked)

    def select(self, index: Sequence[int]) -> TargetBatch:
        """The sub-batch of the runs at positions ``index``."""
        sub = [self.targets[i] for i in index]
        if self._cp is None:
            return TargetBatch(sub)
        rows = torch.as_tensor(list(index), dtype=torch.long, device=self._cp.factors.device)
        stacked = CPTarget(self._cp.weights.index_select(0, rows),
                           self._cp.factors.index_select(0, rows), self.order)
        return TargetBatch(sub, stacked)


def _per_run(name: str, value: Any, n: int) -> list[Any]:
    """A list of length ``n``: ``value`` repeated, or ``value`` itself if it is a list."""
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries, expected one per run ({n})")
        return value
    return [value] * n


def fit_batched(
    targets: Sequence[Any],
    width: int | list[int] | None = None,
    method: str = "beyond-lazy",
    *,
    random_states: Sequence[Any],
    order: int | None = None,
    device: Any = None,
    dtype: Any = None,
    callback: Callable[[dict[str, Any], FitState], bool | None] | None = None,
    recorders: Sequence[Callable[[FitState], dict[str, Any]]] = (),
    progress: bool = False,
    tile_size: int | None = None,
    **options: Any,
) -> list[FitResult | DivergenceError]:
    """Run ``B = len(targets)`` gradient fits together; equivalent to ``B`` calls of ``fit``.

    Parameters
    ----------
    targets : sequence of targets
        Anything :func:`overtensor.fit` accepts, all of the same order and dimension. CP targets of
        equal rank are batched in the matrix products (the fast path).
    width : int or list of int
        As in ``fit``; after method defaults, every run must have the same width (same shapes).
    method : {"beyond-lazy", "gd", "exact-rank"}
        Common to all runs.
    random_states : sequence of seeds or generators, one per run
        Run ``b`` draws exactly what ``fit(targets[b], ..., random_state=random_states[b])`` draws.
    device, dtype
        Common to all runs; defaults as in ``fit`` (from the first target).
    callback, recorders
        As in ``fit``, called per run at its evaluation points; ``state.extra["run"]`` is the run's
        index in ``targets``. A callback returning True stops that run only.
    progress : bool
        A progress bar over finished runs.
    tile_size : int, optional
        Runs per tile: the steps between two evaluations are taken tile by tile (runs are
        independent), which keeps a tile's tensors in cache on the CPU. Default: all runs on CUDA;
        on the CPU, tiles of about 512 KB per ``(m, max(m, d))`` tensor.
    **options
        Any of :data:`OPTIONS`: ``tol`` and the fields of ``fit``'s groups
        :class:`~overtensor.tensors.config.GradientSchedule` and
        :class:`~overtensor.tensors.config.Extraction`, by name, each a single value for all runs
        or a list of one value per run (a sweep varies them per run, which a frozen group cannot).
        ``model`` must be common; ``optimizer`` must be ``None`` or
        ``"gd"`` (plain gradient descent, the only one batched).

    Returns
    -------
    list
        In the order of ``targets``: a :class:`~overtensor.tensors.result.FitResult` per run (``seconds`` is
        the wall time from the start of the batch to the run's end), or the
        :class:`~overtensor.training.loop.DivergenceError` of a run that diverged.
    """
    t0 = time.perf_counter()
    if method not in METHOD_DEFAULTS:
        raise ValueError(
            f"method must be one of {list(METHOD_DEFAULTS)} for fit_batched, got {method!r}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; fit_batched accepts {list(OPTIONS)}")
    B = len(targets)
    if B < 1:
        raise ValueError("targets is empty: nothing to fit")
    random_states = list(random_states)
    if len(random_states) != B:
        raise ValueError(f"random_states has {len(random_states)} entries, expected {B}")
    given = [as_target(t, order) for t in targets]
    # Every run works on its target scaled by a power of two to entries of order one (exact;
    # squared norms can neither overflow nor underflow), and its result is scaled back.
    tgts, exponents = map(list, zip(*(t.normalized() for t in given), strict=True))
    dev = resolve_device(device if device is not None else tgts[0].device)
    dt = resolve_dtype(dtype if dtype is not None else tgts[0].dtype, dev)
    check_callable("callback", callback)
    recorders = check_callables("recorders", recorders)
    per = {k: _per_run(k, options.get(k, GRADIENT_DEFAULTS[k]), B) for k in OPTIONS}
    widths = _per_run("width", width, B)
    cfgs = []
    for b in range(B):
        opts = {k: per[k][b] for k in OPTIONS}
        opts["max_steps"] = check_int("max_steps", opts["max_steps"], 1)
        opts["final_steps"] = check_int("final_steps", opts["final_steps"], 0)
        opts["tol"] = check_float("tol", opts["tol"], minimum=0.0)
        w = check_int("width", widths[b], 1) if widths[b] is not None else None
        cfgs.append(gradient_options(tgts[b], w, method, **opts))
    for key in ("model", "width"):
        values = {c[key] for c in cfgs}
        if len(values) > 1:
            raise ValueError(f"all runs of a batch need the same {key}, got {sorted(values)}")
    shapes = {(t.order, t.dim) for t in tgts}
    if len(shapes) > 1:
        raise ValueError(f"all targets of a batch need the same (order, dim), got {sorted(shapes)}")
    if any(c["optimizer"] not in (None, "gd") for c in cfgs):
        raise ValueError("fit_batched supports plain gradient descent only (optimizer=None or 'gd'); "
                         "use overtensor.fit for other optimizers")
    model, m = cfgs[0]["model"], cfgs[0]["width"]
    # The batch's parameters (B, m, d) and one run's largest arrays must fit.
    check_fit_memory(tgts[0], m, method, dt, dev)
    check_memory("len(targets)", B, (B, m, tgts[0].dim), dt, "the batch's stacked parameters",
                 dev)
    if tile_size is not None:
        tile_size = check_int("tile_size", tile_size, 1)
    gens = [make_generator(rs) for rs in random_states]

    runs = []
    for b in range(B):
        c = cfgs[b]
        target_b, sq_b, scale_b, params_b, params0_b, signs_b = prepare_fit(
            tgts[b], model=model, width=m, init_scale=c["init_scale"], signs=c["signs"],
            generator=gens[b], dtype=dt, device=dev, flip=c["reinit_threshold"] is not None,
            orient_odd=True)
        schedule = EpochSchedule(
            epoch_steps=c["epoch_steps"], epoch_growth=c["epoch_growth"], max_steps=c["max_steps"],
            final_steps=c["final_steps"], tol=c["tol"], patience=c["patience"],
            eval_every=c["eval_every"], weight_decay=c["weight_decay"],
            reinit=c["reinit_threshold"] is not None, main_epochs=c.get("main_epochs"))
        runs.append(_Run(b, c, target_b, sq_b, scale_b, params_b, params0_b, signs_b, gens[b],
                         schedule))
    if tile_size is None:
        # CPU: tiles whose (tile, m, max(m, d)) tensors stay within ~512 KB, so that the steps
        # between two evaluations run in cache (2x faster at m = d = 50 than one big batch).
        item = torch.empty((), dtype=dt).element_size()
        tile_size = B if dev.type == "cuda" else max(1, (1 << 19) // (m * max(m, tgts[0].dim) * item))
    batch = _ActiveBatch(runs, model, tile_size)
    bar = Progress(progress, B, f"{method} m={m} batch of {B}")
    try:
        while batch.runs:
            n = min(run.pending for run in batch.runs)
            loss = batch.steps(n)
            for run in batch.runs:
                run.pending -= n
            due = [pos for pos, run in enumerate(batch.runs) if run.pending == 0]
            rels = batch.relative_errors(due)
            losses = loss[due].tolist()
            done = []
            for pos, rel, lossval in zip(due, rels, losses, strict=True):
                run = batch.runs[pos]
                if not _evaluate(run, batch, pos, rel, lossval, model, recorders, callback):
                    continue
                if run.result is None:  # finished normally (not diverged): extract
                    c = run.cfg
                    run.result = finish_fit(
                        run.target, run.scale, model, batch.params_of(pos, copy=True),
                        run.params0, run.signs, run.history, run.schedule, method=method, width=m,
                        extract=c["extract"], polish_iter=c["polish_iter"],
                        polish_below=c["polish_below"], merge_cos=c["merge_cos"],
                        drop_tol=c["drop_tol"], tol=c["tol"], seconds=time.perf_counter() - t0,
                        rank=c["rank"])
                    run.result.info["route"] = {"engine": "paper",
                                                "why": "fit_batched runs the paper's schedule"}
                done.append(pos)
            if done:
                batch.drop(done)
                bar.update(B - len(batch.runs))
    finally:
        bar.close()
    return [rescale_result(run.result, given[run.index], exponents[run.index])  # type: ignore[misc]
            if isinstance(run.result, FitResult) else run.result for run in runs]


@dataclass(eq=False)
class _Run:
    """One run of a batch: its set-up (from :func:`prepare_fit`), schedule, history and outcome."""

    index: int
    cfg: dict[str, Any]
    target: Target
    sq: torch.Tensor
    scale: torch.Tensor
    params: dict[str, torch.Tensor]  # the initial parameters; stacked into the batch
    params0: dict[str, torch.Tensor]
    signs: torch.Tensor
    generator: torch.Generator
    schedule: EpochSchedule
    history: list[dict[str, Any]] = field(default_factory=list)
    result: FitResult | DivergenceError | None = None
    pending: int = 0  # steps left before the next evaluation
    period: int = 0  # steps from the last evaluation to the next one

    def __post_init__(self) -> None:
        self.pending = self.period = self.schedule.next_steps()


class _ActiveBatch:
    """The runs still going, stacked along a leading dimension: parameters, signs, targets and the
    per-run scalars (``σ``, ``‖T*‖²``, step size, weight decay), cut into tiles for the steps."""

    def __init__(self, runs: list[_Run], model: str, tile: int) -> None:
        self.runs, self.model, self.tile = list(runs), model, tile
        first = runs[0].params["W"]
        self.P = {k: torch.stack([r.params[k] for r in runs]) for k in runs[0].params}
        self.signs = torch.stack([r.signs for r in runs])
        self.target = TargetBatch([r.target for r in runs])
        self.sq = torch.stack([r.sq for r in runs])
        self.scale = torch.stack([r.scale for r in runs])
        self.lr = torch.tensor([r.cfg["lr"] for r in runs], dtype=first.dtype, device=first.device)
        self.mu = torch.tensor([r.schedule.weight_decay for r in runs], dtype=first.dtype,
                               device=first.device)
        self._tiles = _tiles(self.target, self.scale, self.sq, tile)

    def params_of(self, pos: int, copy: bool = False) -> dict[str, torch.Tensor]:
        """Run ``pos``'s parameters: views (writes go to the batch) or copies."""
        return {k: (v[pos].clone() if copy else v[pos]) for k, v in self.P.items()}

    def steps(self, n: int) -> torch.Tensor:
        """``n`` gradient steps of every active run, tile by tile; the loss before the last one."""
        with torch.no_grad():
            return torch.cat([
                gd_steps_batched(self.model, {k: v[sl] for k, v in self.P.items()},
                                 self.signs[sl], tgt, scale, sq, self.mu[sl], self.lr[sl], n)
                for sl, tgt, scale, sq in self._tiles])

    def relative_errors(self, positions: list[int]) -> list[float]:
        """Float64 relative errors of the runs at ``positions``."""
        if not positions:
            return []
        index = torch.tensor(positions, dtype=torch.long, device=self.scale.device)
        with torch.no_grad():
            a, V = model_cp(self.model, {k: v.index_select(0, index) for k, v in self.P.items()},
                            self.signs.index_select(0, index))
            return relative_error(a, V, self.target.select(positions),
                                  self.scale.index_select(0, index)).tolist()

    def drop(self, positions: list[int]) -> None:
        """Take the runs at ``positions`` out of the batch (they are finished)."""
        gone = set(positions)
        keep = [pos for pos in range(len(self.runs)) if pos not in gone]
        self.runs = [self.runs[pos] for pos in keep]
        if not keep:
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.scale.device)
        self.P = {k: v.index_select(0, index) for k, v in self.P.items()}
        self.signs, self.sq, self.scale, self.lr, self.mu = (
            x.index_select(0, index) for x in (self.signs, self.sq, self.scale, self.lr, self.mu))
        self.target = self.target.select(keep)
        self._tiles = _tiles(self.target, self.scale, self.sq, self.tile)


def gd_steps_batched(model: str, params: dict[str, torch.Tensor], signs, target: Target, scale,
                     sq, weight_decay, lr: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` plain gradient-descent steps ``p ← p − η_b ∇p`` in place, one step size per run;
    returns the loss before the last step (what :func:`overtensor.training.loop.gd_steps` returns)."""
    loss = None
    for i in range(n):
        loss, grads = loss_and_grad(model, params, signs, target, scale, sq, weight_decay,
                                    with_loss=i == n - 1)
        for k, g in grads.items():
            params[k].addcmul_(lr.view(-1, *([1] * (g.ndim - 1))), g, value=-1)
    return loss


def _tiles(target: TargetBatch, scale: torch.Tensor, sq: torch.Tensor,
           tile: int) -> list[tuple[slice, TargetBatch, Any, torch.Tensor]]:
    """Consecutive slices of the active batch with their targets, scales and squared norms (CP
    batches pre-scaled to unit norm, so that steps run at ``σ = 1``)."""
    B = len(target.targets)
    out = []
    for lo in range(0, B, tile):
        sl = slice(lo, min(lo + tile, B))
        sub = target.select(range(sl.start, sl.stop))
        pre = sub.scaled(scale[sl])
        if pre is None:
            out.append((sl, sub, scale[sl], sq[sl]))
        else:
            out.append((sl, pre, 1.0, sq[sl] * scale[sl] ** 2))
    return out


def _evaluate(run: _Run, batch: _ActiveBatch, pos: int, rel: float, loss: float, model: str,
              recorders, callback) -> bool:
    """The evaluation point of one run; True when the run is over (``run.result`` holds the
    :class:`DivergenceError` if it diverged).

    Mirrors ``evaluate`` and the loop body of :func:`~overtensor.tensors.gradient.gradient_fit`:
    divergence check, history record, recorders, callback, then the schedule's next decision
    (re-initialization, phase switch with ``μ = 0``, or the end of the run).
    """
    sched = run.schedule
    params = batch.params_of(pos)  # views: re-initialization writes through to the batch
    sched.advance(run.period)
    try:
        check_divergence(torch.tensor(loss), sched.step, run.cfg["lr"])
    except DivergenceError as exc:
        run.result = exc
        return True
    state = FitState(run.target, run.scale, model, params, run.params0, run.signs, sched.step,
                     sched.epoch, sched.phase, sched.weight_decay, extra={"run": run.index})
    log_evaluation(sched, run.history, state, loss, rel, relative_distance(params, run.params0, ["W"]),
                   recorders, callback)
    sched.observe(rel)
    n = sched.next_steps()
    if sched.take_reinit():
        restart_rows(params, run.signs, model, run.target, run.scale, run.cfg["reinit_threshold"],
                     run.cfg["init_scale"], run.generator,
                     orient_signs=signs_follow_residual(run.target, run.cfg["signs"]))
        batch.signs[pos] = run.signs  # the batch holds a stacked copy of the signs
    batch.mu[pos] = sched.weight_decay
    run.pending = run.period = n
    return n == 0
