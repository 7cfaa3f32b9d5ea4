"""Generic figures for experiment tables: phase diagrams, curves over seeds, staircases.

Every function takes a pandas DataFrame (one row per run, as returned by
:meth:`overtensor.experiments.store.ResultStore.dataframe`) or plain arrays, draws one figure with
matplotlib's non-interactive "Agg" backend and writes it as PNG and SVG. They return the list of
written paths so that :mod:`overtensor.experiments.report` can embed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from overtensor._io import atomic_write, check_not_link

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

FORMATS = ("png", "svg")


def save(fig, path: str | Path, formats: Sequence[str] = FORMATS, dpi: int = 120) -> list[Path]:
    """Write ``fig`` to ``path`` with each suffix of ``formats`` and close it.

    ``path`` is a stem (``outdir/phase``); an existing suffix is replaced.
    """
    stem = Path(path)
    if stem.suffix.lstrip(".") in FORMATS:
        stem = stem.with_suffix("")
    check_not_link(stem.parent)
    stem.parent.mkdir(parents=True, exist_ok=True)
    no_offsets(fig)
    out = []
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}")
        out.append(atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight")))
    plt.close(fig)
    return out


def no_offsets(fig) -> None:
    """Write every linear axis of ``fig`` with its full tick values: matplotlib would otherwise
    print values that differ in the 5th digit as an offset (``1e-5+9.898e-1``), which nobody reads
    right. Called by :func:`save`, so every figure of the package goes through it."""
    from matplotlib.ticker import ScalarFormatter

    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            formatter = axis.get_major_formatter()
            if isinstance(formatter, ScalarFormatter):
                formatter.set_useOffset(False)


def success_rate(df, by: Sequence[str], success: str = "success"):
    """Fraction of runs with ``success`` true per group of ``by`` (a DataFrame with ``rate, n``)."""
    g = df.groupby(list(by), dropna=False)[success]
    out = g.mean().rename("rate").to_frame()
    out["n"] = g.size()
    return out.reset_index()


def phase_diagram(
    df,
    x: str,
    y: str,
    path: str | Path,
    *,
    success: str = "success",
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    annotate: bool = True,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Heatmap of the success rate over two parameters.

    Cell ``(x_j, y_i)`` shows the fraction of runs (seeds) with ``df[success]`` true among the runs
    with ``df[x] == x_j`` and ``df[y] == y_i``; missing cells are left blank. The colour scale is
    fixed to ``[0, 1]`` so that figures of different sweeps compare.
    """
    rates = success_rate(df, [x, y], success)
    xs = sorted(rates[x].unique())
    ys = sorted(rates[y].unique())
    grid = np.full((len(ys), len(xs)), np.nan)
    counts = np.zeros((len(ys), len(xs)), dtype=int)
    for _, row in rates.iterrows():
        i, j = ys.index(row[y]), xs.index(row[x])
        grid[i, j] = row["rate"]
        counts[i, j] = row["n"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * max(len(xs), 4), 1.2 + 0.45 * max(len(ys), 4)))
    im = ax.imshow(grid, origin="lower", aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title or f"success rate over {x} and {y}")
    if annotate and grid.size <= 400:
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.6 else "black")
    cbar = fig.colorbar(im, ax=ax)
    filled = counts[counts > 0]
    lo, hi = (int(filled.min()), int(filled.max())) if filled.size else (0, 0)
    cbar.set_label(f"success rate (n = {lo if lo == hi else f'{lo}–{hi}'} runs per cell)")
    return save(fig, path, formats)


def curves(
    df,
    x: str,
    y: str,
    path: str | Path,
    *,
    hue: str | None = None,
    spread: str = "quartiles",
    logx: bool = False,
    logy: bool = False,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    dodge: float = 0.0,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Median of ``y`` against ``x`` with a band showing the spread over seeds.

    One line per value of ``hue``, each with its own marker and line style (so that lines with
    equal values stay distinguishable), the legend outside the axes on the right. ``dodge`` shifts
    the lines of different ``hue`` values apart along ``x`` by that fraction of the smallest gap
    between ``x`` values (in log space when ``logx``), centred on the true ``x``.

    ``spread`` is ``"quartiles"`` (25–75 % band), ``"minmax"``,
    ``"std"`` (mean ± one standard deviation; the line is then the mean) or ``"wilson"`` for a 0/1
    ``y`` such as success: the line is the rate ``p̂ = k/n`` and the band the 95 % Wilson score
    interval ``(p̂ + z²/2n ± z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``, ``z = 1.96``.
    """
    if spread not in _BANDS:
        raise ValueError(f"spread must be one of {list(_BANDS)}, got {spread!r}")
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=True))
    offsets = _dodge_offsets(df[x], len(groups), dodge, logx)
    for i, (label, sub) in enumerate(groups):
        center, lo, hi = _spread(sub, x, y, spread)
        xs = center.index.to_numpy()
        if dodge:
            xs = xs * np.exp(offsets[i]) if logx else xs + offsets[i]
        line = ax.plot(xs, center.to_numpy(), marker=MARKERS[i % len(MARKERS)],
                       ls=LINESTYLES[i % len(LINESTYLES)], ms=5, mfc="none" if i % 2 else None,
                       label=None if hue is None else f"{hue} = {_fmt(label)}")[0]
        ax.fill_between(xs, lo.to_numpy(), hi.to_numpy(), color=line.get_color(), alpha=0.15,
                        linewidth=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    band = _BANDS[spread]
    ax.set_title(title or f"{y} vs {x} ({band} over seeds)")
    if hue is not None:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.grid(alpha=0.3)
    return save(fig, path, formats)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def _dodge_offsets(xcol, k: int, dodge: float, logx: bool) -> list[float]:
    """Offsets (additive, or in log space for ``logx``) centring ``k`` lines around each ``x``."""
    if not dodge or k < 2:
        return [0.0] * k
    values = np.unique(np.asarray(xcol, dtype=float))
    if logx:
        values = np.log(values[values > 0])
    gap = float(np.diff(values).min()) if values.size > 1 else 1.0
    step = dodge * gap
    return [(i - (k - 1) / 2) * step for i in range(k)]


_BANDS = {"quartiles": "median, 25–75 % band", "minmax": "median, min–max band", "std": "mean ± 1 std",
          "wilson": "rate, 95 % Wilson band"}


def wilson_interval(k, n, z: float = 1.96):
    """95 % Wilson score interval of a binomial proportion ``k / n`` (arrays allowed)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    p = k / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return center - half, center + half


def _spread(df, x: str, y: str, spread: str):
    g = df.groupby(x, sort=True)[y]
    if spread == "wilson":
        rate, n = g.mean(), g.size()
        lo, hi = wilson_interval(rate * n, n)
        return rate, rate * 0 + lo, rate * 0 + hi
    if spread == "quartiles":
        return g.median(), g.quantile(0.25), g.quantile(0.75)
    if spread == "minmax":
        return g.median(), g.min(), g.max()
    mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
    return mean, mean - std, mean + std


def staircase(
    times: Any,
    values: Any,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    target_levels: Sequence[float] | None = None,
    title: str = "fitted mass per component over time",
    xlabel: str = "step",
    ylabel: str = "fitted mass",
    logx: bool = False,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Per-component curves over time, e.g. the deflation staircase.

    ``times`` has shape ``(n,)``; ``values`` has shape ``(n, k)``: column ``j`` is the quantity of
    component ``j`` (the mass the model puts on the ``j``-th ground-truth direction). With
    ``target_levels`` a dotted horizontal line marks each component's true weight.
    """
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[0] != t.shape[0]:
        raise ValueError(f"values must have shape (len(times), k) = ({t.shape[0]}, k), got {v.shape}")
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for j in range(v.shape[1]):
        label = labels[j] if labels is not None else f"component {j + 1}"
        line = ax.plot(t, v[:, j], label=label)[0]
        if target_levels is not None:
            ax.axhline(target_levels[j], color=line.get_color(), ls=":", lw=0.8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path, formats)


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    return str(v)
