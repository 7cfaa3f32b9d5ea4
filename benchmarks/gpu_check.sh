#!/usr/bin/env bash
# The GPU checks of issue 6 as one short script, for a machine with CUDA (none was available when
# the rest was measured). Run from the repository root after `make venv` with a CUDA build of torch:
#     bash benchmarks/gpu_check.sh            # ~5 minutes on one GPU
# It prints: the CUDA tests (every algorithm and regime on CUDA), batched throughput against one fit
# at a time (issue: >= 1000x), and the FLOP rate of large fits against fp32/TF32 matmul (>= 1/2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
$PY - <<'PY'
import overtensor as ot
t = ot.random_target(3, 100, 10, random_state=0, device="cuda")
for method in ("beyond-lazy", "gd", "exact-rank", "deflation", "power-method"):
    r = ot.fit(t, None if method in ("exact-rank", "power-method") else 50, method, random_state=0, max_steps=3000)
    print(f"{method:12s} cuda rel.err {r.relative_error:.2e} steps {r.steps} {r.seconds:.2f}s")
for regime in ("lazy", "random-features", "alpha-scaled"):
    r = ot.fit(ot.random_target(3, 20, 3, random_state=0, device="cuda"), 20, regime=regime,
               random_state=0, max_steps=500)
    print(f"{regime:16s} cuda rel.err {r.relative_error:.3f}")
PY
$PY -m pytest -q tests/test_batched.py -k cuda
cd benchmarks
$PY bench_batched.py --full
$PY bench_batched.py --full --tf32
$PY bench_large.py --full
