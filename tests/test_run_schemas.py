"""The run functions of the adaptive and OPT experiments declare real parameter schemas: a value out
of range or a choice the registries do not know is refused by ``load_spec`` / ``run_sweep`` before
any run, with an error naming the key and the value; every preset validates (issue 9, item 1)."""

from __future__ import annotations

import pytest

from overtensor.experiments import registry
from overtensor.experiments.catalog import get_experiment, get_params
from overtensor.experiments.params import RunParams
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.spec import SpecError, load_spec

#: experiment -> (run function, bad key, bad value, words of the message, where the key lives).
CASES = {
    "adaptive-regression": ("adaptive_regression", "optimizer", "adamm", "'adam'", "grid"),
    "min-norm-generalization": ("min_norm_generalization", "scale", -3.0, "greater than 0", "grid"),
    "adaptive-networks": ("adaptive_networks", "lr_index", 7, "learning-rate grid", "grid"),
    "opt-energy": ("opt_energy", "width", 1, "greater than or equal to 2", "fixed"),
    "opt-expressivity": ("opt_expressivity", "order", 1, "greater than or equal to 2", "grid"),
    "opt-generalization": ("opt_generalization", "momentum", 1.5, "less than 1", "fixed"),
}


@pytest.mark.parametrize("experiment", sorted(CASES))
def test_the_run_function_declares_its_own_schema(experiment):
    run = CASES[experiment][0]
    get_params(run)  # loads the built-ins
    schema = registry._PARAMS[run]
    assert schema is not None and issubclass(schema, RunParams), f"{run} has no declared schema"
    assert get_params(run) is schema  # not the one inferred from the presets


@pytest.mark.parametrize("experiment", sorted(CASES))
def test_every_preset_validates(experiment):
    presets = get_experiment(experiment).presets
    assert {"tiny", "small", "full"} <= set(presets)
    for preset in presets.values():
        load_spec(preset)


@pytest.mark.parametrize("experiment", sorted(CASES))
def test_a_bad_value_is_refused_before_any_run_naming_key_and_value(experiment, tmp_path, monkeypatch):
    run, key, value, words, where = CASES[experiment]
    get_params(run)  # the built-ins are registered before the run function is replaced
    calls = []
    monkeypatch.setitem(registry._RUNS, run, lambda config: calls.append(config) or {})
    spec = dict(get_experiment(experiment).presets["tiny"])
    spec["name"] = "bad"
    if where == "grid":
        grid = dict(spec["grid"])
        grid[key] = [*grid.get(key, [spec["fixed"].get(key)])[:1], value]
        spec["grid"] = grid
        spec["fixed"] = {k: v for k, v in spec["fixed"].items() if k != key}
        path = f"grid.{key}[1]"
    else:
        spec["fixed"] = {**spec["fixed"], key: value}
        path = f"fixed.{key}"
    store = tmp_path / "s.sqlite"
    with pytest.raises(SpecError) as info:
        run_sweep(spec, store, scheduler="inprocess", progress=False)
    msg = str(info.value)
    assert info.value.key == path, msg
    assert repr(value) in msg and words in msg, msg
    assert calls == [] and not store.exists()


def _tiny(experiment: str, **fixed) -> dict:
    spec = dict(get_experiment(experiment).presets["tiny"])
    spec["fixed"] = {**spec["fixed"], **fixed}
    return spec


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        # unknown keys are refused, with the closest known one
        (_tiny("adaptive-regression", stepz=10), "fixed.stepz", "did you mean 'steps'"),
        (_tiny("opt-generalization", hiden=8), "fixed.hiden", "did you mean 'hidden'"),
        # choices come from the registries
        (_tiny("adaptive-regression", lr={"adamm": 0.1}), "fixed.lr.adamm", "'adamm'"),
        (_tiny("adaptive-regression", lr={"adam": -1}), "fixed.lr.adam", "greater than 0"),
        (_tiny("adaptive-regression", span_weights={"gaussian": "resid"}), "fixed.span_weights.gaussian",
         "'resid'"),
        (_tiny("adaptive-networks", optimizer="span-preserving") | {"grid": {"model": ["mlp"],
                                                                           "lr_index": [0]}},
         "fixed.optimizer", "'span-preserving'"),
        (_tiny("adaptive-networks", lr_grid={"adam": [0.1]}), "grid.optimizer[0]", "learning-rate grid"),
        (_tiny("opt-generalization") | {"grid": {"variant": ["opt-cayley", "opt-qr"]}}, "grid.variant[1]",
         "'opt-qr'"),
        (_tiny("opt-generalization", block_size=65), "fixed.block_size", "less than or equal to 64"),
        (_tiny("opt-energy") | {"grid": {"model": ["tensor"], "regime": ["lazy"]}}, "grid.regime[0]",
         "'lazy'"),
        # ranges and the keys a problem needs
        (_tiny("adaptive-regression", block=[30, 10]), "fixed.block", "start < stop"),
        (_tiny("adaptive-regression", records=1), "fixed.records", "greater than or equal to 2"),
        (_tiny("adaptive-regression") | {"grid": {"problem": ["nuisance"], "optimizer": ["gd"]}},
         "fixed.scale", "needs the scale"),
        (_tiny("opt-energy", rank=None), "fixed.rank", "needs rank"),
        (_tiny("opt-expressivity", eps=0.0), "fixed.eps", "greater than 0"),
        (_tiny("min-norm-generalization", lr={"gd": 0.1}), "fixed.lr.gd", "'gd'"),
        # safety only scales the curvature step of the SGD family
        (_tiny("lazy-vs-full-networks", safety=0.3), "fixed.safety", "optimizer 'adam'"),
        (_tiny("lazy-vs-full-networks", optimizer="sgd", safety=0.3), "fixed.safety", "lr=0.05"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_wrong_choices_ranges_and_unknown_keys_are_refused(spec, key, words):
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)


def test_a_run_name_spelled_with_the_other_separator_selects_the_registered_one():
    spec = _tiny("opt-energy")
    assert load_spec({**spec, "run": "opt-energy"})["run"] == "opt_energy"
    spec = dict(get_experiment("method-of-moments").presets["tiny"])
    assert load_spec({**spec, "run": "method_of_moments"})["run"] == "method-of-moments"


def test_an_unknown_run_name_suggests_the_closest_registered_ones():
    with pytest.raises(SpecError) as info:
        load_spec({**_tiny("opt-energy"), "run": "opt_enrgy"})
    assert info.value.key == "run" and "did you mean 'opt_energy'" in str(info.value)
