"""Built-in experiment ``adaptive-networks``: SGD (+momentum) vs adaptive methods on real data.

Question (Shah, Kyrillidis, Sanghavi 2018, their network experiments; Shah, Basu, Kyrillidis,
Sanghavi 2020): on practical networks, do adaptive methods generalize worse than SGD, as the
over-parameterized linear picture suggests, and do they spare the tuning of the step size? The
paper's observation: "adaptive methods often perform at least as well as SGD, without necessarily
reducing the amount of tuning required".

Data: scikit-learn's bundled ``load_digits`` (1797 8×8 images, 10 classes; nothing downloaded),
standardized with the training split's statistics, a stratified 70/30 split drawn from the seed.
Models (plain ``torch.nn``, initialized from an explicit generator): ``two-layer`` (64 → 256 ReLU →
10) and ``mlp`` (64 → 128 → 128 ReLU → 10). Training: cross-entropy, mini-batches of 64 in an order
drawn from the seed, a fixed number of epochs; every optimizer comes from the registry
(:func:`overtensor.optim.registry.make_optimizer`), over a learning-rate grid per optimizer,
stepped by :func:`overtensor.training.loop.train_loop`. A run whose batch loss becomes non-finite
stops there and is reported ``diverged`` (the divergence rule with an infinite multiple: a large
step's loss spikes are measured, not cut short).

Metrics: test and train accuracy, final training loss, the weight norm ``‖θ‖`` and the distance
from the initialization ``‖θ − θ_0‖`` (the network analogue of the out-of-span part, which
gradient steps do not control).
"""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import ValidationInfo, field_validator

from overtensor.experiments.params import NonNegativeInt, PositiveFloat, PositiveInt, RunParams
from overtensor.experiments.registry import (
    Claim,
    Experiment,
    mean_sd,
    register_experiment,
    register_run,
)
from overtensor.optim.registry import DESIGN_OPTIMIZERS, OPTIMIZERS

PAPER = ("Shah, Kyrillidis, Sanghavi, Minimum norm solutions do not always generalize well for "
         "over-parameterized problems (2018)")
URL = "https://arxiv.org/abs/1811.07055"
SGD_FAMILY = ("sgd", "momentum")
ADAPTIVE = ("adagrad", "rmsprop", "adam")

#: Learning-rate grids (log-spaced, around each method's usual range).
LR_GRID = {
    "sgd": [0.01, 0.03, 0.1, 0.3],
    "momentum": [0.003, 0.01, 0.03, 0.1],
    "adagrad": [0.003, 0.01, 0.03, 0.1],
    "rmsprop": [1e-4, 3e-4, 1e-3, 3e-3],
    "adam": [1e-4, 3e-4, 1e-3, 3e-3],
}


#: Optimizers a run can name: the registered ones that need nothing but the parameters
#: (``span-preserving`` needs a design matrix, ``diagonal`` a fixed ``D``).
NETWORK_OPTIMIZERS = tuple(n for n in OPTIMIZERS if n not in DESIGN_OPTIMIZERS)
MODELS = ("two-layer", "mlp")


class AdaptiveNetworksParams(RunParams):
    """Config of the ``adaptive_networks`` run: ``optimizer`` must have a learning-rate grid (in
    ``lr_grid`` when given, else :data:`LR_GRID`) and ``lr_index`` must index it."""

    model: Literal[MODELS]  # type: ignore[valid-type]
    lr_grid: dict[Literal[NETWORK_OPTIMIZERS], list[PositiveFloat]] | None = None  # type: ignore[valid-type]
    optimizer: Literal[NETWORK_OPTIMIZERS]  # type: ignore[valid-type]
    lr_index: NonNegativeInt
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 64

    KEYED_BY: ClassVar[dict[str, str]] = {"lr_grid": "optimizer"}

    @field_validator("optimizer")
    @classmethod
    def _has_a_grid(cls, v: str, info: ValidationInfo) -> str:
        grid = info.data.get("lr_grid") or LR_GRID
        if v not in grid:
            raise ValueError(f"has no learning-rate grid (grids: {sorted(grid)}; add one in lr_grid)")
        return v

    @field_validator("lr_index")
    @classmethod
    def _in_the_grid(cls, v: int, info: ValidationInfo) -> int:
        grid = (info.data.get("lr_grid") or LR_GRID).get(info.data.get("optimizer"))
        if grid is not None and v >= len(grid):
            raise ValueError(f"must index the learning-rate grid of {info.data['optimizer']!r} "
                             f"({len(grid)} values: 0..{len(grid) - 1})")
        return v


@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def digits_split(seed: int, test_size: float = 0.3):
    """Standardized ``load_digits`` split ``(X_train, y_train, X_test, y_test)`` as float32/long tensors."""
    import torch
    from sklearn.model_selection import train_test_split

    X, y = _digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1.0  # constant border pixels
    f = lambda a: torch.as_tensor((a - mu) / sd, dtype=torch.float32)  # noqa: E731
    return f(Xtr), torch.as_tensor(ytr), f(Xte), torch.as_tensor(yte)


def make_network(model: str, d_in: int, d_out: int, generator):
    """``two-layer`` or ``mlp`` as a ``torch.nn.Sequential`` in float32, with PyTorch's default
    ``U(−1/√fan_in, 1/√fan_in)`` initialization drawn from ``generator`` (not the global RNG)."""
    import torch

    widths = {"two-layer": [256], "mlp": [128, 128]}
    if model not in widths:
        raise ValueError(f"model must be one of {sorted(widths)}, got {model!r}")
    dims = [d_in, *widths[model], d_out]
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(itertools.pairwise(dims)):
        lin = torch.nn.Linear(a, b)
        bound = 1.0 / math.sqrt(a)
        with torch.no_grad():
            lin.weight.copy_((2 * torch.rand(b, a, generator=generator) - 1) * bound)
            lin.bias.copy_((2 * torch.rand(b, generator=generator) - 1) * bound)
        layers.append(lin)
        if k < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _flat(net):
    import torch

    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


@register_run("adaptive_networks", params=AdaptiveNetworksParams, metrics=(
    "lr", "diverged", "test_accuracy", "train_accuracy", "train_loss", "weight_norm", "init_norm",
    "distance_from_init"))
def run_adaptive_networks(config: dict[str, Any]) -> dict[str, Any]:
    """One network, optimizer and learning rate on digits. Config keys: ``model, optimizer, lr_index``
    (into ``lr_grid[optimizer]``, default :data:`LR_GRID`), ``epochs``, ``batch_size``, ``seed``."""
    import torch

    from overtensor.optim.registry import make_optimizer
    from overtensor.training.loop import (
        Divergence,
        DivergenceError,
        Evaluation,
        optimizer_step,
        train_loop,
    )
    from overtensor.training.schedule import StepSchedule

    seed = int(config["seed"])
    name = config["optimizer"]
    grid = (config.get("lr_grid") or LR_GRID)[name]
    lr = float(grid[int(config["lr_index"])])
    gen = torch.Generator().manual_seed(seed)
    Xtr, ytr, Xte, yte = digits_split(seed)
    net = make_network(config["model"], Xtr.shape[1], 10, gen)
    theta0 = _flat(net)
    opt = make_optimizer(name, net.parameters(), lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    bs, epochs = int(config.get("batch_size", 64)), int(config.get("epochs", 20))
    per_epoch = -(-len(ytr) // bs)  # mini-batches per epoch (the last one may be short)
    order = torch.empty(0, dtype=torch.long)

    def step(_: int) -> torch.Tensor:  # one mini-batch (train_loop is called with per_step)
        nonlocal order
        k = schedule.step % per_epoch
        if k == 0:  # a new epoch: a new order of the training set
            order = torch.randperm(len(ytr), generator=gen)
        idx = order[k * bs:(k + 1) * bs]
        loss = loss_fn(net(Xtr[idx]), ytr[idx])
        if torch.isfinite(loss):  # else no step: the divergence rule stops the run on this loss
            optimizer_step(opt, loss)
        return loss.detach()

    schedule = StepSchedule(epochs * per_epoch, every=per_epoch)
    # Only a non-finite loss stops a run (factor=inf): the question is whether runs with a large
    # step recover from loss spikes, so a spike is measured, not cut short.
    divergence = Divergence(lr, start=None, factor=math.inf)
    try:
        train_loop(schedule, step, lambda loss: Evaluation({"step": schedule.step, "loss": float(loss)}),
                   per_step=True, divergence=divergence)
        diverged = False
    except DivergenceError:
        diverged = True
    with torch.no_grad():
        out_tr, out_te = net(Xtr), net(Xte)
        theta = _flat(net)
        finite = bool(torch.isfinite(theta).all())
        return {
            "lr": lr, "diverged": diverged or not finite,
            "test_accuracy": float((out_te.argmax(1) == yte).double().mean()) if finite else 0.0,
            "train_accuracy": float((out_tr.argmax(1) == ytr).double().mean()) if finite else 0.0,
            "train_loss": float(loss_fn(out_tr, ytr)) if finite else float("nan"),
            "weight_norm": float(theta.norm()) if finite else float("nan"),
            "init_norm": float(theta0.norm()),
            "distance_from_init": float((theta - theta0).norm()) if finite else float("nan"),
        }


def _num(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("lr", "test_accuracy", "train_accuracy", "weight_norm", "distance_from_init"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def best_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and optimizer: the learning rate with the best mean test accuracy, its mean ± sd over
    seeds, the weight norm there, and the spread of the mean accuracy over the grid."""
    df = _num(df)
    rows = []
    for (model, opt), g in df.groupby(["model", "optimizer"], sort=False):
        by_lr = g.groupby("lr")["test_accuracy"]
        means = by_lr.mean()
        lr = means.idxmax()
        at = g[g["lr"] == lr]
        rows.append({
            "model": model, "optimizer": opt, "best lr": lr, "seeds": len(at),
            "test acc": at["test_accuracy"].mean(), "sd": at["test_accuracy"].std(),
            "train acc": at["train_accuracy"].mean(), "‖θ‖": at["weight_norm"].mean(),
            "‖θ−θ0‖": at["distance_from_init"].mean(),
            "acc range over grid": means.max() - means.min(),
            "grid": "/".join(f"{v:g}" for v in sorted(means.index)),
        })
    return pd.DataFrame(rows)


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Test accuracy (mean ± sd over seeds) and final weight norm against the learning rate, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from overtensor.experiments.plots import save

    df = _num(df)
    models = sorted(df["model"].unique())
    colors = {"sgd": "black", "momentum": "tab:purple", "adagrad": "tab:blue", "rmsprop": "tab:orange",
              "adam": "tab:green"}
    fig, axes = plt.subplots(2, len(models), figsize=(6.5 * len(models), 8), squeeze=False)
    for j, model in enumerate(models):
        sub = df[df["model"] == model]
        for opt, g in sub.groupby("optimizer", sort=False):
            acc = g.groupby("lr")["test_accuracy"]
            m, s = acc.mean(), acc.std().fillna(0)
            axes[0][j].errorbar(m.index, m.values, yerr=s.values, marker="o", ms=4, capsize=2,
                                color=colors.get(opt), label=f"{opt} ({g['seed'].nunique()} seeds)")
            wn = g.groupby("lr")["weight_norm"].mean()
            axes[1][j].plot(wn.index, wn.values, marker="o", ms=4, color=colors.get(opt), label=opt)
        init = pd.to_numeric(sub["init_norm"]).mean()
        axes[1][j].axhline(init, color="gray", ls=":", lw=1, label="‖θ_0‖")
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.grid(alpha=0.3)
        axes[0][j].set_ylabel("test accuracy, mean ± sd")
        axes[0][j].set_title(f"digits, {model}")
        axes[1][j].set_ylabel("final weight norm ‖θ‖")
        axes[1][j].set_yscale("log")
        axes[0][j].legend(fontsize=7)
        axes[1][j].legend(fontsize=7)
    fig.suptitle("adaptive-networks: test accuracy and weight norm vs learning rate", fontsize=11)
    return save(fig, Path(outdir) / "adaptive_networks")


def summary(df: pd.DataFrame) -> str:
    return ("adaptive-networks (digits): best learning rate per optimizer (mean over seeds)\n"
            + best_table(df).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def claims(df: pd.DataFrame) -> list[Claim]:
    """Adaptive methods at least as good as SGD(+momentum) when each is tuned; and the tuning they need."""
    tab = best_table(df)
    out: list[Claim] = []
    for model, t in tab.groupby("model"):
        sgd = t[t["optimizer"].isin(SGD_FAMILY)]
        ada = t[t["optimizer"].isin(ADAPTIVE)]
        if sgd.empty or ada.empty:
            continue
        best_sgd = sgd.loc[sgd["test acc"].idxmax()]
        seeds = int(t["seeds"].min())
        parts, verdicts = [], []
        for _, r in ada.iterrows():
            se = math.sqrt((r["sd"] ** 2 + best_sgd["sd"] ** 2) / max(seeds, 1))
            diff = r["test acc"] - best_sgd["test acc"]
            verdicts.append("ok" if diff >= -2 * se else "worse")
            parts.append(f"{r['optimizer']} {mean_sd(r['test acc'], r['sd'], '.4f')} (lr {r['best lr']:g})")
        ok = all(v == "ok" for v in verdicts)
        out.append(Claim(
            PAPER, URL,
            f"digits, {model}: tuned on the same grid size, the adaptive methods reach a test accuracy at "
            "least as high as the best of SGD and SGD with momentum (within 2 standard errors).",
            "supported" if ok else "not supported",
            f"best mean test accuracy over {seeds} seeds: {best_sgd['optimizer']} "
            f"{mean_sd(best_sgd['test acc'], best_sgd['sd'], '.4f')} (lr {best_sgd['best lr']:g}) vs "
            + "; ".join(parts),
            "adaptive_networks"))
        rng_sgd = sgd["acc range over grid"].mean()
        rng_ada = ada["acc range over grid"].mean()
        out.append(Claim(
            PAPER, URL,
            f"digits, {model}: adaptive methods do not remove the need to tune the learning rate (their test "
            "accuracy varies over its learning-rate grid at least half as much as SGD's).",
            "supported" if rng_ada >= 0.5 * rng_sgd else "not supported",
            f"range of the mean test accuracy over each optimizer's grid ({seeds} seeds): adaptive "
            f"{rng_ada:.3f} on average vs SGD family {rng_sgd:.3f} (grids run: "
            + ", ".join(f"{r['optimizer']} {r['grid']}" for _, r in t.iterrows())
            + "; the ranges depend on the grids chosen)",
            "adaptive_networks"))
    return out


_GRID = {"model": ["two-layer", "mlp"], "optimizer": [*SGD_FAMILY, *ADAPTIVE]}

PRESETS = {
    # For the docs check (tests/test_docs.py): seconds, one seed; checks the pipeline, not the claims.
    "tiny": {
        "name": "adaptive-networks", "run": "adaptive_networks",
        "description": "tiny check: digits, two-layer network, SGD vs Adam, one learning rate, "
                       "1 epoch, one seed",
        "fixed": {"epochs": 1, "batch_size": 64},
        "grid": {"model": ["two-layer"], "optimizer": ["sgd", "adam"], "lr_index": [2]},
        "seeds": 1,
    },
    "small": {
        "name": "adaptive-networks", "run": "adaptive_networks",
        "description": "digits: two-layer network and MLP, SGD/momentum/AdaGrad/RMSProp/Adam, 3 learning "
                       "rates each, 15 epochs, 5 seeds",
        "fixed": {"epochs": 15, "batch_size": 64},
        "grid": {**_GRID, "lr_index": [1, 2, 3]},
        "seeds": 5,
    },
    "full": {
        "name": "adaptive-networks", "run": "adaptive_networks",
        "description": "digits: two-layer network and MLP, 5 optimizers, 4 learning rates, 60 epochs, "
                       "10 seeds",
        "fixed": {"epochs": 60, "batch_size": 64},
        "grid": {**_GRID, "lr_index": [0, 1, 2, 3]},
        "seeds": 10,
    },
}

#: Captions of the figures (file stem -> what it shows and what to read from it).
CAPTIONS = {
    "adaptive_networks": (
        "Top row: test accuracy on load_digits against the learning rate (log axis), mean ± sd over "
        "the seeds named in the legend, one colour per optimizer, one column per model. Bottom row: "
        "the final weight norm ‖θ‖ (mean over seeds) with ‖θ_0‖ dotted. Read: whether the adaptive "
        "optimizers' best accuracy (the top of each curve) is below SGD's, and whether a lower "
        "accuracy goes with a larger weight norm."),
}

EXPERIMENT = register_experiment(Experiment(
    name="adaptive-networks",
    description="digits: do adaptive optimizers generalize worse than SGD(+momentum), and need less tuning?",
    presets=PRESETS, figures=figures, summary=summary, claims=claims,
    captions=CAPTIONS,
))
