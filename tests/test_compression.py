"""Compression to the span of the components (CANDELINC): exact when the rank is small."""

import pytest
import torch

import overtensor as ot
from overtensor.tensors.compression import compress, range_basis


def _random_cp(order, dim, rank, seed):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(rank, dim, generator=g, dtype=torch.float64)
    return ot.SymmetricCP(torch.rand(rank, generator=g, dtype=torch.float64) + 0.5, U, order,
                          normalize=True)


@pytest.mark.parametrize("order", [3, 4])
def test_cp_target_compresses_to_its_rank_and_errors_are_the_same_in_both_spaces(order):
    target = ot.random_target(order, 60, 5, random_state=1)
    comp = compress(target, random_state=0)
    assert comp is not None and comp.dim == 5
    Q = comp.basis
    assert torch.allclose(Q.T @ Q, torch.eye(5, dtype=Q.dtype), atol=1e-12)
    # Any core-space CP has the same relative error in R^k as its lift in R^d (‖T‖ = ‖T_Q‖).
    other = _random_cp(order, 5, 3, seed=7)
    in_core = ot.cp_relative_error(other, comp.core)
    lifted = ot.cp_relative_error(comp.lift(other), target)
    assert in_core > 0.1
    assert lifted == pytest.approx(in_core, rel=1e-9)


def test_dense_target_fit_in_the_core_recovers_the_components_in_full_space():
    cp_target = ot.random_target(3, 24, 4, random_state=3)
    dense = ot.DenseTarget(cp_target.truth.to_dense(), truth=cp_target.truth)
    result = ot.fit(dense, width=12, random_state=0)
    assert result.info["compression"]["dim"] == 4
    assert result.cp.dim == 24
    assert result.relative_error <= 1e-4 and result.converged
    assert result.recovery().recovered == 4
    # The reported error is the error against the user's dense array.
    diff = result.cp.to_dense() - dense.array
    assert result.relative_error == pytest.approx(float(diff.norm() / dense.array.norm()),
                                                  rel=1e-6, abs=1e-7)


def test_moment_target_with_fewer_samples_than_dimensions_has_the_same_values_in_the_core():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 50, generator=g, dtype=torch.float64)
    target = ot.MomentTarget(X, 3)
    comp = compress(target, random_state=1)
    assert comp is not None and comp.dim == 8
    V = torch.randn(6, 8, generator=g, dtype=torch.float64)
    assert torch.allclose(comp.core.values(V), target.values(V @ comp.basis.T), rtol=1e-10)
    assert comp.core.sq_norm().item() == pytest.approx(target.sq_norm().item(), rel=1e-10)


def test_full_rank_target_is_not_compressed_and_the_fit_falls_back_to_the_full_problem():
    noisy = ot.random_target(3, 8, 2, noise=0.05, random_state=2)
    Q, sv = range_basis(noisy, random_state=0)
    assert Q is None and sv.numel() == 8
    assert compress(noisy, random_state=0) is None
    result = ot.fit(noisy, width=6, random_state=0, schedule=ot.GradientSchedule(max_steps=400,
                    final_steps=100))
    assert result.info["compression"]["dim"] is None
    assert result.info["route"]["compressed_dim"] is None
    assert result.cp.dim == 8


def test_rank_above_max_ratio_is_refused():
    target = ot.random_target(3, 10, 6, random_state=4)
    assert compress(target, random_state=0) is None  # 6 > 0.5 * 10
    comp = compress(target, max_ratio=1.0, random_state=0)
    assert comp is not None and comp.dim == 6


@pytest.mark.parametrize("bad", [dict(max_ratio=0.0), dict(max_ratio=1.5), dict(rtol=-1.0),
                                 dict(sketch_size=0)])
def test_bad_options_name_the_argument(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        compress(ot.random_target(3, 10, 2, random_state=0), **bad)
