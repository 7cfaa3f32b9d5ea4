"""Time per step of the tensor regimes against a full-regime step, and the issue's lazy fit.

Part 1 (time per step, median of ``--repeats`` timings of ``--steps`` steps, one thread):

* ``full``: the step plain ``overtensor.fit`` takes (``gd_steps_batched`` of
  :mod:`overtensor.tensors.batched`, closed-form gradient, a batch of one);
* ``lazy (CG)``, ``lazy (GD)``, ``random-features``, ``alpha-scaled``: the closed-form steppers
  of :mod:`overtensor.tensors.regime_gradients` that ``regime_fit`` runs by default;
* ``... (autograd)``: the previous path, autograd through the ``torch.func`` regime definition and
  a ``torch.optim.SGD`` step (still what other optimizers use).

``ratio`` is the time per step over the ``full`` one of the same size.

Part 2: ``overtensor fit --regime lazy --order 3 --dim 8 --rank 1 --width 15`` (seed 0) as the
CLI runs it now (conjugate gradients), with ``tol=0`` (to the optimum), and the previous path
(autograd gradient descent with step ``1/L``, ``engine="autograd"``).

    python benchmarks/bench_regimes.py
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import median_time, print_machine, print_table, write_csv

import overtensor as ot
from overtensor.optim.registry import make_optimizer
from overtensor.tensors.batched import gd_steps_batched
from overtensor.tensors.config import split_options
from overtensor.tensors.gradient import prepare_fit
from overtensor.tensors.regime_gradients import ConjugateGradients, GradientDescent
from overtensor.tensors.regimes import closed_form_problem, make_regime, regime_fit
from overtensor.training.loop import gd_steps

SIZES = [(3, 8, 15, 1), (3, 20, 20, 5), (3, 50, 50, 5)]  # (order, d, m, rank)


def setup(order, dim, width, rank, regime):
    target = ot.random_target(order, dim, rank, random_state=0).normalized()[0]
    gen = torch.Generator().manual_seed(0)
    target, sq, scale, _, p0, s = prepare_fit(
        target, model="homogeneous", width=width, init_scale=1.0, signs="auto", generator=gen,
        dtype=torch.float64, device=torch.device("cpu"))
    reg = make_regime(regime, "homogeneous", order, p0, s, alpha=10.0)
    return target, sq, scale, p0, s, reg


def step_times(order, dim, width, rank, steps, repeats):
    rows = []
    target, sq, scale, p0, s, _ = setup(order, dim, width, rank, "full")
    P = {k: v.unsqueeze(0).clone() for k, v in p0.items()}
    tb = ot.CPTarget(target.weights.unsqueeze(0) * scale, target.factors.unsqueeze(0), order)
    lr = torch.tensor([0.01], dtype=torch.float64)
    mu = torch.zeros(1, dtype=torch.float64)
    full = median_time(lambda: gd_steps_batched("homogeneous", P, s.unsqueeze(0), tb, 1.0,
                                                (sq * scale**2).unsqueeze(0), mu, lr, steps),
                       repeats) / steps
    rows.append(dict(size=f"l={order} d={dim} m={width} r={rank}", regime="full (batched engine)",
                     ms_per_step=1e3 * full, ratio=1.0))
    for regime, name in [("lazy", "lazy (CG)"), ("lazy", "lazy (GD)"),
                         ("random-features", "random-features"), ("alpha-scaled", "alpha-scaled")]:
        target, sq, scale, p0, s, reg = setup(order, dim, width, rank, regime)
        problem = closed_form_problem(reg, target, scale, sq)
        if name == "lazy (CG)":
            # CG stops taking products once converged (fast at large d): time per product of a
            # fresh solve, set-up (one gradient) included.
            def solve(p=problem, r=reg):
                t0 = time.perf_counter()
                cg = ConjugateGradients(p, r.init())
                cg.steps(steps)
                return (time.perf_counter() - t0) / max(cg.products, 1)

            solve()
            t = sorted(solve() for _ in range(repeats))[repeats // 2]
        else:
            stepper = GradientDescent(problem, reg.init(), 1e-3)
            t = median_time(lambda st=stepper: st.steps(steps), repeats) / steps
        rows.append(dict(size=rows[0]["size"], regime=name, ms_per_step=1e3 * t, ratio=t / full))
        if name == "lazy (CG)":
            continue
        theta = {k: v.clone().requires_grad_(True) for k, v in reg.init().items()}
        opt = make_optimizer(None, theta.values(), 1e-3)
        t = median_time(lambda r=reg, th=theta, o=opt, tg=target, sc=scale, q=sq: gd_steps(
            lambda: r.loss(th, tg, sc, q), o, steps), repeats) / steps
        rows.append(dict(size=rows[0]["size"], regime=name.replace(" (GD)", "") + " (autograd)",
                         ms_per_step=1e3 * t, ratio=t / full))
    return rows


def issue_fit():
    target = ot.random_target(3, 8, 1, random_state=0)
    rows = []
    for label, kw in [("now (CG), default tol 1e-4", {}), ("now (CG), tol=0", {"tol": 0.0})]:
        t0 = time.perf_counter()
        res = ot.fit(target, width=15, regime="lazy", random_state=0, **split_options(kw))
        rows.append(dict(run=label, steps=res.steps, stop=res.stop_reason,
                         relative_error=res.relative_error,
                         lazy_optimum=res.info["lazy_optimum_error"],
                         fit_s=time.perf_counter() - t0))
    work, _ = target.normalized()
    t0 = time.perf_counter()
    res = regime_fit(work, regime="lazy", method="beyond-lazy", model="homogeneous", width=15,
                     init_scale=1.0, alpha=1.0, max_steps=20000, tol=1e-4, lr=None, optimizer=None,
                     signs="auto", patience=5, eval_every=50, epoch_steps=200,
                     generator=torch.Generator().manual_seed(0), dtype=torch.float64,
                     device=torch.device("cpu"), engine="autograd")
    rows.append(dict(run="before (autograd GD, 1/L)", steps=res.steps, stop=res.stop_reason,
                     relative_error=res.relative_error,
                     lazy_optimum=res.info["lazy_optimum_error"], fit_s=time.perf_counter() - t0))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-issue", action="store_true", help="only the time per step")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    info = print_machine()
    rows = []
    for size in SIZES:
        rows += step_times(*size, args.steps, args.repeats)
    print_table(rows)
    write_csv("bench_regimes", rows, info)
    if not args.skip_issue:
        fits = issue_fit()
        print_table(fits)
        write_csv("bench_regimes_issue", fits, info)


if __name__ == "__main__":
    main()
