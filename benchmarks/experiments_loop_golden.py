"""The outputs of the three experiments that trained a model in a loop of their own
(``opt_generalization``, ``opt_energy``'s network model, ``adaptive_networks``) on 25 tiny configs,
to show that training them through ``overtensor.training.loop.train_loop`` changed nothing.

``benchmarks/results/experiments_loop_before.json`` was recorded before the port (main at b0fc6fd).
Usage (one thread, about 20 s)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/experiments_loop_golden.py --out /tmp/after.json \
        --compare benchmarks/results/experiments_loop_before.json

The ``lr_index = 3`` configs use a grid of ``[0.01, 0.1, 1.0, 100.0]``: ``lr = 100`` makes SGD and
momentum diverge and Adagrad/RMSProp/Adam spike, which checks that only a non-finite loss stops an
``adaptive_networks`` run, as before. Timings (``seconds_per_epoch``) are left out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

torch.set_num_threads(1)

from overtensor.experiments.adaptive_networks import run_adaptive_networks  # noqa: E402
from overtensor.experiments.opt_energy import run_opt_energy  # noqa: E402
from overtensor.experiments.opt_generalization import VARIANTS, run_opt_generalization  # noqa: E402


def _clean(x):
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def outputs() -> dict:
    out = {}
    for model in ("tensor", "network"):
        for regime in ("full", "random-features", "orthogonal"):
            cfg = {"model": model, "regime": regime, "seed": 1, "dim": 5, "width": 6, "steps": 60,
                   "eval_every": 20, "rank": 2, "lr": 0.05, "batch": 50}
            out[f"energy/{model}/{regime}"] = run_opt_energy(cfg)
    for v in VARIANTS:
        cfg = {"variant": v, "seed": 0, "hidden": 16, "epochs": 2, "batch": 128, "lr": 0.05,
               "momentum": 0.9, "block_size": 8, "block_steps": 3}
        r = run_opt_generalization(cfg)
        r.pop("seconds_per_epoch")
        out[f"gen/{v}"] = r
    for opt in ("sgd", "momentum", "adagrad", "rmsprop", "adam"):
        for i in (0, 3):
            cfg = {"model": "two-layer", "optimizer": opt, "lr_index": i, "epochs": 2, "seed": 0,
                   "lr_grid": {opt: [0.01, 0.1, 1.0, 100.0]}}
            out[f"adaptive/{opt}/{i}"] = run_adaptive_networks(cfg)
    return _clean(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the outputs to this JSON file")
    ap.add_argument("--compare", help="compare with this JSON file (exact equality)")
    args = ap.parse_args()
    now = outputs()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(now, f, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            before = json.load(f)
        now = json.loads(json.dumps(now))  # the same JSON round trip as the recorded file
        diff = [(k, kk, before[k][kk], now[k].get(kk)) for k in before for kk in before[k]
                if before[k][kk] != now.get(k, {}).get(kk)]
        for row in diff:
            print(*row)
        print(f"identical: {len(before) - len({k for k, *_ in diff})} of {len(before)} runs")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
