"""Spec mistakes never run silently (issue 23, item 6): conflicting keys of a run function are
refused before any run naming the key and the file; a misspelled ``metrics`` or
``success.metric`` name fails the run naming the spec key (never exit 0 with no metric)."""

from __future__ import annotations

import re

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.cli.main import main
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.spec import SpecError, load_spec, select_metrics
from overtensor.experiments.store import ResultStore


def write(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("fixed, key", [
    ("{scenario: orth4-geo, order: 3, dim: 10}", "fixed.order"),
    ("{scenario: orth3-geo, components: random, dim: 10}", "fixed.components"),
    ("{scenario: orth3-geo, weights: linear, dim: 10}", "fixed.weights"),
    ("{order: 3, components: random, dim: 10}", "fixed.weights"),
])
def test_deflation_scenario_and_its_target_keys_conflict(tmp_path, fixed, key):
    path = write(tmp_path, f"name: d\nrun: deflation\nfixed: {fixed}\n")
    with pytest.raises(SpecError, match=rf"spec.yaml: key '{key}'"):
        load_spec(path)


_TOPICS = "method-of-moments-topics"


@pytest.mark.parametrize("run, text, key, why", [
    ("fit", "fixed: {method: power-method, lr: 0.1}", "fixed.lr", "does not use"),
    ("fit", "fixed: {method: power-method}\ngrid: {weight_decay: [0.0, 0.1]}",
     "grid.weight_decay[0]", "does not use"),
    ("fit", "fixed: {regime: lazy, polish_iter: 5}", "fixed.polish_iter", "does not use"),
    ("fit", "fixed: {alpha: 2.0}", "fixed.alpha", "does not use"),
    # alpha0 was recorded and ignored by single-topic, sklearn-lda and the unigram baseline.
    (_TOPICS, "fixed: {method: single-topic, alpha0: 5.0}", "fixed.alpha0", "is used only with"),
    (_TOPICS, "fixed: {method: unigram, topics: 5}", "fixed.topics", "is used only with"),
    (_TOPICS, "fixed: {alpha0: 0.5, topics: 4}\ngrid: {method: [unigram, sklearn-lda]}",
     "fixed.alpha0", "is used only with"),
])
def test_options_the_run_would_ignore_are_refused_before_any_run(tmp_path, run, text, key, why):
    path = write(tmp_path, f"name: f\nrun: {run}\n{text}\n")
    with pytest.raises(SpecError, match=re.escape(f"key '{key}'") + f".*{why}"):
        load_spec(path)


def test_an_ignored_option_at_fits_default_is_accepted_as_fit_accepts_it(tmp_path):
    path = write(tmp_path, "name: f\nrun: fit\nfixed: {alpha: 1.0, width: 4}\n")
    assert load_spec(path)["fixed"]["alpha"] == 1.0


def test_options_that_apply_are_accepted(tmp_path):
    path = write(tmp_path, "name: f\nrun: fit\nfixed: {regime: alpha-scaled, alpha: 2.0, width: 4}\n")
    assert load_spec(path)["fixed"]["alpha"] == 2.0


def test_the_cli_refuses_a_conflict_with_exit_2_and_runs_nothing(tmp_path, capsys):
    path = write(tmp_path, "name: d\nrun: deflation\nfixed: {scenario: orth4-geo, order: 3, dim: 8}\n")
    store = tmp_path / "s.sqlite"
    assert main(["experiment", "run", str(path), "--inprocess", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "fixed.order" in err and "spec.yaml" in err and not store.exists()


@pytest.mark.parametrize("extra, key", [("metrics: [valeu]", "metrics[0]"),
                                        ("success: {metric: rot, op: '<', value: 2}",
                                         "success.metric")])
def test_a_misspelled_metric_fails_the_runs_naming_the_key(tmp_path, extra, key):
    spec = load_spec(write(tmp_path, f"name: m\nrun: test-poly\ngrid: {{x: [1, 2]}}\n{extra}\n"))
    result = run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
    assert (result.done, result.failed) == (0, 2)
    with ResultStore(tmp_path / "s.sqlite", readonly=True) as db:
        errors = [r["error"] for r in db.rows("m", status="failed")]
    assert all(f"key '{key}'" in e and "did you mean" in e for e in errors)


def test_the_cli_exits_3_for_a_misspelled_metric(tmp_path, capsys):
    path = write(tmp_path, "name: m\nrun: test-poly\ngrid: {x: [1]}\nmetrics: [valeu]\n")
    code = main(["experiment", "run", str(path), "--inprocess", "--no-progress",
                 "--store", str(tmp_path / "s.sqlite"), "--outdir", str(tmp_path / "f")])
    assert code == 3


def test_select_metrics_with_listed_names_present_is_unchanged():
    spec = {"metrics": ["value"], "success": {"metric": "root", "op": "<", "value": 2}}
    assert select_metrics({"value": 9, "root": 3.0}, spec) == {"value": 9, "success": False}


@pytest.mark.parametrize("text, key", [
    ("run: opt_energy\nfixed: {model: network, regime: full, dim: 4, width: 4, steps: 1, "
     "eval_every: 1, lr: 0.1, rank: 2}", "fixed.rank"),
    ("run: opt_energy\nfixed: {model: tensor, regime: full, dim: 4, width: 4, steps: 1, "
     "eval_every: 1, rank: 2, lr: 0.1}", "fixed.lr"),
    ("run: adaptive_regression\nfixed: {problem: gaussian, scale: 3.0, optimizer: gd}", "fixed.scale"),
    ("run: adaptive_regression\nfixed: {problem: nuisance, scale: 3.0, optimizer: gd}\n"
     "grid: {rf_steps: [10, 20]}",
     "grid.rf_steps"),
])
def test_a_key_no_run_of_the_spec_uses_is_refused(tmp_path, text, key):
    path = write(tmp_path, f"name: u\n{text}\n")
    with pytest.raises(SpecError, match=re.escape(f"key '{key}'") + ".*is used only with"):
        load_spec(path)


def test_a_grid_over_the_selector_may_share_the_key(tmp_path):
    path = write(tmp_path, "name: u\nrun: opt_energy\nfixed: {regime: full, dim: 4, width: 4, "
                           "steps: 1, eval_every: 1, lr: 0.1, rank: 2}\n"
                           "grid: {model: [tensor, network]}\n")
    assert load_spec(path)["fixed"]["rank"] == 2


# Conflicts that failed every run (exit 3, the run function's own error) before issue 23's
# second session: each is now refused by load_spec naming the key, before any run.
@pytest.mark.parametrize("text, key, words", [
    ("run: fit\nfixed: {dim: 3, rank: 5, components: orthonormal, width: 8}", "fixed.rank",
     "components='orthonormal' needs rank <= dim=3"),
    ("run: fit\nfixed: {dim: 5, width: 4, width_factor: 2.0}", "fixed.width_factor", "remove one"),
    ("run: fit\nfixed: {dim: 5, method: gd}", "fixed.width", "needs width or width_factor"),
    ("run: fit\nfixed: {dim: 5, regime: lazy, method: power-method}", "fixed.regime",
     "needs a gradient method"),
    ("run: deflation\nfixed: {scenario: orth4-geo, dim: 5, rank: 30}", "fixed.rank",
     "components='orthonormal' needs rank <= dim=5"),
    ("run: deflation\nfixed: {order: 3, components: orthonormal, weights: equal, dim: 3}",
     "fixed.rank", "got rank=5"),  # deflation's default rank
    ("run: lazy_lower_bound\nfixed: {order: 3, md_ratio: 0.5, components: orthonormal}\n"
     "grid: {dim: [2], rank: [5]}", "grid.rank[0]", "needs rank <= dim=2"),
    ("run: width_vs_dimension\nfixed: {regime: beyond-lazy, dim: 6, rank: 3, max_width: 1}",
     "fixed.max_width", "leaves it empty"),
    ("run: lazy_vs_full_networks\nfixed: {target: rank, dim: 10, width: 4, rank: 50}", "fixed.rank",
     "needs rank <= dim=10"),
    ("run: opt_generalization\nfixed: {variant: standard, hidden: 8, epochs: 1, batch: 64, "
     "lr: 0.1, momentum: 0.9, test_size: 0.999}", "fixed.test_size", "at least the 10 classes"),
])
def test_a_conflict_that_failed_every_run_is_refused_before_any_run(tmp_path, text, key, words):
    path = write(tmp_path, f"name: c\n{text}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    msg = str(info.value)
    assert info.value.key == key and words in msg and "spec.yaml" in msg, msg


@pytest.mark.parametrize("text, key, point", [
    ("run: fit\nfixed: {components: orthonormal, width: 8}\ngrid: {rank: [2, 30], dim: [50, 5]}",
     "grid.rank[1]", "rank=30, dim=5"),
    ("run: fit\nfixed: {width: 8}\ngrid: {method: [beyond-lazy, power-method], regime: [full, lazy]}",
     "grid.regime[1]", "method='power-method', regime='lazy'"),
])
def test_a_conflict_between_two_grid_axes_names_the_grid_point(tmp_path, text, key, point):
    # Each axis value is fine with the first value of the others; only their combination conflicts.
    path = write(tmp_path, f"name: c\n{text}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == key and f"in the grid point {point}" in str(info.value), str(info.value)


def test_a_bad_grid_value_is_named_before_a_conflict_of_the_base_config(tmp_path):
    path = write(tmp_path, "name: c\nrun: fit\nfixed: {method: gd}\ngrid: {dim: [5, x]}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == "grid.dim[1]" and "valid integer" in str(info.value)


def test_the_cli_refuses_a_grid_conflict_with_exit_2_and_one_line(tmp_path, capsys):
    path = write(tmp_path, "name: c\nrun: fit\nfixed: {components: orthonormal, width: 8}\n"
                           "grid: {rank: [2, 30], dim: [50, 5]}\n")
    store = tmp_path / "s.sqlite"
    assert main(["experiment", "run", str(path), "--inprocess", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid.rank[1]" in err[0] and not store.exists()


@pytest.mark.parametrize("text, key", [
    ("run: adaptive_regression\nfixed: {problem: gaussian, n: 10, p: 20, optimizer: gd, "
     "lr: {adam: 0.1}}", "fixed.lr.adam"),
    ("run: adaptive_regression\nfixed: {problem: gaussian, n: 10, p: 20, optimizer: gd, "
     "span_weights: {random-features: residual}}", "fixed.span_weights.random-features"),
    ("run: adaptive_networks\nfixed: {model: two-layer, lr_grid: {sgd: [0.1], adam: [0.01]}, "
     "lr_index: 0}\ngrid: {optimizer: [sgd]}", "fixed.lr_grid.adam"),
])
def test_a_mapping_entry_for_a_value_no_run_has_is_refused(tmp_path, text, key):
    # lr: {adam: ...} with only optimizer: gd was recorded and ignored.
    path = write(tmp_path, f"name: k\n{text}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == key and "no run of this spec has" in str(info.value), str(info.value)


def test_a_mapping_entry_for_a_value_of_the_grid_is_accepted(tmp_path):
    path = write(tmp_path, "name: k\nrun: adaptive_regression\nfixed: {problem: gaussian, n: 10, "
                           "p: 20, lr: {adam: 0.1, gd: 0.2}}\ngrid: {optimizer: [gd, adam]}\n")
    assert load_spec(path)["fixed"]["lr"] == {"adam": 0.1, "gd": 0.2}
