"""One mechanism for every subcommand: expected failures are one stderr line and a documented exit
code (issue 9, item 4); a bug keeps its traceback."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor import _io
from overtensor.cli import exit_codes as ec
from overtensor.cli.main import build_parser, main
from overtensor.experiments import runner
from overtensor.experiments.store import ResultStore

SPEC = "name: poly\nrun: test-poly\nfixed: {group: 0, fail_at: 2}\ngrid: {x: [1, 2, 3]}\nseeds: 2\n"


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("overtensor: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "poly.yaml"
    path.write_text(SPEC)
    return path


def run_cmd(spec, store, *extra):
    return ["experiment", "run", str(spec), "--inprocess", "--no-progress", "--store", str(store), *extra]


def test_a_sweep_with_failed_runs_exits_3_and_says_how_many_and_where(tmp_path, spec, capsys):
    store = tmp_path / "s.sqlite"
    assert main(run_cmd(spec, store, "--outdir", str(tmp_path / "figs"))) == ec.RUNS_FAILED
    out, err = capsys.readouterr()
    assert "poly: 6 runs, 0 already done, 4 done, 2 failed" in out  # the summary is still printed
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("overtensor: error: 2 of 6 runs failed (poly: 2); their errors: "
                               f"overtensor results export {store} --experiment poly")
    with ResultStore(store, readonly=True) as db:
        assert db.counts("poly") == {"done": 4, "failed": 2}


def test_a_clean_sweep_exits_0(tmp_path, spec, capsys):
    spec.write_text(SPEC.replace("fail_at: 2", "fail_at: 9"))
    assert main(run_cmd(spec, tmp_path / "s.sqlite")) == ec.OK
    assert capsys.readouterr().err == ""


def test_a_diverging_fit_exits_5(capsys):
    rc = main(["fit", "--dim", "5", "--rank", "2", "--lr", "1000", "--steps", "200", "--json",
               "--engine", "paper"])  # the default route would answer by SPM, no steps
    assert rc == ec.DIVERGED
    assert "the fit diverged" in one_line(capsys)


def test_disk_full_while_exporting_exits_4_naming_the_file(tmp_path, spec, capsys, monkeypatch):
    store = tmp_path / "s.sqlite"
    main(run_cmd(spec, store))
    capsys.readouterr()

    def full(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("overtensor.experiments.store.atomic_write", full)
    rc = main(["results", "export", str(store), "-o", str(tmp_path / "runs.csv")])
    assert rc == ec.FILE_ERROR
    assert one_line(capsys) == f"overtensor: error: No space left on device: '{tmp_path / 'runs.csv'}'"


def test_disk_full_in_the_store_during_a_sweep_exits_4(tmp_path, spec, capsys, monkeypatch):
    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(ResultStore, "record", full)
    assert main(run_cmd(spec, tmp_path / "s.sqlite")) == ec.FILE_ERROR
    assert "database or disk is full" in one_line(capsys)


def test_a_read_only_output_folder_exits_4_and_leaves_no_temporary(tmp_path, spec, capsys, monkeypatch):
    store = tmp_path / "s.sqlite"
    main(run_cmd(spec, store))
    capsys.readouterr()
    out = tmp_path / "out"
    out.mkdir()

    def denied(src, dst):  # what a read-only folder does to the final rename
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src), None, str(dst))

    monkeypatch.setattr(_io.os, "replace", denied)
    assert main(["report", str(store), "-o", str(out / "r.html")]) == ec.FILE_ERROR
    line = one_line(capsys)
    assert "Permission denied" in line and str(out / "r.html") in line
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_exits_130_with_one_line(tmp_path, spec, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "execute_batch", interrupted)
    assert main(run_cmd(spec, tmp_path / "s.sqlite")) == ec.INTERRUPTED
    assert one_line(capsys) == "overtensor: error: interrupted"


def test_a_bug_is_not_hidden_it_keeps_its_traceback(tmp_path, spec, monkeypatch):
    def bug(*args, **kwargs):
        raise AttributeError("a real bug")

    monkeypatch.setattr(runner, "plan_batches", bug)
    with pytest.raises(AttributeError, match="a real bug"):
        main(run_cmd(spec, tmp_path / "s.sqlite"))


def test_multi_line_messages_become_one_line():
    code, message = ec.classify(ValueError("first\n  second\tthird\n"))
    assert (code, message) == (ec.USAGE, "first second third")
    assert ec.classify(RuntimeError("x")) is None
    assert ec.classify(MemoryError()) == (ec.FILE_ERROR, "out of memory")
    assert ec.classify(FileNotFoundError(errno.ENOENT, "No such file or directory", "a.csv")) == (
        ec.FILE_ERROR, "No such file or directory: 'a.csv'")


def test_the_exit_codes_are_documented_in_help_and_docs(capsys):
    help_text = build_parser().format_help()
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"\n  {code} " in help_text
    docs = (__import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "experiments.md").read_text()
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"| `{code}` |" in docs
    assert "overtensor.runs" in docs
