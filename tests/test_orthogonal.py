"""Orthogonal over-parameterized training: the ways of keeping R orthogonal, the regime on
tensors and networks, and the hyperspherical energy it preserves (docs/theory/networks.md §3)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

import overtensor as ot
from overtensor.cli.main import main as cli_main
from overtensor.networks.opt_layer import OPTLinear, opt_optimizer, resample_blocks
from overtensor.optim.cayley import CayleySGD
from overtensor.precision import EXACT
from overtensor.regimes.energy import energy_recorder, hyperspherical_energy
from overtensor.regimes.orthogonal import (
    ORTHOGONAL_METHODS,
    gram_schmidt,
    lowdin,
    orthogonal,
    orthogonality_error,
)
from overtensor.tensors.orthogonal_fit import OrthogonalOptions


def _random_orthogonal(d, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return Q.to(dtype)


# --- hyperspherical energy -------------------------------------------------------------------

def test_energy_matches_the_pairwise_definition_for_s1_and_s0():
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(6, 4, generator=gen, dtype=torch.float64) * torch.rand(6, 1, generator=gen,
                                                                        dtype=torch.float64)
    U = W / W.norm(dim=1, keepdim=True)
    pairs = [(i, j) for i, j in itertools.product(range(6), range(6)) if i != j]
    e1 = sum(1 / float((U[i] - U[j]).norm()) for i, j in pairs)
    e0 = sum(-math.log(float((U[i] - U[j]).norm())) for i, j in pairs)
    e2 = sum(float((U[i] - U[j]).norm()) ** -2 for i, j in pairs)
    assert float(hyperspherical_energy(W, 1)) == pytest.approx(e1, rel=1e-12)
    assert float(hyperspherical_energy(W, 0)) == pytest.approx(e0, rel=1e-12)
    assert float(hyperspherical_energy(W, 2)) == pytest.approx(e2, rel=1e-12)


def test_energy_is_batched_over_leading_dimensions():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(2, 3, 5, 4, generator=gen, dtype=torch.float64)
    E = hyperspherical_energy(W, 1)
    assert E.shape == (2, 3)
    assert float(E[1, 2]) == pytest.approx(float(hyperspherical_energy(W[1, 2], 1)), rel=1e-14)


def test_energy_rejects_bad_input_naming_it():
    with pytest.raises(ValueError, match="s must be >= 0"):
        hyperspherical_energy(torch.randn(3, 2), -1)
    with pytest.raises(ValueError, match="m >= 2"):
        hyperspherical_energy(torch.randn(1, 2))
    with pytest.raises(ValueError, match="zero row"):
        hyperspherical_energy(torch.zeros(3, 2))


def test_energy_is_unchanged_by_a_rotation_and_changed_by_a_generic_map():
    gen = torch.Generator().manual_seed(2)
    W = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    Q = _random_orthogonal(5, 3)
    A = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    for s in (0, 1):
        e = float(hyperspherical_energy(W, s))
        assert abs(float(hyperspherical_energy(W @ Q.T, s)) - e) <= 1e-12 * abs(e)
        assert abs(float(hyperspherical_energy(W @ A.T, s)) - e) > 1e-2 * abs(e)


def test_energy_constant_under_orthogonal_fit_and_changing_under_full():
    target = ot.random_target(3, 5, 2, random_state=0)
    rec = energy_recorder()
    res = ot.fit(target, width=12, regime="orthogonal", random_state=1, recorders=[rec],
                 schedule=ot.GradientSchedule(max_steps=400, eval_every=100))
    assert res.model_relative_error < 0.9 * res.history[0]["relative_error"]  # it did train
    assert res.history[-1]["laziness"] > 0.05  # ... and the rows moved
    for key in ("energy_s1", "energy_s0"):
        e0 = res.history[0][key]
        assert max(abs(h[key] - e0) for h in res.history) <= 1e-10 * abs(e0)
    full = ot.fit(target, width=12, regime="full", method="gd", random_state=1, recorders=[rec],
                  schedule=ot.GradientSchedule(init_scale=1.0, max_steps=400, eval_every=100))
    e0 = full.history[0]["energy_s1"]
    assert abs(full.history[-1]["energy_s1"] - e0) > 1e-3 * abs(e0)


# --- ways of keeping R orthogonal -------------------------------------------------------------

def test_gram_schmidt_and_lowdin_are_orthogonal_and_the_right_factors():
    gen = torch.Generator().manual_seed(4)
    A = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    Q = gram_schmidt(A)
    assert orthogonality_error(Q) < EXACT  # rotations are float64: ~1e-15 in practice
    U = Q.T @ A  # upper triangular with a positive diagonal (the QR factor)
    assert float(U.tril(-1).abs().max()) < EXACT and bool((U.diagonal() > 0).all())
    P = lowdin(A)
    assert orthogonality_error(P) < EXACT
    u, _, vh = torch.linalg.svd(A)
    torch.testing.assert_close(P, u @ vh, rtol=0, atol=1e-10)  # the polar factor


@pytest.mark.slow  # 10 000 autograd steps per way: ~0.2-0.8 ms each on one core
@pytest.mark.parametrize("method", ORTHOGONAL_METHODS)
def test_rotation_stays_orthogonal_over_ten_thousand_float32_steps(method):
    # A tiny problem whose gradient never vanishes (a fresh random linear loss every step), so
    # R keeps moving for all 10 000 steps.
    d = 4
    gen = torch.Generator().manual_seed(5)
    W0 = torch.randn(6, d, generator=gen)
    fn, p = orthogonal(lambda q: q["W"], {"W": W0}, method=method, k=2, random_state=0)
    p["R"].requires_grad_(True)
    opt = CayleySGD([p["R"]], lr=0.05, orthogonal=method == "riemannian")
    start = fn.rotation(p).detach().clone()
    G = torch.randn(10_000, 6, d, generator=gen)
    for t in range(10_000):
        opt.zero_grad(set_to_none=True)
        (fn(p) * G[t]).sum().backward()
        opt.step()
        if method == "stochastic" and t % 25 == 24:
            p = fn.resample(p)
            p["R"].requires_grad_(True)
            opt = CayleySGD([p["R"]], lr=0.05)
    R = fn.rotation(p).detach()
    assert R.dtype == torch.float32
    assert orthogonality_error(R) < 1e-5
    assert float((R - start).norm()) > 0.1  # it moved


def test_transformation_starts_at_the_model_and_validates():
    W0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = torch.ones(5, dtype=torch.float64)

    def model(p, x):
        return (x @ p["W"].T) ** 2 @ p["c"]

    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for method in ORTHOGONAL_METHODS:
        fn, p = orthogonal(model, {"W": W0, "c": c}, method=method, k=2, random_state=0)
        assert set(p) == {"R", "c"}
        torch.testing.assert_close(fn(p, x), model({"W": W0, "c": c}, x), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="method must be one of"):
        orthogonal(model, {"W": W0}, method="qr")
    with pytest.raises(ValueError, match="key must name an entry"):
        orthogonal(model, {"W": W0}, key="V")
    with pytest.raises(ValueError, match="k must be <= d = 3, got k=4"):
        orthogonal(model, {"W": W0}, method="stochastic", k=4)


def test_cayley_sgd_descends_and_rejects_a_non_square_orthogonal_parameter():
    Q = _random_orthogonal(5, 6)
    R = torch.eye(5, dtype=torch.float64, requires_grad=True)
    opt = CayleySGD([R], lr=0.1, momentum=0.5, orthogonal=True, reorthogonalize_every=None)
    losses = []
    for _ in range(200):  # Procrustes: nearest rotation to Q is Q itself (det Q made +1 below)
        opt.zero_grad()
        loss = ((R - Q * torch.sign(torch.linalg.det(Q))) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 1e-6 * losses[0]
    assert orthogonality_error(R) < EXACT
    with pytest.raises(ValueError, match="square matrix"):
        CayleySGD([torch.zeros(2, 3, requires_grad=True)], lr=0.1, orthogonal=True)
    with pytest.raises(ValueError, match="lr must be > 0"):
        CayleySGD([R], lr=0.0)


# --- the regime on tensors and networks -------------------------------------------------------

@pytest.mark.parametrize("rotation", ORTHOGONAL_METHODS)
def test_every_way_trains_the_tensor_regime_and_reports_orthogonality(rotation):
    target = ot.random_target(3, 4, 2, random_state=3)
    res = ot.fit(target, 10, "gd", regime="orthogonal", random_state=0,
                 orthogonal=OrthogonalOptions(rotation=rotation, block_size=2, block_steps=20),
                 schedule=ot.GradientSchedule(model="homogeneous", max_steps=200, eval_every=50))
    assert all("orthogonality_error" in h for h in res.history)
    assert res.info["orthogonality_error"] < EXACT
    assert res.model_relative_error < 0.8 * res.history[0]["relative_error"]
    assert res.info["energy_s1_change"] < 1e-10


def test_orthogonal_regime_reaches_the_random_features_span_turned():
    # OPT can only rotate the initial decomposition: with c trained and R = I it is random
    # features, so its optimum is at least as good as the random-features optimum.
    from overtensor.tensors.lazy import random_features_least_squares

    target = ot.random_target(2, 4, 2, random_state=7)
    res = ot.fit(target, width=4, regime="orthogonal", tol=0, random_state=2,
                 schedule=ot.GradientSchedule(max_steps=3000, patience=50))
    rf = random_features_least_squares(target.float64(), res.params0["W"]).relative_error
    assert res.model_relative_error <= rf + 1e-6


def test_the_orthogonal_regime_validates_before_work():
    target = ot.random_target(3, 4, 2, random_state=3)
    with pytest.raises(ValueError, match="rotation must be one of"):
        OrthogonalOptions(rotation="qr")
    with pytest.raises(ValueError, match="width must be an integer >= 2"):
        ot.fit(target, 1, regime="orthogonal")
    with pytest.raises(TypeError, match="orthogonal must be an OrthogonalOptions"):
        ot.fit(target, 4, regime="orthogonal", orthogonal={"rotation": "cayley"})


def test_cli_fit_runs_the_orthogonal_regime(capsys):
    rc = cli_main(["fit", "--order", "3", "--dim", "4", "--rank", "2", "--width", "8", "--steps",
                   "100", "--regime", "orthogonal", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regime"] == "orthogonal" and out["orthogonality_error"] < EXACT


@pytest.mark.parametrize("rotation", ["cayley", "riemannian", "stochastic"])
def test_opt_layer_keeps_energy_and_learns(rotation):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 6, generator=gen, dtype=torch.float64)
    y = torch.sin(X[:, :1] - X[:, 1:2])
    net = torch.nn.Sequential(
        OPTLinear(6, 40, rotation=rotation, block_size=3, random_state=1, dtype=torch.float64),
        torch.nn.Tanh(), torch.nn.Linear(40, 1, dtype=torch.float64))
    layer = net[0]
    e0, w0 = layer.energy(1), layer.weight().detach().clone()
    opt = opt_optimizer(net, lr=0.05, momentum=0.9)
    first = None
    for t in range(300):
        opt.zero_grad()
        loss = ((net(X) - y) ** 2).mean()
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
        if t % 20 == 19:
            resample_blocks(net, opt)
    assert float(loss.detach()) < 0.7 * first
    assert float((layer.weight() - w0).norm()) > 1e-2
    assert abs(layer.energy(1) - e0) <= 1e-10 * e0
    assert layer.orthogonality_error() < EXACT


@pytest.mark.parametrize("rotation", ["cayley", "matrix_exp", "householder", "gram-schmidt",
                                      "lowdin", "riemannian", "stochastic"])
def test_fit_takes_every_way_of_keeping_r_orthogonal(rotation):
    from overtensor.tensors.orthogonal_fit import OrthogonalOptions

    target = ot.random_target(2, 5, 2, random_state=0)
    res = ot.fit(target, 20, regime="orthogonal", random_state=0,
                 orthogonal=OrthogonalOptions(rotation=rotation),
                 schedule=ot.GradientSchedule(max_steps=300))
    first = res.history[0]["relative_error"]
    assert res.history[-1]["orthogonality_error"] < EXACT  # float64
    assert res.relative_error < 0.9 * first  # it trained


def test_orthogonal_options_outside_the_orthogonal_regime_are_refused():
    from overtensor.tensors.orthogonal_fit import OrthogonalOptions

    with pytest.raises(ValueError, match="orthogonal"):
        ot.fit(ot.random_target(2, 5, 2, random_state=0), 20, orthogonal=OrthogonalOptions())


# --- the orthogonal regime of a network, every way, through train_network ---------------------

@pytest.mark.parametrize("method", ORTHOGONAL_METHODS)
def test_network_orthogonal_regime_keeps_R_orthogonal_every_way(method):
    # The network loop steps the regime's parameters; for ``riemannian`` (R trained itself) only
    # the Riemannian step keeps it on O(d): plain SGD left ‖RᵀR − I‖ = 3.5 before it was shared.
    from overtensor.networks.data import gaussian_quadratic
    from overtensor.networks.model import NetworkSpec
    from overtensor.networks.train import TrainConfig, train_network

    d, N = 6, 8
    data = gaussian_quadratic(d, torch.Generator().manual_seed(0))
    options = {"method": method, **({"k": 3, "block_steps": 20} if method == "stochastic" else {})}
    res = train_network(data, NetworkSpec(dim=d, width=N),
                        TrainConfig(regime="orthogonal", regime_options=options, steps=150,
                                    test_samples=200), random_state=1)
    R = res.model_fn.rotation(res.params)
    assert R.shape == (d, d)
    assert orthogonality_error(R) < EXACT
    # it trained: the rotation moved away from the identity
    assert float((R - torch.eye(d, dtype=R.dtype)).abs().max()) > 1e-3


def test_network_riemannian_regime_refuses_an_optimizer_without_a_riemannian_step():
    from overtensor.networks.data import gaussian_quadratic
    from overtensor.networks.model import NetworkSpec
    from overtensor.networks.train import TrainConfig, train_network

    data = gaussian_quadratic(4, torch.Generator().manual_seed(0))
    cfg = TrainConfig(regime="orthogonal", regime_options={"method": "riemannian"}, optimizer="adam",
                      steps=10)
    with pytest.raises(ValueError, match=r"optimizer must be 'sgd'.*optimizer='adam'"):
        train_network(data, NetworkSpec(dim=4, width=3), cfg, random_state=0)
