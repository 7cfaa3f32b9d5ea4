"""Specs run registered code only, spec values are checked against the run function's parameters,
grids have a size limit, and experiment names never become paths (issue 9, items 1 and 2)."""

from __future__ import annotations

import sqlite3
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.experiments import catalog, registry
from overtensor.experiments import spec as spec_mod
from overtensor.experiments.names import check_name, slug
from overtensor.experiments.report import write_report
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.spec import SpecError, count_runs, load_spec
from overtensor.experiments.store import ResultStore, RunRecord

EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("imported")

def run(config):
    Path({marker!r}).write_text("called")
    return {{}}
"""


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module on sys.path that leaves a marker file when it is imported."""
    name = f"evil_mod_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{name}.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


@pytest.mark.parametrize("run", ["module:function", "subprocess:run", "os:system"])
def test_module_function_strings_are_unknown_run_functions(tmp_path, run):
    text = f"name: x\nrun: '{run}'\nfixed: {{args: ['touch', '{tmp_path}/pwned'], shell: true}}\n"
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "s.yaml")
    assert info.value.key == "run"
    assert f"unknown run function {run!r}" in str(info.value)
    assert "overtensor.runs" in str(info.value)  # says how to register a third-party one
    assert not (tmp_path / "pwned").exists()


def test_an_unregistered_callable_is_refused_before_anything_is_imported(tmp_path, evil_module):
    name, marker = evil_module
    spec = tmp_path / "evil.yaml"
    spec.write_text(f"name: evil\nrun: '{name}:run'\nseeds: 1\n")
    store = tmp_path / "s.sqlite"
    with pytest.raises(SpecError, match="unknown run function"):
        run_sweep(spec, store, scheduler="inprocess", progress=False)
    assert not marker.exists()
    assert name not in sys.modules
    assert not store.exists()
    # the same module through the CLI: exit 2, one line, still not imported
    from overtensor.cli.main import main

    assert main(["experiment", "run", str(spec), "--inprocess", "--no-progress", "--store", str(store)]) == 2
    assert not marker.exists() and name not in sys.modules


def test_third_party_run_functions_come_from_the_entry_point_group_and_load_only_when_named(
        tmp_path, evil_module, monkeypatch):
    name, marker = evil_module
    ep = EntryPoint(name="third-party", value=f"{name}:run", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(catalog, "_entry_points", lambda: [ep])
    monkeypatch.setattr(registry, "_RUNS", dict(registry._RUNS))
    monkeypatch.setattr(registry, "_PARAMS", dict(registry._PARAMS))
    assert "third-party" in catalog.run_names()
    load_spec({"name": "ok", "run": "fit", "fixed": {"width": 4}})
    assert not marker.exists()  # listing and other specs import nothing
    result = run_sweep({"name": "tp", "run": "third-party"}, tmp_path / "s.sqlite", scheduler="inprocess",
                       progress=False)
    assert (result.done, result.failed) == (1, 0)
    assert marker.read_text() == "called"


@pytest.mark.parametrize(
    ("fixed", "grid", "key", "words"),
    [
        ({"dim": -5}, None, "fixed.dim", "greater than or equal to 1"),
        ({"dimm": 5}, None, "fixed.dimm", "did you mean 'dim'"),
        ({"dim": "5"}, None, "fixed.dim", "valid integer"),
        ({"dim": 5.0}, None, "fixed.dim", "valid integer"),
        ({"method": "newton"}, None, "fixed.method", "'newton'"),
        ({"tol": -1.0}, None, "fixed.tol", "greater than or equal to 0"),
        ({}, {"width": [4, 8, 0]}, "grid.width[2]", "got 0"),
        ({}, {"dim": [5, "x"]}, "grid.dim[1]", "valid integer"),
        ({}, {"order": [3, 1]}, "grid.order[1]", "greater than or equal to 2"),
        ({"lr": float("inf")}, None, "fixed.lr", "inf"),
    ],
)
def test_spec_values_are_checked_against_the_run_functions_parameters(tmp_path, fixed, grid, key, words):
    from tests._runfns import CALLS

    CALLS.clear()
    spec = {"name": "bad", "run": "fit", "fixed": fixed, **({"grid": grid} if grid else {})}
    with pytest.raises(SpecError) as info:
        run_sweep(spec, tmp_path / "s.sqlite", scheduler="inprocess", progress=False)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)
    assert "<dict 'bad'>" in str(info.value)
    assert not (tmp_path / "s.sqlite").exists()


def test_a_parameter_error_in_a_file_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: s\nrun: fit\nfixed: {dim: -5, rank: 2}\ngrid: {width: [4, 8]}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"invalid spec {path}: key 'fixed.dim': ")
    assert "got -5" in str(info.value)


def test_a_required_parameter_missing_from_fixed_and_grid_is_named():
    with pytest.raises(SpecError, match="key 'md_ratio': run function 'lazy_lower_bound' needs"):
        load_spec({"name": "l", "run": "lazy_lower_bound", "fixed": {"order": 3, "dim": 5, "rank": 1}})


def test_a_grid_over_the_limit_is_refused_before_it_is_built(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("expand must not be called")

    monkeypatch.setattr(spec_mod, "expand", boom)
    axis = list(range(1, 1001))
    huge = {"name": "huge", "run": "fit", "grid": {"dim": axis, "width": axis}, "seeds": 10**9}
    assert count_runs(huge) == 10**15
    with pytest.raises(SpecError, match=r"key 'grid': expands to 1000000000000000 runs .* limit of 1000000"):
        load_spec(huge)
    small = {"name": "s", "run": "fit", "fixed": {"width": 4}, "grid": {"dim": [5, 6, 7]}, "seeds": 4}
    with pytest.raises(SpecError, match="expands to 12 runs"):
        load_spec(small, max_runs=10)
    assert load_spec(small, max_runs=12)["seeds"] == 4
    with pytest.raises(ValueError, match="max_runs must be an integer >= 1, got 0"):
        load_spec(small, max_runs=0)


BAD_NAMES = ["../x", "/tmp/outside", "a/b", "a\\b", "a\nb", "a\x00b", "a\x1bb", "..", ".hidden", "a..b", "",
             "-rf", "x" * 101, "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_experiment_names_that_could_be_paths_are_refused_on_entry(tmp_path, name):
    with pytest.raises(SpecError) as info:
        load_spec({"name": name, "run": "fit"})
    assert info.value.key == "name"
    with pytest.raises(ValueError, match="experiment"):
        run_sweep({"name": "ok", "run": "test-poly", "grid": {"x": [1]}}, tmp_path / "s.sqlite",
                  experiment=name, scheduler="inprocess", progress=False)
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("name", ["lazy-lower-bound", "vs_classical.v2", "A1", "run-2026-01-01"])
def test_ordinary_names_are_accepted_and_are_their_own_slug(name):
    assert check_name(name) == name
    assert slug(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_slug_is_one_safe_path_component_and_distinct_per_name(name):
    s = slug(name)
    assert check_name(s) == s
    assert "/" not in s and "\\" not in s and ".." not in s
    assert len({slug(n) for n in BAD_NAMES}) == len(BAD_NAMES)


def test_report_of_a_store_written_by_someone_else_keeps_every_file_in_its_folder(tmp_path):
    store = tmp_path / "inbox" / "foreign.sqlite"
    with ResultStore(store) as db:
        for name in ["../../escaped", "/tmp/outside-overtensor-test", "a/b", "new\nline"]:
            db.save_spec(name, {"name": name, "run": "test-poly", "grid": {"x": [1, 2]},
                                "metrics": ["../../../metric"]})
            for x in (1, 2):
                db.record(RunRecord(experiment=name, config_hash=f"h{x}", run="test-poly",
                                    config={"x": x, "seed": 0}, status="done",
                                    metrics={"../../../metric": float(x)}))
    out = tmp_path / "out" / "report.html"
    before = set(tmp_path.rglob("*"))
    write_report(store, out)
    created = set(tmp_path.rglob("*")) - before
    assert out in created
    figdir = tmp_path / "out" / "report_figures"
    allowed = {out, out.parent, figdir}
    assert all(p in allowed or figdir in p.parents for p in created), sorted(created)
    assert not (tmp_path.parent / "escaped").exists()
    assert not Path("/tmp/outside-overtensor-test").exists()
    assert len([p for p in created if p.suffix == ".png"]) == 4  # one curve per experiment
    page = out.read_text()
    for name in ["../../escaped", "/tmp/outside-overtensor-test", "a/b", "new\nline"]:
        assert f">{name}</h2>" in page  # the report still shows each name, as text


def test_store_holds_names_only_as_data(tmp_path):
    # the sqlite store accepts any text as data; names are checked where they come in (spec, CLI)
    with ResultStore(tmp_path / "s.sqlite") as db:
        db.save_spec("../x", {"name": "../x"})
        assert db.experiments() == ["../x"]
    with sqlite3.connect(tmp_path / "s.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM specs").fetchone()[0] == 1


def test_the_fit_schema_covers_every_keyword_a_spec_can_give_fit_and_random_target():
    import dataclasses
    import inspect

    import overtensor as ot
    from overtensor.experiments.params import FitParams

    # power=, orthogonal= and shortcuts= take options objects, not JSON values; the groups
    # (schedule, extraction, runtime) are given by their fields' names (split_options). "rank" in
    # a spec is the synthetic target's rank (random_target), so the rank cap is not a spec key.
    groups = {"schedule": ot.GradientSchedule, "extraction": ot.Extraction, "runtime": ot.Runtime}
    not_json = {"target", "random_state", "callback", "recorders", "progress", "power", "orthogonal",
                "shortcuts", *groups}
    fields = {f.name for cls in groups.values() for f in dataclasses.fields(cls)}
    keywords = (set(inspect.signature(ot.fit).parameters) | fields
                | set(inspect.signature(ot.random_target).parameters))
    missing = keywords - not_json - set(FitParams.model_fields)
    assert missing == set(), f"FitParams lacks {sorted(missing)}: specs could not set them"


def test_registered_names_are_checked_too():
    with pytest.raises(ValueError, match="run function name"):
        registry.register_run("pkg.mod:fn")
    with pytest.raises(ValueError, match="experiment name"):
        registry.register_experiment(registry.Experiment(name="../x", description="", presets={}))


def test_run_functions_without_a_declared_schema_get_one_from_their_presets(tmp_path, monkeypatch):
    from overtensor.experiments.catalog import get_params
    from overtensor.experiments.spec import SpecError, load_spec

    catalog.run_names()  # the built-ins are registered before the registries are copied
    monkeypatch.setattr(registry, "_RUNS", dict(registry._RUNS))
    monkeypatch.setattr(registry, "_PARAMS", dict(registry._PARAMS))
    monkeypatch.setattr(registry, "_EXPERIMENTS", dict(registry._EXPERIMENTS))
    registry.register_run("schemaless")(lambda config: {})
    preset = {"name": "schemaless", "run": "schemaless", "fixed": {"n": 50, "span_weights": {"a": "b"}},
              "grid": {"lr": [0.1, 1]}}
    registry.register_experiment(registry.Experiment(name="schemaless", description="",
                                                     presets={"tiny": preset}))
    schema = get_params("schemaless")
    assert schema is not None and set(schema.model_fields) == {"seed", "n", "span_weights", "lr"}
    load_spec(preset)
    bad = tmp_path / "typo.yaml"
    import yaml

    bad.write_text(yaml.safe_dump({**preset, "fixed": {**preset["fixed"], "nn": 50}}))
    with pytest.raises(SpecError, match="nn"):
        load_spec(bad)
    with pytest.raises(SpecError, match=r"'fixed\.n'"):
        load_spec({**preset, "fixed": {**preset["fixed"], "n": "50"}})


def test_a_run_name_that_is_a_module_path_never_reaches_the_entry_point_loader(monkeypatch):
    calls = []
    monkeypatch.setattr(catalog, "_load_entry_point", calls.append)
    for name in ("subprocess:run", "os.path:join", "../x", "a/b"):
        with pytest.raises(ValueError, match="unknown run function"):
            catalog.get_run(name)
    assert calls == []


@pytest.mark.parametrize("spelling", ["opt-energy", "opt_energy"])
def test_a_plugin_cannot_take_over_a_built_in_spelling(tmp_path, evil_module, monkeypatch,
                                                      spelling):
    """Issue 23, item 10: an installed entry point named like a built-in is never loaded for
    the built-in's documented spellings, and registering one is refused."""
    name, marker = evil_module
    ep = EntryPoint(name="opt-energy", value=f"{name}:run", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(catalog, "_entry_points", lambda: [ep])
    monkeypatch.setattr(registry, "_RUNS", dict(registry._RUNS))
    monkeypatch.setattr(registry, "_PARAMS", dict(registry._PARAMS))
    assert catalog.canonical_run_name(spelling) == "opt_energy"
    assert catalog.get_run(spelling) is registry._RUNS["opt_energy"]
    assert load_spec({"name": "e", "run": spelling}, check_run=False)["run"] == spelling
    with pytest.raises(SpecError, match="opt_energy"):  # validated as the built-in: its params
        load_spec({"name": "e", "run": spelling})
    assert not marker.exists()

    def impostor(config):
        return {}

    for taken in ("opt-energy", "opt_energy"):
        with pytest.raises(ValueError, match="spelling of the built-in 'opt_energy'"):
            registry.register_run(taken)(impostor)
    assert catalog.get_run("opt-energy").__module__ == "overtensor.experiments.opt_energy"
