"""The ``lazy-lower-bound`` and ``width-vs-dimension`` experiments: run functions, aggregation, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import overtensor as ot
from overtensor.experiments.catalog import get_experiment
from overtensor.experiments.lazy_lower_bound import run_lazy_lower_bound
from overtensor.experiments.spec import expand, run_inprocess
from overtensor.experiments.width_vs_dimension import (
    fitted_slopes,
    lazy_min_width,
    quantile_widths,
    run_width_vs_dimension,
    width_ladder,
)


def test_lazy_lower_bound_run_is_high_below_and_zero_at_the_threshold():
    base = {"order": 3, "dim": 8, "rank": 1, "seed": 0, "full_seeds": 0}
    below = run_lazy_lower_bound({**base, "md_ratio": 0.5})
    at = run_lazy_lower_bound({**base, "md_ratio": 1.0})
    assert below["width"] == 8 and at["width"] == 15 and at["sym_dim"] == 120
    assert below["lazy_error"] > 0.3 and at["lazy_error"] < 1e-6
    assert at["tangent_dim"] == 120 and below["tangent_dim"] == 64
    assert below["rf_error"] > below["lazy_error"] and below["full_error"] is None
    assert run_lazy_lower_bound({**base, "md_ratio": 1.0, "dims_by_order": {"3": [12]}}) == {"skipped": True}


def test_lazy_lower_bound_runs_the_full_regime_for_the_first_seeds():
    out = run_lazy_lower_bound({"order": 3, "dim": 8, "rank": 1, "md_ratio": 0.3, "seed": 0,
                                "full_seeds": 1, "full_max_steps": 1500})
    assert out["lazy_error"] > 0.5 and out["full_error"] <= 1e-3


def test_lazy_min_width_is_the_symmetric_dimension_threshold():
    target = ot.random_target(3, 8, 2, random_state=0)
    m, info = lazy_min_width(target, 1e-2, torch.Generator().manual_seed(1), max_width=30)
    assert m == 15
    assert info["error_at_min_width"] <= 1e-2 < info["error_below_min_width"]
    assert info["unconverged_solves"] == 0


def test_width_ladder_starts_at_rank_and_is_increasing():
    ladder = width_ladder(3, 40)
    assert ladder[:4] == [3, 4, 5, 6] and ladder == sorted(set(ladder)) and ladder[-1] <= 40
    assert 24 in ladder and max(ladder) > 24


def test_width_vs_dimension_runs_for_both_regimes():
    lazy = run_width_vs_dimension({"regime": "lazy", "dim": 10, "rank": 3, "seed": 0})
    assert lazy["min_width"] == lazy["lazy_threshold_width"] == 22
    skipped = run_width_vs_dimension({"regime": "lazy", "dim": 50, "rank": 3, "seed": 0, "lazy_max_dim": 40})
    assert skipped["skipped"] is True
    bl = run_width_vs_dimension({"regime": "beyond-lazy", "dim": 20, "rank": 2, "seed": 0,
                                 "max_steps": 2000})
    assert bl["min_width"] is not None and 2 <= bl["min_width"] <= 8 and bl["error_at_min_width"] <= 1e-2
    with pytest.raises(ValueError, match="regime must be"):
        run_width_vs_dimension({"regime": "ntk", "dim": 10, "rank": 3, "seed": 0})


def test_quantile_width_counts_failed_seeds_as_infinite_and_slopes_recover_powers():
    rows = [{"regime": "beyond-lazy", "dim": 10, "seed": s, "min_width": w, "lazy_threshold_width": 22}
            for s, w in enumerate([3] * 8 + [5, None])]
    widths = quantile_widths(pd.DataFrame(rows))
    assert widths["width"].iloc[0] == 5 and widths["succeeded"].iloc[0] == 9
    rows = [{"regime": "beyond-lazy", "dim": 10, "seed": s, "min_width": w, "lazy_threshold_width": 22}
            for s, w in enumerate([3] * 7 + [5, None, None])]
    assert np.isinf(quantile_widths(pd.DataFrame(rows))["width"].iloc[0])
    synth = pd.DataFrame([{"regime": r, "dim": d, "width": (d**2 / 6 if r == "lazy" else 4.0)}
                          for r in ("lazy", "beyond-lazy") for d in (10, 20, 40, 80)])
    slopes = fitted_slopes(synth)
    assert abs(slopes["lazy"] - 2) < 1e-12 and abs(slopes["beyond-lazy"]) < 1e-12


@pytest.mark.parametrize("name", ["lazy-lower-bound", "width-vs-dimension"])
def test_experiment_presets_expand_and_reference_registered_runs(name):
    exp = get_experiment(name)
    assert set(exp.presets) >= {"small", "full"}
    for spec in exp.presets.values():
        configs = expand(spec)
        assert configs and all("seed" in c for c in configs)
        assert len(expand(exp.presets["full"])) >= len(expand(exp.presets["small"]))


def test_tiny_sweeps_write_figures_and_summaries(tmp_path):
    llb = get_experiment("lazy-lower-bound")
    spec = {**llb.presets["small"], "grid": {"order": [3], "dim": [6, 8], "rank": [1],
                                             "md_ratio": [0.3, 1.0]}, "seeds": 1,
            "fixed": {"full_seeds": 0}}
    df = run_inprocess(spec)
    text = llb.summary(df)
    assert "threshold m" in text and "lazy-lower-bound" in text
    paths = llb.figures(df, tmp_path)
    assert {p.suffix for p in paths} == {".png", ".svg"} and all(p.stat().st_size > 1000 for p in paths)

    wvd = get_experiment("width-vs-dimension")
    spec = {**wvd.presets["small"], "grid": {"regime": ["lazy", "beyond-lazy"], "dim": [8, 12]},
            "seeds": 1, "fixed": {"order": 3, "rank": 2, "eps": 1e-2, "max_steps": 1500}}
    df = run_inprocess(spec)
    text = wvd.summary(df)
    assert "fitted log-log slope, lazy" in text and "fitted log-log slope, beyond-lazy" in text
    paths = wvd.figures(df, tmp_path)
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.exists() for p in paths)
