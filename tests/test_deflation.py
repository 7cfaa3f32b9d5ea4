"""The deflation process: per-component fitted mass, fit times and their order, the method."""

import math

import pytest
import torch

import overtensor as ot
from overtensor.precision import EXACT
from overtensor.tensors.component_mass import (
    MassRecorder,
    assign_components,
    component_mass,
    crossing_steps,
    fit_order,
    is_strictly_ordered,
    time_ratios,
)
from overtensor.tensors.deflation_schedule import deflation_epochs, escape_time
from overtensor.tensors.methods import METHOD_DEFAULTS


def _orthonormal(d, r, seed=0):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, r, generator=gen, dtype=torch.float64))
    return Q.T.contiguous()


# Fitted mass ------------------------------------------------------------------------------------

def test_mass_is_one_for_an_exact_fit_and_zero_for_an_empty_model():
    U = _orthonormal(8, 3)
    lam = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    torch.testing.assert_close(component_mass(lam, U, lam, U, 4), torch.ones(3, dtype=torch.float64))
    zero = component_mass(torch.zeros(3, dtype=torch.float64), U, lam, U, 4)
    assert torch.equal(zero, torch.zeros(3, dtype=torch.float64))


def test_mass_adds_split_rows_and_weights_misaligned_rows_by_cos_power():
    basis = _orthonormal(8, 3)
    U, e = basis[:2], basis[2]
    lam = torch.tensor([1.0, 0.5], dtype=torch.float64)
    # u_1 split over two rows of coefficient 0.3; u_2 fitted by a unit row at angle 0.3 rad.
    tilted = math.cos(0.3) * U[1] + math.sin(0.3) * e
    V = torch.stack([U[0], U[0], tilted])
    a = torch.tensor([0.3, 0.3, 0.5], dtype=torch.float64)
    mass = component_mass(a, V, lam, U, 3)
    assert mass[0].item() == pytest.approx(0.6, abs=1e-12)
    assert mass[1].item() == pytest.approx(0.5 * math.cos(0.3) ** 3 / 0.5, abs=1e-12)


def test_rows_are_assigned_to_the_component_with_largest_abs_cos():
    U = _orthonormal(5, 3)
    V = torch.stack([-0.9 * U[2] + 0.1 * U[0], U[1] + 0.5 * U[0], 2.0 * U[0]])
    assert assign_components(V, U).tolist() == [2, 1, 0]


def test_crossing_steps_order_and_ratios_from_a_history():
    history = [{"step": s, "mass": m} for s, m in [
        (10, [0.1, 0.0, 0.0]), (20, [0.6, 0.0, 0.0]), (30, [1.0, 0.2, 0.0]),
        (40, [1.0, 0.7, 0.0]), (60, [1.0, 1.0, 0.4]),
    ]]
    t50 = crossing_steps(history, 0.5)
    assert t50[:2] == [20.0, 40.0] and math.isnan(t50[2])
    assert crossing_steps(history, 0.99)[:2] == [30.0, 60.0]
    assert fit_order(t50) == [0, 1]
    assert not is_strictly_ordered(t50)  # the third component was never fitted
    assert is_strictly_ordered([20.0, 40.0, 80.0]) and not is_strictly_ordered([40.0, 20.0, 80.0])
    assert time_ratios([20.0, 40.0, 100.0]) == [2.0, 2.5]
    with pytest.raises(ValueError, match="mass"):
        crossing_steps([{"step": 1}])


def test_mass_recorder_needs_known_components():
    dense = ot.DenseTarget(ot.random_target(order=3, dim=4, rank=2, random_state=0).truth.to_dense())
    with pytest.raises(ValueError, match="truth"):
        MassRecorder(dense)


# The deflation process ---------------------------------------------------------------------------

def _staircase(order, dim, seed, **kw):
    target = ot.random_target(order=order, dim=dim, rank=4, components="orthonormal", weights=0.5,
                              random_state=seed)
    result = ot.fit(target, width=30, method="deflation", random_state=seed, tol=1e-6,
                    recorders=[MassRecorder(target)],
                    schedule=ot.GradientSchedule(**{"lr": 0.05, "eval_every": 5, "max_steps": 3000,
                                                    "final_steps": 500, **kw}))
    return target, result


def test_orthogonal_order4_components_are_fitted_in_decreasing_weight_order_at_times_like_1_over_weight():
    _, result = _staircase(4, 20, seed=0)
    t50 = crossing_steps(result.history, 0.5)
    assert is_strictly_ordered(t50)
    # Weights halve from one component to the next: fit times roughly double (docs/theory/tensors.md §5).
    for ratio in time_ratios(t50):
        assert 1.3 < ratio < 3.5
    first = result.history[0]["mass"]
    assert max(first) < 0.05  # starts from (almost) nothing
    assert min(result.history[-1]["mass"]) > 0.99
    assert result.relative_error < 1e-6


def test_recorded_mass_uses_the_normalized_scale():
    # Weights 100x larger: the normalized loop and the mass definition must not see the scale.
    target = ot.random_target(order=4, dim=15, rank=3, components="orthonormal", weights=0.5,
                              random_state=1)
    big = ot.CPTarget(100.0 * target.weights, target.factors, 4)
    masses = []
    for t in (target, big):
        res = ot.fit(t, width=20, method="deflation", random_state=0, tol=1e-6,
                     recorders=[MassRecorder(t)], schedule=ot.GradientSchedule(lr=0.05,
                     eval_every=5, max_steps=600, final_steps=100))
        masses.append(torch.tensor(res.history[-1]["mass"]))
    torch.testing.assert_close(masses[0], masses[1], rtol=0, atol=1e-8)


def test_main_phase_ends_after_main_epochs_then_weight_decay_is_zero():
    target = ot.random_target(order=4, dim=10, rank=2, components="orthonormal", random_state=0)
    res = ot.fit(target, width=10, method="deflation", tol=0.0, random_state=0,
                 schedule=ot.GradientSchedule(main_epochs=2, epoch_steps=20, eval_every=10,
                 max_steps=400))
    final = [h for h in res.history if h["phase"] == "final"]
    main = [h for h in res.history if h["phase"] == "main"]
    # Epochs of 20 then 40 steps (γ = 2): the main phase covers the first 60 steps.
    assert max(h["step"] for h in main) == 60
    assert final and all(h["weight_decay"] == 0.0 for h in final)


def test_deflation_defaults_are_geometric_epochs_with_reinitialization():
    d = METHOD_DEFAULTS["deflation"]
    assert d["epoch_growth"] == 2.0 and d["model"] == "homogeneous"
    assert d["reinit_threshold"] == "half-init" and d["main_epochs"] == "auto"


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_main_epochs_raises_value_error(bad):
    target = ot.random_target(order=3, dim=5, rank=2, random_state=0)
    with pytest.raises(ValueError, match="main_epochs"):
        ot.fit(target, width=4, method="deflation", schedule=ot.GradientSchedule(main_epochs=bad))


# Epochs from ε -----------------------------------------------------------------------------------

def test_escape_time_scales_like_inverse_weight_and_dimension_power():
    # Order 4: d^{(l-2)/2} / (l(l-2)λ) = d/(8λ), plus the log-growth of the norm.
    assert escape_time(4, 100, 0.1, 1e-3) == pytest.approx(100 / 0.8 + math.log(1e5) / 0.4)
    assert escape_time(3, 100, 0.1, 1e-3) == pytest.approx(10 / 0.3 + math.log(1e5) / 0.4)
    assert escape_time(4, 50, 0.01) > 9 * escape_time(4, 50, 0.1)


def test_deflation_epochs_cover_the_escape_time_of_an_eps_weight_component():
    kw = dict(init_scale=1e-3, epoch_steps=50, epoch_growth=2.0, lr=0.1)
    S = deflation_epochs(4, 20, 1e-2, **kw)
    need = escape_time(4, 20, 1e-2, 1e-3) / 0.1
    assert 50 * (2**S - 1) >= need > 50 * (2 ** (S - 1) - 1)
    assert deflation_epochs(4, 20, 1e-3, **kw) > S  # smaller ε, more epochs
    # The step budget caps the main phase (room for the final phase): 50+100+200 <= 400 < 750.
    assert deflation_epochs(4, 20, 1e-3, main_budget=400, **kw) == 3


# Experiment --------------------------------------------------------------------------------------

def test_experiment_run_reports_fit_times_and_curves(tmp_path):
    import pandas as pd

    from overtensor.experiments.catalog import get_experiment, get_run
    from overtensor.experiments.deflation import figures, run_deflation, summary

    assert get_run("deflation") is run_deflation
    assert {"small", "full"} <= set(get_experiment("deflation").presets)
    cfg = dict(scenario="orth4-geo", dim=12, rank=3, width=15, variant="deflation", seed=0,
               lr=0.05, eval_every=5, max_steps=1500, final_steps=200)
    rows = [{**cfg, **run_deflation(cfg)}, {**cfg, "variant": "no-reinit",
                                           **run_deflation({**cfg, "variant": "no-reinit"})}]
    out = rows[0]
    assert out["ordered"] and out["fit_order"] == "123" and out["unfitted"] == 0
    assert out["t50_1"] < out["t50_2"] < out["t50_3"]
    assert out["weight_ratio_1"] == pytest.approx(2.0)
    assert len(out["curve_step"]) == len(out["curve_mass"]) == len(out["curve_error"])
    df = pd.DataFrame(rows)
    text = summary(df)
    assert "orth4-geo" in text and "no-reinit" in text
    paths = figures(df, tmp_path)
    assert {p.name for p in paths} >= {"staircase.png", "staircase.svg", "fit_times.png"}
    assert all(p.stat().st_size > 0 for p in paths)


def test_experiment_power_method_variant_reports_extraction_order():
    from overtensor.experiments.deflation import run_deflation

    out = run_deflation(dict(scenario="orth4-geo", dim=15, variant="power-method", seed=1))
    assert out["ordered"] and out["fit_order"] == "12345"
    # Exact to working precision (overtensor.precision): the Gram identity resolves no less.
    assert out["relative_error"] <= EXACT and out["all_recovered"]
