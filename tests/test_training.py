"""The shared training layer: one divergence rule, with the same error and advice, in every family."""

from __future__ import annotations

import pytest
import torch

import overtensor as ot
from overtensor.networks.data import gaussian_quadratic
from overtensor.networks.model import NetworkSpec
from overtensor.networks.train import TrainConfig, train_network
from overtensor.regression.core import fit_regression, gaussian_design
from overtensor.training.loop import DIVERGENCE_FACTOR, DivergenceError, check_divergence

MESSAGE = r"training diverged at step \d+: .* \(start .*\)\. Lower the step size \(lr=.*; try lr="


def test_the_rule_is_a_multiple_of_the_start_or_a_non_finite_loss():
    check_divergence(0.99 * DIVERGENCE_FACTOR * 2.0, step=3, lr=0.1, start=2.0)  # below: no error
    with pytest.raises(DivergenceError, match=MESSAGE):
        check_divergence(1.01 * DIVERGENCE_FACTOR * 2.0, step=3, lr=0.1, start=2.0)
    with pytest.raises(DivergenceError, match=MESSAGE):
        check_divergence(torch.tensor([0.1, float("nan")]), step=3, lr=0.1)


def test_every_family_raises_the_same_divergence_error_with_the_same_advice():
    target = ot.random_target(order=3, dim=6, rank=2, random_state=0)
    with pytest.raises(DivergenceError, match=MESSAGE):
        ot.fit(target, width=6, random_state=0, schedule=ot.GradientSchedule(lr=50.0,
               init_scale=0.5, max_steps=400), runtime=ot.Runtime(engine="paper"))
    data = gaussian_quadratic(5, torch.Generator().manual_seed(0))
    with pytest.raises(DivergenceError, match=MESSAGE):
        train_network(data, NetworkSpec(dim=5, width=6), TrainConfig(lr=50.0, steps=300,
                                                                      test_samples=200),
                      random_state=0)
    problem = gaussian_design(20, 40, random_state=0)
    with pytest.raises(DivergenceError, match=MESSAGE):
        fit_regression(problem, "gd", lr=5.0, steps=300, random_state=0)


# --- an optimizer named in a config is the optimizer that runs, in every family ---------------

def _spy(monkeypatch):
    from overtensor.optim import registry

    used: list[str] = []
    for name, factory in list(registry.OPTIMIZERS.items()):
        def wrapped(params, lr, _name=name, _factory=factory, **kw):
            used.append(_name)
            return _factory(params, lr, **kw)
        monkeypatch.setitem(registry.OPTIMIZERS, name, wrapped)
    return used


def _general_optimizers():
    from overtensor.optim.registry import DESIGN_OPTIMIZERS, OPTIMIZERS

    return [n for n in OPTIMIZERS if n not in DESIGN_OPTIMIZERS]


@pytest.mark.parametrize("name", _general_optimizers())
def test_the_named_optimizer_runs_in_every_family(monkeypatch, name):
    used = _spy(monkeypatch)
    lr = 1e-3 if name in ("adagrad", "rmsprop", "adam", "adamw") else None
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    # engine="autograd": with "gd" the default engine is the batched closed-form gradient descent
    ot.fit(target, width=5, random_state=0, schedule=ot.GradientSchedule(optimizer=name, lr=lr,
           max_steps=60, final_steps=20, eval_every=20), runtime=ot.Runtime(engine="autograd"))
    assert name in used, f"fit ran {used} for optimizer={name!r}"
    used.clear()
    data = gaussian_quadratic(4, torch.Generator().manual_seed(0))
    train_network(data, NetworkSpec(dim=4, width=3),
                  TrainConfig(optimizer=name, lr=lr, steps=20, test_samples=100), random_state=0)
    assert name in used, f"train_network ran {used} for optimizer={name!r}"
    used.clear()
    fit_regression(gaussian_design(10, 20, random_state=0), name, lr=lr, steps=20, random_state=0)
    assert name in used, f"fit_regression ran {used} for optimizer={name!r}"


@pytest.mark.parametrize("name", ["span-preserving", "diagonal"])
def test_regression_only_optimizers_are_refused_by_the_other_families_with_one_message(name):
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    with pytest.raises(ValueError, match=f"optimizer='{name}' needs .*regression problem"):
        ot.fit(target, width=5, random_state=0, schedule=ot.GradientSchedule(optimizer=name,
               lr=0.01, max_steps=20))
    data = gaussian_quadratic(4, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=f"optimizer='{name}' needs .*regression problem"):
        train_network(data, NetworkSpec(dim=4, width=3),
                      TrainConfig(optimizer=name, lr=0.01, steps=5, test_samples=50), random_state=0)


# --- one result base, one callback contract -------------------------------------------------

def test_every_family_returns_the_result_base_and_stops_on_the_same_callback_contract():
    from overtensor.training.result import TrainingResult

    def stop_at_second(record, state):
        seen.append((record["step"], state))
        return len(seen) == 2

    seen: list = []
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    fit = ot.fit(target, width=5, callback=stop_at_second, random_state=0,
                 schedule=ot.GradientSchedule(max_steps=2000, eval_every=50))
    assert fit.steps == seen[1][0] == 100 and fit.stop_reason == "callback"
    seen.clear()
    data = gaussian_quadratic(4, torch.Generator().manual_seed(0))
    net = train_network(data, NetworkSpec(dim=4, width=3),
                        TrainConfig(steps=500, eval_every=20, test_samples=100),
                        random_state=0, callback=stop_at_second)
    assert net.steps == seen[1][0] == 40 and net.stop_reason == "callback"
    assert set(seen[1][1]) == {"step", "params", "model_fn"}
    seen.clear()
    reg = fit_regression(gaussian_design(10, 20, random_state=0), "gd", steps=500,
                         random_state=0, callback=stop_at_second)
    assert reg.steps == seen[1][0] < 500 and reg.stop_reason == "callback"
    for result in (fit, net, reg):
        assert isinstance(result, TrainingResult)
        summary = result.summary()
        assert summary["steps"] == result.steps and result.history


@pytest.mark.parametrize("bad", [3, "stop"])
def test_a_callback_that_is_not_callable_is_refused_by_every_family(bad):
    data = gaussian_quadratic(4, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="callback must be a callable"):
        train_network(data, NetworkSpec(dim=4, width=3), TrainConfig(steps=5), callback=bad)
    with pytest.raises(TypeError, match="callback must be a callable"):
        fit_regression(gaussian_design(10, 20, random_state=0), "gd", steps=5, callback=bad)
