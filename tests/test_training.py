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
        ot.fit(target, width=6, lr=50.0, init_scale=0.5, max_steps=400, random_state=0)
    data = gaussian_quadratic(5, torch.Generator().manual_seed(0))
    with pytest.raises(DivergenceError, match=MESSAGE):
        train_network(data, NetworkSpec(dim=5, width=6), TrainConfig(lr=50.0, steps=300,
                                                                      test_samples=200),
                      random_state=0)
    problem = gaussian_design(20, 40, random_state=0)
    with pytest.raises(DivergenceError, match=MESSAGE):
        fit_regression(problem, "gd", lr=5.0, steps=300, random_state=0)
