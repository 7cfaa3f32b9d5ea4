"""Tiny deterministic run functions for the experiment-runner tests (no torch work)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from overtensor.experiments.params import RunParams
from overtensor.experiments.registry import Experiment, register_batched, register_experiment, register_run

CALLS: list[dict] = []
BATCHES: list[list[dict]] = []


class PolyParams(RunParams):
    x: int | float
    group: int = 0
    fail_at: int | float | None = None
    break_batch: bool = False


@register_run("test-poly", params=PolyParams)
def poly(config: dict) -> dict:
    """``value = x**2 + seed``; fails on purpose when ``x == fail_at``."""
    CALLS.append(dict(config))
    x = config["x"]
    if x == config.get("fail_at"):
        raise RuntimeError(f"planned failure at x={x}")
    value = x * x + config["seed"]
    return {"value": value, "root": math.sqrt(value), "history": [{"step": 0, "value": value}]}


def _key(config: dict) -> int:
    return config["group"]


@register_batched("test-poly", key=_key)
def poly_batched(configs: list[dict]) -> list[dict]:
    BATCHES.append([dict(c) for c in configs])
    if any(c.get("break_batch") for c in configs):
        raise RuntimeError("batched engine broke")
    out = []
    for c in configs:  # like the batched fit engine: a failing config gets its exception in its slot
        try:
            out.append(poly(c))
        except RuntimeError as exc:
            out.append(exc)
    return out


def _figures(df, outdir):
    from overtensor.experiments import plots

    return plots.curves(df, "x", "value", outdir / "poly_value", hue="group")


def _summary(df) -> str:
    return f"poly summary: mean value {df['value'].mean():.2f} over {len(df)} runs"


EXPERIMENT = register_experiment(Experiment(
    name="test-poly-exp",
    description="x**2 + seed (runner tests)",
    presets={size: {"name": "test-poly-exp", "run": "test-poly", "grid": {"group": [0, 1], "x": [1, 2, 3]},
                    "seeds": seeds, "success": {"metric": "value", "op": "<=", "value": 4}}
             for size, seeds in (("small", 2), ("full", 4))},
    figures=_figures,
    summary=_summary,
))


class CountParams(RunParams):
    x: int
    log: str
    wait_at: int | None = None
    sleep: float = 0.0


@register_run("test-count", params=CountParams)
def count(config: dict) -> dict:
    """Appends ``"pid x"`` to the file ``log`` (counts executions across processes). When
    ``x == wait_at``, waits (up to 60 s) until another process has written to the log."""
    log = Path(config["log"])
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {config['x']}\n")
    if config.get("wait_at") == config["x"]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = {line.split()[0] for line in log.read_text().splitlines()}
            if len(pids) > 1:
                break
            time.sleep(0.02)
    time.sleep(config.get("sleep", 0.0))
    return {"x": config["x"]}
