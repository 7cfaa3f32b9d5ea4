"""Spec files: validation errors name the key and the file, before any run starts."""

from __future__ import annotations

import math

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.cli.main import main
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.spec import (
    SpecError,
    config_hash,
    expand,
    is_success,
    load_spec,
    run_inprocess,
    select_metrics,
)

GOOD_YAML = """
name: poly
run: test-poly
fixed: {group: 0}
grid: {x: [1, 2, 3]}
seeds: 2
metrics: [value]
success: {metric: value, op: "<=", value: 4}
"""

GOOD_TOML = """
name = "poly"
run = "test-poly"
seeds = 2
metrics = ["value"]
[fixed]
group = 0
[grid]
x = [1, 2, 3]
[success]
metric = "value"
op = "<="
value = 4
"""


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_and_toml_files_load_to_the_same_spec(tmp_path):
    a = load_spec(write(tmp_path, GOOD_YAML))
    b = load_spec(write(tmp_path, GOOD_TOML, "spec.toml"))
    assert a == b
    assert a["success"] == {"metric": "value", "op": "<=", "value": 4.0}
    assert len(expand(a)) == 6


@pytest.mark.parametrize(
    ("replace", "by", "key", "words"),
    [
        ("seeds: 2", "seeds: 2\ngrdi: {x: [1]}", "grdi", "unknown key"),
        ("seeds: 2", "seeds: five", "seeds", "integer"),
        ("seeds: 2", "seeds: 0", "seeds", ">= 1"),
        ("grid: {x: [1, 2, 3]}", "grid: {x: []}", "grid.x", "empty"),
        ("grid: {x: [1, 2, 3]}", "grid: {}", "grid", "empty"),
        ("grid: {x: [1, 2, 3]}", "grid: {x: 3}", "grid.x", "list"),
        ("metrics: [value]", "metrics: value", "metrics", "list"),
        ('op: "<="', 'op: "=<"', "success.op", "'<='"),
        ('op: "<="', 'op: "<=", threshold: 2', "success.threshold", "unknown key"),
        ("run: test-poly", "run: no-such-run", "run", "unknown run function"),
        ("fixed: {group: 0}", "fixed: {group: 0, x: 1}", "grid.x", "both"),
        ("fixed: {group: 0}", "fixed: {group: 0, seed: 3}", "fixed.seed", "seeds"),
        ("name: poly\n", "", "name", "missing"),
    ],
)
def test_bad_spec_gives_one_error_naming_the_key_and_the_file(tmp_path, replace, by, key, words):
    assert replace in GOOD_YAML
    path = write(tmp_path, GOOD_YAML.replace(replace, by))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    msg = str(info.value)
    assert info.value.key == key
    assert f"key '{key}'" in msg
    assert str(path) in msg
    assert words in msg


def test_unknown_key_error_suggests_the_close_key(tmp_path):
    with pytest.raises(SpecError, match="did you mean 'grid'"):
        load_spec(write(tmp_path, GOOD_YAML.replace("seeds: 2", "seeds: 2\ngrdi: {x: [1]}")))


def test_unparsable_file_and_unknown_suffix_name_the_file(tmp_path):
    bad = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(SpecError, match=f"invalid spec {bad}: not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match=r"unknown file type '\.json'"):
        load_spec(write(tmp_path, "{}", "spec.json"))
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_bad_spec_fails_before_any_run_starts_or_store_is_created(tmp_path):
    from tests._runfns import CALLS

    CALLS.clear()
    path = write(tmp_path, GOOD_YAML.replace("grid: {x: [1, 2, 3]}", "grid: {x: [1, 2, 3], y: []}"))
    store = tmp_path / "runs.sqlite"
    with pytest.raises(SpecError, match=r"grid\.y"):
        run_sweep(path, store, scheduler="inprocess", progress=False)
    assert CALLS == []
    assert not store.exists()


def test_cli_reports_a_bad_spec_on_one_line_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, GOOD_YAML.replace("seeds: 2", "seeds: 2\nmetric: [x]"))
    assert main(["experiment", "run", str(path), "--inprocess", "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"invalid spec {path}: key 'metric': unknown key" in err[0]
    assert "did you mean 'metrics'" in err[0]


def test_config_hash_is_stable_and_ignores_key_order():
    a = config_hash("fit", {"dim": 5, "seed": 1, "width": 4})
    b = config_hash("fit", {"width": 4, "seed": 1, "dim": 5})
    assert a == b
    assert len(a) == 16
    assert a != config_hash("fit", {"dim": 5, "seed": 2, "width": 4})
    assert a != config_hash("other", {"dim": 5, "seed": 1, "width": 4})
    # pinned value: changing the hash would orphan every existing store
    assert a == "e08da0c6e2f00b78"


def test_expand_orders_grid_points_then_seeds_and_accepts_seed_lists():
    spec = {"fixed": {"a": 0}, "grid": {"x": [1, 2], "y": ["u", "v"]}, "seeds": [7, 9]}
    runs = expand(spec)
    assert runs[:3] == [{"a": 0, "x": 1, "y": "u", "seed": 7}, {"a": 0, "x": 1, "y": "u", "seed": 9},
                        {"a": 0, "x": 1, "y": "v", "seed": 7}]
    assert len(runs) == 8
    assert expand({"seeds": 3}) == [{"seed": 0}, {"seed": 1}, {"seed": 2}]


@pytest.mark.parametrize(("op", "value", "expected"), [("<=", 4, True), ("<", 4, False), (">=", 4, True),
                                                       (">", 3, True), ("==", 4, True), ("<=", 3, False)])
def test_success_criterion_compares_the_metric(op, value, expected):
    assert is_success({"m": 4.0}, {"metric": "m", "op": op, "value": value}) is expected


def test_missing_or_nonfinite_metric_is_not_a_success():
    crit = {"metric": "m", "op": "<=", "value": 1.0}
    assert is_success({}, crit) is False
    assert is_success({"m": math.nan}, crit) is False
    assert is_success({"m": None}, crit) is False
    assert is_success({"m": 0.5}, None) is None


def test_select_metrics_keeps_listed_metrics_and_adds_success():
    spec = {"metrics": ["value"], "success": {"metric": "root", "op": "<", "value": 2}}
    assert select_metrics({"value": 9, "root": 3.0, "other": 1}, spec) == {"value": 9, "success": False}


def test_run_inprocess_keeps_its_dataframe_layout(tmp_path):
    spec = load_spec(write(tmp_path, GOOD_YAML))
    df = run_inprocess(spec)
    assert list(df.columns) == ["group", "x", "seed", "value", "success"]
    assert df["value"].tolist() == [1, 2, 4, 5, 9, 10]
    assert df["success"].tolist() == [True, True, True, False, False, False]


def test_every_builtin_experiment_preset_is_a_valid_spec_named_after_it():
    from overtensor.experiments.catalog import list_experiments

    exps = {e.name: e for e in list_experiments()}
    assert "vs-classical" in exps
    for exp in exps.values():
        for preset, spec in exp.presets.items():
            valid = load_spec(spec, origin=f"{exp.name}/{preset}")
            assert valid["name"] == exp.name
            assert len(expand(valid)) >= 1


def test_vs_classical_compares_the_four_methods_with_a_success_criterion():
    from overtensor.experiments.catalog import get_experiment

    small = load_spec(get_experiment("vs-classical").presets["small"])
    assert small["grid"]["method"] == ["beyond-lazy", "gd", "exact-rank", "power-method"]
    assert small["success"] == {"metric": "relative_error", "op": "<=", "value": 1e-3}
    assert len(expand(small)) == 48


def test_every_builtin_experiment_has_a_one_seed_tiny_preset_for_the_docs_check():
    # tests/test_docs.py runs the documented experiments with '--preset tiny' (docs/docs-check.md).
    import types

    from overtensor.experiments import builtin

    exps = [m.EXPERIMENT for m in vars(builtin).values()
            if isinstance(m, types.ModuleType) and hasattr(m, "EXPERIMENT")]
    assert len(exps) >= 12
    for exp in exps:
        assert "tiny" in exp.presets, exp.name
        tiny = load_spec(exp.presets["tiny"], origin=f"{exp.name}/tiny")
        assert tiny["seeds"] == 1, exp.name
        assert len(expand(tiny)) < len(expand(load_spec(exp.presets["small"]))), exp.name


def test_every_builtin_preset_passes_its_run_functions_schema():
    from overtensor.experiments.catalog import list_experiments
    from overtensor.experiments.spec import check_params

    for exp in list_experiments():
        for name, preset in exp.presets.items():
            check_params(preset, f"{exp.name}:{name}")  # raises SpecError otherwise


@pytest.mark.parametrize("name", ["figs", "figs.yaml"])
def test_a_directory_named_as_a_spec_is_one_clear_line_exit_4(tmp_path, capsys, monkeypatch, name):
    # ./vs-classical/ (a built-in's figures folder) named as a path was "unknown file type ''";
    # a folder with a spec suffix was the OS's "Is a directory".
    from overtensor.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    with pytest.raises(SpecError, match="is a directory, not a spec file") as info:
        load_spec(tmp_path / name)
    assert info.value.exit_code == 4
    assert main(["experiment", "run", f"./{name}", "--inprocess", "--no-progress"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0] and name in err[0]


def test_a_misspelled_builtin_experiment_suggests_the_name(capsys):
    from overtensor.cli.main import main

    assert main(["experiment", "run", "vs-clasical", "--inprocess", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown experiment 'vs-clasical'; did you mean 'vs-classical'?" in err[0]


@pytest.mark.parametrize("grid, key", [
    ({"width": [4, 8, 4]}, "grid.width[2]"),
    ({"lr": [{"adam": 1.0}, {"adam": 1.0}]}, "grid.lr[1]"),
])
def test_a_repeated_grid_value_is_refused_like_a_repeated_seed(grid, key):
    # The configs would share one hash: the sweep counted runs it never did (one run each).
    with pytest.raises(SpecError) as info:
        load_spec({"name": "d", "run": "fit", "fixed": {"dim": 5}, "grid": grid}, check_run=False)
    assert info.value.key == key and "repeats" in str(info.value)
