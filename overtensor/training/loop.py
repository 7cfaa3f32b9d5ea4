"""The optimizer loop: steps, evaluation, history, stopping and divergence detection.

The mathematics lives in :mod:`overtensor.tensors.models` and :mod:`overtensor.tensors.loss`; this module only
drives an optimizer over a loss closure and records what happened.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class DivergenceError(RuntimeError):
    """Training produced NaN/inf or an exploding loss."""


#: The one divergence rule of every family: a run diverged when its loss is not finite or exceeds
#: ``DIVERGENCE_FACTOR`` times its value at the start (far above anything a converging run visits).
DIVERGENCE_FACTOR = 1e8


def check_divergence(loss: torch.Tensor | float, step: int, lr: float, start: float = 0.5,
                     what: str = "loss") -> None:
    """Raise :class:`DivergenceError` with advice if ``loss`` is NaN/inf or above
    ``DIVERGENCE_FACTOR · start``.

    Parameters
    ----------
    loss : tensor or float
        The current loss (the largest entry of a batch of losses).
    step : int
        The step reached, for the message.
    lr : float
        The step size used; the advice suggests a quarter of it.
    start : float
        The loss's scale at the start: ``½`` for a tensor fit (the target is normalized to unit
        norm, so the zero model's loss is ``½``), the null risk of a network, the initial loss of a
        regression.
    what : str
        The loss's name in the message (``"loss"``, ``"batch risk"``).
    """
    if isinstance(loss, torch.Tensor):
        value = float(loss.detach().max()) if loss.numel() > 1 else float(loss)
    else:
        value = float(loss)
    limit = DIVERGENCE_FACTOR * max(float(start), 1e-300)
    if not math.isfinite(value) or value > limit:
        raise DivergenceError(
            f"training diverged at step {step}: {what} = {value:.3g} (start {start:.3g}). "
            f"Lower the step size (lr={lr:g}; try lr={lr / 4:g}), or use float64 "
            "(dtype='float64') if this happened late in training."
        )


def gd_steps(
    loss_fn: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
) -> torch.Tensor:
    """``n_steps`` optimizer steps on ``loss_fn``; returns the last loss (detached)."""
    loss = None
    for _ in range(n_steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.sum().backward()
        optimizer.step()
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
