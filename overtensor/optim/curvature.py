"""Curvature step sizes: ``lr = c / λ_max`` from Hessian-vector products at the initialization.

For gradient descent on a loss with Hessian ``H``, a step ``η`` is stable when ``η λ_max(H) < 2``
and the error along an eigenvector of eigenvalue ``λ`` shrinks by ``|1 − ηλ|`` per step, so
``η = c/λ_max`` with ``c ≤ 1`` is the largest step that is stable with a margin (``c = 1``: the
classical ``1/L`` step of a quadratic with ``L``-Lipschitz gradient; Nesterov, *Introductory
Lectures on Convex Optimization*, §2.1.5). For stochastic gradients the relevant ``H`` is the
Hessian of the *mini-batch* loss at the training batch size: its top eigenvalue exceeds the
population one by the sampling fluctuation, which is the extra curvature SGD's noise adds to the
stability condition (Ma, Bassily, Belkin, "The power of interpolation", ICML 2018: the critical
step of mini-batch SGD in the interpolation regime is set by the mini-batch curvature).

Parameter *blocks* of very different curvature (the offset ``c``, the output weights ``a`` and the
first-layer weights ``W`` of a mean-field network differ by factors of order ``N·d``) make one
global step useless for the flat blocks. :func:`block_steps` therefore takes one step per block,
``η_b = 1/λ_max(H_bb)`` (block-Jacobi scaling), and then one common factor ``c/λ_max(D^{1/2} H
D^{1/2})`` so that the whole step is stable: it is a fixed diagonal preconditioner, applied
by giving each block its own learning rate in one ``torch.optim.SGD`` (per-layer learning rates).

Eigenvalues come from :func:`scipy.sparse.linalg.eigsh` (Lanczos, ``which="LA"``: the largest
algebraic eigenvalue, which is what limits the step; Lanczos converges from below much faster than
the power method) on a :class:`~scipy.sparse.linalg.LinearOperator` whose products are
Hessian-vector products by :func:`torch.func.jvp` of :func:`torch.func.grad`
(forward-over-reverse); ``H`` is never formed. Blocks of at most ``dense_below`` entries are
formed densely (one product per column).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import grad, jvp

from overtensor._checks import check_float, make_generator

Params = dict[str, torch.Tensor]

#: Default safety factor ``c`` of ``η = c/λ_max``: ``1/2``, a quarter of gradient descent's
#: stability limit ``2/λ_max``, to leave room for the curvature that an estimate on one mini-batch
#: at one point misses (measured choice: docs/networks.md, "Default SGD step").
DEFAULT_SAFETY = 0.5


def hvp_fn(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> Callable[[Params], Params]:
    """``v -> H v`` with ``H`` the Hessian of ``loss_fn`` at ``params`` (dicts of tensors, same keys)."""
    p = {k: v.detach() for k, v in params.items()}
    g = grad(loss_fn)

    def hvp(v: Params) -> Params:
        return jvp(g, (p,), ({k: v[k] for k in p},))[1]

    return hvp


def _top_eigenvalue(matvec: Callable[[np.ndarray], np.ndarray], n: int, dense_below: int,
                    v0: np.ndarray) -> float:
    """Largest algebraic eigenvalue of the symmetric ``n × n`` operator ``matvec``."""
    if n <= dense_below:
        H = np.stack([matvec(e) for e in np.eye(n)], axis=1)
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", v0=v0, tol=1e-3, maxiter=max(200, 10 * n),
                       return_eigenvectors=False)[0])


def top_hessian_eigenvalue(loss_fn: Callable[[Params], torch.Tensor], params: Params,
                           keys: Sequence[str] | None = None, scales: dict[str, float] | None = None,
                           random_state=None, dense_below: int = 8) -> float:
    """``λ_max`` of the Hessian of ``loss_fn`` at ``params``, restricted to the blocks ``keys``.

    Parameters
    ----------
    loss_fn : callable
        Scalar loss of a parameter dict (pure, ``torch.func``-compatible).
    params : dict of tensors
        Where the Hessian is taken.
    keys, scales, random_state, dense_below
        As in :func:`top_eigenvalue`.

    Returns
    -------
    float
        The largest algebraic eigenvalue (:func:`top_eigenvalue`).
    """
    return top_eigenvalue(hvp_fn(loss_fn, params), params, keys, scales, random_state, dense_below)


def top_eigenvalue(hvp: Callable[[Params], Params], params: Params,
                   keys: Sequence[str] | None = None, scales: dict[str, float] | None = None,
                   random_state=None, dense_below: int = 8) -> float:
    """``λ_max`` of a symmetric operator on parameter dicts (a Hessian given by its products),
    restricted to the blocks ``keys``: the one top-eigenvalue routine of the library (Lanczos,
    SciPy's ``eigsh``; dense below ``dense_below`` entries).

    Parameters
    ----------
    hvp : callable ``v -> H v``
        Products with the operator (dicts with the keys and shapes of ``params``), e.g.
        :func:`hvp_fn` of a loss or a closed-form Hessian-vector product.
    params : dict of tensors
        The point (shapes, dtype and device of the blocks).
    keys : sequence of str, optional
        The blocks ``H_KK`` to use (default: all keys).
    scales : dict, optional
        ``D`` of the scaled operator ``D^{1/2} H D^{1/2}`` (one non-negative factor per key).
    random_state : int, torch.Generator or None
        Starting vector of Lanczos.
    dense_below : int
        Blocks of at most this many entries are formed densely (exact eigenvalue).

    Returns
    -------
    float
        The largest algebraic eigenvalue (the one that bounds a stable step; may be ``≤ 0`` when the
        loss is concave along every direction of the blocks).

    Raises
    ------
    ValueError
        ``keys`` empty or naming entries that ``params`` lacks.
    """
    keys = list(params) if keys is None else list(keys)
    if not keys or any(k not in params for k in keys):
        raise ValueError(f"keys must be a non-empty subset of {sorted(params)}, got {keys!r}")
    scales = {k: 1.0 for k in keys} if scales is None else scales
    shapes = {k: params[k].shape for k in keys}
    sizes = [params[k].numel() for k in keys]
    like = next(iter(params.values()))
    root = {k: float(scales[k]) ** 0.5 for k in keys}

    def matvec(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        parts = torch.split(torch.as_tensor(x, dtype=like.dtype, device=like.device), sizes)
        v = {k: torch.zeros_like(params[k]) for k in params}
        for k, part in zip(keys, parts, strict=True):
            v[k] = root[k] * part.reshape(shapes[k])
        hv = hvp(v)
        return torch.cat([root[k] * hv[k].reshape(-1) for k in keys]).double().cpu().numpy()

    n = sum(sizes)
    gen = make_generator(random_state)
    v0 = torch.randn(n, generator=gen, dtype=torch.float64).numpy()
    return _top_eigenvalue(matvec, n, dense_below, v0)


def autograd_hvp(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> Callable[[Params], Params]:
    """``v -> H v`` by double backward (for losses that ``torch.func`` cannot transform, such as the
    tensor regimes' losses over implicit targets)."""
    x = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    grads = torch.autograd.grad(loss_fn(x).sum(), list(x.values()), create_graph=True)

    def hvp(v: Params) -> Params:
        dot = sum((g * v[k]).sum() for g, k in zip(grads, x, strict=True))
        hv = torch.autograd.grad(dot, list(x.values()), retain_graph=True, allow_unused=True)
        return {k: torch.zeros_like(x[k]) if h is None else h.detach()
                for k, h in zip(x, hv, strict=True)}

    return hvp


def block_steps(loss_fn: Callable[[Params], torch.Tensor], params: Params,
                safety: float = DEFAULT_SAFETY, random_state=None) -> dict[str, float]:
    """Per-block steps ``η_b = safety / (λ_max(H_bb) · λ_max(D^{1/2} H D^{1/2}))``.

    ``D = diag(1/λ_max(H_bb))`` (one factor per block).

    Block-Jacobi scaling puts every block's own top curvature at 1; the common factor then makes
    the top eigenvalue of the scaled Hessian ``1/safety`` times the step's inverse, i.e. gradient
    descent with these steps has ``η λ_max = safety`` in the metric of ``D`` (stable for
    ``safety < 2``). Since ``λ_max(D^{1/2} H D^{1/2}) ≤ (number of blocks)`` for a positive
    semidefinite ``H``, the common factor is never below ``1/(number of blocks)``.

    Parameters
    ----------
    loss_fn, params
        As in :func:`top_hessian_eigenvalue`; one block per key of ``params``.
    safety : float
        ``c`` in ``(0, 2)``; default :data:`DEFAULT_SAFETY`.
    random_state : int, torch.Generator or None
        Lanczos starting vectors.

    Returns
    -------
    dict
        Key -> step. A block without positive curvature (e.g. a loss that does not depend on it)
        gets the step of the stiffest block.

    Raises
    ------
    ValueError
        ``safety`` outside ``(0, 2)`` or no block with positive curvature.
    """
    check_float("safety", safety, minimum=0.0, maximum=2.0, strict=True)
    if safety >= 2.0:
        raise ValueError(f"safety must be < 2 (the stability limit of gradient descent), got {safety!r}")
    gen = make_generator(random_state)
    lam = {k: top_hessian_eigenvalue(loss_fn, params, [k], random_state=gen) for k in params}
    positive = [v for v in lam.values() if v > 0]
    if not positive:
        raise ValueError(f"the loss has no positive curvature at params (block eigenvalues {lam})")
    scales = {k: 1.0 / (v if v > 0 else max(positive)) for k, v in lam.items()}
    top = top_hessian_eigenvalue(loss_fn, params, list(params), scales, random_state=gen)
    top = max(top, 1.0)  # the scaled blocks' own curvature is 1: never a larger common step
    return {k: safety * s / top for k, s in scales.items()}


def global_step(loss_fn: Callable[[Params], torch.Tensor], params: Params,
                safety: float = DEFAULT_SAFETY, random_state=None) -> float:
    """One step for all parameters, ``safety / λ_max(H)`` (the classical ``c/L`` step)."""
    check_float("safety", safety, minimum=0.0, maximum=2.0, strict=True)
    lam = top_hessian_eigenvalue(loss_fn, params, random_state=random_state)
    if not lam > 0:
        raise ValueError(f"the loss has no positive curvature at params (λ_max = {lam:g})")
    return safety / lam


__all__ = ["DEFAULT_SAFETY", "autograd_hvp", "block_steps", "global_step", "hvp_fn", "top_eigenvalue",
           "top_hessian_eigenvalue"]
