"""Built-in experiment ``opt-generalization``: does orthogonal over-parameterized training
generalize better than standard training on real data? (Liu et al., CVPR 2021; docs/theory/networks.md §3.)

Data: scikit-learn's bundled ``load_digits`` (1797 8×8 images, 64 features, 10 classes; nothing is
downloaded), split per seed into train/test (stratified, ``test_size``), features standardized on
the training part. Model: ``64 → H → 10`` with a ReLU, ``H`` wide (the hidden rows are the
neurons). Variants, all from the same initialization per seed (hidden rows ``N(0, 1/64)``, output
``N(0, 1/H)``, zero biases) and the same optimizer (SGD, momentum, mini-batches, cross-entropy,
a fixed number of epochs, no tuning per variant, stepped by
:func:`overtensor.training.loop.train_loop`, whose divergence rule stops a run whose batch loss is
not finite or exceeds ``1e8 ×`` the first one):

* ``standard``: every weight trained;
* ``random-features``: hidden rows frozen, biases and output trained;
* ``opt-<way>``: hidden rows ``W_0 Rᵀ`` (:class:`overtensor.networks.opt_layer.OPTLinear`) for every way of
  keeping ``R`` orthogonal (``opt-stochastic``: ``k × k`` blocks merged every ``block_steps``).

Metrics: test and train accuracy, the hidden rows' hyperspherical energy (``s = 1`` and ``s = 0``)
at the end and its relative change, ``‖RᵀR − I‖`` and the wall time per epoch. The claim compares
each OPT way with ``standard`` by the difference of mean test accuracies against two standard
errors; whatever the sign, it is reported as measured.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import Field, model_validator

from overtensor.experiments.params import ConflictError, PositiveFloat, PositiveInt, RunParams
from overtensor.experiments.registry import (
    Claim,
    Experiment,
    mean_sd,
    register_experiment,
    register_run,
)
from overtensor.regimes.orthogonal import ORTHOGONAL_METHODS

PAPER = "Liu et al., Orthogonal Over-Parameterized Training (CVPR 2021)"
URL = "https://arxiv.org/abs/2004.04690"
VARIANTS = ("standard", "random-features", *(f"opt-{m}" for m in ORTHOGONAL_METHODS))
#: Input dimension of ``load_digits`` (8×8 pixels): the order of ``R`` and the largest block.
DIGITS_DIM = 64
#: Samples and classes of scikit-learn's load_digits (the split needs every class on each side).
DIGITS_SAMPLES, DIGITS_CLASSES = 1797, 10


class OptGeneralizationParams(RunParams):
    """Config of the ``opt_generalization`` run: one variant of :data:`VARIANTS` on one seed."""

    variant: Literal[VARIANTS]  # type: ignore[valid-type]
    hidden: Annotated[int, Field(ge=2)]
    epochs: PositiveInt
    batch: PositiveInt
    lr: PositiveFloat
    momentum: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
    test_size: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.3
    block_size: Annotated[int, Field(ge=2, le=DIGITS_DIM)] = 16
    block_steps: PositiveInt = 20

    @model_validator(mode="after")
    def _split(self) -> OptGeneralizationParams:
        # A stratified split of the 1797 digits needs each side to hold all 10 classes
        # (scikit-learn's train_test_split refused it in every run, exit 3).
        n_test = math.ceil(self.test_size * DIGITS_SAMPLES)
        if min(n_test, DIGITS_SAMPLES - n_test) < DIGITS_CLASSES:
            raise ConflictError("test_size", f"leaves {n_test} test and {DIGITS_SAMPLES - n_test} "
                                             f"training digits of {DIGITS_SAMPLES}; each side needs "
                                             f"at least the {DIGITS_CLASSES} classes")
        return self


def _digits(seed: int, test_size: float):
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(Xtr)
    f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    return (f(scaler.transform(Xtr)), torch.as_tensor(ytr), f(scaler.transform(Xte)),
            torch.as_tensor(yte))


@register_run("opt_generalization", params=OptGeneralizationParams, metrics=(
    "test_accuracy", "train_accuracy", "final_loss", "energy_s1", "energy_s0", "energy_s1_change",
    "orthogonality_error", "seconds_per_epoch", "steps", "test_accuracy_curve"))
def run_opt_generalization(config: dict[str, Any]) -> dict[str, Any]:
    """One variant on one seed (module docstring). Config keys: ``variant, seed, hidden, epochs,
    batch, lr, momentum, test_size, block_size, block_steps``."""
    import torch
    from torch import nn

    from overtensor._checks import check_choice
    from overtensor.networks.opt_layer import OPTLinear, opt_optimizer, resample_blocks
    from overtensor.regimes.energy import hyperspherical_energy
    from overtensor.training.loop import (
        Divergence,
        Evaluation,
        optimizer_step,
        train_loop,
    )
    from overtensor.training.schedule import StepSchedule

    variant = check_choice("variant", config["variant"], VARIANTS)
    seed, H = int(config["seed"]), int(config["hidden"])
    Xtr, ytr, Xte, yte = _digits(seed, float(config.get("test_size", 0.3)))
    d = Xtr.shape[1]
    gen = torch.Generator().manual_seed(10_000 + seed)
    W0 = torch.randn(H, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    Wout = torch.randn(10, H, generator=gen, dtype=torch.float64) / math.sqrt(H)
    if variant.startswith("opt-"):
        hidden = OPTLinear(d, H, rotation=variant[4:], weight0=W0,
                           block_size=int(config.get("block_size", 16)), random_state=gen)
    else:
        hidden = nn.Linear(d, H)
        with torch.no_grad():
            hidden.weight.copy_(W0)
            hidden.bias.zero_()
        hidden.weight.requires_grad_(variant == "standard")
    out = nn.Linear(H, 10)
    with torch.no_grad():
        out.weight.copy_(Wout)
        out.bias.zero_()
    net = nn.Sequential(hidden, nn.ReLU(), out)
    opt = opt_optimizer(nn.ModuleList([m for m in net if any(p.requires_grad for p in m.parameters())]),
                        lr=float(config["lr"]), momentum=float(config["momentum"]))

    def rows() -> torch.Tensor:
        return (hidden.weight() if isinstance(hidden, OPTLinear) else hidden.weight).detach().double()

    def accuracy(X, y) -> float:
        with torch.no_grad():
            return float((net(X).argmax(-1) == y).float().mean())

    e0 = {s: float(hyperspherical_energy(rows(), s)) for s in (1.0, 0.0)}
    batch, epochs = int(config["batch"]), int(config["epochs"])
    block_steps = int(config.get("block_steps", 20))
    per_epoch = -(-len(ytr) // batch)  # mini-batches per epoch (the last one may be short)
    loss_fn = nn.CrossEntropyLoss()
    perm = torch.empty(0, dtype=torch.long)

    def step(_: int) -> torch.Tensor:  # one mini-batch (train_loop is called with per_step)
        nonlocal perm
        k = schedule.step  # steps taken before this one
        if k % per_epoch == 0:  # a new epoch: a new order of the training set
            perm = torch.randperm(len(ytr), generator=gen)
        idx = perm[(k % per_epoch) * batch:(k % per_epoch + 1) * batch]
        loss = loss_fn(net(Xtr[idx]), ytr[idx])
        optimizer_step(opt, loss)
        if variant == "opt-stochastic" and (k + 1) % block_steps == 0:
            resample_blocks(net, opt)
        return loss.detach()

    def evaluate(loss: torch.Tensor) -> Evaluation:  # at the end of an epoch
        return Evaluation({"step": schedule.step, "test_accuracy": accuracy(Xte, yte),
                           "loss": float(loss)})

    schedule = StepSchedule(epochs * per_epoch, every=per_epoch)
    t0 = time.perf_counter()
    history = train_loop(schedule, step, evaluate, per_step=True,
                         divergence=Divergence(float(config["lr"]), start=None))
    seconds = time.perf_counter() - t0
    e1 = {s: float(hyperspherical_energy(rows(), s)) for s in (1.0, 0.0)}
    return {
        "test_accuracy": accuracy(Xte, yte), "train_accuracy": accuracy(Xtr, ytr),
        "final_loss": history[-1]["loss"], "energy_s1": e1[1.0], "energy_s0": e1[0.0],
        "energy_s1_change": abs(e1[1.0] - e0[1.0]) / abs(e0[1.0]),
        "orthogonality_error": hidden.orthogonality_error() if isinstance(hidden, OPTLinear) else None,
        "seconds_per_epoch": seconds / epochs, "steps": schedule.step,
        "test_accuracy_curve": [r["test_accuracy"] for r in history],
    }


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant: test accuracy mean and sd over seeds, final energy, its change, s/epoch."""
    df = df.copy()
    for col in ("test_accuracy", "train_accuracy", "energy_s1", "energy_s1_change",
                "seconds_per_epoch", "orthogonality_error"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    g = df.groupby("variant")
    out = pd.DataFrame({
        "seeds": g.size(), "test_acc_mean": g["test_accuracy"].mean(),
        "test_acc_sd": g["test_accuracy"].std(ddof=1), "train_acc_mean": g["train_accuracy"].mean(),
        "energy_s1": g["energy_s1"].mean(), "energy_rel_change": g["energy_s1_change"].max(),
        "max_orth_error": g["orthogonality_error"].max(), "s_per_epoch": g["seconds_per_epoch"].mean(),
    })
    order = [v for v in VARIANTS if v in out.index]
    return out.loc[order]


def summary(df: pd.DataFrame) -> str:
    t = table(df)
    lines = ["opt-generalization (load_digits): test accuracy mean ± sd over seeds"]
    for v, r in t.iterrows():
        orth = "-" if pd.isna(r["max_orth_error"]) else f"{r['max_orth_error']:.1e}"
        lines.append(f"  {v:<18} {mean_sd(r['test_acc_mean'], r['test_acc_sd'], '.4f')}  (n={r['seeds']})  "
                     f"train {r['train_acc_mean']:.4f}  E_1 {r['energy_s1']:.6g}  "
                     f"ΔE/E {r['energy_rel_change']:.1e}  ‖RᵀR−I‖ {orth}  {r['s_per_epoch']:.3f} s/epoch")
    # no verdicts here: `experiment run` prints one line per claim after the summary
    return "\n".join(lines)


def claims(df: pd.DataFrame) -> list[Claim]:
    """OPT vs standard test accuracy (difference of means against 2 standard errors, per way),
    and the energy kept by OPT."""
    t = table(df)
    if "standard" not in t.index:
        return []
    s = t.loc["standard"]
    better, worse, parts = [], [], []
    for v in [v for v in t.index if v.startswith("opt-")]:
        r = t.loc[v]
        se = math.sqrt(r["test_acc_sd"] ** 2 / r["seeds"] + s["test_acc_sd"] ** 2 / s["seeds"])
        diff = r["test_acc_mean"] - s["test_acc_mean"]
        parts.append(f"{v[4:]} {diff:+.4f} (2SE {2 * se:.4f})")
        (better if diff > 2 * se else worse if diff < -2 * se else []).append(v)
    n = len(parts)
    if n == 0:
        return []
    # Supported: most ways better by > 2 SE. Not supported: none better by > 2 SE and the mean
    # difference over the ways is <= 0, or some way worse by > 2 SE. Else (differences inside the
    # noise, or mixed): inconclusive.
    mean_diff = float((t.loc[[v for v in t.index if v.startswith("opt-")], "test_acc_mean"]
                       - s["test_acc_mean"]).mean())
    if len(better) > n / 2:
        verdict = "supported"
    elif (not better and mean_diff <= 0) or (worse and not better):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    reason = (f"mean test accuracy minus standard's ({s['test_acc_mean']:.4f}, {int(s['seeds'])} seeds): "
              + "; ".join(parts) + f". Better by > 2 SE: {len(better)}/{n}; worse by > 2 SE: "
              f"{len(worse)}/{n}; mean difference over the ways {mean_diff:+.4f}")
    out = [Claim(PAPER, URL, "OPT (learning only a rotation of the random hidden neurons) gives a "
                 "higher test accuracy than standard training of the same MLP on load_digits",
                 verdict, reason, "opt_generalization_accuracy")]
    opt_rows = t[[v.startswith("opt-") for v in t.index]]
    worst = float(opt_rows["energy_rel_change"].max())
    std_change = float(s["energy_rel_change"])
    out.append(Claim(PAPER, URL, "OPT keeps the hyperspherical energy of the hidden neurons at its "
                     "initial value; standard training changes it",
                     "supported" if worst < 1e-4 < std_change else "not supported",
                     f"largest relative change of E_1 under OPT (float32 training, every seed and "
                     f"way): {worst:.1e}; under standard training: {std_change:.1e}",
                     "opt_generalization_accuracy"))
    return out


def figures(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Test accuracy (mean ± sd) and seconds per epoch per variant; energy change per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from overtensor.experiments.plots import save

    t = table(df)
    x = np.arange(len(t))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = ["gray" if not v.startswith("opt-") else "tab:blue" for v in t.index]
    axes[0].bar(x, t["test_acc_mean"], yerr=t["test_acc_sd"], color=colors, capsize=3)
    lo = float((t["test_acc_mean"] - 3 * t["test_acc_sd"].fillna(0)).min())
    axes[0].set_ylim(max(0.0, lo), 1.0)
    axes[0].set_ylabel("test accuracy (mean ± sd over seeds)")
    axes[1].bar(x, t["energy_rel_change"].clip(lower=1e-17), color=colors)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("max relative change of E_1 (hidden rows)")
    axes[2].bar(x, t["s_per_epoch"], color=colors)
    axes[2].set_ylabel("wall time per epoch (s)")
    for ax in axes:
        ax.set_xticks(x, t.index, rotation=45, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("load_digits MLP: standard vs random features vs OPT (each way of keeping R)")
    fig.tight_layout()
    return save(fig, Path(outdir) / "opt_generalization_accuracy")


_FIXED = {"hidden": 512, "epochs": 20, "batch": 64, "lr": 0.05, "momentum": 0.9, "test_size": 0.3,
          "block_size": 16, "block_steps": 20}
PRESETS = {
    # For the docs check (tests/test_docs.py): seconds, one seed; checks the pipeline, not the claims.
    "tiny": {
        "name": "opt-generalization", "run": "opt_generalization",
        "description": "tiny check: load_digits MLP 64-32-10, 2 epochs: standard vs RF vs OPT "
                       "(Cayley), one seed",
        "fixed": {**_FIXED, "hidden": 32, "epochs": 2},
        "grid": {"variant": ["standard", "random-features", "opt-cayley"]}, "seeds": 1,
    },
    "small": {
        "name": "opt-generalization", "run": "opt_generalization",
        "description": "load_digits MLP 64-512-10, 20 epochs: standard vs RF vs OPT (7 ways), 5 seeds",
        "fixed": _FIXED, "grid": {"variant": list(VARIANTS)}, "seeds": 5,
    },
    "full": {
        "name": "opt-generalization", "run": "opt_generalization",
        "description": "load_digits MLP 64-2048-10, 60 epochs: standard vs RF vs OPT (7 ways), 10 seeds",
        "fixed": {**_FIXED, "hidden": 2048, "epochs": 60}, "grid": {"variant": list(VARIANTS)},
        "seeds": 10,
    },
}

#: Captions of the figures (file stem -> what it shows and what to read from it).
CAPTIONS = {
    "opt_generalization_accuracy": (
        "load_digits MLP, one bar per variant (blue: OPT variants, grey: standard and random "
        "features): test accuracy (left, mean ± sd over seeds), largest relative change of the "
        "hidden rows' energy E_1 (middle, log axis) and wall time per epoch (right). Read: whether "
        "OPT's accuracy is within the spread of the standard network's while its energy change stays "
        "at rounding level."),
}

EXPERIMENT = register_experiment(Experiment(
    name="opt-generalization",
    description="does OPT (rotating frozen random neurons) generalize better than standard training?",
    presets=PRESETS, figures=figures, summary=summary, claims=claims,
    captions=CAPTIONS,
))
