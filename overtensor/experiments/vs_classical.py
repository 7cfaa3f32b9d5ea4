"""Built-in experiment ``vs-classical``: over-parameterized GD against classical baselines (SPEC §7).

Question: on random (non-orthogonal) rank-``r`` order-3 targets, how often does each method reach
relative error ``ε``, and how long does it take? Methods: ``beyond-lazy`` (``m = 4r``, the paper's
variant), ``gd`` (plain GD from the same small init, ``m = 4r``), ``exact-rank`` (``m = r``) and the
tensor ``power-method`` with deflation. Expected picture: over-parameterized GD succeeds where the
others get stuck. The specs live in ``specs/vs-classical-{small,full}.yaml``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from overtensor.experiments.registry import Experiment, register_experiment


def _preset(name: str) -> dict:
    text = resources.files("overtensor.experiments").joinpath(f"specs/vs-classical-{name}.yaml").read_text()
    return yaml.safe_load(text)


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Success rate vs ``d`` per method, and time to ``ε`` (successful runs) vs ``d`` per method."""
    from overtensor import plots

    df = df.assign(success=df["success"].astype(float))
    out = plots.curves(df, "dim", "success", Path(outdir) / "vs_classical_success", hue="method",
                       spread="wilson", ylabel="success rate",
                       title="success rate (relative error ≤ ε) vs dimension")
    hit = df[df["time_to_eps"].notna()].assign(time_to_eps=lambda d: d["time_to_eps"].astype(float))
    if not hit.empty:
        out += plots.curves(hit, "dim", "time_to_eps", Path(outdir) / "vs_classical_time", hue="method",
                            logy=True, ylabel="time to ε (s)",
                            title="time to ε vs dimension (runs that reached ε; median, quartiles)")
    return out


def summary(df: pd.DataFrame) -> str:
    """Success rate and median time to ``ε`` per method and dimension."""
    table = df.assign(success=df["success"].astype(float),
                      time_to_eps=pd.to_numeric(df["time_to_eps"], errors="coerce"))
    g = table.groupby(["method", "dim"])
    res = pd.DataFrame({"success_rate": g["success"].mean(),
                        "median_time_to_eps_s": g["time_to_eps"].median(), "runs": g.size()})
    text = res.to_string(float_format=lambda v: f"{v:.3g}")
    return "vs-classical: success rate and median time to ε\n" + text


EXPERIMENT = register_experiment(Experiment(
    name="vs-classical",
    description="success rate and time to ε: beyond-lazy vs power method, exact-rank GD and plain GD",
    presets={"small": _preset("small"), "full": _preset("full")},
    figures=figures,
    summary=summary,
))
