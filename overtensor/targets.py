"""Implicit symmetric target tensors (SPEC §2).

Every algorithm touches a target ``T`` only through three operations on a batch of vectors
``V`` (rows ``v_i``):

* ``sq_norm()``   — ``‖T‖_F²``;
* ``values(V)``   — ``T(v_i, …, v_i)`` for every row, shape ``(..., m)``;
* ``contract(V)`` — ``T(v_i, …, v_i, ·) ∈ R^d`` for every row, shape ``(..., m, d)``.

No ``d^l`` array is ever formed, except by :class:`DenseTarget`, whose array the user handed in.
Leading batch dimensions broadcast (``V`` of shape ``(..., m, d)``).
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import (
    as_tensor,
    check_choice,
    check_float,
    check_int,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from overtensor.cp import SymmetricCP


class Target:
    """Base class of implicit symmetric tensors.

    Attributes
    ----------
    order : int
        The order ``l``.
    dim : int
        The dimension ``d``.
    truth : SymmetricCP or None
        The planted decomposition, when known (synthetic targets); used by recovery metrics.
    """

    order: int
    dim: int
    truth: SymmetricCP | None = None

    @property
    def dtype(self) -> torch.dtype:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def device(self) -> torch.device:  # pragma: no cover - overridden
        raise NotImplementedError

    def sq_norm(self) -> torch.Tensor:
        """``‖T‖_F²``."""
        raise NotImplementedError

    def values(self, V: torch.Tensor) -> torch.Tensor:
        """``T(v_i, …, v_i)`` for each row ``v_i`` of ``V``."""
        raise NotImplementedError

    def contract(self, V: torch.Tensor) -> torch.Tensor:
        """``T(v_i, …, v_i, ·)`` for each row ``v_i`` of ``V``."""
        raise NotImplementedError

    def to(self, dtype: torch.dtype | None = None, device: Any = None) -> Target:
        """A copy of the target with another dtype and/or device."""
        raise NotImplementedError

    def float64(self) -> Target:
        """This target in float64 (itself if it already is), made once and kept: reported errors
        are computed in float64 at every evaluation, and a fresh copy each time would also
        recompute cached quantities such as a moment target's ``O(n² d)`` squared norm."""
        if self.dtype == torch.float64:
            return self
        twin = self.__dict__.get("_float64")
        if twin is None:
            twin = self.to(dtype=torch.float64)
            self.__dict__["_float64"] = twin
        return twin

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={self.order}, dim={self.dim})"


def _gram_power_form(c1, V1, c2, V2, order: int) -> torch.Tensor:
    """``c1ᵀ (V1 V2ᵀ)^{∘l} c2``: the inner product of two CP tensors (Gram identity)."""
    G = V1 @ V2.transpose(-1, -2)
    return ((G**order) @ c2.unsqueeze(-1)).squeeze(-1).mul(c1).sum(-1)


@dataclass(repr=False)
class CPTarget(Target):
    """``T = Σ_j λ_j u_j^{⊗l}`` given by weights ``λ`` (``(..., r)``) and rows ``u_j`` (``(..., r, d)``).

    Rows need not be unit vectors. ``sq_norm = λᵀ (U Uᵀ)^{∘l} λ``, ``values(V) = (V Uᵀ)^{∘l} λ``,
    ``contract(V) = ((V Uᵀ)^{∘(l−1)} ∘ λ) U``.
    """

    weights: torch.Tensor
    factors: torch.Tensor
    order: int

    def __post_init__(self) -> None:
        self.order = check_int("order", self.order, 2)
        self.weights = as_tensor("weights", self.weights)
        self.factors = as_tensor("factors", self.factors, dtype=self.weights.dtype,
                                 device=self.weights.device)
        if self.factors.ndim < 2:
            raise ValueError(
                f"factors must have shape (rank, dim), got shape {tuple(self.factors.shape)}"
            )
        if self.weights.shape != self.factors.shape[:-1]:
            raise ValueError(
                f"weights shape {tuple(self.weights.shape)} does not match factors shape "
                f"{tuple(self.factors.shape)} (expected weights of shape factors.shape[:-1])"
            )
        self.dim = self.factors.shape[-1]
        if self.truth is None:
            self.truth = SymmetricCP(self.weights, self.factors, self.order)

    @property
    def dtype(self):
        return self.factors.dtype

    @property
    def device(self):
        return self.factors.device

    @property
    def rank(self) -> int:
        return self.factors.shape[-2]

    def sq_norm(self):
        return _gram_power_form(self.weights, self.factors, self.weights, self.factors, self.order)

    def values(self, V):
        P = (V @ self.factors.transpose(-1, -2)) ** self.order
        return (P * self.weights.unsqueeze(-2)).sum(-1)

    def contract(self, V):
        P = (V @ self.factors.transpose(-1, -2)) ** (self.order - 1)
        return (P * self.weights.unsqueeze(-2)) @ self.factors

    def to(self, dtype=None, device=None):
        return CPTarget(self.weights.to(dtype=dtype, device=device),
                        self.factors.to(dtype=dtype, device=device), self.order)


def _einsum_letters(order: int) -> str:
    return string.ascii_lowercase[:order]


@dataclass(repr=False)
class DenseTarget(Target):
    """A dense symmetric array of shape ``(d,)*l`` handed in by the user (small ``d`` only).

    Symmetry is checked on entry (relative tolerance ``symmetry_tol``).
    """

    array: torch.Tensor
    truth: SymmetricCP | None = None
    symmetry_tol: float = 1e-8

    def __post_init__(self) -> None:
        self.array = as_tensor("tensor", self.array)
        shape = tuple(self.array.shape)
        if len(shape) < 2:
            raise ValueError(f"tensor must have order >= 2, got shape {shape}")
        if len(set(shape)) != 1:
            raise ValueError(f"tensor must have shape (d,)*order, got shape {shape}")
        self.order = len(shape)
        self.dim = shape[0]
        scale = self.array.abs().max().clamp_min(torch.finfo(self.array.dtype).tiny)
        for axis in range(1, self.order):
            perm = list(range(self.order))
            perm[0], perm[axis] = perm[axis], perm[0]
            gap = (self.array - self.array.permute(perm)).abs().max() / scale
            if gap > self.symmetry_tol:
                raise ValueError(
                    f"tensor is not symmetric: swapping axes 0 and {axis} changes it by "
                    f"{gap.item():.3g} (relative), above symmetry_tol={self.symmetry_tol}"
                )

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return self.array.device

    def sq_norm(self):
        return (self.array**2).sum()

    def _contract_k(self, V: torch.Tensor, k: int) -> torch.Tensor:
        # Contract the first k modes with v_i for every row of V (batched over rows).
        letters = _einsum_letters(self.order)
        out = torch.einsum(f"m{letters[0]},{letters}->m{letters[1:]}", V, self.array)
        for j in range(1, k):
            rest = letters[j:]
            out = torch.einsum(f"m{rest[0]},m{rest}->m{rest[1:]}", V, out)
        return out

    def values(self, V):
        if V.ndim != 2:
            raise ValueError("DenseTarget supports no batch dimensions: V must be (m, d)")
        return self._contract_k(V, self.order)

    def contract(self, V):
        if V.ndim != 2:
            raise ValueError("DenseTarget supports no batch dimensions: V must be (m, d)")
        return self._contract_k(V, self.order - 1)

    def to(self, dtype=None, device=None):
        truth = self.truth.to(dtype=dtype, device=device) if self.truth is not None else None
        return DenseTarget(self.array.to(dtype=dtype, device=device), truth, self.symmetry_tol)


@dataclass(repr=False)
class MomentTarget(Target):
    """Empirical moment tensor ``T = (1/n) Σ_k x_k^{⊗l}`` of samples ``X`` (``n × d``), never formed.

    ``values(V) = (1/n) (V Xᵀ)^{∘l} 1``, ``contract(V) = (1/n) (V Xᵀ)^{∘(l−1)} X`` and
    ``sq_norm = (1/n²) Σ_{k,k'} (x_k·x_k')^l``, evaluated in chunks of ``chunk_size`` samples so that
    memory stays ``O(chunk_size · max(m, chunk_size))``.
    """

    samples: torch.Tensor
    order: int
    chunk_size: int = 4096
    truth: SymmetricCP | None = None

    def __post_init__(self) -> None:
        self.order = check_int("order", self.order, 2)
        self.samples = as_tensor("samples", self.samples)
        if self.samples.ndim != 2 or self.samples.shape[0] < 1 or self.samples.shape[1] < 1:
            raise ValueError(
                f"samples must have shape (n, d) with n, d >= 1, got {tuple(self.samples.shape)}"
            )
        self.chunk_size = check_int("chunk_size", self.chunk_size, 1)
        self.dim = self.samples.shape[1]
        self._sq_norm: torch.Tensor | None = None

    @property
    def dtype(self):
        return self.samples.dtype

    @property
    def device(self):
        return self.samples.device

    @property
    def n(self) -> int:
        return self.samples.shape[0]

    def _chunks(self):
        return torch.split(self.samples, self.chunk_size, dim=0)

    def sq_norm(self):
        if self._sq_norm is None:
            total = self.samples.new_zeros(())
            for A in self._chunks():
                for B in self._chunks():
                    total = total + ((A @ B.T) ** self.order).sum()
            self._sq_norm = total / self.n**2
        return self._sq_norm

    def values(self, V):
        out = 0
        for X in self._chunks():
            out = out + ((V @ X.T) ** self.order).sum(-1)
        return out / self.n

    def contract(self, V):
        out = 0
        for X in self._chunks():
            out = out + ((V @ X.T) ** (self.order - 1)) @ X
        return out / self.n

    def to(self, dtype=None, device=None):
        truth = self.truth.to(dtype=dtype, device=device) if self.truth is not None else None
        return MomentTarget(self.samples.to(dtype=dtype, device=device), self.order,
                            self.chunk_size, truth)


def as_target(obj: Any, order: int | None = None) -> Target:
    """Turn user input into a :class:`Target`.

    Accepts a :class:`Target`, a :class:`~overtensor.cp.SymmetricCP`, a ``(weights, factors)`` pair
    (factors as ``(r, d)`` rows or a TensorLy list ``[U]*l`` of ``(d, r)`` matrices; ``order``
    needed for the former), or a dense symmetric array.
    """
    if isinstance(obj, Target):
        return obj
    if isinstance(obj, SymmetricCP):
        return CPTarget(obj.weights, obj.components, obj.order)
    if isinstance(obj, tuple) and len(obj) == 2:
        weights, factors = obj
        if isinstance(factors, list | tuple):
            if not factors:
                raise ValueError("target factors list is empty")
            return CPTarget(weights, as_tensor("factors[0]", factors[0]).T, len(factors))
        if order is None:
            raise ValueError("order is required when the target is given as (weights, factors)")
        return CPTarget(weights, factors, order)
    return DenseTarget(obj)


def random_target(
    order: int = 3,
    dim: int = 20,
    rank: int = 5,
    *,
    components: str = "random",
    weights: str | float | Any = "equal",
    noise: float = 0.0,
    random_state: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> Target:
    """Draw a synthetic symmetric target ``T* = Σ_j λ_j u_j^{⊗l}`` (+ optional noise).

    Parameters
    ----------
    order, dim, rank : int
        ``l ≥ 2``, ``d ≥ 1``, ``r ≥ 1``.
    components : {"random", "orthonormal"}
        Independent uniform unit vectors, or the first ``r`` columns of a Haar-random orthogonal
        matrix (``r ≤ d``).
    weights : {"equal", "geometric", "linear"}, float or array
        ``"equal"``: all 1; ``"geometric"``: ``ρ^{j−1}`` with ``ρ = 0.8``; a float ``ρ ∈ (0, 1]``: geometric
        with that ratio; ``"linear"``: ``(r − j + 1)/r``; an array: used as given (length ``r``).
    noise : float
        Relative noise level: a symmetric Gaussian tensor ``E`` scaled to ``‖E‖_F = noise·‖T*‖_F``
        is added (not a per-entry standard deviation). Forms a dense ``d^l`` array, so only for
        small ``d`` (``d^l ≤ 1e7``); the result is a :class:`DenseTarget` whose ``truth`` is the
        planted CP.
    random_state : int, torch.Generator or None
        Seed or generator for every random draw.
    dtype, device
        Default float64 on the CPU, float32 on CUDA.
    """
    order = check_int("order", order, 2)
    dim = check_int("dim", dim, 1)
    rank = check_int("rank", rank, 1)
    check_choice("components", components, ("random", "orthonormal"))
    noise = check_float("noise", noise, minimum=0.0)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if components == "orthonormal" and rank > dim:
        raise ValueError(f"components='orthonormal' needs rank <= dim, got rank={rank}, dim={dim}")
    lam = make_weights(weights, rank)
    if noise > 0 and dim**order > 10**7:
        raise ValueError(
            f"noise={noise} needs a dense d^l array, too large for dim={dim}, order={order} "
            "(limit d^l <= 1e7)"
        )
    gen = make_generator(random_state)
    # Draw on the CPU in float64 so that a seed gives the same target on every device and dtype.
    G = torch.randn(dim, rank, generator=gen, dtype=torch.float64)
    if components == "orthonormal":
        Q, R = torch.linalg.qr(G)
        U = (Q * torch.sign(torch.diagonal(R))).T
    else:
        U = (G / G.norm(dim=0)).T
    truth = CPTarget(lam, U.contiguous(), order)
    if noise == 0:
        return truth.to(dtype=dt, device=dev)
    dense = truth.truth.to_dense()
    E = torch.randn(dense.shape, generator=gen, dtype=torch.float64)
    E = symmetrize(E)
    E = E * (noise * dense.norm() / E.norm())
    return DenseTarget((dense + E).to(dtype=dt, device=dev), truth.truth.to(dtype=dt, device=dev))


def make_weights(weights: Any, rank: int) -> torch.Tensor:
    """Weights ``λ`` (float64, length ``rank``) from a name, a geometric ratio or an array."""
    if isinstance(weights, str):
        check_choice("weights", weights, ("equal", "geometric", "linear"))
        j = torch.arange(rank, dtype=torch.float64)
        if weights == "equal":
            return torch.ones(rank, dtype=torch.float64)
        if weights == "geometric":
            return 0.8**j
        return (rank - j) / rank
    if isinstance(weights, float | int) and not isinstance(weights, bool):
        rho = check_float("weights", weights, minimum=0.0, maximum=1.0, strict=True)
        return rho ** torch.arange(rank, dtype=torch.float64)
    lam = as_tensor("weights", weights, dtype=torch.float64, device="cpu").reshape(-1)
    if lam.numel() != rank:
        raise ValueError(f"weights has {lam.numel()} entries, expected rank={rank}")
    return lam


def symmetrize(A: torch.Tensor) -> torch.Tensor:
    """Average of ``A`` over all permutations of its axes (small arrays only)."""
    from itertools import permutations

    perms = list(permutations(range(A.ndim)))
    return sum(A.permute(p) for p in perms) / math.factorial(A.ndim)
