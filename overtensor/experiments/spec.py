"""Experiment specs: expansion of a spec into runs (minimal core; validation lives here too).

Schema (YAML/TOML file or dict)::

    name: lazy-lower-bound          # identifier
    run: lazy_error                  # registered run function (see registry.py)
    description: one line
    fixed: {order: 3, rank: 1}       # parameters common to all runs
    grid: {dim: [8, 12], width: [4, 8, 16]}   # cartesian product over these
    seeds: 5                         # int n -> seeds 0..n-1, or an explicit list
    metrics: [lazy_error]            # metrics to keep (empty/missing: all returned)
    success: {metric: relative_error, op: "<=", value: 1.0e-4}   # optional

A run's config is ``{**fixed, **grid_point, "seed": s}``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any


def expand(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """All run configs of a spec, in a stable order (grid order, then seeds)."""
    fixed = dict(spec.get("fixed") or {})
    grid = dict(spec.get("grid") or {})
    seeds = spec.get("seeds", 1)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        for s in seeds:
            out.append({**fixed, **point, "seed": s})
    return out


def config_hash(run: str, config: dict[str, Any]) -> str:
    """Stable hash of a run function name and its config (canonical JSON)."""
    blob = json.dumps({"run": run, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_inprocess(spec: dict[str, Any]):
    """Run every config of ``spec`` sequentially in this process; returns a pandas DataFrame.

    The simplest runner, without store or resume; see :mod:`overtensor.experiments.runner`.
    """
    import pandas as pd

    from overtensor.experiments.registry import get_run

    fn = get_run(spec["run"])
    rows = []
    for cfg in expand(spec):
        metrics = dict(fn(dict(cfg)))
        metrics.pop("history", None)
        rows.append({**cfg, **metrics})
    return pd.DataFrame(rows)
