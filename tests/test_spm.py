"""Issue 21: the subspace power method (``method="spm"``, Kileel & Pereira) and ``fit``'s default
route (``engine="auto"``: compress, SPM when the flattening's rank allows, shortcuts, lift)."""

import itertools
import math

import pytest
import torch

import overtensor as ot
from overtensor.tensors.spm import SPMOptions, spm, spm_memory, spm_rank_bound


def _cp(order, dim, rank, seed, correlated=0.0):
    """Unit components (optionally sharing a common direction, pairwise |cos| ≈ c²/(1+c²)) and
    weights in [0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(rank, dim, generator=g, dtype=torch.float64) / dim**0.5
    if correlated:
        U = U + correlated * torch.randn(1, dim, generator=g, dtype=torch.float64) / dim**0.5
    U = U / U.norm(dim=1, keepdim=True)
    w = torch.rand(rank, generator=g, dtype=torch.float64) + 0.5
    return ot.CPTarget(w, U, order)


@pytest.mark.parametrize("order,dim,rank,corr,seed", [
    (3, 10, 5, 0.0, 0), (3, 10, 10, 0.0, 1), (3, 30, 10, 2.0, 2), (3, 30, 20, 0.0, 3),
    (4, 8, 5, 0.0, 4), (4, 6, 15, 0.0, 5), (4, 12, 6, 2.0, 6)])
def test_spm_recovers_every_component_of_dense_and_cp_targets(order, dim, rank, corr, seed):
    cp_target = _cp(order, dim, rank, seed, corr)
    if corr:  # the correlated case really is correlated
        G = (cp_target.factors @ cp_target.factors.T).abs()
        assert float(G[~torch.eye(rank, dtype=torch.bool)].mean()) > 0.5
    dense = ot.DenseTarget(cp_target.truth.to_dense(), truth=cp_target.truth)
    for target in (dense, cp_target):
        result = ot.fit(target, rank, "spm", random_state=seed)
        assert result.method == "spm" and result.cp.rank == rank
        assert result.relative_error <= 1e-6 and result.converged
        assert result.recovery(0.999).recovered == rank
        assert result.info["route"]["engine"] == "spm"


def test_spm_on_implicit_targets_works_in_the_span_of_the_components():
    target = _cp(3, 2000, 6, 7)
    result = spm(target, 6, generator=0)
    assert result.info["spm"]["dim"] == 6  # compressed: the d^2 flattening is never formed
    assert result.relative_error <= 1e-6 and result.recovery(0.999).recovered == 6
    X = _cp(3, 500, 4, 8).factors.repeat(5, 1)  # moments of 20 samples on 4 directions
    moments = ot.MomentTarget(X, 3)
    res = spm(moments, None, generator=1)
    assert res.cp.rank == 4 and res.relative_error <= 1e-6


def test_spm_refuses_ranks_beyond_the_flattenings_bound_naming_them():
    assert spm_rank_bound(3, 10) == 10 and spm_rank_bound(4, 10) == 55
    with pytest.raises(ValueError, match=r"at most rank 10 .*rank=11"):
        ot.fit(ot.DenseTarget(_cp(3, 10, 10, 0).truth.to_dense()), 11, "spm")
    with pytest.raises(ValueError, match=r"at most rank 21 .*rank=22"):
        ot.fit(_cp(4, 6, 5, 0), 22, "spm")
    # Components spanning 4 of 30 dimensions: at most 4 at order 3.
    with pytest.raises(ValueError, match="span only 4 dimensions"):
        ot.fit(_cp(3, 30, 4, 0), 5, "spm")
    # Order 4, rank 5 target asked for 7 terms: the flattening has rank 5.
    with pytest.raises(ValueError, match="numerical rank 5"):
        ot.fit(ot.DenseTarget(_cp(4, 6, 5, 0).truth.to_dense()), 7, "spm")
    with pytest.raises(ValueError, match="order >= 3"):
        ot.fit(_cp(2, 6, 2, 0), 2, "spm")


def test_spm_states_the_memory_it_needs_and_refuses_beyond_the_budget():
    X = torch.randn(3000, 400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    moments = ot.MomentTarget(X, 3)  # full rank: no compression, 400^2 x 400 flattening
    need = spm_memory(moments, 400)
    assert need > 2**29
    with pytest.raises(ValueError, match=r"needs \d+\.\d GiB .*budget of 0\.5 GiB"):
        spm(moments, 400, options=SPMOptions(memory_budget=2**29))


def test_spm_options_and_gradient_options_are_checked():
    with pytest.raises(ValueError, match="n_starts"):
        SPMOptions(n_starts=0)
    with pytest.raises(ValueError, match=r"lr=0\.1"):
        ot.fit(_cp(3, 6, 2, 0), 2, "spm", schedule=ot.GradientSchedule(lr=0.1))
    with pytest.raises(ValueError, match="rank=2"):
        ot.fit(_cp(3, 6, 2, 0), 2, "spm", extraction=ot.Extraction(rank=2))


@pytest.mark.parametrize("order,dim,rank,width", [(3, 10, 10, 30), (4, 8, 12, 40), (3, 40, 5, 20)])
def test_default_route_takes_spm_when_the_flattening_rank_allows(order, dim, rank, width):
    cp_target = _cp(order, dim, rank, dim + rank)
    dense = ot.DenseTarget(cp_target.truth.to_dense(), truth=cp_target.truth)
    result = ot.fit(dense, width, random_state=0)
    route = result.info["route"]
    assert route["engine"] == "spm" and route["spm"]["rank"] == rank
    assert result.converged and result.cp.rank == rank and result.cp.dim == dim
    assert result.recovery(0.999).recovered == rank
    assert "minimal" in result.info["rank_reduction"]["stop"]


def test_default_route_falls_back_when_spm_cannot_give_the_answer():
    # Width below the rank: SPM would need 5 terms, the over-parameterized fit gets 3.
    # Neither gradient route meets tol with 3 terms: the route returns the better of the
    # shortcuts' and the paper's answers, never worse than engine="paper".
    result = ot.fit(_cp(3, 10, 5, 0), 3, random_state=0, schedule=ot.GradientSchedule(max_steps=300,
                    final_steps=100))
    paper = ot.fit(_cp(3, 10, 5, 0), 3, random_state=0, schedule=ot.GradientSchedule(max_steps=300,
                   final_steps=100), runtime=ot.Runtime(engine="paper"))
    assert result.info["route"]["engine"] in ("shortcuts", "paper")
    assert "width=3" in result.info["route"]["spm"]["skipped"]
    assert result.relative_error <= paper.relative_error
    # Order 2 has no SPM; a non-default optimizer sends the fit to the paper's schedule.
    res2 = ot.fit(_cp(2, 10, 3, 0), 12, random_state=0)
    assert res2.info["route"]["spm"] == {"skipped": "order 2 < 3"} and res2.converged
    res3 = ot.fit(_cp(3, 8, 2, 0), 6, random_state=0, schedule=ot.GradientSchedule(optimizer="adam",
                  max_steps=100))
    assert res3.info["route"]["engine"] == "paper"


def test_paper_engine_reproduces_the_papers_schedule_and_ignores_the_route():
    target = _cp(3, 8, 2, 3)
    paper = ot.fit(target, 6, random_state=3, runtime=ot.Runtime(engine="paper"),
                   schedule=ot.GradientSchedule(max_steps=400, final_steps=100))
    autograd = ot.fit(target, 6, random_state=3, runtime=ot.Runtime(engine="autograd"),
                      schedule=ot.GradientSchedule(max_steps=400, final_steps=100))
    assert paper.info["route"] == {"engine": "paper", "why": "engine='paper'"}
    assert paper.steps == autograd.steps and paper.history  # same decisions, a gradient history


def test_default_route_refuses_a_degenerate_spm_answer_and_the_gradient_route_diagnoses_it():
    # Sym(a^3 b) at order 4 in d = 2: border rank 2, rank 4. SPM with 2 terms meets tol = 1e-4
    # only with two nearly parallel terms of weights ±12.5 (||T|| = 0.5).
    a, b = torch.eye(2, dtype=torch.float64)
    vecs = [a, a, a, b]
    perms = set(itertools.permutations(range(4)))
    T = sum(torch.einsum("i,j,k,l->ijkl", *[vecs[i] for i in p]) for p in perms) / len(perms)
    direct = ot.fit(ot.DenseTarget(T), 2, "spm", random_state=0)
    assert direct.relative_error <= 1e-4 and float(direct.cp.weights.abs().max()) > 10
    result = ot.fit(ot.DenseTarget(T), 2, random_state=0)
    assert result.info["route"]["engine"] != "spm"
    assert "degeneracy" in result.info["route"]["spm"]["skipped"]
    assert not result.converged and "degeneracy" in result.info


def test_cli_fits_by_spm_and_by_the_papers_engine(capsys):
    import json

    from overtensor.cli.main import main

    assert main(["fit", "--order", "4", "--dim", "6", "--rank", "8", "--method", "spm",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "spm" and out["found_rank"] == 8 and out["recovered"] == 8
    assert main(["fit", "--order", "3", "--dim", "8", "--rank", "2", "--width", "6", "--engine",
                 "paper", "--steps", "3000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["route"] == "paper" and out["method"] == "beyond-lazy" and out["converged"]
    assert "kernel_change" not in out  # only with --laziness or a lazy regime


def test_experiments_run_the_papers_schedule():
    from overtensor.experiments.runs import run_fit

    config = {"order": 3, "dim": 8, "rank": 2, "seed": 0, "method": "beyond-lazy",
              "width_factor": 3, "max_steps": 600, "final_steps": 200}
    out = run_fit(config)
    paper = ot.fit(ot.random_target(3, 8, 2, random_state=0), 6, random_state=10_000,
                   schedule=ot.GradientSchedule(max_steps=600, final_steps=200),
                   runtime=ot.Runtime(engine="paper"))
    assert out["steps"] == paper.steps > 10  # gradient steps: the paper's schedule, not SPM


def test_default_route_on_moments_in_high_dimension_works_in_the_span():
    truth = _cp(3, 3000, 4, 9)
    samples = truth.factors.repeat(10, 1) * 4 ** (1 / 3)  # 40 samples on 4 directions
    result = ot.fit(ot.MomentTarget(samples, 3), 16, random_state=0)
    assert result.info["route"]["engine"] == "spm"
    assert result.info["route"]["compressed_dim"] == 4
    assert result.converged and result.cp.dim == 3000
    assert ot.recovery(result.cp, truth.truth, 0.999).recovered == 4


@pytest.mark.parametrize("order,dim,rank,corr,seed", [
    (3, 40, 6, 0.0, 11), (3, 25, 8, 2.0, 12), (4, 12, 5, 0.0, 13), (5, 7, 3, 2.0, 14)])
def test_one_slice_of_a_dense_target_gives_the_span_of_its_components(order, dim, rank, corr,
                                                                       seed):
    from overtensor.tensors.compression import slice_range_basis

    cp_target = _cp(order, dim, rank, seed, corr)
    dense = ot.DenseTarget(cp_target.truth.to_dense())
    Q, sv = slice_range_basis(dense, random_state=seed)
    assert Q.shape == (dim, rank) and torch.allclose(Q.T @ Q, torch.eye(rank, dtype=Q.dtype),
                                                     atol=1e-12)
    U = cp_target.factors
    assert float((U - U @ Q @ Q.T).norm()) <= 1e-8 * rank  # every component lies in span(Q)
    sv = sv / sv[0]
    assert float(sv[rank - 1]) > 1e-8 and float(sv[rank:].max()) < 1e-10
    # A cap below the span's dimension, and a full-rank array, give no basis.
    assert slice_range_basis(dense, random_state=seed, max_rank=rank - 1)[0] is None
    base = torch.randn((dim,) * order, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)
    noisy = sum(base.permute(p) for p in itertools.permutations(range(order)))
    assert slice_range_basis(ot.DenseTarget(noisy), random_state=seed)[0] is None


@pytest.mark.parametrize("kind", ["dense", "cp"])
def test_spm_error_computed_in_the_core_is_the_error_against_the_target(kind):
    # Asked for 3 of 5 terms: the error is large, so the core's formula is really exercised.
    cp_target = _cp(3, 30, 5, 21)
    target = (ot.DenseTarget(cp_target.truth.to_dense()) if kind == "dense" else cp_target)
    flattening = spm(target, None, generator=0).info["spm"]["singular_values"]
    result = spm(target, 3, generator=0)
    assert result.info["spm"]["dim"] == 5  # compressed
    direct = ot.cp_relative_error(result.cp, target)
    assert 0.05 < direct < 0.9
    assert result.relative_error == pytest.approx(direct, rel=1e-9)
    # Eckart–Young: no 3 terms do better than the flattening's two smallest singular values.
    assert direct >= math.sqrt(sum(s * s for s in flattening[3:])) * (1 - 1e-9)


@pytest.mark.parametrize("order,dim,rank,corr", [(3, 20, 6, 0.0), (3, 30, 10, 2.0), (4, 10, 12, 0.0)])
def test_default_route_stops_the_power_iterations_at_what_tol_needs(order, dim, rank, corr):
    target = _cp(order, dim, rank, 30 + dim, corr)
    routed = ot.fit(target, 3 * rank, random_state=1)
    reference = ot.fit(target, rank, "spm", random_state=1)  # the reference's 1e-13 rule
    assert routed.info["route"]["engine"] == "spm"
    assert routed.steps < reference.steps  # fewer power iterations ...
    # ... and still an answer orders of magnitude inside tol = 1e-4 with every component.
    assert routed.relative_error <= 1e-6 and routed.recovery(0.999).recovered == rank
    # A smaller tol iterates further (to route.SPM_CONV_FACTOR·1e-6), still by SPM.
    tight = ot.fit(target, 3 * rank, random_state=1, tol=1e-6)
    assert tight.info["route"]["engine"] == "spm"
    assert routed.steps < tight.steps <= reference.steps


@pytest.mark.parametrize("order,dim,rank", [(3, 20, 3), (4, 12, 5)])
def test_default_route_reads_a_float32_dense_target_at_its_own_precision(order, dim, rank):
    # The float32 rounding of the array is not rank: the span and the flattening are found at
    # the data's precision (overtensor.precision.rank_rtol), so SPM answers in the span.
    truth = ot.random_target(order, dim, rank, random_state=dim).truth
    target = ot.DenseTarget(truth.to_dense().float())
    result = ot.fit(target, 4 * rank, random_state=0)
    route = result.info["route"]
    assert route["engine"] == "spm" and route["compressed_dim"] == rank
    assert result.cp.weights.dtype == torch.float32 and result.converged
    assert ot.recovery(result.cp, truth, 0.999).recovered == rank


def test_a_fallback_says_why_the_subspace_power_method_did_not_answer():
    target = _cp(3, 6, 9, 5)  # overcomplete: 9 terms in dimension 6
    result = ot.fit(target, 27, random_state=0, schedule=ot.GradientSchedule(max_steps=300))
    route = result.info["route"]
    assert route["engine"] != "spm" and route["spm"]["rank"] == 6
    assert route["spm"]["skipped"].endswith("> tol=0.0001")
    assert route["why"].startswith(f"SPM did not answer ({route['spm']['skipped']}); ")
