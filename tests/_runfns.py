"""Tiny deterministic run functions for the experiment-runner tests (no torch work)."""

from __future__ import annotations

import math

from overtensor.experiments.registry import Experiment, register_batched, register_experiment, register_run

CALLS: list[dict] = []
BATCHES: list[list[dict]] = []


@register_run("test-poly")
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
    from overtensor import plots

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
