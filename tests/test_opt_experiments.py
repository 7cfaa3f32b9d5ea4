"""The three OPT experiments: run functions on tiny configs, claims and figures."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from overtensor.experiments.catalog import get_experiment
from overtensor.experiments.opt_energy import claims as energy_claims
from overtensor.experiments.opt_energy import run_opt_energy
from overtensor.experiments.opt_expressivity import claims as expressivity_claims
from overtensor.experiments.opt_expressivity import min_widths, run_opt_expressivity
from overtensor.experiments.opt_generalization import claims as generalization_claims
from overtensor.experiments.opt_generalization import run_opt_generalization


def test_opt_experiments_are_registered_with_presets_and_claims():
    for name in ("opt-energy", "opt-generalization", "opt-expressivity"):
        exp = get_experiment(name)
        assert {"small", "full"} <= set(exp.presets) and exp.claims is not None


@pytest.mark.parametrize("model", ["tensor", "network"])
def test_opt_energy_keeps_the_energy_under_orthogonal_only(model):
    fixed = {"dim": 4, "rank": 2, "width": 8, "steps": 60, "eval_every": 20, "lr": 0.02,
             "batch": 50, "model": model, "seed": 0}
    rows = [{**fixed, "regime": r, **run_opt_energy({**fixed, "regime": r})}
            for r in ("full", "random-features", "orthogonal")]
    df = pd.DataFrame(rows)
    orth = df[df["regime"] == "orthogonal"].iloc[0]
    assert orth["steps"][0] == 0 and orth["final_risk"] < orth["initial_risk"]
    assert orth["energy_s1_max_change"] <= 1e-10
    [claim] = energy_claims(df)
    assert claim.verdict == "supported", claim.reason


def test_opt_generalization_run_reports_accuracy_energy_and_time():
    cfg = {"variant": "opt-riemannian", "seed": 0, "hidden": 32, "epochs": 2, "batch": 128,
           "lr": 0.05, "momentum": 0.9, "test_size": 0.3}
    out = run_opt_generalization(cfg)
    assert 0.5 < out["test_accuracy"] <= 1.0  # 10 classes: far above chance after 2 epochs
    assert out["energy_s1_change"] < 1e-5 and out["orthogonality_error"] < 1e-4
    assert out["seconds_per_epoch"] > 0 and len(out["test_accuracy_curve"]) == 2


def _gen_df(opt_mean, std_mean, sd=0.005, n=5):
    rows = []
    for v, mean in (("standard", std_mean), ("opt-cayley", opt_mean), ("opt-lowdin", opt_mean)):
        for s in range(n):
            rows.append({"variant": v, "seed": s, "test_accuracy": mean + sd * (s - 2) / 2,
                         "train_accuracy": 1.0, "energy_s1": 1.0,
                         "energy_s1_change": 1e-3 if v == "standard" else 1e-8,
                         "seconds_per_epoch": 0.1,
                         "orthogonality_error": None if v == "standard" else 1e-6})
    return pd.DataFrame(rows)


def test_opt_generalization_claim_follows_the_numbers_either_way():
    assert generalization_claims(_gen_df(0.98, 0.95))[0].verdict == "supported"
    assert generalization_claims(_gen_df(0.95, 0.98))[0].verdict == "not supported"
    assert generalization_claims(_gen_df(0.9701, 0.97))[0].verdict == "inconclusive"  # noise
    assert generalization_claims(_gen_df(0.97, 0.9701))[0].verdict == "not supported"
    assert generalization_claims(_gen_df(0.98, 0.95))[1].verdict == "supported"


def test_opt_expressivity_min_width_and_claim():
    rows = []
    for regime, first in (("full", 2), ("orthogonal", 6), ("random-features", 10)):
        for w in (2, 6, 10):
            for seed in (0, 1):
                rows.append({"order": 2, "regime": regime, "width": w, "seed": seed,
                             "reached": w >= first, "error": 0.0, "sym_dim": 10})
    df = pd.DataFrame(rows)
    t = min_widths(df).set_index("regime")
    assert t.loc["orthogonal", "min_width"] == 6 and t.loc["full", "min_width"] == 2
    assert expressivity_claims(df)[0].verdict == "supported"
    late = df.assign(reached=df["reached"] & ~((df["regime"] == "orthogonal") & (df["width"] < 12)))
    assert expressivity_claims(late)[0].verdict == "inconclusive"  # budget, not expressivity
    out = run_opt_expressivity({"order": 2, "dim": 3, "rank": 1, "width": 8,
                                "regime": "random-features", "seed": 0, "max_steps": 10})
    assert out["reached"] and out["sym_dim"] == 6  # m = 8 >= C(4, 2) = 6: exact


def test_summaries_hold_the_tables_and_no_verdict():
    # `experiment run` prints the summary, then one line per claim: a summary that also printed the
    # claims showed each verdict twice in the terminal (issue 25)
    from overtensor.experiments.opt_energy import summary as energy_summary
    from overtensor.experiments.opt_expressivity import summary as expressivity_summary
    from overtensor.experiments.opt_generalization import summary as generalization_summary

    rows = [{"order": 2, "regime": regime, "width": w, "seed": 0, "reached": w >= 6, "error": 0.0,
             "sym_dim": 10} for regime in ("full", "orthogonal", "random-features") for w in (2, 6, 10)]
    energy = pd.DataFrame([{"model": "tensor", "regime": r, "final_risk": 0.1, "initial_risk": 1.0,
                            "energy_s1_max_change": 1e-12 if r == "orthogonal" else 1e-3,
                            "energy_s0_max_change": 0.0, "seed": 0}
                           for r in ("full", "random-features", "orthogonal")])
    for summary, claims, df in ((generalization_summary, generalization_claims, _gen_df(0.98, 0.95)),
                                (expressivity_summary, expressivity_claims, pd.DataFrame(rows)),
                                (energy_summary, energy_claims, energy)):
        text = summary(df)
        statements = [c.statement for c in claims(df)]
        assert statements and not [s for s in statements if s in text], text
        assert not re.search(r"\b(supported|inconclusive)\b", text), text
