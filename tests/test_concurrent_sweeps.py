"""Concurrent sweeps share the work through leases in the store; a killed report leaves no
temporary files (issue 9, item 7)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor._io import MARK
from overtensor.cli.main import main
from overtensor.experiments import runner
from overtensor.experiments.runner import run_sweep
from overtensor.experiments.store import LeaseKeeper, LeaseOwner, ResultStore, RunRecord

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys, tests._runfns; from overtensor.cli.main import main; sys.exit(main(sys.argv[1:]))"
N = 16


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def wait_for(predicate, what: str, procs=(), timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            assert p.poll() is None, f"process ended before {what}: {p.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def log_lines(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(pid, int(x)) for pid, x in (line.split() for line in log.read_text().splitlines())]


def test_two_processes_on_one_spec_and_store_run_each_config_once(tmp_path):
    log = tmp_path / "executions.log"
    spec = tmp_path / "shared.yaml"
    # The first process's run x=0 waits until the second process has run something: the second one
    # then finds x=0 leased by a live process and must leave it alone.
    spec.write_text(f"name: shared\nrun: test-count\nfixed: {{log: '{log}', wait_at: 0, sleep: 0.02}}\n"
                    f"grid: {{x: {list(range(N))}}}\n")
    store = tmp_path / "runs.sqlite"
    cmd = [sys.executable, "-c", CLI, "experiment", "run", str(spec), "--inprocess", "--no-progress",
           "--store", str(store), "--outdir", str(tmp_path / "figs")]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    wait_for(lambda: log_lines(log), "the first run", [first])
    second = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    outs = [p.communicate(timeout=900) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs

    runs = log_lines(log)
    assert len(runs) == N, runs  # total executions == grid size
    assert sorted(x for _, x in runs) == list(range(N))
    assert {pid for pid, x in runs if x == 0} == {str(first.pid)}
    assert {pid for pid, _ in runs} == {str(first.pid), str(second.pid)}
    by_first = sum(pid == str(first.pid) for pid, _ in runs)
    assert f"{by_first} done, 0 failed, {N - by_first} run by another process" in outs[0][0]
    assert f"{N - by_first} done, 0 failed, {by_first} run by another process" in outs[1][0]
    with ResultStore(store, readonly=True) as db:
        assert db.counts("shared") == {"done": N, "failed": 0}
        assert db.leases() == []


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_are_exclusive_while_the_holder_lives_and_reclaimable_once_it_died(tmp_path):
    me, other = LeaseOwner.current(), LeaseOwner.current()
    host = socket.gethostname()
    with ResultStore(tmp_path / "s.sqlite") as db:
        assert db.claim("e", "h1", me, None) == "claimed"
        assert db.claim("e", "h1", me, None) == "claimed"  # idempotent for the holder
        assert db.claim("e", "h1", other, None) == "busy"
        # a dead process on this host: its lease is taken over at once
        ghost = LeaseOwner(f"{host}:1:x", host, dead_pid())
        assert db.claim("e", "h2", ghost, None) == "claimed"
        assert db.claim("e", "h2", other, None) == "claimed"
        # another host: alive until the lease expires
        remote = LeaseOwner("far:1:y", "far-away-host", 1)
        assert db.claim("e", "h4", remote, None, lease_seconds=600) == "claimed"
        assert db.claim("e", "h4", other, None) == "busy"
        assert db.claim("e", "h5", remote, None, lease_seconds=0.0) == "claimed"  # expired at once
        assert db.claim("e", "h5", other, None) == "claimed"
        # recording the run drops the holder's lease; the run is then finished for everyone
        db.record(RunRecord(experiment="e", config_hash="h1", run="r", config={}, status="done"), owner=me)
        assert [lease["config_hash"] for lease in db.leases("e")] == ["h2", "h4", "h5"]
        assert db.claim("e", "h1", other, None) == "finished"
        # a failed row written after our snapshot: another process ran it, do not run it again
        db.record(RunRecord(experiment="e", config_hash="h6", run="r", config={}, status="failed"))
        assert db.claim("e", "h6", other, None) == "finished"
        seen = db.finished_at("e")["h6"]
        assert db.claim("e", "h6", other, seen) == "claimed"  # failed before we planned: retried
        db.release(other)
        assert {lease["owner"] for lease in db.leases("e")} == {remote.id}


def test_lease_keeper_renews_the_leases_of_a_live_sweep(tmp_path):
    owner = LeaseOwner.current()
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as db:
        assert db.claim("e", "h", owner, None, lease_seconds=0.3) == "claimed"
        with LeaseKeeper(path, owner, lease_seconds=0.3):
            time.sleep(0.8)
            assert db.leases()[0]["expires_at"] > time.time()  # without renewal it expired 0.5 s ago
            assert db.claim("e", "h", LeaseOwner("far:2:z", "far-away-host", 2), None) == "busy"


def test_an_interrupted_sweep_releases_its_leases(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "execute_batch", interrupted)
    store = tmp_path / "s.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_sweep({"name": "p", "run": "test-poly", "grid": {"x": [1, 2]}}, store, scheduler="inprocess",
                  progress=False)
    with ResultStore(store, readonly=True) as db:
        assert db.leases() == []


SLOW_REPORT = """
import sys, time
import tests._runfns
from overtensor.experiments import report

real = report.atomic_write

def slow(path, write):
    def w(tmp):
        write(tmp)
        open(sys.argv[3], "w").write("ready")
        time.sleep(3600)  # killed by the test long before
    return real(path, w)

report.atomic_write = slow
from overtensor.cli.main import main
sys.exit(main(["report", sys.argv[1], "-o", sys.argv[2]]))
"""


def hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


@pytest.fixture
def small_store(tmp_path):
    store = tmp_path / "runs.sqlite"
    run_sweep({"name": "p", "run": "test-poly", "grid": {"x": [1, 2]}}, store, scheduler="inprocess",
              progress=False)
    return store


def test_a_terminated_report_leaves_no_hidden_temporary_file(tmp_path, small_store):
    out = tmp_path / "out" / "report.html"
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_REPORT, str(small_store), str(out), str(ready)],
                            cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(ready.exists, "the report's temporary file", [proc])
    assert len(hidden(out.parent)) == 1  # the half-written report
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == ["overtensor: error: terminated by SIGTERM"]
    assert not out.exists()
    assert hidden(out.parent) == []


def test_the_leftover_of_a_sigkilled_writer_is_removed_by_the_next_write(tmp_path, small_store):
    # SIGKILL cannot be caught: the temporary file of the killed process stays until the next
    # report to the same file, which removes the temporaries of processes that no longer exist.
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    pid = dead_pid()
    leftover = out.parent / f".report.{pid}.otmpk1ll3d.html"
    leftover.write_text("<html>half")
    try:  # the mark atomic_write puts on the files it creates (issue 23, item 10)
        os.setxattr(leftover, MARK, str(pid).encode())
    except OSError:
        pytest.skip("this file system has no user extended attributes: no stale clean-up")
    live = out.parent / f".report.{os.getpid()}.otmpl1ve00.html"  # a writer still at work
    live.write_text("<html>in progress")
    os.setxattr(live, MARK, str(os.getpid()).encode())
    other = out.parent / ".report.notes.html"  # not ours
    other.write_text("keep")
    # Same name pattern, dead pid, but not created by atomic_write (no mark): never removed.
    look_alike = out.parent / f".report.{pid}.otmpabcdefgh.html"
    look_alike.write_text("the user's")
    assert main(["report", str(small_store), "-o", str(out)]) == 0
    assert out.exists()
    assert sorted(hidden(out.parent)) == sorted([live, other, look_alike])
    assert look_alike.read_text() == "the user's"
