"""Figures and reports go next to the store the user chose (or where ``--outdir`` / ``-o`` says),
never silently into the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from overtensor.cli.experiment import default_figures_dir, default_report_path
from overtensor.cli.main import main


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """An empty current directory that must stay empty."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


def test_defaults_are_derived_from_the_store():
    assert default_figures_dir("elsewhere/x.db", "opt-energy") == Path("elsewhere/opt-energy")
    assert default_figures_dir(Path("overtensor-runs/opt-energy.sqlite"), "opt-energy") == \
        Path("overtensor-runs/opt-energy")
    assert default_report_path("elsewhere/x.db") == Path("elsewhere/x-report.html")
    assert default_report_path("overtensor-runs/demo.sqlite") == Path("overtensor-runs/demo-report.html")


def test_figures_and_report_go_next_to_the_chosen_store(tmp_path, cwd, capsys):
    store = tmp_path / "elsewhere" / "x.db"
    run = ["experiment", "run", "lazy-lower-bound", "--preset", "tiny", "--inprocess", "--no-progress",
           "--store", str(store)]
    assert main(run) == 0
    figdir = tmp_path / "elsewhere" / "lazy-lower-bound.tiny"  # the group: experiment and preset
    assert {"lazy_lower_bound_m_over_dl1.png", "lazy_lower_bound_m_over_dl1.svg"} <= _files(figdir)
    out = capsys.readouterr().out
    assert f"figure: {figdir / 'lazy_lower_bound_m_over_dl1.png'}" in out
    # the terminal carries the report's caveat for a tiny preset's verdicts, and the report's path
    assert ("note: the verdicts of lazy-lower-bound.tiny (preset tiny) are not evidence (tiny preset: "
            "a smoke test, not evidence)") in out
    assert out.strip().splitlines()[-1] == f"report: {tmp_path / 'elsewhere' / 'x-report.html'}"
    assert _files(cwd) == set()  # no overtensor-runs/ here

    # the report without -o: beside the store, its figures beside it
    assert main(["report", str(store)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "elsewhere" / "x-report.html")
    assert (tmp_path / "elsewhere" / "x-report.html").is_file()
    assert any(f.startswith("x-report_figures/lazy-lower-bound.tiny/")
               for f in _files(tmp_path / "elsewhere"))
    assert _files(cwd) == set()

    # explicit places win: --out (alias of --outdir) for the figures, -o for the report
    assert main([*run, "--out", str(tmp_path / "figs")]) == 0  # resumed: nothing reruns
    assert {"lazy_lower_bound_m_over_dl1.png", "lazy_lower_bound_m_over_dl1.svg"} <= _files(tmp_path / "figs")
    assert main(["report", str(store), "-o", str(tmp_path / "r" / "page.html")]) == 0
    assert (tmp_path / "r" / "page.html").is_file() and (tmp_path / "r" / "page_figures").is_dir()
    assert _files(cwd) == set()


def test_a_relative_store_in_the_current_directory_keeps_everything_there(cwd):
    # "next to the store" also when the user chose the current directory: nothing elsewhere
    assert main(["experiment", "run", "lazy-lower-bound", "--preset", "tiny", "--inprocess", "--no-progress",
                 "--store", "s.sqlite"]) == 0
    assert main(["report", "s.sqlite"]) == 0
    files = _files(cwd)
    assert "s.sqlite" in files and "s-report.html" in files
    assert any(f.startswith("lazy-lower-bound.tiny/") for f in files)
    assert not any(f.startswith("overtensor-runs") for f in files)
