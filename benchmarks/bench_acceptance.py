"""Acceptance scenario of the core method (prints a table; not a test).

For order ∈ {3, 4}, d = 100, r = 10, m = 50, random unit components, equal and geometric (0.8)
weights: how many seeds reach relative error ≤ 1e-4 *and* recover all components (|cos| ≥ 0.99),
and how long each fit takes. Also the large case d = 1000, r = 20, m = 100 with peak memory.

    .venv/bin/python benchmarks/bench_acceptance.py [--seeds 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import statistics

import torch

import overtensor as ot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--engine", default="auto", choices=("auto", "paper"),
                        help="fit's engine: the default route (auto) or the paper's schedule")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), engine={args.engine}")
    print("| order | weights | success (≤1e-4 and all recovered) | median s | max s | median steps |")
    print("|---|---|---|---|---|---|")
    for order in (3, 4):
        for weights in ("equal", "geometric"):
            ok, secs, steps = 0, [], []
            for seed in range(args.seeds):
                target = ot.random_target(order=order, dim=100, rank=10, weights=weights,
                                          random_state=seed)
                result = ot.fit(target, width=50, random_state=seed,
                                runtime=ot.Runtime(engine=args.engine))
                ok += result.relative_error <= 1e-4 and result.recovery().all_recovered
                secs.append(result.seconds)
                steps.append(result.steps)
            print(f"| {order} | {weights} | {ok}/{args.seeds} | {statistics.median(secs):.2f} | "
                  f"{max(secs):.2f} | {int(statistics.median(steps))} |", flush=True)
    if args.skip_large:
        return
    target = ot.random_target(order=3, dim=1000, rank=20, random_state=0)
    result = ot.fit(target, width=100, random_state=0, runtime=ot.Runtime(engine=args.engine))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nd=1000, r=20, m=100, order 3: relative error {result.relative_error:.2e}, "
          f"recovered {result.recovery().recovered}/20, {result.seconds:.2f} s, "
          f"peak RSS {peak:.0f} MiB (a dense d^3 float64 array alone would be {8e9 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
