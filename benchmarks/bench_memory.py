"""Memory check of issue 2: a large implicit fit never forms the ``d^l`` array.

``dim = 1000, rank = 20, width = 100, order = 3`` must converge to ``≤ 1e-4`` on the CPU with a
peak resident memory far below ``8·d³`` bytes (8 GB, the float64 dense tensor). The peak resident
set size of this process (``resource.getrusage``, which includes the Python interpreter and
PyTorch) is compared with that bound.

    python benchmarks/bench_memory.py                 # the issue's size
    python benchmarks/bench_memory.py --full          # also dim = 2000 and 4000 (fresh process each)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from _common import print_machine, print_table, write_csv


def peak_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def one(order: int, dim: int, rank: int, width: int, seed: int) -> dict:
    """One fit in this process; returns its metrics and the peak RSS before and after."""
    import overtensor as ot

    target = ot.random_target(order, dim, rank, random_state=seed)
    before = peak_rss_bytes()
    # The paper's gradient method (what docs/performance.md measured); bench_speed.py measures the
    # default route's memory on implicit targets.
    result = ot.fit(target, width, random_state=seed, runtime=ot.Runtime(engine="paper"))
    after = peak_rss_bytes()
    dense = 8 * dim**order
    return {"order": order, "dim": dim, "rank": rank, "width": width, "seed": seed,
            "relative_error": result.relative_error, "recovered": result.recovery().recovered,
            "steps": result.steps, "seconds": result.seconds,
            "peak_rss_before_fit_MB": before / 2**20, "peak_rss_MB": after / 2**20,
            "dense_float64_MB": dense / 2**20, "peak_over_dense": after / dense}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also dim = 2000 and 4000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one size in this process
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(*json.loads(args.one))))
        return
    info = print_machine()
    sizes = [(3, 1000, 20, 100)] + ([(3, 2000, 20, 100), (3, 4000, 20, 100)] if args.full else [])
    rows = []
    for order, dim, rank, width in sizes:
        # A fresh process per size, so that each peak RSS belongs to that fit alone.
        out = subprocess.run([sys.executable, __file__, "--one",
                              json.dumps([order, dim, rank, width, args.seed])],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"# dim={dim}: rel.err {rows[-1]['relative_error']:.2e}, "
              f"peak RSS {rows[-1]['peak_rss_MB']:.0f} MB", flush=True)
    print_table(rows, ["order", "dim", "rank", "width", "relative_error", "recovered", "steps",
                       "seconds", "peak_rss_MB", "dense_float64_MB", "peak_over_dense"])
    write_csv("bench_memory" + ("_full" if args.full else ""), rows, info)


if __name__ == "__main__":
    main()
