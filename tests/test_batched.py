"""Batched engine: B fits advancing together equal B one-by-one fits, run by run."""

from __future__ import annotations

import math

import pytest
import torch

import overtensor as ot
from overtensor.precision import EXACT
from overtensor.tensors.batched import TargetBatch, fit_batched
from overtensor.tensors.config import split_options
from overtensor.tensors.gradients import loss_and_grad
from overtensor.tensors.loss import half_sq_distance
from overtensor.tensors.models import balanced_signs, init_params, model_cp


def _one_by_one(targets, width, method, seeds, **options):
    out = []
    for b, (target, seed) in enumerate(zip(targets, seeds, strict=True)):
        opts = {k: (v[b] if isinstance(v, list) else v) for k, v in options.items()}
        try:
            out.append(ot.fit(target, width, method, random_state=seed,
                              **split_options({**opts, "engine": "autograd"})))
        except ot.DivergenceError as exc:
            out.append(exc)
    return out


def _close(x, y, rel=1e-6, abs_=EXACT):
    # abs_: two errors of an exact fit both sit at the float64 floor of the Gram identity, where
    # their values are rounding (overtensor.precision); EXACT is ten times that floor.
    return math.isclose(x, y, rel_tol=rel, abs_tol=abs_)


def _assert_same_fit(batched, single):
    """Every metric agrees: discrete ones exactly, errors to float64 rounding of the Gram identity
    (whose floor is ~1e-8 relative), parameters to 1e-9."""
    assert isinstance(batched, ot.FitResult) and isinstance(single, ot.FitResult)
    s1, s2 = batched.summary(), single.summary()
    assert s1.keys() == s2.keys()
    for key in s1:
        if key.startswith("seconds") or key == "threads":  # timings, not results
            continue
        if isinstance(s1[key], float):
            assert _close(s1[key], s2[key]), (key, s1[key], s2[key])
        else:
            assert s1[key] == s2[key], (key, s1[key], s2[key])
    assert len(batched.history) == len(single.history)
    for h1, h2 in zip(batched.history, single.history, strict=True):
        assert (h1["step"], h1["epoch"], h1["phase"], h1["weight_decay"]) == (
            h2["step"], h2["epoch"], h2["phase"], h2["weight_decay"])
        assert _close(h1["relative_error"], h2["relative_error"])
        assert _close(h1["loss"], h2["loss"], rel=1e-9, abs_=1e-12)
        assert _close(h1["laziness"], h2["laziness"], rel=1e-9)
    for k in single.params:
        torch.testing.assert_close(batched.params[k], single.params[k], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(batched.cp.weights, single.cp.weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["plain", "homogeneous", "coefficients"])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_closed_form_gradient_equals_autograd_for_every_model(model, order):
    gen = torch.Generator().manual_seed(order)
    B, m, d, r = 3, 5, 6, 2
    target = ot.CPTarget(torch.rand(B, r, generator=gen, dtype=torch.float64) + 0.5,
                         torch.randn(B, r, d, generator=gen, dtype=torch.float64), order)
    params = init_params(model, m, d, 0.8, gen, torch.float64, "cpu", (B,))
    if model == "coefficients":
        params["c"] = torch.randn(B, m, generator=gen, dtype=torch.float64)
    signs = None if model == "coefficients" else balanced_signs(m, True, torch.float64, "cpu", (B,))
    sq = target.sq_norm()
    scale = 1 / sq.sqrt()
    mu = torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    a, V = model_cp(model, leaves, signs)
    loss = half_sq_distance(a, V, target, scale, sq) + 0.5 * mu * (leaves["W"] ** 2).sum((-1, -2))
    loss.sum().backward()
    closed_loss, grads = loss_and_grad(model, params, signs, target, scale, sq, mu)
    torch.testing.assert_close(closed_loss, loss.detach(), rtol=1e-10, atol=1e-14)
    for k, leaf in leaves.items():
        torch.testing.assert_close(grads[k], leaf.grad, rtol=1e-10, atol=1e-14)


def test_batched_beyond_lazy_equals_one_by_one_with_per_run_hyperparameters():
    targets = [ot.random_target(3, 20, 3, random_state=s) for s in range(3)]
    seeds = [10, 11, 12]
    options = dict(weight_decay=[1e-3, 2e-3, 5e-4], lr=[0.125, 0.1, 0.08],
                   init_scale=[1e-3, 3e-3, 1e-3])
    batched = fit_batched(targets, 9, "beyond-lazy", random_states=seeds, **options)
    single = _one_by_one(targets, 9, "beyond-lazy", seeds, **options)
    for b, s in zip(batched, single, strict=True):
        _assert_same_fit(b, s)
    assert all(r.converged for r in batched)


def test_batched_even_order_with_negative_weights_equals_one_by_one():
    # Balanced signs and the re-initialization/flip logic at epoch ends, order 4.
    targets = [ot.random_target(4, 10, 2, weights=[1.0, -0.7], random_state=s) for s in range(2)]
    seeds = [3, 4]
    batched = fit_batched(targets, 8, random_states=seeds, max_steps=2000)
    single = _one_by_one(targets, 8, "beyond-lazy", seeds, max_steps=2000)
    for b, s in zip(batched, single, strict=True):
        _assert_same_fit(b, s)


@pytest.mark.parametrize("method,width", [("exact-rank", None), ("gd", 6)])
def test_batched_baselines_equal_one_by_one(method, width):
    targets = [ot.random_target(3, 12, 3, weights="geometric", random_state=s) for s in range(3)]
    seeds = [1, 2, 3]
    batched = fit_batched(targets, width, method, random_states=seeds, max_steps=800)
    single = _one_by_one(targets, width, method, seeds, max_steps=800)
    for b, s in zip(batched, single, strict=True):
        _assert_same_fit(b, s)


def test_each_run_stops_on_its_own_schedule_and_is_frozen_after():
    # Different budgets, evaluation periods, epoch lengths and growth: the runs evaluate at
    # different steps and end at different times; each equals its one-by-one fit.
    # The last run never stops on tol (tol = 0). It is not polished: a polished exact fit ends at
    # the float64 floor of the Gram identity (overtensor.precision), where whether its error
    # rounds to 0 -- and so `converged = error <= 0` -- is decided by rounding, which differs
    # between the batched and the single engine. Unpolished, its error (~1e-6) is far from 0.
    targets = [ot.random_target(3, 15, 2, random_state=s) for s in range(4)]
    seeds = [5, 6, 7, 8]
    options = dict(max_steps=[150, 3000, 700, 3000], eval_every=[50, 30, 7, 50],
                   epoch_steps=[200, 90, 60, 40], epoch_growth=[1.0, 1.0, 1.5, 1.2],
                   tol=[1e-4, 1e-6, 1e-4, 0.0], patience=[5, 5, 5, 2], final_steps=[10, 10, 10, 100],
                   extract=[True, True, True, False])
    batched = fit_batched(targets, 6, random_states=seeds, **options)
    single = _one_by_one(targets, 6, "beyond-lazy", seeds, **options)
    for b, s in zip(batched, single, strict=True):
        _assert_same_fit(b, s)
    assert batched[0].steps == 150 and batched[0].stop_reason == "max_steps"
    assert len({r.steps for r in batched}) >= 3
    assert batched[3].relative_error > EXACT and not batched[3].converged


def test_diverged_run_is_reported_and_the_others_go_on():
    targets = [ot.random_target(3, 12, 2, random_state=s) for s in range(3)]
    seeds = [1, 2, 3]
    options = dict(lr=[0.125, 1e3, 0.125], max_steps=1500)
    batched = fit_batched(targets, 6, random_states=seeds, **options)
    single = _one_by_one(targets, 6, "beyond-lazy", seeds, **options)
    assert isinstance(batched[1], ot.DivergenceError)
    assert isinstance(single[1], ot.DivergenceError)
    assert str(batched[1]) == str(single[1])
    _assert_same_fit(batched[0], single[0])
    _assert_same_fit(batched[2], single[2])


def test_callback_stops_only_its_run_and_recorders_see_each_run():
    targets = [ot.random_target(3, 12, 2, random_state=s) for s in range(2)]
    seen = set()

    def stop_run_zero(record, state):
        seen.add(state.extra["run"])
        return state.extra["run"] == 0 and record["step"] >= 100

    def norm(state):
        return {"norm_w": float(state.params["W"].norm())}

    batched = fit_batched(targets, 6, random_states=[0, 1], callback=stop_run_zero,
                          recorders=[norm], max_steps=600)
    assert seen == {0, 1}
    assert batched[0].stop_reason == "callback" and batched[0].steps == 100
    assert batched[1].steps > 100
    single = ot.fit(targets[1], 6, random_state=1, recorders=[norm],
                    schedule=ot.GradientSchedule(max_steps=600),
                    runtime=ot.Runtime(engine="autograd"))
    _assert_same_fit(batched[1], single)
    assert [h["norm_w"] for h in batched[1].history] == pytest.approx(
        [h["norm_w"] for h in single.history], rel=1e-9)


def test_targets_that_do_not_stack_are_served_run_by_run():
    # A dense target and CP targets of different ranks: no stacked fast path, same results.
    dense = ot.random_target(3, 8, 2, noise=0.01, random_state=0)
    targets = [dense, ot.random_target(3, 8, 1, random_state=1),
               ot.random_target(3, 8, 3, random_state=2)]
    assert TargetBatch([t for t in targets])._cp is None
    seeds = [4, 5, 6]
    batched = fit_batched(targets, 6, random_states=seeds, max_steps=1000)
    single = _one_by_one(targets, 6, "beyond-lazy", seeds, max_steps=1000)
    for b, s in zip(batched, single, strict=True):
        _assert_same_fit(b, s)


def test_batched_run_function_gives_the_metrics_of_run_fit():
    from overtensor.experiments.catalog import get_batched, get_run
    from overtensor.experiments.spec import expand

    run_fit = get_run("fit")
    batched_fn, key = get_batched("fit")
    configs = expand({"fixed": {"order": 3, "dim": 15, "rank": 2, "method": "beyond-lazy",
                                "width_factor": 3, "eps": 1e-3},
                      "grid": {"weight_decay": [1e-3, 2e-3]}, "seeds": 2})
    assert len({key(c) for c in configs}) == 1
    assert key(configs[0]) != key({**configs[0], "dim": 16})
    for got, config in zip(batched_fn(configs), configs, strict=True):
        want = run_fit(config)
        assert got.keys() == want.keys()
        for k in want:
            if k in ("time_to_eps", "history", "threads") or k.startswith("seconds"):
                continue
            if isinstance(want[k], float):
                assert _close(got[k], want[k]), (k, got[k], want[k])
            else:
                assert got[k] == want[k], (k, got[k], want[k])
        assert [h["step"] for h in got["history"]] == [h["step"] for h in want["history"]]


@pytest.mark.parametrize("kwargs,name", [
    (dict(width=[6, 7]), "width"),
    (dict(optimizer="adam"), "optimizer"),
    (dict(momentum=0.9), "momentum"),
    (dict(random_states=[0]), "random_states"),
    (dict(lr=[0.1, 0.1, 0.1]), "lr"),
    (dict(method="power-method"), "method"),
])
def test_bad_batched_input_is_refused_with_the_argument_named(kwargs, name):
    targets = [ot.random_target(3, 8, 2, random_state=s) for s in range(2)]
    args = dict(width=6, random_states=[0, 1])
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        fit_batched(targets, **args)


def test_targets_of_different_dimensions_are_refused():
    targets = [ot.random_target(3, 8, 2, random_state=0), ot.random_target(3, 9, 2, random_state=1)]
    with pytest.raises(ValueError, match="dim"):
        fit_batched(targets, 6, random_states=[0, 1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_fits_run_on_cuda_in_float32_by_default():
    targets = [ot.random_target(3, 20, 3, random_state=s, device="cuda") for s in range(4)]
    results = fit_batched(targets, 9, random_states=range(4), tol=1e-3)
    for r in results:
        assert r.params["W"].device.type == "cuda" and r.params["W"].dtype == torch.float32
        assert r.relative_error <= 1e-3


def test_a_runs_result_does_not_depend_on_the_batch_it_is_in():
    # Runs are independent slices of every batched product, so a run's numbers are the same
    # (bitwise, on one CPU thread) alone, in a small batch or in a batch of several tiles.
    targets = [ot.random_target(3, 20, 3, random_state=s) for s in range(40)]
    alone = fit_batched(targets[:1], 9, random_states=[0], max_steps=600)[0]
    for batch in (5, 40):
        inside = fit_batched(targets[:batch], 9, random_states=list(range(batch)), max_steps=600)[0]
        assert torch.equal(inside.params["W"], alone.params["W"])
        assert inside.relative_error == alone.relative_error
        assert [h["relative_error"] for h in inside.history] == [
            h["relative_error"] for h in alone.history]


def test_batched_deflation_takes_the_same_epoch_decisions_as_fit():
    # The deflation method ends its main phase after an epoch count derived from tol
    # (main_epochs="auto"): the batched engine must apply it too.
    targets = [ot.random_target(order=4, dim=20, rank=3, components="orthonormal",
                                weights=[1.0, 0.5, 0.25], random_state=s) for s in range(2)]
    batched = ot.fit_batched(targets, 10, "deflation", random_states=[0, 1], max_steps=3000,
                             final_steps=500)
    for seed, (target, rb) in enumerate(zip(targets, batched, strict=True)):
        r1 = ot.fit(target, 10, "deflation", random_state=seed,
                    schedule=ot.GradientSchedule(max_steps=3000, final_steps=500),
                    runtime=ot.Runtime(engine="autograd"))
        assert rb.steps == r1.steps
        assert [h["phase"] for h in rb.history] == [h["phase"] for h in r1.history]
        assert rb.relative_error <= 1e-4 and r1.relative_error <= 1e-4


def test_heavy_duplicate_merges_take_the_same_decisions_in_both_engines():
    # Order 3, m = 8 on 5 components (issue 10, item 9): heavy duplicated rows are merged and
    # re-drawn at epoch ends (restart_rows); both engines must take the same decisions, and a
    # rank-capped extraction must agree too.
    target = ot.random_target(3, 40, 5, random_state=701)
    for rank in (None, 4):
        batched = fit_batched([target], 8, random_states=[901], rank=rank)[0]
        single = ot.fit(target, 8, random_state=901, runtime=ot.Runtime(engine="autograd"),
                        extraction=ot.Extraction(rank=rank))
        _assert_same_fit(batched, single)
        assert batched.cp.rank == (5 if rank is None else 4)
