"""The papers whose claims the built-in experiments test: short citation and link."""

from __future__ import annotations

#: Wang, Wu, Lee, Ma, Ge (NeurIPS 2020): lazy training needs m = Ω(d^{l−1}); a variant of GD
#: succeeds with m polynomial in r and logarithmic in d.
WANG_2020 = ("Wang, Wu, Lee, Ma, Ge: Beyond Lazy Training for Over-parameterized Tensor "
             "Decomposition (NeurIPS 2020)", "https://arxiv.org/abs/2010.11356")
#: Ge, Ren, Wang, Zhou (NeurIPS 2021): gradient flow fits components one at a time, largest first.
GE_2021 = ("Ge, Ren, Wang, Zhou: Understanding Deflation Process in Over-parametrized Tensor "
           "Decomposition (NeurIPS 2021)", "https://arxiv.org/abs/2106.06573")


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of ``k`` successes in ``n`` runs
    (:func:`overtensor.experiments.plots.wilson_interval`
    without importing matplotlib)."""
    import math

    if n == 0:
        return 0.0, 1.0
    z = 1.96
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)
