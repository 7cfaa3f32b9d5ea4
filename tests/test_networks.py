"""Two-layer networks: exact RF / NT / NN optima, training lands on them, the regime layer."""

from __future__ import annotations

import math

import pytest
import torch

from overtensor.networks.data import gaussian_quadratic
from overtensor.networks.model import NetworkSpec, init_network, network_fn, quadratic_form
from overtensor.networks.quadratic_risk import (
    nn_optimal_form,
    nn_optimum,
    nt_optimum,
    null_risk,
    population_risk,
    regime_optima,
    rf_optimum,
)
from overtensor.networks.train import TrainConfig, train_network
from overtensor.regimes.layer import REGIME_TRANSFORMS, apply_regime, register_regime


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_authors_target_d60_ordering_and_zeros():
    d = 60
    data = gaussian_quadratic(d, _gen(0))
    B, R0 = data.B, null_risk(data.B)
    lam = torch.linalg.eigvalsh(B).abs().sort(descending=True).values
    for N in (6, 15, 30, 45, 60, 120):
        W = init_network(NetworkSpec(N, d), _gen(N))["W"]
        o = regime_optima(W, B)
        assert o["nn"] == pytest.approx(2 * float((lam[N:] ** 2).sum()), rel=1e-12, abs=1e-14 * R0)
        if N < d:
            assert o["rf"] > o["nt"] > o["nn"] > 0
            # The magnitudes of docs/theory/networks.md §1 (one draw): NT far from 0, NN well below NT.
            assert o["nt"] / R0 > 0.1 and o["nn"] < 0.6 * o["nt"]
        else:
            assert o["nt"] / R0 < 1e-10 and o["nn"] == 0.0
            assert o["rf"] / R0 > 0.3  # RF needs N ~ d² features


def test_population_risk_identity_by_monte_carlo():
    d, g = 6, _gen(1)
    B = torch.randn(d, d, generator=g, dtype=torch.float64)
    B = (B + B.T) / 2
    M = torch.randn(d, d, generator=g, dtype=torch.float64)
    M, c = (M + M.T) / 2, 0.3
    X = torch.randn(200_000, d, generator=g, dtype=torch.float64)
    err = ((X @ M) * X).sum(-1) + c - (((X @ B) * X).sum(-1) - torch.trace(B))
    sq = err**2
    mc, se = float(sq.mean()), float(sq.std() / math.sqrt(len(sq)))
    assert abs(mc - population_risk(M, c, B)) < 4 * se


def _explicit_least_squares(features: list[torch.Tensor], B: torch.Tensor) -> float:
    """``2 min ‖B − Σ_k x_k F_k‖_F²`` over explicit d×d features (independent of the formulas)."""
    A = torch.stack([F.reshape(-1) for F in features], 1)
    sol = torch.linalg.lstsq(A, B.reshape(-1, 1), driver="gelsd").solution
    return float(2 * ((A @ sol - B.reshape(-1, 1)) ** 2).sum())


@pytest.mark.parametrize("N", [2, 5, 9])
def test_rf_and_nt_optima_match_explicit_least_squares(N):
    d, g = 7, _gen(N)
    B = torch.randn(d, d, generator=g, dtype=torch.float64)
    B = (B + B.T) / 2
    W = torch.randn(N, d, generator=g, dtype=torch.float64)
    rf = [torch.outer(w, w) for w in W]
    E = torch.eye(d, dtype=torch.float64)
    nt = rf + [torch.outer(w, e) + torch.outer(e, w) for w in W for e in E]
    assert rf_optimum(W, B)[0] == pytest.approx(_explicit_least_squares(rf, B), rel=1e-9, abs=1e-12)
    assert nt_optimum(W, B) == pytest.approx(_explicit_least_squares(nt, B), rel=1e-9, abs=1e-12)
    M = nn_optimal_form(B, N)
    assert population_risk(M, -torch.trace(M), B) == pytest.approx(nn_optimum(B, N), rel=1e-10)


def test_lazy_network_is_in_the_tangent_class():
    # For σ = t² the linearized network is xᵀMx + c with (I − P_W)(M − M_0)(I − P_W) = 0.
    d, N = 9, 4
    spec = NetworkSpec(N, d)
    p0 = init_network(spec, _gen(3))
    fn, theta = apply_regime("lazy", network_fn(spec), p0)
    g = _gen(4)
    moved = {k: v + torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in theta.items()}
    M, _ = quadratic_form(fn, moved, d)
    M0, _ = quadratic_form(network_fn(spec), p0, d)
    Q, _ = torch.linalg.qr(p0["W"].T)
    Pp = torch.eye(d, dtype=torch.float64) - Q @ Q.T
    assert float((Pp @ (M - M0) @ Pp).norm()) < 1e-12 * float((M - M0).norm())
    # and it is the first-order expansion: f(θ0 + εδ) − f_lin(θ0 + εδ) = O(ε²).
    X = torch.randn(5, d, generator=g, dtype=torch.float64)
    net = network_fn(spec)
    gaps = []
    for eps in (1e-2, 1e-3):
        p = {k: p0[k] + eps * (moved[k] - p0[k]) for k in p0}
        gaps.append(float((net(p, X) - fn(p, X)).abs().max()))
    assert 50 < gaps[0] / gaps[1] < 200


def test_random_features_trains_only_named_keys_and_alpha_scaled_tends_to_lazy():
    d, N = 6, 3
    spec = NetworkSpec(N, d)
    p0 = init_network(spec, _gen(5))
    net = network_fn(spec)
    fn, theta = apply_regime("random-features", net, p0)
    assert sorted(theta) == ["a", "c"]
    X = torch.randn(4, d, generator=_gen(6), dtype=torch.float64)
    assert torch.equal(fn(theta, X), net(p0, X))
    lin, _ = apply_regime("lazy", net, p0)
    delta = {k: 0.1 * torch.randn(v.shape, generator=_gen(7), dtype=v.dtype) for k, v in p0.items()}
    gaps = []
    for alpha in (10.0, 100.0):
        sc, _ = apply_regime("alpha-scaled", net, p0, alpha=alpha)
        p = {k: p0[k] + delta[k] / alpha for k in p0}
        gaps.append(float((sc(p, X) - lin({k: p0[k] + delta[k] for k in p0}, X)).abs().max()))
    assert gaps[1] < gaps[0] / 5
    # At θ = θ_0 every regime is the initial network, also as a quadratic form in x.
    M0, c0 = quadratic_form(net, p0, d)
    for name, opts in (("lazy", {}), ("alpha-scaled", {"alpha": 3.0}), ("full", {})):
        f, th = apply_regime(name, net, p0, **opts)
        M, c = quadratic_form(f, th, d)
        assert torch.allclose(M, M0, rtol=1e-12, atol=1e-14) and torch.allclose(c, c0)
    with pytest.raises(ValueError, match="regime must be one of"):
        apply_regime("nope", net, p0)
    with pytest.raises(ValueError, match="trained"):
        apply_regime("random-features", net, p0, trained=("b",))


def test_register_regime_adds_by_name():
    @register_regime("_test-identity")
    def ident(model_fn, params0):
        return model_fn, dict(params0)

    try:
        assert apply_regime("_test-identity", sum, {})[0] is sum
    finally:
        REGIME_TRANSFORMS.pop("_test-identity")


@pytest.mark.parametrize(("regime", "key"), [("full", "nn"), ("lazy", "nt")])
def test_online_sgd_lands_on_exact_optimum(regime, key):
    d, N = 12, 5
    data = gaussian_quadratic(d, _gen(0))
    spec = NetworkSpec(N, d)
    res = train_network(data, spec, TrainConfig(regime=regime, steps=1500), random_state=2)
    W0 = init_network(spec, _gen(2))["W"]  # the same draw as the fit's initialization
    assert torch.equal(W0, res.params0["W"])
    opt = regime_optima(W0, data.B)
    assert opt["nn"] < opt["nt"] - 0.1 * opt["null"]  # the two optima are clearly apart
    assert res.exact
    assert abs(res.test_risk - opt[key]) < 0.05 * res.null_risk


def test_rank5_target_nn_fits_nt_cannot():
    d, N = 40, 10
    data = gaussian_quadratic(d, _gen(0), rank=5)
    spec = NetworkSpec(N, d)
    # Adam removes the surplus neurons quickly (online SGD at its default rate stalls near 4e-4·R0:
    # the decay of the unneeded neurons is sublinear); the claim is about the class, not the optimizer.
    res = train_network(data, spec, TrainConfig(regime="full", steps=1500, optimizer="adam"),
                        random_state=1)
    R0 = res.null_risk
    assert res.test_risk < 1e-3 * R0
    assert nt_optimum(res.params0["W"], data.B) > 0.3 * R0


def test_bad_input_raises_before_work():
    with pytest.raises(ValueError, match="activation"):
        NetworkSpec(3, 4, activation="sigmoid")
    with pytest.raises(ValueError, match=r"spec\.dim"):
        train_network(gaussian_quadratic(5, _gen(0)), NetworkSpec(3, 4))
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="regime"):
        TrainConfig(regime="lazzy")


@pytest.mark.parametrize("optimizer", ["momentum", "adamw", torch.optim.RMSprop,
                                       torch.optim.Adagrad([torch.zeros(1)], lr=0.05)])
def test_training_takes_every_optimizer_spelling_of_the_plugin_registry(optimizer):
    data = gaussian_quadratic(8, _gen(3))
    spec = NetworkSpec(8, 8)
    res = train_network(data, spec, TrainConfig(steps=300, optimizer=optimizer, lr=0.02),
                        random_state=0)
    # Whatever the optimizer, 300 steps leave the null risk well behind.
    assert res.test_risk < 0.5 * null_risk(data.B)


def test_unknown_optimizer_name_is_refused_before_training():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="nosuch")


@pytest.mark.parametrize("kwargs, words", [
    ({"optimizer": "adam"}, "safety=0.3 with optimizer='adam'"),
    ({"lr": 0.01}, "safety=0.3 with lr=0.01"),
])
def test_safety_is_refused_where_it_would_be_ignored(kwargs, words):
    # safety only scales the curvature default step of the SGD family
    with pytest.raises(ValueError, match=words):
        TrainConfig(safety=0.3, **kwargs)
    TrainConfig(safety=0.3, optimizer="momentum")  # the curvature step: accepted


def test_cli_refuses_safety_with_adam_in_one_line(capsys):
    from overtensor.cli.main import main

    code = main(["train", "--optimizer", "adam", "--safety", "0.3", "--width", "2", "--dim", "2",
                 "--steps", "1", "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "safety=0.3" in err and "adam" in err
