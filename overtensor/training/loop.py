"""The one training loop: steps, evaluation schedule, history, callback, stopping, divergence.

Every family trains through :func:`train_loop`, in the template-method spirit of scikit-learn's
``BaseMixture.fit`` (the driver owns the order of things, the family fills in the hooks):

* the family supplies ``step(n)`` (``n`` optimizer steps; the loss of the last one, or ``None``) and
  ``evaluate(loss) -> Evaluation`` (its measurements at an evaluation point);
* the driver owns the step count and the evaluation schedule
  (:mod:`overtensor.training.schedule`: ``StepSchedule``, the tensor fits' ``EpochSchedule``, any
  :class:`~overtensor.training.schedule.LoopSchedule`), the divergence rule
  (:func:`check_divergence` through :class:`Divergence`), the history, the callback contract
  ``callback(record, state) -> stop`` (:data:`overtensor.training.result.Callback`), the progress
  bar (:class:`Progress`) and stopping.

An optimizer is stepped only here (:func:`optimizer_step`, :func:`gd_steps`); the batched tensor
engine and the NumPy small core step their closed forms themselves, on the same schedule and
draws (``docs/architecture.md``). The mathematics lives in the families.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from overtensor.training.schedule import LoopSchedule


class DivergenceError(RuntimeError):
    """Training produced NaN/inf or an exploding loss."""


#: The one divergence rule of every family: a run diverged when its loss is not finite or exceeds
#: ``DIVERGENCE_FACTOR`` times its value at the start (far above anything a converging run visits).
DIVERGENCE_FACTOR = 1e8


def check_divergence(loss: torch.Tensor | float, step: int, lr: float | None, start: float = 0.5,
                     what: str = "loss", factor: float = DIVERGENCE_FACTOR) -> None:
    """Raise :class:`DivergenceError` with advice if ``loss`` is NaN/inf or above
    ``factor · start`` (default ``DIVERGENCE_FACTOR · start``).

    Parameters
    ----------
    loss : tensor or float
        The current loss (the largest entry of a batch of losses).
    step : int
        The step reached, for the message.
    lr : float or None
        The step size used; the advice suggests a quarter of it (``None``: a solver without one,
        conjugate gradients).
    start : float
        The loss's scale at the start: ``½`` for a tensor fit (the target is normalized to unit
        norm, so the zero model's loss is ``½``), the null risk of a network, the initial loss of a
        regression.
    what : str
        The loss's name in the message (``"loss"``, ``"batch risk"``).
    factor : float
        The stated multiple of the start; ``math.inf``: only a non-finite loss diverges (an
        experiment that measures whether runs recover from loss spikes).
    """
    value = _value(loss)
    limit = factor * max(float(start), 1e-300)
    if not math.isfinite(value) or value > limit:
        step_advice = "" if lr is None else f" (lr={lr:g}; try lr={lr / 4:g})"
        raise DivergenceError(
            f"training diverged at step {step}: {what} = {value:.3g} (start {start:.3g}). "
            f"Lower the step size{step_advice}, or use float64 "
            "(dtype='float64') if this happened late in training."
        )


class Divergence:
    """The divergence rule of one run: :func:`check_divergence` with the run's step size, the
    loss's start and its name.

    Parameters
    ----------
    lr : float
        The step size named in the advice.
    start : float or None
        The loss's scale at the start (see :func:`check_divergence`); ``None``: the first loss
        checked (floored at ``1e-300``), as for a regression.
    what : str
        The loss's name in the message.
    factor : float
        The multiple of the start above which the run diverged (see :func:`check_divergence`).
    """

    def __init__(self, lr: float | None, start: float | None = 0.5, what: str = "loss",
                 factor: float = DIVERGENCE_FACTOR) -> None:
        self.lr, self.start, self.what, self.factor = lr, start, what, factor

    def check(self, loss: torch.Tensor | float, step: int) -> None:
        """Raise :class:`DivergenceError` if ``loss`` at ``step`` breaks the rule."""
        if self.start is None:
            self.start = max(_value(loss), 1e-300)
        check_divergence(loss, step, self.lr, start=self.start, what=self.what, factor=self.factor)


def _value(loss: torch.Tensor | float) -> float:
    if isinstance(loss, torch.Tensor):
        return float(loss.detach().max()) if loss.numel() > 1 else float(loss)
    return float(loss)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor | None = None) -> None:
    """One optimizer step: from ``loss`` (gradients zeroed, then ``loss.sum().backward()``), or,
    with ``loss=None``, from the gradients already set in the parameters' ``.grad`` (a closed-form
    gradient)."""
    if loss is not None:
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
    optimizer.step()


def gd_steps(
    loss_fn: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
) -> torch.Tensor:
    """``n_steps`` optimizer steps on ``loss_fn``; returns the last loss (detached)."""
    loss = None
    for _ in range(n_steps):
        loss = loss_fn()
        optimizer_step(optimizer, loss)
    return loss.detach() if loss is not None else torch.tensor(float("nan"))


class Progress:
    """A rich progress bar over steps, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self._bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=True,
            )
            self._task = self._bar.add_task(description, total=total, info="")
            self._bar.start()

    def update(self, completed: int, info: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, info=info)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@dataclass(frozen=True)
class Evaluation:
    """What a family's ``evaluate`` hook reports at an evaluation point.

    Attributes
    ----------
    record : dict
        The history record (``step`` and the family's measurements); shown to the callback.
    state : Any
        The callback's second argument (the family's state at this point).
    value : float, optional
        Handed to ``schedule.observe`` (a tensor fit's relative error decides its stopping).
    loss : tensor or float, optional
        A loss measured here and checked by the divergence rule (families whose ``step`` does not
        return one, and start evaluations).
    note : str
        Text for the progress bar.
    """

    record: dict[str, Any]
    state: Any = None
    value: float | None = None
    loss: torch.Tensor | float | None = None
    note: str = ""


def train_loop(
    schedule: LoopSchedule,
    step: Callable[[int], torch.Tensor | float | None],
    evaluate: Callable[[torch.Tensor | float | None], Evaluation],
    *,
    divergence: Divergence,
    callback: Callable[[dict[str, Any], Any], Any] | None = None,
    progress: Progress | None = None,
    evaluate_start: bool = False,
    per_step: bool = False,
) -> list[dict[str, Any]]:
    """Drive one run: step, check divergence, evaluate on schedule, call back, stop; the history.

    ::

        [evaluate(None)]                        # evaluate_start: the starting point
        while (n := schedule.next_steps()) > 0:
            loss = step(n)                      # per_step: step(1), n times, each checked
            schedule.advance(n); divergence.check(loss, schedule.step)
            if schedule.due(): evaluate(loss)   # -> history, callback, progress, schedule.observe

    Parameters
    ----------
    schedule : LoopSchedule
        Counts the steps and decides the evaluation points and stopping (``schedule.step`` and
        ``schedule.stop_reason`` are the run's steps and stop reason afterwards).
    step : callable ``n -> loss``
        Takes ``n`` steps (through :func:`optimizer_step` / :func:`gd_steps`, or a closed form) and
        returns the loss of the last one (checked by the divergence rule), or ``None``.
        ``schedule.step`` is the count before these steps.
    evaluate : callable ``loss -> Evaluation``
        The family's measurements at an evaluation point, given the last step's loss (``None`` at
        the start evaluation).
    divergence : Divergence
        The divergence rule, applied to every loss ``step`` returns and every ``Evaluation.loss``.
    callback : callable ``(record, state) -> bool``, optional
        Called after each evaluation; a true return stops the run (``stop_reason = "callback"``).
    progress : Progress, optional
        Updated at each evaluation and closed at the end (also on an error).
    evaluate_start : bool
        Evaluate the starting point before the first step.
    per_step : bool
        Call ``step(1)`` once per step, so that every step's loss is checked (default: one call
        per stretch between evaluations, checked at its end).

    Returns
    -------
    list of dict
        The history: one record per evaluation.

    Raises
    ------
    DivergenceError
        A checked loss broke the divergence rule.
    """
    history: list[dict[str, Any]] = []

    def _evaluate(loss: torch.Tensor | float | None) -> None:
        ev = evaluate(loss)
        if ev.loss is not None:
            divergence.check(ev.loss, schedule.step)
        history.append(ev.record)
        if callback is not None:
            with torch.no_grad():  # the callback looks; it does not extend the autograd graph
                if callback(ev.record, ev.state):
                    schedule.stop("callback")
        if progress is not None:
            progress.update(schedule.step, ev.note)
        if ev.value is not None:
            schedule.observe(ev.value)

    try:
        if evaluate_start:
            _evaluate(None)
        while (n := schedule.next_steps()) > 0:
            for k in (1,) * n if per_step else (n,):
                loss = step(k)
                schedule.advance(k)
                if loss is not None:
                    divergence.check(loss, schedule.step)
            if schedule.due():
                _evaluate(loss)
    finally:
        if progress is not None:
            progress.close()
    return history
