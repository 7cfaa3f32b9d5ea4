"""Per-step time of the implicit loss + gradient against a dense-autograd implementation.

For a grid of ``(order, dim, width)`` and a rank-5 random target, one step is loss + gradient of
``½‖Σ_i a_i v_i^{⊗l} − T*‖²`` for the ``homogeneous`` model:

* ``implicit`` — the library's loss (Gram identity, :func:`overtensor.tensors.loss.half_sq_distance`)
  with autograd, as in :func:`overtensor.fit`; never forms a ``d^l`` array;
* ``closed_form`` — the same loss and gradient in closed form (:mod:`overtensor.tensors.gradients`, used
  by the batched engine);
* ``dense`` — the straightforward way: form the model tensor with ``einsum`` and the dense target
  ``T*``, take ``½‖T(W) − T*‖²`` and autograd. Costs ``O(m d^l)`` time and ``O(d^l)`` memory.

Timings are medians over ``--repeats`` blocks (the machine may be shared); float64, one thread.

    python benchmarks/bench_loss.py            # orders 3, 4; d^l up to ~2.6e6
    python benchmarks/bench_loss.py --full     # d^l up to ~1.3e7, width up to 200
"""

from __future__ import annotations

import argparse
import string
import time

import torch
from _common import cuda_or_skip, median_time, print_machine, print_table, write_csv

import overtensor as ot
from overtensor.tensors.gradients import loss_and_grad
from overtensor.tensors.loss import half_sq_distance
from overtensor.tensors.models import init_params, model_cp


def dense_model(a: torch.Tensor, V: torch.Tensor, order: int) -> torch.Tensor:
    """``Σ_i a_i v_i^{⊗l}`` as a dense ``d^l`` array."""
    letters = string.ascii_lowercase[:order]
    spec = ",".join(f"z{c}" for c in letters)
    return torch.einsum(f"z,{spec}->{letters}", a, *([V] * order))


def step_times(order: int, dim: int, width: int, repeats: int, device: str, dtype) -> dict:
    target = ot.random_target(order, dim, 5, random_state=0, dtype=dtype, device=device)
    dense_target = target.truth.to_dense()
    sq = target.sq_norm()
    W0 = init_params("homogeneous", width, dim, 0.5, torch.Generator().manual_seed(1), dtype,
                     device)["W"]
    W = W0.clone().requires_grad_(True)

    def implicit():
        W.grad = None
        a, V = model_cp("homogeneous", {"W": W})
        half_sq_distance(a, V, target, 1.0, sq).backward()

    def closed():
        loss_and_grad("homogeneous", {"W": W0}, None, target, 1.0, sq)

    def dense():
        W.grad = None
        a, V = model_cp("homogeneous", {"W": W})
        (0.5 * ((dense_model(a, V, order) - dense_target) ** 2).sum()).backward()

    # Check the three agree before timing them.
    implicit()
    g_implicit = W.grad.clone()
    dense()
    g_dense = W.grad.clone()
    _, g_closed = loss_and_grad("homogeneous", {"W": W0}, None, target, 1.0, sq)
    err = max(float((g_dense - g_implicit).norm() / g_dense.norm()),
              float((g_closed["W"] - g_implicit).norm() / g_implicit.norm()))

    def per_step(fn) -> float:
        # Enough iterations per timed block to last ~0.2 s.
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-6)
        n = max(1, min(1000, int(0.2 / once)))

        def block():
            for _ in range(n):
                fn()

        return median_time(block, repeats, device) / n

    t_imp, t_closed, t_dense = per_step(implicit), per_step(closed), per_step(dense)
    return {"device": device, "order": order, "dim": dim, "width": width, "d^l": dim**order,
            "implicit_ms": 1e3 * t_imp, "closed_form_ms": 1e3 * t_closed, "dense_ms": 1e3 * t_dense,
            "dense_over_implicit": t_dense / t_imp, "grad_rel_diff": err}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="larger grid")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    info = print_machine()
    if args.full:
        grid = [(3, d, m) for d in (25, 50, 100, 200) for m in (10, 50, 200)]
        grid += [(4, d, m) for d in (10, 20, 40, 60) for m in (10, 50, 200)]
    else:
        grid = [(3, d, m) for d in (25, 50, 100) for m in (10, 50)]
        grid += [(4, d, m) for d in (10, 20, 40) for m in (10, 50)]
    devices = ["cpu"] + (["cuda"] if cuda_or_skip("GPU rows of the loss benchmark") else [])
    rows = []
    for device in devices:
        dtype = torch.float64 if device == "cpu" else torch.float32
        for order, dim, width in grid:
            rows.append(step_times(order, dim, width, args.repeats, device, dtype))
            r = rows[-1]
            print(f"# {device} l={order} d={dim} m={width}: implicit {r['implicit_ms']:.3f} ms, "
                  f"dense {r['dense_ms']:.3f} ms", flush=True)
    print_table(rows)
    write_csv("bench_loss" + ("_full" if args.full else ""), rows, info)


if __name__ == "__main__":
    main()
