"""Curvature step sizes (overtensor.optim.curvature) and the default SGD step of overtensor.networks.train."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.func import hessian

from overtensor.networks.data import gaussian_quadratic
from overtensor.networks.model import NetworkSpec, init_network, network_fn
from overtensor.networks.quadratic_risk import regime_optima
from overtensor.networks.train import TrainConfig, train_network
from overtensor.optim.curvature import block_steps, global_step, top_hessian_eigenvalue
from overtensor.regimes.layer import apply_regime


def _problem(regime: str, width: int = 5, dim: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    data = gaussian_quadratic(dim, gen)
    spec = NetworkSpec(width, dim)
    fn, theta = apply_regime(regime, network_fn(spec), init_network(spec, gen))
    X, y = data.sample(50, gen)

    def loss(t):
        return ((fn(t, X) - y) ** 2).mean()

    return loss, theta


def _dense_hessian(loss, theta):
    keys = list(theta)
    sizes = [theta[k].numel() for k in keys]

    def flat(x):
        parts = torch.split(x, sizes)
        return loss({k: p.reshape(theta[k].shape) for k, p in zip(keys, parts, strict=True)})

    H = hessian(flat)(torch.cat([theta[k].reshape(-1) for k in keys])).numpy()
    offsets = np.cumsum([0, *sizes])
    blocks = {k: slice(offsets[i], offsets[i + 1]) for i, k in enumerate(keys)}
    return 0.5 * (H + H.T), blocks


@pytest.mark.parametrize("regime", ["lazy", "full"])
def test_lanczos_top_eigenvalue_matches_the_dense_hessian(regime):
    loss, theta = _problem(regime)
    H, blocks = _dense_hessian(loss, theta)
    top = np.linalg.eigvalsh(H)[-1]
    # eigsh is asked for tol=1e-3 (relative); the Ritz value converges much faster than that.
    assert top_hessian_eigenvalue(loss, theta, random_state=0) == pytest.approx(top, rel=1e-3)
    assert global_step(loss, theta, safety=0.5, random_state=0) == pytest.approx(0.5 / top, rel=1e-3)
    for key, sl in blocks.items():  # W (30 entries: Lanczos), a (5) and c (1: dense)
        ref = np.linalg.eigvalsh(H[sl, sl])[-1]
        assert top_hessian_eigenvalue(loss, theta, [key], random_state=1) == pytest.approx(ref, rel=1e-3)


def test_block_steps_put_the_scaled_hessian_top_at_the_safety_factor():
    loss, theta = _problem("lazy")
    H, blocks = _dense_hessian(loss, theta)
    steps = block_steps(loss, theta, safety=0.7, random_state=0)
    own = {k: np.linalg.eigvalsh(H[sl, sl])[-1] for k, sl in blocks.items()}
    # Block-Jacobi: the ratios of the steps are the inverse ratios of the blocks' curvatures ...
    assert steps["W"] / steps["a"] == pytest.approx(own["a"] / own["W"], rel=2e-3)
    assert steps["c"] / steps["a"] == pytest.approx(own["a"] / own["c"], rel=2e-3)
    # ... and gradient descent with them has η·λ_max = safety in the metric of the steps.
    root = np.concatenate([np.full(sl.stop - sl.start, np.sqrt(steps[k])) for k, sl in blocks.items()])
    scaled_top = np.linalg.eigvalsh(root[:, None] * H * root[None, :])[-1]
    assert scaled_top == pytest.approx(0.7, rel=2e-3)


def test_bad_safety_and_keys_are_refused():
    loss, theta = _problem("lazy")
    with pytest.raises(ValueError, match="safety"):
        block_steps(loss, theta, safety=2.0)
    with pytest.raises(ValueError, match="keys"):
        top_hessian_eigenvalue(loss, theta, ["V"])
    for bad in ({"momentum": 1.0}, {"momentum": -0.1}, {"safety": 0.0}, {"safety": 2.0},
                {"momentum": 0.5, "optimizer": "adam"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_lazy_sgd_at_the_curvature_default_beats_the_old_default_at_n_equals_d():
    # N = d: the NT least-squares problem is worst conditioned (W_0 square, near-singular). Same
    # W_0, same budget: the old default (plain SGD, lr = 0.1·N/d) is left 0.13·R0 above the exact
    # NT optimum (0); the curvature steps with heavy ball get within 0.04·R0 (measured 0.036).
    d = N = 12
    data = gaussian_quadratic(d, torch.Generator().manual_seed(0))
    spec = NetworkSpec(N, d)
    exact = regime_optima(init_network(spec, torch.Generator().manual_seed(1))["W"], data.B)
    new = train_network(data, spec, TrainConfig(regime="lazy", steps=400), random_state=1)
    old = train_network(data, spec, TrainConfig(regime="lazy", steps=400, lr=0.1 * N / d),
                        random_state=1)
    gap_new = (new.test_risk - exact["nt"]) / exact["null"]
    gap_old = (old.test_risk - exact["nt"]) / exact["null"]
    assert -1e-9 < gap_new < 0.08  # trained risk ≥ the optimum; measured 0.036
    assert gap_new < gap_old / 2  # measured 0.036 vs 0.131
    assert new.info["momentum"] == 0.9 and new.info["lr_W"] > 0.1 * N / d
    # An explicit lr is honoured: one step for every parameter, plain SGD.
    assert old.lr == pytest.approx(0.1) and old.info["momentum"] == 0.0 and "lr_W" not in old.info


def test_full_regime_at_the_curvature_default_trains_without_momentum():
    d, N = 12, 6
    data = gaussian_quadratic(d, torch.Generator().manual_seed(3))
    spec = NetworkSpec(N, d)
    fit = train_network(data, spec, TrainConfig(regime="full", steps=600), random_state=4)
    exact = regime_optima(init_network(spec, torch.Generator().manual_seed(4))["W"], data.B)
    assert fit.info["momentum"] == 0.0
    # From the null risk to within 0.01·R0 of the NN optimum (Eckart–Young, 0.057·R0) in 600
    # steps (measured 8e-4·R0 above it; the old default lr = 0.1·N/d: 3.7e-3).
    gap = fit.test_risk / fit.null_risk - exact["nn"] / exact["null"]
    assert -1e-9 < gap < 0.01


def test_lazy_vs_full_networks_schema_refuses_a_bad_spec_value():
    from overtensor.experiments.catalog import get_experiment
    from overtensor.experiments.spec import SpecError, load_spec

    small = get_experiment("lazy-vs-full-networks").presets["small"]
    for key, value, words in (("dim", 0, "greater than or equal to 1"),
                              ("optimizer", "adamm", "adam"),
                              ("batchsize", 10, "did you mean .batch_size."),
                              ("momentum", 0.5, "momentum is an option")):
        spec = copy.deepcopy(small)
        spec["fixed"][key] = value
        if key == "momentum":
            spec["fixed"]["optimizer"] = "adam"
        with pytest.raises(SpecError, match=words) as info:
            load_spec(spec)
        assert info.value.key == f"fixed.{key}"
