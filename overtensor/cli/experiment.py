"""CLI commands for experiments, results, reports and the demo (a thin layer over the Python API).

``overtensor experiment list``, ``overtensor experiment run NAME_OR_SPEC_FILE``,
``overtensor results export STORE``, ``overtensor report STORE`` and ``overtensor demo``.

Failures are not handled here: they propagate to :func:`overtensor.cli.main.main`, which turns each
expected one into one line on stderr and a documented exit code (:mod:`overtensor.cli.exit_codes`).
``results export`` and ``report`` open the store read-only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from overtensor.cli.exit_codes import RunsFailed
from overtensor.experiments.spec import DEFAULT_MAX_RUNS, SPEC_SUFFIXES

#: The headline study of ``overtensor demo`` / ``make demo`` (small presets).
DEMO_EXPERIMENTS = ("lazy-lower-bound", "width-vs-dimension", "deflation")
DEFAULT_DIR = Path("overtensor-runs")


def default_figures_dir(store: str | Path, name: str) -> Path:
    """Where ``experiment run`` writes the figures of ``name`` without ``--outdir``: a folder named
    after the experiment next to the store (``overtensor-runs/<name>/`` for the default store,
    ``elsewhere/<name>/`` for ``--store elsewhere/x.sqlite``), never the current directory unless
    the store is there. ``name`` is a validated experiment name (never a path)."""
    from overtensor.experiments.names import slug

    return Path(store).parent / slug(name)


def default_report_path(store: str | Path) -> Path:
    """Where ``report`` and ``demo`` write the HTML report without ``-o``: next to the store, named
    after it (``x.sqlite`` -> ``x-report.html``; its figures go to ``x-report_figures/``)."""
    store = Path(store)
    return store.parent / f"{store.stem}-report.html"


def add_commands(sub) -> None:
    exp = sub.add_parser("experiment", help="list and run experiments (sweeps of fits)")
    exp_sub = exp.add_subparsers(dest="experiment_command", required=True)
    p = exp_sub.add_parser("list", help="show the built-in experiments and their presets")
    p.set_defaults(func=_cmd_list)
    p = exp_sub.add_parser("run", help="run a built-in experiment or a spec file into a result store")
    p.add_argument("target", metavar="NAME_OR_SPEC_FILE",
                   help="a built-in experiment name (see 'experiment list') or a .yaml/.toml spec file")
    p.add_argument("--preset", default=None,
                   help="preset of a built-in experiment: small (default) | full | tiny (seconds, "
                        "for checks) | others shown by 'experiment list'; a preset other than small "
                        "is stored as the group NAME.PRESET, never mixed with another preset's runs")
    p.add_argument("--store", default=None,
                   help=f"SQLite result store (default {DEFAULT_DIR}/<name>.sqlite)")
    p.add_argument("--outdir", "--out", dest="outdir", default=None,
                   help="figures folder (default: <name>/ next to the store, i.e. "
                        f"{DEFAULT_DIR}/<name>/ for the default store)")
    _add_scheduler_args(p)
    p.add_argument("--no-resume", action="store_true",
                   help="rerun configs already done in the store and replace their rows")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--max-runs", type=int, default=DEFAULT_MAX_RUNS, metavar="N",
                   help=f"refuse a spec of more than N runs (default {DEFAULT_MAX_RUNS})")
    p.set_defaults(func=_cmd_run)

    res = sub.add_parser("results", help="work with a result store")
    res_sub = res.add_subparsers(dest="results_command", required=True)
    p = res_sub.add_parser("export", help="export the runs of a store as CSV or Parquet")
    p.add_argument("store", help="SQLite result store")
    p.add_argument("--format", choices=("csv", "parquet"), default=None,
                   help="default: from the suffix of -o")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.add_argument("--experiment", default=None, help="only this experiment")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("report", help="write one self-contained HTML report of a result store")
    p.add_argument("store", help="SQLite result store")
    p.add_argument("-o", "--output", default=None,
                   help="HTML file (default: next to the store, STORE_STEM-report.html; the figures "
                        "go to STORE_STEM-report_figures/ beside it)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="the headline study: small presets of " + ", ".join(DEMO_EXPERIMENTS)
                       + "; writes an HTML report")
    p.add_argument("--store", default=str(DEFAULT_DIR / "demo.sqlite"),
                   help=f"result store (default {DEFAULT_DIR}/demo.sqlite; resumable)")
    p.add_argument("-o", "--output", default=None,
                   help="HTML report (default: next to the store, STORE_STEM-report.html, i.e. "
                        f"{DEFAULT_DIR}/demo-report.html for the default store)")
    # Batches of 8: the batched "fit" engine advances them together (same metrics up to rounding).
    _add_scheduler_args(p, batch_size=8)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo, no_resume=False, preset="small", max_runs=DEFAULT_MAX_RUNS)


def _add_scheduler_args(p, batch_size: int = 1) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None,
                   help="tcp://HOST:PORT of a running Dask scheduler, or 'slurm' (needs dask-jobqueue)")
    g.add_argument("--local-workers", type=int, default=None, metavar="N",
                   help="local Dask cluster with N worker processes (default: one per CPU core)")
    g.add_argument("--inprocess", action="store_true", help="run sequentially in this process (no Dask)")
    p.add_argument("--workers", type=int, default=None, help="number of SLURM jobs with --scheduler slurm")
    p.add_argument("--runs-per-batch", dest="batch_size", type=int, default=batch_size,
                   help=f"runs per task when the run function has a batched variant (default {batch_size})")


def _scheduler(args) -> tuple[Any, int | None]:
    # Options that apply to one scheduler only are refused with another (they were ignored).
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--runs-per-batch must be an integer >= 1, got {args.batch_size}")
    if args.workers is not None:
        if args.scheduler != "slurm":
            raise ValueError(f"--workers {args.workers} is the number of SLURM jobs of --scheduler "
                             "slurm; use --local-workers N for a local cluster, or remove it")
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.inprocess:
        return "inprocess", None
    if args.scheduler:
        return args.scheduler, args.workers
    if args.local_workers is not None and args.local_workers < 1:
        raise ValueError(f"--local-workers must be >= 1, got {args.local_workers}")
    return "local", args.local_workers


def _resolve(target: str, preset: str, max_runs: int = DEFAULT_MAX_RUNS) -> tuple[dict[str, Any], Any]:
    """The validated spec of a spec file or a built-in experiment preset, and the Experiment (or None)."""
    from overtensor.experiments.catalog import get_experiment, list_experiments
    from overtensor.experiments.spec import load_spec

    def experiment_names() -> set[str]:
        return {exp.name for exp in list_experiments()}

    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise ValueError(f"--max-runs must be an integer >= 1, got {max_runs!r}")
    # A built-in name stays a name even where the folder holds a file or folder of that name
    # (its figures folder, ./vs-classical/, after a first run): only a spec suffix, or a path
    # that names no built-in experiment, is read as a spec file.
    path = Path(target)
    if path.suffix in SPEC_SUFFIXES or (path.exists() and target not in experiment_names()):
        return load_spec(path, max_runs=max_runs), None
    exp = get_experiment(target)
    if preset not in exp.presets:
        raise ValueError(f"--preset must be one of {sorted(exp.presets)} for {target!r}, got {preset!r}")
    return load_spec(exp.presets[preset], origin=f"experiment {target!r} preset {preset!r}",
                     max_runs=max_runs), exp


def _cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from overtensor.experiments.catalog import list_experiments
    from overtensor.experiments.spec import expand

    table = Table(title="built-in experiments")
    for col in ("name", "question", "presets (runs)"):
        table.add_column(col)
    for exp in list_experiments():
        presets = ", ".join(f"{k} ({len(expand(v))})" for k, v in exp.presets.items())
        table.add_row(exp.name, exp.description, presets)
    Console().print(table)
    return 0


def group_name(name: str, preset: str | None) -> str:
    """The group under which ``experiment run`` stores a built-in experiment's runs: its name for
    the default preset ``small``, ``NAME.PRESET`` for another (so that two presets run into one
    store never merge); a spec file's runs (``preset`` None) go under the spec's name."""
    return name if preset in (None, "small") else f"{name}.{preset}"


def _cmd_run(args) -> int:
    preset = args.preset or "small"
    spec, exp = _resolve(args.target, preset, args.max_runs)  # before the heavy imports
    if exp is None and args.preset is not None:  # it was ignored
        raise ValueError(f"--preset {args.preset} selects a preset of a built-in experiment; the "
                         f"spec file {args.target} has none: remove --preset")
    scheduler, workers = _scheduler(args)  # its options checked before any store is made
    from overtensor.experiments.runner import run_sweep

    name = spec["name"]  # a validated name: never a path (overtensor.experiments.names)
    group = group_name(name, preset if exp is not None else None)
    store = Path(args.store) if args.store else DEFAULT_DIR / f"{name}.sqlite"
    result = run_sweep(spec, store, experiment=group, scheduler=scheduler, workers=workers,
                       resume=not args.no_resume, batch_size=args.batch_size,
                       progress=not args.no_progress, max_runs=args.max_runs)
    print(result.line())
    outdir = Path(args.outdir) if args.outdir else default_figures_dir(store, group)
    _figures_and_summary(group, exp, store, outdir)
    _check_failed([result])  # points to `results export`, which lists the failed runs' errors
    return 0


def _check_failed(results: list, report: Path | None = None) -> None:
    """Raise :class:`RunsFailed` (exit code 3) when any sweep had failed runs, saying where to read why."""
    missing = [r for r in results if getattr(r, "not_done", ())]
    if missing:
        where = "; ".join(f"{r.experiment}: {len(r.not_done)} ({', '.join(r.not_done[:5])}"
                          f"{', ...' if len(r.not_done) > 5 else ''})" for r in missing)
        raise RunsFailed(f"runs neither done nor failed in the store ({where}); run the same "
                         "command again to run them")
    failed = [r for r in results if r.failed]
    if not failed:
        return
    n, total = sum(r.failed for r in failed), sum(r.total for r in results)
    where = "; ".join(f"{r.experiment}: {r.failed}" for r in failed)
    first = failed[0]
    hint = (f"the report {report} lists them with their errors" if report is not None else
            f"their errors: overtensor results export {first.store} --experiment {first.experiment} "
            "-o runs.csv (rows with status 'failed', column 'error')")
    raise RunsFailed(f"{n} of {total} runs failed ({where}); {hint}")


def _figures_and_summary(group: str, exp, store: Path, outdir: Path) -> Path | None:
    """Print the experiment's summary, write its figures (generic ones for a spec file) and the
    store's report, and end with one line per claim of ``group`` (verdict, deciding numbers, seeds
    and configurations) and the report's path. Returns the report's path (None: no finished run)."""
    from overtensor.experiments.report import build_report, verdict_lines
    from overtensor.experiments.store import ResultStore

    with ResultStore(store, readonly=True) as db:
        df = db.dataframe(group)
    if df.empty:
        return None
    if exp is not None and exp.summary is not None:
        print(exp.summary(df))
    report = build_report(store, default_report_path(store), group_figures={group: outdir})
    mine = [g for g in report.groups if g.group == group]
    for g in mine:
        for path in g.figures:
            print(f"figure: {path}")
    for line in verdict_lines(mine):
        print(line)
    print(f"report: {report.path.resolve()}")
    return report.path


def _cmd_export(args) -> int:
    from overtensor.experiments.store import ResultStore

    with ResultStore(args.store, readonly=True) as db:
        path = db.export(args.output, args.format, experiment=args.experiment)
    print(path)
    return 0


def _cmd_report(args) -> int:
    from overtensor.experiments.report import write_report

    print(write_report(args.store, args.output or default_report_path(args.store)))
    return 0


def _cmd_demo(args) -> int:
    from overtensor.experiments.catalog import get_experiment
    from overtensor.experiments.report import build_report
    from overtensor.experiments.runner import dask_client, pending_runs, run_sweep

    specs, missing = [], []
    for name in DEMO_EXPERIMENTS:
        try:
            exp = get_experiment(name)
        except ValueError:
            missing.append(name)
            continue
        specs.append(_resolve(exp.name, "small")[0])
    for name in missing:
        print(f"overtensor demo: experiment {name!r} is not registered in this install; skipped",
              file=sys.stderr)
    if not specs:
        raise ValueError(f"none of the demo experiments {list(DEMO_EXPERIMENTS)} is registered")
    scheduler, workers = _scheduler(args)
    if not any(pending_runs(s, args.store) for s in specs):
        scheduler = "inprocess"  # everything is done: no cluster to start
    if scheduler == "inprocess":
        results = [run_sweep(s, args.store, scheduler="inprocess", batch_size=args.batch_size,
                             progress=not args.no_progress) for s in specs]
    else:
        # One cluster for the whole study: workers start (and import torch) once.
        with dask_client(scheduler, workers, None) as client:
            results = [run_sweep(s, args.store, scheduler=client, batch_size=args.batch_size,
                                 progress=not args.no_progress) for s in specs]
    for r in results:
        print(r.line())
    report = build_report(args.store, args.output or default_report_path(args.store),
                          title="overtensor demo: the headline study")
    for line in report.verdict_lines():  # one per claim, then the report's path
        print(line)
    _check_failed(results, report.path)
    return 0
