"""Experiment ``deflation``: are components fitted one at a time, largest weight first?

Ge, Ren, Wang, Zhou (NeurIPS 2021) show that for an orthogonal target over-parameterized
gradient flow fits the components like classical deflation: a staircase of per-component fitted
masses (:mod:`overtensor.tensors.component_mass`), in decreasing order of weight, at times roughly
proportional to ``1/λ_j``. The experiment measures that staircase on an orthogonal order-4 target
with weights ``2^{−(j−1)}`` (also linear and nearly equal weights), repeats it for order 3 and for
non-orthogonal components (where the order may break), and compares the ``deflation`` method with
the same loop without re-initialization, with plain gradient flow (``μ = 0``) and with the
``plain`` model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from overtensor.experiments.papers import GE_2021
from overtensor.experiments.params import (
    ConflictError,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RunParams,
)
from overtensor.experiments.registry import Claim, Experiment, register_experiment, register_run
from overtensor.tensors.config import split_options

#: Target families: name -> (order, components, weights). "geo" is ``2^{−(j−1)}``; "near" is
#: ``0.9^{j−1}`` (nearly equal); "linear" is ``(r − j + 1)/r``.
SCENARIOS: dict[str, tuple[int, str, Any]] = {
    "orth4-geo": (4, "orthonormal", 0.5),
    "orth4-linear": (4, "orthonormal", "linear"),
    "orth4-near": (4, "orthonormal", 0.9),
    "orth3-geo": (3, "orthonormal", 0.5),
    "random4-geo": (4, "random", 0.5),
    "random3-geo": (3, "random", 0.5),
}

#: Variants of the loop: name -> keywords of :func:`overtensor.fit`.
VARIANTS: dict[str, dict[str, Any]] = {
    "deflation": dict(method="deflation"),
    "no-reinit": dict(method="deflation", reinit_threshold=None),
    "gradient-flow": dict(method="deflation", reinit_threshold=None, weight_decay=0.0),
    # Under `plain`, 0 is a saddle of order l: from δ_0 = 1e-3 nothing would move in the budget.
    "plain": dict(method="gd", model="plain", init_scale=0.3),
    # The reference process: classical tensor power method with deflation (no fitted mass curve).
    "power-method": dict(method="power-method"),
}


class DeflationParams(RunParams):
    """Config of the ``deflation`` run (:mod:`overtensor.experiments.deflation`): a ``scenario`` or
    ``order, components, weights``."""

    scenario: Literal[tuple(SCENARIOS)] | None = None  # type: ignore[valid-type]
    order: Annotated[int, Field(ge=2)] | None = None
    components: Literal["random", "orthonormal"] | None = None
    weights: Literal["equal", "geometric", "linear"] | Fraction | None = None
    dim: PositiveInt
    rank: PositiveInt = 5
    variant: Literal[tuple(VARIANTS)] = "deflation"  # type: ignore[valid-type]
    width: PositiveInt = 50
    lr: PositiveFloat | None = None
    eval_every: PositiveInt | None = None
    max_steps: NonNegativeInt | None = None
    final_steps: NonNegativeInt | None = None
    main_epochs: PositiveInt | Literal["default", "auto"] | None = None
    tol: NonNegativeFloat | None = None

    def target_components(self) -> str | None:
        return SCENARIOS[self.scenario][1] if self.scenario is not None else self.components

    @model_validator(mode="after")
    def _target_keys(self) -> DeflationParams:
        # A scenario fixes order, components and weights: given too, they would be recorded
        # but ignored; without a scenario all three are needed.
        keys = ("order", "components", "weights")
        if self.scenario is not None:
            for key in keys:
                if getattr(self, key) is not None:
                    raise ConflictError(key, f"is set by scenario {self.scenario!r}; remove "
                                             f"{key} or scenario")
        else:
            for key in keys:
                if getattr(self, key) is None:
                    raise ConflictError(key, "is needed without a scenario (or set scenario)")
        return self


#: Curves kept per run for the staircase figures (downsampled history).
CURVE_POINTS = 150


def _target(cfg: dict[str, Any]):
    import overtensor as ot

    scenario = cfg.get("scenario")
    if scenario is not None:
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {sorted(SCENARIOS)}, got {scenario!r}")
        order, components, weights = SCENARIOS[scenario]
    else:
        order, components, weights = cfg["order"], cfg["components"], cfg["weights"]
    return ot.random_target(order=order, dim=cfg["dim"], rank=cfg.get("rank", 5),
                            components=components, weights=weights, random_state=cfg["seed"])


@register_run("deflation", params=DeflationParams, metrics=(
    "relative_error", "steps", "seconds", "stop_reason", "recovered", "all_recovered", "min_cos",
    "ordered", "fit_order", "unfitted", "t50_{j}", "t99_{j}", "ratio_{j}", "weight_ratio_{j}",
    "curve_step", "curve_mass", "curve_error"))
def run_deflation(config: dict[str, Any]) -> dict[str, Any]:
    """One fit with per-component mass recording; metrics are the fit times and their order.

    Config: ``scenario`` (see :data:`SCENARIOS`; or ``order, components, weights``), ``dim``,
    ``rank`` (5), ``variant`` (:data:`VARIANTS`), ``width`` (50), ``seed``, and optionally ``lr``,
    ``eval_every``, ``max_steps``, ``final_steps``, ``main_epochs``, ``tol``. The fit stops early
    once every component has at least 99 % of its mass (so runs without re-initialization get
    the same step budget, not the same stopping point).

    Metrics: ``t50_j``/``t99_j`` (step at which component ``j`` passes 50 %/99 % of its mass,
    ``nan`` if never), ``ratio_j = t50_{j+1}/t50_j`` and ``weight_ratio_j = λ_j/λ_{j+1}``,
    ``ordered`` (all fitted, strictly in the order of the truth, which is sorted by weight),
    ``unfitted`` (components below 50 % at the end), ``recovered``/``min_cos`` of the extracted CP,
    ``relative_error``, ``steps``, ``seconds``, and the downsampled curves ``curve_step``,
    ``curve_error``, ``curve_mass`` (one list of masses per point) for the figures.
    """
    import overtensor as ot
    from overtensor.tensors.component_mass import (
        MassRecorder,
        crossing_steps,
        fit_order,
        is_strictly_ordered,
        mass_matrix,
    )

    cfg = dict(config)
    variant = cfg.get("variant", "deflation")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    target = _target(cfg)
    r = target.truth.rank
    if variant == "power-method":
        return _run_power(target, cfg)
    opts = dict(VARIANTS[variant])
    for key in ("lr", "eval_every", "max_steps", "final_steps", "main_epochs", "tol"):
        if key in cfg:
            opts[key] = cfg[key]
    opts.setdefault("tol", 1e-6)

    def all_fitted(record, state) -> bool:
        return min(record.get("mass", [0.0])) >= 0.99

    result = ot.fit(target, width=cfg.get("width", 50), random_state=cfg["seed"] + 10_000,
                    recorders=[MassRecorder(target)], callback=all_fitted, **split_options(opts),
                    runtime=ot.Runtime(engine="paper"))
    t50 = crossing_steps(result.history, 0.5)
    t99 = crossing_steps(result.history, 0.99)
    lam = target.truth.weights.abs().tolist()
    rec = result.recovery()
    out: dict[str, Any] = {
        "relative_error": result.relative_error,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "stop_reason": result.stop_reason,
        "recovered": rec.recovered,
        "all_recovered": rec.recovered == r,
        "min_cos": float(rec.cosines.min()),
        "ordered": is_strictly_ordered(t50),
        "fit_order": "".join(str(j + 1) for j in fit_order(t50)),
        "unfitted": int(sum(m < 0.5 for m in result.history[-1]["mass"])),
    }
    out.update(_time_columns(t50, t99, lam))
    steps, masses = mass_matrix(result.history)
    keep = np.unique(np.linspace(0, len(steps) - 1, min(CURVE_POINTS, len(steps))).round().astype(int))
    out["curve_step"] = [int(steps[i]) for i in keep]
    out["curve_mass"] = [[round(x, 5) for x in masses[i]] for i in keep]
    out["curve_error"] = [float(result.history[i]["relative_error"]) for i in keep]
    return out


def _run_power(target, cfg: dict[str, Any]) -> dict[str, Any]:
    """The classical reference: ``t50_j`` is the power iteration count at which the component
    matched to ``u_j`` was extracted; ``ordered`` means extracted in strictly decreasing weight."""
    import overtensor as ot
    from overtensor.tensors.component_mass import fit_order, is_strictly_ordered

    r = target.truth.rank
    result = ot.fit(target, method="power-method", random_state=cfg["seed"] + 10_000, tol=0.0)
    times = [math.nan] * r
    for rec in result.history:
        if rec.get("cos", 0.0) >= 0.9 and math.isnan(times[rec["matched"]]):
            times[rec["matched"]] = float(rec["step"])
    rec = result.recovery()
    lam = target.truth.weights.abs().tolist()
    out: dict[str, Any] = {
        "relative_error": result.relative_error, "steps": result.steps,
        "seconds": round(result.seconds, 3), "stop_reason": result.stop_reason,
        "recovered": rec.recovered, "all_recovered": rec.recovered == r,
        "min_cos": float(rec.cosines.min()), "ordered": is_strictly_ordered(times),
        "fit_order": "".join(str(j + 1) for j in fit_order(times)),
        "unfitted": int(sum(math.isnan(t) for t in times)),
    }
    out.update(_time_columns(times, times, lam))
    return out


def _time_columns(t50: list[float], t99: list[float], lam: list[float]) -> dict[str, float]:
    """Per component ``t50_j``, ``t99_j``; per consecutive pair the time and weight ratios."""
    from overtensor.tensors.component_mass import time_ratios

    out: dict[str, float] = {}
    for j in range(len(t50)):
        out[f"t50_{j + 1}"] = t50[j]
        out[f"t99_{j + 1}"] = t99[j]
    for j, ratio in enumerate(time_ratios(t50)):
        out[f"ratio_{j + 1}"] = ratio
        out[f"weight_ratio_{j + 1}"] = lam[j] / lam[j + 1]
    return out


# Figures -----------------------------------------------------------------------------------------

def _headline_row(df):
    """The run shown as the headline staircase: orth4-geo, deflation, smallest dim, smallest seed."""
    sub = df[(df["scenario"] == "orth4-geo") & (df["variant"] == "deflation")]
    if sub.empty:
        sub = df
    return sub.sort_values(["dim", "seed"]).iloc[0]


def _draw_staircase(ax, row, *, legend: bool = True, title: str | None = None) -> None:
    steps = np.asarray(row["curve_step"], dtype=float)
    mass = np.asarray(row["curve_mass"], dtype=float)
    _, _, weights = SCENARIOS.get(row.get("scenario"), (None, None, None))
    from overtensor.tensors.targets import make_weights

    lam = make_weights(weights, mass.shape[1]).tolist() if weights is not None else None
    for j in range(mass.shape[1]):
        label = f"$u_{j + 1}$" + (f", $\\lambda$={lam[j]:.3g}" if lam else "")
        ax.plot(steps, mass[:, j], lw=1.6, label=label)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("gradient step")
    ax.set_ylabel("fitted mass $M_j$")
    ax.grid(alpha=0.3)
    err = ax.twinx()
    err.semilogy(steps, np.asarray(row["curve_error"], dtype=float), "k--", lw=1.0,
                 label="relative error")
    err.set_ylabel("relative error (dashed)")
    if legend:
        lines = ax.get_legend_handles_labels()
        lines2 = err.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="center right")
    if title:
        ax.set_title(title, fontsize=9)


def figures(df, outdir: Path) -> list[Path]:
    """``staircase``: the headline run (one curve per component + total relative error);
    ``staircase_grid``: seed-0 staircase per scenario and variant; ``fit_times``: ``t50_j`` vs
    ``λ_1/λ_j`` (the theory says proportional for orthogonal targets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from overtensor.experiments.plots import save

    outdir = Path(outdir)
    paths: list[Path] = []
    if "curve_step" not in df:
        return paths
    df = df[df["curve_step"].map(lambda v: isinstance(v, list))]  # power-method rows have no curve
    if df.empty:
        return paths
    row = _headline_row(df)
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    _draw_staircase(ax, row, title=(
        f"deflation staircase: {row['scenario']}, d={row['dim']}, m={row.get('width', 50)}, "
        f"variant {row['variant']}, seed {row['seed']}"))
    paths += save(fig, outdir / "staircase")

    first = df.sort_values(["dim", "seed"]).groupby(["scenario", "variant"], sort=True).head(1)
    scen = [s for s in SCENARIOS if s in set(first["scenario"])]
    var = [v for v in VARIANTS if v in set(first["variant"])]
    fig, axes = plt.subplots(len(scen), len(var), figsize=(4.2 * len(var), 2.8 * len(scen)),
                             squeeze=False)
    for i, s in enumerate(scen):
        for k, v in enumerate(var):
            ax = axes[i][k]
            sel = first[(first["scenario"] == s) & (first["variant"] == v)]
            if sel.empty:
                ax.set_visible(False)
                continue
            r0 = sel.iloc[0]
            _draw_staircase(ax, r0, legend=(i == 0 and k == 0),
                            title=f"{s}, {v}, d={r0['dim']}, seed {r0['seed']}")
    fig.tight_layout()
    paths += save(fig, outdir / "staircase_grid")

    tcols = sorted(c for c in df.columns if c.startswith("t50_"))
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for (s, v), g in df.groupby(["scenario", "variant"], sort=True):
        if s not in SCENARIOS or v != "deflation":
            continue
        _, _, weights = SCENARIOS[s]
        from overtensor.tensors.targets import make_weights

        lam = make_weights(weights, len(tcols)).numpy()
        x = np.concatenate([lam[0] / lam] * len(g))
        y = g[tcols].to_numpy(dtype=float).ravel()
        ok = np.isfinite(y)
        ax.loglog(x[ok], y[ok], "o", ms=3, alpha=0.6, label=s)
    xs = np.array([1.0, 16.0])
    base = df.loc[(df["variant"] == "deflation"), "t50_1"].median() if "t50_1" in df else None
    if base is not None and np.isfinite(base):
        ax.loglog(xs, base * xs, "k:", lw=1, label="$\\propto 1/\\lambda_j$")
    ax.set_xlabel("$\\lambda_1 / \\lambda_j$")
    ax.set_ylabel("fit time $t_{50}$ (steps)")
    ax.set_title("fit time of each component vs inverse weight (variant deflation)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    paths += save(fig, outdir / "fit_times")
    return paths


def summary(df) -> str:
    """Per scenario, dim and variant: fraction of runs fitted in strictly decreasing order of
    weight, median fit times ``t50_j``, median ratios ``t50_{j+1}/t50_j`` against ``λ_j/λ_{j+1}``,
    fraction with every component recovered (``|cos| ≥ 0.99``) and with a component unfitted."""
    tcols = sorted(c for c in df.columns if c.startswith("t50_"))
    rcols = sorted(c for c in df.columns if c.startswith("ratio_"))
    lines = ["deflation: fit times (steps to 50 % of each component's mass) and their ratios; "
             "ordered = all fitted, strictly by decreasing weight",
             f"{'scenario':<13} {'d':>3} {'variant':<13} {'n':>3} {'ordered':>8} {'all rec':>8} "
             f"{'unfit':>6}  median t50_j  |  median ratio t50_(j+1)/t50_j (weight ratio)"]
    for (s, d, v), g in df.groupby(["scenario", "dim", "variant"], sort=True):
        n = len(g)
        times = " ".join(_fmt(g[c].median()) for c in tcols)
        ratios = " ".join(
            f"{_fmt(g[c].median(), 2)}({_fmt(g['weight_' + c].iloc[0], 2)})" for c in rcols)
        if v == "power-method":  # iteration counts, not flow times: show the extraction order
            common = g["fit_order"].value_counts()
            times, ratios = "(power iterations)", f"most common extraction order {common.index[0]}"
        lines.append(
            f"{s:<13} {d:>3} {v:<13} {n:>3} {g['ordered'].astype(bool).sum():>4}/{n:<3} "
            f"{g['all_recovered'].astype(bool).sum():>4}/{n:<3} {(g['unfitted'] > 0).mean():>6.0%}  "
            f"{times}  |  {ratios}")
    return "\n".join(lines)


def _fmt(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def claims(df) -> list[Claim]:
    """Ge et al. (2021) on orthogonal targets, variant ``deflation``: (1) components are fitted one
    at a time in decreasing order of weight (supported when ≥ 80 % of the runs are strictly
    ordered, not supported below 50 %); (2) on ``orth4-geo`` the fit times grow like ``1/λ_j``
    (every median ratio ``t50_{j+1}/t50_j`` within a factor 1.5 of the weight ratio)."""
    paper, url = GE_2021
    runs = df[(df["variant"] == "deflation") & df["scenario"].astype(str).str.startswith("orth")]
    statement = ("On orthogonal targets, over-parameterized gradient flow fits the components one "
                 "at a time, in decreasing order of weight (a deflation staircase).")
    n = len(runs)
    k = int(runs["ordered"].astype(bool).sum()) if n else 0
    scen = ", ".join(sorted(runs["scenario"].unique())) if n else "none"
    reason = (f"{k}/{n} runs (variant deflation; scenarios {scen}; d = "
              f"{', '.join(str(int(d)) for d in sorted(runs['dim'].unique())) if n else '–'}; "
              f"{runs['seed'].nunique() if n else 0} seeds) fit every component, each strictly after "
              "the heavier one (50 % of its mass; needs ≥ 80 % of runs).")
    if n < 4:
        ordered = Claim(paper, url, statement, "inconclusive",
                        f"only {n} runs (need ≥ 4). " + reason, "staircase")
    else:
        frac = k / n
        verdict = "supported" if frac >= 0.8 else "not supported" if frac < 0.5 else "inconclusive"
        ordered = Claim(paper, url, statement, verdict, reason, "staircase")
    out = [ordered]
    geo = runs[runs["scenario"] == "orth4-geo"]
    rcols = sorted(c for c in geo.columns if c.startswith("ratio_") and geo[c].notna().any())
    statement = ("The fit time of each component is proportional to the inverse of its weight "
                 "(orthogonal order 4, weights 2^−(j−1): consecutive fit times double).")
    if len(geo) < 4 or not rcols:
        out.append(Claim(paper, url, statement, "inconclusive",
                         f"only {len(geo)} orth4-geo runs of variant deflation (need ≥ 4)", "fit_times"))
        return out
    med = [float(geo[c].median()) for c in rcols]
    want = [float(geo["weight_" + c].iloc[0]) for c in rcols]
    ok = all(w / 1.5 <= m <= w * 1.5 for m, w in zip(med, want, strict=True))
    reason = (f"median over {len(geo)} runs ({geo['seed'].nunique()} seeds) of t50_(j+1)/t50_j: "
              + ", ".join(f"{m:.2f}" for m in med) + " against the weight ratios "
              + ", ".join(f"{w:g}" for w in want) + " (needs each within a factor 1.5).")
    out.append(Claim(paper, url, statement, "supported" if ok else "not supported", reason, "fit_times"))
    return out


CAPTIONS = {
    "staircase": ("Fitted mass of each true component (solid, left axis: the share of λ_j u_j^⊗l the "
                  "model carries) and the relative error (dashed, right axis) against gradient steps, "
                  "for one run: orthogonal order-4 target, weights 2^−(j−1), variant deflation, the "
                  "smallest d and seed. Read: the components are fitted one after another, largest "
                  "weight first, each step of the error curve matching one component's rise."),
    "staircase_grid": ("The same staircase for the first seed of every scenario (rows) and variant "
                       "(columns): orthogonal vs random components, with and without "
                       "re-initialization, the plain model. Read: whether the order of the "
                       "rises (largest weight first) survives random components and re-initialization."),
    "fit_times": ("Fit time t50_j (steps until component j has 50 % of its mass) against λ_1/λ_j, "
                  "every run and component of variant deflation (log–log); dotted: proportional to "
                  "1/λ_j through the median t50_1. Read: how close the points lie to the dotted "
                  "line, i.e. whether fit time grows in proportion to 1/λ_j."),
}


# What every preset fixes: m = 50, step 0.05, masses recorded every 5 steps.
_COMMON = {"rank": 5, "width": 50, "lr": 0.05, "eval_every": 5}


def _preset(description: str, fixed: dict[str, Any], grid: dict[str, Any], seeds: int) -> dict:
    return {"name": "deflation", "run": "deflation", "description": description,
            "fixed": {**_COMMON, **fixed}, "grid": grid, "seeds": seeds}


_SMALL = _preset(
    "per-component fitted mass over time (small preset)",
    {"max_steps": 4000, "final_steps": 1000},
    {"scenario": ["orth4-geo", "orth3-geo", "random4-geo"], "dim": [20],
     "variant": ["deflation", "plain", "power-method"]},
    seeds=2,
)
#: The check of issue 4: orthogonal order 4, weights 2^{-(j-1)}, d in {20, 50}, 10 seeds, with and
#: without re-initialization under the same step budget.
_ORTH4 = _preset(
    "orth4-geo, d in {20, 50}, 10 seeds, with/without re-initialization",
    {"max_steps": 12000, "final_steps": 2000, "scenario": "orth4-geo"},
    {"dim": [20, 50], "variant": ["deflation", "no-reinit"]},
    seeds=10,
)
#: For the docs check (tests/test_docs.py): one run.
_TINY = _preset(
    "tiny check: orth4-geo, d = 20, variant deflation, one seed",
    {"max_steps": 3000, "final_steps": 500},
    {"scenario": ["orth4-geo"], "dim": [20], "variant": ["deflation"]},
    seeds=1,
)
_FULL = _preset(
    "per-component fitted mass over time (full preset)",
    {"max_steps": 12000, "final_steps": 2000},
    {"scenario": list(SCENARIOS), "dim": [20, 50],
     "variant": ["deflation", "no-reinit", "plain", "power-method"]},
    seeds=10,
)

EXPERIMENT = register_experiment(Experiment(
    name="deflation",
    description="are components fitted one at a time, largest weight first (staircase)?",
    presets={"tiny": _TINY, "small": _SMALL, "orth4": _ORTH4, "full": _FULL},
    figures=figures,
    summary=summary,
    claims=claims,
    captions=CAPTIONS,
))
