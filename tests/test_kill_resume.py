"""A sweep killed with SIGKILL part-way and started again: one row per run, earlier rows untouched."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from overtensor.experiments.spec import config_hash, expand, load_spec
from overtensor.experiments.store import ResultStore

SPEC = """
name: kill-me
run: fit
fixed: {order: 3, dim: 5, rank: 1, method: gd, max_steps: 400}
grid: {width: [2, 3, 4]}
seeds: 20
"""
ROOT = Path(__file__).resolve().parents[1]


def command(spec: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "overtensor.cli.main", "experiment", "run", str(spec), "--inprocess",
            "--store", str(store), "--no-progress"]


def done_rows(store: Path) -> int:
    if not store.exists():
        return 0
    con = sqlite3.connect(store, timeout=5.0)
    try:
        return con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0
    finally:
        con.close()


def test_sigkilled_sweep_resumes_to_exactly_one_row_per_run_and_keeps_earlier_rows(tmp_path):
    spec_path = tmp_path / "kill.yaml"
    spec_path.write_text(SPEC)
    store = tmp_path / "runs.sqlite"
    spec = load_spec(spec_path)
    expected = {config_hash("fit", c) for c in expand(spec)}
    assert len(expected) == 60

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command(spec_path, store), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600  # bounds a failure only; a loaded machine is slow
    while done_rows(store) < 5:
        assert proc.poll() is None, f"sweep ended before the kill: {proc.communicate()}"
        assert time.monotonic() < deadline, "5 runs not finished within 600 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with ResultStore(store) as db:
        before = {r["config_hash"]: r for r in db.rows()}
    assert 5 <= len(before) < 60, f"kill was not part-way: {len(before)} rows"
    assert all(r["status"] == "done" for r in before.values())

    again = subprocess.run(command(spec_path, store), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(before)} already done, {60 - len(before)} done, 0 failed" in again.stdout

    with ResultStore(store) as db:
        after = db.rows()
    hashes = [r["config_hash"] for r in after]
    assert len(hashes) == 60 and set(hashes) == expected
    assert all(r["status"] == "done" for r in after)
    by_hash = {r["config_hash"]: r for r in after}
    for h, row in before.items():
        assert by_hash[h] == row  # same id, metrics, history, finish time
