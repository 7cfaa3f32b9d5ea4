"""fit's grouped options (issue 20, item 4): each group validates itself, fit refuses a group (or a
field) its method or regime would ignore, and the flat names of sweeps and the CLI map onto the
groups."""

from __future__ import annotations

import pytest

import overtensor as ot
from overtensor.tensors.config import split_options


@pytest.fixture(scope="module")
def target():
    return ot.random_target(3, 6, 2, components="orthonormal", random_state=0)


@pytest.mark.parametrize(("make", "field", "shown"), [
    (lambda: ot.GradientSchedule(lr=-1.0), "lr", "-1"),
    (lambda: ot.GradientSchedule(lr=float("nan")), "lr", "nan"),
    (lambda: ot.GradientSchedule(max_steps=0), "max_steps", "0"),
    (lambda: ot.GradientSchedule(final_steps=-1), "final_steps", "-1"),
    (lambda: ot.GradientSchedule(model="mlp"), "model", "mlp"),
    (lambda: ot.GradientSchedule(signs="weird"), "signs", "weird"),
    (lambda: ot.GradientSchedule(init_scale=0.0), "init_scale", "0"),
    (lambda: ot.GradientSchedule(epoch_growth=0.5), "epoch_growth", "0.5"),
    (lambda: ot.GradientSchedule(main_epochs="sometimes"), "main_epochs", "sometimes"),
    (lambda: ot.GradientSchedule(optimizer="adamm"), "optimizer", "adamm"),
    (lambda: ot.GradientSchedule(patience=0), "patience", "0"),
    (lambda: ot.Extraction(merge_cos=2.0), "merge_cos", "2"),
    (lambda: ot.Extraction(polish_iter=-1), "polish_iter", "-1"),
    (lambda: ot.Extraction(rank=0), "rank", "0"),
    (lambda: ot.Extraction(extract="yes"), "extract", "yes"),
    (lambda: ot.Runtime(engine="fast"), "engine", "fast"),
    (lambda: ot.Runtime(threads=-2), "threads", "-2"),
    (lambda: ot.Runtime(engine="paper", shortcuts=ot.Shortcuts()), "shortcuts", "paper"),
    (lambda: ot.Runtime(progress="no"), "progress", "no"),
])
def test_each_group_refuses_a_bad_field_when_it_is_built(make, field, shown):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert field in str(info.value) and shown in str(info.value)


def test_groups_are_frozen_and_numpy_integers_are_accepted():
    import dataclasses

    import numpy as np

    schedule = ot.GradientSchedule(max_steps=np.int64(300), eval_every=np.int32(10))
    assert (schedule.max_steps, schedule.eval_every) == (300, 10)
    assert type(schedule.max_steps) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.lr = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "shown"), [
    (dict(method="spm", schedule=ot.GradientSchedule(lr=0.1)), "lr=0.1"),
    (dict(method="power-method", schedule=ot.GradientSchedule(max_steps=10)), "max_steps=10"),
    (dict(method="power-method", extraction=ot.Extraction(rank=1)), "rank=1"),
    (dict(method="spm", runtime=ot.Runtime(engine="paper")), "engine='paper'"),
    (dict(method="power-method", callback=lambda r, s: False), "callback"),
    (dict(width=8, regime="lazy", extraction=ot.Extraction(merge_cos=0.9)), "merge_cos=0.9"),
    (dict(width=8, regime="lazy", schedule=ot.GradientSchedule(final_steps=10)), "final_steps=10"),
    (dict(width=8, regime="random-features", runtime=ot.Runtime(engine="paper")),
     "engine='paper'"),
    (dict(width=8, regime="orthogonal", schedule=ot.GradientSchedule(optimizer="adam")),
     "optimizer='adam'"),
    (dict(width=8, alpha=10.0), "alpha=10.0"),
    (dict(width=8, power=ot.PowerOptions()), "power="),
    (dict(width=8, orthogonal=ot.OrthogonalOptions()), "orthogonal="),
])
def test_fit_refuses_an_option_its_method_or_regime_would_ignore(target, kwargs, shown):
    with pytest.raises(ValueError, match="does not use") as info:
        ot.fit(target, **kwargs)
    assert shown in str(info.value)


@pytest.mark.parametrize(("name", "value"), [
    ("schedule", {"lr": 0.1}), ("extraction", 3), ("runtime", "paper"), ("power", "plain"),
    ("orthogonal", "cayley"),
])
def test_a_group_of_the_wrong_type_names_the_argument_and_the_class(target, name, value):
    kwargs = {"regime": "orthogonal"} if name == "orthogonal" else {}
    kwargs["method"] = "power-method" if name == "power" else "beyond-lazy"
    with pytest.raises(TypeError, match=name) as info:
        ot.fit(target, 8, **kwargs, **{name: value})
    assert repr(value) in str(info.value)


def test_default_groups_are_no_options_given(target):
    # Groups left at their defaults are accepted by every method (nothing is "given").
    for method in ("power-method", "spm"):
        res = ot.fit(target, method=method, random_state=0, schedule=ot.GradientSchedule(),
                     extraction=ot.Extraction(), runtime=ot.Runtime())
        assert res.relative_error < 1e-6


def test_flat_names_map_onto_the_groups_and_the_rest_pass_through():
    out = split_options({"lr": 0.1, "max_steps": 50, "rank": 2, "engine": "paper", "width": 7,
                         "regime": "lazy", "progress": False})
    assert out["schedule"] == ot.GradientSchedule(lr=0.1, max_steps=50)
    assert out["extraction"] == ot.Extraction(rank=2)
    assert out["runtime"] == ot.Runtime(engine="paper", progress=False)
    assert (out["width"], out["regime"]) == (7, "lazy")
    with pytest.raises(ValueError, match="lr"):
        split_options({"lr": -1})


def test_the_grouped_call_takes_the_same_decisions_as_the_batched_engines_flat_options(target):
    # Two doors, one set of options: fit's groups and fit_batched's flat names give the same fit.
    grouped = ot.fit(target, 6, random_state=3, tol=1e-6,
                     schedule=ot.GradientSchedule(lr=0.08, max_steps=1500, eval_every=25),
                     extraction=ot.Extraction(polish_iter=5), runtime=ot.Runtime(engine="paper"))
    flat = ot.fit_batched([target], 6, random_states=[3], tol=1e-6, lr=0.08, max_steps=1500,
                          eval_every=25, polish_iter=5)[0]
    assert grouped.steps == flat.steps and grouped.stop_reason == flat.stop_reason
    assert grouped.cp.rank == flat.cp.rank


def test_cli_help_groups_mirror_the_config_objects(capsys):
    import contextlib

    from overtensor.cli.main import main

    with contextlib.suppress(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for title in ("schedule (overtensor.GradientSchedule)", "extraction (overtensor.Extraction)",
                  "runtime (overtensor.Runtime)"):
        assert title in text


def test_the_refusal_names_the_group_the_option_belongs_to(target):
    with pytest.raises(ValueError, match=r"does not use GradientSchedule\(lr=0.1\), "
                                         r"Extraction\(merge_cos=0.9\)"):
        ot.fit(target, method="spm", schedule=ot.GradientSchedule(lr=0.1),
               extraction=ot.Extraction(merge_cos=0.9))


def test_a_progress_bar_does_not_change_the_default_route(target):
    # Before, Runtime(progress=True) (the CLI without --json) sent every fit to the paper route.
    plain = ot.fit(target, 8, random_state=0)
    shown = ot.fit(target, 8, random_state=0, runtime=ot.Runtime(progress=True))
    assert shown.info["route"]["engine"] == plain.info["route"]["engine"] == "spm"
    assert shown.relative_error == plain.relative_error


def test_schedule_options_on_the_default_route_run_the_gradient_method_that_uses_them(target):
    # An option of the gradient schedule is never left unused by the SPM shortcut.
    res = ot.fit(target, 8, random_state=0, schedule=ot.GradientSchedule(lr=0.05))
    assert res.info["route"]["engine"] != "spm"
    assert "lr=0.05" in res.info["route"]["spm"]["skipped"]
    assert res.history and res.relative_error <= 1e-4
    # A budget is a cap, not a request for gradient steps: SPM still answers within it.
    capped = ot.fit(target, 8, random_state=0, schedule=ot.GradientSchedule(max_steps=300))
    assert capped.info["route"]["engine"] == "spm"


@pytest.mark.parametrize(("argv", "message"), [
    ("--lr -1", "--lr must be > 0, got -1.0"),
    ("--method power-method --steps 10", "--steps: not used by --method power-method"),
    ("--method spm --lr 0.1 --engine paper", "--lr, --engine: not used by --method spm"),
    ("--regime lazy --engine paper", "--engine: not used by --regime lazy"),
    ("--regime lazy --max-rank 2", "--max-rank: not used by --regime lazy"),
])
def test_cli_names_the_flag_a_method_or_regime_would_ignore(capsys, argv, message):
    from overtensor.cli.main import main

    code = main(["fit", "--order", "3", "--dim", "6", "--rank", "2", "--width", "6",
                 *argv.split()])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"overtensor: error: {message}" + err.split(message, 1)[1]
    assert len(err.splitlines()) == 1


def test_cli_laziness_on_the_default_route_says_why_it_is_missing(capsys):
    import json

    from overtensor.cli.main import main

    assert main(["fit", "--order", "3", "--dim", "6", "--rank", "2", "--width", "6",
                 "--laziness", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "kernel_change" not in summary
    assert any("--laziness" in w and "--engine paper" in w for w in summary["warnings"])
