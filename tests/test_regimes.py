"""Regimes as transformations of one model, their fits, and the laziness diagnostics."""

from __future__ import annotations

import json

import pytest
import torch

import overtensor as ot
from overtensor.cli.main import main as cli_main
from overtensor.tensors.config import split_options
from overtensor.tensors.lazy import tangent_to_cp
from overtensor.tensors.models import init_params, model_cp
from overtensor.tensors.recorders import distance_from_init, kernel_matvec, laziness_recorder
from overtensor.tensors.regimes import linearize, make_regime


def _dense(a, V, order):
    return ot.SymmetricCP(a, V, order).to_dense()


def _params(model, m=3, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p = init_params(model, m, d, 1.0, gen, torch.float64, torch.device("cpu"))
    if model == "coefficients":
        p["c"] = torch.randn(m, generator=gen, dtype=torch.float64)
    return p


def _direction(params, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in params.items()}


def _lazy_dense(tangent, delta, order):
    V, U = tangent(delta)
    a, R = tangent_to_cp(V, U, order)
    return _dense(a, R, order)


@pytest.mark.parametrize("model", ["plain", "homogeneous", "coefficients"])
def test_linearization_is_the_first_order_taylor_expansion_of_the_model(model):
    order = 3
    p0 = _params(model)
    s = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    tangent = linearize(model, p0, s, order)
    delta = _direction(p0, 1)
    torch.testing.assert_close(_lazy_dense(tangent, {k: 0 * v for k, v in delta.items()}, order),
                               _dense(*model_cp(model, p0, s), order), rtol=0, atol=1e-12)
    gaps = []
    for t in (1e-2, 5e-3):
        moved = {k: p0[k] + t * delta[k] for k in p0}
        exact = _dense(*model_cp(model, moved, s), order)
        lin = _lazy_dense(tangent, {k: t * v for k, v in delta.items()}, order)
        gaps.append(float((exact - lin).norm()))
    # Second-order remainder: halving the step divides the gap by 4.
    assert 3.5 < gaps[0] / gaps[1] < 4.5


def test_lazy_model_is_affine_in_the_displacement():
    order = 4
    p0 = _params("homogeneous", m=2, d=3)
    tangent = linearize("homogeneous", p0, None, order)
    d1, d2 = _direction(p0, 2), _direction(p0, 3)
    zero = {k: 0 * v for k, v in d1.items()}
    base = _lazy_dense(tangent, zero, order)
    both = _lazy_dense(tangent, {k: d1[k] + 2 * d2[k] for k in d1}, order)
    parts = _lazy_dense(tangent, d1, order) + 2 * _lazy_dense(tangent, d2, order) - 2 * base
    torch.testing.assert_close(both, parts, rtol=0, atol=1e-10)


def test_alpha_scaled_and_random_features_tensors_follow_their_definitions():
    order = 3
    p0 = _params("homogeneous")
    theta = {k: v + 0.3 * _direction(p0, 4)[k] for k, v in p0.items()}
    T0 = _dense(*model_cp("homogeneous", p0), order)
    T = _dense(*model_cp("homogeneous", theta), order)
    reg = make_regime("alpha-scaled", "homogeneous", order, p0, alpha=7.0)
    torch.testing.assert_close(_dense(*reg.cp(theta), order), T0 + 7.0 * (T - T0), rtol=0, atol=1e-10)
    rf = make_regime("random-features", "homogeneous", order, p0)
    c = {"c": torch.tensor([0.5, -2.0, 1.5], dtype=torch.float64)}
    Vbar = p0["W"] / p0["W"].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(_dense(*rf.cp(c), order), _dense(c["c"], Vbar, order), rtol=0, atol=1e-12)
    torch.testing.assert_close(_dense(*rf.cp(rf.init()), order), T0, rtol=0, atol=1e-12)


def test_kernel_matvec_equals_dense_jacobian_gram():
    order, model = 3, "homogeneous"
    p0 = _params(model, m=2, d=3, seed=5)
    n = p0["W"].numel()
    J = torch.stack([
        _lazy_dense(lambda z: _tangent_no_base(model, p0, order, z),
                    {"W": torch.eye(n, dtype=torch.float64)[j].reshape(2, 3)}, order).reshape(-1)
        for j in range(n)
    ], dim=1)
    z = _direction(p0, 6)
    Kz = kernel_matvec(model, p0, None, order, z)["W"].reshape(-1)
    torch.testing.assert_close(Kz, J.T @ J @ z["W"].reshape(-1), rtol=0, atol=1e-10)


def _tangent_no_base(model, p0, order, z):
    from overtensor.tensors.regimes import tangent_map

    return tangent_map(model, p0, None, order)(z)


def test_distance_from_init_is_relative_frobenius_distance():
    p0 = {"W": torch.ones(2, 2, dtype=torch.float64)}
    p = {"W": torch.full((2, 2), 1.5, dtype=torch.float64)}
    assert abs(distance_from_init(p, p0) - 0.5) < 1e-15


@pytest.fixture(scope="module")
def regime_runs():
    target = ot.random_target(3, 20, 3, random_state=0)
    runs = {}
    for name, kw in [("full", {}), ("lazy", {}), ("alpha-1", dict(regime="alpha-scaled", alpha=1.0)),
                     ("alpha-100", dict(regime="alpha-scaled", alpha=100.0))]:
        kw = {"regime": name, **kw} if name in ("full", "lazy") else kw
        runs[name] = ot.fit(target, width=12, random_state=0,
                            recorders=[laziness_recorder(probes=2)], **split_options(kw),
                            schedule=ot.GradientSchedule(max_steps=1500, eval_every=100))
    return runs


def test_full_regime_leaves_the_lazy_regime_and_recovers_the_target(regime_runs):
    full, lazy = regime_runs["full"], regime_runs["lazy"]
    assert full.relative_error < 1e-3 and full.recovery().all_recovered
    # 12·20 = 240 < C(22, 3) = 1540: the linearized model cannot fit.
    assert lazy.relative_error > 0.5
    assert abs(lazy.relative_error - lazy.info["lazy_optimum_error"]) < 1e-3
    assert full.history[-1]["kernel_change"] > 10 and full.history[-1]["distance_from_init"] > 10
    assert lazy.history[-1]["kernel_change"] == 0.0


def test_large_alpha_trains_lazily_and_matches_the_lazy_optimum(regime_runs):
    a100, a1, lazy = regime_runs["alpha-100"], regime_runs["alpha-1"], regime_runs["lazy"]
    assert abs(a100.relative_error - lazy.info["lazy_optimum_error"]) < 2e-2
    assert a100.history[-1]["kernel_change"] < 0.05
    assert a100.history[-1]["distance_from_init"] < 0.05
    assert a1.history[-1]["kernel_change"] > 10 * a100.history[-1]["kernel_change"]
    assert a1.relative_error < a100.relative_error - 0.2


def test_random_features_regime_gd_reaches_the_random_features_optimum():
    target = ot.random_target(3, 5, 2, random_state=1)
    res = ot.fit(target, width=20, regime="random-features", tol=0.0, random_state=2,
                 schedule=ot.GradientSchedule(max_steps=3000, patience=50, eval_every=100))
    best = ot.random_features_least_squares(target, res.params0["W"]).relative_error
    assert 0.05 < best < 0.95
    # GD cannot beat the least-squares optimum; it reaches it to rounding (~1e-16 here), so the
    # lower bound has a margin far above rounding and far below anything GD could gain.
    assert -1e-12 <= res.model_relative_error - best < 1e-4
    assert res.history[-1]["laziness"] > 0  # the coefficients moved


def test_fit_rejects_bad_regime_arguments():
    target = ot.random_target(3, 6, 2, random_state=0)
    with pytest.raises(ValueError, match="regime must be one of"):
        ot.fit(target, width=4, regime="ntk")
    with pytest.raises(ValueError, match="alpha must be > 0"):
        ot.fit(target, width=4, regime="alpha-scaled", alpha=0.0)
    with pytest.raises(ValueError, match="weight_decay is only used"):
        ot.fit(target, width=4, regime="lazy", schedule=ot.GradientSchedule(weight_decay=1e-3))
    with pytest.raises(ValueError, match="needs a gradient method"):
        ot.fit(target, width=4, regime="lazy", method="power-method")


def test_cli_fit_with_lazy_regime_reports_laziness_diagnostics(capsys):
    code = cli_main(["fit", "--order", "3", "--dim", "10", "--rank", "2", "--width", "6",
                     "--regime", "lazy", "--steps", "300", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regime"] == "lazy" and out["kernel_change"] == 0.0
    assert out["relative_error"] > 0.5
    assert abs(out["relative_error"] - out["lazy_optimum_error"]) < 0.05


def test_final_laziness_equals_the_recorders_last_values(regime_runs):
    from overtensor.tensors.recorders import final_laziness

    for name, regime in [("full", "full"), ("alpha-100", "alpha-scaled"), ("lazy", "lazy")]:
        run = regime_runs[name]
        final = final_laziness(run, regime, probes=2)
        assert final["kernel_change"] == pytest.approx(run.history[-1]["kernel_change"], rel=1e-9)
        assert final["distance_from_init"] == pytest.approx(run.history[-1]["distance_from_init"],
                                                            rel=1e-9)


def test_a_regime_registered_once_runs_in_fit_and_in_train_network(monkeypatch):
    # One registry for every family: a regime added with register_regime (here a frozen copy of
    # the initialization, trained in full) is accepted by overtensor.fit and by train_network.
    from overtensor.networks.data import gaussian_quadratic
    from overtensor.networks.model import NetworkSpec
    from overtensor.networks.train import TrainConfig, train_network
    from overtensor.regimes import layer

    calls = []

    def frozen_copy(model_fn, params0, **options):
        calls.append(sorted(params0))
        frozen = {k: v.detach().clone() for k, v in params0.items()}
        return (lambda p, *inputs: model_fn(p, *inputs)), {k: v.clone() for k, v in frozen.items()}

    monkeypatch.setitem(layer.REGIME_TRANSFORMS, "frozen-copy", frozen_copy)

    target = ot.random_target(order=3, dim=6, rank=2, random_state=0)
    res = ot.fit(target, width=6, regime="frozen-copy", random_state=0,
                 schedule=ot.GradientSchedule(max_steps=600))
    assert res.info["regime"] == "frozen-copy" and res.info["solver"] == "autograd"
    assert res.history[-1]["relative_error"] < 0.5 * res.history[0]["relative_error"]

    data = gaussian_quadratic(5, torch.Generator().manual_seed(0))
    cfg = dict(steps=200, test_samples=500)
    copy = train_network(data, NetworkSpec(dim=5, width=6), TrainConfig(regime="frozen-copy", **cfg),
                         random_state=3)
    full = train_network(data, NetworkSpec(dim=5, width=6), TrainConfig(regime="full", **cfg),
                         random_state=3)
    assert len(calls) == 2  # the tensor model's and the network's parameters
    # the frozen copy trains exactly what "full" trains
    assert copy.test_risk == pytest.approx(full.test_risk, rel=1e-9)
    assert copy.test_risk < 0.9 * copy.null_risk
