"""The moment target's two exact paths (issue 10, item 8): implicit ``O(n² d)`` vs dense ``n d^l``.

For ``n`` samples in ``d`` dimensions, :class:`overtensor.MomentTarget` either never forms the
``d^l`` moment (``sq_norm`` in ``O(n² d)``, ``values``/``contract`` of ``m`` rows in ``O(m n d)``)
or forms it once in ``O(n d^l)`` and uses it (``d^l``, ``m d^l``). ``dense=None`` (the default)
takes the dense path when ``d^{l−1} < n`` and ``d^l ≤ max_dense_entries``. This script times
``sq_norm`` (a fresh target each repeat: the result is cached) and one ``contract`` of ``m = 50``
rows on both paths, and prints the relative difference of the two ``sq_norm`` values.

    python benchmarks/bench_moment.py                  # n = 20000, d = 10, l = 3 (issue 10)
    python benchmarks/bench_moment.py --n 2000 --dim 30 --order 3
"""

from __future__ import annotations

import argparse

import torch
from _common import median_time, print_machine, print_table, write_csv

import overtensor as ot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    info = print_machine()
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(args.n, args.dim, generator=gen, dtype=torch.float64)
    V = torch.randn(50, args.dim, generator=gen, dtype=torch.float64)
    rows, values = [], {}
    for path, dense in (("implicit", False), ("auto", None)):
        target = ot.MomentTarget(X, args.order, dense=dense)
        sq_s = median_time(lambda d=dense: ot.MomentTarget(X, args.order, dense=d).sq_norm(),
                           repeats=args.repeats)
        values[path] = float(target.sq_norm())
        contract_s = median_time(lambda t=target: t.contract(V), repeats=max(3, args.repeats))
        rows.append({"path": path, "uses_dense": target.uses_dense, "n": args.n, "d": args.dim,
                     "order": args.order, "sq_norm_s": sq_s, "contract_m50_s": contract_s})
    print_table(rows)
    diff = abs(values["auto"] - values["implicit"]) / values["implicit"]
    print(f"sq_norm: implicit {values['implicit']:.12e}, auto {values['auto']:.12e}, "
          f"relative difference {diff:.1e}")
    write_csv("bench_moment", rows, info)


if __name__ == "__main__":
    main()
