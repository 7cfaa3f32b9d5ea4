"""SQLite result store: one row per finished run, committed on its own.

A single file, no server. The database runs in WAL mode and every finished run is written in its
own transaction, so a sweep killed at any moment (even with SIGKILL) keeps every run that finished
before. ``UNIQUE(experiment, config_hash)`` makes a row per run impossible to duplicate: a resumed
sweep skips the hashes already ``done``; a ``failed`` row is replaced when the run is retried.

Table ``runs``: ``experiment, config_hash, run, config`` (JSON), ``metrics`` (JSON), ``history``
(JSON list, compact), ``status`` (``done`` | ``failed``), ``error``, ``wall_time`` (seconds),
``device``, ``versions`` (JSON: overtensor, torch, python), ``finished_at`` (UTC ISO time).
Table ``specs``: the spec of each experiment name, for the report.
"""

from __future__ import annotations

import json
import platform
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overtensor._io import atomic_write

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    run TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT,
    history TEXT,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    wall_time REAL,
    device TEXT,
    versions TEXT,
    finished_at TEXT NOT NULL,
    UNIQUE (experiment, config_hash)
);
CREATE TABLE IF NOT EXISTS specs (
    experiment TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

#: Columns of :meth:`ResultStore.dataframe` besides the config and metric columns.
META_COLUMNS = ("experiment", "config_hash", "status", "error", "wall_time", "run_device", "finished_at")


@dataclass
class RunRecord:
    """The outcome of one run, as the runner hands it to the store."""

    experiment: str
    config_hash: str
    run: str
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] | None = None
    error: str | None = None
    wall_time: float | None = None
    device: str | None = None
    versions: dict[str, str] | None = None


def versions() -> dict[str, str]:
    """Versions of the software that produced a row."""
    import torch

    from overtensor import __version__

    return {"overtensor": __version__, "torch": torch.__version__, "python": platform.python_version()}


class ResultStore:
    """A results database in one SQLite file.

    Parameters
    ----------
    path : str or Path
        The file; created (with its parent folder) when missing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; each write below opens its own explicit transaction.
        self._con = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(SCHEMA)

    # -- context manager -------------------------------------------------------------------
    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def save_spec(self, experiment: str, spec: dict[str, Any]) -> None:
        with self._transaction():
            self._con.execute(
                "INSERT INTO specs (experiment, spec, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(experiment) DO UPDATE SET spec = excluded.spec, "
                "updated_at = excluded.updated_at",
                (experiment, json.dumps(spec, sort_keys=True), _now()),
            )

    def record(self, rec: RunRecord, *, overwrite: bool = False) -> bool:
        """Write one run in its own transaction; returns whether a row was written.

        A ``done`` row is never changed unless ``overwrite`` (``--no-resume``); a ``failed`` row is
        replaced by the new outcome.
        """
        if rec.status not in ("done", "failed"):
            raise ValueError(f"status must be 'done' or 'failed', got {rec.status!r}")
        where = "" if overwrite else " WHERE runs.status = 'failed'"
        with self._transaction():
            cur = self._con.execute(
                "INSERT INTO runs (experiment, config_hash, run, config, metrics, history, status, error, "
                "wall_time, device, versions, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(experiment, config_hash) DO UPDATE SET run = excluded.run, "
                "config = excluded.config, metrics = excluded.metrics, history = excluded.history, "
                "status = excluded.status, error = excluded.error, wall_time = excluded.wall_time, "
                "device = excluded.device, versions = excluded.versions, finished_at = excluded.finished_at"
                + where,
                (rec.experiment, rec.config_hash, rec.run, _dumps(rec.config), _dumps(rec.metrics),
                 _dumps(rec.history) if rec.history is not None else None, rec.status, rec.error,
                 rec.wall_time, rec.device, _dumps(rec.versions or versions()), _now()),
            )
            return cur.rowcount > 0

    def _transaction(self):
        con = self._con

        class _Tx:
            def __enter__(self):
                con.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                con.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    # -- reading ---------------------------------------------------------------------------
    def done_hashes(self, experiment: str) -> set[str]:
        rows = self._con.execute(
            "SELECT config_hash FROM runs WHERE experiment = ? AND status = 'done'", (experiment,))
        return {r[0] for r in rows}

    def experiments(self) -> list[str]:
        rows = self._con.execute("SELECT DISTINCT experiment FROM runs UNION SELECT experiment FROM specs")
        return sorted(r[0] for r in rows)

    def spec(self, experiment: str) -> dict[str, Any] | None:
        row = self._con.execute("SELECT spec FROM specs WHERE experiment = ?", (experiment,)).fetchone()
        return json.loads(row[0]) if row else None

    def counts(self, experiment: str | None = None) -> dict[str, int]:
        sql, args = "SELECT status, COUNT(*) FROM runs", ()
        if experiment is not None:
            sql, args = sql + " WHERE experiment = ?", (experiment,)
        out = {"done": 0, "failed": 0}
        out.update(dict(self._con.execute(sql + " GROUP BY status", args).fetchall()))
        return out

    def rows(self, experiment: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Raw rows as dicts (JSON columns decoded), in insertion order."""
        sql, clauses, args = "SELECT * FROM runs", [], []
        if experiment is not None:
            clauses.append("experiment = ?")
            args.append(experiment)
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        cur = self._con.execute(sql + " ORDER BY id", args)
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values, strict=True))
            for key in ("config", "metrics", "history", "versions"):
                row[key] = json.loads(row[key]) if row[key] is not None else None
            out.append(row)
        return out

    def dataframe(self, experiment: str | None = None, status: str | None = "done"):
        """One row per run: config columns, metric columns, then :data:`META_COLUMNS`.

        The layout matches :func:`overtensor.experiments.spec.run_inprocess`, so an experiment's
        ``figures(df, outdir)`` works on either. A config or metric named like a meta column wins.
        """
        import pandas as pd

        records = []
        for row in self.rows(experiment, status):
            rec = {**row["config"], **(row["metrics"] or {})}
            meta = {"experiment": row["experiment"], "config_hash": row["config_hash"],
                    "status": row["status"], "error": row["error"], "wall_time": row["wall_time"],
                    "run_device": row["device"], "finished_at": row["finished_at"]}
            for key, value in meta.items():
                rec.setdefault(key, value)
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def export(self, path: str | Path, fmt: str | None = None, experiment: str | None = None) -> Path:
        """Write all runs (done and failed) as ``csv`` or ``parquet``; the format defaults to the suffix."""
        path = Path(path)
        fmt = fmt or path.suffix.lstrip(".")
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be 'csv' or 'parquet', got {fmt!r}")
        df = self.dataframe(experiment, status=None)
        # Columns mixing lists and scalars do not fit parquet's typed columns: store them as JSON text.
        for col in df.columns:
            if df[col].map(lambda v: isinstance(v, list | dict)).any():
                df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
        if fmt == "csv":
            return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ValueError("parquet export needs pyarrow: pip install 'overtensor[parquet]'") from exc
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)  # key order kept: it is the column order


def _json_default(value: Any) -> Any:
    # numpy / torch scalars returned by run functions
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")

