"""Sweep runner: runs every config of a spec on Dask and commits each outcome to the store.

Schedulers
----------
``"inprocess"``
    Runs sequentially in this process (no Dask); for tiny sweeps and tests.
``"local"`` (default)
    Starts a ``distributed.LocalCluster`` of single-threaded worker processes, one per CPU core
    unless ``workers`` says otherwise. It listens on 127.0.0.1 only and is closed at the end.
``"tcp://HOST:PORT"``
    Connects to an existing Dask scheduler (workers must be able to import ``overtensor``).
``"slurm"``
    Starts a ``dask_jobqueue.SLURMCluster`` with ``workers`` jobs (optional extra:
    ``pip install 'overtensor[slurm]'``; queue, account and memory come from dask's
    ``jobqueue.yaml`` configuration or ``slurm_options``).

Every run executes in :func:`execute`, which never raises: a failing run becomes a ``failed`` row
with its traceback, and the sweep goes on. Each run uses ``threads_per_run`` torch threads (one by
default): parallelism comes from the workers, and fixed thread counts keep results bit-identical
between schedulers. When the run function has a batched variant
(:func:`overtensor.experiments.catalog.get_batched`) and ``batch_size > 1``, pending runs with the
same batch key are grouped into batches of up to ``batch_size`` and each batch is one task.

Concurrent sweeps share the work: each run is claimed in the store (a lease, see
:meth:`overtensor.experiments.store.ResultStore.claim`) just before it starts, so a second process
running the same spec into the same store skips the runs the first one holds or has finished and
runs the rest. On Dask only a window of tasks is claimed and submitted at a time (twice the worker
threads), for the same reason.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overtensor.experiments.names import check_name
from overtensor.experiments.spec import (
    DEFAULT_MAX_RUNS,
    config_hash,
    expand,
    load_spec,
    resolve_run,
    select_metrics,
)
from overtensor.experiments.store import (
    LEASE_SECONDS,
    LeaseKeeper,
    LeaseOwner,
    ResultStore,
    RunRecord,
    versions,
)

_MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class SweepResult:
    """Counts of one :func:`run_sweep` call."""

    experiment: str
    total: int
    skipped: int
    done: int
    failed: int
    seconds: float
    store: Path
    others: int = 0  # runs that another process sharing the store ran
    #: Config hashes of runs that are neither done nor failed in the store when the sweep ended
    #: (empty unless something outside this sweep removed or withheld them); the CLI exits 3.
    not_done: tuple[str, ...] = ()

    def line(self) -> str:
        shared = f", {self.others} run by another process" if self.others else ""
        missing = f", {len(self.not_done)} NOT DONE" if self.not_done else ""
        return (f"{self.experiment}: {self.total} runs, {self.skipped} already done, {self.done} done, "
                f"{self.failed} failed{shared}{missing} in {self.seconds:.1f} s -> {self.store}")


# -- execution of one run / one batch (runs on the workers) ----------------------------------------

@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _device_name(config: dict[str, Any]) -> str:
    dev = str(config.get("device") or "cpu")
    if dev.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return dev


def _outcome(config: dict[str, Any], spec: dict[str, Any], raw: Any, seconds: float) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError(f"a run function must return a dict of metrics, got {type(raw).__name__}")
    raw = dict(raw)
    history = raw.pop("history", None)
    return {"status": "done", "metrics": select_metrics(raw, spec), "history": history, "error": None,
            "wall_time": seconds, "device": _device_name(config), "versions": _versions()}


def _failure(config: dict[str, Any], exc: BaseException, seconds: float) -> dict[str, Any]:
    text = "".join(traceback.format_exception(exc))
    if len(text) > _MAX_ERROR_CHARS:
        text = "…" + text[-_MAX_ERROR_CHARS:]
    return {"status": "failed", "metrics": {}, "history": None, "error": text, "wall_time": seconds,
            "device": _device_name(config), "versions": _versions()}


@functools.cache
def _versions() -> dict[str, str]:
    # measured where the run executes: a cluster's workers may differ from the client
    return versions()


def execute(fn: Callable, config: dict[str, Any], spec: dict[str, Any],
            threads: int | None = 1) -> dict[str, Any]:
    """Run ``fn(config)``; returns an outcome dict (status, metrics, history, error, wall_time, device).

    Never raises (except KeyboardInterrupt/SystemExit): an exception becomes a ``failed`` outcome.
    """
    t0 = time.perf_counter()
    try:
        with _torch_threads(threads):
            raw = fn(dict(config))
        return _outcome(config, spec, raw, time.perf_counter() - t0)
    except Exception as exc:
        return _failure(config, exc, time.perf_counter() - t0)


def execute_batch(fn: Callable, batched: Callable | None, configs: list[dict[str, Any]],
                  spec: dict[str, Any], threads: int | None = 1) -> list[dict[str, Any]]:
    """Run several configs as one task: through ``batched`` when given, else one by one.

    The wall time of a batched run is the batch's time divided by its size. A batched function may
    put an exception in the slot of a config that failed (e.g. a diverged fit): that run is marked
    failed with it. If the batched function itself raises, each config is retried alone so that only
    the runs that really fail are marked failed.
    """
    if batched is None or len(configs) == 1:
        return [execute(fn, c, spec, threads) for c in configs]
    t0 = time.perf_counter()
    try:
        with _torch_threads(threads):
            raws = batched([dict(c) for c in configs])
        if len(raws) != len(configs):
            raise ValueError(f"batched run function returned {len(raws)} results for {len(configs)} configs")
        each = (time.perf_counter() - t0) / len(configs)
        return [_failure(c, r, each) if isinstance(r, BaseException) else _outcome(c, spec, r, each)
                for c, r in zip(configs, raws, strict=True)]
    except Exception:
        return [execute(fn, c, spec, threads) for c in configs]


# -- planning ---------------------------------------------------------------------------------------

def plan_batches(run: str, configs: list[dict[str, Any]], batch_size: int) -> tuple[Callable | None, list]:
    """Group configs into tasks: ``(batched_fn or None, [list of configs per task])``."""
    from overtensor.experiments.catalog import get_batched

    if batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    found = get_batched(run) if batch_size > 1 else None
    if found is None:
        return None, [[c] for c in configs]
    batched, key = found
    groups: dict[Any, list[dict[str, Any]]] = {}
    for c in configs:
        groups.setdefault(key(c), []).append(c)
    tasks = []
    for members in groups.values():
        for i in range(0, len(members), batch_size):
            tasks.append(members[i:i + batch_size])
    return batched, tasks


def pending_runs(spec: dict[str, Any], store: ResultStore | str | Path, experiment: str | None = None) -> int:
    """Number of runs of ``spec`` not yet ``done`` in ``store`` (what a resumed sweep would run)."""
    if not isinstance(store, ResultStore) and (not Path(store).is_file() or Path(store).stat().st_size == 0):
        if Path(store).is_dir():
            ResultStore(store, readonly=True)  # raises: a directory is not a store
        return len(expand(spec))
    db = store if isinstance(store, ResultStore) else ResultStore(store, readonly=True)
    try:
        done = db.done_hashes(experiment or spec["name"])
    finally:
        if db is not store:
            db.close()
    return sum(config_hash(spec["run"], c) not in done for c in expand(spec))


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


# -- the sweep --------------------------------------------------------------------------------------

def run_sweep(
    spec: dict[str, Any] | str | Path,
    store: ResultStore | str | Path,
    *,
    experiment: str | None = None,
    scheduler: Any = "local",
    workers: int | None = None,
    resume: bool = True,
    batch_size: int = 1,
    threads_per_run: int | None = 1,
    progress: bool = True,
    slurm_options: dict[str, Any] | None = None,
    max_runs: int = DEFAULT_MAX_RUNS,
    lease_seconds: float = LEASE_SECONDS,
) -> SweepResult:
    """Run every config of ``spec`` that is not already done and record each outcome.

    Parameters
    ----------
    spec : dict or path
        A spec (validated again here, so a bad spec fails before any run starts).
    store : ResultStore or path
        Where results go; a path opens (or creates) an SQLite store.
    experiment : str, optional
        Name under which rows are stored (default ``spec["name"]``).
    scheduler : "inprocess" | "local" | "tcp://HOST:PORT" | "slurm" | distributed.Client
        See the module docstring.
    workers : int, optional
        Worker processes for ``local`` (default: CPU cores) or jobs for ``slurm``.
    resume : bool
        Skip configs whose hash is already ``done`` (default). ``False`` reruns everything and
        replaces the rows.
    batch_size : int
        Largest batch of runs per task when the run function has a batched variant.
    threads_per_run : int or None
        torch threads per run (``None``: leave torch's setting alone).
    progress : bool
        Show a progress bar (done / failed / remaining, ETA) on stderr.
    slurm_options : dict, optional
        Keywords of ``dask_jobqueue.SLURMCluster`` (default ``cores=1, processes=1, memory="4GB"``).
    max_runs : int
        Refuse a spec of more runs than this before building its grid (default 10**6).
    lease_seconds : float
        Lifetime of the lease on a run being executed; renewed every third of it while this process
        lives, so another process re-claims the run only once this one has died.

    Returns
    -------
    SweepResult

    Raises
    ------
    SpecError, ValueError
        A bad spec, experiment name or option, before any run starts.
    StoreError
        ``store`` is not an overtensor store (left untouched).
    """
    spec = load_spec(spec, max_runs=max_runs)
    name = check_name(experiment, "experiment") if experiment is not None else spec["name"]
    if not (isinstance(lease_seconds, int | float) and lease_seconds > 0):
        raise ValueError(f"lease_seconds must be a positive number, got {lease_seconds!r}")
    fn = resolve_run(spec["run"])
    _check_scheduler(scheduler)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    own_store = not isinstance(store, ResultStore)
    db = ResultStore(store) if own_store else store
    t0 = time.perf_counter()
    owner = LeaseOwner.current()
    try:
        configs = expand(spec)
        hashes = [config_hash(spec["run"], c) for c in configs]
        seen = db.finished_at(name)  # snapshot: a row that changes later was written by another process
        done = db.done_hashes(name) if resume else set()
        pending = [c for c, h in zip(configs, hashes, strict=True) if h not in done]
        db.save_spec(name, spec)
        batched, tasks = plan_batches(spec["run"], pending, batch_size)
        counts = {"done": 0, "failed": 0, "others": 0}
        busy: list[dict[str, Any]] = []

        def claim(task: list[dict[str, Any]], retry: bool = False) -> list[dict[str, Any]]:
            mine = []
            for c in task:
                h = config_hash(spec["run"], c)
                state = db.claim(name, h, owner, seen.get(h), resume=resume, lease_seconds=lease_seconds)
                if state == "claimed":
                    mine.append(c)
                elif state == "busy" and not retry:
                    busy.append(c)  # held by a live process: looked at again at the end
                else:
                    counts["others"] += 1
                    bar.update(counts)
            return mine

        def record(config: dict[str, Any], out: dict[str, Any]) -> None:
            db.record(RunRecord(experiment=name, config_hash=config_hash(spec["run"], config),
                                run=spec["run"], config=config, **out),
                      overwrite=not resume, owner=owner)
            counts[out["status"]] += 1
            bar.update(counts)

        def run_inprocess(task_list: list[list[dict[str, Any]]], retry: bool = False) -> None:
            for task in task_list:
                mine = claim(task, retry)
                if not mine:
                    continue
                for c, out in zip(mine, execute_batch(fn, batched, mine, spec, threads_per_run), strict=True):
                    record(c, out)

        with _Bar(name, len(configs), len(configs) - len(pending), enabled=progress) as bar, \
                LeaseKeeper(db.path, owner, lease_seconds):
            try:
                if tasks:
                    if scheduler == "inprocess":
                        run_inprocess(tasks)
                    else:
                        with dask_client(scheduler, workers, slurm_options) as client:
                            _run_on_dask(client, fn, batched, tasks, spec, threads_per_run, claim, record,
                                         workers)
                # Runs another process held: wait until its holder records each one, or take it
                # over once the holder has not renewed its lease for a lease period (a dead or
                # zombie process, a lease row from a host that is gone): never skip it.
                poll = min(1.0, lease_seconds / 10)
                while busy:
                    waiting, busy = busy, []
                    run_inprocess([[c] for c in waiting])  # claim() puts the still-held back
                    if busy:
                        time.sleep(poll)
            finally:
                db.release(owner)
        recorded = db.finished_at(name)
        not_done = tuple(h for h in hashes if h not in recorded)
        return SweepResult(name, len(configs), len(configs) - len(pending), counts["done"],
                           counts["failed"], time.perf_counter() - t0, db.path, counts["others"],
                           not_done)
    finally:
        if own_store:
            db.close()


def _run_on_dask(client, fn, batched, tasks, spec, threads, claim, record, workers=None) -> None:
    """Claim and submit a window of tasks at a time; record each outcome as it arrives."""
    from distributed import as_completed

    window = max(8, 2 * sum(client.nthreads().values()), 2 * (workers or 0))
    queue = iter(tasks)
    futures: dict[Any, list[dict[str, Any]]] = {}
    running = as_completed()

    def fill() -> None:
        while len(futures) < window:
            task = next(queue, None)
            if task is None:
                return
            mine = claim(task)
            if mine:
                fut = client.submit(execute_batch, fn, batched, mine, spec, threads, pure=False)
                futures[fut] = mine
                running.add(fut)

    try:
        fill()
        for fut in running:
            task = futures.pop(fut)
            try:
                outs = fut.result()
            except Exception as exc:  # the worker died (KilledWorker) or the task could not run
                outs = [_failure(c, exc, 0.0) for c in task]
            for c, out in zip(task, outs, strict=True):
                record(c, out)
            fut.release()
            fill()
    finally:
        if futures:
            client.cancel(list(futures))


def _check_scheduler(scheduler: Any) -> None:
    from distributed import Client

    if scheduler == "slurm":
        try:
            import dask_jobqueue  # noqa: F401
        except ImportError:
            raise ValueError(
                "scheduler='slurm' needs dask-jobqueue: pip install 'overtensor[slurm]'") from None
    if isinstance(scheduler, Client) or scheduler in (None, "inprocess", "local", "slurm") or (
            isinstance(scheduler, str) and scheduler.startswith("tcp://")):
        return
    raise ValueError(
        f"scheduler must be 'inprocess', 'local', 'tcp://HOST:PORT', 'slurm' or a distributed.Client, "
        f"got {scheduler!r}")


@contextlib.contextmanager
def dask_client(scheduler: Any, workers: int | None = None, slurm_options: dict[str, Any] | None = None):
    """Context manager yielding a ``distributed.Client`` for ``scheduler`` (see the module docstring).

    Clusters it starts are closed on exit; a given Client is yielded as is and left open.
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is None or scheduler == "local":
        n = workers or default_workers()
        # Workers inherit the environment: one BLAS/OpenMP thread each, as many processes as cores.
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        # The scheduler's HTTP endpoint (dashboard off) also binds to localhost, on a free port.
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR, env=env,
                          scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                          ) as cluster, \
                Client(cluster) as client:
            yield client
        return
    if isinstance(scheduler, str) and scheduler.startswith("tcp://"):
        try:
            client = Client(scheduler)
        except OSError as exc:  # refused / timed out: a usage error, not a crash
            raise ValueError(f"cannot connect to the Dask scheduler {scheduler!r}: {exc}") from None
        with client:
            yield client
        return
    if scheduler == "slurm":
        _check_scheduler(scheduler)
        from dask_jobqueue import SLURMCluster

        opts = {"cores": 1, "processes": 1, "memory": "4GB", **(slurm_options or {})}
        with SLURMCluster(**opts) as cluster, Client(cluster) as client:
            cluster.scale(jobs=workers or 1)
            yield client
        return
    _check_scheduler(scheduler)


class _Bar:
    """A rich progress bar over runs: done / failed / remaining and ETA (stderr)."""

    def __init__(self, name: str, total: int, skipped: int, enabled: bool):
        self.name, self.total, self.skipped, self.enabled = name, total, skipped, enabled
        self._progress = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("done {task.fields[done]} · failed {task.fields[failed]} · "
                           "remaining {task.fields[remaining]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.name, total=self.total - self.skipped, done=0, failed=0,
                remaining=self.total - self.skipped)
            if self.skipped:
                self._progress.console.print(f"{self.name}: {self.skipped} of {self.total} runs already "
                                             "done in the store (resume)")
        return self

    def update(self, counts: dict[str, int]) -> None:
        if self._progress is not None:
            finished = counts["done"] + counts["failed"] + counts.get("others", 0)
            self._progress.update(self._task, completed=finished, done=counts["done"],
                                  failed=counts["failed"], remaining=self.total - self.skipped - finished)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
