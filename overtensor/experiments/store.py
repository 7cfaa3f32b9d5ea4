"""SQLite result store: one row per finished run, committed on its own.

A single file, no server. The database runs in WAL mode and every finished run is written in its
own transaction, so a sweep killed at any moment (even with SIGKILL) keeps every run that finished
before. ``UNIQUE(experiment, config_hash)`` makes a row per run impossible to duplicate: a resumed
sweep skips the hashes already ``done``; a ``failed`` row is replaced when the run is retried.

Table ``runs``: ``experiment, config_hash, run, config`` (JSON), ``metrics`` (JSON), ``history``
(JSON list, compact), ``status`` (``done`` | ``failed``), ``error``, ``wall_time`` (seconds),
``device``, ``versions`` (JSON: overtensor, torch, python), ``finished_at`` (UTC ISO time).
Table ``specs``: the spec of each experiment name, for the report.
Table ``leases``: the runs being executed right now, one row per claimed run with its owner
(``host:pid:token``), host, pid and expiry time (Unix seconds). A sweep claims a run before it
starts it (:meth:`ResultStore.claim`), renews its leases while it works and drops each lease with
the run's row, so that two processes running the same spec into one store share the work. A lease
whose process died is re-claimed: at once on the same host (its pid is gone), after its expiry
elsewhere.

Other people's files are left alone: ``ResultStore(path, readonly=True)`` (used by ``results export``
and ``report``) opens the file through SQLite's read-only URI (``mode=ro``), never switches it to WAL
and never creates a table; a writable store refuses an existing SQLite file that is not an
overtensor store. Either way a file that is not a store (a directory, a 0-byte file, another
application's database, a corrupted file) raises one :class:`StoreError` and is not modified.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
CREATE TABLE IF NOT EXISTS leases (
    experiment TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (experiment, config_hash)
);
"""

#: Columns a table ``runs`` must have for the file to be read as an overtensor store.
RUN_COLUMNS = frozenset({"id", "experiment", "config_hash", "run", "config", "metrics", "history", "status",
                         "error", "wall_time", "device", "versions", "finished_at"})
SPEC_COLUMNS = frozenset({"experiment", "spec", "updated_at"})
#: Tables of a store (``sqlite_sequence`` is SQLite's, for AUTOINCREMENT).
OWN_TABLES = frozenset({"runs", "specs", "leases", "sqlite_sequence"})
#: Default lifetime of a lease (seconds); a running sweep renews its leases every third of it.
LEASE_SECONDS = 120.0


class StoreError(ValueError):
    """A file is not a usable overtensor result store (missing, a directory, empty, another
    application's database, corrupted). The CLI exits with code 4."""

    exit_code = 4


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: a unique token per sweep, with the host and pid that let others see
    whether the process is still alive."""

    id: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> LeaseOwner:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{uuid.uuid4().hex[:12]}", host, pid)


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
        The file; created (with its parent folder) when missing, unless ``readonly``.
    readonly : bool
        Open an existing store read-only (SQLite ``mode=ro``): nothing in the file changes.

    Raises
    ------
    StoreError
        The file is missing (``readonly``), a directory, empty (``readonly``), another
        application's SQLite database, or not an SQLite database; the file is left as it was.
    OSError
        The folder cannot be created.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._con = _connect_readonly(self.path) if readonly else _connect_writable(self.path)

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

    def record(self, rec: RunRecord, *, overwrite: bool = False, owner: LeaseOwner | None = None) -> bool:
        """Write one run in its own transaction; returns whether a row was written.

        A ``done`` row is never changed unless ``overwrite`` (``--no-resume``); a ``failed`` row is
        replaced by the new outcome. With ``owner``, its lease on the run is dropped in the same
        transaction.
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
            if owner is not None:
                self._con.execute("DELETE FROM leases WHERE experiment = ? AND config_hash = ? AND owner = ?",
                                  (rec.experiment, rec.config_hash, owner.id))
            return cur.rowcount > 0

    # -- leases: sharing a sweep between processes -------------------------------------------
    def claim(self, experiment: str, config_hash: str, owner: LeaseOwner, seen: str | None, *,
              resume: bool = True, lease_seconds: float = LEASE_SECONDS) -> str:
        """Claim a run before starting it; returns ``"claimed"``, ``"finished"`` or ``"busy"``.

        ``seen`` is the ``finished_at`` of the run's row when the sweep was planned (None: no row).
        ``"finished"``: the run is ``done`` (with ``resume``) or its row changed since (another
        process ran it meanwhile). ``"busy"``: another live process holds the lease. Otherwise the
        lease (``owner``, expiring in ``lease_seconds``) is written and the run is ours.
        """
        now = time.time()
        with self._transaction():
            row = self._con.execute("SELECT status, finished_at FROM runs WHERE experiment = ? AND "
                                    "config_hash = ?", (experiment, config_hash)).fetchone()
            if row is not None and ((resume and row[0] == "done") or row[1] != seen):
                return "finished"
            lease = self._con.execute("SELECT owner, host, pid, expires_at FROM leases WHERE experiment = ? "
                                      "AND config_hash = ?", (experiment, config_hash)).fetchone()
            if lease is not None and lease[0] != owner.id and _alive(*lease[1:], now=now):
                return "busy"
            self._con.execute(
                "INSERT OR REPLACE INTO leases (experiment, config_hash, owner, host, pid, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (experiment, config_hash, owner.id, owner.host, owner.pid, now + lease_seconds))
            return "claimed"

    def release(self, owner: LeaseOwner) -> None:
        """Drop every lease ``owner`` still holds (runs it claimed but did not record)."""
        with self._transaction():
            self._con.execute("DELETE FROM leases WHERE owner = ?", (owner.id,))

    def leases(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """The lease rows (for inspection and tests)."""
        sql, args = "SELECT * FROM leases", ()
        if experiment is not None:
            sql, args = sql + " WHERE experiment = ?", (experiment,)
        cur = self._con.execute(sql + " ORDER BY config_hash", args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def finished_at(self, experiment: str) -> dict[str, str]:
        """``{config_hash: finished_at}`` of every row of ``experiment`` (a sweep's snapshot)."""
        rows = self._con.execute("SELECT config_hash, finished_at FROM runs WHERE experiment = ?",
                                 (experiment,))
        return dict(rows.fetchall())

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
        if row is None:
            return None
        try:
            spec = json.loads(row[0])
        except (TypeError, ValueError):
            spec = None
        if not isinstance(spec, dict):
            raise StoreError(f"store {str(self.path)!r} is corrupted: the spec of {experiment!r} is not "
                             "a JSON object")
        return spec

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
                try:
                    row[key] = json.loads(row[key]) if row[key] is not None else None
                except (TypeError, ValueError):
                    raise StoreError(f"store {str(self.path)!r} is corrupted: row {row.get('id')} has "
                                     f"a column {key!r} that is not JSON") from None
            if not isinstance(row["config"], dict) or not isinstance(row["metrics"] or {}, dict):
                raise StoreError(f"store {str(self.path)!r} is corrupted: row {row.get('id')} has a config "
                                 "or metrics that is not a JSON object")
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
        """Write all runs (done and failed) as ``csv`` or ``parquet``; the format defaults to the suffix.

        Raises
        ------
        ValueError
            Unknown format, a format that contradicts the file's suffix (``runs.csv`` with
            ``fmt="parquet"``), or ``experiment`` is not in the store.
        """
        path = Path(path)
        suffix = path.suffix.lstrip(".")
        if fmt is None and suffix not in ("csv", "parquet"):
            raise ValueError(f"cannot tell the format from the output's name {str(path)!r}: name it "
                             f".csv or .parquet, or give the format ('csv' or 'parquet')")
        fmt = fmt or suffix
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be 'csv' or 'parquet', got {fmt!r}")
        if suffix in ("csv", "parquet") and suffix != fmt:
            # A file named .csv holding Parquet (or the reverse) would mislead whoever opens it.
            raise ValueError(f"output {str(path)!r} is named .{suffix} but the format is {fmt!r}: "
                             f"name it {path.with_suffix('.' + fmt).name!r} or drop the format")
        if experiment is not None and experiment not in self.experiments():
            raise ValueError(f"experiment {experiment!r} is not in store {str(self.path)!r} "
                             f"(it holds: {', '.join(map(repr, self.experiments())) or 'nothing'})")
        df = self.dataframe(experiment, status=None)
        # Columns mixing lists and scalars do not fit parquet's typed columns: store them as JSON text.
        for col in df.columns:
            if df[col].map(lambda v: isinstance(v, list | dict)).any():
                df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
        if fmt == "csv":
            df = neutralize_formulas(df)
            return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ValueError("parquet export needs pyarrow: pip install 'overtensor[parquet]'") from exc
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


#: First characters that make a spreadsheet read a CSV cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formulas(df):
    """A copy of ``df`` whose text cells starting with ``= + - @`` (or a tab / carriage return)
    get a leading ``'``, so that a spreadsheet opening the exported CSV shows them as text
    instead of running them (a store can come from someone else). Numbers are left alone;
    ``-1.5`` as text stays a number only if it parses as one."""
    import pandas as pd

    out = df.copy()

    def fix(v):
        if isinstance(v, str) and v.startswith(FORMULA_STARTS) and not _is_number_text(v):
            return "'" + v
        return v

    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):  # object or pandas' string dtype
            out[col] = out[col].map(fix)
    out.columns = [fix(c) for c in out.columns]
    return out


def _is_number_text(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


class LeaseKeeper:
    """Context manager renewing ``owner``'s leases in ``path`` every ``lease_seconds / 3`` from a
    background thread (its own SQLite connection), so that a long run keeps its claim while its
    process lives, and a dead process's claims expire."""

    def __init__(self, path: Path, owner: LeaseOwner, lease_seconds: float = LEASE_SECONDS):
        self.path, self.owner, self.lease_seconds = Path(path), owner, float(lease_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="overtensor-leases", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with contextlib.suppress(sqlite3.Error):  # locked or gone: try again at the next tick
                con = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
                try:
                    con.execute("UPDATE leases SET expires_at = ? WHERE owner = ?",
                                (time.time() + self.lease_seconds, self.owner.id))
                finally:
                    con.close()


def _alive(host: str, pid: int, expires_at: float, *, now: float) -> bool:
    """Whether a lease still holds: not expired and, on this host, its process still exists."""
    if expires_at <= now:
        return False
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OverflowError, ValueError):
            return True
        return not _zombie(int(pid))
    return True  # another host: alive while it renews the lease (it expires otherwise)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is a killed process not yet reaped by its parent (Linux ``/proc``; False
    where that cannot be read): it still answers ``kill(pid, 0)`` but will never renew a lease."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return False
    # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces and parentheses).
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _connect_readonly(path: Path) -> sqlite3.Connection:
    name = repr(str(path))
    if not path.exists():
        raise StoreError(f"store {name} does not exist")
    if path.is_dir():
        raise StoreError(f"store {name} is a directory, not an overtensor result store")
    if path.stat().st_size == 0:
        raise StoreError(f"store {name} is an empty file, not an overtensor result store")
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
    if _is_wal(path) and not Path(f"{path}-wal").exists():
        # A WAL database that no process is writing (a writer always has its -wal file): read-only
        # SQLite would still leave -wal/-shm files next to it, immutable=1 reads the file alone.
        uri += "&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
    except sqlite3.Error as exc:
        raise StoreError(f"store {name} cannot be opened read-only: {exc}") from None
    try:
        _check_store(con, path, allow_empty=False)
    except BaseException:
        con.close()
        raise
    return con


def _is_wal(path: Path) -> bool:
    # SQLite header: bytes 18 and 19 (file format write/read versions) are 2 in WAL mode.
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return head.startswith(b"SQLite format 3\0") and head[18:20] == b"\x02\x02"


def _connect_writable(path: Path) -> sqlite3.Connection:
    name = repr(str(path))
    if path.is_dir():
        raise StoreError(f"store {name} is a directory, not an overtensor result store")
    existed = path.exists() and path.stat().st_size > 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: autocommit; each write opens its own explicit transaction.
        con = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    except sqlite3.Error as exc:
        raise StoreError(f"store {name} cannot be opened: {exc}") from None
    try:
        if existed:  # look before writing anything: another application's file stays untouched
            _check_store(con, path, allow_empty=True)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")  # all tables or none
    except sqlite3.Error as exc:
        con.close()
        raise StoreError(f"store {name} cannot be used: {exc}") from None
    except BaseException:
        con.close()
        raise
    return con


def _check_store(con: sqlite3.Connection, path: Path, *, allow_empty: bool) -> None:
    name = repr(str(path))
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {r[1] for r in con.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
        spec_columns = {r[1] for r in con.execute("PRAGMA table_info(specs)")} if "specs" in tables else set()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {name} is not an SQLite database or is corrupted ({exc})") from None
    if "specs" in tables and not SPEC_COLUMNS <= spec_columns:
        raise StoreError(f"{name} is not an overtensor result store (table 'specs' has other columns)")
    if allow_empty and tables <= OWN_TABLES and ("runs" not in tables or RUN_COLUMNS <= columns):
        return  # empty, or a store being created by a concurrent sweep: the schema is completed next
    if "runs" not in tables:
        held = ", ".join(sorted(tables)[:5]) or "none"
        raise StoreError(f"{name} is not an overtensor result store (no table 'runs'; tables: {held})")
    missing = RUN_COLUMNS - columns
    if "specs" not in tables:
        raise StoreError(f"{name} is not an overtensor result store (no table 'specs')")
    if missing:
        raise StoreError(f"{name} is not an overtensor result store (table 'runs' lacks "
                         f"{', '.join(sorted(missing))})")


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

