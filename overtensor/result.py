"""The result of a fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor.cp import SymmetricCP
from overtensor.metrics import Recovery, recovery
from overtensor.targets import Target


@dataclass
class FitResult:
    """What a fit returns.

    Attributes
    ----------
    cp : SymmetricCP
        The extracted decomposition in the target's scale, sorted by ``|weight|``.
    relative_error : float
        ``‖cp − T*‖ / ‖T*‖`` in float64.
    model_relative_error : float
        Relative error of the over-parameterized model itself, before extraction.
    history : list of dict
        One record per evaluation (step, epoch, phase, loss, relative_error, laziness, ...).
    steps, seconds : int, float
        Gradient steps taken and wall-clock time.
    converged : bool
        Whether the returned ``cp`` is within ``tol`` (after extraction and polish).
    stop_reason : str
        ``"tol"``, ``"max_steps"``, ``"stagnation"`` (or algorithm-specific).
    info : dict
        Method-specific records. Gradient methods: ``polished``, ``merges`` (each merge tried,
        accepted or refused, and why), ``rank_reduction`` (``tried`` ranks and ``stop`` reason),
        ``rank_cap``, ``degeneracy``, ``rank_support`` and ``warnings`` (one line each, with what
        to try); see ``docs/method.md``, steps 9–11.
    """

    cp: SymmetricCP
    relative_error: float
    model_relative_error: float
    history: list[dict[str, Any]]
    steps: int
    seconds: float
    converged: bool
    stop_reason: str
    method: str
    width: int
    target: Target = field(repr=False)
    params: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    params0: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    signs: torch.Tensor | None = field(default=None, repr=False)
    model: str = "homogeneous"
    info: dict[str, Any] = field(default_factory=dict)

    def recovery(self, threshold: float = 0.99) -> Recovery:
        """Hungarian matching of the true components to ``cp`` (needs ``target.truth``)."""
        return recovery(self.cp, self.target, threshold)

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-serializable summary."""
        out: dict[str, Any] = {
            "method": self.method,
            "order": self.target.order,
            "dim": self.target.dim,
            "width": self.width,
            "found_rank": self.cp.rank,
            "relative_error": self.relative_error,
            "model_relative_error": self.model_relative_error,
            "steps": self.steps,
            "seconds": round(self.seconds, 4),
            "converged": self.converged,
            "stop_reason": self.stop_reason,
        }
        if self.target.truth is not None:
            rec = self.recovery()
            out.update(rank=rec.rank, recovered=rec.recovered,
                       min_cos=float(rec.cosines.min()) if rec.rank else 1.0)
        if self.history and "laziness" in self.history[-1]:
            out["laziness"] = self.history[-1]["laziness"]
        out.update(summarize_info(self.info))
        return out


#: Entries of ``info`` that :func:`summarize_info` shortens.
_STRUCTURED = ("merges", "rank_reduction", "degeneracy", "rank_support", "warnings")


def summarize_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` for :meth:`FitResult.summary`: entries as they are, except the extraction records
    of :func:`~overtensor.algorithms.gradient.finish_fit`, given in short form (``ranks_tried``,
    ``rank_stop``, ``merges_refused``, ``degeneracy_max_cos``, ``degeneracy_max_weight``,
    ``warnings``); the full records stay in ``info``."""
    out = {k: v for k, v in info.items() if k not in _STRUCTURED}
    degenerate = info.get("degeneracy")
    if degenerate is not None:
        out["degeneracy_max_cos"] = degenerate["max_cos"]
        out["degeneracy_max_weight"] = degenerate["max_weight"]
    reduction = info.get("rank_reduction")
    if reduction is not None:
        out["ranks_tried"] = [t["rank"] for t in reduction["tried"]]
        out["rank_stop"] = reduction["stop"]
    if "merges" in info:
        out["merges_refused"] = sum(not m["accepted"] for m in info["merges"])
    if "warnings" in info:
        out["warnings"] = list(info["warnings"])
    return out
