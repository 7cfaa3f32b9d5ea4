"""Correlated components: does the fit return the true rank and every component? (issue 10, item 1)

Targets: ``r`` unit components whose pairwise cosines are drawn uniformly in ``[0.3, 0.7]`` (a
random Gram matrix with those off-diagonal entries, redrawn until positive definite, embedded by a
random rotation in ``R^d``), equal weights, orders 3 and 4. Methods:

* ``overtensor``: ``fit(target, width=4r, runtime=Runtime(engine="paper"))`` (beyond-lazy with the
  paper's schedule,
  defaults: extraction, polish and rank reduction; the numbers in docs/performance.md were measured
  on it, and ``bench_speed.py`` measures the default route), given the implicit CP target;
* ``parafac``: TensorLy's ALS at the *true* rank (``init="random"``, up to ``--als-iter``
  iterations, ``tol=1e-12``), given the dense array.

A run succeeds when its decomposition has exactly ``r`` terms and recovers every component at
``|cos| ≥ 0.99`` (Hungarian matching; for ``parafac`` in every mode). One thread.

    python benchmarks/bench_correlated.py          # d in {20, 50}, r in {3, 6}, 5 seeds (~3 min)
    python benchmarks/bench_correlated.py --full   # r in {3, 4, 5, 6}, 10 seeds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import print_machine, print_table, write_csv

import overtensor as ot


def correlated_target(order: int, dim: int, rank: int, seed: int) -> ot.CPTarget:
    """Equal weights, unit components with pairwise cosines uniform in [0.3, 0.7].

    The Gram matrix is drawn by rejection (smallest eigenvalue above 0.05); at ``rank = 20`` such
    matrices are too rare to draw, and ``ValueError`` says so after 100 000 tries."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(100_000):
        off = 0.3 + 0.4 * torch.rand(rank, rank, generator=gen, dtype=torch.float64)
        gram = torch.triu(off, 1)
        gram = gram + gram.T + torch.eye(rank, dtype=torch.float64)
        if float(torch.linalg.eigvalsh(gram).min()) > 0.05:
            break
    else:
        raise ValueError(f"no Gram matrix with pairwise cosines in [0.3, 0.7] found for "
                         f"rank={rank} in 100000 tries")
    L = torch.linalg.cholesky(gram)
    Q, _ = torch.linalg.qr(torch.randn(dim, rank, generator=gen, dtype=torch.float64))
    return ot.CPTarget(torch.ones(rank, dtype=torch.float64), (Q @ L.T).T.contiguous(), order)


def run_overtensor(target: ot.CPTarget, seed: int) -> dict:
    result = ot.fit(target, width=4 * target.rank, random_state=seed,
                    runtime=ot.Runtime(engine="paper"))
    rec = result.recovery()
    return {"found_rank": result.cp.rank, "recovered": rec.recovered,
            "relative_error": result.relative_error}


def run_parafac(target: ot.CPTarget, seed: int, n_iter: int) -> dict:
    import tensorly as tl
    from tensorly.decomposition import parafac

    dense = target.truth.to_dense().numpy()
    cp = parafac(dense, target.rank, init="random", random_state=seed, n_iter_max=n_iter,
                 tol=1e-12)
    err = float(np.linalg.norm(tl.cp_to_tensor(cp) - dense) / np.linalg.norm(dense))
    recovered = min(
        ot.recovery(ot.SymmetricCP(torch.ones(target.rank, dtype=torch.float64),
                                   torch.from_numpy(np.ascontiguousarray(f.T)), target.order),
                    target).recovered
        for f in cp.factors)
    return {"found_rank": target.rank, "recovered": recovered, "relative_error": err}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="ranks 3-6, 10 seeds")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--als-iter", type=int, default=500, help="parafac iterations (default 500)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    info = print_machine()
    n_seeds = args.seeds or (10 if args.full else 5)
    ranks = (3, 4, 5, 6) if args.full else (3, 6)
    runs, rows = [], []
    for order in (3, 4):
        for dim in (20, 50):
            for rank in ranks:
                row = {"order": order, "dim": dim, "rank": rank, "seeds": n_seeds}
                for name in ("overtensor", "parafac"):
                    ok, secs = 0, 0.0
                    for seed in range(n_seeds):
                        target = correlated_target(order, dim, rank, 1000 * rank + seed)
                        t0 = time.perf_counter()
                        out = (run_overtensor(target, seed) if name == "overtensor"
                               else run_parafac(target, seed, args.als_iter))
                        dt = time.perf_counter() - t0
                        good = out["found_rank"] == rank and out["recovered"] == rank
                        ok += good
                        secs += dt
                        runs.append({"method": name, "order": order, "dim": dim, "rank": rank,
                                     "seed": seed, "success": good, "seconds": dt, **out})
                    row[f"{name}_ok"] = f"{ok}/{n_seeds}"
                    row[f"{name}_s"] = secs / n_seeds
                rows.append(row)
                print(row, flush=True)
    print_table(rows)
    suffix = "_full" if args.full else ""
    write_csv("bench_correlated" + suffix, rows, info)
    write_csv("bench_correlated_runs" + suffix, runs, info)


if __name__ == "__main__":
    main()
