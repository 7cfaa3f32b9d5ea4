"""Shared helpers of the benchmark scripts: machine description, timing, tables and CSV files.

Benchmarks are scripts, not tests: they print a table and write a CSV to ``benchmarks/results/``.
Timings are medians over repeats because the machines they run on are often shared.
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

#: Where the CSVs go; ``OVERTENSOR_BENCH_RESULTS`` redirects them (the docs' numbers check runs
#: benchmarks in a scratch folder and must leave ``benchmarks/results/`` as committed).
RESULTS = Path(os.environ.get("OVERTENSOR_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def cpu_model() -> str:
    """The CPU model from ``lscpu`` (or the platform string when unavailable)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What a results table must say about where it was measured."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
    }
    return info


def print_machine() -> dict[str, Any]:
    info = machine()
    print("# " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    return info


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_time(fn: Callable[[], Any], repeats: int = 3, device: str = "cpu",
                warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """A GitHub-markdown table (so that it can be pasted into docs as is)."""
    if not rows:
        print("(no rows)")
        return
    cols = list(columns or rows[0].keys())
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + " |")


def write_csv(name: str, rows: Sequence[dict[str, Any]], info: dict[str, Any]) -> Path:
    """Write ``rows`` (plus the machine columns) to ``benchmarks/results/NAME.csv``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    cols += [k for k in info if k not in cols]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for r in rows:
            writer.writerow({**info, **r})
    print(f"# wrote {path}")
    return path


def cuda_or_skip(what: str) -> bool:
    """True when CUDA is available; otherwise print that ``what`` was skipped."""
    if torch.cuda.is_available():
        return True
    print(f"# CUDA is not available on this machine: {what} skipped (CPU only).")
    return False
