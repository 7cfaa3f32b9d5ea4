"""Large fits: achieved FLOP rate of one gradient step as a fraction of the matrix-product rate.

One step of a fit with ``m`` components in dimension ``d`` (order 3, rank-10 target, ``homogeneous``
model) costs about ``4 m² d + 4 m r d`` floating-point operations in matrix products (``G = V Vᵀ``,
``(G^{∘2}) (a∘V)``, and the target's ``V Uᵀ`` and contraction); elementwise work is ``O(m² + m d)``.
The achieved rate ``(4 m² d + 4 m r d) / step time`` is compared with the rate of a plain square
``torch.mm`` (fp32, and TF32 where the GPU has it) measured in the same run. Two step
implementations are timed:

* ``autograd`` — the step of :func:`overtensor.fit` (Gram-identity loss, autograd, SGD);
* ``closed_form`` — the closed-form gradient of :mod:`overtensor.tensors.gradients` and an in-place update.

On a GPU: ``m`` up to 16384, ``d`` up to 2048 (``--full``), float32, with and without TF32.
Without CUDA a reduced CPU grid runs instead and says so.

    python benchmarks/bench_large.py
    python benchmarks/bench_large.py --full
"""

from __future__ import annotations

import argparse

import torch
from _common import cuda_or_skip, median_time, print_machine, print_table, write_csv

import overtensor as ot
from overtensor.tensors.gradients import loss_and_grad
from overtensor.tensors.loss import half_sq_distance
from overtensor.tensors.models import init_params, model_cp

RANK = 10


def matmul_rate(n: int, device: str, tf32: bool, repeats: int) -> float:
    """FLOP/s of an ``n × n`` fp32 matrix product."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    gen = torch.Generator(device=device).manual_seed(0)
    A = torch.randn(n, n, device=device, generator=gen)
    B = torch.randn(n, n, device=device, generator=gen)
    reps = 10 if device == "cuda" else 2

    def run():
        for _ in range(reps):
            A @ B

    return 2 * n**3 * reps / median_time(run, repeats, device)


def step_rates(m: int, d: int, device: str, tf32: bool, repeats: int, steps: int) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    target = ot.random_target(3, d, RANK, random_state=0, dtype=torch.float32, device=device)
    sq = target.sq_norm()
    scale = 1 / sq.sqrt()
    W0 = init_params("homogeneous", m, d, 0.1, torch.Generator().manual_seed(0), torch.float32,
                     device)["W"]
    W = W0.clone().requires_grad_(True)
    opt = torch.optim.SGD([W], lr=1e-3)
    mu = 1e-3

    def autograd_steps():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            a, V = model_cp("homogeneous", {"W": W})
            loss = half_sq_distance(a, V, target, scale, sq) + 0.5 * mu * (W**2).sum()
            loss.backward()
            opt.step()

    P = {"W": W0.clone()}

    def closed_steps():
        for _ in range(steps):
            _, g = loss_and_grad("homogeneous", P, None, target, scale, sq, mu, with_loss=False)
            P["W"].sub_(1e-3 * g["W"])

    flops = (4 * m * m * d + 4 * m * RANK * d) * steps
    return {"autograd_flops": flops / median_time(autograd_steps, repeats, device),
            "closed_form_flops": flops / median_time(closed_steps, repeats, device),
            "autograd_step_ms": 1e3 * median_time(autograd_steps, 1, device, warmup=0) / steps}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="m up to 16384, d up to 2048 (GPU)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    info = print_machine()
    if cuda_or_skip("GPU large-fit benchmark"):
        device, flavours = "cuda", [False, True]
        ms = [1024, 4096, 16384] if args.full else [1024, 4096]
        ds = [512, 2048] if args.full else [512]
        mm_n, steps = 4096, 10
    else:
        print("# Running the reduced CPU grid instead (float32, one thread per process setting).")
        device, flavours = "cpu", [False]
        ms = [256, 1024, 2048] if args.full else [256, 1024]
        ds = [128, 512, 1024] if args.full else [128, 512]
        mm_n, steps = 1024, 3
    rows = []
    for tf32 in flavours:
        peak = matmul_rate(mm_n, device, tf32, args.repeats)
        label = "tf32" if tf32 else "fp32"
        print(f"# {device} {label} matmul {mm_n}x{mm_n}: {peak / 1e9:.1f} GFLOP/s", flush=True)
        for m in ms:
            for d in ds:
                r = step_rates(m, d, device, tf32, args.repeats, steps)
                rows.append({"device": device, "precision": label, "m": m, "d": d,
                             "autograd_step_ms": r["autograd_step_ms"],
                             "matmul_GFLOPs": peak / 1e9,
                             "autograd_GFLOPs": r["autograd_flops"] / 1e9,
                             "closed_form_GFLOPs": r["closed_form_flops"] / 1e9,
                             "autograd_fraction": r["autograd_flops"] / peak,
                             "closed_form_fraction": r["closed_form_flops"] / peak})
                print(f"# m={m} d={d}: closed form {rows[-1]['closed_form_fraction']:.2f} of "
                      f"the {label} matmul rate", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    print_table(rows)
    write_csv("bench_large" + ("_full" if args.full else ""), rows, info)


if __name__ == "__main__":
    main()
