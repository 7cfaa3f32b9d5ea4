"""The result of a fit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.metrics import Recovery, recovery
from overtensor.tensors.scaling import ldexp
from overtensor.tensors.targets import Target
from overtensor.training.result import TrainingResult


@dataclass(kw_only=True)
class FitResult(TrainingResult):
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
        ``"tol"``, ``"max_steps"``, ``"final_steps"`` (the final phase's own budget ran out
        before ``max_steps``), ``"stagnation"`` (or algorithm-specific).
    target : Target
        The target as the user gave it (after :func:`~overtensor.tensors.targets.as_target`).
    params, params0, signs, model
        The trained and initial parameters of the model (``lazy``: ``θ_0 + Δ``).
    scale : float or None
        The scale the parameters live in: the model tensor ``T(params)`` approximates
        ``scale · T*`` (the gradient methods normalize the target, so ``scale = 1/‖T*‖``).
        ``None`` where ``params`` are not a model's (``power-method``).
    info : dict
        Method-specific records. Gradient methods: ``polished``, ``merges`` (each merge tried,
        accepted or refused, and why), ``rank_reduction`` (``tried`` ranks and ``stop`` reason),
        ``rank_cap``, ``degeneracy``, ``rank_support`` and ``warnings`` (one line each, with what
        to try); see ``docs/method.md``, steps 9–11.
    """

    cp: SymmetricCP
    relative_error: float
    model_relative_error: float
    converged: bool
    method: str
    width: int
    target: Target = field(repr=False)
    params: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    params0: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    signs: torch.Tensor | None = field(default=None, repr=False)
    model: str = "homogeneous"
    scale: float | None = None

    @property
    def warnings(self) -> list[str]:
        """``info["warnings"]``: what went wrong and what to try, one line each (empty if none)."""
        return list(self.info.get("warnings", []))

    def full_model_cp(self) -> SymmetricCP:
        """The full (nonlinear) model at the trained parameters, in the target's scale, float64.

        ``T(params) / scale`` with ``T`` the model itself (:func:`overtensor.tensors.models.model_cp`),
        not the tensor the regime trained: for ``regime="lazy"`` the trained tensor (``cp``) is
        the linearization ``T(θ_0) + DT(θ_0)[Δ]``, and this is ``T(θ_0 + Δ)``, what the
        linearized parameters give in the real model; the gap between the two is
        ``cp_relative_error``-measurable (see ``docs/lazy.md``). For ``alpha-scaled`` it is
        ``T(θ_0) + α (T(θ) − T(θ_0))`` (the Chizat–Bach model, nonlinear already), for
        ``random-features`` ``Σ_i c_i w̄_i^{⊗l}``, for ``full`` the model before extraction.

        Raises
        ------
        ValueError
            For results without model parameters (``power-method``).
        """
        from overtensor.tensors.models import model_cp

        if self.scale is None:
            raise ValueError(f"method={self.method!r} has no model parameters: use result.cp")
        regime = self.info.get("regime", "full")
        with torch.no_grad():
            if regime == "random-features":
                a, V = model_cp("coefficients", self.params)
            else:
                a, V = model_cp(self.model, self.params, self.signs)
            if regime == "alpha-scaled":
                alpha = float(self.info["alpha"])
                a0, V0 = model_cp(self.model, self.params0, self.signs)
                a, V = torch.cat([(1 - alpha) * a0, alpha * a]), torch.cat([V0, V])
            a64 = a.detach().to(torch.float64) / self.scale
            return SymmetricCP(a64, V.detach().to(torch.float64), self.target.order,
                               normalize=True)

    @property
    def finite(self) -> bool:
        """Whether the weights, components and errors are all finite numbers."""
        return (math.isfinite(self.relative_error)
                and bool(torch.isfinite(self.cp.weights).all())
                and bool(torch.isfinite(self.cp.components).all()))

    def mark_non_finite(self) -> FitResult:
        """Never report a non-finite result as converged (issue 23, item 1): when :attr:`finite`
        is false, set ``converged=False``, ``stop_reason="non-finite"`` and add a warning.
        Returns ``self``."""
        if not self.finite:
            self.converged = False
            self.stop_reason = "non-finite"
            warnings = self.info.setdefault("warnings", [])
            warnings.append("the result holds NaN or inf (weights, components or error): the "
                            "target's scale or the step size is out of range; rescale the input "
                            "or lower lr")
        return self

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


def rescale_result(result: FitResult, target: Target, exponent: int) -> FitResult:
    """Map a result computed on ``T / 2^exponent`` (:meth:`Target.normalized`) back to ``T``:
    weights times ``2^exponent`` and ``scale`` divided by it, both exact; errors are scale-free
    and were already measured against ``T``'s float64 twin. Modifies and returns ``result``."""
    result.target = target
    if exponent:
        cp = result.cp
        result.cp = SymmetricCP(ldexp(cp.weights, exponent), cp.components, cp.order)
        if result.scale is not None:
            result.scale = math.ldexp(result.scale, -exponent)
        support = result.info.get("rank_support")
        if support is not None and "residual" in support:
            # An absolute residual, like the weights: in the user's scale too (the warning that
            # quotes it is re-rendered).
            from overtensor.tensors.diagnostics import rank_support_advice

            old = rank_support_advice(support) if "found" in support else None
            support["residual"] = math.ldexp(support["residual"], exponent)
            warnings = result.info.get("warnings", [])
            if old in warnings:
                warnings[warnings.index(old)] = rank_support_advice(support)
    return result.mark_non_finite()


#: Entries of ``info`` that :func:`summarize_info` shortens.
_STRUCTURED = ("merges", "rank_reduction", "degeneracy", "rank_support", "warnings", "route",
               "spm", "compression", "shortcuts", "switch")


def summarize_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` for :meth:`FitResult.summary`: entries as they are, except the extraction records
    of :func:`~overtensor.tensors.gradient.finish_fit`, given in short form (``ranks_tried``,
    ``rank_stop``, ``merges_refused``, ``degeneracy_max_cos``, ``degeneracy_max_weight``,
    ``warnings``, ``route``: the engine of ``info["route"]``, ``compression``: the compressed
    dimension or None, ``shortcuts``: ``"switched at step N"`` (the early switch to the polish),
    ``"no switch (K attempts)"``, or None when the shortcuts did not run,
    ``switch``: how many merge thresholds the switch tried); the full records stay in ``info``."""
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
    if "route" in info:  # the engine; why it was taken stays in info["route"]
        out["route"] = info["route"]["engine"]
    if "compression" in info:
        out["compression"] = info["compression"]["dim"]
    if "shortcuts" in info:
        rec = info["shortcuts"]
        out["shortcuts"] = (None if rec is None else f"switched at step {rec['switched_at']}"
                            if rec["switched_at"] is not None
                            else f"no switch ({rec['attempts']} attempts)")
    if "switch" in info:
        out["switch"] = len(info["switch"])
    return out
