"""Last week's open items (issue 23, item 9): each a clear error naming the argument, never a
raw exception from deep inside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import overtensor as ot
from overtensor.cli.main import main
from overtensor.moments.sources import SphericalMixtureStream
from overtensor.networks.data import UserData


def test_batched_cp_factors_are_refused_by_fit_pointing_to_fit_batched():
    gen = torch.Generator().manual_seed(0)
    target = ot.CPTarget(torch.ones(2, 3), torch.randn(2, 3, 5, generator=gen), 3)
    with pytest.raises(ValueError, match=r"batch dimensions.*fit_batched"):
        ot.fit(target, width=6)


def test_an_optimizer_factory_returning_none_is_named():
    with pytest.raises(TypeError, match=r"optimizer factory .* returned NoneType"):
        ot.fit(ot.random_target(3, 6, 2, random_state=0), width=6,
               schedule=ot.GradientSchedule(optimizer=lambda p: None, max_steps=10))


@pytest.mark.parametrize("bad", [None, "T.npy", {"weights": 1}, 3.0])
def test_fit_names_the_target_argument(bad):
    with pytest.raises(TypeError, match=r"^target must be"):
        ot.fit(bad, width=5)


def test_opposite_weights_on_near_collinear_components_are_explained():
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(5, generator=gen, dtype=torch.float64)
    u = u / u.norm()
    v = u + 1e-9 * torch.randn(5, generator=gen, dtype=torch.float64)
    v = v / v.norm()
    target = ot.CPTarget(torch.tensor([1.0, -1.0], dtype=torch.float64), torch.stack([u, v]), 3)
    with pytest.raises(ValueError, match=r"cancel.*collinear"):
        ot.fit(target, width=6, schedule=ot.GradientSchedule(max_steps=100))


def test_same_sign_near_collinear_components_fit():
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(5, generator=gen, dtype=torch.float64)
    u = u / u.norm()
    v = u + 1e-6 * torch.randn(5, generator=gen, dtype=torch.float64)
    target = ot.CPTarget(torch.tensor([1.0, 1.0], dtype=torch.float64), torch.stack([u, v / v.norm()]), 3)
    result = ot.fit(target, width=6, random_state=0)
    assert result.finite and result.relative_error < 1e-3


@pytest.mark.parametrize("array", [np.zeros((0,)), np.zeros((0, 0, 0)), np.zeros((3, 0))])
def test_an_empty_npy_is_one_line_for_fit_tensor(tmp_path, capsys, array):
    path = tmp_path / "T.npy"
    np.save(path, array)
    assert main(["fit", "--tensor", str(path), "--width", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "T.npy" in err[0] and "no numbers" in err[0]


def test_an_empty_dense_tensor_is_refused_by_the_api():
    with pytest.raises(ValueError, match="d >= 1"):
        ot.DenseTarget(torch.zeros(0, 0, 0))


@pytest.mark.parametrize("weights, match", [
    ([0.5, 0.5], r"weights must have shape \(3,\)"),
    ([-1.0, 1.0, 1.0], r"weights\[0\] = -1.0"),
    ([0.5, 0.5, 0.5], "sum to 1"),
])
def test_spherical_mixture_stream_checks_its_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        SphericalMixtureStream(np.eye(3), weights, 0.1, 100)


def test_spherical_mixture_stream_checks_its_means():
    with pytest.raises(ValueError, match="means must have shape"):
        SphericalMixtureStream(np.ones(3), [1.0], 0.1, 100)
    with pytest.raises(ValueError, match="means: their third-order products"):
        SphericalMixtureStream(1e200 * np.eye(2), [0.5, 0.5], 0.1, 100)


def test_user_data_refuses_what_training_cannot_use():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        UserData(X[:1], X[:1, 0])
    with pytest.raises(ValueError, match="at least 2 rows"):
        UserData(X[:0], X[:0, 0])
    with pytest.raises(ValueError, match="y: the squares"):
        UserData(X, 1e200 * X[:, 0])
    data = UserData(X, X[:, 0])
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        data.sample(0, torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        data.sample(5, 0)
    with pytest.raises(ValueError, match="leaves no training row"):
        UserData(X[:2], X[:2, 0]).split(0.9, torch.Generator())
