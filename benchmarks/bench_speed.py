"""Time to ε = 1e-4, side by side: ``fit``'s default, SPM, TensorLy ALS with restarts, the power method.

Issue 21. Targets ``Σ_j u_j^{⊗l}`` (equal weights) with ``random`` unit components or
``correlated`` ones (pairwise cosines uniform in [0.3, 0.7], as in ``bench_correlated.py``):

* **dense cells**: the ``d^l`` array, orders 3 and 4, ``d ∈ {10, 30, 100, 300}``,
  ``r ∈ {3, 5, 10, 20}`` (correlated only for ``r ≤ min(d, 10)``: the rejection sampler of
  ``bench_correlated.correlated_target`` cannot draw 20 such components); order-4 cells whose
  array would exceed ``--memory-budget`` are given in CP form (``kind = cp``);
* **implicit cells**: CP targets and moments of ``n = 40 r`` samples (each one of the components,
  so the moment tensor has rank ``r`` exactly) at ``d ∈ {1000, 3000, 10000}``; each cell runs in a
  fresh process whose peak resident memory is reported (``peak_MiB``).

Methods (one thread):

* ``fit``: ``overtensor.fit(target, 4r, random_state=seed)``, the default ``engine="auto"`` route
  (compress, subspace power method when the flattening's rank allows, shortcuts, lift); the route
  taken is counted in ``routes``;
* ``fit-paper`` (``--paper``): the same with ``Runtime(engine="paper")``, the paper's schedule;
* ``spm``: ``overtensor.fit(target, r, "spm")`` (Kileel & Pereira; library implementation, which
  compresses implicit targets first); ``not run`` beyond its rank bound (``r > d`` at order 3);
* ``spm-dense``: the reference SPM forms the ``d^l`` array: reported as a memory stop where that
  array exceeds the budget;
* ``parafac-restarts``: TensorLy's ALS at the true rank, ``init="random"``, restarted with a new
  seed until a run reaches ε (at most ``--restarts`` runs and ``--als-budget`` seconds); needs the
  dense array (memory stop beyond the budget);
* ``power-method``: ``overtensor.fit(target, r, "power-method")`` (SS-HOPM with deflation); its
  adaptive shift solves a ``d × d`` eigenproblem per iteration, so it stops beyond
  ``--power-max-dim``, and it is not run where ``d^l`` exceeds ``--power-max-entries`` (its
  iterations over such a target take minutes per seed).

A run succeeds when its relative error ``‖T − T̂‖/‖T‖ ≤ 1e-4`` (float64) **and** every true
component is recovered at ``|cos| ≥ 0.99``. Per cell: success rate, median wall and CPU seconds
(``time.process_time``) over the successful runs; a run under 0.1 s is timed 3 times (same seed,
same result) and its smallest times kept. Every run gets the target without the quantities a
target caches after a first call (its float64 twin, its normalized form, a moment target's dense
array), so no method profits from one that ran before it on the same target, and the methods
run in reverse order on every other seed. The load average is printed: the machine may be
shared.

    python benchmarks/bench_speed.py --quick   # ≤ 3 min: a sample of cells, 3 seeds
    python benchmarks/bench_speed.py           # the issue's grid, 10 seeds per cell (long)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from _common import print_machine, print_table, write_csv
from bench_correlated import correlated_target

import overtensor as ot
from overtensor.tensors.config import split_options
from overtensor.tensors.spm import spm_rank_bound

EPS = 1e-4
COS = 0.99
#: Runs shorter than 0.1 s are timed this many times (the smallest time is kept).
REPEATS = 3


@dataclass(frozen=True)
class Case:
    kind: str  # dense, cp, moments
    order: int
    dim: int
    rank: int
    components: str  # random, correlated
    seeds: int


def dense_grid(quick: bool, seeds: int, budget_gib: float) -> list[Case]:
    if quick:
        cells = [(3, 10, 5, "random"), (3, 10, 10, "random"), (3, 30, 10, "correlated"),
                 (3, 30, 20, "random"), (3, 100, 5, "random"), (3, 10, 14, "random"),
                 (4, 10, 5, "correlated"), (4, 10, 20, "random")]
    else:
        cells = [(l, d, r, c) for l in (3, 4) for c in ("random", "correlated")
                 for d in (10, 30, 100, 300) for r in (3, 5, 10, 20)
                 if not (c == "correlated" and (r > d or r > 10))]
        cells += [(3, 10, 14, "random")]  # overcomplete order 3: beyond SPM's bound r <= d
    out = []
    for l, d, r, c in cells:
        kind = "dense" if 8 * d**l <= budget_gib * 2**30 else "cp"
        out.append(Case(kind, l, d, r, c, seeds))
    return out


def implicit_grid(quick: bool) -> list[Case]:
    dims = (1000, 10000) if quick else (1000, 3000, 10000)
    return [Case(kind, 3, d, 5, "random", 1) for kind in ("cp", "moments") for d in dims]


def make_target(case: Case, seed: int) -> tuple[ot.Target, ot.SymmetricCP]:
    if case.components == "random":
        truth = ot.random_target(case.order, case.dim, case.rank, random_state=seed).truth
    else:
        truth = correlated_target(case.order, case.dim, case.rank, seed).truth
    if case.kind == "dense":
        return ot.DenseTarget(truth.to_dense(), truth), truth
    if case.kind == "cp":
        return ot.CPTarget(truth.weights, truth.components, case.order), truth
    reps = 40
    samples = truth.components.repeat(reps, 1) * case.rank ** (1 / case.order)
    return ot.MomentTarget(samples, case.order), truth


def _recovered(components: torch.Tensor, truth: ot.SymmetricCP) -> bool:
    cp = ot.SymmetricCP(torch.ones(components.shape[0], dtype=torch.float64),
                        components.to(torch.float64), truth.order, normalize=True)
    return ot.recovery(cp, truth, COS).recovered == truth.rank


def run_method(name: str, target: ot.Target, truth: ot.SymmetricCP, seed: int,
               args) -> dict:
    """One run: ``{"ok", "error", "wall", "cpu", "route"}``; a run under 0.1 s is repeated
    (same seed, same result) up to ``REPEATS`` times and its smallest times are kept, because at
    milliseconds a shared machine's load is most of the spread."""
    best = _run_once(name, target, truth, seed, args)
    for _ in range(REPEATS - 1):
        if best["wall"] >= 0.1:
            break
        again = _run_once(name, target, truth, seed, args)
        best["wall"], best["cpu"] = min(best["wall"], again["wall"]), min(best["cpu"], again["cpu"])
    return best


def _fresh(target: ot.Target) -> ot.Target:
    """The target without the quantities a target keeps once computed (its float64 twin, its
    normalized form ``T/2^k``, a moment target's dense array): each run pays for them as a first
    call would, whatever ran on the same target before."""
    out = copy.copy(target)
    for key in ("_float64", "_normalized", "_moment"):
        out.__dict__.pop(key, None)
    return out


def _run_once(name: str, target: ot.Target, truth: ot.SymmetricCP, seed: int, args) -> dict:
    target = _fresh(target)
    t0, c0 = time.perf_counter(), time.process_time()
    route = None
    if name in ("fit", "fit-paper"):
        res = ot.fit(target, 4 * truth.rank, random_state=seed,
                     **split_options({"engine": "paper"} if name == "fit-paper" else {}))
        route = res.info.get("route", {}).get("engine")
        err, comps = res.relative_error, res.cp.components
    elif name in ("spm", "power-method"):
        res = ot.fit(target, truth.rank, name, random_state=seed)
        err, comps = res.relative_error, res.cp.components
    else:  # parafac-restarts
        err, comps = run_parafac(truth, target, seed, args)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ok = bool(err <= EPS and _recovered(comps, truth))
    return {"ok": ok, "error": float(err), "wall": wall, "cpu": cpu, "route": route}


def run_parafac(truth: ot.SymmetricCP, target: ot.Target, seed: int, args):
    """ALS restarted until a run reaches ε; ``(error, components of the first factor)``."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    dense = (target.array if isinstance(target, ot.DenseTarget) else truth.to_dense()).numpy()
    norm = float(np.linalg.norm(dense))
    start = time.perf_counter()
    err, comps = math.inf, None
    for attempt in range(args.restarts):
        def stop(_cp, rec_error):
            return bool(rec_error <= EPS / 2 or time.perf_counter() - start > args.als_budget)

        cp = parafac(dense, truth.rank, init="random", random_state=seed * 1000 + attempt,
                     n_iter_max=1000, tol=1e-12, callback=stop)
        err = float(np.linalg.norm(tl.cp_to_tensor(cp) - dense) / norm)
        comps = torch.from_numpy(np.asarray(cp.factors[0]).T.copy())
        if err <= EPS or time.perf_counter() - start > args.als_budget:
            break
    return err, comps


def methods_for(case: Case, args) -> tuple[list[str], dict[str, str]]:
    """The methods run on ``case`` and, for the others, why not (memory or rank bound)."""
    names = ["fit"] + (["fit-paper"] if args.paper else [])
    stops: dict[str, str] = {}
    dense_gib = 8 * case.dim**case.order / 2**30
    if case.rank <= spm_rank_bound(case.order, case.dim):
        names.append("spm")
    else:
        stops["spm"] = f"rank {case.rank} > bound {spm_rank_bound(case.order, case.dim)}"
    if case.kind != "dense":
        stops["spm-dense"] = (f"needs the {dense_gib:.3g} GiB array" if
                              dense_gib > args.memory_budget else "not timed (fits)")
    if dense_gib <= args.memory_budget and case.dim <= args.als_max_dim:
        names.append("parafac-restarts")
    else:
        stops["parafac-restarts"] = (f"needs the {dense_gib:.3g} GiB array"
                                     if dense_gib > args.memory_budget else f"d > {args.als_max_dim}")
    if case.dim > args.power_max_dim:
        stops["power-method"] = (f"d > {args.power_max_dim}: its adaptive shift solves a d x d "
                                 f"eigenproblem ({8 * case.dim**2 / 2**30:.2g} GiB) per iteration")
    elif case.dim**case.order > args.power_max_entries:
        stops["power-method"] = (f"not run: d^l = {case.dim**case.order:.2g} > "
                                 f"--power-max-entries (minutes per seed)")
    else:
        names.append("power-method")
    return names, stops


def summarize(head: dict, name: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if r["ok"]]
    nan = float("nan")
    routes = sorted({r["route"] for r in runs if r["route"]})
    row = {**head, "method": name, "success": f"{len(ok)}/{len(runs)}",
           "median_s": statistics.median(r["wall"] for r in ok) if ok else nan,
           "median_cpu_s": statistics.median(r["cpu"] for r in ok) if ok else nan,
           "routes": "+".join(routes) or "-"}
    if "peak_MiB" in runs[0]:
        row["peak_MiB"] = max(r["peak_MiB"] for r in runs)
    return row


def _stop_row(head: dict, name: str, why: str, implicit: bool) -> dict:
    nan = float("nan")
    row = {**head, "method": name, "success": f"stops: {why}", "median_s": nan,
           "median_cpu_s": nan, "routes": "-"}
    if implicit:
        row["peak_MiB"] = nan
    return row


def implicit_cell(case: Case, name: str, args) -> dict:
    """One implicit run in a fresh process, with its peak resident memory."""
    cmd = [sys.executable, str(Path(__file__)), "--one", json.dumps([asdict(case), name]),
           "--restarts", str(args.restarts), "--als-budget", str(args.als_budget)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                         "OMP_NUM_THREADS": "1"}, timeout=600)
    if out.returncode != 0:
        line = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"ok": False, "error": math.nan, "wall": math.nan, "cpu": math.nan, "route": None,
                "peak_MiB": math.nan, "failure": line[:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _one(spec: str, args) -> None:
    fields, name = json.loads(spec)
    case = Case(**fields)
    torch.set_num_threads(1)
    # Warm-up on a small target of the same kind (first calls, lazy imports) outside the timing.
    small, small_truth = make_target(Case(case.kind, case.order, 12, case.rank, "random", 1), 99)
    run_method(name, small, small_truth, 0, args)
    target, truth = make_target(case, 0)
    base = _peak_mib()
    rec = run_method(name, target, truth, 0, args)
    rec["peak_MiB"], rec["base_MiB"] = _peak_mib(), base
    print(json.dumps(rec))


def _peak_mib() -> float:
    """This process's peak resident memory: ``VmHWM`` of ``/proc/self/status`` (Linux), which,
    unlike ``ru_maxrss``, does not start from the parent's resident size at the fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a sample of cells (≤ 3 min)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per dense cell (10; quick 3)")
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--als-budget", type=float, default=10.0,
                    help="seconds of ALS (all restarts) per seed before it counts as failed")
    ap.add_argument("--als-max-dim", type=int, default=300)
    ap.add_argument("--memory-budget", type=float, default=2.0,
                    help="GiB: methods that need the dense array stop beyond it")
    ap.add_argument("--power-max-dim", type=int, default=None,
                    help="largest d of the power method (default 1000; --quick 300)")
    ap.add_argument("--power-max-entries", type=float, default=1e7,
                    help="the power method runs only where d^l is at most this")
    ap.add_argument("--paper", action="store_true", help="also time engine='paper'")
    ap.add_argument("--no-implicit", action="store_true")
    ap.add_argument("--implicit-only", action="store_true",
                    help="only the implicit cells (CSV bench_speed_implicit.csv)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--from-csv", default=None, metavar="CSV",
                    help="print the per-cell table and the verdict of a saved run, run nothing")
    args = ap.parse_args(argv)
    if args.from_csv is not None:
        import csv

        with open(args.from_csv, newline="") as fh:
            saved = list(csv.DictReader(fh))
        for r in saved:
            r["median_cpu_s"] = float(r["median_cpu_s"] or "nan")
        print_table(wide_table(saved))
        return _verdict(saved)
    if args.power_max_dim is None:
        args.power_max_dim = 300 if args.quick else 1000
    if args.one is not None:
        return _one(args.one, args)
    torch.set_num_threads(1)
    info = print_machine()
    load0 = os.getloadavg()
    print(f"# load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    seeds = args.seeds or (3 if args.quick else 10)
    # Warm-up (imports, first calls) outside every measurement.
    warm, wt = make_target(Case("dense", 3, 12, 3, "random", 1), 99)
    for name in ("fit", "spm", "parafac-restarts", "power-method"):
        run_method(name, warm, wt, 0, args)

    rows = []
    for case in [] if args.implicit_only else dense_grid(args.quick, seeds, args.memory_budget):
        head = {"kind": case.kind, "order": case.order, "dim": case.dim, "rank": case.rank,
                "components": case.components}
        names, stops = methods_for(case, args)
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for seed in range(case.seeds):
            target, truth = make_target(case, seed)
            # Every other seed in reverse order: no method always runs first (cold caches) or
            # right after another on the same target.
            for name in names if seed % 2 == 0 else names[::-1]:
                runs[name].append(run_method(name, target, truth, seed, args))
        rows += [summarize(head, n, r) for n, r in runs.items()]
        rows += [_stop_row(head, n, why, False) for n, why in stops.items()
                 if not why.startswith("not timed")]
        print(f"# {case} done (load {os.getloadavg()[0]:.2f})", flush=True)
    if not args.no_implicit:
        for case in implicit_grid(args.quick):
            head = {"kind": case.kind, "order": case.order, "dim": case.dim, "rank": case.rank,
                    "components": case.components}
            names, stops = methods_for(case, args)
            for name in names:
                rec = implicit_cell(case, name, args)
                row = summarize(head, name, [rec])
                if "failure" in rec:
                    row["success"] = f"fails: {rec['failure']}"
                rows.append(row)
            rows += [_stop_row(head, n, why, True) for n, why in stops.items()]
            print(f"# {case} done (load {os.getloadavg()[0]:.2f})", flush=True)
    print_table([r for r in rows if "peak_MiB" not in r])
    print("\n# per cell: success and median CPU seconds of each method")
    print_table(wide_table(rows))
    print("\n# implicit targets (one process per run; peak_MiB: its peak resident memory)")
    print_table([r for r in rows if r["dim"] >= 1000])
    _verdict(rows)
    load1 = os.getloadavg()
    print(f"# load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    info["load_average"] = f"{load0[0]:.2f}->{load1[0]:.2f}"
    write_csv("bench_speed" + ("_quick" if args.quick else "")
              + ("_implicit" if args.implicit_only else ""), rows, info)


def wide_table(rows: list[dict]) -> list[dict]:
    """One row per cell: each method's success and median CPU seconds, the route ``fit`` took,
    and the ratio of ``fit``'s median CPU time to SPM's."""
    cells: dict[tuple, dict] = {}
    for r in rows:
        key = (r["kind"], int(r["order"]), int(r["dim"]), int(r["rank"]), r["components"])
        cells.setdefault(key, {})[r["method"]] = r
    out = []
    for (kind, order, dim, rank, comps), sel in cells.items():
        row = {"kind": kind, "l": order, "d": dim, "r": rank, "components": comps}
        for name, short in (("fit", "fit"), ("spm", "spm"), ("parafac-restarts", "ALS"),
                            ("power-method", "power")):
            m = sel.get(name)
            if m is None or not str(m["success"])[0].isdigit():
                row[short] = "-" if m is None else "stops"
                continue
            t = float(m["median_cpu_s"])
            row[short] = m["success"] + ("" if math.isnan(t) else f", {t:.3g} s")
        f, p = sel.get("fit"), sel.get("spm")
        row["route"] = f["routes"] if f is not None else "-"
        ratio = (float(f["median_cpu_s"]) / float(p["median_cpu_s"])
                 if f is not None and p is not None and str(p["success"])[0].isdigit()
                 and float(p["median_cpu_s"]) > 0 else math.nan)
        row["fit/spm"] = "-" if math.isnan(ratio) else f"{ratio:.2f}"
        out.append(row)
    return out


def _verdict(rows: list[dict]) -> None:
    """Issue 21's check per cell: ``fit``'s median time at most SPM's and its success rate at
    least SPM's wherever SPM succeeds; cells SPM cannot do where ``fit`` succeeds. CPU seconds
    (this process), which a shared machine's load disturbs less than wall time."""
    print("\n# issue 21: fit (default) vs spm, per cell (median CPU s; ratio fit/spm)")
    cells = {}
    for r in rows:
        key = (r["kind"], r["order"], r["dim"], r["rank"], r["components"])
        cells.setdefault(key, {})[r["method"]] = r
    for key, sel in cells.items():
        f, s = sel.get("fit"), sel.get("spm")
        if f is None:
            continue
        fs = f["success"]
        if s is None or "/" not in s["success"] or s["success"].startswith("0/"):
            why = s["success"] if s is not None else "spm not run"
            print(f"{key}: fit {fs} ({f['median_cpu_s']:.3g} s); spm {why}")
            continue
        frac = [int(x) / int(y) for x, y in (v["success"].split("/") for v in (f, s))]
        ratio = f["median_cpu_s"] / s["median_cpu_s"]
        ok = ratio <= 1 and frac[0] >= frac[1]
        print(f"{key}: fit {fs} {f['median_cpu_s']:.3g} s vs spm {s['success']} "
              f"{s['median_cpu_s']:.3g} s: ratio {ratio:.2f} -> {'ahead' if ok else 'NOT ahead'}")


if __name__ == "__main__":
    main()
