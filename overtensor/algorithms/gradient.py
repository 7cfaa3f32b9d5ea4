"""Gradient methods on over-parameterized models: ``beyond-lazy``, ``gd``, ``exact-rank``.

All three share one loop (:func:`gradient_fit`); they differ in model, width, weight decay and
re-initialization, as set by :data:`METHOD_DEFAULTS`.

``beyond-lazy`` (Wang, Wu, Lee, Ma, Ge, NeurIPS 2020; reconstructed in SPEC §5):

1. the target is normalized to ``‖T*‖ = 1``; every row starts with norm ``δ_0`` in a uniformly
   random direction;
2. epochs of ``K`` gradient steps on ``½‖T(W) − T*‖² + (μ/2)‖W‖²`` on the ``homogeneous`` model;
   epoch lengths grow by the factor ``γ`` (``epoch_growth``; 1 keeps them fixed);
3. at each epoch boundary, rows whose norm fell below ``δ_1`` are re-drawn with norm ``δ_0`` in a
   fresh random direction, so that free directions keep searching the residual;
4. once the error stops improving (at the ``μ``-bias level) or reaches ``tol``, a final phase with
   ``μ = 0`` removes the weight-decay bias; then merge/drop/polish (:mod:`overtensor.extraction`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor.cp import SymmetricCP
from overtensor.extraction import merge_components, polish
from overtensor.loss import half_sq_distance, relative_error
from overtensor.metrics import cp_relative_error
from overtensor.models import balanced_signs, init_params, model_cp
from overtensor.result import FitResult
from overtensor.targets import DenseTarget, Target
from overtensor.training import Progress, check_divergence, gd_steps, make_optimizer


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
    merge_cos: float,
    drop_tol: float,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    callback: Callable[[dict[str, Any], FitState], bool | None] | None = None,
    recorders: Sequence[Recorder] = (),
    progress: bool = False,
) -> FitResult:
    """The shared loop. See the module docstring; arguments are validated by :func:`overtensor.fit`."""
    t0 = time.perf_counter()
    target = target.to(dtype=dtype, device=device)
    sq = target.sq_norm()
    if not float(sq) > 0:
        raise ValueError("target has zero norm: nothing to decompose")
    scale = 1.0 / sq.sqrt()
    d, l = target.dim, target.order
    params = init_params(model, width, d, init_scale, generator, dtype, device)
    params0 = {k: v.clone() for k, v in params.items()}
    need_neg = signs == "balanced" or (signs == "auto" and needs_negative_terms(target))
    s = balanced_signs(width, need_neg, dtype, device)
    for p in params.values():
        p.requires_grad_(True)
    opt = make_optimizer(optimizer, params.values(), lr)
    mu = weight_decay

    def loss_fn() -> torch.Tensor:
        a, V = model_cp(model, params, s)
        loss = half_sq_distance(a, V, target, scale, sq)
        if mu > 0:
            loss = loss + 0.5 * mu * (params["W"] ** 2).sum()
        return loss

    history: list[dict[str, Any]] = []
    step = epoch = 0
    phase = "main" if weight_decay > 0 else "final"
    bar = Progress(progress, max_steps, f"{method} m={width}")
    best = math.inf
    bad_epochs = 0
    stop_reason = "max_steps"
    converged = False
    K = epoch_steps
    final_budget = final_steps

    def evaluate(loss: torch.Tensor) -> float:
        check_divergence(loss, step, lr)
        with torch.no_grad():
            a, V = model_cp(model, params, s)
            rel = float(relative_error(a, V, target, scale))
            rec: dict[str, Any] = {
                "step": step, "epoch": epoch, "phase": phase, "loss": float(loss),
                "relative_error": rel, "weight_decay": mu,
                "laziness": float((params["W"] - params0["W"]).norm() / params0["W"].norm()),
            }
            state = FitState(target, scale, model, params, params0, s, step, epoch, phase, mu)
            for fn in recorders:
                rec.update(fn(state))
        history.append(rec)
        bar.update(step, f"rel.err {rel:.2e}")
        if callback is not None and callback(rec, state):
            raise _StopRequested
        return rel

    try:
        while True:
            # One epoch, evaluated every `eval_every` steps.
            done = 0
            rel = math.inf
            while done < K:
                n = min(eval_every, K - done, max_steps - step)
                if n <= 0:
                    break
                loss = gd_steps(loss_fn, opt, n)
                step += n
                done += n
                rel = evaluate(loss)
                if rel <= tol:
                    break
            epoch += 1
            if rel <= tol:
                converged, stop_reason = True, "tol"
                break
            if step >= max_steps:
                break
            # Stagnation: the error did not improve by 1 % over `patience` epochs.
            if rel < best * 0.99:
                best, bad_epochs = rel, 0
            else:
                bad_epochs += 1
            if bad_epochs >= patience:
                if phase == "main":
                    phase, mu, bad_epochs, best = "final", 0.0, 0, math.inf
                    max_steps = min(max_steps, step + final_budget)
                    continue
                stop_reason = "stagnation"
                break
            if reinit_threshold is not None and phase == "main":
                _reinit_small_rows(params, reinit_threshold, init_scale, generator)
            K = max(1, round(K * epoch_growth))
    except _StopRequested:
        stop_reason = "callback"
    finally:
        bar.close()

    with torch.no_grad():
        a, V = model_cp(model, params, s)
        model_rel = float(relative_error(a, V, target, scale))
        raw = SymmetricCP(a / scale, V, l, normalize=True)
        if extract:
            cp = merge_components(a / scale, V, l, merge_cos=merge_cos, drop_tol=drop_tol)
        else:
            cp = raw.canonical()
    if extract and polish_iter > 0:
        cp = polish(cp, target, max_iter=polish_iter)
    final_rel = cp_relative_error(cp, target)
    if final_rel <= tol and not converged:
        converged, stop_reason = True, "tol-after-polish"
    return FitResult(
        cp=cp, relative_error=final_rel, model_relative_error=model_rel, history=history,
        steps=step, seconds=time.perf_counter() - t0, converged=converged or final_rel <= tol,
        stop_reason=stop_reason, method=method, width=width, target=target,
        params={k: v.detach() for k, v in params.items()}, params0=params0, signs=s, model=model,
    )


class _StopRequested(Exception):
    pass


@torch.no_grad()
def _reinit_small_rows(params, threshold: float, init_scale: float, generator) -> int:
    """Re-draw rows with ``‖w_i‖ < threshold`` at norm ``init_scale``; returns how many."""
    W = params["W"]
    small = W.norm(dim=-1) < threshold
    n = int(small.sum())
    if n:
        G = torch.randn(n, W.shape[-1], generator=generator, dtype=torch.float64)
        W[small] = (init_scale * G / G.norm(dim=-1, keepdim=True)).to(W.dtype).to(W.device)
        if "c" in params:
            params["c"][small] = init_scale**2
    return n
