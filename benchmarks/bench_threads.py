"""The README quick-start fit with and without ``OMP_NUM_THREADS=1`` while another CPU-bound
process runs, and the start-up time of ``overtensor --help`` (issue 11).

Each fit runs in a fresh process (``python -c``: the quick-start fit, ``d = 100``, ``r = 10``,
``m = 50``, seed 0) and reports ``result.seconds`` (the whole fit: training, extraction, polish)
and the process's wall time (with imports). Configurations:

* ``rule``: this version's default, one thread chosen for the small problem
  (:mod:`overtensor.tensors.threads`), without and with ``OMP_NUM_THREADS=1``;
* ``torch default``: ``OVERTENSOR_THREADS=<cores>``, i.e. torch's default thread count, what every
  fit used before the rule (only without ``OMP_NUM_THREADS``; ``--skip-default`` leaves it out, it
  can take a minute on a busy machine).

A busy loop (``python -c "while True: pass"``) runs on one core during the fits (``--busy 0`` for
none); it is killed at the end.

Usage::

    python benchmarks/bench_threads.py [--repeats 2] [--busy 1] [--root PATH_OF_ANOTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import print_machine, print_table, write_csv

ROOT = Path(__file__).resolve().parents[1]
FIT = ("import overtensor as ot\n"
       "t = ot.random_target(order=3, dim=100, rank=10, components='random', random_state=0)\n"
       "r = ot.fit(t, width=50, method='beyond-lazy', random_state=0,\n"
       "           runtime=ot.Runtime(engine='paper'))\n"
       "print(r.seconds, r.relative_error, r.info.get('threads'))\n")


def run(code: str, env: dict[str, str], root: Path, timeout: float) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(root)},
                          cwd=root, capture_output=True, text=True, timeout=timeout, check=True)
    return time.perf_counter() - t0, proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound background processes")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--skip-default", action="store_true",
                        help="leave out torch's default thread count")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    info = print_machine()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OVERTENSOR_THREADS")}
    configs = [("rule", "unset", {}), ("rule", "1", {"OMP_NUM_THREADS": "1"})]
    if not args.skip_default:
        configs.append(("torch default", "unset", {"OVERTENSOR_THREADS": str(os.cpu_count() or 1)}))
    rows = []
    # --help first, before the busy loop: the start-up time on an idle machine
    times = [run("import sys; from overtensor.cli.main import main\ntry:\n    main(['--help'])\n"
                 "except SystemExit:\n    pass", base, args.root, args.timeout)[0]
             for _ in range(3)]
    rows.append({"what": "overtensor --help (process)", "OMP_NUM_THREADS": "unset",
                 "busy": 0, "median_s": statistics.median(times), "max_s": max(times),
                 "fit_seconds": "", "threads": ""})
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        for name, omp, extra in configs:
            walls, fits, threads = [], [], ""
            for _ in range(args.repeats):
                wall, out = run(FIT, {**base, **extra}, args.root, args.timeout)
                seconds, _, threads = out.split()
                walls.append(wall)
                fits.append(float(seconds))
            rows.append({"what": f"quick-start fit, {name}", "OMP_NUM_THREADS": omp, "busy": args.busy,
                         "median_s": statistics.median(walls), "max_s": max(walls),
                         "fit_seconds": statistics.median(fits), "threads": threads})
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print_table(rows)
    write_csv("bench_threads", rows, info)


if __name__ == "__main__":
    main()
