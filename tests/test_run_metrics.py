"""Run functions declare their metrics, and specs are checked against them before any run
(issue 23, item 6).

The declarations (``register_run(..., metrics=...)``, the one table ``registry._METRICS``) cannot
drift from the code: every built-in experiment's ``tiny`` preset is run and every metric its runs
return must be declared; conversely each declared name must be returned by some run here (or be
listed in :data:`RARE` with the reason no tiny run returns it). A spec's misspelled ``metrics`` or
``success.metric`` name is refused by ``load_spec`` (API) and by the CLI (exit 2, one line, nothing
run or created), naming the key, the name, the file and the closest declared name. A plug-in that
declares no metrics keeps the check at its first run.
"""

from __future__ import annotations

import functools
import re
import warnings

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.cli.main import main
from overtensor.experiments import registry
from overtensor.experiments.catalog import get_experiment, get_metrics, get_run, list_experiments
from overtensor.experiments.registry import metric_declared, register_run
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.spec import SpecError, expand, load_spec
from overtensor.experiments.store import ResultStore

#: Declared metrics no run of this file returns, and why (each still a real output of the code).
RARE = {
    "fit": {
        "degeneracy_max_cos": "only when the fitted CP has nearly parallel components",
        "degeneracy_max_weight": "only when the fitted CP has nearly parallel components",
        "shortcuts_skipped": "only when the default route's shortcuts cannot apply to the target",
    },
}


def _tiny_spec(experiment: str) -> list[dict]:
    """The specs whose runs stand for ``experiment``: its tiny preset, and for a preset that uses
    another run function (``method-of-moments``' topics) a cut-down copy of it."""
    exp = get_experiment(experiment)
    specs = [exp.presets["tiny"]]
    for preset in exp.presets.values():
        if preset["run"] != exp.presets["tiny"]["run"] and preset["run"] not in [s["run"] for s in specs]:
            spec = {**preset, "seeds": 1}
            if preset["run"] == "method-of-moments-topics":  # seconds, not minutes
                fixed = {k: v for k, v in spec["fixed"].items() if k != "alpha0"}  # LDA's only
                spec = {**spec, "fixed": {**fixed, "topics": 3},
                        "grid": {"method": ["unigram", "single-topic"]}}
            specs.append(spec)
    return specs


#: Extra ``fit`` configs: every method and regime, the default route and the eps hit, so the
#: declaration of the run that sweeps over ``overtensor.fit`` is checked beyond vs-classical's
#: four methods.
FIT_CONFIGS = [
    *({"method": m} for m in ("beyond-lazy", "gd", "exact-rank", "deflation")),
    {"method": "power-method"},
    *({"method": "beyond-lazy", "regime": r} for r in ("lazy", "random-features", "orthogonal")),
    {"method": "gd", "regime": "alpha-scaled", "alpha": 2.0},
    {"method": "beyond-lazy", "engine": "auto", "eps": 0.1},
    {"method": "beyond-lazy", "engine": "auto", "dim": 4, "rank": 6, "width": 10},  # the shortcuts
]


def _fit_config(extra: dict) -> dict:
    cfg = {"order": 3, "dim": 6, "rank": 2, "max_steps": 200, **extra}
    if cfg["method"] != "power-method":
        cfg.setdefault("width", 6)
    if cfg["method"] != "power-method" and cfg.get("regime", "full") == "full":
        cfg["final_steps"] = 50
    return cfg


@functools.cache
def returned() -> dict[str, list[set[str]]]:
    """``{run function: [metric names of each run]}`` over the tiny runs (computed once)."""
    out: dict[str, list[set[str]]] = {}
    builtin = [e.name for e in list_experiments()
               if all(registry.is_builtin(get_run(p["run"])) for p in e.presets.values())]
    configs = [(spec["run"], cfg) for name in builtin for spec in _tiny_spec(name)
               for cfg in expand(load_spec(spec))]
    configs += [("fit", cfg) for extra in FIT_CONFIGS
                for cfg in expand(load_spec({"name": "f", "run": "fit", "fixed": _fit_config(extra)}))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the estimators' advice on tiny data
        for run, cfg in configs:
            metrics = dict(get_run(run)(dict(cfg)))
            metrics.pop("history", None)
            out.setdefault(run, []).append(set(metrics))
    return out


def _builtin_runs() -> list[str]:
    get_run("fit")  # loads the built-ins
    return sorted(n for n, fn in registry._RUNS.items() if registry.is_builtin(fn))


def test_every_builtin_run_function_declares_its_metrics():
    runs = _builtin_runs()
    assert len(runs) >= 13
    missing = [r for r in runs if get_metrics(r) is None]
    assert missing == []


def test_every_builtin_run_function_has_tiny_runs_here():
    assert set(_builtin_runs()) <= set(returned())


@pytest.mark.parametrize("run", [
    "adaptive_networks", "adaptive_regression", "deflation", "fit", "lazy_lower_bound",
    "lazy_vs_full_networks", "method-of-moments", "method-of-moments-topics",
    "min_norm_generalization", "opt_energy", "opt_expressivity", "opt_generalization",
    "width_vs_dimension"])
def test_the_declaration_matches_what_the_runs_return(run):
    declared = get_metrics(run)
    runs = returned()[run]
    undeclared = sorted({m for names in runs for m in names if not metric_declared(m, declared)})
    assert undeclared == [], f"{run} returns metrics it does not declare"
    seen = set().union(*runs)
    never = sorted(d for d in declared if d not in RARE.get(run, {})
                   and not any(metric_declared(m, [d]) for m in seen))
    assert never == [], f"{run} declares metrics no tiny run returns (add the reason to RARE)"
    assert len(set(declared)) == len(declared)


def write(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


FIT = "name: m\nrun: fit\nfixed: {order: 3, dim: 5, rank: 2, width: 4, max_steps: 10}\n"


@pytest.mark.parametrize("extra, key, bad, close", [
    ("metrics: [relative_eror]", "metrics[0]", "relative_eror", "relative_error"),
    ("metrics: [relative_error, recoverd, seconds]", "metrics[1]", "recoverd", "recovered"),
    ("success: {metric: relative_eror, op: '<=', value: 1.0e-3}", "success.metric",
     "relative_eror", "relative_error"),
    ("success: {metric: Relative_Error, value: 1.0e-3}", "success.metric", "Relative_Error",
     "relative_error"),
    ("metrics: [history]", "metrics[0]", "history", None),
])
def test_a_misspelled_metric_is_refused_before_any_run(tmp_path, extra, key, bad, close):
    path = write(tmp_path, FIT + extra + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    msg = str(info.value)
    assert info.value.key == key and "spec.yaml" in msg and repr(bad) in msg, msg
    assert (f"did you mean {close!r}?" in msg) if close else "did you mean" not in msg, msg
    assert "its metrics: method, order" in msg


@pytest.mark.parametrize("run, fixed, extra, key, close", [
    ("deflation", "{scenario: orth3-geo, dim: 6}", "metrics: [t50_2, t5_3]", "metrics[1]", "t50_3"),
    ("opt_expressivity", "{order: 3, dim: 4, rank: 2, width: 2, regime: full, max_steps: 5}",
     "success: {metric: eror, value: 0.1}", "success.metric", "error"),
    ("width_vs_dimension", "{regime: lazy, dim: 4, rank: 1}", "metrics: [min_widht]",
     "metrics[0]", "min_width"),
    ("method-of-moments", "{dataset: iris, method: em-1}", "metrics: [accuracy, loglk]",
     "metrics[1]", "loglik"),
])
def test_every_builtin_checks_its_own_names(tmp_path, run, fixed, extra, key, close):
    path = write(tmp_path, f"name: m\nrun: {run}\nfixed: {fixed}\n{extra}\n")
    with pytest.raises(SpecError, match=re.escape(f"key '{key}'") + f".*did you mean {close!r}\\?"):
        load_spec(path)


@pytest.mark.parametrize("extra", [
    "metrics: [relative_error, recovered, seconds]",
    "success: {metric: relative_error, op: '<=', value: 1.0e-3}",
    "metrics: [relative_error, success]\nsuccess: {metric: min_cos, op: '>=', value: 0.9}",
])
def test_declared_names_are_accepted(tmp_path, extra):
    spec = load_spec(write(tmp_path, FIT + extra + "\n"))
    assert spec["run"] == "fit"


def test_indexed_metrics_accept_any_index_of_the_declared_form(tmp_path):
    spec = load_spec(write(tmp_path, "name: m\nrun: deflation\nfixed: {scenario: orth3-geo, dim: 6}\n"
                                     "metrics: [t50_1, t99_12, weight_ratio_2]\n"
                                     "success: {metric: ratio_1, op: '>', value: 1.0}\n"))
    assert spec["metrics"] == ["t50_1", "t99_12", "weight_ratio_2"]
    for bad in ("t50_0", "t50_01", "t50_", "t50_x"):
        with pytest.raises(SpecError, match=rf"key 'metrics\[0\]'.*no metric {bad!r}"):
            load_spec({"name": "m", "run": "deflation", "fixed": {"scenario": "orth3-geo", "dim": 6},
                       "metrics": [bad]})


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_success_threshold_must_be_finite(tmp_path, value):
    with pytest.raises(SpecError, match=r"key 'success.value'.*finite"):
        load_spec(write(tmp_path, FIT + f"success: {{metric: relative_error, value: {value}}}\n"))


def test_the_preset_of_each_builtin_experiment_passes_the_check():
    for exp in list_experiments():
        for preset in exp.presets.values():
            load_spec(preset)


@pytest.mark.parametrize("extra, key", [
    ("metrics: [relative_eror]", "metrics[0]"),
    ("success: {metric: relative_eror, op: '<=', value: 1.0e-3}", "success.metric"),
])
def test_the_cli_refuses_a_misspelled_metric_with_exit_2_before_any_run(tmp_path, capsys, extra, key):
    path = write(tmp_path, FIT + extra + "\n")
    store, outdir = tmp_path / "s.sqlite", tmp_path / "figs"
    code = main(["experiment", "run", str(path), "--inprocess", "--no-progress",
                 "--store", str(store), "--outdir", str(outdir)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("overtensor: error: invalid spec "), err
    assert f"key '{key}'" in err and "'relative_eror'" in err and "did you mean 'relative_error'" in err
    assert "spec.yaml" in err and "Traceback" not in err
    assert not store.exists() and not outdir.exists()


def test_run_sweep_refuses_before_calling_the_run_function(tmp_path, monkeypatch):
    calls = []
    get_run("fit")
    monkeypatch.setitem(registry._RUNS, "fit", lambda config: calls.append(config) or {})
    spec = {"name": "m", "run": "fit", "fixed": {"dim": 5, "width": 4}, "metrics": ["relative_eror"]}
    with pytest.raises(SpecError, match="key 'metrics\\[0\\]'"):
        run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
    assert calls == [] and not (tmp_path / "s.sqlite").exists()


# Plug-ins ------------------------------------------------------------------------------------


def test_a_plugin_without_declared_metrics_is_checked_at_its_first_run(tmp_path):
    # tests._runfns registers test-poly without metrics: load_spec accepts any name ...
    assert get_metrics("test-poly") is None
    spec = load_spec({"name": "m", "run": "test-poly", "grid": {"x": [1, 2]}, "metrics": ["valeu"]})
    # ... and the runs fail naming the key (exit 3 on the command line), never exit 0 with no metric.
    result = run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
    assert (result.done, result.failed) == (0, 2)
    with ResultStore(tmp_path / "s.sqlite", readonly=True) as db:
        errors = [r["error"] for r in db.rows("m", status="failed")]
    assert all("key 'metrics[0]'" in e and "did you mean 'value'" in e for e in errors)


def test_a_plugin_that_declares_metrics_is_checked_before_any_run(monkeypatch):
    monkeypatch.setattr(registry, "_RUNS", dict(registry._RUNS))
    monkeypatch.setattr(registry, "_PARAMS", dict(registry._PARAMS))
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))

    @register_run("test-declared", metrics=("loss", "score_{j}"))
    def declared(config: dict) -> dict:
        return {"loss": 1.0, "score_1": 2.0}

    assert load_spec({"name": "m", "run": "test-declared", "metrics": ["loss", "score_3"]})
    with pytest.raises(SpecError, match=r"key 'success.metric'.*'los'.*did you mean 'loss'\?"):
        load_spec({"name": "m", "run": "test-declared", "success": {"metric": "los", "value": 1.0}})


@pytest.mark.parametrize("metrics", ["loss", ["loss", ""], ["a b"], [3], ["x_{k}"]])
def test_a_malformed_declaration_is_refused_at_registration(metrics):
    with pytest.raises(ValueError, match="metrics of run function 'test-bad'"):
        register_run("test-bad", metrics=metrics)


@pytest.mark.parametrize("declares", [True, False])
def test_an_entry_point_function_declares_its_metrics_as_an_attribute(tmp_path, monkeypatch, declares):
    from importlib.metadata import EntryPoint

    from overtensor.experiments import catalog

    module = f"ot_plugin_metrics_{int(declares)}"
    (tmp_path / f"{module}.py").write_text(
        "def run(config):\n    return {'loss': 1.0}\n"
        + ("run.metrics = ['loss']\n" if declares else ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="plug", value=f"{module}:run", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(catalog, "_entry_points", lambda: [ep])
    for table in ("_RUNS", "_PARAMS", "_METRICS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    spec = {"name": "p", "run": "plug", "metrics": ["los"]}
    if declares:
        with pytest.raises(SpecError, match=r"key 'metrics\[0\]'.*did you mean 'loss'\?"):
            load_spec(spec)
    else:  # undeclared: accepted here, checked when the run returns
        assert load_spec(spec)["metrics"] == ["los"]
        result = run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
        assert (result.done, result.failed) == (0, 1)


def test_the_batched_fit_returns_declared_metrics_only():
    # The batched engine (register_batched("fit")) stands in for the single runs: its metrics are
    # checked against the same declaration.
    from overtensor.experiments.catalog import get_batched

    fn, key = get_batched("fit")
    configs = [cfg for seed in (0, 1) for cfg in expand(load_spec(
        {"name": "b", "run": "fit", "seeds": [seed],
         "fixed": _fit_config({"method": "beyond-lazy"})}))]
    assert key(configs[0]) == key(configs[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs = fn(configs)
    declared = get_metrics("fit")
    for out in outs:
        assert not isinstance(out, Exception), out
        names = set(out) - {"history"}
        assert {"relative_error", "converged"} <= names
        assert sorted(m for m in names if not metric_declared(m, declared)) == []


def test_a_list_position_is_named_as_in_the_other_messages(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, FIT + "metrics: [relative_error, 3]\n"))
    assert info.value.key == "metrics[1]" and "valid string" in str(info.value)


def test_success_in_metrics_without_a_criterion_says_so(tmp_path):
    with pytest.raises(SpecError, match=r"key 'metrics\[0\]'.*column a 'success:' criterion adds"):
        load_spec(write(tmp_path, FIT + "metrics: [success]\n"))


@pytest.mark.parametrize("metric", ["stop_reason", "warnings"])
def test_a_success_criterion_on_a_metric_that_is_not_a_number_fails_the_run(tmp_path, metric):
    # Declared, so accepted before the runs; a text or a list compared with a number would make
    # success False in every run with exit 0.
    spec = load_spec(write(tmp_path, FIT.replace("max_steps: 10", "max_steps: 50")
                           + f"success: {{metric: {metric}, op: '<', value: 1.0}}\n"))
    result = run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
    assert (result.done, result.failed) == (0, 1)
    with ResultStore(tmp_path / "s.sqlite", readonly=True) as db:
        (row,) = db.rows("m", status="failed")
    assert "key 'success.metric'" in row["error"] and "is not a number" in row["error"]


def test_a_skipped_grid_point_is_not_a_missing_metric(tmp_path):
    # lazy_lower_bound skips a dim its order does not sweep ({"skipped": True}): with metrics or a
    # success criterion listed, that run failed ("returned no metric") instead of being skipped.
    from overtensor.experiments.spec import select_metrics

    spec = {"metrics": ["lazy_error"], "success": {"metric": "lazy_error", "op": "<", "value": 1.0}}
    assert select_metrics({"skipped": True}, spec) == {"skipped": True}
    spec = load_spec(write(tmp_path, "name: s\nrun: lazy_lower_bound\n"
                                     "fixed: {order: 3, rank: 1, md_ratio: 0.5, full_seeds: 0, "
                                     "dims_by_order: {'3': [4]}}\ngrid: {dim: [4, 5]}\n"
                                     "metrics: [lazy_error]\n"
                                     "success: {metric: lazy_error, op: '<', value: 2.0}\n"))
    result = run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
    assert (result.done, result.failed) == (2, 0)


@pytest.mark.parametrize("extra, key, words", [
    ("success: {metric: steps_to_eps, op: '<', value: 100.0}", "success.metric", "only with eps set"),
    ("metrics: [relative_error, found_cos]", "metrics[1]", "only with method='power-method'"),
])
def test_a_metric_no_run_of_the_spec_returns_is_refused(tmp_path, extra, key, words):
    # Declared, but returned only with eps / by the power method: every run would fail (exit 3).
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, FIT + extra + "\n"))
    assert info.value.key == key and words in str(info.value), str(info.value)


def test_the_conditional_metrics_of_fit_follow_their_selector():
    # FitParams.METRICS_ONLY_WITH against what runs return: with the selector, and without it.
    from overtensor.experiments.catalog import get_params

    only_with = get_params("fit").METRICS_ONLY_WITH
    fit = get_run("fit")
    cases = [({"method": "beyond-lazy"}, set()), ({"method": "beyond-lazy", "eps": 0.5}, {"eps"}),
             ({"method": "power-method"}, {"method"})]
    for extra, selectors in cases:
        cfg = expand(load_spec({"name": "f", "run": "fit", "fixed": _fit_config(extra)}))[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names = set(fit(dict(cfg)))
        for metric, (selector, allowed) in only_with.items():
            has = selector in selectors and (allowed is None or cfg.get(selector) in allowed)
            assert (metric in names) == has, (extra, metric)
