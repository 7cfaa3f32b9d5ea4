"""The three adaptive-optimizer experiments run end to end on tiny settings (claims, figures, summaries)."""

from __future__ import annotations

import copy

import pytest

from overtensor.experiments.catalog import get_experiment
from overtensor.experiments.registry import Claim
from overtensor.experiments.spec import load_spec, run_inprocess


def _tiny(name: str, **fixed):
    spec = copy.deepcopy(get_experiment(name).presets["small"])
    spec["seeds"] = 2
    spec["fixed"].update(fixed)
    return load_spec(spec)


@pytest.mark.parametrize(("name", "fixed", "grid"), [
    ("adaptive-regression", {"steps": 300, "rf_steps": 300, "n": 10, "p": 40, "width": 40, "d": 5},
     {"optimizer": ["gd", "adam"]}),
    ("min-norm-generalization", {"steps": 200, "rf_steps": 200, "nuisance_n": 10, "p": 40, "width": 40,
                                 "d": 5, "block": [20, 40], "support": [0, 20]},
     {"scale": [1.0, 10.0], "n": [10, 20]}),
    ("adaptive-networks", {"epochs": 1}, {"model": ["two-layer"], "optimizer": ["sgd", "adam"],
                                          "lr_index": [2]}),
])
def test_experiment_end_to_end(tmp_path, name, fixed, grid):
    spec = _tiny(name, **fixed)
    spec["grid"].update(grid)
    df = run_inprocess(spec)
    exp = get_experiment(name)
    files = exp.figures(df, tmp_path)
    assert files and all(p.exists() and p.stat().st_size > 0 for p in files)
    assert {p.suffix for p in files} == {".png", ".svg"}
    assert isinstance(exp.summary(df), str)
    claims = exp.claims(df)
    assert claims and all(isinstance(c, Claim) and c.reason and c.url for c in claims)


def test_min_norm_generalization_skips_off_grid_points():
    from overtensor.experiments.min_norm_generalization import run_min_norm_generalization

    assert run_min_norm_generalization({"problem": "nuisance", "n": 100, "nuisance_n": 50, "scale": 3.0,
                                        "seed": 0}) == {"skipped": True}
    assert run_min_norm_generalization({"problem": "random-features", "n": 50, "scale": 3.0,
                                        "seed": 0}) == {"skipped": True}


def test_networks_are_seeded_without_global_rng():
    import torch

    from overtensor.experiments.adaptive_networks import make_network

    torch.manual_seed(123)
    a = make_network("mlp", 64, 10, torch.Generator().manual_seed(5))
    torch.manual_seed(456)
    b = make_network("mlp", 64, 10, torch.Generator().manual_seed(5))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="'cnn'"):
        make_network("cnn", 64, 10, torch.Generator())
