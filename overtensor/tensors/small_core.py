"""Gradient steps of the homogeneous model on a *small* target in NumPy (the compressed core).

After compression (:mod:`overtensor.tensors.compression`) the over-parameterized fit runs on a core of
dimension ``k`` (a little above the rank, e.g. ``k = 5``) with ``m = 20`` rows: every array has a
few dozen entries and a step is bound by per-operation overhead, not arithmetic. A torch operation
costs 5–10 µs on a CPU whatever its size, a NumPy one about 1 µs, so the same closed-form step
(:mod:`overtensor.tensors.gradients`, ``homogeneous`` model) written in NumPy is several times faster.
Nothing else changes: same model, same loss, same gradient (to rounding), plain gradient descent.

The core is given either as a dense array (``(k,)*l``; ``contract`` is one matrix product with the
``(k^{l-1}, k)`` unfolding) or as a CP ``Σ_j w_j f_j^{⊗l}`` (weights ``(R,)``, factors ``(R, k)``;
``contract`` costs ``O(m R k)``); a moment core is the CP with weights ``1/n`` and the samples as
factors. Both are scaled to unit Frobenius norm beforehand (``σ = 1``).

Formulas (``gradients.py``): with ``n_i = ‖w_i‖``, ``v_i = w_i/n_i``, ``a_i = s_i n_i²``,
``r_i = Σ_j a_j (v_i·v_j)^{l−1} v_j − T*(v_i,…,v_i,·)``, ``g_i = v_i·r_i``:
``∇w_i = s_i ((2 − l) g_i w_i + l n_i r_i) + μ w_i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from overtensor.tensors.gauss_newton import damped_steps

#: Largest dense core handled here (entries): above it torch's overhead is no longer dominant.
MAX_DENSE_ENTRIES = 1 << 15


@dataclass(frozen=True)
class SmallCore:
    """A unit-norm symmetric target of order ``l`` in ``R^k``, dense or CP.

    Attributes
    ----------
    order : int
    unfolded : ndarray ``(k^{l-1}, k)`` or None
        The dense core's unfolding (``T[i_1..i_{l-1}, j]``), for ``contract`` by one product.
    weights, factors : ndarray ``(R,)``, ``(R, k)`` or None
        The CP form, when the core is a CP (or moments).
    """

    order: int
    unfolded: np.ndarray | None = None
    weights: np.ndarray | None = None
    factors: np.ndarray | None = None

    def contract(self, V: np.ndarray) -> np.ndarray:
        """``T*(v_i, …, v_i, ·)`` for every row of ``V`` ``(m, k)``: ``(m, k)``."""
        if self.unfolded is not None:
            if self.order == 3:
                return (V[:, :, None] * V[:, None, :]).reshape(V.shape[0], -1) @ self.unfolded
            return khatri_rao_power(V, self.order - 1) @ self.unfolded
        P = V @ self.factors.T  # (m, R)
        return (P ** (self.order - 1) * self.weights) @ self.factors


def khatri_rao_power(V: np.ndarray, p: int) -> np.ndarray:
    """Row-wise ``v_i^{⊗p}`` flattened: ``(m, k^p)`` (C order, matching ``T.reshape``)."""
    out = V
    for _ in range(p - 1):
        out = (out[:, :, None] * V[:, None, :]).reshape(V.shape[0], -1)
    return out


def gd_steps(core: SmallCore, W: np.ndarray, signs: np.ndarray, weight_decay: float, lr: float,
             n: int) -> None:
    """``n`` gradient-descent steps ``W ← W − η ∇W`` of the homogeneous model, in place.

    ``W`` ``(m, k)`` float array, ``signs`` ``(m,)`` of ±1. Rows of norm zero keep a defined
    direction (norms clamped at ``sqrt(tiny)``, as in :func:`overtensor.tensors.models._unit_rows`).
    """
    l = core.order
    tiny2 = np.finfo(W.dtype).tiny
    ls = l * signs
    c2 = (2 - l) * signs
    for _ in range(n):
        # One Gram of the raw rows gives the norms and the directions' Gram (fewer passes than
        # normalizing first; every operation here costs ~1 µs of overhead at these sizes).
        Gw = W @ W.T
        sq = np.maximum(Gw.diagonal(), tiny2)
        norms = np.sqrt(sq)
        inv = 1.0 / norms
        V = W * inv[:, None]
        G = Gw * inv[:, None] * inv
        P = G if l == 2 else (G * G if l == 3 else G ** (l - 1))
        r = P @ ((signs * sq)[:, None] * V) - core.contract(V)
        g = (r * V).sum(1)
        W -= lr * ((c2 * g + weight_decay)[:, None] * W + (ls * norms)[:, None] * r)


def loss_and_error(core64: SmallCore, W: np.ndarray, signs: np.ndarray,
                   weight_decay: float) -> tuple[float, float]:
    """Loss ``½‖T(W) − T*‖² + (μ/2)‖W‖²`` and relative error ``‖T(W) − T*‖`` (``‖T*‖ = 1``),
    in float64 through the Gram identity; ``core64`` is the float64 core."""
    W64 = W if W.dtype == np.float64 else W.astype(np.float64)
    Gw = W64 @ W64.T
    sq_norms = np.maximum(Gw.diagonal(), np.finfo(np.float64).tiny)
    inv = 1.0 / np.sqrt(sq_norms)
    V = W64 * inv[:, None]
    a = signs * sq_norms
    t = (core64.contract(V) * V).sum(1)
    G = Gw * inv[:, None] * inv
    sq = max(float(a @ (G**core64.order) @ a - 2 * a @ t + 1.0), 0.0)
    return 0.5 * sq + 0.5 * weight_decay * float(sq_norms.sum()), sq ** 0.5


def values(core: SmallCore, U: np.ndarray) -> np.ndarray:
    """``T*(u_i, …, u_i)`` for every row of ``U``: ``(r,)``."""
    return (core.contract(U) * U).sum(1)


def relative_error(core64: SmallCore, c: np.ndarray, U: np.ndarray) -> float:
    """``‖Σ_j c_j u_j^{⊗l} − T*‖`` (``‖T*‖ = 1``; rows of ``U`` not necessarily unit), float64."""
    sq = float(c @ ((U @ U.T) ** core64.order) @ c - 2 * c @ values(core64, U) + 1.0)
    return max(sq, 0.0) ** 0.5


def least_squares_weights(core64: SmallCore, U: np.ndarray) -> np.ndarray:
    """Weights minimizing ``‖Σ_j c_j u_j^{⊗l} − T*‖`` for fixed rows ``U`` (normal equations
    ``(U Uᵀ)^{∘l} c = T*(u_j, …, u_j)``, least-squares solve), as
    :func:`overtensor.tensors.reduction.least_squares_weights`."""
    G = (U @ U.T) ** core64.order
    return np.linalg.lstsq(G, values(core64, U), rcond=None)[0]


def levenberg_marquardt(core64: SmallCore, c: np.ndarray, U: np.ndarray, *, max_iter: int,
                        stop_below: float) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`overtensor.tensors.gauss_newton.levenberg_marquardt` on a small unit-norm core, in NumPy
    (the same :func:`~overtensor.tensors.gauss_newton.damped_steps`); returns ``(c, U, relative
    error)``, never worse than given.
    """
    l = core64.order

    def loss_grad(c, U):
        C = core64.contract(U)
        rr = ((U @ U.T) ** (l - 1)) @ (c[:, None] * U) - C
        g = (rr * U).sum(1)
        t = (C * U).sum(1)
        loss = 0.5 * float(c @ (g - t)) + 0.5
        return loss, np.concatenate([g, (l * c[:, None] * rr).ravel()])

    def loss_only(c, U):
        return 0.5 * relative_error(core64, c, U) ** 2

    c, U, _ = damped_steps(c, U, l, loss_grad, loss_only, max_iter=max_iter,
                           stop_below=stop_below)
    return c, U, relative_error(core64, c, U)
