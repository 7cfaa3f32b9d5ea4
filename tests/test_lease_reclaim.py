"""A sweep never exits 0 with a run not done (issue 23, item 5): a lease whose holder does not
renew it within a lease period (a killed process not yet reaped, a row from another host) is
reclaimed and its run executed; runs neither done nor failed make the CLI exit 3, named."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.cli.exit_codes import RunsFailed
from overtensor.cli.experiment import _check_failed
from overtensor.experiments.runner import SweepResult, run_sweep
from overtensor.experiments.spec import config_hash, expand
from overtensor.experiments.store import LeaseOwner, ResultStore

SPEC = {"name": "held", "run": "test-poly", "grid": {"x": [1, 2, 3]}}


def held_lease(store, owner: LeaseOwner, lease_seconds: float) -> str:
    """Let ``owner`` claim the first config of SPEC, as a sweep that started it would."""
    h = config_hash("test-poly", expand(SPEC)[0])
    with ResultStore(store) as db:
        assert db.claim("held", h, owner, None, lease_seconds=lease_seconds) == "claimed"
    return h


def test_a_lease_from_another_host_that_is_not_renewed_is_reclaimed(tmp_path):
    store = tmp_path / "s.sqlite"
    held_lease(store, LeaseOwner("far:7:z", "far-away-host", 7), lease_seconds=1.0)
    result = run_sweep(SPEC, store, scheduler="inprocess", progress=False, lease_seconds=1.0)
    assert (result.done, result.failed, result.others, result.not_done) == (3, 0, 0, ())
    with ResultStore(store, readonly=True) as db:
        assert db.counts("held") == {"done": 3, "failed": 0} and db.leases() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_a_killed_process_not_yet_reaped_holds_no_lease(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc.send_signal(signal.SIGKILL)
        # Not waited for: a zombie, which still answers kill(pid, 0).
        for _ in range(200):
            with open(f"/proc/{proc.pid}/stat") as fh:
                if fh.read().rpartition(")")[2].split()[0] == "Z":
                    break
            import time

            time.sleep(0.01)
        host = socket.gethostname()
        store = tmp_path / "s.sqlite"
        held_lease(store, LeaseOwner(f"{host}:{proc.pid}:k", host, proc.pid), lease_seconds=600)
        result = run_sweep(SPEC, store, scheduler="inprocess", progress=False)
        assert (result.done, result.not_done) == (3, ())
    finally:
        proc.wait()


def test_runs_neither_done_nor_failed_exit_3_naming_them(tmp_path):
    result = SweepResult("held", 3, 0, 2, 0, 0.1, tmp_path / "s.sqlite", 0, ("abc123",))
    assert "1 NOT DONE" in result.line()
    with pytest.raises(RunsFailed, match="abc123") as info:
        _check_failed([result])
    assert info.value.exit_code == 3
