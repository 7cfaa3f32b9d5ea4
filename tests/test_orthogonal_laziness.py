"""Laziness of a network trained in the ``orthogonal`` regime is measured on the effective rows
``W = W_0 Rᵀ``: the trained parameter is the rotation, but every neuron moves (issue 14)."""

from __future__ import annotations

import json

import torch

from overtensor.cli.main import main
from overtensor.networks.data import gaussian_quadratic
from overtensor.networks.model import NetworkSpec
from overtensor.networks.train import TrainConfig, train_network


def _fit(regime: str):
    data = gaussian_quadratic(6, torch.Generator().manual_seed(0))
    return train_network(data, NetworkSpec(12, 6), TrainConfig(regime=regime, steps=200),
                         random_state=1)


def test_laziness_of_the_orthogonal_regime_is_the_movement_of_the_effective_rows():
    res = _fit("orthogonal")
    W0 = res.params0["W"].double()
    R = res.model_fn.rotation(res.params).detach().double()
    W = W0 @ R.T
    expected = float((W - W0).norm() / W0.norm())
    # the rotation did move the rows (far above rounding), and the norm of the rows is kept
    assert expected > 1e-3
    assert abs(float(W.norm()) - float(W0.norm())) < 1e-6 * float(W0.norm())
    assert abs(res.laziness["W"] - expected) <= 1e-6 * expected
    assert res.laziness["W"] <= 2.0
    assert res.summary()["laziness_W"] == res.laziness["W"]
    assert res.laziness["a"] > 0  # the output weights are trained freely


def test_frozen_rows_stay_at_zero_laziness():
    assert _fit("random-features").laziness["W"] == 0.0


def test_the_train_command_reports_a_nonzero_laziness_for_orthogonal(capsys):
    assert main(["train", "--regime", "orthogonal", "--dim", "6", "--width", "12", "--steps", "200",
                 "--test-samples", "500", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regime"] == "orthogonal" and out["laziness_W"] > 1e-3


def _moved_columns(res) -> int:
    W0 = res.params0["W"].double()
    W = res.model_fn.full_params(res.params)["W"].detach().double()
    return int(((W - W0).norm(dim=0) > 1e-6 * float(W0.norm())).sum())


def test_stochastic_orthogonal_training_merges_blocks_and_moves_every_coordinate():
    # Stochastic OPT rotates a k × k block of coordinates and, every block_steps steps, merges it
    # and draws another: with k = 2 of d = 8 coordinates, one block alone moves 2 columns of W.
    data = gaussian_quadratic(8, torch.Generator().manual_seed(0))
    opts = {"method": "stochastic", "k": 2, "random_state": 3}

    def fit(**extra):
        config = TrainConfig(regime="orthogonal", steps=120, regime_options={**opts, **extra})
        return train_network(data, NetworkSpec(16, 8), config, random_state=1)

    single = fit(block_steps=1000)  # never merged: one block for the whole run
    assert _moved_columns(single) == 2
    merged = fit(block_steps=5)  # 24 blocks of 2 of the 8 coordinates
    assert _moved_columns(merged) >= 6
    W0 = merged.params0["W"].double()
    W = merged.model_fn.full_params(merged.params)["W"].detach().double()
    R = merged.model_fn.rotation(merged.params).detach().double()  # the product of the blocks
    assert float((R.T @ R - torch.eye(8, dtype=R.dtype)).norm()) < 1e-4  # float32 training
    assert float((W - W0 @ R.T).norm()) < 1e-4 * float(W0.norm())
