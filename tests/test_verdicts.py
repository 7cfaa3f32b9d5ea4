"""Verdicts where the user looks (issue 25): ``experiment run`` and ``demo`` end with one line per
claim (verdict, deciding numbers, seeds and configurations) and the report's path; two presets of
one experiment run into one store stay two groups, each named with its preset in the report; every
built-in figure has a caption; no axis prints an offset."""

from __future__ import annotations

import dataclasses
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

import tests._runfns
from overtensor.cli import experiment as exp_cli
from overtensor.cli.main import main
from overtensor.experiments import plots, registry
from overtensor.experiments.catalog import list_experiments
from overtensor.experiments.report import build_report
from overtensor.experiments.store import ResultStore

LINE = re.compile(r"^(SUPPORTED|NOT SUPPORTED|INCONCLUSIVE) +(\S+) \((preset \w+|own spec)\): (.+) -- (.+) "
                  r"\[(\d+) seeds? x (\d+) configurations?\]$")


def _claims(df):
    mean = df["value"].mean()
    return [registry.Claim("Doe (2020)", "", "The mean value stays below 10.",
                           "supported" if mean < 10 else "not supported",
                           f"mean over {len(df)} runs: {mean:.2f} < 10", "poly_value"),
            registry.Claim("Doe (2020)", "", "Nothing else.", "inconclusive", "too few seeds")]


@pytest.fixture
def exp(monkeypatch):
    presets = dict(tests._runfns.EXPERIMENT.presets)
    presets["tiny"] = {**presets["small"], "seeds": 1, "grid": {"group": [0], "x": [1, 2]}}
    e = dataclasses.replace(tests._runfns.EXPERIMENT, claims=_claims, presets=presets,
                            captions={"poly_value": "Value against x."})
    monkeypatch.setitem(registry._EXPERIMENTS, "test-poly-exp", e)
    return e


def test_experiment_run_ends_with_one_line_per_claim_and_the_report(tmp_path, capsys, exp):
    store = tmp_path / "s.sqlite"
    assert main(["experiment", "run", "test-poly-exp", "--inprocess", "--no-progress",
                 "--store", str(store)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"report: {(tmp_path / 's-report.html').resolve()}"
    assert (tmp_path / "s-report.html").is_file()
    verdicts = [LINE.match(line) for line in lines[-3:-1]]
    assert all(verdicts), lines[-3:-1]
    # the small preset: 2 seeds over the 6 grid points; the deciding number is on the line
    assert [m.group(1) for m in verdicts] == ["SUPPORTED", "INCONCLUSIVE"]
    assert verdicts[0].group(2, 3, 6, 7) == ("test-poly-exp", "preset small", "2", "6")
    assert "mean over 12 runs: 5.17 < 10" in verdicts[0].group(5)


def test_two_presets_in_one_store_stay_two_groups_named_by_preset(tmp_path, capsys, exp):
    store = tmp_path / "s.sqlite"
    for preset in ("tiny", "small"):
        assert main(["experiment", "run", "test-poly-exp", "--preset", preset, "--inprocess",
                     "--no-progress", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "test-poly-exp.tiny: 2 runs" in out and "test-poly-exp: 12 runs, 0 already done" in out
    with ResultStore(store, readonly=True) as db:
        assert db.experiments() == ["test-poly-exp", "test-poly-exp.tiny"]
        assert len(db.dataframe("test-poly-exp")) == 12 and len(db.dataframe("test-poly-exp.tiny")) == 2
    report = build_report(store, tmp_path / "r.html")
    assert [(g.group, g.preset, g.seeds, g.configs) for g in report.groups] == [
        ("test-poly-exp", "small", 2, 6), ("test-poly-exp.tiny", "tiny", 1, 2)]
    page = report.path.read_text()
    assert "<h2 id='test-poly-exp'>test-poly-exp (preset small)</h2>" in page
    assert "<h2 id='test-poly-exp.tiny'>test-poly-exp.tiny (preset tiny)</h2>" in page
    # the smoke-test caveat belongs to the tiny group only
    lines = report.verdict_lines()
    assert [line.split()[0] for line in lines] == ["SUPPORTED", "INCONCLUSIVE", "SUPPORTED", "INCONCLUSIVE",
                                                   "note:", "report:"]
    assert lines[4].startswith("note: the verdicts of test-poly-exp.tiny (preset tiny) are not evidence")


def test_a_spec_of_its_own_is_named_so(tmp_path, exp):
    store = tmp_path / "s.sqlite"
    spec = {**exp.presets["small"], "seeds": 3}
    from overtensor.experiments.runner import run_sweep

    run_sweep(spec, store, scheduler="inprocess", progress=False)
    (group,) = build_report(store, tmp_path / "r.html").groups
    assert group.preset is None and group.label == "test-poly-exp (own spec)" and group.seeds == 3


def test_demo_ends_with_the_verdicts_and_the_report(tmp_path, capsys, monkeypatch, exp):
    monkeypatch.setattr(exp_cli, "DEMO_EXPERIMENTS", ("test-poly-exp",))
    report = tmp_path / "demo.html"
    assert main(["demo", "--inprocess", "--no-progress", "--store", str(tmp_path / "d.sqlite"),
                 "-o", str(report)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"report: {report.resolve()}"
    assert all(LINE.match(line) for line in lines[-3:-1]), lines[-3:-1]


def test_the_demo_experiments_decide_five_claims():
    # `make demo` prints five verdicts: two of lazy-lower-bound, one of width-vs-dimension, two of
    # deflation (each claims function returns its claims even when they are inconclusive).
    from overtensor.experiments.catalog import get_experiment

    assert exp_cli.DEMO_EXPERIMENTS == ("lazy-lower-bound", "width-vs-dimension", "deflation")
    for name in exp_cli.DEMO_EXPERIMENTS:
        assert get_experiment(name).claims is not None


BUILTIN = [e for e in list_experiments() if e.figures.__module__.startswith("overtensor.")]


@pytest.mark.parametrize("e", BUILTIN, ids=lambda e: e.name)
def test_every_builtin_figure_has_a_caption(e):
    # Figure stems are fixed names (or one per problem / model): every one has a caption that says
    # what it shows and what to read from it.
    import inspect

    source = inspect.getsource(inspect.getmodule(e.figures))
    stems = set(re.findall(r'outdir\) / "(\w+)"', source)) | set(re.findall(r'outdir / "(\w+)"', source))
    stems |= set(re.findall(r'"(lazy_lower_bound_\w+)"\),', source))  # lazy-lower-bound's loop
    for stem in stems:
        assert stem in e.captions, (e.name, stem)
    for stem, caption in e.captions.items():
        assert len(caption) > 80 and "Read" in caption, (e.name, stem)  # what it shows, what to read


def test_axes_are_written_without_offsets(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0.98981, 0.98982, 0.98983])
    plots.save(fig, tmp_path / "f", formats=("svg",))
    fig2, ax2 = plt.subplots()
    ax2.plot([0, 1, 2], [0.98981, 0.98982, 0.98983])
    plots.no_offsets(fig2)
    fig2.canvas.draw()
    assert ax2.yaxis.get_major_formatter().get_offset() == ""
    labels = [t.get_text() for t in ax2.get_yticklabels() if t.get_text()]
    assert any(lab.startswith("0.9898") for lab in labels), labels
