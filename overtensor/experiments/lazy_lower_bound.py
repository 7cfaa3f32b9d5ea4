"""Built-in experiment ``lazy-lower-bound``: the lazy error against the width (docs/theory/tensors.md §7,
claim 1).

Question: how wide must a lazily trained model be? For each order ``l``, dimension ``d``, target
rank ``r`` and seed, the width is set from the grid parameter ``md_ratio = m·d / C(d+l−1, l)``
(``m = ⌈md_ratio · C(d+l−1, l) / d⌉``, so ``md_ratio = 1`` is the threshold width). One run draws a
target and a random initialization ``W_0`` and reports

* ``lazy_error``: the exact lazy optimum ``min_Δ ‖T(W_0) + DT(W_0)[Δ] − T*‖ / ‖T*‖``
  (:func:`overtensor.tensors.lazy.lazy_least_squares`);
* ``rf_error``: the random-features optimum (directions frozen, coefficients fitted);
* ``full_error``: the ``full`` regime (``beyond-lazy`` at the same width, same target, stopped at
  ``full_tol``), for seeds below ``full_seeds``: the error of what :func:`overtensor.fit` returns
  (merged components, polished when the model is within 1e-2); ``full_model_error`` is the
  over-parameterized model's own error.

Expected picture (Wang et al., NeurIPS 2020): the lazy error stays high until ``m·d`` reaches
``C(d+l−1, l)`` and is exactly 0 from there, so the curves of all ``d`` collapse against
``m·d / C(d+l−1, l)`` — a width ``m = Ω(d^{l−1})``; the full regime fits the target at every width.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from overtensor.experiments.papers import WANG_2020, wilson
from overtensor.experiments.params import LazyLowerBoundParams
from overtensor.experiments.registry import Claim, Experiment, register_experiment, register_run
from overtensor.tensors.lazy import (
    lazy_least_squares,
    random_features_least_squares,
    symmetric_dimension,
)


@register_run("lazy_lower_bound", params=LazyLowerBoundParams, metrics=(
    "skipped", "width", "md", "sym_dim", "md_over_sym", "m_over_dl1", "lazy_error", "lazy_solver",
    "lazy_iterations", "lazy_converged", "tangent_dim", "rf_error", "full_error", "full_model_error"))
def run_lazy_lower_bound(config: dict[str, Any]) -> dict[str, Any]:
    """One point of the ``lazy-lower-bound`` sweep (see the module docstring).

    Config keys: ``order, dim, rank, md_ratio, seed``; optional ``components`` (default
    ``"random"``), ``full_seeds`` (run the full regime for seeds below it; default 1),
    ``full_max_steps`` (default 3000), ``full_tol`` (the full fit stops at this relative error;
    default 1e-3), ``solver`` (lazy solver, default ``"auto"``),
    ``dims_by_order`` (``{"3": [...], "4": [...]}``: a cartesian grid point whose ``dim`` is not
    listed for its ``order`` returns ``{"skipped": True}`` at once, so that each order can sweep
    its own dimensions).
    """
    import torch

    import overtensor as ot

    order, dim, rank = int(config["order"]), int(config["dim"]), int(config["rank"])
    seed = int(config["seed"])
    allowed = (config.get("dims_by_order") or {}).get(str(order))
    if allowed is not None and dim not in allowed:
        return {"skipped": True}
    sym = symmetric_dimension(dim, order)
    width = max(1, math.ceil(float(config["md_ratio"]) * sym / dim - 1e-9))
    target = ot.random_target(order, dim, rank, components=config.get("components", "random"),
                              random_state=seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    W0 = torch.randn(width, dim, generator=gen, dtype=torch.float64)
    lazy = lazy_least_squares(target, W0, solver=config.get("solver", "auto"))
    out: dict[str, Any] = {
        "skipped": False, "width": width, "md": width * dim, "sym_dim": sym, "md_over_sym": width * dim / sym,
        "m_over_dl1": width / dim ** (order - 1), "lazy_error": lazy.relative_error,
        "lazy_solver": lazy.solver, "lazy_iterations": lazy.iterations,
        "lazy_converged": lazy.converged, "tangent_dim": lazy.tangent_dim,
        "rf_error": random_features_least_squares(target, W0).relative_error,
        "full_error": None, "full_model_error": None,
    }
    if seed < int(config.get("full_seeds", 1)):
        res = ot.fit(target, width=width, method="beyond-lazy", random_state=seed + 2000,
                     tol=float(config.get("full_tol", 1e-3)),
                     schedule=ot.GradientSchedule(
                         max_steps=int(config.get("full_max_steps", 3000)), final_steps=1000,
                         eval_every=100),
                     extraction=ot.Extraction(polish_iter=20), runtime=ot.Runtime(engine="paper"))
        # What fit returns (merged, polished when the model is within 1e-2), and the model's own.
        out["full_error"] = res.relative_error
        out["full_model_error"] = res.model_relative_error
    return out


def _done(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that ran (not skipped), with numeric error columns."""
    df = df.copy()
    for col in ("lazy_error", "rf_error", "full_error", "md_over_sym", "m_over_dl1"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else float("nan")
    return df[df["lazy_error"].notna()]


def _fraction(errors: pd.Series, tol: float) -> str:
    """``"k/n"``: how many of the ``n`` errors are at most ``tol`` (slack for the stopping test)."""
    return f"{int((errors <= tol * 1.001).sum())}/{len(errors)}" if len(errors) else "-"


def _curves(ax, df: pd.DataFrame, x: str, y: str, label_fmt: str) -> None:
    import matplotlib.pyplot as plt

    groups = sorted(df.groupby(["order", "dim"]).groups)
    colors = plt.get_cmap("viridis")
    for k, (order, dim) in enumerate(groups):
        sub = df[(df["order"] == order) & (df["dim"] == dim)]
        g = sub.groupby(x)[y]
        med, lo, hi = g.median(), g.min(), g.max()
        color = colors(k / max(1, len(groups) - 1))
        ax.plot(med.index, med.values, "-", marker="o" if order == 3 else "s", color=color, ms=4,
                label=label_fmt.format(order=order, dim=dim))
        ax.fill_between(med.index, lo.values, hi.values, color=color, alpha=0.15)


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Lazy, random-features and full-regime error against ``m·d/C(d+l−1,l)`` and ``m/d^{l−1}``,
    one panel per target rank (lazy: median over seeds, band = min–max; others: every run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from overtensor.experiments.plots import save

    df = _done(df)
    ranks = sorted(df["rank"].unique())
    out: list[Path] = []
    for x, xlabel, stem in (
        ("md_over_sym", "m·d / C(d+l−1, l)", "lazy_lower_bound_collapse"),
        ("m_over_dl1", "m / d^(l−1)", "lazy_lower_bound_m_over_dl1"),
    ):
        fig, axes = plt.subplots(1, len(ranks), figsize=(6.2 * len(ranks), 4.6), squeeze=False)
        for ax, rank in zip(axes[0], ranks, strict=True):
            sub = df[df["rank"] == rank]
            _curves(ax, sub, x, "lazy_error", "lazy (exact optimum), l={order}, d={dim}")
            ax.scatter(sub[x], sub["rf_error"], s=8, color="tab:red", alpha=0.5,
                       label="random features (exact optimum)")
            full = sub.dropna(subset=["full_error"])
            full = full[full["width"] >= rank]
            if not full.empty:
                ax.scatter(full[x], full["full_error"], s=22, marker="x", color="black",
                           label="full regime (beyond-lazy), m ≥ r")
            if x == "md_over_sym":
                t = np.linspace(0, 1, 200)
                ax.plot(t, np.sqrt(1 - t), color="gray", ls=":", lw=1,
                        label="√(1 − m·d/C): random subspace")
                ax.axvline(1.0, color="gray", lw=0.8, ls="--")
            ax.set_ylim(-0.03, 1.05)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("relative error  ‖T − T*‖ / ‖T*‖")
            ax.set_title(f"rank-{rank} target: error vs width")
            ax.grid(alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=3, fontsize=8,
                   frameon=False)
        fig.suptitle("Lazy training reaches 0 only once m·d ≥ C(d+l−1, l), i.e. m = Ω(d^(l−1))",
                     fontsize=11)
        out += save(fig, Path(outdir) / stem)
    return out


def summary(df: pd.DataFrame) -> str:
    """Per (order, dim, rank): threshold width, lazy error just below it and from it on."""
    df = _done(df)
    lines = ["lazy-lower-bound: exact lazy error below / at-or-above m·d = C(d+l−1,l) (min or max over "
             "seeds and widths); full ok = full-regime runs with m >= r reaching 1e-3"]
    rows = []
    for (order, dim, rank), sub in df.groupby(["order", "dim", "rank"]):
        below = sub[sub["md_over_sym"] < 1]
        above = sub[sub["md_over_sym"] >= 1]
        half = sub[sub["md_over_sym"] <= 0.5]
        rows.append({
            "order": order, "dim": dim, "rank": rank,
            "C(d+l-1,l)": symmetric_dimension(int(dim), int(order)),
            "threshold m": -(-symmetric_dimension(int(dim), int(order)) // int(dim)),
            "min err md/C<=0.5": half["lazy_error"].min() if not half.empty else float("nan"),
            "min err md/C<1": below["lazy_error"].min() if not below.empty else float("nan"),
            "max err md/C>=1": above["lazy_error"].max() if not above.empty else float("nan"),
            "full ok (m>=r)": _fraction(sub.loc[sub["width"] >= rank, "full_error"].dropna(), 1e-3),
        })
    table = pd.DataFrame(rows)
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return "\n".join(lines)


#: Lazy errors at ``m·d/C(d+l−1, l) ≤ BELOW_RATIO`` must stay above this (a random subspace of half the
#: dimension leaves ``√0.5 ≈ 0.71``), and from ``m·d/C ≥ 1`` on be below the spec's 1e-6.
BELOW_MIN, ABOVE_MAX = 0.1, 1e-6
#: "Well below the threshold": m·d/C at most this. Not 0.5 exactly: the width is rounded up
#: (m = ⌈ratio·C/d⌉), so a grid point at ratio 0.5 lands just above 0.5.
BELOW_RATIO = 0.6


def claims(df: pd.DataFrame) -> list[Claim]:
    """The two claims of Wang et al. (2020) this sweep decides (see :data:`BELOW_MIN`)."""
    df = _done(df)
    paper, url = WANG_2020
    seeds = df["seed"].nunique()
    groups = []
    for key, sub in df.groupby(["order", "dim", "rank"]):
        below = sub.loc[sub["md_over_sym"] <= BELOW_RATIO, "lazy_error"]
        above = sub.loc[sub["md_over_sym"] >= 1, "lazy_error"]
        if len(below) and len(above):
            groups.append((key, below.min(), above.max()))
    statement = ("Lazy (NTK) training cannot fit the target until m·d reaches C(d+l−1, l), the "
                 "dimension of symmetric tensors: it needs m = Ω(d^(l−1)).")
    if not groups:
        lazy = Claim(paper, url, statement, "inconclusive",
                     f"no (order, d, rank) group has runs both at m·d/C ≤ {BELOW_RATIO:g} and at "
                     "m·d/C ≥ 1", FIGURE)
    else:
        low = min(g[1] for g in groups)
        high = max(g[2] for g in groups)
        worst_low = min(groups, key=lambda g: g[1])[0]
        ok = low >= BELOW_MIN and high <= ABOVE_MAX
        reason = (f"exact lazy optimum over {len(groups)} (order, d, rank) groups, {seeds} seeds each: "
                  f"at m·d/C ≤ {BELOW_RATIO:g} the smallest error over seeds and widths is {low:.3g} "
                  f"(order, d, rank = {tuple(int(v) for v in worst_low)}; needs ≥ {BELOW_MIN:g}); "
                  f"at m·d/C ≥ 1 the largest is {high:.2g} (needs ≤ {ABOVE_MAX:g}).")
        lazy = Claim(paper, url, statement, "supported" if ok else "not supported", reason, FIGURE)
    full = df.dropna(subset=["full_error"])
    full = full[(full["width"] >= full["rank"]) & (full["md_over_sym"] < 1)]
    statement = ("At the same widths below the lazy threshold (m ≥ r), training beyond the lazy "
                 "regime (beyond-lazy) fits the target.")
    n = len(full)
    k = int((full["full_error"] <= 1e-3 * 1.001).sum())
    reason = (f"{k}/{n} beyond-lazy runs with r ≤ m and m·d/C < 1 reach relative error ≤ 1e-3 "
              f"(seeds {sorted(int(s) for s in full['seed'].unique())}); "
              f"95 % Wilson interval {wilson(k, n)[0]:.2f}–{wilson(k, n)[1]:.2f}.")
    if n < 5:
        verdict = "inconclusive"
        reason = f"only {n} full-regime runs below the threshold (need ≥ 5). " + reason
    else:
        verdict = "supported" if k / n >= 0.9 else "not supported" if k / n < 0.5 else "inconclusive"
    return [lazy, Claim(paper, url, statement, verdict, reason, FIGURE)]


FIGURE = "lazy_lower_bound_collapse"
CAPTIONS = {
    "lazy_lower_bound_collapse": (
        "Relative error of the exact lazy (NTK) optimum against m·d / C(d+l−1, l), one panel per "
        "target rank: line = median over seeds, band = min–max over seeds, one colour per (order, d); "
        "red dots: random-features optimum of every run; black crosses: the full regime (beyond-lazy, "
        "same width, m ≥ r); dotted: √(1 − m·d/C) of a random subspace; dashed: the threshold m·d = C. "
        "Read: every lazy curve of every d and order "
        "drops to 0 at m·d = C (the curves collapse onto one), and whether the crosses of the full "
        "regime are at 0 left of it."),
    "lazy_lower_bound_m_over_dl1": (
        "The same errors against m / d^(l−1): lazy curves of different d and order no longer "
        "collapse, the threshold sits at m ≈ d^(l−1)/l!. Read: the needed width grows "
        "like d^(l−1)."),
}

_GRID_SMALL = {
    "order": [3, 4],
    "dim": [8, 12],
    "rank": [1, 3],
    "md_ratio": [0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.2],
}

PRESETS = {
    "small": {
        "name": "lazy-lower-bound",
        "run": "lazy_lower_bound",
        "description": "exact lazy error vs m*d/C(d+l-1,l), orders 3-4, d in {8,12}, full regime on seed 0",
        "fixed": {"full_seeds": 1, "full_max_steps": 2000},
        "grid": _GRID_SMALL,
        "seeds": 2,
        "success": {"metric": "lazy_error", "op": "<=", "value": 1.0e-6},
    },
    # For the docs check (tests/test_docs.py): one order, d, rank and seed, both sides of m·d = C.
    "tiny": {
        "name": "lazy-lower-bound",
        "run": "lazy_lower_bound",
        "description": "tiny check: order 3, d = 8, rank 1, md_ratio 0.5 and 1, one seed",
        "fixed": {"full_seeds": 1, "full_max_steps": 1000},
        "grid": {"order": [3], "dim": [8], "rank": [1], "md_ratio": [0.5, 1.0]},
        "seeds": 1,
        "success": {"metric": "lazy_error", "op": "<=", "value": 1.0e-6},
    },
    "full": {
        "name": "lazy-lower-bound",
        "run": "lazy_lower_bound",
        "description": "exact lazy error vs m*d/C(d+l-1,l), order 3 (d 8-32) and 4 (d 6-16), 5 seeds",
        "fixed": {"full_seeds": 3, "full_max_steps": 5000,
                  "dims_by_order": {"3": [8, 12, 16, 24, 32], "4": [6, 8, 12, 16]}},
        "grid": {
            "order": [3, 4],
            "dim": [6, 8, 12, 16, 24, 32],
            "rank": [1, 5],
            "md_ratio": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, 1.1, 1.3, 1.6],
        },
        "seeds": 5,
        "success": {"metric": "lazy_error", "op": "<=", "value": 1.0e-6},
    },
}

EXPERIMENT = register_experiment(Experiment(
    name="lazy-lower-bound",
    description="lazy (NTK) error vs width: zero only once m*d >= C(d+l-1,l), i.e. m = Omega(d^(l-1))",
    presets=PRESETS,
    figures=figures,
    summary=summary,
    claims=claims,
    captions=CAPTIONS,
))
