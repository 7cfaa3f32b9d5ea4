"""Built-in experiment ``lazy-vs-full-networks``: RF, NT and NN risks of two-layer networks.

Ghorbani, Mei, Misiakiewicz, Montanari, "Limitations of Lazy Training of Two-layers Neural
Networks" (NeurIPS 2019); formulas in ``docs/theory/networks.md`` §1. Quadratic activation, mean-field scaling
``f(x) = c + (1/N) Σ a_i (w_i·x)²``, ``W_0`` with ``N(0, 1/d)`` entries.

One run = one ``(target, width, seed)``:

* ``target="authors"``: ``y = xᵀBx − tr B``, ``B = diag(γ)/√d``, ``γ ~ Exp(1)``; ``target="rank"``: a
  rank-``k`` ``B`` (:func:`overtensor.networks.data.low_rank_matrix`); ``target="flat"``: a
  trace-free ``B`` with a flat spectrum (:func:`overtensor.networks.data.flat_matrix`). Reported: the
  exact optima ``rf_exact``, ``nt_exact``, ``nn_exact`` (risk / null risk,
  :mod:`overtensor.networks.quadratic_risk`) at the run's ``W_0``, NT's random-subspace prediction
  ``nt_predicted`` (:func:`overtensor.networks.quadratic_risk.nt_asymptotic`, computed from ``B`` and
  ``N/d`` alone), and for seeds below ``train_seeds`` the exact population risk of networks
  trained by online SGD in each regime (``rf_trained``, ``nt_trained``, ``nn_trained``, same ``W_0``).
* ``target="mixture"`` / ``"mixture-lowrank"``: two centred Gaussians with covariances
  ``I ± eps·diag(s)``, ``s`` of full rank / of rank ``k``
  (:class:`overtensor.networks.data.GaussianMixtureClassification`);
  reported: the same exact optima for the matrix of the Bayes classifier's quadratic score (how
  well each function class can express it), the test classification error of each trained regime
  (``*_error``) and the Bayes error.

Expected picture: for ``N < d`` RF is worse than NT (its function class is inside NT's); NT and
NN reach 0 at ``N ≥ d`` while RF stays high (it needs ``N ~ d²``). The order of NT and NN below
``N = d`` depends on the target, not on training: NN's risk is the energy of ``B`` outside its
``N`` largest eigenvalues, NT's about ``(1 − N/d)²`` of ``B``'s — NN wins for a concentrated
spectrum (authors', rank-``k``: there NN is 0 from ``N = k`` while NT stays ``≈ (1 − N/d)²``, an
unbounded ratio), NT wins for a flat one (``flat``, the full-rank mixture).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator, model_validator

from overtensor.experiments.params import (
    ConflictError,
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

    target: Literal["authors", "rank", "flat", "mixture", "mixture-lowrank"]
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

    @model_validator(mode="after")
    def _rank(self) -> LazyVsFullNetworksParams:
        # The low-rank targets draw rank <= dim directions: checked before any run.
        if self.target in ("rank", "mixture-lowrank") and self.rank > self.dim:
            raise ConflictError("rank", f"target={self.target!r} needs rank <= dim={self.dim}, "
                                        f"got rank={self.rank}")
        return self

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


@register_run("lazy_vs_full_networks", params=LazyVsFullNetworksParams, metrics=(
    "rho", "bayes_error", "nt_predicted", "null_risk",
    *(f"{key}_{m}" for key in ("rf", "nt", "nn")
      for m in ("exact", "error", "trained", "seconds", "laziness_W"))))
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
    from overtensor.networks.data import (
        GaussianQuadratic,
        flat_matrix,
        gaussian_mixture,
        gaussian_quadratic,
    )
    from overtensor.networks.model import NetworkSpec, init_network
    from overtensor.networks.quadratic_risk import nt_asymptotic, regime_optima
    from overtensor.networks.train import TrainConfig, train_network

    kind, dim, width, seed = str(config["target"]), int(config["dim"]), int(config["width"]), \
        int(config["seed"])
    spec = NetworkSpec(width, dim)
    init_seed = 10_000 + seed
    out: dict[str, Any] = {"rho": width / dim}
    mixture = kind.startswith("mixture")
    if mixture:
        rank = int(config.get("rank", 5)) if kind == "mixture-lowrank" else None
        data = gaussian_mixture(dim, _gen(seed), float(config.get("eps", 0.5)), rank=rank)
        out["bayes_error"] = data.bayes_error(50_000, _gen(seed + 1))
        B = data.bayes_matrix()  # what the classes' quadratic forms have to express
    else:
        if kind == "flat":
            data = GaussianQuadratic(flat_matrix(dim, _gen(seed)))
        else:
            data = gaussian_quadratic(dim, _gen(seed), rank=int(config.get("rank", 5)) if kind == "rank"
                                      else None)
        B = data.B
    W0 = init_network(spec, _gen(init_seed))["W"]
    opt = regime_optima(W0, B)
    out.update({f"{k}_exact": opt[k] / opt["null"] for k in ("rf", "nt", "nn")})
    # NT's risk predicted from B and N/d alone (a random W_0's span as a random subspace): the
    # condition under which NT beats NN is decided from it, independently of the W_0 drawn.
    out["nt_predicted"] = nt_asymptotic(B, width / dim) / opt["null"]
    if not mixture:
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
            if mixture:
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


#: Order of the targets in tables and figures.
TARGETS = ("authors", "rank", "flat", "mixture", "mixture-lowrank")
#: Below this gap (in units of the null risk) NT and NN count as tied: the order is not decided.
TIE = 0.02
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
    """Risk / null risk against ``ρ = N/d``, one panel per target (lines = exact optima, median over
    seeds with min–max band; points = trained, median with min–max bars; for the mixtures the
    target is the Bayes classifier's quadratic form), and the mixtures' test errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from overtensor.experiments.plots import save

    cols = [f"{k}_{s}" for k in ("rf", "nt", "nn") for s in ("exact", "trained", "error")]
    df = _num(df, [*cols, "rho", "bayes_error"])
    kinds = [k for k in TARGETS if (df["target"] == k).any()]
    titles = {"authors": "authors' B = diag(γ)/√d", "rank": "rank-{rank} B",
              "flat": "flat-spectrum, trace-free B", "mixture": "mixture, full-rank Δ (Bayes form)",
              "mixture-lowrank": "mixture, rank-{rank} Δ (Bayes form)"}
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.8 * len(kinds), 4.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        sub = df[df["target"] == kind]
        rank = int(pd.to_numeric(sub["rank"]).iloc[0]) if "rank" in sub else 5
        _risk_panel(ax, sub, f"{titles[kind].format(rank=rank)}, d = {int(sub['dim'].iloc[0])}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=3, fontsize=8,
               frameon=False)
    fig.suptitle("Two-layer networks with σ(t) = t²: random features, neural tangent, fully trained",
                 fontsize=11)
    out = save(fig, Path(outdir) / "lazy_vs_full_networks")
    mix = [k for k in ("mixture", "mixture-lowrank") if (df["target"] == k).any()
           and df.loc[df["target"] == k, "nn_error"].notna().any()]
    if mix:
        fig, axes = plt.subplots(1, len(mix), figsize=(5.6 * len(mix), 4.2), squeeze=False)
        for ax, kind in zip(axes[0], mix, strict=True):
            sub = df[df["target"] == kind]
            for key in ("rf", "nt", "nn"):
                g = sub.dropna(subset=[f"{key}_error"]).groupby("rho")[f"{key}_error"]
                if len(g):
                    ax.plot(g.median().index, g.median().values, "o-", color=_COLORS[key], label=_LABELS[key])
            ax.axhline(float(sub["bayes_error"].median()), color="black", ls=":", label="Bayes")
            ax.axvline(1.0, color="gray", lw=0.8, ls="--")
            ax.set_xscale("log")
            ax.set_xlabel("ρ = N / d")
            ax.set_ylabel("test classification error (trained online)")
            ax.set_title(f"{kind}, d = {int(sub['dim'].iloc[0])}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        out += save(fig, Path(outdir) / "lazy_vs_full_networks_mixture_error")
    return out


def _exact(df: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    cols = ["rf_exact", "nt_exact", "nn_exact", "nt_predicted", "rf_trained", "nt_trained", "nn_trained",
            "rho", "width", "seed"]
    df = _num(df, cols)
    keep = df["rf_exact"].notna() & (df["target"] == kind if kind is not None else True)
    return df[keep]


def _order_claims(df: pd.DataFrame, fig: str) -> list[Claim]:
    """RF against NT, and NT against NN with its condition, at every exact point with N < d."""
    below = _exact(df)
    below = below[below["rho"] < 1]
    if below.empty:
        return []
    targets = [t for t in TARGETS if (below["target"] == t).any()]
    seeds = below["seed"].nunique()
    where = f"{len(below)} points with N < d ({', '.join(targets)}; {seeds} seed(s) each)"
    rf_gap = below["rf_exact"] - below["nt_exact"]
    out = [Claim(PAPER, URL, "For N < d random features are worse than the neural tangent (RF > NT), for "
                 "every target: RF's function class lies inside NT's.",
                 "supported" if bool((rf_gap > 0).all()) else "not supported",
                 f"exact optima at {where}: min RF − NT {float(rf_gap.min()):.3g}·R0", fig)]
    # The order of NT and NN is the target's: NN's risk is B's energy outside its N largest
    # eigenvalues, NT's is predicted from B and N/d alone (nt_predicted, a random subspace).
    gap = below["nt_exact"] - below["nn_exact"]
    decided = below[gap.abs() >= TIE]
    predicted_nn = decided["nn_exact"] < decided["nt_predicted"]
    actual_nn = decided["nn_exact"] < decided["nt_exact"]
    parts = []
    for t in targets:
        sub = decided["target"] == t
        parts.append(f"{t}: NN < NT at {int((actual_nn & sub).sum())}/{int(sub.sum())}")
    ties = len(below) - len(decided)
    agree = int((predicted_nn == actual_nn).sum())
    both = bool(actual_nn.any() and (~actual_nn).any())
    statement = ("For N < d the order of NT and NN depends on the target, not on training: NN < NT "
                 "exactly when B's energy outside its N largest eigenvalues (NN's risk) is below NT's "
                 "random-subspace risk ≈ (1 − N/d)² of B's (authors' and low-rank B, low-rank mixture: "
                 "NN < NT; flat-spectrum B, full-rank mixture: NT < NN).")
    verdict = ("supported" if agree == len(decided) and len(decided) and both else
               "inconclusive" if agree == len(decided) else "not supported")
    reason = (f"exact optima at {where}; {'; '.join(parts)} (|NT − NN| ≥ {TIE}·R0; {ties} near-ties "
              f"left out); the condition predicts the order at {agree}/{len(decided)}"
              + ("" if both else "; only one order occurs in these targets"))
    out.append(Claim(PAPER, URL, statement, verdict, reason, fig))
    return out


def claims(df: pd.DataFrame) -> list[Claim]:
    """The paper's claims, decided by the exact optima and the trained points of ``df``."""
    fig = "lazy_vs_full_networks"
    out: list[Claim] = _order_claims(df, fig)
    a = _exact(df, "authors")
    if not a.empty:
        above = a[a["rho"] >= 1]
        if len(above):
            mx = float(above[["nt_exact", "nn_exact"]].max().max())
            rf_min = float(above["rf_exact"].min())
            out.append(Claim(PAPER, URL,
                             "Authors' target: NT and NN reach zero risk once N ≥ d, RF does not.",
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
            out.append(Claim(PAPER, URL, "Authors' target: online training (the preset's optimizer) in "
                             "the NN and NT regimes reaches their exact optima.",
                             "supported" if worst < 0.05 else "not supported",
                             f"max |trained − exact| over {len(gaps)} NN/NT fits (seeds "
                             f"{sorted(int(s) for s in a.dropna(subset=['nn_trained'])['seed'].unique())}): "
                             f"{worst:.3g}·R0 "
                             f"({wkey} at N = {wwidth}; threshold 0.05·R0)", fig))
    r = _exact(df, "rank")
    if not r.empty:
        k = int(pd.to_numeric(r["rank"]).iloc[0]) if "rank" in r else 5
        # Between k and d/2 a random tangent space misses about (1 − N/d)² ≥ 1/4 of B
        # (docs/theory/networks.md §1); a single W_0 fluctuates around it, so the test asks for
        # at least half of it at every point.
        mid = r[(r["width"] >= k) & (r["rho"] <= 0.5)]
        if len(mid):
            nn_tr = mid["nn_trained"].dropna()
            nt_min = float(mid["nt_exact"].min())
            share = float((mid["nt_exact"] / (1 - mid["rho"]) ** 2).min())
            nn_max = float(mid["nn_exact"].max())
            trained = f"; trained NN: max {float(nn_tr.max()):.2e}·R0 over {len(nn_tr)} fits" \
                if len(nn_tr) else ""
            ok = nn_max < 1e-10 and share > 0.5 and (nn_tr.empty or float(nn_tr.max()) < 1e-2)
            out.append(Claim(
                PAPER, URL, f"Rank-{k} target, k ≤ N ≤ d/2: NN fits it (exactly at the optimum, to "
                "< 1e-2·R0 when trained) while NT keeps more than half of (1 − N/d)²·R0 ≥ R0/4 — an "
                "unbounded NT/NN ratio.",
                "supported" if ok else "not supported",
                f"exact NN ≤ {nn_max:.1e}·R0 and NT ≥ {nt_min:.3f}·R0, at least {share:.2f}·(1 − N/d)²·R0, "
                f"at {len(mid)} points ({mid['seed'].nunique()} seed(s)){trained}", fig))
    m = _num(df, ["rf_error", "nt_error", "nn_error", "bayes_error", "rho"])
    m = m[(m["target"] == "mixture") & m["nn_error"].notna()]  # the full-rank mixture
    if len(m):
        top = m[m["rho"] == m["rho"].max()]
        rf, nt, nn = (float(top[f"{k}_error"].median()) for k in ("rf", "nt", "nn"))
        bayes = float(top["bayes_error"].median())
        ok = nn < rf and nt < rf
        out.append(Claim(
            PAPER, URL, "Gaussian mixture (full-rank covariance difference): NN and NT classify better "
            "than RF at the same width N ≥ d.",
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
    return "\n".join(lines)  # the verdicts follow, one line per claim (experiment run, report)


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
        "grid": {"target": list(TARGETS), "width": [4, 10]},
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
        "grid": {"target": list(TARGETS), "width": [4, 10, 20, 30, 40, 60]},
        "seeds": 3,
    },
    # The order of RF, NT and NN over five targets, from the exact optima alone (no training):
    # the evidence for the order claims, 10 seeds, in seconds.
    "orders": {
        "name": "lazy-vs-full-networks",
        "run": "lazy_vs_full_networks",
        "description": "exact RF/NT/NN optima only (no training), d=40, five targets, 10 seeds",
        "fixed": {"dim": 40, "rank": 5, "train_seeds": 0},
        "grid": {"target": list(TARGETS), "width": [4, 10, 20, 30, 40, 60]},
        "seeds": 10,
    },
    "full": {
        "name": "lazy-vs-full-networks",
        "run": "lazy_vs_full_networks",
        "description": "RF/NT/NN risk vs N/d at d=450, authors' widths N = floor(30*1.5^t); "
                       "SGD 10^4 steps, NT trained up to N = d",
        "fixed": {"dim": 450, "rank": 5, "train_seeds": 2, "steps": 10_000, "batch_size": 100,
                  "nt_max_ratio": 1.0},
        "grid": {"target": list(TARGETS), "width": _full_widths(450)},
        "seeds": 3,
    },
}

#: Captions of the figures (file stem -> what it shows and what to read from it).
CAPTIONS = {
    "lazy_vs_full_networks": (
        "One panel per target: population risk divided by the null risk against ρ = N/d (log axis; "
        "dashed line at N = d); lines = the exact optimum of each function class (RF: random "
        "features, NT: neural tangent, NN: fully trained), median over seeds with a min–max band; "
        "open points = networks trained online, median with min–max bars. For the two mixtures the "
        "target is the Bayes classifier's quadratic form. Read: RF above NT everywhere; NN below NT "
        "for the concentrated targets (authors', low-rank) and above it for the flat ones "
        "(flat-spectrum B, full-rank mixture); NT and NN at 0 from N = d."),
    "lazy_vs_full_networks_mixture_error": (
        "Test classification error of the networks trained online in each regime against ρ = N/d "
        "(median over the trained seeds), one panel per mixture; dotted: the Bayes error. Read: the "
        "same order of NT and NN as in the mixture panels of the risk figure, and how far each is "
        "from the Bayes error."),
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
