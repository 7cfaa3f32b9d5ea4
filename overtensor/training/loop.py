"""The optimizer loop: steps, evaluation, history, stopping and divergence detection.

The mathematics lives in :mod:`overtensor.tensors.models` and :mod:`overtensor.tensors.loss`; this module only
drives an optimizer over a loss closure and records what happened.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class DivergenceError(RuntimeError):
    """Training produced NaN/inf or an exploding loss."""


def make_optimizer(optimizer: Any, params: Iterable[torch.Tensor], lr: float):
    """Build the optimizer: :func:`overtensor.optim.registry.make_optimizer` (one registry for the library).

    ``None`` or ``"gd"``: plain gradient descent (``torch.optim.SGD`` without momentum); any
    registered name (``"adam"``, ``"rmsprop"``, ``"adagrad"``, ``"momentum"``, ...); a
    ``torch.optim.Optimizer`` subclass, called as ``cls(params, lr=lr)``, or instance (a template);
    any other callable, called as ``fn(params)``.
    """
    from overtensor.optim.registry import make_optimizer as _make

    return _make(optimizer, params, lr)


def check_divergence(loss: torch.Tensor, step: int, lr: float, limit: float = 1e8) -> None:
    """Raise :class:`DivergenceError` with advice if ``loss`` is NaN/inf or above ``limit``.

    The target is normalized to unit norm, so the loss starts near ½; ``limit`` is far above
    anything a converging run visits.
    """
    value = float(loss.detach().max()) if loss.numel() > 1 else float(loss)
    if not math.isfinite(value) or value > limit:
        raise DivergenceError(
            f"training diverged at step {step}: loss = {value:.3g}. "
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
