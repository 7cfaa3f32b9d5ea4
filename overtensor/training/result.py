"""The result base and the callback contract shared by every family.

Every training entry point returns a :class:`TrainingResult` subclass
(:class:`overtensor.tensors.result.FitResult`, :class:`overtensor.networks.train.NetworkFit`,
:class:`overtensor.regression.core.RegressionResult`) and accepts a :data:`Callback`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: ``callback(record, state) -> bool | None``: called at every evaluation with the history record
#: just appended (a dict) and the family's state at that point (the tensor loops' ``FitState``,
#: ``{"step", "params", "model_fn"}`` for a network, ``{"step", "w"}`` for a regression);
#: returning ``True`` stops training there (``stop_reason = "callback"``). It is called by
#: :func:`overtensor.training.loop.train_loop` under ``torch.no_grad()`` (it looks at the run; it
#: does not extend the autograd graph), in every family.
Callback = Callable[[dict[str, Any], Any], Any]


def check_callback(callback: Any) -> Callback | None:
    """``callback`` itself if it is ``None`` or callable, else ``TypeError`` naming it."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a callable (record, state) -> bool, got {callback!r} "
                        f"({type(callback).__name__})")
    return callback


@dataclass(kw_only=True)
class TrainingResult:
    """What every family's training returns, besides its own numbers.

    Attributes
    ----------
    history : list of dict
        One record per evaluation (``step`` and the family's measurements).
    steps : int
        Steps taken.
    seconds : float
        Wall-clock seconds of the training call.
    stop_reason : str
        Why training stopped: ``"max_steps"`` (the budget ran out), ``"callback"``, or a family's
        own reasons (``"tol"``, ``"stalled"``, ... of a tensor fit).
    info : dict
        Everything else worth knowing about the run (step sizes, solver, route, ...).
    """

    history: list[dict[str, Any]]
    steps: int
    seconds: float
    stop_reason: str = "max_steps"
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-serializable summary (each family adds its own numbers)."""
        return {"steps": self.steps, "seconds": round(self.seconds, 4), "stop_reason": self.stop_reason,
                **self.info}
