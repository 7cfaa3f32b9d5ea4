"""Per-step time of stochastic OPT against full OPT with the Cayley map (docs/theory/networks.md §3).

One step is forward + backward + optimizer step of an OPT layer ``y = x (W_0 Rᵀ)ᵀ`` with ``m``
frozen rows in ``R^d`` on a batch of ``n`` inputs and a squared loss:

* ``cayley`` — ``R ∈ O(d)`` from ``torch.nn.utils.parametrizations.orthogonal`` (Cayley map):
  a ``d × d`` solve and ``W = W_0 Rᵀ`` (``O(d³ + m d²)``) every step;
* ``stochastic`` — a ``k × k`` Cayley block on ``k`` random coordinates, merged into ``W_0``
  every ``K`` steps: only ``k`` columns of ``W`` are recomputed (``O(k³ + m d k)``);
* ``riemannian`` — ``R`` itself, stepped by :class:`overtensor.optim.cayley.CayleySGD` (a ``d × d``
  solve in the optimizer instead of the forward), for reference.

Medians over ``--repeats`` blocks of ``--steps`` steps; float32, one thread.

    python benchmarks/bench_opt.py                  # d = 512, k = 32, m = 1024, n = 256
"""

from __future__ import annotations

import argparse

import torch
from _common import median_time, print_machine, print_table, write_csv

from overtensor.optim.cayley import CayleySGD
from overtensor.regimes.orthogonal import orthogonal


def _stepper(method: str, d: int, m: int, n: int, k: int, block_steps: int):
    gen = torch.Generator().manual_seed(0)
    W0 = torch.randn(m, d, generator=gen) / d**0.5
    X = torch.randn(n, d, generator=gen)
    Y = torch.randn(n, m, generator=gen)
    fn, p = orthogonal(lambda q, x: x @ q["W"].T, {"W": W0}, method=method, k=k, random_state=1)
    p["R"].requires_grad_(True)
    state = {"p": p, "opt": CayleySGD([p["R"]], lr=1e-3, orthogonal=method == "riemannian"), "t": 0}

    def step() -> None:
        opt, p = state["opt"], state["p"]
        opt.zero_grad(set_to_none=True)
        ((fn(p, X) - Y) ** 2).mean().backward()
        opt.step()
        state["t"] += 1
        if method == "stochastic" and state["t"] % block_steps == 0:
            p = fn.resample(p)
            p["R"].requires_grad_(True)
            state["p"], state["opt"] = p, CayleySGD([p["R"]], lr=1e-3)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--block", type=int, default=32, help="k of stochastic OPT")
    ap.add_argument("--block-steps", type=int, default=10, help="K of stochastic OPT")
    ap.add_argument("--rows", type=int, default=1024, help="m, the number of neurons")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    info = print_machine()
    rows = []
    for method in ("cayley", "stochastic", "riemannian"):
        step = _stepper(method, args.dim, args.rows, args.batch, args.block, args.block_steps)

        def block(step=step) -> None:
            for _ in range(args.steps):
                step()

        t = median_time(block, repeats=args.repeats) / args.steps
        rows.append({"method": method, "d": args.dim, "k": args.block if method == "stochastic" else "",
                     "m": args.rows, "batch": args.batch, "ms_per_step": 1e3 * t})
    base = rows[0]["ms_per_step"]
    for r in rows:
        r["speedup_vs_cayley"] = base / r["ms_per_step"]
    print_table(rows)
    write_csv("bench_opt", rows, info)


if __name__ == "__main__":
    main()
