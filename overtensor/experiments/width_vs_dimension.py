"""Built-in experiment ``width-vs-dimension``: the width each regime needs, against ``d``
(docs/theory/tensors.md §7).

Question: for a fixed rank-``r`` order-3 target, what is the smallest width ``m`` at which a regime
reaches relative error ``ε`` in at least 90 % of seeds, and how does it grow with ``d``?

One run is one ``(regime, dim, seed)``: it draws the target (seed) and returns that seed's
smallest successful width ``min_width``:

* ``lazy``: the exact lazy optimum (:func:`overtensor.tensors.lazy.lazy_least_squares`) at widths ``m``
  whose initializations are the first ``m`` rows of one draw ``W_0``. The tangent spaces are then
  nested, so the lazy error is non-increasing in ``m`` and a doubling-then-bisection search finds
  the smallest ``m`` with error ``≤ ε`` exactly (CG stops as soon as ``ε`` is certified; a width
  fails only after CG converged above ``ε``). Runs with ``dim > lazy_max_dim`` are skipped
  (``skipped: True``): the solve grows like ``d^5`` per CG iteration count.
* ``beyond-lazy``: :func:`overtensor.fit` (``method="beyond-lazy"``, no extraction or polish, so
  that the over-parameterized model itself must reach ``ε``) at the widths of a ladder
  ``r, r+1, …, 2r, ⌈2.5r⌉, 3r, 4r, 6r, 8r`` until the first success.

The 90 % width per ``d`` is the 0.9-quantile of the per-seed ``min_width`` (lower interpolation),
i.e. the smallest ``m`` by which 90 % of the seeds have succeeded. The figure shows it on log–log
axes with least-squares slopes; the lazy slope is close to ``l − 1 = 2`` (the width is
``⌈C(d+2, 3)/d⌉ ≈ d²/6``), the beyond-lazy slope close to 0 (Wang et al., NeurIPS 2020:
``m = O*(r^{2.5l} log d)``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from overtensor.experiments.papers import WANG_2020
from overtensor.experiments.params import WidthVsDimensionParams
from overtensor.experiments.registry import Claim, Experiment, register_experiment, register_run
from overtensor.tensors.lazy import lazy_least_squares, lazy_threshold_width

QUANTILE = 0.9


def width_ladder(rank: int, max_width: int) -> list[int]:
    """``r, r+1, …, 2r, ⌈2.5r⌉, 3r, 4r, 6r, 8r, …`` (then ×4/3) up to ``max_width``."""
    ladder = [*range(rank, 2 * rank + 1), math.ceil(2.5 * rank), 3 * rank, 4 * rank, 6 * rank, 8 * rank]
    m = 8 * rank
    while m < max_width:
        m = math.ceil(m * 4 / 3)
        ladder.append(m)
    return sorted({w for w in ladder if w <= max_width})


def lazy_min_width(target, eps: float, generator, max_width: int) -> tuple[int | None, dict[str, Any]]:
    """Smallest ``m`` whose exact lazy error is ``≤ eps`` (nested initializations; see the module
    docstring). Returns ``(m or None, info)`` with the errors at ``m`` and ``m − 1``."""
    import torch

    d = target.dim
    W0 = torch.randn(max_width, d, generator=generator, dtype=torch.float64)
    cache: dict[int, float] = {}
    unconverged = 0

    def err(m: int) -> float:
        nonlocal unconverged
        if m not in cache:
            sol = lazy_least_squares(target, W0[:m], stop_error=eps, tol=1e-10, max_iter=50 * m * d)
            # A CG run that stopped on its budget above eps is counted (and reported) as a failure.
            unconverged += int(sol.relative_error > eps and not sol.converged)
            cache[m] = sol.relative_error
        return cache[m]

    lo, hi = 0, 1  # err(lo) > eps is known for lo = 0 (the empty model)
    while err(hi) > eps:
        lo, hi = hi, 2 * hi
        if hi > max_width:
            if err(max_width) > eps:
                return None, {"solves": len(cache), "unconverged_solves": unconverged}
            hi = max_width
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if err(mid) <= eps:
            hi = mid
        else:
            lo = mid
    info = {"error_at_min_width": cache[hi], "error_below_min_width": cache.get(hi - 1, 1.0),
            "solves": len(cache), "unconverged_solves": unconverged}
    return hi, info


@register_run("width_vs_dimension", params=WidthVsDimensionParams, metrics=(
    "skipped", "lazy_threshold_width", "min_width", "error_at_min_width", "error_below_min_width",
    "solves", "unconverged_solves", "fits"))
def run_width_vs_dimension(config: dict[str, Any]) -> dict[str, Any]:
    """One ``(regime, dim, seed)`` of the ``width-vs-dimension`` sweep (see the module docstring).

    Config keys: ``regime`` (``"lazy"`` or ``"beyond-lazy"``), ``dim, rank, seed``; optional
    ``order`` (3), ``eps`` (1e-2), ``lazy_max_dim`` (skip lazy runs above it; default 40),
    ``max_width`` (beyond-lazy ladder top, default ``8·rank``), ``max_steps`` (3000),
    ``final_steps`` (1000).
    """
    import torch

    import overtensor as ot

    regime = config["regime"]
    order, dim, rank = int(config.get("order", 3)), int(config["dim"]), int(config["rank"])
    eps, seed = float(config.get("eps", 1e-2)), int(config["seed"])
    threshold = lazy_threshold_width(dim, order)
    out: dict[str, Any] = {"skipped": False, "lazy_threshold_width": threshold}
    if regime == "lazy" and dim > int(config.get("lazy_max_dim", 40)):
        return {"skipped": True, "lazy_threshold_width": threshold}
    target = ot.random_target(order, dim, rank, random_state=seed)
    if regime == "lazy":
        gen = torch.Generator().manual_seed(seed + 1000)
        m, info = lazy_min_width(target, eps, gen, max_width=2 * threshold)
        out.update(min_width=m, **info)
        return out
    if regime != "beyond-lazy":
        raise ValueError(f"regime must be 'lazy' or 'beyond-lazy', got {regime!r}")
    fits = 0
    for m in width_ladder(rank, int(config.get("max_width", 8 * rank))):
        res = ot.fit(target, width=m, method="beyond-lazy", random_state=seed + 2000, tol=eps,
                     schedule=ot.GradientSchedule(
                         max_steps=int(config.get("max_steps", 3000)),
                         final_steps=int(config.get("final_steps", 1000)), eval_every=50),
                     extraction=ot.Extraction(extract=False, polish_iter=0),
                     runtime=ot.Runtime(engine="paper"))
        fits += 1
        if res.model_relative_error <= eps:
            out.update(min_width=m, error_at_min_width=res.model_relative_error, fits=fits)
            return out
    out.update(min_width=None, fits=fits)
    return out


def quantile_widths(df: pd.DataFrame, q: float = QUANTILE) -> pd.DataFrame:
    """Per (regime, dim): the ``q``-quantile of the per-seed smallest width (a seed that never
    succeeded counts as infinite width), the number of seeds and how many succeeded."""
    df = df.copy()
    if "skipped" in df:
        df = df[~df["skipped"].fillna(False).astype(bool)]
    df["min_width"] = pd.to_numeric(df["min_width"], errors="coerce")
    rows = []
    for (regime, dim), sub in df.groupby(["regime", "dim"]):
        w = sub["min_width"].fillna(np.inf).to_numpy()
        width = float(np.quantile(w, q, method="lower")) if len(w) else np.nan
        rows.append({"regime": regime, "dim": int(dim), "width": width, "seeds": len(w),
                     "succeeded": int(np.isfinite(w).sum()),
                     "threshold": int(sub["lazy_threshold_width"].iloc[0])})
    return pd.DataFrame(rows)


def quantile_rank(n: int, q: float = QUANTILE) -> int:
    """``k`` such that the lower ``q``-quantile of ``n`` values is the ``k``-th smallest."""
    return int(np.quantile(np.arange(n), q, method="lower")) + 1 if n else 0


def statistic_name(seeds: int, q: float = QUANTILE) -> str:
    """What the ``q``-quantile of ``seeds`` per-seed widths is: ``"≥ 90 % of seeds"`` only when it
    is one (``k/n ≥ q``; with fewer than 10 seeds it is not), else ``"k of n seeds"``."""
    k = quantile_rank(seeds, q)
    if seeds >= 10 and k / seeds >= q:
        return f"≥ {q:.0%} of seeds".replace("%", " %")
    return f"{k} of {seeds} seeds"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def fitted_slopes(widths: pd.DataFrame) -> dict[str, float]:
    """Least-squares slope of ``log width`` against ``log d`` per regime (finite widths only)."""
    out = {}
    for regime, sub in widths.groupby("regime"):
        sub = sub[np.isfinite(sub["width"])]
        if sub["dim"].nunique() >= 2:
            out[regime] = float(np.polyfit(np.log(sub["dim"]), np.log(sub["width"]), 1)[0])
    return out


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Log–log plot of the 90 % width against ``d`` per regime, with fitted slopes, every seed's
    width as faint points, and the lazy threshold ``⌈C(d+2,3)/d⌉`` (dashed)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from overtensor.experiments.plots import save

    widths = quantile_widths(df)
    slopes = fitted_slopes(widths)
    runs = df.copy()
    if "skipped" in runs:
        runs = runs[~runs["skipped"].fillna(False).astype(bool)]
    runs["min_width"] = pd.to_numeric(runs["min_width"], errors="coerce")
    stat = statistic_name(int(widths["seeds"].min())) if not widths.empty else "seeds"
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    colors = {"lazy": "tab:red", "beyond-lazy": "tab:blue"}
    for regime, sub in widths.groupby("regime"):
        c = colors.get(regime, "gray")
        pts = runs[runs["regime"] == regime]
        jitter = 1 + 0.03 * (pts["seed"].to_numpy() % 5 - 2)
        ax.scatter(pts["dim"] * jitter, pts["min_width"], s=10, color=c, alpha=0.25)
        sub = sub[np.isfinite(sub["width"])].sort_values("dim")
        label = f"{regime}: width reached by {stat}"
        if regime in slopes:
            fit = np.polyfit(np.log(sub["dim"]), np.log(sub["width"]), 1)
            label += f" (slope {slopes[regime]:.2f})"
            xs = np.array([sub["dim"].min(), sub["dim"].max()], dtype=float)
            ax.plot(xs, np.exp(np.polyval(fit, np.log(xs))), color=c, lw=1, ls="-.")
        ax.plot(sub["dim"], sub["width"], "o-", color=c, label=label)
    dims = np.array(sorted(widths["dim"].unique()), dtype=float)
    order = int(df["order"].iloc[0]) if "order" in df else 3
    ax.plot(dims, [lazy_threshold_width(int(d), order) for d in dims], "k--", lw=1,
            label=f"⌈C(d+{order - 1},{order})/d⌉: lazy threshold (all d)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(dims)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("dimension d")
    ax.set_ylabel(f"smallest width m reaching ε in {stat}")
    eps = float(df["eps"].iloc[0]) if "eps" in df else 1e-2
    rank = int(df["rank"].iloc[0]) if "rank" in df else 0
    ax.set_title(f"width needed vs dimension (order {order}, rank {rank}, ε = {eps:g})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, Path(outdir) / "width_vs_dimension")


def summary(df: pd.DataFrame) -> str:
    """The 90 % widths per (regime, d) and the fitted log–log slopes."""
    widths = quantile_widths(df)
    slopes = fitted_slopes(widths)
    stat = statistic_name(int(widths["seeds"].min())) if not widths.empty else "seeds"
    lines = [f"width-vs-dimension: smallest width reaching ε in {stat} (lower 0.9-quantile of the "
             "per-seed widths)",
             widths.to_string(index=False, float_format=lambda v: f"{v:g}")]
    for regime, slope in sorted(slopes.items()):
        lines.append(f"fitted log-log slope, {regime}: {slope:.3f}")
    if "lazy" in slopes and "beyond-lazy" in slopes and slopes["lazy"] != 0:
        lines.append(f"ratio beyond-lazy / lazy slope: {slopes['beyond-lazy'] / slopes['lazy']:.3f}")
    return "\n".join(lines)


def claims(df: pd.DataFrame) -> list[Claim]:
    """Wang et al. (2020): the lazy width grows like ``d^{l−1}``, the beyond-lazy width barely
    grows with ``d``. Decided by the fitted log–log slopes of the quantile widths: supported when
    the lazy slope is at least ``l − 1.5`` and the beyond-lazy one at most 0.5 with every seed
    succeeding."""
    paper, url = WANG_2020
    widths = quantile_widths(df)
    slopes = fitted_slopes(widths)
    order = int(df["order"].iloc[0]) if "order" in df else 3
    statement = (f"The width needed to reach ε grows like d^(l−1) = d^{order - 1} under lazy training, "
                 "but stays nearly flat in d for beyond-lazy training (m polynomial in r, "
                 "logarithmic in d).")
    if widths.empty or not {"lazy", "beyond-lazy"} <= set(slopes):
        return [Claim(paper, url, statement, "inconclusive",
                      "needs both regimes at ≥ 2 dimensions with finite widths", FIGURE)]
    seeds = int(widths["seeds"].min())
    k = quantile_rank(seeds)
    bl = widths[widths["regime"] == "beyond-lazy"]
    lz = widths[widths["regime"] == "lazy"]
    failed = int((bl["seeds"] - bl["succeeded"]).sum())
    stat = (f"width per d = the lower 0.9-quantile of the per-seed smallest widths over {seeds} seeds, "
            f"i.e. the {_ordinal(k)} smallest: the width by which {k} of {seeds} seeds reached ε"
            + ("" if seeds >= 10 else " (fewer than 10 seeds: not a 90 % width)"))
    reason = (f"fitted log–log slope of width against d: lazy {slopes['lazy']:.2f} "
              f"(d = {int(lz['dim'].min())}…{int(lz['dim'].max())}, needs ≥ {order - 1.5:g}), "
              f"beyond-lazy {slopes['beyond-lazy']:.2f} (d = {int(bl['dim'].min())}…"
              f"{int(bl['dim'].max())}, needs ≤ 0.5; {failed} beyond-lazy seed(s) never reached ε); "
              f"{stat}.")
    ok = slopes["lazy"] >= order - 1.5 and slopes["beyond-lazy"] <= 0.5 and failed == 0
    bad = slopes["beyond-lazy"] >= slopes["lazy"] - 0.5
    verdict = "supported" if ok else "not supported" if bad else "inconclusive"
    return [Claim(paper, url, statement, verdict, reason, FIGURE)]


FIGURE = "width_vs_dimension"
CAPTIONS = {
    FIGURE: ("Smallest width reaching relative error ε against d (log–log), per regime: the lower "
             "0.9-quantile over seeds of each seed's smallest successful width (the axis label says "
             "how many seeds that is), faint points = every seed, dash-dotted = least-squares fit "
             "(slope in the legend), dashed = the lazy threshold ⌈C(d+l−1, l)/d⌉. Read: "
             "the fitted slope of each regime (0: width flat in d) against the lazy threshold's "
             "slope l−1."),
}

PRESETS = {
    "small": {
        "name": "width-vs-dimension",
        "run": "width_vs_dimension",
        "description": "90% width vs d, order 3 rank 3, eps 1e-2: lazy d<=28, beyond-lazy d<=80, 3 seeds",
        "fixed": {"order": 3, "rank": 3, "eps": 1.0e-2, "lazy_max_dim": 28, "max_steps": 3000},
        "grid": {"regime": ["lazy", "beyond-lazy"], "dim": [10, 14, 20, 28, 40, 80]},
        "seeds": 3,
    },
    # For the docs check (tests/test_docs.py): two small d, one seed.
    "tiny": {
        "name": "width-vs-dimension",
        "run": "width_vs_dimension",
        "description": "tiny check: d in {10, 14}, order 3 rank 3, eps 1e-2, one seed",
        "fixed": {"order": 3, "rank": 3, "eps": 1.0e-2, "lazy_max_dim": 14, "max_steps": 2000},
        "grid": {"regime": ["lazy", "beyond-lazy"], "dim": [10, 14]},
        "seeds": 1,
    },
    "full": {
        "name": "width-vs-dimension",
        "run": "width_vs_dimension",
        "description": "90% width vs d, order 3 rank 3, eps 1e-2: lazy d<=40, beyond-lazy d<=320, 10 seeds",
        "fixed": {"order": 3, "rank": 3, "eps": 1.0e-2, "lazy_max_dim": 40, "max_steps": 5000},
        "grid": {"regime": ["lazy", "beyond-lazy"],
                 "dim": [10, 14, 20, 28, 40, 56, 80, 113, 160, 226, 320]},
        "seeds": 10,
    },
}

EXPERIMENT = register_experiment(Experiment(
    name="width-vs-dimension",
    description="smallest width reaching eps in 90% of seeds vs d: lazy ~ d^(l-1), beyond-lazy ~flat",
    presets=PRESETS,
    figures=figures,
    summary=summary,
    claims=claims,
    captions=CAPTIONS,
))
