"""docs/theory/tensors.md §3: with σ = h_l and x ~ N(0, I), a network's population loss is the tensor loss."""

from __future__ import annotations

import math

import pytest
import torch

import overtensor as ot
from overtensor.networks.model import NetworkSpec, hermite, network_fn
from overtensor.tensors.loss import half_sq_distance


def test_hermite_is_orthonormal_under_the_gaussian():
    # E[h_k(t) h_l(t)] = δ_kl for t ~ N(0, 1), by Gauss–Hermite quadrature (exact for these degrees).
    import numpy as np

    nodes, weights = np.polynomial.hermite_e.hermegauss(12)
    t = torch.as_tensor(nodes)
    w = torch.as_tensor(weights) / math.sqrt(2 * math.pi)
    H = torch.stack([hermite(t, k) for k in range(6)])
    assert torch.allclose((H * w) @ H.T, torch.eye(6, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_monte_carlo_network_loss_equals_tensor_loss(order):
    d, n = 4, 400_000
    target = ot.random_target(order, d, rank=2, random_state=order)
    g = torch.Generator().manual_seed(10 + order)
    W = torch.randn(3, d, generator=g, dtype=torch.float64)
    a = torch.tensor([0.8, -0.5, 0.6], dtype=torch.float64)

    def net(width):
        return network_fn(NetworkSpec(width, d, activation="hermite", degree=order, scaling="none",
                                      offset=False, unit_rows=True))

    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    f = net(3)({"W": W, "a": a}, X)
    y = net(2)({"W": target.factors, "a": target.weights}, X)
    sq = 0.5 * (f - y) ** 2
    mc, se = float(sq.mean()), float(sq.std() / math.sqrt(n))
    exact = float(half_sq_distance(a, W / W.norm(dim=-1, keepdim=True), target))
    assert se < 0.03 * exact  # enough samples for the comparison to have power
    assert abs(mc - exact) < 4 * se


def test_network_trained_on_hermite_features_reaches_the_tensor_solution():
    # Teacher: the target's own network Σ λ_j h_3(u_j·x); student: 6 neurons trained online.
    from overtensor.networks.train import TrainConfig, train_network
    from overtensor.tensors.loss import relative_error

    order, d = 3, 5
    target = ot.random_target(order, d, rank=2, random_state=0)

    def spec(width):
        return NetworkSpec(width, d, activation="hermite", degree=order, scaling="none", offset=False,
                           unit_rows=True)

    teacher = network_fn(spec(2))

    class Teacher:
        dim = d

        def sample(self, n, generator):
            X = torch.randn(n, d, generator=generator, dtype=torch.float64)
            return X, teacher({"W": target.factors, "a": target.weights}, X)

    res = train_network(Teacher(), spec(6), TrainConfig(steps=3000, optimizer="adam", lr=0.02,
                                                        a_init="signs"), random_state=1)
    W, a = res.params["W"], res.params["a"]
    net_err = float(relative_error(a, W / W.norm(dim=-1, keepdim=True), target))
    fit = ot.fit(target, width=6, random_state=0)
    # Both reach the target tensor (the same solution, up to the over-parameterized split).
    assert net_err < 1e-2 and fit.relative_error < 1e-2
    assert res.test_risk < 1e-3 * res.null_risk
