"""Cases users bring (issue 22): rank equal to the dimension and rank under noise.

* rank = dimension: order 3, ``d = r = 8``, unit Gaussian components, weights ``U(0.5, 1.5)``,
  targets ``random_target(3, 8, 8, weights=..., random_state=t)`` for ``t = 0 … 4`` (weights from
  ``torch.Generator().manual_seed(1000 + t)``), ``fit(target, width=m, random_state=0)`` at
  ``m = 16, 32``, with and without ``rank=8``: components recovered (``|cos| ≥ 0.99``), terms
  returned, relative error, stop reason, number of warnings;
* signs: dense order-4 targets of unknown sign with weights ``[1, −1, 0.8, −0.7]``, ``exact-rank``;
* rank under noise: ``random_target(3, 10, 3, noise=ε, random_state=s)``, ``ε ∈ {0, 1e-3, 1e-2,
  5e-2}``, ``s = 0, 1, 2``, ``fit(target, width=12, random_state=0)``: terms returned, components
  recovered, ``info["rank_support"]["supported"]``, relative error. One thread, about 1.5 min.

    python benchmarks/bench_trusted_answers.py
"""

from __future__ import annotations

import time

import torch

import overtensor as ot
from overtensor.tensors.config import split_options


def rank_equals_dimension(t: int) -> ot.CPTarget:
    g = torch.Generator().manual_seed(1000 + t)
    weights = 0.5 + torch.rand(8, generator=g, dtype=torch.float64)
    return ot.random_target(3, 8, 8, weights=weights, random_state=t)


def signs() -> None:
    """Dense even-order targets of unknown sign (the signs rule of docs/method.md, step 2)."""
    print("signs: dense order-4 targets, weights [1, -1, 0.8, -0.7], d = 8, exact-rank, seeds 0-7")
    ok = 0
    for s in range(8):
        planted = ot.random_target(4, 8, 4, weights=torch.tensor([1.0, -1.0, 0.8, -0.7]),
                                   random_state=s)
        res = ot.fit(ot.DenseTarget(planted.truth.to_dense()), method="exact-rank", width=4,
                     random_state=s)
        ok += ot.recovery(res.cp, planted).all_recovered
    print(f"  all components recovered: {ok}/8")
    ok = sum(ot.fit(ot.random_target(3, 20, 5, random_state=100 + s), method="exact-rank",
                    random_state=s).recovery().all_recovered for s in range(24))
    print(f"odd order: exact-rank on random_target(3, 20, 5, random_state=100+s), s = 0-23: "
          f"{ok}/24 recovered")


def main() -> None:
    torch.set_num_threads(1)
    signs()
    print("rank = dimension (order 3, d = r = 8), 5 targets, seed 0")
    for kw in (dict(width=16), dict(width=32), dict(width=16, rank=8), dict(width=32, rank=8)):
        t0 = time.perf_counter()
        rows = []
        for t in range(5):
            res = ot.fit(rank_equals_dimension(t), random_state=0, **split_options(kw))
            rows.append(f"{res.recovery().recovered}/8 {res.cp.rank}t {res.relative_error:.1e} "
                        f"{res.stop_reason} w{len(res.warnings)}")
        print(f"  {kw}: " + " | ".join(rows) + f"  ({time.perf_counter() - t0:.1f} s)")
    print("rank under noise (order 3, d = 10, r = 3, width 12)")
    for noise in (0.0, 1e-3, 1e-2, 5e-2):
        rows = []
        for s in range(3):
            target = ot.random_target(3, 10, 3, noise=noise, random_state=s)
            res = ot.fit(target, width=12, random_state=0)
            sup = res.info.get("rank_support", {})
            rows.append(f"{res.cp.rank}t {res.recovery().recovered}/3 "
                        f"supported {sup.get('supported', '-')} of {sup.get('found', '-')} "
                        f"{res.relative_error:.1e}")
        print(f"  noise {noise:g}: " + " | ".join(rows))


if __name__ == "__main__":
    main()
