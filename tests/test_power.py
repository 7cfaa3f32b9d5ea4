"""The classical tensor power method with deflation (Anandkumar et al. 2014)."""

import itertools

import pytest
import torch

import overtensor as ot
from overtensor.precision import EXACT
from overtensor.tensors.power import (
    PowerOptions,
    contract_jacobian,
    power_method,
    residual_contract,
    residual_values,
    shifted_iterations,
)


def _orthogonal_target(order, dim, weights, seed):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(dim, len(weights), generator=gen, dtype=torch.float64))
    return ot.CPTarget(torch.tensor(weights, dtype=torch.float64), Q.T.contiguous(), order)


@pytest.mark.parametrize("order", [3, 4, 5])
def test_recovers_orthogonal_targets_exactly(order):
    target = ot.random_target(order=order, dim=20, rank=5, components="orthonormal",
                              weights="linear", random_state=order)
    result = ot.fit(target, method="power-method", random_state=0, tol=0.0)
    # Exact to working precision: the Gram identity resolves no less (overtensor.precision).
    assert result.relative_error <= EXACT
    rec = result.recovery()
    assert rec.recovered == 5 and rec.cosines.min() > 1 - 1e-12
    torch.testing.assert_close(result.cp.weights, target.weights, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_finds_orthogonal_components_in_decreasing_weight_order(seed):
    target = ot.random_target(order=4, dim=30, rank=5, components="orthonormal", weights=0.5,
                              random_state=seed)
    result = ot.fit(target, method="power-method", random_state=seed, tol=0.0)
    assert result.info["found_order"] == [0, 1, 2, 3, 4]
    assert [rec["component"] for rec in result.history] == [0, 1, 2, 3, 4]
    found = [rec["weight"] for rec in result.history]
    assert found == pytest.approx([0.5**j for j in range(5)], abs=1e-10)


def test_residual_error_decreases_with_each_deflation_on_orthogonal_target():
    target = ot.random_target(order=3, dim=25, rank=6, components="orthonormal", weights=0.7,
                              random_state=1)
    result = ot.fit(target, method="power-method", random_state=1, tol=0.0)
    errors = [rec["relative_error"] for rec in result.history]
    lam = target.weights
    # After k deflations the residual is exactly the remaining components: ‖λ_{k+1:}‖ / ‖λ‖.
    expected = [float(lam[k + 1:].norm() / lam.norm()) for k in range(6)]
    # The last one is an exact fit: at the float64 floor of the Gram identity (docs/theory/tensors.md §2).
    assert errors == pytest.approx(expected, abs=EXACT)


def test_even_order_orthogonal_target_with_negative_weights_is_recovered():
    target = _orthogonal_target(4, 20, [1.0, -0.7, 0.5, -0.3], seed=0)
    result = ot.fit(target, method="power-method", random_state=0, tol=0.0)
    assert result.relative_error <= EXACT
    assert result.info["found_order"] == [0, 1, 2, 3]
    assert result.info["found_weights"] == pytest.approx([1.0, -0.7, 0.5, -0.3], abs=1e-10)


def test_large_dimension_runs_without_dense_tensor():
    # 1000^4 entries would be 8 TB: only the implicit residual makes this possible.
    target = ot.random_target(order=4, dim=1000, rank=4, components="orthonormal", weights=0.5,
                              random_state=0)
    result = ot.fit(target, method="power-method", random_state=0, tol=0.0)
    assert result.recovery().cosines.min() > 1 - 1e-10
    assert result.relative_error <= EXACT  # exact to the float64 floor of the Gram identity


def test_non_orthogonal_components_leave_a_deflation_bias():
    target = ot.random_target(order=3, dim=50, rank=5, components="random", random_state=2)
    result = ot.fit(target, method="power-method", random_state=2, tol=0.0)
    # Close to the components, but deflation of a non-orthogonal set cannot be exact.
    assert result.recovery().cosines.min() > 0.99
    assert 1e-3 < result.relative_error < 0.2


def test_residual_operations_match_dense_deflated_tensor(dense):
    target = ot.random_target(order=3, dim=6, rank=3, components="random", random_state=0)
    lam = torch.tensor([0.3, -0.2], dtype=torch.float64)
    U = torch.nn.functional.normalize(torch.randn(2, 6, dtype=torch.float64), dim=-1)
    T = dense(target.weights, target.factors, 3) - dense(lam, U, 3)
    V = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(residual_contract(target, lam, U, V),
                               torch.einsum("abc,ia,ib->ic", T, V, V))
    torch.testing.assert_close(residual_values(target, lam, U, V),
                               torch.einsum("abc,ia,ib,ic->i", T, V, V, V))


def test_stops_once_residual_reaches_tol():
    target = ot.random_target(order=3, dim=20, rank=5, components="orthonormal", weights=0.01,
                              random_state=0)
    result = ot.fit(target, method="power-method", random_state=0, tol=1e-3)
    # After two deflations the residual is ‖(1e-4, 1e-6, 1e-8)‖ / ‖λ‖ ≈ 1e-4 ≤ tol.
    assert result.cp.rank == 2 and result.converged and result.stop_reason == "tol"


def test_same_seed_gives_identical_numbers():
    target = ot.random_target(order=3, dim=30, rank=4, components="random", random_state=3)
    a = ot.fit(target, method="power-method", random_state=7, tol=0.0)
    b = ot.fit(target, method="power-method", random_state=7, tol=0.0)
    assert torch.equal(a.cp.weights, b.cp.weights)
    assert torch.equal(a.cp.components, b.cp.components)


def test_unknown_rank_needs_width_and_width_sets_rank():
    target = ot.DenseTarget(_orthogonal_target(3, 5, [1.0, 0.5], seed=0).truth.to_dense())
    with pytest.raises(ValueError, match="width"):
        ot.fit(target, method="power-method")
    result = ot.fit(target, width=2, method="power-method", random_state=0, tol=0.0)
    assert result.relative_error <= EXACT
    assert result.info["found_order"] == [None, None]


@pytest.mark.parametrize("kwargs, name", [({"rank": 0}, "rank"), ({"n_restarts": 0}, "n_restarts"),
                                          ({"n_iter": 0}, "n_iter")])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    args = dict(rank=2, generator=torch.Generator().manual_seed(0), dtype=torch.float64,
                device=torch.device("cpu"))
    options = {k: kwargs.pop(k) for k in ("n_restarts", "n_iter") if k in kwargs}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):  # the counts are PowerOptions' (one place)
        power_method(target, **args, options=PowerOptions(**options))


def _pm_half_target(seed):
    """``Σ λ_i q_i q_iᵀ`` with ``λ = (−½, −½, ½, ½)`` and orthonormal ``q_i`` in ``R⁴`` (issue 10)."""
    return _orthogonal_target(2, 4, [-0.5, -0.5, 0.5, 0.5], seed=100 + seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shifted_power_method_converges_where_the_plain_map_alternates(seed):
    target = _pm_half_target(seed)
    result = ot.fit(target, method="power-method", random_state=seed, tol=0.0)
    assert result.relative_error <= 1e-7  # 10x the float64 floor of the Gram identity
    assert sorted(result.cp.weights.tolist()) == pytest.approx([-0.5, -0.5, 0.5, 0.5], abs=1e-7)
    assert result.history[0]["shift"] > 0.4  # λ_min = −½ at the start: the shift was needed


def test_plain_variant_stays_available_and_alternates_on_the_same_target():
    # The plain map keeps the alternation between the ±½ eigenspaces that SS-HOPM removes.
    errors = [ot.fit(_pm_half_target(seed), method="power-method", random_state=seed, tol=0.0,
                     power=PowerOptions(variant="plain")).relative_error for seed in range(3)]
    assert max(errors) > 1e-3


def test_ss_hopm_ascends_monotonically_with_every_shift_rule():
    # Kolda & Mayo 2011, Thm 4.4: with a large enough shift σ T(v,…,v) never decreases.
    target = ot.random_target(order=4, dim=8, rank=3, weights=[1.0, -0.9, 0.8], random_state=4)
    gen = torch.Generator().manual_seed(0)
    v0 = torch.nn.functional.normalize(torch.randn(1, 8, generator=gen, dtype=torch.float64), dim=-1)
    empty_w, empty_u = torch.zeros(0, dtype=torch.float64), torch.zeros(0, 8, dtype=torch.float64)
    for shift in ("adaptive", "conservative"):
        values = []
        v = v0
        for _ in range(30):
            v, _, how = shifted_iterations(target, empty_w, empty_u, v, 1, 0.0, shift, 1e-6)
            values.append(how["sigma"] * float(residual_values(target, empty_w, empty_u, v)))
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values)), shift


@pytest.mark.parametrize("magnitude", [1e-250, 1e250])
def test_power_method_is_scale_free_in_float64(magnitude):
    base = ot.random_target(order=3, dim=10, rank=3, components="orthonormal", weights="linear",
                            random_state=5)
    big = ot.CPTarget(base.weights * magnitude, base.factors, 3)
    ref = ot.fit(base, method="power-method", random_state=0, tol=0.0)
    res = ot.fit(big, method="power-method", random_state=0, tol=0.0)
    torch.testing.assert_close(res.cp.weights / magnitude, ref.cp.weights, rtol=1e-10, atol=0)
    assert res.relative_error <= 1e-6 and ot.cp_relative_error(res.cp, big) <= 1e-6


def test_power_options_validate_their_fields():
    with pytest.raises(ValueError, match="variant"):
        PowerOptions(variant="fast")
    with pytest.raises(ValueError, match="shift"):
        PowerOptions(shift="big")
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    with pytest.raises(ValueError, match="power"):
        ot.fit(target, width=4, power=PowerOptions())
    with pytest.raises(TypeError, match="power"):
        ot.fit(target, method="power-method", power={"variant": "plain"})


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_contract_jacobian_is_the_exact_jacobian_of_the_residual_contraction(order):
    target = ot.random_target(order=order, dim=6, rank=3, weights=[1.0, -0.6, 0.4], random_state=0)
    gen = torch.Generator().manual_seed(order)
    lam = torch.tensor([0.3], dtype=torch.float64)
    U = torch.nn.functional.normalize(torch.randn(1, 6, generator=gen, dtype=torch.float64), dim=-1)
    x = torch.randn(6, generator=gen, dtype=torch.float64)
    expected = torch.autograd.functional.jacobian(
        lambda v: residual_contract(target, lam, U, v.unsqueeze(0)).squeeze(0), x)
    torch.testing.assert_close(contract_jacobian(target, lam, U, x), expected, rtol=1e-10,
                               atol=1e-12)
