"""Orthogonality-preserving gradient descent: a Riemannian step on ``O(d)`` with a Cayley
retraction, as a :class:`torch.optim.Optimizer` (docs/theory/networks.md §3; Wen & Yin, "A feasible method for
optimization with orthogonality constraints", Math. Program. 2013; with momentum in the Lie
algebra as in Li, Li, Todorovic, "Efficient Riemannian optimization on the Stiefel manifold via
the Cayley transform", ICLR 2020).

For a parameter group with ``orthogonal=True`` each parameter is a square matrix ``R`` with
``RᵀR = I`` and Euclidean gradient ``G``. The step is

    A = G Rᵀ − R Gᵀ            (skew-symmetric: the Riemannian gradient is A R)
    M ← β M + A                (momentum, kept in the skew-symmetric algebra)
    R ← (I + η M/2)^{−1} (I − η M/2) R

The Cayley factor is exactly orthogonal for a skew ``M``, so ``RᵀR = I`` holds to rounding; in
float32 the rounding of many steps adds up slowly, and ``reorthogonalize_every`` (default 100)
projects ``R`` back onto ``O(d)`` (its polar factor, by SVD) at that period to stop the drift. Other
groups get plain SGD with the same momentum rule (``buf ← β buf + g``, ``p ← p − η buf``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from overtensor._checks import check_float, check_int


def polar_factor(R: torch.Tensor) -> torch.Tensor:
    """The orthogonal matrix nearest to ``R`` in Frobenius norm, ``U Vᵀ`` from ``R = U Σ Vᵀ``."""
    U, _, Vh = torch.linalg.svd(R)
    return U @ Vh


class CayleySGD(torch.optim.Optimizer):
    """Riemannian gradient descent on ``O(d)`` with a Cayley retraction (see the module docstring).

    Parameters
    ----------
    params : iterable of tensors or of dicts (parameter groups)
        A group with ``orthogonal=True`` must hold square matrices that are orthogonal now.
    lr : float, > 0
    momentum : float in [0, 1)
    orthogonal : bool
        Default for groups that do not set it.
    reorthogonalize_every : int or None
        Project orthogonal parameters back onto ``O(d)`` every this many steps (``None``: never).

    Raises
    ------
    ValueError
        A bad ``lr``/``momentum``/``reorthogonalize_every``, or an orthogonal parameter that is not
        a square matrix.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0, orthogonal: bool = False,
                 reorthogonalize_every: int | None = 100) -> None:
        lr = check_float("lr", lr, minimum=0.0, strict=True)
        momentum = check_float("momentum", momentum, minimum=0.0)
        if momentum >= 1:
            raise ValueError(f"momentum must be < 1, got {momentum!r}")
        if reorthogonalize_every is not None:
            reorthogonalize_every = check_int("reorthogonalize_every", reorthogonalize_every, 1)
        super().__init__(params, dict(lr=lr, momentum=momentum, orthogonal=orthogonal,
                                      reorthogonalize_every=reorthogonalize_every))
        for group in self.param_groups:
            if group["orthogonal"]:
                for p in group["params"]:
                    if p.dim() != 2 or p.shape[0] != p.shape[1]:
                        raise ValueError(f"an orthogonal parameter must be a square matrix, got shape "
                                         f"{tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if group["orthogonal"]:
                    g = g @ p.T - p @ g.T
                if beta > 0:
                    buf = state.get("momentum")
                    buf = g.clone() if buf is None else buf.mul_(beta).add_(g)
                    state["momentum"] = buf
                    g = buf
                if not group["orthogonal"]:
                    p.add_(g, alpha=-lr)
                    continue
                eye = torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
                half = (0.5 * lr) * g
                p.copy_(torch.linalg.solve(eye + half, (eye - half) @ p))
                state["steps"] = state.get("steps", 0) + 1
                every = group["reorthogonalize_every"]
                if every is not None and state["steps"] % every == 0:
                    p.copy_(polar_factor(p))
        return loss
