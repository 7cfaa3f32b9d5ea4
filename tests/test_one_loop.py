"""One training loop (issue 20, item 2): every family and built-in experiment trains through
``overtensor.training.loop.train_loop``; only ``training/`` steps an optimizer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import overtensor as ot
from overtensor.networks.data import gaussian_quadratic
from overtensor.networks.model import NetworkSpec
from overtensor.networks.train import TrainConfig, train_network
from overtensor.regression.core import fit_regression, gaussian_design
from overtensor.tensors.config import split_options
from overtensor.training.loop import (
    Divergence,
    DivergenceError,
    Evaluation,
    train_loop,
)
from overtensor.training.schedule import StepSchedule

PACKAGE = Path(__file__).resolve().parents[1] / "overtensor"
MESSAGE = r"training diverged at step \d+: .* \(start .*\)\. Lower the step size \(lr=.*; try lr="

#: Where optimizers may be stepped: the shared training layer only. The two faster tensor engines
#: (``tensors/batched.py``, ``tensors/small_core.py``) step closed-form gradients in place, never
#: an optimizer, so they need no exemption.
STEPPING_ALLOWED = ("training",)


# --- only the shared loop steps an optimizer -----------------------------------------------------

def _optimizer_calls(source: str, name: str) -> list[str]:
    """``x.step(...)`` and ``x.zero_grad(...)`` calls in ``source`` (a learning-rate scheduler's
    ``lr_scheduler.step()`` is not an optimizer step)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("step", "zero_grad")):
            if node.func.attr == "step" and ast.unparse(node.func.value) == "lr_scheduler":
                continue
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_outside_training_steps_an_optimizer():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in STEPPING_ALLOWED:
            continue
        offenders += _optimizer_calls(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    assert not offenders, "optimizer stepped outside overtensor/training/:\n" + "\n".join(offenders)


def test_the_grep_finds_an_optimizer_stepped_in_a_loop_of_its_own():
    own_loop = ("def fit(opt, loss_fn, n):\n    for _ in range(n):\n        opt.zero_grad()\n"
                "        loss_fn().backward()\n        opt.step()\n")
    assert len(_optimizer_calls(own_loop, "own_loop.py")) == 2
    assert _optimizer_calls("lr_scheduler.step()\n", "ok.py") == []


# --- the driver --------------------------------------------------------------------------------

def test_step_schedule_evaluates_every_k_at_listed_steps_and_at_the_end():
    def points(schedule, start=False):
        seen = []
        train_loop(schedule, lambda n: None, lambda loss: Evaluation({"step": schedule.step}),
                   divergence=Divergence(0.1), evaluate_start=start,
                   callback=lambda rec, state: seen.append(rec["step"]))
        return seen, schedule

    seen, s = points(StepSchedule(10, every=4))
    assert seen == [4, 8, 10] and s.step == 10 and s.stop_reason == "max_steps"
    seen, s = points(StepSchedule(10, every=4, last=False), start=True)
    assert seen == [0, 4, 8] and s.step == 10  # the tail after 8 is stepped, not evaluated
    seen, s = points(StepSchedule(100, at=[0, 1, 7, 100], last=False), start=True)
    assert seen == [0, 1, 7, 100]
    seen, s = points(StepSchedule(0, every=3), start=True)
    assert seen == [0] and s.step == 0


def test_per_step_calls_one_step_at_a_time_and_chunks_otherwise():
    calls: list[int] = []

    def step(n):
        calls.append(n)
        return 1.0

    train_loop(StepSchedule(7, every=3), step, lambda loss: Evaluation({}), divergence=Divergence(1.0))
    assert calls == [3, 3, 1]
    calls.clear()
    train_loop(StepSchedule(7, every=3), step, lambda loss: Evaluation({}), divergence=Divergence(1.0),
               per_step=True)
    assert calls == [1] * 7


def test_divergence_is_checked_on_every_step_loss_and_on_evaluation_losses():
    losses = iter([1.0, 2.0, float("nan"), 3.0])
    with pytest.raises(DivergenceError, match=r"at step 3: batch risk = nan"):
        train_loop(StepSchedule(10, every=5), lambda n: next(losses), lambda loss: Evaluation({}),
                   divergence=Divergence(0.5, start=1.0, what="batch risk"), per_step=True)
    # start=None: the first checked loss is the start (a regression's loss at w0)
    values = iter([4.0, 4.0 * 0.99e8, 4.0 * 1.01e8])
    seen = []
    with pytest.raises(DivergenceError, match=r"at step 2: loss = 4.04e\+08 \(start 4\)"):
        train_loop(StepSchedule(5, every=1), lambda n: None,
                   lambda loss: Evaluation(seen.append(1) or {}, loss=next(values)),
                   divergence=Divergence(0.5, start=None), evaluate_start=True)
    assert len(seen) == 3  # the record of the diverged evaluation is not kept in the history


def test_a_stated_multiple_of_inf_stops_only_on_a_non_finite_loss():
    div = Divergence(1.0, start=None, factor=float("inf"))
    div.check(1.0, 1)
    div.check(1e300, 2)
    with pytest.raises(DivergenceError):
        div.check(float("inf"), 3)


def test_the_progress_bar_is_closed_also_when_the_run_fails():
    class Bar:
        closed = False

        def update(self, completed, info=""):
            pass

        def close(self):
            self.closed = True

    bar = Bar()
    with pytest.raises(DivergenceError):
        train_loop(StepSchedule(5, every=1), lambda n: float("inf"), lambda loss: Evaluation({}),
                   divergence=Divergence(1.0), progress=bar)
    assert bar.closed


# --- every family: the same history, callback and divergence behaviour ------------------------

def _tensor_fit(regime: str, engine: str | None = None, **kw):
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    engine = {"engine": engine} if engine else {}
    return ot.fit(target, width=5, method="gd", regime=regime, random_state=0,
                  **split_options({"max_steps": 400, "eval_every": 20, **engine, **kw}))


def _network(**kw):
    lr = kw.pop("lr", None)
    data = gaussian_quadratic(4, torch.Generator().manual_seed(0))
    return train_network(data, NetworkSpec(dim=4, width=3),
                         TrainConfig(steps=400, eval_every=20, test_samples=100, lr=lr),
                         random_state=0, **kw)


def _regression(**kw):
    lr = kw.pop("lr", None)
    return fit_regression(gaussian_design(10, 20, random_state=0), "gd", steps=400, lr=lr,
                          random_state=0, **kw)


FAMILIES = {
    "tensor-full": lambda **kw: _tensor_fit("full", "autograd", **kw),
    # the batched engine (the default of "gd"), a faster engine of the same schedule
    "tensor-full-batched": lambda **kw: _tensor_fit("full", **kw),
    "tensor-random-features": lambda **kw: _tensor_fit("random-features", **kw),
    "tensor-orthogonal": lambda **kw: _tensor_fit("orthogonal", **kw),
    "network": _network,
    "regression": _regression,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_keeps_the_history_and_stops_on_the_callback_alike(family):
    seen: list = []

    def stop_at_third(record, state):
        seen.append((record, state, torch.is_grad_enabled()))
        return len(seen) == 3

    result = FAMILIES[family](callback=stop_at_third)
    assert result.stop_reason == "callback"
    assert result.steps == seen[-1][0]["step"] > 0
    assert len(result.history) == 3 and all(h is s[0] for h, s in zip(result.history, seen, strict=True))
    steps = [h["step"] for h in result.history]
    assert steps == sorted(set(steps))
    assert not any(grad for _, _, grad in seen), "the callback runs without autograd in every family"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_without_a_callback_runs_its_budget_or_its_own_stop(family):
    result = FAMILIES[family]()
    assert result.stop_reason in ("max_steps", "tol", "stagnation")
    assert result.history[-1]["step"] == result.steps <= 400


#: A step size far above 2/L in each family (the loss grows geometrically).
HUGE_LR = {"tensor-full": 50.0, "tensor-full-batched": 50.0, "tensor-random-features": 1e3,
           "tensor-orthogonal": 1e3, "network": 50.0, "regression": 5.0}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_raises_the_same_divergence_error(family):
    with pytest.raises(DivergenceError, match=MESSAGE):
        FAMILIES[family](lr=HUGE_LR[family])


# --- one step-size module ------------------------------------------------------------------------

def test_the_default_step_rules():
    from overtensor.optim.steps import curvature_step, minibatch_step, tensor_curvature_step, tensor_step

    assert curvature_step(4.0, flat=1.0) == 0.25
    assert curvature_step(4.0, factor=0.5, cap=0.1, flat=1.0) == 0.1
    assert curvature_step(0.0, flat=0.3) == curvature_step(float("nan"), flat=0.3) == 0.3
    assert tensor_step(3) == tensor_step(4) == 0.125 and tensor_step(6) == 0.5 / 6
    assert tensor_curvature_step(1.0, 3) == 0.125  # ½/L above the cap: the cap
    assert tensor_curvature_step(100.0, 3) == 0.005 and tensor_curvature_step(-1.0, 5) == 0.1
    # Ma, Bassily & Belkin: b / (n β + (b − 1) λ_max), never above the full-batch step
    assert minibatch_step(1.0, n=40, batch=8, beta=2.0, top=10.0) == pytest.approx(8 / (80 + 70))
    assert minibatch_step(0.01, n=40, batch=40, beta=0.0, top=0.1) == 0.01


def test_a_solver_without_a_step_size_gets_the_rule_without_a_step_advice():
    # conjugate gradients (the lazy regime's default) has no lr: the message must still be built
    with pytest.raises(DivergenceError, match=r"at step 4: loss = nan .*Lower the step size, or use"):
        Divergence(None).check(float("nan"), 4)
