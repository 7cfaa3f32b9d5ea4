"""The result type: a symmetric CP tensor ``Σ_j λ_j u_j^{⊗l}``, TensorLy-compatible."""

from __future__ import annotations

import string
from typing import Any

import torch


class SymmetricCP:
    """Symmetric CP tensor ``Σ_j λ_j u_j^{⊗l}`` with unit ``u_j``.

    Unpacks like TensorLy's ``CPTensor``: ``weights, factors = cp`` where ``factors`` is the list
    ``[U] * order`` of ``(d, r)`` matrices whose columns are the ``u_j``.

    Parameters
    ----------
    weights : Tensor, shape ``(r,)``
    components : Tensor, shape ``(r, d)``
        Rows are the components ``u_j`` (normalized on construction when ``normalize=True``; the
        norms are folded into the weights as ``λ_j ‖u_j‖^l``).
    order : int
    """

    def __init__(self, weights: torch.Tensor, components: torch.Tensor, order: int,
                 normalize: bool = False) -> None:
        if normalize:
            norms = components.norm(dim=-1).clamp_min(torch.finfo(components.dtype).tiny)
            weights = weights * norms**order
            components = components / norms.unsqueeze(-1)
        self.weights = weights
        self.components = components
        self.order = int(order)

    # TensorLy-style access -------------------------------------------------------------------
    @property
    def factors(self) -> list[torch.Tensor]:
        U = self.components.transpose(-1, -2)
        return [U] * self.order

    def __iter__(self):
        return iter((self.weights, self.factors))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        return (self.weights, self.factors)[i]

    @property
    def rank(self) -> int:
        return self.components.shape[-2]

    @property
    def dim(self) -> int:
        return self.components.shape[-1]

    def __repr__(self) -> str:
        return f"SymmetricCP(order={self.order}, dim={self.dim}, rank={self.rank})"

    # Conversions -----------------------------------------------------------------------------
    def to(self, dtype: Any = None, device: Any = None) -> SymmetricCP:
        return SymmetricCP(self.weights.to(dtype=dtype, device=device),
                           self.components.to(dtype=dtype, device=device), self.order)

    def to_tensorly(self):
        """A ``tensorly.cp_tensor.CPTensor`` (needs the optional ``tensorly`` extra)."""
        try:
            from tensorly.cp_tensor import CPTensor
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_tensorly() needs TensorLy: pip install 'overtensor[tensorly]'"
            ) from exc
        return CPTensor((self.weights.numpy(force=True),
                         [f.numpy(force=True) for f in self.factors]))

    def to_dense(self) -> torch.Tensor:
        """The ``d^l`` array. Only for small ``d``: refuses more than ``1e8`` entries."""
        d, l = self.dim, self.order
        if d**l > 10**8:
            raise ValueError(f"to_dense would form a {d}^{l} array; refusing (d^l > 1e8)")
        letters = string.ascii_lowercase[:l]
        spec = ",".join(f"r{c}" for c in letters)
        return torch.einsum(f"r,{spec}->{letters}", self.weights, *([self.components] * l))

    def sorted(self) -> SymmetricCP:
        """Sorted by decreasing ``|λ_j|``."""
        idx = torch.argsort(self.weights.abs(), descending=True)
        return SymmetricCP(self.weights[idx], self.components[idx], self.order)

    def canonical(self) -> SymmetricCP:
        """For odd order, flip components so that all weights are non-negative; then sort."""
        w, U = self.weights, self.components
        if self.order % 2 == 1:
            s = torch.where(w < 0, -1.0, 1.0).to(w.dtype)
            w, U = w * s, U * s.unsqueeze(-1)
        return SymmetricCP(w, U, self.order).sorted()
