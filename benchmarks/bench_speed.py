"""Time to ε = 1e-4: compressed overtensor against TensorLy's ALS with restarts, in one run.

Targets ``Σ_j u_j^{⊗l}`` (equal weights) with ``random`` unit components or ``correlated`` ones
(pairwise cosines uniform in [0.3, 0.7], as in ``bench_correlated.py``), given as

* ``dense``: the ``d^l`` array (both methods get the same array);
* ``cp``: the CP form (overtensor never forms the array; TensorLy needs it);
* ``moments``: the empirical moment tensor of ``n = 40 r`` samples, each one of the components
  (overtensor works on the samples; TensorLy needs the dense array).

Methods:

* ``overtensor``: :func:`overtensor.tensors.compression.fit_compressed` (``beyond-lazy``, ``m = 4r``,
  default :class:`~overtensor.tensors.shortcuts.Shortcuts`): range finder on ``contract``, the
  ``k^l`` core fitted with the early switch to Levenberg–Marquardt extraction, lifted back.
  The time includes the compression and the float64 error against the target;
* ``overtensor-paper`` (``--paper``): the same with ``shortcuts=None`` (the paper's schedule);
* ``parafac``: TensorLy's ALS at the true rank, ``init="random"``, one run, stopped as soon as
  its own reconstruction error is below ``ε/2`` (callback; at most 1000 iterations);
* ``parafac-restarts``: ALS restarted with a new seed until a run reaches ``ε``, at most
  ``--restarts`` runs and ``--als-budget`` seconds; the time is the total until the first
  success (the restart-matched time).

A run succeeds when its relative error ``‖T − T̂‖/‖T‖ ≤ 1e-4`` (float64, against the target;
for ALS against the dense array). Medians over seeds (time to ε over the successful runs), in
wall-clock seconds (the verdict) and in CPU seconds of this process (``time.process_time``, less
sensitive to other jobs on a shared machine).
TensorLy is not run when the dense array exceeds ``--memory-budget`` GiB (the bytes are computed,
never allocated) or ``d > --als-max-dim``. One thread; the load average is printed because the
machine may be shared.

    python benchmarks/bench_speed.py            # ~2 min: the issue-16 grid + a sample of the rest
    python benchmarks/bench_speed.py --full     # orders 3, 4; ranks 3, 5, 10, 20; random and
                                                # correlated; d in {10, 30, 100, 200}; CP/moments
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from _common import print_machine, print_table, write_csv
from bench_correlated import correlated_target

import overtensor as ot
from overtensor.tensors.compression import fit_compressed

EPS = 1e-4


@dataclass(frozen=True)
class Case:
    kind: str  # dense, cp, moments
    order: int
    dim: int
    rank: int
    components: str  # random, correlated
    seeds: int


def issue_grid(full: bool) -> list[Case]:
    """Order 3, rank 5, random components, dense: the issue's acceptance grid."""
    cases = [Case("dense", 3, d, 5, "random", 20) for d in (10, 20, 30, 50)]
    cases += [Case("dense", 3, 100, 5, "random", 20 if full else 5),
              Case("dense", 3, 200, 5, "random", 20 if full else 2)]
    return cases


def matrix_grid(full: bool) -> list[Case]:
    """Orders 3 and 4, ranks 3-20, random and correlated, CP and moment targets."""
    if not full:
        return [Case("dense", 4, 30, 5, "random", 5), Case("dense", 3, 30, 3, "random", 5),
                Case("dense", 3, 100, 20, "random", 2), Case("dense", 3, 30, 5, "correlated", 5),
                Case("dense", 4, 30, 5, "correlated", 3), Case("moments", 3, 100, 5, "random", 3),
                Case("cp", 3, 1000, 5, "random", 3), Case("cp", 4, 1000, 5, "random", 2)]
    cases = []
    for order in (3, 4):
        for comp in ("random", "correlated"):
            for rank in (3, 5, 10, 20):
                for d in (10, 30, 100, 200):
                    if 2 * rank > d:  # not compressible (k > d/2): the uncompressed fit
                        continue
                    if (order, rank, comp) == (3, 5, "random") and d in (10, 30, 100, 200):
                        continue  # in the issue grid
                    kind = "dense" if d**order <= 10**7 else "cp"
                    cases.append(Case(kind, order, d, rank, comp, 5))
    cases += [Case("moments", 3, d, 5, "random", 5) for d in (100, 1000)]
    cases += [Case("cp", 3, d, 5, "random", 3) for d in (1000, 10000)]
    return cases


def make_target(case: Case, seed: int) -> tuple[ot.Target, ot.SymmetricCP]:
    if case.components == "random":
        truth = ot.random_target(case.order, case.dim, case.rank, random_state=seed).truth
    else:
        truth = correlated_target(case.order, case.dim, case.rank, seed).truth
    if case.kind == "dense":
        return ot.DenseTarget(truth.to_dense(), truth), truth
    if case.kind == "cp":
        return ot.CPTarget(truth.weights, truth.components, case.order), truth
    # Moments of samples that are the components themselves: T = (1/n) Σ_k x_k^{⊗l} = Σ_j u_j^{⊗l}
    # up to the factor reps/n; exactly rank r.
    reps = 40
    samples = truth.components.repeat(reps, 1) * case.rank ** (1 / case.order)
    return ot.MomentTarget(samples, case.order), truth


def run_parafac(dense: np.ndarray, rank: int, seed: int, restarts: int, budget: float):
    """(single-run record, restart-matched record): each ``(relative_error, seconds, cpu
    seconds)``."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    norm = float(np.linalg.norm(dense))
    total, cpu, first, err = 0.0, 0.0, None, float("inf")
    for attempt in range(restarts):
        t0, c0 = time.perf_counter(), time.process_time()

        def stop(_cp, rec_error, t0=t0, spent=total):
            # Time to ε: stop at the first iterate within ε/2 by ALS's own error estimate (the
            # true error is then checked below), or when the restart budget is spent.
            return bool(rec_error <= EPS / 2 or spent + time.perf_counter() - t0 > budget)

        cp = parafac(dense, rank, init="random", random_state=seed * 1000 + attempt,
                     n_iter_max=1000, tol=1e-12, callback=stop)
        err = float(np.linalg.norm(tl.cp_to_tensor(cp) - dense) / norm)
        total += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if first is None:
            first = (err, total, cpu)
        if err <= EPS or total > budget:
            break
    return first, (err, total, cpu)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per case (default per case)")
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--als-budget", type=float, default=10.0,
                    help="seconds of ALS (all restarts) per seed before it counts as failed")
    ap.add_argument("--als-max-dim", type=int, default=200)
    ap.add_argument("--memory-budget", type=float, default=2.0,
                    help="GiB: TensorLy is not run when the dense array would exceed it")
    ap.add_argument("--paper", action="store_true", help="also time shortcuts=None")
    ap.add_argument("--only-issue", action="store_true", help="only the issue-16 grid")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    info = print_machine()
    load0 = os.getloadavg()
    print(f"# load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    cases = issue_grid(args.full) + ([] if args.only_issue else matrix_grid(args.full))
    # Warm-up (imports, first calls) outside every measurement.
    warm, _ = make_target(Case("dense", 3, 20, 5, "random", 1), 99)
    fit_compressed(warm, 20, random_state=0)
    run_parafac(warm.array.numpy(), 5, 0, 1, 1.0)

    rows = []
    for case in cases:
        n_seeds = args.seeds or case.seeds
        runs: dict[str, list[tuple[float, float, float]]] = {}
        dense_bytes = 8 * case.dim**case.order
        als_ok = dense_bytes <= args.memory_budget * 2**30 and case.dim <= args.als_max_dim
        for seed in range(n_seeds):
            target, truth = make_target(case, seed)
            methods = [("overtensor", {})] + ([("overtensor-paper", {"shortcuts": None})]
                                             if args.paper else [])
            for name, extra in methods:
                t0, c0 = time.perf_counter(), time.process_time()
                res = fit_compressed(target, 4 * case.rank, random_state=seed, **extra)
                runs.setdefault(name, []).append((res.relative_error, time.perf_counter() - t0,
                                                  time.process_time() - c0))
            if als_ok:
                dense = (target.array if case.kind == "dense" else truth.to_dense()).numpy()
                single, matched = run_parafac(dense, case.rank, seed, args.restarts,
                                              args.als_budget)
                runs.setdefault("parafac", []).append(single)
                runs.setdefault("parafac-restarts", []).append(matched)
        head = {"kind": case.kind, "order": case.order, "dim": case.dim, "rank": case.rank,
                "components": case.components}
        for name, sel in runs.items():
            ok = [(t, c) for e, t, c in sel if e <= EPS]
            nan = float("nan")
            rows.append({**head, "method": name, "success": f"{len(ok)}/{len(sel)}",
                         "median_s_to_1e-4": statistics.median(t for t, _ in ok) if ok else nan,
                         "median_cpu_s_to_1e-4": (statistics.median(c for _, c in ok) if ok
                                                  else nan),
                         "median_s_all": statistics.median(t for _, t, _ in sel)})
        if not als_ok:
            why = (f"dense array {dense_bytes / 2**30:.3g} GiB > budget {args.memory_budget:g} GiB"
                   if dense_bytes > args.memory_budget * 2**30 else f"d > {args.als_max_dim}")
            rows.append({**head, "method": "parafac", "success": f"not run: {why}",
                         "median_s_to_1e-4": float("nan"), "median_cpu_s_to_1e-4": float("nan"),
                         "median_s_all": float("nan")})
        print(f"# {case} done (load {os.getloadavg()[0]:.2f})", flush=True)
    print_table(rows)
    budget_entries = args.memory_budget * 2**30 / 8
    print(f"# TensorLy's dense float64 array fits the {args.memory_budget:g} GiB budget up to "
          f"d = {int(budget_entries ** (1 / 3) + 1e-9)} (order 3) and "
          f"d = {int(budget_entries ** (1 / 4) + 1e-9)} (order 4)")
    _verdict(rows)
    load1 = os.getloadavg()
    print(f"# load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    info["load_average"] = f"{load0[0]:.2f}->{load1[0]:.2f}"
    write_csv("bench_speed" + ("_full" if args.full else ""), rows, info)


def _verdict(rows: list[dict]) -> None:
    """The issue-16 check on the order-3, rank-5, random dense grid: overtensor's median time to
    ε at most ALS's restart-matched one and its success rate at least ALS's."""
    print("\n# issue 16: overtensor vs restart-matched ALS (order 3, rank 5, random, dense)")
    for d in (10, 20, 30, 50, 100, 200):
        sel = {r["method"]: r for r in rows if (r["kind"], r["order"], r["rank"], r["components"],
                                                r["dim"]) == ("dense", 3, 5, "random", d)}
        if "overtensor" not in sel or "parafac-restarts" not in sel:
            continue
        o, a = sel["overtensor"], sel["parafac-restarts"]
        frac = [int(x) / int(y) for x, y in (s["success"].split("/") for s in (o, a))]
        ratio = o["median_s_to_1e-4"] / a["median_s_to_1e-4"]
        cpu = o["median_cpu_s_to_1e-4"] / a["median_cpu_s_to_1e-4"]
        ok = ratio <= 1 and frac[0] >= frac[1]
        print(f"d={d:4d}: wall-time ratio overtensor/ALS-restarts = {ratio:.2f} (CPU time "
              f"{cpu:.2f}), success {o['success']} vs {a['success']}: "
              f"{'ahead' if ok else 'NOT ahead'}")


if __name__ == "__main__":
    main()
