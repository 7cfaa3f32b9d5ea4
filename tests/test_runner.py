"""Sweep runner: in-process and Dask give the same metrics; failures, resume, batching."""

from __future__ import annotations

import pytest

import tests._runfns as runfns
from overtensor.experiments.runner import dask_client, execute_batch, pending_runs, plan_batches, run_sweep
from overtensor.experiments.runs import TIMING_METRICS
from overtensor.experiments.spec import config_hash, expand
from overtensor.experiments.store import ResultStore
from overtensor.precision import EXACT

FIT_SPEC = {
    "name": "tiny-fit", "run": "fit",
    "fixed": {"order": 3, "dim": 6, "rank": 2, "max_steps": 600, "eps": 1e-2},
    "grid": {"method": ["beyond-lazy", "gd"], "width": [4, 8]}, "seeds": 3,
    "success": {"metric": "relative_error", "op": "<=", "value": 1e-3},
}
POLY = {"name": "poly", "run": "test-poly", "fixed": {"group": 0, "fail_at": 2}, "grid": {"x": [1, 2, 3, 4]},
        "seeds": 3}


def metrics_by_hash(store) -> dict[str, dict]:
    with ResultStore(store) as db:
        rows = db.rows(status="done")
    return {r["config_hash"]: {k: v for k, v in r["metrics"].items() if k not in TIMING_METRICS}
            for r in rows}


@pytest.fixture(scope="module")
def client():
    with dask_client("local", 2) as c:
        yield c


def test_local_dask_cluster_listens_on_localhost_only(client):
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in workers)
    # the HTTP endpoints (health, metrics) bind to localhost too
    assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.address) == "127.0.0.1"
    assert set(client.run(lambda dask_worker: dask_worker.http_server.address).values()) == {"127.0.0.1"}


def test_inprocess_and_two_dask_workers_give_identical_metrics_per_config_hash(tmp_path, client):
    a, b = tmp_path / "inprocess.sqlite", tmp_path / "dask.sqlite"
    ra = run_sweep(FIT_SPEC, a, scheduler="inprocess", progress=False)
    rb = run_sweep(FIT_SPEC, b, scheduler=client, progress=False)
    assert (ra.done, ra.failed, rb.done, rb.failed) == (12, 0, 12, 0)
    ma, mb = metrics_by_hash(a), metrics_by_hash(b)
    assert set(ma) == {config_hash("fit", c) for c in expand(FIT_SPEC)}
    # Same seeds, same decisions: every discrete metric is equal. Floats agree to rounding only:
    # the polish runs in NumPy/SciPy, whose BLAS threads differ between this process and a Dask
    # worker, so an error at the float64 floor may differ in its leading digit (hence EXACT).
    assert ma.keys() == mb.keys()
    for h in ma:
        assert ma[h].keys() == mb[h].keys(), h
        for key, va in ma[h].items():
            vb = mb[h][key]
            if isinstance(va, float) and isinstance(vb, float):
                assert vb == pytest.approx(va, rel=1e-6, abs=EXACT), (h, key)
            elif key != "threads":  # the intra-op threads of the process: not a result
                assert va == vb, (h, key)
    # the sweep is not trivial: beyond-lazy fits, plain gd from a small init does not
    # (docs/theory/tensors.md §7)
    errors = {m["method"]: [] for m in ma.values()}
    for m in ma.values():
        errors[m["method"]].append(m["relative_error"])
    assert max(errors["beyond-lazy"]) < 1e-3
    assert min(errors["gd"]) > 0.1


def test_failing_run_on_dask_is_recorded_with_its_error_and_the_sweep_continues(tmp_path, client):
    store = tmp_path / "s.sqlite"
    result = run_sweep(POLY, store, scheduler=client, progress=False)
    assert (result.total, result.done, result.failed) == (12, 9, 3)
    with ResultStore(store) as db:
        failed = db.rows(status="failed")
    assert sorted(r["config"]["seed"] for r in failed) == [0, 1, 2]
    assert all(r["config"]["x"] == 2 for r in failed)
    assert all("RuntimeError: planned failure at x=2" in r["error"] for r in failed)


def test_resume_skips_done_runs_and_retries_failed_ones(tmp_path):
    store = tmp_path / "s.sqlite"
    run_sweep(POLY, store, scheduler="inprocess", progress=False)
    runfns.CALLS.clear()
    fixed = {**POLY, "fixed": {"group": 0, "fail_at": 2}}
    again = run_sweep(fixed, store, scheduler="inprocess", progress=False)
    assert (again.skipped, again.done, again.failed) == (9, 0, 3)
    assert sorted(c["x"] for c in runfns.CALLS) == [2, 2, 2]
    with ResultStore(store) as db:
        assert len(db.rows()) == 12


def test_no_resume_reruns_everything_and_keeps_one_row_per_run(tmp_path):
    store = tmp_path / "s.sqlite"
    spec = {**POLY, "fixed": {"group": 0}}
    run_sweep(spec, store, scheduler="inprocess", progress=False)
    runfns.CALLS.clear()
    again = run_sweep(spec, store, scheduler="inprocess", resume=False, progress=False)
    assert (again.skipped, again.done) == (0, 12)
    assert len(runfns.CALLS) == 12
    with ResultStore(store) as db:
        assert len(db.rows()) == 12


def test_plan_batches_groups_by_key_in_chunks_of_batch_size():
    configs = [{"x": i, "group": i % 2, "seed": 0} for i in range(7)]
    batched, tasks = plan_batches("test-poly", configs, 3)
    assert batched is runfns.poly_batched
    assert [[c["x"] for c in t] for t in tasks] == [[0, 2, 4], [6], [1, 3, 5]]
    none, singles = plan_batches("test-poly", configs, 1)
    assert none is None and [len(t) for t in singles] == [1] * 7
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches("test-poly", configs, 0)


def test_batched_sweep_gives_the_same_rows_as_single_runs(tmp_path):
    spec = {"name": "poly", "run": "test-poly", "grid": {"group": [0, 1], "x": [1, 2, 3]}, "seeds": 2}
    single, batched = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    run_sweep(spec, single, scheduler="inprocess", progress=False)
    runfns.BATCHES.clear()
    run_sweep(spec, batched, scheduler="inprocess", batch_size=4, progress=False)
    assert [len(b) for b in runfns.BATCHES] == [4, 2, 4, 2]
    assert all(len({c["group"] for c in b}) == 1 for b in runfns.BATCHES)
    assert metrics_by_hash(single) == metrics_by_hash(batched)


def test_batched_dask_sweep_matches_single_runs(tmp_path, client):
    spec = {"name": "poly", "run": "test-poly", "grid": {"group": [0, 1], "x": [1, 2, 3]}, "seeds": 2}
    single, batched = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    run_sweep(spec, single, scheduler="inprocess", progress=False)
    result = run_sweep(spec, batched, scheduler=client, batch_size=3, progress=False)
    assert result.done == 12
    assert metrics_by_hash(single) == metrics_by_hash(batched)


def test_exception_in_a_batch_slot_fails_only_that_run():
    spec = {"name": "poly", "run": "test-poly"}
    configs = [{"group": 0, "x": x, "seed": 0, "fail_at": 2} for x in (1, 2, 3)]
    runfns.CALLS.clear()
    outs = execute_batch(runfns.poly, runfns.poly_batched, configs, spec)
    assert [o["status"] for o in outs] == ["done", "failed", "done"]
    assert "planned failure at x=2" in outs[1]["error"]
    assert len(runfns.CALLS) == 3  # no fallback: each config ran once


def test_broken_batch_falls_back_to_single_runs_so_only_real_failures_fail():
    spec = {"name": "poly", "run": "test-poly"}
    configs = [{"group": 0, "x": x, "seed": 0, "break_batch": True, "fail_at": 2} for x in (1, 2, 3)]
    outs = execute_batch(runfns.poly, runfns.poly_batched, configs, spec)
    assert [o["status"] for o in outs] == ["done", "failed", "done"]
    assert [o["metrics"].get("value") for o in outs] == [1, None, 9]
    assert outs[0]["history"] == [{"step": 0, "value": 1}]


def test_progress_bar_shows_done_failed_and_remaining(tmp_path, capsys):
    run_sweep(POLY, tmp_path / "s.sqlite", scheduler="inprocess", progress=True)
    err = capsys.readouterr().err
    assert "done 9 · failed 3 · remaining 0" in err


def test_unknown_scheduler_and_missing_jobqueue_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="scheduler must be"):
        run_sweep(POLY, tmp_path / "s.sqlite", scheduler="mpi", progress=False)
    with pytest.raises(ValueError, match="batch_size must be"):
        run_sweep(POLY, tmp_path / "s.sqlite", scheduler="inprocess", batch_size=0, progress=False)
    assert not (tmp_path / "s.sqlite").exists()  # rejected before the store was created
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install 'overtensor\[slurm\]'"):
            run_sweep(POLY, tmp_path / "s2.sqlite", scheduler="slurm", progress=False)
        assert not (tmp_path / "s2.sqlite").exists()


def test_pending_runs_counts_what_a_resumed_sweep_would_run(tmp_path):
    store = tmp_path / "s.sqlite"
    assert pending_runs(POLY, store) == 12
    assert not store.exists()
    run_sweep(POLY, store, scheduler="inprocess", progress=False)
    assert pending_runs(POLY, store) == 3  # the failed runs at x = 2


def test_sweep_on_an_existing_scheduler_by_tcp_address(tmp_path, client):
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    result = run_sweep(POLY, tmp_path / "s.sqlite", scheduler=address, progress=False)
    assert (result.done, result.failed) == (9, 3)
    expected = {}
    for c in expand(POLY):
        if c["x"] != 2:
            value = c["x"] ** 2 + c["seed"]
            expected[config_hash("test-poly", c)] = {"value": value, "root": value ** 0.5}
    assert metrics_by_hash(tmp_path / "s.sqlite") == expected
