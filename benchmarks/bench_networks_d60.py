"""The issue-12 acceptance check at d = 60 (docs/theory/networks.md §1 reference table), printed, not
asserted.

Authors' target ``B = diag(γ)/√d`` (one draw), ``W_0`` with ``N(0, 1/d)`` entries, widths
``N ∈ {6, 15, 30, 45, 60, 120}``: the exact RF, NT and NN optima (risk / null risk), the eigenvalue
tail, and online SGD in the NN and NT regimes from the same ``W_0`` (``--steps`` steps, default
3000; ``--optimizer``), with ``|trained − exact| / R0`` against the 5 % criterion.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_networks_d60.py [--steps 3000] [--train 15,45]
        [--optimizer sgd] [--lr LR] [--momentum BETA] [--safety C] [--tag NAME]

SGD's default step is the per-block curvature step of ``overtensor.networks.train.curvature_steps``.
"""

from __future__ import annotations

import argparse

import torch
from _common import print_machine, print_table, write_csv

from overtensor.networks.data import gaussian_quadratic
from overtensor.networks.model import NetworkSpec, init_network
from overtensor.networks.quadratic_risk import regime_optima
from overtensor.networks.train import TrainConfig, train_network


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=60)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--lr", type=float, default=None,
                    help="one step for every parameter (default: train.curvature_steps for SGD)")
    ap.add_argument("--momentum", type=float, default=None, help="heavy ball of --optimizer sgd")
    ap.add_argument("--safety", type=float, default=None,
                    help="c of the curvature steps c/lambda_max (default 0.5; SGD without --lr only)")
    ap.add_argument("--tag", default=None, help="write results/networks_d60_TAG.csv")
    ap.add_argument("--train", default="6,15,30,45,60,120", help="widths to train (comma list)")
    args = ap.parse_args()
    info = print_machine()
    d = args.dim
    data = gaussian_quadratic(d, torch.Generator().manual_seed(0))
    lam = torch.linalg.eigvalsh(data.B).abs().sort(descending=True).values
    train = {int(w) for w in args.train.split(",") if w}
    rows = []
    for N in (6, 15, 30, 45, 60, 120):
        spec = NetworkSpec(N, d)
        seed = 100 + N
        W0 = init_network(spec, torch.Generator().manual_seed(seed))["W"]
        o = regime_optima(W0, data.B)
        R0 = o["null"]
        row = {"N": N, "rf": o["rf"] / R0, "nt": o["nt"] / R0, "nn": o["nn"] / R0,
               "eigen_tail": 2 * float((lam[N:] ** 2).sum()) / R0,
               "order_ok": (o["rf"] > o["nt"] > o["nn"]) if N < d else o["nt"] / R0 < 1e-10}
        if N in train:
            for key, regime in (("nn", "full"), ("nt", "lazy")):
                cfg = TrainConfig(regime=regime, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                                  momentum=args.momentum, safety=args.safety)
                res = train_network(data, spec, cfg, random_state=seed)
                row[f"{key}_trained"] = res.test_risk / R0
                row[f"{key}_gap"] = abs(res.test_risk - o[key]) / R0
                row[f"{key}_sec"] = res.seconds
                row[f"{key}_lr_W"] = res.lr
            row["within_5pct"] = max(row["nn_gap"], row["nt_gap"]) < 0.05
        rows.append(row)
    print_table(rows)
    name = "networks_d60" if args.tag is None else f"networks_d60_{args.tag}"
    write_csv(name, rows, {**info, "steps": args.steps, "optimizer": args.optimizer, "lr": args.lr,
                           "momentum": args.momentum, "safety": args.safety})


if __name__ == "__main__":
    main()
