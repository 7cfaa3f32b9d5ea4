"""Second doors validate like the first (issue 23, item 7): every engine of ``fit`` and
``fit_batched``, regression
problems, ``preconditioned_interpolant`` and ``Shortcuts`` go through the checks of
``overtensor._checks``, before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import overtensor as ot
from overtensor.regression.core import RegressionProblem, as_problem, preconditioned_interpolant
from overtensor.tensors.config import split_options
from overtensor.tensors.shortcuts import Shortcuts


def design(n: int = 10, p: int = 5):
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(n, p, generator=gen, dtype=torch.float64),
            torch.randn(n, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("option, match", [
    ({"tol": float("nan")}, "tol must be finite"),
    ({"tol": -1}, "tol must be >= 0"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1"),
    ({"final_steps": -1}, "final_steps"),
])
@pytest.mark.parametrize("door", ["auto", "paper", "batched"])
def test_every_door_refuses_what_fit_refuses(option, match, door):
    target = ot.random_target(3, 20, 3, random_state=0)
    with pytest.raises(ValueError, match=match):
        if door == "batched":
            ot.fit_batched([target], 10, random_states=[0], **option)
        else:
            ot.fit(target, 10, **split_options(option), runtime=ot.Runtime(engine=door))


def test_the_default_route_accepts_numpy_scalars_like_the_paper_engine():
    target = ot.random_target(3, 12, 2, random_state=0)
    result = ot.fit(target, 6, tol=np.float64(1e-4), random_state=0,
                    schedule=ot.GradientSchedule(max_steps=np.int64(3000)))
    assert result.relative_error < 1e-3


@pytest.mark.parametrize("covariance, match", [
    (-3.0 * torch.ones(5), r"covariance\[0\] = -3.0"),
    (-torch.eye(5, dtype=torch.float64), "positive semi-definite"),
    (torch.triu(torch.ones(5, 5, dtype=torch.float64)), "symmetric"),
    (torch.ones(4), "shape"),
])
def test_a_covariance_must_be_a_covariance(covariance, match):
    X, y = design()
    with pytest.raises(ValueError, match=match):
        as_problem(X, y, w_star=torch.zeros(5), covariance=covariance)


def test_a_problem_built_directly_is_checked_too():
    X, y = design()
    with pytest.raises(ValueError, match="covariance"):
        RegressionProblem(X, y, torch.zeros(5, dtype=torch.float64), -torch.ones(5), 0.0)
    with pytest.raises(ValueError, match="noise"):
        RegressionProblem(X, y, noise=-1.0)


def test_a_positive_semi_definite_covariance_gives_a_non_negative_null_risk():
    X, y = design()
    A = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    problem = as_problem(X, y, w_star=torch.ones(5, dtype=torch.float64), covariance=A @ A.T)
    assert problem.null_risk() >= 0


@pytest.mark.parametrize("diag, match", [
    ([1.0, 0.0, 1.0, 1.0, 1.0], r"diag\[1\] = 0.0"),
    ([1.0, -2.0, 1.0, 1.0, 1.0], r"diag\[1\] = -2.0"),
    ([1.0, 1.0], "shape"),
])
def test_preconditioned_interpolant_refuses_a_diagonal_that_is_not_positive(diag, match):
    X, y = design(3, 5)
    with pytest.raises(ValueError, match=match):
        preconditioned_interpolant(X, y, torch.tensor(diag))


def test_preconditioned_interpolant_with_unit_diagonal_is_the_min_norm_interpolant():
    X, y = design(3, 5)
    w = preconditioned_interpolant(X, y, torch.ones(5))
    torch.testing.assert_close(X @ w, y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(w, torch.linalg.pinv(X) @ y, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["check_every", "curvature_every", "lm_iter"])
def test_shortcuts_accept_numpy_integers_and_refuse_zero(name):
    assert getattr(Shortcuts(**{name: np.int64(5)}), name) == 5
    assert type(getattr(Shortcuts(**{name: np.int64(5)}), name)) is int
    with pytest.raises(ValueError, match=name):
        Shortcuts(**{name: 0})
    with pytest.raises(TypeError, match=name):
        Shortcuts(**{name: 2.5})


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_a_regression_design_out_of_range_is_refused(scale):
    X, y = design()
    with pytest.raises(ValueError, match="X: the squares"):
        as_problem(scale * X, y)


@pytest.mark.parametrize("args, match", [
    (lambda X, y: (X, y[:5]), "y must have n=10"),
    (lambda X, y: (X[:, 0], y), "X must be a 2-d array"),
    (lambda X, y: (X * float("nan"), y), "X contains"),
])
def test_min_norm_interpolant_validates_like_as_problem(args, match):
    from overtensor.regression.core import min_norm_interpolant

    X, y = design()
    with pytest.raises(ValueError, match=match):
        min_norm_interpolant(*args(X, y))


def test_random_target_counts_its_working_copies_in_the_memory_check():
    with pytest.raises(ValueError, match=r"dim=1000000000 needs four float64"):
        ot.random_target(3, 10**9, 2)


def test_numpy_scalars_given_to_networks_are_stored_as_python_numbers():
    # NumPy integers are accepted like ints; kept as np.int64 they made the summary of a
    # training run impossible to write as JSON (TypeError: int64 is not JSON serializable).
    import json

    from overtensor.networks.data import gaussian_quadratic
    from overtensor.networks.model import NetworkSpec
    from overtensor.networks.train import TrainConfig, train_network

    spec = NetworkSpec(np.int64(3), np.int64(5), degree=np.int64(2))
    cfg = TrainConfig(steps=np.int64(3), test_samples=np.int64(10), batch_size=np.int64(4),
                      lr=np.float32(0.01), alpha=np.float32(1.0), eval_every=np.int64(1))
    assert all(type(v) is int for v in (spec.width, spec.dim, spec.degree, cfg.steps,
                                         cfg.test_samples, cfg.batch_size, cfg.eval_every))
    assert type(cfg.lr) is float and type(cfg.alpha) is float
    data = gaussian_quadratic(5, torch.Generator().manual_seed(0))
    summary = train_network(data, spec, cfg, random_state=0).summary()
    assert json.loads(json.dumps(summary))["steps"] == 3
