"""Start-up cost of ``overtensor fit`` (issue 21, item 4): CPU and wall time of the command against
``python -c "import torch"`` in the same run, a bad argument's time to its error, and what
``python -X importtime`` says the command imports.

    OMP_NUM_THREADS=1 python benchmarks/bench_startup.py [--repeats 5]

CPU time is the child's user + system time (``resource.getrusage(RUSAGE_CHILDREN)``), which a
shared machine's load disturbs less than wall time. Medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import print_machine

ROOT = Path(__file__).resolve().parents[1]
FIT = ["-m", "overtensor", "fit", "--order", "3", "--dim", "20", "--rank", "3", "--width", "12",
       "--json"]
COMMANDS = {
    'python -c "import torch"': ["-c", "import torch"],
    "overtensor fit --order 3 --dim 20 --rank 3 --width 12 --json": FIT,
    "overtensor fit --width -3 (bad argument)": ["-m", "overtensor", "fit", "--width", "-3"],
    "overtensor fit --method bogus (bad choice)": ["-m", "overtensor", "fit", "--method", "bogus"],
}
WATCH = ("torch", "scipy", "torch._dynamo", "matplotlib", "pandas", "pydantic", "sklearn")


def run(args: list[str], env: dict) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, out.stdout


def importtime(env: dict) -> dict[str, float]:
    """Cumulative import seconds of the watched top-level modules on ``overtensor fit``'s path."""
    out = subprocess.run([sys.executable, "-X", "importtime", *FIT], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    found: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (x.strip() for x in line.split(":", 1)[1].split("|"))
        if name in WATCH or name in ("overtensor", "numpy"):
            found[name] = max(found.get(name, 0.0), int(cumulative) / 1e6)
    return found


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    print_machine()
    load0 = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in COMMANDS}
    summary = None
    for _ in range(args.repeats):  # interleaved, so that every command sees the same load
        for name, cmd in COMMANDS.items():
            cpu, wall, out = run(cmd, env)
            times[name].append((cpu, wall))
            if cmd is FIT and out.strip():
                summary = json.loads(out.strip().splitlines()[-1])
    print(f"# load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; medians of {args.repeats}")
    print("| command | CPU s | wall s |")
    print("|---|---|---|")
    for name, vals in times.items():
        print(f"| `{name}` | {statistics.median(c for c, _ in vals):.2f} | "
              f"{statistics.median(w for _, w in vals):.2f} |")
    base = statistics.median(c for c, _ in times['python -c "import torch"'])
    fit = statistics.median(c for c, _ in times[next(k for k in COMMANDS if "--json" in k)])
    print(f"# overtensor fit beyond `import torch`: {fit - base:.2f} s CPU")
    if summary is not None:
        print(f"# last fit's JSON: seconds {summary['seconds']}, seconds_total "
              f"{summary['seconds_total']}, cpu_seconds_total {summary['cpu_seconds_total']}, "
              f"route {summary.get('route')}")
    found = importtime(env)
    print("# python -X importtime, cumulative s of the fit command's imports: "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(found.items(), key=lambda kv: -kv[1])))
    print("# not imported: " + ", ".join(m for m in WATCH if m not in found))


if __name__ == "__main__":
    main()
