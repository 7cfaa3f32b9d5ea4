"""Issue 2: a large implicit fit converges without ever forming the d^l array."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory.py"


@pytest.mark.slow
def test_dim_1000_fit_converges_with_peak_memory_far_below_the_dense_tensor():
    # A fresh interpreter, so that the peak RSS is this fit's (plus Python and PyTorch).
    out = subprocess.run([sys.executable, str(SCRIPT), "--one", json.dumps([3, 1000, 20, 100, 0])],
                         capture_output=True, text=True, check=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""})
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["relative_error"] <= 1e-4
    assert row["recovered"] == 20
    # 8·d³ bytes = 8 GB for the float64 dense tensor; a single d³/8 slice would already be 1 GB.
    assert row["peak_rss_MB"] < 1024
    assert row["peak_over_dense"] < 0.125
