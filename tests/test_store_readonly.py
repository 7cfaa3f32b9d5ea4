"""Other people's files are left alone: export and report open a store read-only, and a file that is
not an overtensor store gives one error line and stays byte-identical (issue 9, item 3)."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.cli.main import main
from overtensor.experiments.report import write_report
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.store import ResultStore, StoreError

SPEC = {"name": "poly", "run": "test-poly", "grid": {"x": [1, 2]}, "seeds": 2}


def fingerprint(folder):
    """Every file under ``folder``: content hash and mtime (ns)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        out[p.name] = (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir", st.st_mtime_ns)
    return out


def make_foreign(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO users (name) VALUES ('alice')")
    con.commit()
    con.close()


def make_foreign_runs(path):
    # another application's table that happens to be called "runs"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, command TEXT)")
    con.commit()
    con.close()


def make_corrupted(path):
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)


def make_random(path):
    path.write_bytes(os.urandom(5000))


def make_empty(path):
    path.write_bytes(b"")


def make_dir(path):
    path.mkdir()
    (path / "keep.txt").write_text("mine")


def make_truncated_store(path):
    run_sweep(SPEC, path, scheduler="inprocess", progress=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] + b"\x00garbage" * 100)


KINDS = {
    "foreign-sqlite": (make_foreign, "not an overtensor result store"),
    "foreign-runs-table": (make_foreign_runs, "not an overtensor result store"),
    "corrupted-header": (make_corrupted, "store"),
    "random-bytes": (make_random, "not an SQLite database"),
    "zero-bytes": (make_empty, "empty file"),
    "directory": (make_dir, "is a directory"),
    "truncated-store": (make_truncated_store, "store"),
}


def commands(path, tmp):
    return {
        "export": ["results", "export", str(path), "-o", str(tmp / "out" / "x.csv")],
        "report": ["report", str(path), "-o", str(tmp / "out" / "r.html")],
        "run": ["experiment", "run", str(tmp / "spec.yaml"), "--inprocess", "--no-progress", "--store",
                str(path)],
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("command", ["export", "report", "run"])
def test_a_file_that_is_not_a_store_gets_one_error_line_and_is_not_modified(tmp_path, capsys, kind, command):
    if command == "run" and kind == "zero-bytes":
        pytest.skip("a sweep may start in an empty file: a store that a concurrent sweep has just "
                    "created looks like that")
    make, words = KINDS[kind]
    home = tmp_path / "theirs"
    home.mkdir()
    path = home / "data.db"
    make(path)
    (tmp_path / "spec.yaml").write_text("name: poly\nrun: test-poly\ngrid: {x: [1, 2]}\n")
    before = fingerprint(home)
    capsys.readouterr()
    rc = main(commands(path, tmp_path)[command])
    err = capsys.readouterr().err
    if kind == "truncated-store" and command != "run" and rc == 0:  # pragma: no cover - depends on the cut
        pytest.skip("the cut left a readable store")
    assert rc == 4, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert words in lines[0]
    assert str(path) in lines[0]
    assert fingerprint(home) == before  # same bytes, same mtimes, no -wal/-shm/-journal next to it
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_and_report_leave_an_overtensor_store_byte_identical(tmp_path, capsys):
    home = tmp_path / "store"
    home.mkdir()
    path = home / "runs.sqlite"
    run_sweep({**SPEC, "fixed": {"fail_at": 2}}, path, scheduler="inprocess", progress=False)
    before = fingerprint(home)
    assert list(before) == ["runs.sqlite"]
    assert main(["results", "export", str(path), "-o", str(tmp_path / "x.csv")]) == 0
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 0
    assert fingerprint(home) == before


def test_readonly_store_refuses_writes_and_keeps_wal_mode_untouched(tmp_path):
    path = tmp_path / "plain.sqlite"
    con = sqlite3.connect(path)  # a rollback-journal database with the store's tables
    from overtensor.experiments.store import SCHEMA

    con.executescript(SCHEMA)
    con.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with ResultStore(path, readonly=True) as db:
        assert db.experiments() == []
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db.save_spec("x", {})
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_export_of_an_unknown_experiment_fails_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "runs.sqlite"
    run_sweep(SPEC, path, scheduler="inprocess", progress=False)
    rc = main(["results", "export", str(path), "--experiment", "nosuch", "-o", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [f"overtensor: error: experiment 'nosuch' is not in store {str(path)!r} (it holds: 'poly')"]
    assert not (tmp_path / "x.csv").exists()


def test_python_api_raises_store_error_for_a_foreign_file(tmp_path):
    path = tmp_path / "theirs.db"
    make_foreign(path)
    with pytest.raises(StoreError, match="not an overtensor result store"):
        write_report(path, tmp_path / "r.html")
    with pytest.raises(StoreError, match="not an overtensor result store"):
        ResultStore(path)
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_store_another_sweep_is_creating_is_completed_but_a_foreign_specs_table_is_refused(tmp_path):
    from overtensor.experiments.store import SCHEMA

    half = tmp_path / "half.sqlite"  # what a concurrent sweep may have created so far
    con = sqlite3.connect(half)
    con.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS specs")[0])
    con.close()
    with ResultStore(half) as db:
        db.save_spec("x", {"name": "x"})
        assert db.experiments() == ["x"]
    odd = tmp_path / "odd.sqlite"
    con = sqlite3.connect(odd)
    con.execute("CREATE TABLE specs (id INTEGER, body TEXT)")
    con.commit()
    con.close()
    digest = hashlib.sha256(odd.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match="table 'specs' has other columns"):
        ResultStore(odd)
    assert hashlib.sha256(odd.read_bytes()).hexdigest() == digest
