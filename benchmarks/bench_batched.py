"""Batched throughput: run-steps per second of ``fit_batched`` against a loop of single fits.

Each run is a ``beyond-lazy`` fit of an order-3 rank-5 random target of dimension ``d`` with
``m`` components, for a fixed number of steps (``tol=0``, no extraction), so that both sides do
exactly the same steps. The sequential rate does not depend on ``B``; it is measured on a few runs
right before each batched measurement (the pair shares the machine's load of the moment; the
machine may be shared), and each is the median of ``--repeats`` timings.

    python benchmarks/bench_batched.py            # CPU: m=d=50, B = 1 … 1024, 200 steps per run
    python benchmarks/bench_batched.py --full     # B up to 4096, m=d in {50, 100}; GPU if present
"""

from __future__ import annotations

import argparse

import torch
from _common import cuda_or_skip, median_time, print_machine, print_table, write_csv

import overtensor as ot
from overtensor.tensors.batched import fit_batched
from overtensor.tensors.config import split_options

FIXED = dict(tol=0.0, extract=False, patience=10**6)


def targets(order: int, dim: int, rank: int, n: int, device: str, dtype) -> list:
    return [ot.random_target(order, dim, rank, random_state=s, device=device, dtype=dtype)
            for s in range(n)]


def sequential_rate(md: int, steps: int, runs: int, repeats: int, device: str, dtype,
                    engine: str = "autograd") -> float:
    """Run-steps/s of a loop of single ``fit`` calls. ``engine="autograd"`` is the general
    autograd + ``torch.optim`` loop; ``"auto"`` is what ``fit`` does for plain GD (the batched
    engine with a batch of one)."""
    ts = targets(3, md, 5, runs, device, dtype)

    def loop():
        for s, t in enumerate(ts):
            ot.fit(t, md, random_state=s, **split_options(
                {**FIXED, "max_steps": steps, "engine": engine}))

    return runs * steps / median_time(loop, repeats, device)


def batched_rate(md: int, B: int, steps: int, repeats: int, device: str, dtype) -> float:
    ts = targets(3, md, 5, B, device, dtype)
    seeds = list(range(B))

    def batch():
        fit_batched(ts, md, random_states=seeds, max_steps=steps, **FIXED)

    # Large batches amortize one-time costs themselves: no warm-up call for them.
    return B * steps / median_time(batch, repeats, device, warmup=1 if B < 256 else 0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="larger grid (B up to 4096, m=d up to 100)")
    ap.add_argument("--steps", type=int, default=200, help="steps per run (default 200)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats; the median is kept")
    ap.add_argument("--dtype", default="float64", help="float64 (CPU default) or float32")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matrix products on CUDA")
    ap.add_argument("--batches", type=int, nargs="+", help="batch sizes B (overrides the grid)")
    ap.add_argument("--sizes", type=int, nargs="+", help="values of m = d (overrides the grid)")
    args = ap.parse_args(argv)
    info = print_machine()
    dtype = getattr(torch, args.dtype)
    sizes = [50, 100] if args.full else [50]
    batches = [1, 4, 16, 64, 256, 1024, 4096] if args.full else [1, 4, 16, 64, 256, 1024]
    sizes, batches = args.sizes or sizes, args.batches or batches
    devices = ["cpu"]
    if cuda_or_skip("GPU part of the batched benchmark"):
        devices.append("cuda")
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    rows = []
    for device in devices:
        dt = dtype if device == "cpu" else torch.float32
        for md in sizes:
            for B in batches:
                n_seq = 4 if device == "cpu" else 2
                seq = sequential_rate(md, args.steps, n_seq, args.repeats, device, dt)
                seq1 = sequential_rate(md, args.steps, n_seq, args.repeats, device, dt, "auto")
                rate = batched_rate(md, B, args.steps, args.repeats, device, dt)
                rows.append({"device": device, "dtype": str(dt).replace("torch.", ""), "m=d": md,
                             "B": B, "steps": args.steps, "sequential_run_steps_per_s": seq,
                             "sequential_B1_run_steps_per_s": seq1,
                             "batched_run_steps_per_s": rate, "speedup": rate / seq,
                             "speedup_vs_B1_loop": rate / seq1})
                print(f"# {device} m=d={md} B={B}: {rate:.4g} run-steps/s ({rate / seq:.1f}x the "
                      f"autograd loop, {rate / seq1:.1f}x a loop of B=1 fits)", flush=True)
    print_table(rows)
    name = "bench_batched" + ("_full" if args.full else "")
    if args.sizes:
        name += "_m" + "-".join(map(str, args.sizes))
    write_csv(name, rows, info)


if __name__ == "__main__":
    main()
