"""Data models, user data, the ``overtensor train`` CLI and the lazy-vs-full-networks run function."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from overtensor.networks.data import (
    GaussianQuadratic,
    UserData,
    authors_matrix,
    gaussian_mixture,
    gaussian_quadratic,
    low_rank_matrix,
)
from overtensor.networks.model import NetworkSpec
from overtensor.networks.train import TrainConfig, train_network


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_targets_have_the_documented_form():
    B = authors_matrix(30, _gen(0))
    assert torch.equal(B, torch.diag(torch.diag(B))) and bool((torch.diag(B) > 0).all())
    B2 = low_rank_matrix(20, 3, _gen(1))
    assert torch.linalg.matrix_rank(B2) == 3 and float(B2.norm()) == pytest.approx(1.0, rel=1e-12)
    data = gaussian_quadratic(8, _gen(2), noise=0.0)
    X, y = data.sample(5, _gen(3))
    assert torch.allclose(y, ((X @ data.B) * X).sum(-1) - torch.trace(data.B))
    # Same generator seed, same draw.
    assert torch.equal(data.sample(4, _gen(9))[1], data.sample(4, _gen(9))[1])


def test_mixture_bayes_error_below_chance_and_balanced():
    mix = gaussian_mixture(20, _gen(0), eps=0.5)
    _, y = mix.sample(20_000, _gen(1))
    assert abs(float(y.mean())) < 0.03
    assert 0.0 <= mix.bayes_error(20_000, _gen(2)) < 0.1


def test_bad_data_input():
    with pytest.raises(ValueError, match="symmetric"):
        GaussianQuadratic(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="rank"):
        low_rank_matrix(3, 5, _gen(0))
    with pytest.raises(ValueError, match="one value per row"):
        UserData([[1.0, 2.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="eps"):
        gaussian_mixture(3, _gen(0), eps=1.5)


def test_user_data_fixed_training_set_full_batch():
    # A real data set from an installed package (scikit-learn's wine), standardized.
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    data = UserData(X, (y == 0) * 2.0 - 1.0)
    spec = NetworkSpec(8, X.shape[1], activation="relu", scaling="ntk")
    res = train_network(data, spec, TrainConfig(steps=300, batch_size=None, samples=150,
                                                optimizer="adam", lr=1e-2), random_state=0)
    assert res.train_risk < 0.25 * res.null_risk  # class 0 of wine is nearly linearly separable
    assert res.test_error is not None and res.test_error < 0.2


def test_cli_train_json(capsys):
    from overtensor.cli.main import main

    assert main(["train", "--regime", "random-features", "--width", "6", "--dim", "10",
                 "--steps", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("test_risk", "null_risk", "train_risk", "steps", "seconds", "laziness_W", "laziness_a"):
        assert key in out
    assert out["laziness_W"] == 0.0 and out["steps"] == 200
    # Random features trained by SGD cannot beat their exact optimum (up to the 1e-3 float slack).
    assert out["relative_test_risk"] >= out["rf_optimum"] - 1e-3
    assert main(["train", "--activation", "sigmoid", "--json"]) == 2
    assert "activation" in capsys.readouterr().err


def test_experiment_run_function_and_claims():
    from overtensor.experiments.lazy_vs_full_networks import claims, run_lazy_vs_full_networks

    rows = []
    for width in (3, 6, 12, 20):
        cfg = {"target": "authors", "dim": 12, "width": width, "seed": 0, "train_seeds": 0}
        rows.append({**cfg, **run_lazy_vs_full_networks(cfg)})
    df = pd.DataFrame(rows)
    verdicts = {c.statement: c.verdict for c in claims(df)}
    assert verdicts["For N < d the optimal risks order RF > NT > NN."] == "supported"
    assert verdicts["NT and NN reach zero risk once N ≥ d, RF does not."] == "supported"
