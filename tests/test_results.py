"""What a gradient fit returns (issue 10, items 1, 2, 6, 9, 10): minimal CPs, guarded merges,
degeneracy and rank-support diagnostics, no component left behind at odd orders."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch

import overtensor as ot
from overtensor.tensors.gradient import finish_fit, restart_rows
from overtensor.tensors.models import model_cp
from overtensor.tensors.reduction import reduce_rank
from overtensor.training.schedule import EpochSchedule


def _correlated(order: int, dim: int, rank: int, cos: float, seed: int) -> ot.CPTarget:
    """Unit components with pairwise cosine ``cos`` (equicorrelated Gram, random rotation)."""
    gen = torch.Generator().manual_seed(seed)
    gram = (1 - cos) * torch.eye(rank, dtype=torch.float64) + cos
    L = torch.linalg.cholesky(gram)
    Q, _ = torch.linalg.qr(torch.randn(dim, rank, generator=gen, dtype=torch.float64))
    return ot.CPTarget(torch.ones(rank, dtype=torch.float64), (Q @ L.T).T.contiguous(), order)


def test_non_minimal_exact_cp_is_reduced_to_the_true_rank():
    # Issue input: 6 terms at error 2.9e-8 with 3/5 recovered before rank reduction.
    target = ot.random_target(3, 40, 5, random_state=706)
    # The gradient route's extraction and reduction (the default route would certify rank 5 by
    # the subspace power method without trying rank 4).
    result = ot.fit(target, width=8, random_state=906, runtime=ot.Runtime(engine="paper"))
    assert result.cp.rank == 5
    assert result.recovery().recovered == 5
    assert result.converged
    tried = result.info["rank_reduction"]["tried"]
    assert [t["rank"] for t in tried] == [5, 4]
    assert [t["accepted"] for t in tried] == [True, False]
    assert "rank 4 refused" in result.summary()["rank_stop"]


def test_correlated_components_at_cosine_half_are_all_recovered():
    # Issue input (five unit components at pairwise cosine 0.5, order 3, width 20) at d = 30.
    target = _correlated(3, 30, 5, 0.5, seed=0)
    result = ot.fit(target, width=20, random_state=0)
    assert result.converged and result.cp.rank == 5
    assert result.recovery().recovered == 5


def test_reduce_rank_removes_a_redundant_term_and_refuses_below_the_rank():
    target = _correlated(3, 12, 3, 0.5, seed=1)
    truth = target.truth
    # A fourth term in the span of two others: an exact but non-minimal CP (error ~ 0).
    extra = truth.components[0] + truth.components[1]
    cp = ot.SymmetricCP(torch.cat([truth.weights, torch.tensor([0.0], dtype=torch.float64)]),
                        torch.cat([truth.components, (extra / extra.norm())[None]]), 3)
    red = reduce_rank(cp, target, tol=1e-6, polish_iter=100)
    assert red.cp.rank == 3 and red.relative_error <= 1e-6
    assert [t["accepted"] for t in red.tried] == [True, False]
    assert red.tried[-1]["relative_error"] > 0.1  # two terms cannot fit three components


def test_no_term_below_drop_tol_survives():
    target = ot.random_target(3, 25, 3, weights="geometric", random_state=1)
    result = ot.fit(target, width=15, random_state=1)
    w = result.cp.weights.abs()
    assert bool((w >= 1e-3 * w.max()).all())


def _sym_a3b() -> ot.DenseTarget:
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64)
    vecs, perms = [a, a, a, b], set(itertools.permutations(range(4)))
    T = sum(torch.einsum("i,j,k,l->ijkl", *[vecs[i] for i in p]) for p in perms) / len(perms)
    return ot.DenseTarget(T)


def test_cp_degeneracy_is_diagnosed_with_advice():
    # Sym(a^3 b) at order 4 in d = 2: rank 4, border rank 2. Two terms cannot reach it; the fit
    # drives them together with large weights of opposite sign.
    result = ot.fit(_sym_a3b(), width=2, random_state=0)
    assert not result.converged
    deg = result.info["degeneracy"]
    assert deg["max_cos"] >= 0.9 and deg["max_weight"] >= 1.0
    summary = result.summary()
    assert summary["degeneracy_max_cos"] == deg["max_cos"]
    assert any("degeneracy" in w and "wider" in w for w in summary["warnings"])


def test_well_posed_fit_has_no_degeneracy_warning():
    target = ot.random_target(3, 20, 3, random_state=0)
    result = ot.fit(target, width=12, random_state=0, runtime=ot.Runtime(engine="paper"))
    assert result.converged
    assert "degeneracy" not in result.info and result.info["warnings"] == []


def test_merge_of_two_distinct_close_components_is_refused():
    # Two true components at cos 0.995 (order 3), each fitted by two rows: merging at 0.99 puts all
    # four rows into one term and misses tol; the rows merged at 0.9999 meet it.
    gen = torch.Generator().manual_seed(0)
    u1 = torch.randn(10, generator=gen, dtype=torch.float64)
    u1 /= u1.norm()
    z = torch.randn(10, generator=gen, dtype=torch.float64)
    z -= (z @ u1) * u1
    u2 = 0.995 * u1 + (1 - 0.995**2) ** 0.5 * z / z.norm()
    target = ot.CPTarget(torch.tensor([1.0, 0.8], dtype=torch.float64), torch.stack([u1, u2]), 3)
    scale = 1 / target.sq_norm().sqrt()
    norms = (torch.tensor([0.5, 0.5, 0.4, 0.4], dtype=torch.float64) * scale).sqrt()
    W = torch.stack([u1, u1, u2, u2]) * norms[:, None]
    params = {"W": W}
    sched = EpochSchedule(epoch_steps=1, epoch_growth=1.0, max_steps=1, final_steps=0, tol=1e-4,
                          patience=1, eval_every=1, weight_decay=0.0, reinit=False)
    signs = torch.ones(4, dtype=torch.float64)
    result = finish_fit(target, scale, "homogeneous", params, params, signs, [], sched,
                        method="beyond-lazy", width=4, extract=True, polish_iter=100,
                        polish_below=1e-2, merge_cos=0.99, drop_tol=1e-3, tol=1e-4, seconds=0.0)
    assert result.converged and result.cp.rank == 2
    assert result.recovery().recovered == 2
    first = result.info["merges"][0]
    assert first["accepted"] is False and "misses tol" in first["reason"]
    assert result.summary()["merges_refused"] >= 1


def test_heavy_duplicated_rows_are_merged_into_one_and_the_other_redrawn():
    target = ot.random_target(3, 6, 2, components="orthonormal", random_state=0)
    u1, u2 = target.factors
    scale = 1 / target.sq_norm().sqrt()
    tilt = torch.zeros(6, dtype=torch.float64)
    tilt[5] = 0.05
    row2 = (u1 + tilt) / (u1 + tilt).norm()
    W = torch.stack([0.6 * u1, 0.4 * row2, 0.7 * u2, 1e-3 * torch.ones(6, dtype=torch.float64)])
    params = {"W": W.clone()}
    signs = torch.ones(4, dtype=torch.float64)
    a0, V0 = model_cp("homogeneous", {"W": W}, signs)
    restart_rows(params, signs, "homogeneous", target, scale, 1e-4, 1e-3,
                 torch.Generator().manual_seed(0))
    norms = params["W"].norm(dim=-1)
    # Row 1 (mass 0.16, |cos| = 0.9988 with row 0) is merged: row 0 carries both terms' weight.
    assert norms[0] ** 2 == pytest.approx(0.36 + 0.16, rel=1e-12)
    assert norms[1] == pytest.approx(1e-3, rel=1e-12)  # re-drawn at init_scale
    assert norms[2] == pytest.approx(0.7, rel=1e-12)  # distinct rows are left alone
    a1, V1 = model_cp("homogeneous", params, signs)
    # The model tensor (without the tiny row 3) is kept up to the small angle between the rows.
    before = ot.SymmetricCP(a0[:3] / scale, V0[:3], 3)
    after = ot.SymmetricCP(a1[[0, 2]] / scale, V1[[0, 2]], 3)
    reference = ot.CPTarget(before.weights, before.components, 3)
    dropped = ot.SymmetricCP(a0[[0, 2]] / scale, V0[[0, 2]], 3)  # re-drawing without the merge
    assert ot.cp_relative_error(after, reference) < 0.03
    assert ot.cp_relative_error(dropped, reference) > 0.1


@pytest.mark.slow
def test_odd_order_run_does_not_leave_a_component_behind():
    # Issue input: ended at relative error 0.46 with a component missing.
    target = ot.random_target(3, 40, 5, random_state=701)
    result = ot.fit(target, width=8, random_state=901, schedule=ot.GradientSchedule(patience=100,
                    max_steps=60000, final_steps=20000))
    assert result.converged and result.recovery().recovered == 5


@pytest.mark.slow
def test_rank_cap_on_a_noisy_target_returns_the_true_components():
    target = ot.random_target(3, 10, 3, noise=0.05, random_state=3)
    free = ot.fit(target, width=12, random_state=0)
    # Without a cap the rank is chosen against the residual (issue 22, item 4): the terms that
    # fit the noise are removed and the warning says so.
    support = free.info["rank_support"]
    assert support["found"] > 3 and support["supported"] == free.cp.rank == 3
    assert any("chosen under noise" in w for w in free.summary()["warnings"])
    capped = ot.fit(target, width=12, random_state=0, extraction=ot.Extraction(rank=3))
    assert capped.cp.rank == 3 and capped.recovery().recovered == 3
    assert capped.info["rank_cap"] == 3
    # Against the clean tensor the capped CP is closer than the uncapped one.
    clean = target.truth
    assert ot.cp_relative_error(capped.cp, clean) < 0.03


def test_rank_cap_is_validated():
    target = ot.random_target(3, 10, 2, random_state=0)
    with pytest.raises(ValueError, match="rank"):
        ot.fit(target, width=6, extraction=ot.Extraction(rank=0))


def test_cli_summary_prints_the_warnings():
    out = subprocess.run(
        [sys.executable, "-m", "overtensor.cli.main", "fit", "--order", "3", "--dim", "10", "--rank",
         "3", "--width", "12", "--noise", "0.05", "--seed", "3", "--json"],
        capture_output=True, text=True, check=True,
    )
    summary = json.loads(out.stdout)
    assert any("chosen under noise" in w for w in summary["warnings"])  # issue 22, item 4


@pytest.mark.parametrize("order", [2, 3, 4])
def test_gauss_newton_matrix_equals_jacobian_product(order, dense):
    from overtensor.tensors.gauss_newton import gauss_newton_matrix

    gen = torch.Generator().manual_seed(order)
    r, d = 3, 4
    c = torch.randn(r, generator=gen, dtype=torch.float64)
    U = torch.randn(r, d, generator=gen, dtype=torch.float64)

    def tensor(x):
        return dense(x[:r], x[r:].reshape(r, d), order).reshape(-1)

    J = torch.autograd.functional.jacobian(tensor, torch.cat([c, U.reshape(-1)]))
    H = torch.from_numpy(gauss_newton_matrix(c.numpy(), U.numpy(), order))
    torch.testing.assert_close(H, J.T @ J, rtol=1e-10, atol=1e-10)


def test_levenberg_marquardt_reaches_an_ill_conditioned_exact_cp():
    from overtensor.tensors.gauss_newton import levenberg_marquardt

    target = _correlated(3, 15, 4, 0.7, seed=2)
    truth = target.truth
    gen = torch.Generator().manual_seed(0)
    start = ot.SymmetricCP(truth.weights * 1.1, truth.components
                           + 0.05 * torch.randn(4, 15, generator=gen, dtype=torch.float64), 3)
    refined, rel = levenberg_marquardt(start, target, max_iter=50)
    assert rel <= 1e-6  # from ~1e-1; the Gram-identity floor is ~1e-8
    assert ot.recovery(refined, target, threshold=0.9999).recovered == 4
