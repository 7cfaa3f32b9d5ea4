"""From an over-parameterized solution to a clean rank-``r'`` CP (docs/theory/tensors.md §5, extraction and
polish).

An over-parameterized fit splits one true component over several rows and leaves small
leftovers. :func:`merge_components` groups rows whose directions agree (sign-aware), sums their
contributions and drops negligible ones; :func:`polish` runs a few exact-rank L-BFGS steps with
free coefficients and ``μ = 0`` in float64.
"""

from __future__ import annotations

import numpy as np
import torch

from overtensor.optim.lbfgs import lbfgs_minimize
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.loss import half_sq_distance, relative_error
from overtensor.tensors.targets import Target

#: Most rows merged by the NumPy path of :func:`merge_components` (its ``n × n`` cosine matrix).
NUMPY_MERGE_ROWS = 2048


def merge_components(
    a: torch.Tensor,
    V: torch.Tensor,
    order: int,
    *,
    merge_cos: float = 0.99,
    drop_tol: float = 1e-3,
) -> SymmetricCP:
    """Merge rows with ``|cos| ≥ merge_cos`` and drop terms below ``drop_tol · max|λ|``.

    Rows are normalized first (their norms folded into the coefficients as ``‖v‖^l``). A row
    joins the cluster of the first (largest) representative it is aligned with; for odd ``l``,
    ``−v`` with weight ``−a`` is the same term, for even ``l`` so is ``−v`` with weight ``a``.
    The merged direction is the ``|a|``-weighted mean of the aligned rows.
    """
    a = a.detach()
    V = V.detach()
    if (V.device.type != "cpu" or V.dtype not in (torch.float32, torch.float64)
            or V.shape[0] > NUMPY_MERGE_ROWS):
        return _merge_torch(a, V, order, merge_cos=merge_cos, drop_tol=drop_tol)
    # NumPy on the CPU for small inputs (the compressed cores, the usual widths): the greedy loop
    # below runs one small operation after another, where NumPy's ~1 µs per call beats torch's
    # ~5-10 µs. Same clusters as _merge_torch (tests/test_fit.py); it forms the n × n cosine
    # matrix, so large inputs keep the torch loop (O(n·d) memory).
    an, Vn = a.numpy(), V.numpy()
    norms = np.sqrt((Vn * Vn).sum(-1))
    w = an * norms**order
    Vbar = Vn / np.maximum(norms, np.finfo(Vn.dtype).tiny)[:, None]
    big = np.abs(w) >= 1e-3 * drop_tol * max(float(np.abs(w).max(initial=0.0)),
                                             np.finfo(Vn.dtype).tiny)
    w, Vbar = w[big], Vbar[big]
    orderi = np.argsort(-np.abs(w), kind="stable")
    w, Vbar = w[orderi], Vbar[orderi]
    n, d = Vbar.shape
    if n == 0:
        return SymmetricCP(V.new_zeros(0), V.new_zeros(0, V.shape[-1]), order)
    C = Vbar @ Vbar.T
    aligned_with = np.abs(C) >= merge_cos
    np.fill_diagonal(aligned_with, True)
    # Greedy clustering: the heaviest row not yet assigned becomes a representative and takes
    # every unassigned row aligned with it (so a row joins the heaviest representative it is
    # aligned with); then each cluster's sums at once.
    rows = aligned_with.tolist()  # plain Python lists: the loop is O(n²) cheap steps
    labels = [-1] * n
    reps: list[int] = []
    for k in range(n):
        if labels[k] >= 0:
            continue
        row = rows[k]
        for j in range(k, n):  # rows before k are all assigned already
            if labels[j] < 0 and row[j]:
                labels[j] = len(reps)
        reps.append(k)
    label = np.asarray(labels, dtype=np.intp)
    sgn = np.where(C[np.asarray(reps)[label], np.arange(n)] < 0, -1.0, 1.0).astype(w.dtype)
    aligned = w * (sgn if order % 2 == 1 else 1.0)
    lam = torch.from_numpy(np.bincount(label, weights=aligned, minlength=len(reps)).astype(w.dtype))
    sums = np.zeros((len(reps), d), dtype=w.dtype)
    np.add.at(sums, label, (np.abs(aligned) * sgn)[:, None] * Vbar)
    U = torch.from_numpy(sums)
    U = U / U.norm(dim=-1, keepdim=True)
    keep = lam.abs() >= drop_tol * lam.abs().max()
    return SymmetricCP(lam[keep], U[keep], order).canonical()


def _merge_torch(a: torch.Tensor, V: torch.Tensor, order: int, *, merge_cos: float,
                 drop_tol: float) -> SymmetricCP:
    """:func:`merge_components` in torch (devices other than the CPU, other dtypes)."""
    norms = V.norm(dim=-1)
    w = a * norms**order
    Vbar = V / norms.clamp_min(torch.finfo(V.dtype).tiny).unsqueeze(-1)
    big = w.abs() >= 1e-3 * drop_tol * w.abs().max().clamp_min(torch.finfo(V.dtype).tiny)
    w, Vbar = w[big], Vbar[big]
    orderi = torch.argsort(w.abs(), descending=True)
    w, Vbar = w[orderi], Vbar[orderi]
    weights: list[torch.Tensor] = []
    sums: list[torch.Tensor] = []
    free = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
    while free.any():
        k = int(torch.nonzero(free)[0])
        cos = Vbar @ Vbar[k]
        members = free & (cos.abs() >= merge_cos)
        members[k] = True
        sgn = torch.where(cos[members] < 0, -1.0, 1.0).to(w.dtype)
        aligned = w[members] * (sgn if order % 2 == 1 else 1.0)
        weights.append(aligned.sum())
        sums.append(((aligned.abs() * sgn).unsqueeze(-1) * Vbar[members]).sum(0))
        free &= ~members
    if not weights:
        return SymmetricCP(V.new_zeros(0), V.new_zeros(0, V.shape[-1]), order)
    lam = torch.stack(weights)
    U = torch.stack(sums)
    U = U / U.norm(dim=-1, keepdim=True)
    keep = lam.abs() >= drop_tol * lam.abs().max()
    return SymmetricCP(lam[keep], U[keep], order).canonical()


def polish(
    cp: SymmetricCP,
    target: Target,
    *,
    max_iter: int = 200,
) -> SymmetricCP:
    """Exact-rank refinement: L-BFGS on ``½‖Σ_j c_j ū_j^{⊗l} − T*‖²`` (free ``c``, ``u``), float64.

    Returns the polished CP when it lowers the error, otherwise the input unchanged.
    """
    if cp.rank == 0 or max_iter <= 0:
        return cp
    t64 = target.float64()
    sq = t64.sq_norm()
    scale = 1.0 / sq.sqrt()
    c = cp.weights.detach().to(torch.float64) * scale
    U = cp.components.detach().to(torch.float64)

    def loss(c, U):
        return half_sq_distance(c, U / U.norm(dim=-1, keepdim=True), t64, scale, sq)

    before = float(relative_error(c, U / U.norm(dim=-1, keepdim=True), t64, scale))
    # SciPy's L-BFGS, not torch.optim.LBFGS: any torch.optim optimizer imports torch._dynamo (~1 s).
    c, U = lbfgs_minimize(loss, [c, U], max_iter=max_iter)
    with torch.no_grad():
        Ubar = U / U.norm(dim=-1, keepdim=True)
        if not torch.isfinite(Ubar).all() or not torch.isfinite(c).all():
            return cp
        after = float(relative_error(c, Ubar, t64, scale))
    if not after < before:
        return cp
    dt, dev = cp.weights.dtype, cp.weights.device
    return SymmetricCP((c.detach() / scale).to(dev, dt), Ubar.detach().to(dev, dt),
                       cp.order).canonical()
