"""Built-in experiment ``adaptive-regression``: which interpolant each optimizer finds
(docs/theory/networks.md §2).

Question (Shah, Basu, Kyrillidis, Sanghavi): in over-parameterized least squares (``n < p``),
gradient descent and the span-preserving preconditioners (``D_k = I + Xᵀ S_k X``) stay in the row
space of ``X`` and end at the minimum-norm interpolant ``w_mn = X⁺y``; rotating adaptive methods
(AdaGrad, RMSProp, Adam) still drive ``Pw → w_mn`` but leave an out-of-span part ``(I − P)w`` that
*saturates* at a non-zero value, equal to ``(I − P)w_0 − Σ_k η (I − P) D_k ∇f_k``.

One run = one optimizer on one problem and seed (:func:`overtensor.regression.core.fit_regression`):

* ``problem = "gaussian"``: ``X`` (n×p) standard normal, ``w* ~ N(0, I/p)``, noiseless;
* ``problem = "random-features"``: the random-features regime of a two-layer ReLU network,
  ``φ(x) = relu(W_0 x)``, ``x ~ N(0, I_d)``, ``N`` features, planted coefficients ``θ* ~ N(0, I/N)``.

Metrics: the final ``‖Pw − w_mn‖``, ``‖(I − P)w‖``, ``‖w‖``, loss, exact test risk, the risk of
``w_mn``, ``prediction_error`` (the measured ``(I − P)w`` against the sum of the optimizer's own
rebuilt steps: a consistency check of that bookkeeping, equal by construction, not a test of the
paper's prediction and not a claim), the settling of ``‖(I − P)w‖`` over the last
half, the leak ratio and the class (:func:`overtensor.regression.core.classify_preconditioner`), and
log-spaced curves (``curve_*`` lists) for the figures. Rotating methods use a step decay over the
last 30 % (constant-step RMSProp/Adam hover at a distance ``∝ lr``); GD and the span-preserving
method use a constant step ``1/λ_max``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from overtensor.experiments.params import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RunParams,
)
from overtensor.experiments.registry import Claim, Experiment, register_experiment, register_run
from overtensor.optim.registry import OPTIMIZERS

PAPER = ("Shah, Basu, Kyrillidis, Sanghavi, On Generalization of Adaptive Methods for Over-parameterized "
         "Linear Regression (2020)")
URL = "https://arxiv.org/abs/2011.14066"
SPAN_METHODS = ("gd", "span-preserving")
ROTATING = ("adagrad", "rmsprop", "adam")
METHODS = (*SPAN_METHODS, *ROTATING)
_CURVES = ("in_span_error", "out_of_span", "norm", "test_risk", "loss")
PROBLEMS = ("gaussian", "nuisance", "random-features")
#: Optimizers a run can name: every registered one except ``"diagonal"``, whose ``D`` a config
#: cannot give (min-norm-generalization computes that preconditioner's limit in closed form).
RUN_OPTIMIZERS = tuple(n for n in OPTIMIZERS if n != "diagonal")
#: Weightings ``S_k`` of the span-preserving preconditioner a config can name.
SPAN_WEIGHTS = ("residual", "normalized-residual", "identity")

Interval = Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]


class RegressionProblemParams(RunParams):
    """Keys of :func:`make_problem` and :func:`run_one`: the problem, its sizes and the step rules.

    ``scale`` is needed by the ``nuisance`` problem; ``block`` and ``support`` are ``[start, stop)``
    column ranges of the random features (``0 <= start < stop <= width``)."""

    problem: Literal[PROBLEMS] = "gaussian"  # type: ignore[valid-type]
    n: PositiveInt = 50
    p: PositiveInt = 200
    d: PositiveInt = 20
    width: PositiveInt = 200
    noise: NonNegativeFloat = 0.0
    scale: PositiveFloat | None = Field(default=None, validate_default=True)
    block: Interval | None = None
    block_scale: PositiveFloat = 1.0
    support: Interval | None = None
    steps: PositiveInt = 5000
    rf_steps: PositiveInt = 5000
    schedule: Literal["constant", "step-decay"] = "step-decay"
    records: Annotated[int, Field(ge=2)] = 40
    lr: dict[Literal[RUN_OPTIMIZERS], PositiveFloat | Literal["auto"]] | None = None  # type: ignore[valid-type]

    USED_ONLY_WITH: ClassVar[dict[str, tuple[str, tuple[Any, ...]]]] = {
        "scale": ("problem", ("nuisance",)),
        "block": ("problem", ("random-features",)),
        "block_scale": ("problem", ("random-features",)),
        "support": ("problem", ("random-features",)),
        "rf_steps": ("problem", ("random-features",))}

    @field_validator("scale")
    @classmethod
    def _scale_for_nuisance(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and info.data.get("problem") == "nuisance":
            raise ValueError("problem 'nuisance' needs the scale s of its nuisance coordinates")
        return v

    @field_validator("block", "support")
    @classmethod
    def _column_range(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        width = info.data.get("width")
        if v is not None and width is not None and not v[0] < v[1] <= width:
            raise ValueError(f"must be [start, stop) with 0 <= start < stop <= width={width}")
        return v


class AdaptiveRegressionParams(RegressionProblemParams):
    """Config of the ``adaptive_regression`` run: one optimizer (a name of
    :data:`overtensor.optim.registry.OPTIMIZERS` but ``"diagonal"``) on one problem."""

    optimizer: Literal[RUN_OPTIMIZERS]  # type: ignore[valid-type]
    span_weights: dict[Literal[PROBLEMS], Literal[SPAN_WEIGHTS]] | None = None  # type: ignore[valid-type]

    KEYED_BY: ClassVar[dict[str, str]] = {"lr": "optimizer", "span_weights": "problem"}


def make_problem(config: dict[str, Any]):
    """The regression problem of a run config (``problem``, sizes, ``seed``)."""
    from overtensor.regression.core import gaussian_design, nuisance_design, random_features_problem

    kind, seed = config.get("problem", "gaussian"), int(config["seed"])
    if kind == "gaussian":
        return gaussian_design(int(config.get("n", 50)), int(config.get("p", 200)),
                               noise=float(config.get("noise", 0.0)), random_state=seed)
    if kind == "nuisance":
        return nuisance_design(int(config.get("n", 50)), int(config.get("p", 200)), float(config["scale"]),
                               noise=float(config.get("noise", 0.0)), random_state=seed)
    if kind == "random-features":
        width = int(config.get("width", 200))
        block = config.get("block")  # [start, stop): features scaled by block_scale
        support = config.get("support")  # [start, stop): where the target lives
        return random_features_problem(
            int(config.get("d", 20)), width, int(config.get("n", 50)),
            block=range(*block) if block else None, block_scale=float(config.get("block_scale", 1.0)),
            support=range(*support) if support else None, noise=float(config.get("noise", 0.0)),
            random_state=seed)
    raise ValueError(f"problem must be 'gaussian', 'nuisance' or 'random-features', got {kind!r}")


def run_one(problem, optimizer: str, config: dict[str, Any], row_space=None):
    """:func:`fit_regression` with the experiment's step rules (see the module docstring)."""
    from overtensor.regression.core import fit_regression

    steps = int(config.get("rf_steps" if problem.name == "random-features" else "steps", 5000))
    schedule = config.get("schedule", "step-decay") if optimizer in ROTATING else "constant"
    lr = (config.get("lr") or {}).get(optimizer)
    options = None
    if optimizer == "span-preserving":
        options = {"weights": (config.get("span_weights") or {}).get(problem.name, "residual")}
    return fit_regression(problem, optimizer, lr=lr, steps=steps, schedule=schedule,
                          optimizer_options=options,
                          records=int(config.get("records", 40)), row_space=row_space,
                          random_state=int(config["seed"]))


@register_run("adaptive_regression", params=AdaptiveRegressionParams, metrics=(
    "lr", "steps", "min_norm", "rank", "in_span_error", "out_of_span", "norm", "loss", "test_risk",
    "risk_min_norm", "null_risk", "rel_in_span", "rel_out_of_span", "settled_change", "leak_ratio",
    "class", "prediction_error", "risk_gap", "risk_gap_theory", "cos_out_wstar", "seconds",
    *(f"curve_{key}" for key in _CURVES), "curve_step"))
def run_adaptive_regression(config: dict[str, Any]) -> dict[str, Any]:
    """One optimizer on one problem (module docstring). Config keys: ``problem, optimizer, seed``;
    sizes ``n, p`` (gaussian) or ``d, width, n`` (random-features); ``steps`` (gaussian),
    ``rf_steps`` (random-features), ``schedule`` (rotating methods), ``lr`` (``{name: lr}``),
    ``span_weights`` (``{problem: weights}`` of the span-preserving preconditioner)."""
    from overtensor.regression.core import RowSpace, classify_preconditioner

    problem = make_problem(config)
    space = RowSpace(problem.X)
    res = run_one(problem, config["optimizer"], config, space)
    f = res.final
    mn = float(res.w_min_norm.norm())
    out = res.out_of_span
    w_star_out = space.complement(problem.w_star)
    risk_mn = problem.test_risk(res.w_min_norm)
    # Σ = I: risk(w) − risk(w_mn) = ‖(I−P)w‖² − 2⟨(I−P)w, (I−P)w*⟩ once Pw = w_mn (docs/theory/networks.md
    # §2).
    gap_theory = float(out @ out - 2 * out @ w_star_out) if problem.name == "gaussian" else None
    metrics: dict[str, Any] = {
        "lr": res.lr, "steps": res.steps, "min_norm": mn, "rank": space.rank,
        "in_span_error": f["in_span_error"], "out_of_span": f["out_of_span"], "norm": f["norm"],
        "loss": f["loss"], "test_risk": f["test_risk"], "risk_min_norm": risk_mn,
        "null_risk": problem.null_risk(),
        "rel_in_span": f["in_span_error"] / mn, "rel_out_of_span": f["out_of_span"] / mn,
        "settled_change": res.settled_change(), "leak_ratio": res.leak_ratio,
        "class": classify_preconditioner(res), "prediction_error": res.prediction_error(),
        "risk_gap": f["test_risk"] - risk_mn, "risk_gap_theory": gap_theory,
        "cos_out_wstar": float(out @ w_star_out / (out.norm() * w_star_out.norm()))
        if float(out.norm()) > 0 else 0.0,
        "seconds": res.seconds,
    }
    for key in _CURVES:
        metrics[f"curve_{key}"] = [h[key] for h in res.history]
    metrics["curve_step"] = [h["step"] for h in res.history]
    metrics["history"] = [{k: h[k] for k in ("step", *_CURVES)} for h in res.history]
    return metrics


def _num(df: pd.DataFrame, cols) -> pd.DataFrame:
    df = df.copy()
    for c in cols:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


_COLORS = {"gd": "black", "span-preserving": "tab:gray", "adagrad": "tab:blue", "rmsprop": "tab:orange",
           "adam": "tab:green", "momentum": "tab:purple", "adamw": "tab:olive"}


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Per problem: ``‖Pw − w_mn‖``, ``‖(I − P)w‖``, ``‖w‖`` and the test risk against the step
    (log axes), median over seeds with a min–max band, one colour per optimizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from overtensor.experiments.plots import save

    out: list[Path] = []
    panels = (("in_span_error", "‖Pw − w_mn‖"), ("out_of_span", "‖(I − P)w‖"), ("norm", "‖w‖"),
              ("test_risk", "test risk (exact), log scale"))
    for problem, sub in df.groupby("problem"):
        fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
        for opt, g in sub.groupby("optimizer", sort=False):
            steps = np.asarray(g["curve_step"].iloc[0], dtype=float)
            for ax, (key, label) in zip(axes, panels, strict=True):
                curves = [np.asarray(c, dtype=float) for c in g[f"curve_{key}"]]
                if any(len(c) != len(steps) for c in curves):
                    continue
                M = np.vstack(curves)
                x = np.maximum(steps, 0.8)  # step 0 at the left edge of a log axis
                color = _COLORS.get(opt)
                ax.plot(x, np.median(M, 0), color=color, label=f"{opt} ({len(curves)} seeds)")
                ax.fill_between(x, M.min(0), M.max(0), color=color, alpha=0.15)
                ax.set_title(label)
        for ax in axes:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        mn = pd.to_numeric(sub["min_norm"]).median()
        axes[2].axhline(mn, color="gray", ls=":", lw=1, label="‖w_mn‖ (median)")
        axes[3].axhline(pd.to_numeric(sub["risk_min_norm"]).median(), color="gray", ls=":", lw=1,
                        label="risk of w_mn (median)")
        axes[3].legend(fontsize=7)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"adaptive-regression, {problem}: in-span part → w_mn for all; the out-of-span part "
                     "is 0 for GD / span-preserving and saturates for adaptive methods", fontsize=10)
        out += save(fig, Path(outdir) / f"adaptive_regression_{problem}")
    return out


def summary(df: pd.DataFrame) -> str:
    """Per problem and optimizer: medians (and worst cases) over seeds of the final diagnostics."""
    df = _num(df, ["rel_in_span", "rel_out_of_span", "in_span_error", "out_of_span", "test_risk",
                   "risk_min_norm", "settled_change", "prediction_error"])
    rows = []
    for (problem, opt), g in df.groupby(["problem", "optimizer"], sort=False):
        rows.append({"problem": problem, "optimizer": opt, "seeds": len(g),
                     "class": "/".join(sorted(set(g["class"]))),
                     "max ‖Pw−w_mn‖": g["in_span_error"].max(), "max rel in-span": g["rel_in_span"].max(),
                     "min rel out": g["rel_out_of_span"].min(), "max rel out": g["rel_out_of_span"].max(),
                     "max settle": g["settled_change"].max(),
                     "risk mean": g["test_risk"].mean(), "risk sd": g["test_risk"].std(),
                     "risk(w_mn) mean": g["risk_min_norm"].mean(),
                     # relative error of a rounding-level out-of-span part means nothing: rotating only
                     "consistency": g["prediction_error"].max() if opt in ROTATING else float("nan")})
    table = pd.DataFrame(rows)
    return ("adaptive-regression (final values; rel = / ‖w_mn‖; consistency = max relative difference "
            "between (I − P)w and the sum of the optimizer's rebuilt out-of-span steps, a check of the "
            "bookkeeping, not of the theory)\n"
            + table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def claims(df: pd.DataFrame) -> list[Claim]:
    """The three claims of the module docstring and the generalization comparison, per problem."""
    df = _num(df, ["rel_in_span", "rel_out_of_span", "in_span_error", "out_of_span", "test_risk",
                   "risk_min_norm", "settled_change", "prediction_error", "risk_gap", "risk_gap_theory"])
    out: list[Claim] = []
    for problem, sub in df.groupby("problem"):
        fig = f"adaptive_regression_{problem}"
        span = sub[sub["optimizer"].isin(SPAN_METHODS)]
        if not span.empty:
            a, b = span["in_span_error"].max(), span["out_of_span"].max()
            ok = a < 1e-8 and b < 1e-10
            close = a < 1e-3 and b < 1e-10
            out.append(Claim(
                PAPER, URL,
                f"{problem}: GD and the span-preserving preconditioner D_k = I + Xᵀ S_k X (S_k = residual "
                "weights) end at the minimum-norm interpolant (‖Pw − w_mn‖ < 1e-8, ‖(I − P)w‖ < 1e-10).",
                "supported" if ok else ("inconclusive" if close else "not supported"),
                f"max over {len(span)} runs ({span['seed'].nunique()} seeds × {span['optimizer'].nunique()} "
                f"methods): ‖Pw − w_mn‖ = {a:.2g}, ‖(I − P)w‖ = {b:.2g}"
                + ("" if ok else " (out of span exactly 0 to rounding; the in-span error is still "
                   "decreasing: more steps needed on this ill-conditioned design)" if close else ""),
                fig))
        rot = sub[sub["optimizer"].isin(ROTATING)]
        if not rot.empty:
            a, lo, st = rot["rel_in_span"].max(), rot["rel_out_of_span"].min(), rot["settled_change"].max()
            ok = a < 1e-2 and lo > 0.1 and st < 0.01
            out.append(Claim(
                PAPER, URL,
                f"{problem}: AdaGrad, RMSProp and Adam interpolate (‖Pw − w_mn‖ < 1e-2‖w_mn‖) while "
                "‖(I − P)w‖ saturates (changes < 1 % over the last half) at a value > 0.1‖w_mn‖.",
                "supported" if ok else "not supported",
                f"over {len(rot)} runs ({rot['seed'].nunique()} seeds): max ‖Pw − w_mn‖/‖w_mn‖ = {a:.2g}, "
                f"min ‖(I − P)w‖/‖w_mn‖ = {lo:.3g}, max relative change over the last half = {st:.2g}",
                fig))
            # Not a claim: (I − P)w_0 − Σ_k η (I − P) D_k g̃_k, with the steps rebuilt from the
            # optimizer's own state, equals the measured (I − P)w by construction (a sum of the same
            # steps): a consistency check of the bookkeeping, shown in the summary only.
            worse = int((rot["test_risk"] > rot["risk_min_norm"]).sum())
            line = (f"{worse}/{len(rot)} adaptive runs have a higher test risk than w_mn; mean risk "
                    f"{rot['test_risk'].mean():.3g} vs {rot['risk_min_norm'].mean():.3g} for w_mn "
                    f"({rot['seed'].nunique()} seeds)")
            if problem == "gaussian" and rot["risk_gap_theory"].notna().all():
                dev = (rot["risk_gap"] - rot["risk_gap_theory"]).abs().max()
                line += (f"; risk − risk(w_mn) matches ‖(I−P)w‖² − 2⟨(I−P)w, (I−P)w*⟩ to {dev:.2g}")
            out.append(Claim(
                PAPER, URL,
                f"{problem}: the saturated out-of-span part does not point toward w* (planted without "
                "a preferred direction), so the adaptive methods generalize worse than the minimum-norm "
                "interpolant.",
                "supported" if worse == len(rot) else ("inconclusive" if worse >= len(rot) / 2
                                                       else "not supported"),
                line, fig))
    return out


# Span-preserving weights: the reference's diag(|r_k|)/n on the Gaussian design; on the
# ill-conditioned random features its first steps force a tiny constant step (1/λ_max(X D_0 Xᵀ)),
# so there the normalized residual weighting (D_k ⪯ 2I) is used: same class, a usable step.
_FIXED = {"n": 50, "p": 200, "d": 20, "width": 200, "schedule": "step-decay", "records": 40,
          "span_weights": {"gaussian": "residual", "random-features": "normalized-residual"}}

PRESETS = {
    # For the docs check (tests/test_docs.py): seconds, one seed; checks the pipeline, not the claims.
    "tiny": {
        "name": "adaptive-regression", "run": "adaptive_regression",
        "description": "tiny check: n=10 < p=40 Gaussian design and random features (d=5, N=40), "
                       "GD vs Adam, 300 steps, one seed",
        "fixed": {**_FIXED, "n": 10, "p": 40, "d": 5, "width": 40, "steps": 300, "rf_steps": 300},
        "grid": {"problem": ["gaussian", "random-features"], "optimizer": ["gd", "adam"]},
        "seeds": 1,
    },
    "small": {
        "name": "adaptive-regression", "run": "adaptive_regression",
        "description": "n=50 < p=200 Gaussian design and ReLU random features (d=20, N=200): GD, "
                       "span-preserving, AdaGrad, RMSProp, Adam; 5 seeds",
        "fixed": {**_FIXED, "steps": 5000, "rf_steps": 10000},
        "grid": {"problem": ["gaussian", "random-features"], "optimizer": list(METHODS)},
        "seeds": 5,
    },
    "full": {
        "name": "adaptive-regression", "run": "adaptive_regression",
        "description": "as small with 20000 (Gaussian) / 60000 (random-features) steps and 10 seeds",
        "fixed": {**_FIXED, "steps": 20000, "rf_steps": 60000},
        "grid": {"problem": ["gaussian", "random-features"], "optimizer": list(METHODS)},
        "seeds": 10,
    },
}

#: Captions of the figures (file stem -> what it shows and what to read from it).
CAPTIONS = {
    f"adaptive_regression_{problem}": (
        f"Problem '{problem}': against the step (log axes), from left to right the in-span error "
        "‖Pw − w_mn‖, the out-of-span part ‖(I − P)w‖, the norm ‖w‖ and the exact test risk; line = "
        "median over the seeds named in the legend, band = min–max, one colour per optimizer; dotted: "
        "‖w_mn‖ and the risk of w_mn. Read: every optimizer drives the in-span error to 0; the "
        "out-of-span part stays 0 for GD and the span-preserving rule and levels off above 0 for the "
        "adaptive ones, which is why their limit differs from the minimum-norm interpolant.")
    for problem in PROBLEMS
}

EXPERIMENT = register_experiment(Experiment(
    name="adaptive-regression",
    description="which interpolant GD, span-preserving and adaptive optimizers find (n < p regression)",
    presets=PRESETS, figures=figures, summary=summary, claims=claims,
    captions=CAPTIONS,
))
