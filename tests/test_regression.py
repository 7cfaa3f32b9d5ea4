"""Over-parameterized regression: row-space split, limits of GD vs adaptive methods, exact risks."""

from __future__ import annotations

import math

import pytest
import torch

from overtensor.regression.core import (
    RowSpace,
    as_problem,
    classify_preconditioner,
    first_layer,
    fit_regression,
    gaussian_design,
    min_norm_interpolant,
    neural_tangent_features,
    nuisance_design,
    preconditioned_interpolant,
    random_features,
    random_features_problem,
    relu_feature_covariance,
)

N, P = 20, 80  # small, still n < p with margin; the experiment uses n = 50, p = 200


@pytest.fixture(scope="module")
def problems():
    return [gaussian_design(N, P, random_state=s) for s in (0, 1)]


@pytest.mark.parametrize("name", ["gd", "span-preserving"])
def test_span_preserving_methods_reach_min_norm(problems, name):
    for prob in problems:
        res = fit_regression(prob, name, steps=3000, records=10)
        f = res.final
        # ‖Pw − w_mn‖ is a direct float64 distance (measured ~6e-16), not a Gram-identity error.
        assert f["in_span_error"] < 1e-8, (name, f)  # pragma: floor-ok
        assert f["out_of_span"] < 1e-10, (name, f)
        assert classify_preconditioner(res) == "span-preserving"
        assert res.leak_ratio < 1e-10


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adam"])
def test_adaptive_methods_interpolate_and_saturate_out_of_span(problems, name):
    for prob in problems:
        res = fit_regression(prob, name, steps=2000, records=40, schedule="step-decay")
        mn = float(res.w_min_norm.norm())
        f = res.final
        assert f["in_span_error"] < 1e-2 * mn, (name, f, mn)
        assert f["out_of_span"] > 0.1 * mn, (name, f, mn)
        assert res.settled_change() < 0.01, (name, res.settled_change())
        assert classify_preconditioner(res) == "rotating"
        assert res.leak_ratio > 1e-2


@pytest.mark.parametrize("name", ["gd", "momentum", "span-preserving", "adagrad", "rmsprop", "adam", "adamw"])
def test_out_of_span_limit_matches_theory(name):
    # A start with an out-of-span part, so that (I − P) w_0 enters the prediction.
    prob = gaussian_design(N, P, random_state=3)
    w0 = 0.3 * torch.randn(P, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    opts = {"weight_decay": 1e-2} if name == "adamw" else None
    res = fit_regression(prob, name, steps=600, w0=w0, records=5, optimizer_options=opts)
    assert res.prediction_source == "theory"
    measured = float(res.out_of_span.norm())
    assert measured > 0.1
    assert res.prediction_error() < 1e-6, (name, res.prediction_error())


def test_prediction_for_callables_and_unknown_optimizers():
    prob = gaussian_design(N, P, random_state=3)
    res = fit_regression(prob, "adagrad", steps=300, records=5)
    assert res.prediction_error() < 1e-6
    opt_hidden = lambda params: torch.optim.Adagrad(params, lr=0.05)  # noqa: E731
    res2 = fit_regression(prob, opt_hidden, steps=300, records=5)
    # An Adagrad built by a callable is still recognized (state read from the instance) ...
    assert res2.prediction_source == "theory"
    assert res2.prediction_error() < 1e-6
    # ... while an unknown optimizer gets no prediction rather than a wrong one.

    class Sign(torch.optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        @torch.no_grad()
        def step(self, closure=None):
            for g in self.param_groups:
                for w in g["params"]:
                    w.sub_(torch.sign(w.grad), alpha=g["lr"])

    res3 = fit_regression(prob, Sign, lr=1e-3, steps=50, records=5)
    assert res3.prediction_source == "unavailable" and res3.predicted_out_of_span is None
    assert classify_preconditioner(res3) == "rotating"


def test_row_space_svd_and_lsqr_agree():
    prob = gaussian_design(15, 60, random_state=4)
    a, b = RowSpace(prob.X), RowSpace(prob.X, solver="lsqr")
    w = torch.randn(60, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(a.project(w), b.project(w), atol=1e-8)
    assert torch.allclose(a.pinv_apply(prob.y), b.pinv_apply(prob.y), atol=1e-8)
    # P is a projection onto row(X): idempotent, and X(I − P) = 0.
    Pw = a.project(w)
    assert torch.allclose(a.project(Pw), Pw, atol=1e-12)
    assert float((prob.X @ a.complement(w)).norm()) < 1e-10 * float(prob.X.norm() * w.norm())
    wmn = min_norm_interpolant(prob.X, prob.y)
    assert torch.allclose(wmn, torch.linalg.pinv(prob.X) @ prob.y, atol=1e-10)


def test_diagonal_preconditioner_reaches_its_interpolant():
    prob = nuisance_design(N, P, 3.0, random_state=2)
    d = 1.0 / prob.covariance  # covariance = s² for a Gaussian design
    res = fit_regression(prob, "diagonal", steps=3000, records=5, optimizer_options={"diag": d})
    target = preconditioned_interpolant(prob.X, prob.y, d)
    assert float((res.w - target).norm()) < 1e-8 * float(target.norm())


def test_fixed_preconditioner_beats_min_norm_at_large_nuisance_scale():
    # The done-when of min-norm-generalization at s = 10: >= 4/5 seeds (here the experiment's sizes).
    wins = 0
    for seed in range(5):
        prob = nuisance_design(50, 200, 10.0, random_state=seed)
        r_mn = prob.test_risk(min_norm_interpolant(prob.X, prob.y))
        r_d = prob.test_risk(preconditioned_interpolant(prob.X, prob.y, 1.0 / prob.covariance))
        wins += r_d < r_mn
    assert wins >= 4


def test_exact_risk_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    # Gaussian design with scales: (w − w*)ᵀ diag(s²) (w − w*) + σ².
    prob = gaussian_design(10, 6, scales=[1, 2, 3, 1, 1, 0.5], noise=0.3, random_state=1)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    m = 200_000
    Z = torch.randn(m, 6, generator=gen, dtype=torch.float64) * prob.covariance.sqrt()
    y = Z @ prob.w_star + 0.3 * torch.randn(m, generator=gen, dtype=torch.float64)
    sq = (Z @ w - y) ** 2
    assert abs(float(sq.mean()) - prob.test_risk(w)) < 5 * float(sq.std()) / math.sqrt(m)
    # ReLU random features: the arc-cosine kernel is E[relu(w_i·x) relu(w_j·x)].
    W0 = first_layer(5, 7, gen)
    x = torch.randn(m, 5, generator=gen, dtype=torch.float64)
    F = random_features(x, W0)
    emp = F.T @ F / m
    K = relu_feature_covariance(W0)
    assert float((emp - K).abs().max()) < 0.02 * float(K.abs().max())


def test_random_features_problem_is_consistent():
    prob = random_features_problem(20, 200, 50, block=range(100, 200), block_scale=2.0,
                                   support=range(100), random_state=0)
    assert prob.X.shape == (50, 200) and prob.covariance.shape == (200, 200)
    assert torch.allclose(prob.X @ prob.w_star, prob.y)
    assert float(prob.w_star[100:].abs().max()) == 0.0
    assert prob.test_risk(prob.w_star) == pytest.approx(0.0, abs=1e-12)
    # A PSD covariance: a risk is never negative.
    assert float(torch.linalg.eigvalsh(prob.covariance)[0]) > -1e-10


def test_neural_tangent_features_are_the_network_jacobian():
    gen = torch.Generator().manual_seed(0)
    d, width = 4, 5
    W0 = first_layer(d, width, gen)
    a0 = torch.randn(width, generator=gen, dtype=torch.float64)
    x = torch.randn(3, d, generator=gen, dtype=torch.float64)

    def net(a, W):
        return torch.relu(x @ W.T) @ a

    Ja, JW = torch.func.jacrev(net, argnums=(0, 1))(a0, W0)
    J = torch.cat([Ja, JW.reshape(3, -1)], 1)
    assert torch.allclose(neural_tangent_features(x, W0, a0), J, atol=1e-12)


def test_bad_inputs_raise_before_work():
    prob = gaussian_design(5, 10, random_state=0)
    with pytest.raises(ValueError, match="'nope'"):
        fit_regression(prob, "nope")
    with pytest.raises(ValueError, match="steps"):
        fit_regression(prob, "gd", steps=0)
    with pytest.raises(ValueError, match="schedule"):
        fit_regression(prob, "gd", schedule="cosine")
    with pytest.raises(ValueError, match="diag"):
        fit_regression(prob, "diagonal")
    with pytest.raises(ValueError, match="y must have n=3"):
        as_problem(torch.zeros(3, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="scales"):
        gaussian_design(3, 4, scales=[1, 1, -1, 1])
    with pytest.raises(TypeError, match="RegressionProblem"):
        fit_regression((prob.X, prob.y), "gd")


def test_jacobian_span_split_of_a_two_layer_network():
    from overtensor.regression.core import jacobian_span_split

    gen = torch.Generator().manual_seed(2)
    d, width, n = 4, 10, 12  # 50 parameters > 12 samples
    W0 = first_layer(d, width, gen)
    a0 = torch.randn(width, generator=gen, dtype=torch.float64) / math.sqrt(width)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    J = neural_tangent_features(x, W0, a0)
    # Linearized network trained by GD: the displacement stays in the Jacobian's row space exactly.
    res = fit_regression(as_problem(J, y - torch.relu(x @ W0.T) @ a0), "gd", steps=400, records=5)
    theta = res.w
    split = jacobian_span_split(x, W0, a0, W0 + theta[width:].reshape(width, d), a0 + theta[:width])
    assert split["out_of_span"] < 1e-10 * split["displacement"]
    # Adam on the same linearized model leaves the span.
    res = fit_regression(as_problem(J, y - torch.relu(x @ W0.T) @ a0), "adam", lr=1e-2, steps=400, records=5)
    theta = res.w
    split = jacobian_span_split(x, W0, a0, W0 + theta[width:].reshape(width, d), a0 + theta[:width])
    assert split["out_of_span"] > 0.05 * split["displacement"]
    assert "local" in split["span"]


def test_minibatch_sgd_stays_in_span_and_interpolates():
    prob = gaussian_design(N, P, random_state=5)
    res = fit_regression(prob, "sgd", lr=0.5 / float(torch.linalg.matrix_norm(prob.X, 2)) ** 2,
                         batch_size=5, steps=3000, records=5, random_state=0)
    assert res.leak_ratio < 1e-10 and classify_preconditioner(res) == "span-preserving"
    assert res.final["in_span_error"] < 1e-6 * float(res.w_min_norm.norm())
    again = fit_regression(prob, "sgd", lr=res.lr, batch_size=5, steps=50, records=5, random_state=0)
    first = fit_regression(prob, "sgd", lr=res.lr, batch_size=5, steps=50, records=5, random_state=0)
    assert torch.equal(again.w, first.w)  # the mini-batches come from the generator
