"""SQLite result store: one row per run, never duplicated, exportable."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import torch

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.spec import run_inprocess
from overtensor.experiments.store import ResultStore, RunRecord

SPEC = {"name": "poly", "run": "test-poly", "fixed": {"group": 0}, "grid": {"x": [1, 2, 3]}, "seeds": 2,
        "success": {"metric": "value", "op": "<=", "value": 4}}


def rec(h="h1", status="done", value=1.0, **kw):
    return RunRecord(experiment="e", config_hash=h, run="r", config={"x": 1, "seed": 0}, status=status,
                     metrics={"value": value} if status == "done" else {}, wall_time=0.5, device="cpu",
                     error=None if status == "done" else "boom", **kw)


def test_store_uses_wal_and_a_unique_constraint_per_experiment_and_hash(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        assert db._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.record(rec())
        with pytest.raises(sqlite3.IntegrityError):
            db._con.execute(
                "INSERT INTO runs (experiment, config_hash, run, config, status, finished_at) "
                "VALUES ('e', 'h1', 'r', '{}', 'done', 'now')")


def test_a_done_row_is_never_duplicated_nor_changed_unless_overwrite(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        assert db.record(rec(value=1.0)) is True
        first = db.rows()
        assert db.record(rec(value=2.0)) is False
        assert db.rows() == first
        assert db.record(rec(value=3.0), overwrite=True) is True
        rows = db.rows()
        assert len(rows) == 1
        assert rows[0]["metrics"] == {"value": 3.0}


def test_a_failed_row_is_replaced_when_the_run_is_retried(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        db.record(rec(status="failed"))
        assert db.counts("e") == {"done": 0, "failed": 1}
        assert db.done_hashes("e") == set()
        db.record(rec(value=7.0))
        assert db.counts("e") == {"done": 1, "failed": 0}
        assert db.done_hashes("e") == {"h1"}
        assert db.rows()[0]["error"] is None


def test_rows_record_versions_device_wall_time_and_history(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        db.record(rec(history=[{"step": 0, "relative_error": 1.0}]))
        row = db.rows()[0]
    assert row["versions"]["torch"] == torch.__version__
    assert row["versions"]["overtensor"]
    assert row["device"] == "cpu"
    assert row["wall_time"] == 0.5
    assert row["history"] == [{"step": 0, "relative_error": 1.0}]
    assert row["status"] == "done"


def test_same_hash_in_two_experiments_gives_two_rows(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        db.record(rec())
        db.record(RunRecord(experiment="other", config_hash="h1", run="r", config={}, status="done"))
        assert db.experiments() == ["e", "other"]
        assert len(db.rows()) == 2


def test_status_must_be_done_or_failed(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db, pytest.raises(ValueError, match="status"):
        db.record(rec(status="running"))


def test_dataframe_has_the_layout_of_run_inprocess_plus_meta_columns(tmp_path):
    store = tmp_path / "s.sqlite"
    run_sweep(SPEC, store, scheduler="inprocess", progress=False)
    expected = run_inprocess(SPEC)
    with ResultStore(store) as db:
        df = db.dataframe("poly")
        assert db.spec("poly")["grid"] == {"x": [1, 2, 3]}
    assert list(df.columns[: len(expected.columns)]) == list(expected.columns)
    pd.testing.assert_frame_equal(df[expected.columns], expected)
    assert set(df["status"]) == {"done"}
    assert df["config_hash"].is_unique


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_every_run_with_config_and_metric_columns(tmp_path, fmt):
    store = tmp_path / "s.sqlite"
    run_sweep({**SPEC, "fixed": {"group": 0, "fail_at": 2}}, store, scheduler="inprocess", progress=False)
    with ResultStore(store) as db:
        out = db.export(tmp_path / f"runs.{fmt}")
    back = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert len(back) == 6
    assert sorted(back["status"]) == ["done"] * 4 + ["failed"] * 2
    done = back[back["status"] == "done"].sort_values(["x", "seed"])
    assert done["value"].tolist() == [1, 2, 9, 10]
    assert back.loc[back["status"] == "failed", "error"].str.contains("planned failure at x=2").all()


def test_export_rejects_an_unknown_format(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db, pytest.raises(ValueError, match="format"):
        db.export(tmp_path / "x.xlsx")


@pytest.mark.parametrize(("name", "fmt"), [("x.csv", "parquet"), ("x.parquet", "csv")])
def test_export_refuses_a_format_that_contradicts_the_suffix_and_writes_nothing(tmp_path, name, fmt):
    # Before, runs.csv --format parquet wrote Parquet bytes into a file named .csv, without a word.
    with (ResultStore(tmp_path / "s.sqlite") as db,
          pytest.raises(ValueError, match=r"is named \.(csv|parquet) but the format is")):
        db.export(tmp_path / name, fmt)
    assert not (tmp_path / name).exists()
    with ResultStore(tmp_path / "s.sqlite") as db:  # a suffix that names no format is the user's
        assert db.export(tmp_path / "runs.txt", "csv").exists()


def test_export_without_a_format_names_the_output_whose_suffix_tells_none(tmp_path):
    # The format is read from the suffix: an unknown one is named as the user typed the file.
    with ResultStore(tmp_path / "s.sqlite") as db, pytest.raises(ValueError, match=r"x\.txt"):
        db.export(tmp_path / "x.txt")
