"""Lazy solvers: the tangent kernel, exact least squares (explicit and CG), random features and GD."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import overtensor as ot
from overtensor.precision import EXACT
from overtensor.tensors.lazy import (
    lazy_least_squares,
    lazy_threshold_width,
    random_features_least_squares,
    symmetric_dimension,
    tangent_kernel,
    tangent_kernel_matvec,
    tangent_to_cp,
    unit_rows,
)
from overtensor.tensors.targets import symmetrize


def _outer(vectors):
    out = vectors[0]
    for v in vectors[1:]:
        out = torch.tensordot(out, v, dims=0)
    return out


def _sym_dense(a, u, order):
    """Sym(a^{⊗(l−1)} ⊗ u) as a dense array, by explicit symmetrization (independent of lazy.py)."""
    return symmetrize(_outer([a] * (order - 1) + [u]))


def _dense_jacobian(V, order):
    """Columns Sym(v_i^{⊗(l−1)} ⊗ e_a), ordered like U.reshape(-1)."""
    m, d = V.shape
    eye = torch.eye(d, dtype=V.dtype)
    return torch.stack([_sym_dense(V[i], eye[a], order).reshape(-1)
                        for i in range(m) for a in range(d)], dim=1)


def _draw(m, d, seed):
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(("order", "dim", "width"), [(3, 5, 4), (3, 4, 7), (4, 4, 3)])
def test_tangent_kernel_equals_gram_of_dense_jacobian(order, dim, width):
    V = unit_rows(_draw(width, dim, 0))
    J = _dense_jacobian(V, order)
    K = tangent_kernel(V, order)
    torch.testing.assert_close(K, J.T @ J, rtol=0, atol=1e-12)
    U = _draw(width, dim, 1)
    torch.testing.assert_close(tangent_kernel_matvec(V, U, order).reshape(-1), K @ U.reshape(-1),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_tangent_to_cp_represents_the_tangent_tensor_exactly(order):
    V, U = _draw(3, 4, 2), _draw(3, 4, 3)
    a, R = tangent_to_cp(V, U, order)
    assert a.shape == (3 * 2 * math.ceil(order / 2),)
    dense_cp = ot.SymmetricCP(a, R, order).to_dense()
    dense = sum(_sym_dense(V[i], U[i], order) for i in range(3))
    torch.testing.assert_close(dense_cp, dense, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("order", "dim", "width", "rank"), [(3, 5, 4, 1), (3, 6, 5, 3), (4, 4, 4, 2)])
def test_explicit_and_cg_lazy_solvers_agree_with_dense_least_squares(order, dim, width, rank):
    target = ot.random_target(order, dim, rank, random_state=4)
    W0 = _draw(width, dim, 5)
    J = _dense_jacobian(unit_rows(W0), order)
    T = target.truth.to_dense().reshape(-1)
    x = torch.linalg.lstsq(J, T, driver="gelsd").solution
    ref_err = float((J @ x - T).norm() / T.norm())
    ref_fit = (J @ x).reshape(T.shape)
    assert width * dim < symmetric_dimension(dim, order) and ref_err > 0.05
    for solver in ("explicit", "cg"):
        sol = lazy_least_squares(target, W0, solver=solver)
        assert sol.solver == solver and sol.converged
        assert abs(sol.relative_error - ref_err) < EXACT
        fit = (_dense_jacobian(sol.directions, order) @ sol.coef.reshape(-1))
        assert float((fit - ref_fit).norm() / T.norm()) < 1e-8  # pragma: floor-ok (dense arrays)
        # The CP form of the optimum gives the same error through the Gram identity.
        assert abs(ot.cp_relative_error(sol.to_cp(), target) - ref_err) < 1e-7


def test_lazy_error_vanishes_once_md_reaches_symmetric_dimension():
    # docs/theory/tensors.md §4 sanity numbers: order 3, rank one; d = 8 zero from m = 15, d = 12 from m = 31.
    for dim, zero_from in ((8, 15), (12, 31)):
        assert lazy_threshold_width(dim, 3) == zero_from
        for seed in range(3):
            target = ot.random_target(3, dim, 1, random_state=seed)
            W0 = _draw(zero_from + 4, dim, 100 + seed)
            errors = {m: ot.lazy_error(target, W0[:m]) for m in (dim // 2, dim, zero_from - 1,
                                                                zero_from, zero_from + 4)}
            assert errors[dim // 2] > 0.5
            assert errors[dim] > 0.3  # m·d well below C(d+2, 3)
            assert errors[zero_from - 1] > 0.01
            assert errors[zero_from] < 1e-6
            assert errors[zero_from + 4] < 1e-6


def test_lazy_error_is_monotone_in_nested_widths():
    target = ot.random_target(3, 7, 2, random_state=1)
    W0 = _draw(14, 7, 9)
    errors = [ot.lazy_error(target, W0[:m]) for m in range(1, 15)]
    assert all(b <= a + EXACT for a, b in itertools.pairwise(errors))
    assert errors[0] > 0.9 and errors[-1] < 1e-6


def test_cg_solver_reaches_zero_error_above_threshold_and_stops_on_stop_error():
    dim = 10
    m = lazy_threshold_width(dim, 3) + 3
    target = ot.random_target(3, dim, 3, random_state=2)
    W0 = _draw(m, dim, 3)
    assert lazy_least_squares(target, W0, solver="cg").relative_error < 1e-6
    assert lazy_least_squares(target, W0, solver="explicit").relative_error < 1e-6
    exact = ot.lazy_error(target, W0[:12])
    early = lazy_least_squares(target, W0[:12], solver="cg", stop_error=0.9)
    assert exact < 0.9 and exact - 1e-12 <= early.relative_error <= 0.9
    assert early.iterations < lazy_least_squares(target, W0[:12], solver="cg").iterations


def test_lazy_error_depends_only_on_row_directions():
    target = ot.random_target(3, 6, 2, random_state=3)
    W0 = _draw(5, 6, 4)
    scales = torch.tensor([1e-3, 2.0, 7.0, 0.5, 1.0], dtype=torch.float64).unsqueeze(-1)
    assert abs(ot.lazy_error(target, W0) - ot.lazy_error(target, -3.0 * scales * W0)) < EXACT


def test_random_features_optimum_matches_dense_least_squares_and_is_worse_than_lazy():
    order, dim, width = 3, 5, 12
    target = ot.random_target(order, dim, 2, random_state=5)
    W0 = _draw(width, dim, 6)
    V = unit_rows(W0)
    F = torch.stack([_outer([v] * order).reshape(-1) for v in V], dim=1)
    T = target.truth.to_dense().reshape(-1)
    x = torch.linalg.lstsq(F, T, driver="gelsd").solution
    ref = float((F @ x - T).norm() / T.norm())
    sol = random_features_least_squares(target, W0)
    assert abs(sol.relative_error - ref) < EXACT
    assert abs(ot.cp_relative_error(sol.to_cp(), target) - ref) < 1e-7
    assert sol.relative_error >= ot.lazy_error(target, W0) - 1e-12
    # Random features need m ≥ C(d+l−1, l) = 35 here: 12 features cannot fit the target.
    assert sol.relative_error > 0.1


@pytest.mark.parametrize("model", ["homogeneous", "plain", "coefficients"])
def test_gradient_descent_on_linearized_model_converges_to_least_squares_optimum(model):
    target = ot.random_target(3, 6, 2, random_state=7)
    res = ot.fit(target, width=4, regime="lazy", tol=0.0, random_state=1,
                 schedule=ot.GradientSchedule(model=model, max_steps=2000, patience=50,
                 eval_every=100))
    optimum = res.info["lazy_optimum_error"]
    assert 0.3 < optimum < 0.99
    assert res.model_relative_error >= optimum - 1e-9
    assert res.model_relative_error - optimum < 1e-7
    # The optimum belongs to the same initialization: recompute it from the stored W_0.
    assert abs(ot.lazy_error(target, res.params0["W"]) - optimum) < EXACT


def test_lazy_solvers_reject_bad_arguments():
    target = ot.random_target(3, 5, 1, random_state=0)
    with pytest.raises(ValueError, match="W0 must be a tensor of shape"):
        lazy_least_squares(target, torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="solver must be one of"):
        lazy_least_squares(target, _draw(3, 5, 0), solver="qr")
    with pytest.raises(ValueError, match="W0 must be a tensor"):
        random_features_least_squares(target, [[1.0] * 5])


@pytest.mark.parametrize(("order", "dim", "width"), [(3, 5, 7), (4, 3, 5), (4, 4, 9)])
def test_tangent_space_is_defective_at_alexander_hirschowitz_exceptions(order, dim, width):
    # m·d ≥ C(d+l−1, l), yet the tangent span misses one dimension: the lazy error stays positive,
    # and both solvers see it (a solver that assumed dim 𝒱 = min(md, C) would report 0).
    target = ot.random_target(order, dim, 1, random_state=0)
    W0 = _draw(width, dim, 5)
    assert width * dim >= symmetric_dimension(dim, order)
    explicit = lazy_least_squares(target, W0, solver="explicit")
    cg = lazy_least_squares(target, W0, solver="cg")
    assert explicit.tangent_dim == symmetric_dimension(dim, order) - 1
    assert explicit.relative_error > 1e-3
    assert abs(explicit.relative_error - cg.relative_error) < EXACT
    # One more row fills the space.
    assert ot.lazy_error(target, torch.cat([W0, _draw(1, dim, 6)])) < 1e-6
