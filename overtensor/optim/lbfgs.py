"""L-BFGS on torch tensors through SciPy, without ``torch.optim``.

Constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (``Optimizer.add_param_group``
is wrapped by ``torch._disable_dynamo``), about 1 s of CPU time the first time in a process and
several seconds on a busy machine. The polish step of every fit (:func:`overtensor.tensors.extraction.polish`)
only needs a plain L-BFGS, so it runs SciPy's ``L-BFGS-B`` (Byrd, Lu, Nocedal, Zhu 1995; no bounds)
on the flattened float64 parameters with the gradient from ``torch.autograd``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def lbfgs_minimize(
    loss: Callable[..., torch.Tensor],
    params: Sequence[torch.Tensor],
    *,
    max_iter: int,
    history_size: int = 20,
    gtol: float = 1e-14,
    ftol: float = 1e-16,
) -> list[torch.Tensor]:
    """Minimize ``loss(*params)`` from ``params`` with L-BFGS; returns the final tensors.

    Parameters
    ----------
    loss : callable
        Scalar function of float64 tensors of the shapes of ``params``, differentiable by autograd.
    params : sequence of torch.Tensor
        Starting point (copied; converted to float64 on the CPU for SciPy, returned on the device
        and in the dtype of the inputs).
    max_iter : int
        Iteration budget (at most ``1.25·max_iter`` function evaluations, as ``torch.optim.LBFGS``).
    history_size, gtol, ftol
        L-BFGS memory, projected-gradient and relative-decrease tolerances (SciPy's ``maxcor``,
        ``gtol``, ``ftol``).
    """
    from scipy.optimize import minimize

    shapes = [tuple(p.shape) for p in params]
    sizes = [int(np.prod(s)) for s in shapes]
    x0 = np.concatenate([p.detach().to("cpu", torch.float64).reshape(-1).numpy() for p in params])
    device, dtypes = params[0].device, [p.dtype for p in params]

    def unflatten(x: np.ndarray, grad: bool) -> list[torch.Tensor]:
        flat = torch.from_numpy(x).to(device)
        out = [t.reshape(s).clone() for t, s in zip(torch.split(flat, sizes), shapes, strict=True)]
        return [t.requires_grad_(grad) for t in out]

    def value_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        ts = unflatten(x, True)
        value = loss(*ts)
        grads = torch.autograd.grad(value, ts)
        g = torch.cat([gr.reshape(-1) for gr in grads]).to("cpu", torch.float64).numpy()
        return float(value.detach()), g

    res = minimize(value_and_grad, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "maxfun": max(1, int(1.25 * max_iter)),
                            "maxcor": history_size, "gtol": gtol, "ftol": ftol})
    return [t.to(dt) for t, dt in zip(unflatten(res.x, False), dtypes, strict=True)]
