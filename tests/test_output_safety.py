"""Outputs from untrusted stores and folders (issue 23, item 10): figures never written through
a symbolic link planted in the output folder, CSV export neutralizes formula cells, only
atomic_write's own temporary files are ever removed."""

from __future__ import annotations

import csv
import os

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor._io import LinkInOutput, atomic_write, remove_stale_temporaries
from overtensor.cli.main import main
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.store import ResultStore, RunRecord, neutralize_formulas


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "runs.sqlite"
    run_sweep({"name": "p", "run": "test-poly", "grid": {"x": [1, 2]}}, path,
              scheduler="inprocess", progress=False)
    return path


def test_a_report_never_writes_figures_through_a_planted_folder_link(tmp_path, store, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    (out.parent / "report_figures").symlink_to(outside)
    assert main(["report", str(store), "-o", str(out)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert list(outside.iterdir()) == [] and not out.exists()


def test_a_link_as_the_experiments_figure_folder_is_refused(tmp_path, store, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    figures = tmp_path / "out" / "report_figures"
    figures.mkdir(parents=True)
    (figures / "p").symlink_to(outside)
    out = tmp_path / "out" / "report.html"
    # The report keeps its other parts (a figure failure never loses it) and says why.
    assert main(["report", str(store), "-o", str(out)]) == 0
    assert list(outside.iterdir()) == []
    assert "symbolic link" in out.read_text()


def test_a_planted_link_file_is_replaced_not_written_through(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    target = tmp_path / "out" / "figure.png"
    target.parent.mkdir()
    target.symlink_to(secret)
    atomic_write(target, lambda tmp: tmp.write_bytes(b"png"))
    assert secret.read_text() == "SECRET"
    assert not target.is_symlink() and target.read_bytes() == b"png"


def test_link_refusal_is_a_value_error_naming_the_folder(tmp_path):
    from overtensor._io import check_not_link

    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(LinkInOutput, match="link"):
        check_not_link(tmp_path / "link")
    assert check_not_link(tmp_path) == tmp_path


@pytest.mark.parametrize("payload", ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0",
                                     "-2+3", "@SUM(A1)", "\tx"])
def test_csv_export_neutralizes_formula_cells_from_the_store(tmp_path, payload):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as db:
        db.record(RunRecord(experiment="e", config_hash="h", run="r", config={"label": payload},
                            status="failed", error=payload))
        db.export(tmp_path / "runs.csv")
    with open(tmp_path / "runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["label"] == "'" + payload and rows[0]["error"] == "'" + payload


def test_numbers_and_plain_text_are_exported_as_they_are():
    import pandas as pd

    df = pd.DataFrame({"a": ["-1.5", "text", "+2", None], "b": [1.0, -2.0, 3.0, 4.0]})
    out = neutralize_formulas(df)
    assert out["a"].tolist()[:3] == ["-1.5", "text", "+2"] and pd.isna(out["a"].tolist()[3])
    assert out["b"].tolist() == [1.0, -2.0, 3.0, 4.0]


def test_a_look_alike_temporary_file_is_never_removed(tmp_path):
    target = tmp_path / "report.html"
    dead = 2**22 + 12345  # above the default pid_max of 2^22: never a live process
    look_alike = tmp_path / f".report.{dead}.otmpabcdefgh.html"
    look_alike.write_text("the user's file")
    assert remove_stale_temporaries(target) == []
    atomic_write(target, lambda tmp: tmp.write_text("report"))
    assert look_alike.read_text() == "the user's file"


def test_atomic_write_marks_its_own_temporary_files(tmp_path):
    from overtensor._io import MARK

    seen = {}

    def write(tmp):
        try:
            seen["mark"] = os.getxattr(tmp, MARK)
        except OSError:
            seen["mark"] = None
        tmp.write_text("x")

    atomic_write(tmp_path / "r.html", write)
    if seen["mark"] is None:
        pytest.skip("no user extended attributes on this file system")
    assert seen["mark"] == str(os.getpid()).encode()
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
