"""Evaluation schedules: when a run is evaluated and when it stops (the loop's schedule).

:func:`overtensor.training.loop.train_loop` asks a schedule how many steps to take before the next
evaluation (:class:`LoopSchedule`). Two exist: :class:`StepSchedule`, a fixed budget evaluated every
``k`` steps or at listed steps (networks, regressions, experiments), and :class:`EpochSchedule`,
the epochs, tolerance and stagnation rules of the tensor fits (docs/theory/tensors.md §5), which the
batched tensor engine and the NumPy small core also follow, run by run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

#: Relative error below which the model counts as having escaped the initial plateau.
ESCAPED = 0.95


class LoopSchedule(Protocol):
    """What :func:`~overtensor.training.loop.train_loop` asks of an evaluation schedule
    (:class:`StepSchedule`, :class:`EpochSchedule`)."""

    step: int
    stop_reason: str | None

    def next_steps(self) -> int:
        """Steps to take before the next evaluation point; 0 once finished (``stop_reason`` set)."""

    def advance(self, n: int) -> None:
        """``n`` steps were taken."""

    def due(self) -> bool:
        """Whether the step reached is an evaluation point."""

    def observe(self, value: float) -> None:
        """The value an evaluation reported (:attr:`Evaluation.value`)."""

    def stop(self, reason: str) -> None:
        """Stop at the next :meth:`next_steps`, for ``reason``."""


class StepSchedule:
    """A fixed budget of ``max_steps`` steps, evaluated every ``every`` steps, at the steps in
    ``at``, and at the last step when ``last``; stops with ``"max_steps"`` when the budget is spent.

    Parameters
    ----------
    max_steps : int
        The budget (0: no step).
    every : int, optional
        Evaluate at every multiple of ``every``.
    at : iterable of int, optional
        Evaluate at these steps (a step 0 in it is the caller's start evaluation, not a step).
    last : bool
        Evaluate at ``max_steps`` too.
    """

    def __init__(self, max_steps: int, *, every: int | None = None, at: Iterable[int] = (),
                 last: bool = True) -> None:
        self.max_steps, self.every, self.last = max_steps, every, last
        self.at = sorted(set(at))
        self.step = 0
        self.stop_reason: str | None = None

    def _next_point(self) -> int:
        points = [self.max_steps]
        if self.every is not None:
            points.append((self.step // self.every + 1) * self.every)
        points += [k for k in self.at if k > self.step][:1]
        return min(points)

    def next_steps(self) -> int:
        if self.stop_reason is None and self.step >= self.max_steps:
            self.stop_reason = "max_steps"
        return 0 if self.stop_reason is not None else self._next_point() - self.step

    def advance(self, n: int) -> None:
        self.step += n

    def due(self) -> bool:
        return ((self.every is not None and self.step % self.every == 0) or self.step in self.at
                or (self.last and self.step == self.max_steps))

    def observe(self, value: float) -> None:
        pass  # a fixed budget does not depend on the measurements

    def stop(self, reason: str) -> None:
        self.stop_reason = reason


class EpochSchedule:
    """Epochs, evaluation points and stopping of one run (docs/theory/tensors.md §5, steps 2–5), without
    the maths.

    A pure state machine over step counts and observed errors, shared by the tensor fits that
    :func:`~overtensor.training.loop.train_loop` drives (``tensors/gradient.py``: the plain
    ``.single_phase`` for ``tensors/regimes.py`` and ``tensors/orthogonal_fit.py``) and by the
    batched and NumPy engines, so that all take exactly the same decisions::

        while (n := schedule.next_steps()) > 0:     # steps until the next evaluation
            if schedule.take_reinit():              # an epoch of the main phase just ended
                ...re-draw small rows...
            ...n gradient steps with weight decay schedule.weight_decay...
            schedule.advance(n)
            schedule.observe(relative_error)

    Rules: an epoch has ``K`` steps (``K ← max(1, round(γK))`` after each epoch), evaluated every
    ``eval_every`` steps; the run stops at ``rel ≤ tol`` (``"tol"``), at the step budget
    (``"max_steps"``, or ``"final_steps"`` when the final phase's own budget ended it), or when
    ``patience`` epochs in a row improve the error by less than 1 %
    (counting only once the error is below :data:`ESCAPED`): in the main phase this switches to the
    final phase (``μ = 0``, at most ``final_steps`` more steps), in the final phase it stops
    (``"stagnation"``). With ``main_epochs`` set, the main phase also ends after that many epochs
    (the ``deflation`` method derives it from ``tol``; see :mod:`overtensor.tensors.deflation_schedule`).
    """

    def __init__(self, *, epoch_steps: int, epoch_growth: float, max_steps: int, final_steps: int,
                 tol: float, patience: int, eval_every: int, weight_decay: float,
                 reinit: bool, main_epochs: int | None = None,
                 plateau_below: float | None = None) -> None:
        # Epochs count toward stagnation only once the error is below `plateau_below` (default
        # ESCAPED: the plateau before the escape from a small init is not stagnation).
        self.plateau_below = ESCAPED if plateau_below is None else plateau_below
        self.epoch_growth, self.max_steps, self.final_steps = epoch_growth, max_steps, final_steps
        self.tol, self.patience, self.eval_every, self.reinit = tol, patience, eval_every, reinit
        self.weight_decay, self.main_epochs = weight_decay, main_epochs
        self.phase = "main" if weight_decay > 0 else "final"
        self.step = self.epoch = 0
        self.stop_reason: str | None = None
        self._K = epoch_steps
        self._done = 0  # steps taken in the current epoch
        self._rel = math.inf  # last error observed in the current epoch
        self._best = math.inf
        self._bad_epochs = 0
        self._reinit_due = False
        self._final_capped = False  # the final phase's budget is below max_steps

    @classmethod
    def single_phase(cls, *, epoch_steps: int, max_steps: int, tol: float, patience: int,
                     eval_every: int) -> EpochSchedule:
        """The schedule of a regime fit: the same epoch and stop rules, no weight decay (so one
        phase, no re-initialization), and a plateau counts as stagnation at any error (a lazy or
        orthogonal fit may stay near 1 for good)."""
        return cls(epoch_steps=epoch_steps, epoch_growth=1.0, max_steps=max_steps, final_steps=0,
                   tol=tol, patience=patience, eval_every=eval_every, weight_decay=0.0,
                   reinit=False, plateau_below=math.inf)

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def next_steps(self) -> int:
        """Steps to take before the next evaluation, handling epoch ends; 0 once finished."""
        while self.stop_reason is None:
            n = min(self.eval_every, self._K - self._done, self.max_steps - self.step)
            if n > 0 and not self._rel <= self.tol:
                return n
            self._end_epoch()
        return 0

    def take_reinit(self) -> bool:
        """Whether small rows must be re-drawn now (once per main-phase epoch end)."""
        due, self._reinit_due = self._reinit_due, False
        return due

    def advance(self, n: int) -> None:
        self.step += n
        self._done += n

    def due(self) -> bool:
        """Every stretch of :meth:`next_steps` ends at an evaluation point."""
        return True

    def observe(self, rel: float) -> None:
        self._rel = rel

    def stop(self, reason: str) -> None:
        self.stop_reason = reason

    def record(self, loss: float, rel: float, laziness: float) -> dict[str, Any]:
        """The history record of an evaluation point."""
        return {"step": self.step, "epoch": self.epoch, "phase": self.phase, "loss": loss,
                "relative_error": rel, "weight_decay": self.weight_decay, "laziness": laziness}

    def _end_epoch(self) -> None:
        rel = self._rel
        self.epoch += 1
        self._done, self._rel = 0, math.inf
        if rel <= self.tol:
            self.stop_reason = "tol"
            return
        if self.step >= self.max_steps:
            # Name the budget that ran out (issue 22, item 3): raising max_steps does nothing
            # when the final phase's own budget ended the run.
            self.stop_reason = "final_steps" if self._final_capped else "max_steps"
            return
        # Stagnation: the error did not improve by 1 % over `patience` epochs. The plateau
        # before the first escape from the small initialization (error still ~1) is the
        # saddle-escape phase, not stagnation, so it does not count.
        if rel < self._best * 0.99:
            self._best, self._bad_epochs = rel, 0
        elif rel < self.plateau_below:
            self._bad_epochs += 1
        main_over = self.main_epochs is not None and self.epoch >= self.main_epochs
        if self._bad_epochs >= self.patience or (main_over and self.phase == "main"):
            if self.phase == "main":
                self.phase, self.weight_decay = "final", 0.0
                self._bad_epochs, self._best = 0, math.inf
                self._final_capped = self.step + self.final_steps < self.max_steps
                self.max_steps = min(self.max_steps, self.step + self.final_steps)
                return
            self.stop_reason = "stagnation"
            return
        if self.reinit and self.phase == "main":
            self._reinit_due = True
        self._K = max(1, round(self._K * self.epoch_growth))
