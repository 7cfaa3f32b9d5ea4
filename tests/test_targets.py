import math

import pytest
import torch

import overtensor as ot
from overtensor.tensors.targets import symmetrize

from .conftest import dense_cp


def _dense_values(A: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    out = []
    for v in V:
        x = A
        for _ in range(A.ndim):
            x = torch.tensordot(x, v, dims=([0], [0]))
        out.append(x)
    return torch.stack(out)


def _dense_contract(A: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    out = []
    for v in V:
        x = A
        for _ in range(A.ndim - 1):
            x = torch.tensordot(x, v, dims=([0], [0]))
        out.append(x)
    return torch.stack(out)


def _targets(order: int, d: int = 5):
    g = torch.Generator().manual_seed(order)
    cp = ot.random_target(order=order, dim=d, rank=3, weights=[1.0, -0.5, 0.3], random_state=1)
    cp_dense = dense_cp(cp.weights, cp.factors, order)
    X = torch.randn(40, d, generator=g, dtype=torch.float64)
    mom = ot.MomentTarget(X, order, chunk_size=7)
    mom_dense = dense_cp(torch.full((40,), 1 / 40, dtype=torch.float64), X, order)
    dense = ot.DenseTarget(symmetrize(torch.randn((d,) * order, generator=g, dtype=torch.float64)))
    return [(cp, cp_dense), (mom, mom_dense), (dense, dense.array)]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_implicit_operations_match_the_dense_array(order):
    V = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for target, A in _targets(order):
        torch.testing.assert_close(target.sq_norm(), (A**2).sum(), rtol=1e-12, atol=0)
        torch.testing.assert_close(target.values(V), _dense_values(A, V), rtol=1e-11, atol=1e-13)
        torch.testing.assert_close(target.contract(V), _dense_contract(A, V), rtol=1e-11, atol=1e-13)


def test_cp_target_broadcasts_over_batch_dimensions():
    t1 = ot.random_target(order=3, dim=6, rank=2, random_state=0)
    t2 = ot.random_target(order=3, dim=6, rank=2, random_state=1)
    batch = ot.CPTarget(torch.stack([t1.weights, t2.weights]), torch.stack([t1.factors, t2.factors]), 3)
    V = torch.randn(2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(batch.values(V)[1], t2.values(V[1]))
    torch.testing.assert_close(batch.sq_norm()[0], t1.sq_norm())


def test_random_target_orthonormal_components_are_orthonormal_and_weights_follow_the_rule():
    t = ot.random_target(order=3, dim=10, rank=4, components="orthonormal", weights="geometric",
                         random_state=2)
    torch.testing.assert_close(t.factors @ t.factors.T, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(t.weights, 0.8 ** torch.arange(4, dtype=torch.float64))
    assert math.isclose(float(t.sq_norm()), float((t.weights**2).sum()), rel_tol=1e-12)


def test_random_target_is_reproducible_and_seed_dependent():
    a = ot.random_target(order=3, dim=8, rank=3, random_state=5)
    b = ot.random_target(order=3, dim=8, rank=3, random_state=5)
    c = ot.random_target(order=3, dim=8, rank=3, random_state=6)
    assert torch.equal(a.factors, b.factors)
    assert not torch.equal(a.factors, c.factors)


def test_noise_target_has_requested_relative_noise_and_keeps_truth():
    t = ot.random_target(order=3, dim=6, rank=2, noise=0.1, random_state=0)
    assert isinstance(t, ot.DenseTarget)
    clean = t.truth.to_dense()
    rel = float((t.array - clean).norm() / clean.norm())
    assert rel == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(order=1), "order"),
        (dict(dim=0), "dim"),
        (dict(rank=-2), "rank"),
        (dict(components="gaussian"), "components"),
        (dict(weights="huge"), "weights"),
        (dict(weights=[1.0, 2.0]), "weights"),
        (dict(rank=5, dim=3, components="orthonormal"), "orthonormal"),
        (dict(device="tpu"), "device"),
        (dict(dtype="int8"), "dtype"),
        (dict(noise=-1.0), "noise"),
        (dict(dim=500, noise=0.1), "noise"),
    ],
)
def test_bad_random_target_arguments_raise_clear_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ot.random_target(**{"order": 3, "dim": 5, "rank": 3, **kwargs})


def test_dense_target_rejects_non_symmetric_arrays_and_nan():
    A = torch.randn(4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="not symmetric"):
        ot.DenseTarget(A)
    with pytest.raises(ValueError, match=r"shape \(d,\)\*order"):
        ot.DenseTarget(torch.zeros(3, 4, 3))
    S = symmetrize(A)
    S[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ot.DenseTarget(S)


def test_cp_target_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="weights shape"):
        ot.CPTarget(torch.ones(3), torch.ones(4, 5), 3)
    with pytest.raises(ValueError, match="factors"):
        ot.CPTarget(torch.ones(3), [float("inf")] * 3, 3)


def test_as_target_accepts_tensorly_style_factors():
    t = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    weights, factors = t.truth
    again = ot.as_target((weights, factors))
    torch.testing.assert_close(again.sq_norm(), t.sq_norm())


def test_float64_twin_is_made_once_and_keeps_the_moment_norm_cache():
    X = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    target = ot.MomentTarget(X, 3)
    twin = target.float64()
    assert twin.dtype == torch.float64 and target.float64() is twin
    first = twin.sq_norm()
    assert twin.sq_norm() is first  # cached, not recomputed
    t64 = ot.random_target(order=3, dim=4, rank=2, random_state=0)
    assert t64.float64() is t64
