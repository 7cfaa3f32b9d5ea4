"""Orthogonal over-parameterized training (OPT) as a transformation of a model (docs/theory/networks.md §3;
Liu, Lin, Liu, Rehg, Paull, Xiong, Song, Weller, "Orthogonal over-parameterized training", CVPR 2021).

The rows ``W_0`` (``(..., m, d)``) of one weight of a model are frozen at their random
initialization and only a rotation ``R ∈ O(d)`` shared by all rows is learned (plus, optionally,
output weights):

    W = W_0 Rᵀ            (row ``i``: ``w_i = R w_i⁰``)

Every pairwise angle, and so the hyperspherical energy (:mod:`overtensor.regimes.energy`), is that of
``W_0``. Ways to keep ``R`` orthogonal (``method``):

================ ==================================================================== ============
method           ``R`` from the trained parameter ``params["R"]``                     starts at
================ ==================================================================== ============
``cayley``       ``torch.nn.utils.parametrizations.orthogonal``, Cayley map           ``R = I``
``matrix_exp``   the same, matrix exponential of a skew matrix                        ``R = I``
``householder``  the same, product of Householder reflections                         ``R = I``
``gram-schmidt`` unrolled (modified) Gram–Schmidt of the columns of a free matrix     ``A = I``
``lowdin``       Löwdin (symmetric) orthogonalization ``A (AᵀA)^{−1/2}`` of a free
                 matrix, by an unrolled coupled Newton–Schulz iteration               ``A = I``
``riemannian``   ``R`` itself, stepped on ``O(d)`` by :class:`~overtensor.optim.cayley.CayleySGD` ``R = I``
``stochastic``   a ``k × k`` Cayley rotation of ``k`` random coordinates, merged into ``W_0``
                 every ``K`` steps (:meth:`OrthogonalModel.resample`)                ``I``
================ ==================================================================== ============

The torch parametrizations are used through :func:`torch.func.functional_call`, so the
transformed model stays a pure function of its parameter dict. Gram–Schmidt and Löwdin are
differentiable compositions of tensor operations (the paper's code unrolls them the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.parametrizations import orthogonal as torch_orthogonal

from overtensor._checks import check_choice, check_int, make_generator
from overtensor.regimes.layer import register_regime

PARAMETRIZATIONS = ("cayley", "matrix_exp", "householder")
ORTHOGONAL_METHODS = (*PARAMETRIZATIONS, "gram-schmidt", "lowdin", "riemannian", "stochastic")
#: Default steps of ``stochastic`` between merges of the ``k × k`` block (for tensors and networks).
BLOCK_STEPS = 50

Params = dict[str, torch.Tensor]


def orthogonality_error(R: torch.Tensor) -> float:
    """``‖RᵀR − I‖_F`` in float64."""
    R = R.detach().double()
    return float((R.transpose(-1, -2) @ R - torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)).norm())


def gram_schmidt(A: torch.Tensor) -> torch.Tensor:
    """Orthonormalize the columns of a square ``A`` (``(d, d)``) by unrolled Gram–Schmidt.

    Each column is projected against all previous ones twice (classical Gram–Schmidt with
    re-orthogonalization, "twice is enough": Giraud, Langou, Rozložník 2005), which keeps float32
    orthogonal to rounding with ``d`` vectorized steps. Differentiable; ``A`` must be
    non-singular. Returns ``Q`` with ``A = Q U``, ``U`` upper triangular with positive diagonal.
    """
    Q = A[..., :, :1] / A[..., :, :1].norm(dim=-2, keepdim=True)
    for j in range(1, A.shape[-1]):
        v = A[..., :, j:j + 1]
        for _ in range(2):
            v = v - Q @ (Q.transpose(-1, -2) @ v)
        Q = torch.cat([Q, v / v.norm(dim=-2, keepdim=True)], dim=-1)
    return Q


def lowdin(A: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """Löwdin (symmetric) orthogonalization ``A (AᵀA)^{−1/2}`` (the orthogonal polar factor of
    ``A``), with ``(AᵀA)^{−1/2}`` from unrolled steps of the coupled Newton–Schulz iteration
    (Higham, *Functions of Matrices*, §6.7; Huang et al., "Controllable orthogonalization in
    training DNNs", CVPR 2020). Unlike an eigendecomposition it has a well-defined derivative at
    ``A = I`` (equal eigenvalues). ``AᵀA`` is first divided by its ∞-norm, an upper bound of its
    largest eigenvalue, which makes the iteration converge; it needs about ``log₂ κ(AᵀA)`` steps
    plus a few. The loop stops once the update is the identity to 10 ulps (at most ``iters``
    steps; 30 covers condition numbers up to ~1e6); autograd differentiates the steps taken."""
    M = A.transpose(-1, -2) @ A
    c = M.abs().sum(-1).amax(-1, keepdim=True).unsqueeze(-1)
    Y = M / c
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    Z = eye.expand_as(Y)
    done = 10 * torch.finfo(A.dtype).eps
    for _ in range(iters):
        T = 0.5 * (3.0 * eye - Z @ Y)
        Y, Z = Y @ T, T @ Z
        if float((T - eye).detach().abs().max()) <= done:
            break
    return A @ Z / c.sqrt()


class _Weight(nn.Module):
    """Holds one square matrix for a torch orthogonal parametrization; ``forward`` returns it."""

    def __init__(self, d: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, d, dtype=dtype, device=device))

    def forward(self) -> torch.Tensor:
        return self.weight


_FREE = "parametrizations.weight.original"


def rotation_map(method: str, d: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu",
                 ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(free0, to_rotation)``: the trained parameter at ``R = I`` and the map from it to ``R``.

    ``method`` is one of :data:`ORTHOGONAL_METHODS` except ``stochastic`` (which uses a ``cayley``
    map of its ``k × k`` block). For the torch parametrizations ``free0`` is the parametrization's
    ``original`` after assigning the identity (its ``right_inverse``).
    """
    check_choice("method", method, [m for m in ORTHOGONAL_METHODS if m != "stochastic"])
    d = check_int("d", d, 1)
    eye = torch.eye(d, dtype=dtype, device=device)
    if method in PARAMETRIZATIONS:
        holder = _Weight(d, dtype, torch.device(device))
        torch_orthogonal(holder, "weight", orthogonal_map=method)
        with torch.no_grad():
            holder.weight = eye
        free0 = dict(holder.named_parameters())[_FREE].detach().clone()

        def to_rotation(free: torch.Tensor) -> torch.Tensor:
            return functional_call(holder, {_FREE: free}, ())

        return free0, to_rotation
    if method == "gram-schmidt":
        return eye.clone(), gram_schmidt
    if method == "lowdin":
        return eye.clone(), lowdin
    return eye.clone(), lambda R: R  # riemannian: R itself, kept on O(d) by the optimizer


class OrthogonalModel:
    """``model_fn`` with ``params[key] = W_0 Rᵀ`` (see the module docstring); build with
    :func:`orthogonal`. Call as ``fn(params, *inputs)``."""

    def __init__(self, model_fn: Callable, params0: Params, key: str, method: str,
                 train: Sequence[str], k: int | None, generator: torch.Generator | None) -> None:
        self.model_fn, self.key, self.method = model_fn, key, method
        self.W0 = params0[key].detach().clone()
        self.dim = self.W0.shape[-1]
        self.train = tuple(t for t in train if t in params0)
        self.fixed = {n: v.detach() for n, v in params0.items() if n != key and n not in self.train}
        dt, dev = self.W0.dtype, self.W0.device
        if method == "stochastic":
            self.k = k
            self.generator = generator
            self.merged = torch.eye(self.dim, dtype=dt, device=dev)  # product of merged blocks
            self._free0, self._block = rotation_map("cayley", k, dtype=dt, device=dev)
            self.idx = self._draw()
        else:
            self._free0, self._to_rotation = rotation_map(method, self.dim, dtype=dt, device=dev)
        self._params0 = {n: params0[n].detach().clone() for n in self.train}

    def init(self) -> Params:
        """The trainable parameters at ``R = I``: ``{"R": free, **trained output weights}``."""
        return {"R": self._free0.clone(), **{n: v.clone() for n, v in self._params0.items()}}

    def _draw(self) -> torch.Tensor:
        return torch.randperm(self.dim, generator=self.generator)[: self.k].to(self.W0.device)

    def rotation(self, params: Params) -> torch.Tensor:
        """The full ``R`` (``(d, d)``) the current parameters represent."""
        if self.method != "stochastic":
            return self._to_rotation(params["R"])
        Q = self._block(params["R"])
        R = self.merged
        return R.index_copy(0, self.idx, Q @ R[self.idx])

    def weights(self, params: Params) -> torch.Tensor:
        """``W = W_0 Rᵀ`` (for ``stochastic`` only the ``k`` rotated columns are recomputed:
        ``O(m d k)`` instead of ``O(m d²)``)."""
        if self.method != "stochastic":
            return self.W0 @ self.rotation(params).transpose(-1, -2)
        Q = self._block(params["R"])
        cols = self.W0.index_select(-1, self.idx) @ Q.transpose(-1, -2)
        return self.W0.index_copy(-1, self.idx, cols)

    def full_params(self, params: Params) -> Params:
        """The original model's parameter dict at ``params``."""
        return {**self.fixed, **{n: params[n] for n in self.train}, self.key: self.weights(params)}

    def __call__(self, params: Params, *inputs: Any):
        return self.model_fn(self.full_params(params), *inputs)

    @torch.no_grad()
    def resample(self, params: Params) -> Params:
        """Stochastic OPT: merge the learned ``k × k`` rotation into ``W_0`` and draw a new subset
        of coordinates; returns parameters with the block back at the identity (output weights
        kept). The caller resets any optimizer state of ``params["R"]``."""
        if self.method != "stochastic":
            raise ValueError(f"resample is for method='stochastic', got method={self.method!r}")
        self.W0 = self.weights(params).detach()
        self.merged = self.rotation(params).detach()
        self.idx = self._draw()
        out = {n: v for n, v in params.items() if n != "R"}
        out["R"] = self._free0.clone()
        return out


@register_regime("orthogonal")
def orthogonal(model_fn: Callable, params0: Params, *, key: str = "W", method: str = "cayley",
               train: Sequence[str] = ("a", "c"), k: int | None = None,
               random_state: Any = None) -> tuple[OrthogonalModel, Params]:
    """The OPT regime of a model: ``(fn, params)`` with ``fn(params, *inputs) = model_fn(params0
    with params0[key] replaced by W_0 Rᵀ, *inputs)``.

    Parameters
    ----------
    model_fn : callable ``(params: dict[str, Tensor], *inputs) -> Tensor``
        A pure function of a parameter dict (the regime layer's interface).
    params0 : dict[str, Tensor]
        The initialization; ``params0[key]`` (``(..., m, d)``) is frozen as ``W_0``.
    key : str
        Which entry holds the rows that are rotated.
    method : str
        One of :data:`ORTHOGONAL_METHODS` (module table).
    train : sequence of str
        Other entries of ``params0`` trained freely (output weights); names absent from
        ``params0`` are ignored, entries not listed are frozen.
    k : int, for ``stochastic``
        Size of the rotated block, ``1 ≤ k ≤ d`` (default ``min(d, 32)``).
    random_state : int, torch.Generator or None
        Draws the blocks of ``stochastic``.

    Returns
    -------
    fn : OrthogonalModel
        Callable; ``fn.rotation(params)`` gives ``R``, ``fn.init()`` fresh parameters and, for
        ``stochastic``, ``fn.resample(params)`` merges the block.
    params : dict[str, Tensor]
        ``{"R": ..., **trained}`` at ``R = I`` (``fn(params) == model_fn(params0)``).

    Raises
    ------
    ValueError
        Unknown ``method``, ``key`` missing from ``params0`` or listed in ``train``, ``params0[key]``
        not at least 2-D, or a bad ``k``.
    """
    check_choice("method", method, ORTHOGONAL_METHODS)
    if key not in params0:
        raise ValueError(f"key must name an entry of params0 {sorted(params0)}, got key={key!r}")
    if key in train:
        raise ValueError(f"train must not contain key={key!r} (its rows are only rotated), "
                         f"got train={train!r}")
    if params0[key].dim() < 2:
        raise ValueError(f"params0[{key!r}] must have shape (..., m, d), got {tuple(params0[key].shape)}")
    d = params0[key].shape[-1]
    gen = None
    if method == "stochastic":
        k = check_int("k", min(d, 32) if k is None else k, 1)
        if k > d:
            raise ValueError(f"k must be <= d = {d}, got k={k}")
        gen = make_generator(random_state)
    fn = OrthogonalModel(model_fn, params0, key, method, train, k, gen)
    return fn, fn.init()
