"""Built-in experiment ``lazy-vs-full-networks``: RF, NT and NN risks of two-layer networks.

Ghorbani, Mei, Misiakiewicz, Montanari, "Limitations of Lazy Training of Two-layers Neural
Networks" (NeurIPS 2019); formulas in ``docs/theory/networks.md`` §1. Quadratic activation, mean-field scaling
``f(x) = c + (1/N) Σ a_i (w_i·x)²``, ``W_0`` with ``N(0, 1/d)`` entries.

One run = one ``(target, width, seed)``:

* ``target="authors"``: ``y = xᵀBx − tr B``, ``B = diag(γ)/√d``, ``γ ~ Exp(1)``; ``target="rank"``: a
  rank-``k`` ``B`` (:func:`overtensor.networks.data.low_rank_matrix`). Reported: the exact optima
  ``rf_exact``, ``nt_exact``, ``nn_exact`` (risk / null risk, :mod:`overtensor.networks.quadratic_risk`) at
  the run's ``W_0``, and for seeds below ``train_seeds`` the exact population risk of networks
  trained by online SGD in each regime (``rf_trained``, ``nt_trained``, ``nn_trained``, same ``W_0``).
* ``target="mixture"``: two centred Gaussians with covariances ``I ± eps·diag(s)``
  (:class:`overtensor.networks.data.GaussianMixture`); reported: the test classification error of each
  trained regime (``*_error``) and the Bayes error.

Expected picture: for ``N < d`` the exact risks order ``RF > NT > NN``; NT and NN reach 0 at
``N ≥ d`` while RF stays high (it needs ``N ~ d²``); for a rank-``k`` target NN is 0 from ``N = k``
while NT stays ``≈ (1 − N/d)²`` of the null risk — an unbounded ratio.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from overtensor.experiments.params import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RunParams,
)
from overtensor.experiments.registry import Claim, Experiment, register_experiment, register_run

PAPER = "Ghorbani, Mei, Misiakiewicz, Montanari (NeurIPS 2019)"
URL = "https://arxiv.org/abs/1906.08899"
REGIME_KEYS = {"rf": "random-features", "nt": "lazy", "nn": "full"}


def _gen(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


class LazyVsFullNetworksParams(RunParams):
    """Config of the ``lazy_vs_full_networks`` run (one target, width and seed)."""

    target: Literal["authors", "rank", "mixture"]
    dim: PositiveInt
    width: PositiveInt
    rank: PositiveInt = 5
    eps: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.5
    train_seeds: NonNegativeInt = 1
    steps: PositiveInt = 1000
    nt_steps: PositiveInt | None = None
    batch_size: PositiveInt = 100
    optimizer: Literal["sgd", "gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                       "adamw"] = "sgd"
    lr: PositiveFloat | None = None
    momentum: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] | None = None
    safety: Annotated[float, Field(gt=0, lt=2, allow_inf_nan=False)] | None = None
    nt_max_ratio: PositiveFloat | None = None
    test_samples: PositiveInt = 20_000
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:[0-9]+)?)$")] = "cpu"

    @field_validator("momentum")
    @classmethod
    def _momentum_is_an_sgd_option(cls, value: float | None, info: ValidationInfo) -> float | None:
        optimizer = info.data.get("optimizer")
        if value is not None and optimizer not in ("sgd", "gd"):
            raise ValueError(f"momentum is an option of optimizer 'sgd' or 'gd', not {optimizer!r}")
        return value

    @field_validator("safety")
    @classmethod
    def _safety_is_a_curvature_option(cls, value: float | None, info: ValidationInfo) -> float | None:
        # safety only scales the curvature default step of the SGD family (TrainConfig refuses it
        # otherwise): refuse it here too, before any run
        optimizer, lr = info.data.get("optimizer"), info.data.get("lr")
        if value is not None and optimizer not in ("sgd", "gd", "momentum", "nesterov"):
            raise ValueError(f"safety is an option of the curvature step of sgd/gd/momentum/"
                             f"nesterov, not of optimizer {optimizer!r}")
        if value is not None and lr is not None:
            raise ValueError(f"safety only sets the default (curvature) step, not used with lr={lr!r}")
        return value


@register_run("lazy_vs_full_networks", params=LazyVsFullNetworksParams)
def run_lazy_vs_full_networks(config: dict[str, Any]) -> dict[str, Any]:
    """One point of ``lazy-vs-full-networks`` (see the module docstring).

    Config keys (:class:`LazyVsFullNetworksParams`): ``target`` (``"authors" | "rank" |
    "mixture"``), ``dim``, ``width``, ``seed``; optional ``rank`` (default 5), ``eps`` (mixture,
    default 0.5), ``train_seeds`` (train for seeds below it; default 1), ``steps`` (default 1000),
    ``nt_steps`` (steps of the NT fits; default ``steps``), ``batch_size`` (default 100),
    ``optimizer`` (default ``"sgd"``), ``lr`` (default: the curvature steps of
    :func:`overtensor.networks.train.curvature_steps` for SGD, :func:`overtensor.networks.train.default_lr`
    otherwise), ``momentum`` and ``safety`` (of :class:`overtensor.networks.train.TrainConfig`),
    ``nt_max_ratio`` (train NT only for ``N/d`` up to it; default no limit), ``test_samples``
    (mixture, default 20000), ``device`` (default ``"cpu"``).
    """
    from overtensor.networks.data import gaussian_mixture, gaussian_quadratic
    from overtensor.networks.model import NetworkSpec, init_network
    from overtensor.networks.quadratic_risk import regime_optima
    from overtensor.networks.train import TrainConfig, train_network

    kind, dim, width, seed = str(config["target"]), int(config["dim"]), int(config["width"]), \
        int(config["seed"])
    spec = NetworkSpec(width, dim)
    init_seed = 10_000 + seed
    out: dict[str, Any] = {"rho": width / dim}
    if kind == "mixture":
        data = gaussian_mixture(dim, _gen(seed), float(config.get("eps", 0.5)))
        out["bayes_error"] = data.bayes_error(50_000, _gen(seed + 1))
    else:
        rank = int(config.get("rank", 5)) if kind == "rank" else None
        data = gaussian_quadratic(dim, _gen(seed), rank=rank)
        W0 = init_network(spec, _gen(init_seed))["W"]
        opt = regime_optima(W0, data.B)
        out.update({f"{k}_exact": opt[k] / opt["null"] for k in ("rf", "nt", "nn")})
        out["null_risk"] = opt["null"]
    if seed < int(config.get("train_seeds", 1)):
        for key, regime in REGIME_KEYS.items():
            if key == "nt" and width / dim > float(config.get("nt_max_ratio", math.inf)):
                continue
            steps = int(config.get("steps", 1000))
            if key == "nt" and config.get("nt_steps") is not None:
                steps = int(config["nt_steps"])
            extra = {k: float(config[k]) for k in ("momentum", "safety") if config.get(k) is not None}
            cfg = TrainConfig(regime=regime, steps=steps,
                              batch_size=int(config.get("batch_size", 100)),
                              optimizer=config.get("optimizer", "sgd"),
                              lr=None if config.get("lr") is None else float(config["lr"]), **extra,
                              device=str(config.get("device", "cpu")),
                              test_samples=int(config.get("test_samples", 20_000)))
            res = train_network(data, spec, cfg, random_state=init_seed)
            if kind == "mixture":
                out[f"{key}_error"] = res.test_error
            else:
                out[f"{key}_trained"] = res.test_risk / res.null_risk
            out[f"{key}_seconds"] = res.seconds
            out[f"{key}_laziness_W"] = res.laziness["W"]
    return out


def _num(df: pd.DataFrame, cols) -> pd.DataFrame:
    df = df.copy()
    for c in cols:
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df else float("nan")
    return df


_COLORS = {"rf": "tab:red", "nt": "tab:blue", "nn": "tab:green"}
_LABELS = {"rf": "RF (random features)", "nt": "NT (neural tangent)", "nn": "NN (fully trained)"}


def _risk_panel(ax, sub: pd.DataFrame, title: str) -> None:
    for key in ("rf", "nt", "nn"):
        g = sub.groupby("rho")[f"{key}_exact"]
        med = g.median()
        ax.plot(med.index, med.values, "-", color=_COLORS[key], label=f"{_LABELS[key]}: exact optimum")
        ax.fill_between(med.index, g.min().values, g.max().values, color=_COLORS[key], alpha=0.12)
        tr = sub.dropna(subset=[f"{key}_trained"]).groupby("rho")[f"{key}_trained"]
        if len(tr):
            m, lo, hi = tr.median(), tr.min(), tr.max()
            ax.errorbar(m.index, m.values, yerr=[m.values - lo.values, hi.values - m.values],
                        fmt="o", ms=5, mfc="none", color=_COLORS[key], capsize=2,
                        label=f"{_LABELS[key]}: trained online")
    ax.axvline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("ρ = N / d")
    ax.set_ylabel("risk / null risk")
    ax.set_title(title)
    ax.grid(alpha=0.3)


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Risk / null risk against ``ρ = N/d`` (authors' and rank-``k`` targets; lines = exact
    optima, median over seeds with min–max band; points = trained, median with min–max bars) and
    the mixture's test error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from overtensor.experiments.plots import save

    cols = [f"{k}_{s}" for k in ("rf", "nt", "nn") for s in ("exact", "trained", "error")]
    df = _num(df, [*cols, "rho", "bayes_error"])
    kinds = [k for k in ("authors", "rank", "mixture") if (df["target"] == k).any()]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.6 * len(kinds), 4.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        sub = df[df["target"] == kind]
        dim = int(sub["dim"].iloc[0])
        if kind == "authors":
            _risk_panel(ax, sub, f"authors' target B = diag(γ)/√d, d = {dim}")
        elif kind == "rank":
            rank = int(pd.to_numeric(sub["rank"]).iloc[0]) if "rank" in sub else 5
            _risk_panel(ax, sub, f"rank-{rank} target, d = {dim}")
        else:
            for key in ("rf", "nt", "nn"):
                g = sub.dropna(subset=[f"{key}_error"]).groupby("rho")[f"{key}_error"]
                if len(g):
                    ax.plot(g.median().index, g.median().values, "o-", color=_COLORS[key],
                            label=_LABELS[key])
            ax.axhline(float(sub["bayes_error"].median()), color="black", ls=":", label="Bayes")
            ax.axvline(1.0, color="gray", lw=0.8, ls="--")
            ax.set_xscale("log")
            ax.set_xlabel("ρ = N / d")
            ax.set_ylabel("test classification error")
            ax.set_title(f"Gaussian mixture (covariances I ± εS), d = {dim}")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=3, fontsize=8,
               frameon=False)
    fig.suptitle("Two-layer networks with σ(t) = t²: random features, neural tangent, fully trained",
                 fontsize=11)
    return save(fig, Path(outdir) / "lazy_vs_full_networks")


def _exact(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    cols = ["rf_exact", "nt_exact", "nn_exact", "rf_trained", "nt_trained", "nn_trained", "rho"]
    df = _num(df, cols)
    return df[(df["target"] == kind) & df["rf_exact"].notna()]


def claims(df: pd.DataFrame) -> list[Claim]:
    """The paper's claims, decided by the exact optima and the trained points of ``df``."""
    out: list[Claim] = []
    a = _exact(df, "authors")
    fig = "lazy_vs_full_networks"
    if not a.empty:
        below = a[a["rho"] < 1]
        ok = bool(((below["rf_exact"] > below["nt_exact"]) & (below["nt_exact"] > below["nn_exact"])).all())
        out.append(Claim(PAPER, URL, "For N < d the optimal risks order RF > NT > NN.",
                         "supported" if ok and len(below) else "inconclusive" if below.empty
                         else "not supported",
                         f"exact optima at {len(below)} (width, seed) points with N < d; "
                         f"min NT−NN gap {float((below['nt_exact'] - below['nn_exact']).min()):.3g}·R0, "
                         f"min RF−NT gap {float((below['rf_exact'] - below['nt_exact']).min()):.3g}·R0"
                         if len(below) else "no width below d", fig))
        above = a[a["rho"] >= 1]
        if len(above):
            mx = float(above[["nt_exact", "nn_exact"]].max().max())
            rf_min = float(above["rf_exact"].min())
            out.append(Claim(PAPER, URL, "NT and NN reach zero risk once N ≥ d, RF does not.",
                             "supported" if mx < 1e-10 and rf_min > 0.1 else "not supported",
                             f"max exact NT/NN risk over {len(above)} points with N ≥ d: {mx:.2e}·R0 "
                             f"(< 1e-10); min RF: {rf_min:.3f}·R0", fig))
        gaps = []
        for key in ("nn", "nt"):
            t = a.dropna(subset=[f"{key}_trained"])
            gaps += [(abs(tr - ex), key.upper(), int(w)) for tr, ex, w in
                     zip(t[f"{key}_trained"], t[f"{key}_exact"], t["width"], strict=True)]
        if gaps:
            worst, wkey, wwidth = max(gaps)
            out.append(Claim(PAPER, URL, "Online training (the preset's optimizer) in the NN and NT "
                             "regimes reaches their exact optima.",
                             "supported" if worst < 0.05 else "not supported",
                             f"max |trained − exact| over {len(gaps)} NN/NT fits: {worst:.3g}·R0 "
                             f"({wkey} at N = {wwidth}; threshold 0.05·R0)", fig))
    r = _exact(df, "rank")
    if not r.empty:
        k = int(pd.to_numeric(r["rank"]).iloc[0]) if "rank" in r else 5
        # Between k and d/2 the tangent space misses at least (1 − N/d)² ≥ 1/4 of B
        # (docs/theory/networks.md §1).
        mid = r[(r["width"] >= k) & (r["rho"] <= 0.5)]
        if len(mid):
            nn_tr = mid["nn_trained"].dropna()
            nt_min = float(mid["nt_exact"].min())
            nn_max = float(mid["nn_exact"].max())
            trained = f"; trained NN: max {float(nn_tr.max()):.2e}·R0 over {len(nn_tr)} fits" \
                if len(nn_tr) else ""
            ok = nn_max < 1e-10 and nt_min > 0.25 and (nn_tr.empty or float(nn_tr.max()) < 1e-2)
            out.append(Claim(
                PAPER, URL, f"Rank-{k} target, k ≤ N ≤ d/2: NN fits it (exactly at the optimum, to "
                "< 1e-2·R0 when trained) while NT stays above R0/4 — an unbounded NT/NN ratio.",
                "supported" if ok else "not supported",
                f"exact NN ≤ {nn_max:.1e}·R0 and NT ≥ {nt_min:.3f}·R0 at {len(mid)} points{trained}", fig))
    m = _num(df, ["rf_error", "nt_error", "nn_error", "bayes_error", "rho"])
    m = m[(m["target"] == "mixture") & m["nn_error"].notna()]
    if len(m):
        top = m[m["rho"] == m["rho"].max()]
        rf, nt, nn = (float(top[f"{k}_error"].median()) for k in ("rf", "nt", "nn"))
        bayes = float(top["bayes_error"].median())
        ok = nn < rf and nt < rf
        out.append(Claim(
            PAPER, URL, "Gaussian mixture: NN and NT classify better than RF at the same width N ≥ d.",
            "supported" if ok and top["rho"].iloc[0] >= 1 else "inconclusive" if ok else "not supported",
            f"test error at ρ = {float(top['rho'].iloc[0]):.2g} (median over {len(top)} seeds): "
            f"RF {rf:.3f}, NT {nt:.3f}, NN {nn:.3f}, Bayes {bayes:.3f}", fig))
    return out


def summary(df: pd.DataFrame) -> str:
    """Exact and trained risks / null risk per target and width (median over seeds)."""
    cols = ["rf_exact", "nt_exact", "nn_exact", "rf_trained", "nt_trained", "nn_trained",
            "rf_error", "nt_error", "nn_error", "bayes_error"]
    df = _num(df, cols)
    lines = ["lazy-vs-full-networks: risk / null risk (exact optimum, trained online), median over seeds; "
             "mixture: test classification error"]
    for kind, sub in df.groupby("target"):
        keep = [c for c in cols if sub[c].notna().any()]
        table = sub.groupby("width")[keep].median().reset_index()
        lines.append(f"[{kind}]")
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    lines += [f"{c.verdict.upper()}: {c.statement} ({c.reason})" for c in claims(df)]
    return "\n".join(lines)


def _full_widths(dim: int) -> list[int]:
    import numpy as np

    return sorted({math.floor(30 * 1.5**t) for t in np.linspace(0, 12.5, 25)} | {dim})


PRESETS = {
    # For the docs check (tests/test_docs.py): seconds, one seed; checks the pipeline, not the claims.
    "tiny": {
        "name": "lazy-vs-full-networks",
        "run": "lazy_vs_full_networks",
        "description": "tiny check: RF/NT/NN risk, d=10, widths {4, 10}, 100 Adam steps, one seed",
        "fixed": {"dim": 10, "rank": 2, "train_seeds": 1, "steps": 100, "batch_size": 50,
                  "optimizer": "adam", "lr": 0.05},
        "grid": {"target": ["authors", "rank", "mixture"], "width": [4, 10]},
        "seeds": 1,
    },
    "small": {
        "name": "lazy-vs-full-networks",
        "run": "lazy_vs_full_networks",
        "description": "RF/NT/NN risk vs N/d, d=40: exact optima (3 seeds) and online SGD at its "
                       "curvature steps (seed 0; NT 5000 steps, RF/NN 1500)",
        # SGD at the default curvature steps (overtensor.networks.train.curvature_steps; heavy ball in the
        # lazy regime). NT gets more steps: near N = d its least-squares problem is the worst
        # conditioned (the isotropic part of B converges like 1/sqrt(steps)), see docs/networks.md.
        "fixed": {"dim": 40, "rank": 5, "train_seeds": 1, "steps": 1500, "nt_steps": 5000,
                  "batch_size": 100, "optimizer": "sgd"},
        "grid": {"target": ["authors", "rank", "mixture"], "width": [4, 10, 20, 30, 40, 60]},
        "seeds": 3,
    },
    "full": {
        "name": "lazy-vs-full-networks",
        "run": "lazy_vs_full_networks",
        "description": "RF/NT/NN risk vs N/d at d=450, authors' widths N = floor(30*1.5^t); "
                       "SGD 10^4 steps, NT trained up to N = d",
        "fixed": {"dim": 450, "rank": 5, "train_seeds": 2, "steps": 10_000, "batch_size": 100,
                  "nt_max_ratio": 1.0},
        "grid": {"target": ["authors", "rank", "mixture"], "width": _full_widths(450)},
        "seeds": 3,
    },
}

#: Captions of the figures (file stem -> what it shows and what to read from it).
CAPTIONS = {
    "lazy_vs_full_networks": (
        "One panel per target. Regression targets: population risk divided by the null risk against "
        "ρ = N/d (log axis; dashed line at N = d); lines = the exact optimum of each function class "
        "(RF: random features, NT: neural tangent, NN: fully trained), median over seeds with a "
        "min–max band; open points = networks trained online, median with min–max bars. Mixture: test "
        "classification error of each class's optimum, median over seeds, Bayes error dotted. Read: "
        "the order of the three curves below N = d and which of them reach 0 from N = d on."),
}

EXPERIMENT = register_experiment(Experiment(
    name="lazy-vs-full-networks",
    description="two-layer networks: random features vs neural tangent vs fully trained "
                "(Ghorbani et al. 2019)",
    presets=PRESETS,
    figures=figures,
    summary=summary,
    claims=claims,
    captions=CAPTIONS,
))
