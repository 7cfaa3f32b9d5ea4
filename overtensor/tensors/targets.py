"""Implicit symmetric target tensors (docs/theory/tensors.md §2).

Every algorithm touches a target ``T`` only through three operations on a batch of vectors
``V`` (rows ``v_i``):

* ``sq_norm()``   — ``‖T‖_F²``;
* ``values(V)``   — ``T(v_i, …, v_i)`` for every row, shape ``(..., m)``;
* ``contract(V)`` — ``T(v_i, …, v_i, ·) ∈ R^d`` for every row, shape ``(..., m, d)``.

No ``d^l`` array is ever formed, except by :class:`DenseTarget`, whose array the user handed in.
Leading batch dimensions broadcast (``V`` of shape ``(..., m, d)``).
"""

from __future__ import annotations

import functools
import math
import numbers
import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from overtensor._checks import (
    ArgumentTypeError,
    as_tensor,
    check_choice,
    check_float,
    check_int,
    check_memory,
    floating_dtype_of,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.scaling import exponent_of, ldexp, row_exponents


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

    def working(self, dtype: torch.dtype, device: Any) -> Target:
        """This target in ``dtype`` on ``device`` for training, keeping what it was given as.

        The copy's :meth:`float64` twin is *this* target's twin, not the float64 image of the
        rounded copy: with ``dtype="bfloat16"`` the reported errors and ``converged`` are then
        measured against the user's tensor, not against its copy rounded to 8 bits (issue 10,
        item 3). Returns ``self`` when nothing changes.
        """
        device = torch.device(device) if device is not None else self.device
        if self.dtype == dtype and self.device == device:
            return self
        copy = self.to(dtype=dtype, device=device)
        if copy.dtype != torch.float64:
            twin = self.float64()
            if twin.device != copy.device:
                twin = twin.to(device=copy.device)
            copy.__dict__["_float64"] = twin
        return copy

    # Scale-free numerics (issue 10, item 4; :mod:`overtensor.tensors.scaling`) -------------------------
    def log2_magnitude(self) -> int:
        """An exponent ``k`` such that ``T / 2^k`` has entries of order one, found without forming
        a square (so it works for any target representable in its dtype). Base class: 0."""
        return 0

    def _rescaled(self, exponent: int) -> Target:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_range(self, name: str, what: str) -> None:
        """Refuse a target whose scale is outside its dtype's range (issue 23, item 1).

        The algorithms work on ``T / 2^k`` (:meth:`normalized`), so no square overflows; but the
        result is reported in the target's scale, and ``T`` itself must be representable:
        entries below ``2^k`` with ``k = log2_magnitude()``, so ``‖T‖_F ≤ d^{l/2} 2^k`` (and
        the weights found, of the order of ``‖T‖``) must be finite, and the largest entry a
        normal number (else the weights underflow). A moment tensor of samples ``1e110`` (entries
        ``1e330``) or ``1e-110`` (``1e-330``) is refused here, in one line naming ``name``,
        instead of a fit that reports ``inf`` weights as converged or an ``OverflowError``.

        Raises
        ------
        ValueError
            ``"{name}: {what} reach about 1e{..} ..."`` with the range of the dtype.
        """
        k = self.log2_magnitude()
        fi = torch.finfo(self.dtype)
        top = k + math.ceil(self.order / 2 * math.log2(max(self.dim, 1)))
        hi, lo = math.frexp(fi.max)[1] - 1, math.frexp(fi.tiny)[1] - 1
        if lo <= k and top <= hi:
            return
        size = f"2^{k} ≈ 1e{round(k * math.log10(2))}"
        side = (f"the norm bound d^(l/2)·2^k = 2^{top} exceeds the largest {self.dtype} number "
                f"{fi.max:.3g}" if top > hi else
                f"below the smallest normal {self.dtype} number {fi.tiny:.3g}")
        raise ValueError(f"{name}: {what} reach about {size}, {side}; rescale the input by a "
                         "constant (the decomposition scales with it)")

    def rescaled(self, exponent: int) -> Target:
        """The target ``2^exponent · T``, exactly (a power-of-two scaling rounds nothing).

        Its :meth:`float64` twin is this target's twin scaled the same way, so that errors keep
        being measured against what the user gave.
        """
        exponent = int(exponent)
        if exponent == 0:
            return self
        out = self._rescaled(exponent)
        if out.dtype != torch.float64:
            out.__dict__["_float64"] = self.float64().rescaled(exponent)
        return out

    def normalized(self) -> tuple[Target, int]:
        """``(T / 2^k, k)`` with ``k = log2_magnitude()``, made once and kept: the form every
        algorithm works on, so that ``‖T‖²`` neither overflows nor underflows."""
        cached = self.__dict__.get("_normalized")
        if cached is None:
            k = self.log2_magnitude()
            cached = (self.rescaled(-k), k)
            self.__dict__["_normalized"] = cached
        return cached

    def norm(self) -> float:
        """``‖T‖_F`` in float64 without overflow or underflow of ``‖T‖²`` (a Python float;
        ``OverflowError`` only if the norm itself exceeds the float64 range)."""
        t, k = self.float64().normalized()
        return math.ldexp(math.sqrt(max(float(t.sq_norm()), 0.0)), k)

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
        # One dtype for both: the promotion of the floating ones given (integers of any origin,
        # Python, NumPy or torch, bring none), float64 when neither is floating.
        dts = [d for d in map(floating_dtype_of, (self.weights, self.factors)) if d is not None]
        dt = functools.reduce(torch.promote_types, dts) if dts else torch.float64
        dev = next((x.device for x in (self.weights, self.factors) if isinstance(x, torch.Tensor)),
                   None)
        self.weights = as_tensor("weights", self.weights, dtype=dt, device=dev)
        self.factors = as_tensor("factors", self.factors, dtype=dt, device=dev)
        if self.factors.ndim < 2 or self.factors.shape[-1] < 1:
            raise ValueError(
                f"factors must have shape (rank, dim) with dim >= 1, got shape "
                f"{tuple(self.factors.shape)}"
            )
        if self.weights.shape != self.factors.shape[:-1]:
            raise ValueError(
                f"weights shape {tuple(self.weights.shape)} does not match factors shape "
                f"{tuple(self.factors.shape)} (expected weights of shape factors.shape[:-1])"
            )
        self.dim = self.factors.shape[-1]
        self._check_range("weights and factors", f"the terms λ_j ‖u_j‖^{self.order}")
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

    def _row_log2_norms(self) -> torch.Tensor:
        # log2 ‖u_j‖ (float64) without squaring u_j: the row is first scaled to entries below one.
        e = row_exponents(self.factors)
        unit = ldexp(self.factors.detach(), -e.unsqueeze(-1)).to(torch.float64)
        return e + torch.log2(unit.norm(dim=-1))

    def log2_magnitude(self):
        # max_j |λ_j| ‖u_j‖^l, in log2.
        logs = (torch.log2(self.weights.detach().abs().to(torch.float64))
                + self.order * self._row_log2_norms())
        top = float(logs.max()) if logs.numel() else -math.inf
        return math.ceil(top) if math.isfinite(top) else 0

    def _rescaled(self, exponent):
        # Rows to norms in [2^-½, 2^½] (unit rows stay as they are) and the weights to match,
        # all by powers of two: exact.
        logs = self._row_log2_norms()
        e = torch.where(torch.isfinite(logs), torch.round(logs), torch.zeros_like(logs))
        e = e.to(torch.int64)
        return CPTarget(ldexp(self.weights, self.order * e + exponent),
                        ldexp(self.factors, -e.unsqueeze(-1)), self.order)


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
        if len(set(shape)) != 1 or shape[0] < 1:
            raise ValueError(f"tensor must have shape (d,)*order with d >= 1, got shape {shape}")
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
        self._check_range("tensor", "its entries")

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return self.array.device

    def sq_norm(self):
        # One BLAS dot over the entries: no d^l temporary (array**2 would allocate one).
        flat = self.array.reshape(-1)
        return flat @ flat

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

    def log2_magnitude(self):
        lo, hi = torch.aminmax(self.array.detach())  # max |entry| with no d^l temporary
        return exponent_of(max(float(hi), -float(lo)))

    def _rescaled(self, exponent):
        # A power-of-two scaling of a checked array is exactly as symmetric and finite: build
        # the copy without re-checking (the checks read the whole d^l array twice).
        out = object.__new__(DenseTarget)
        out.array = ldexp(self.array, exponent)
        out.truth = _rescaled_truth(self.truth, exponent)
        out.symmetry_tol, out.order, out.dim = self.symmetry_tol, self.order, self.dim
        return out


@dataclass(repr=False)
class MomentTarget(Target):
    """Empirical moment tensor ``T = (1/n) Σ_k x_k^{⊗l}`` of samples ``X`` (``n × d``), never formed.

    ``values(V) = (1/n) (V Xᵀ)^{∘l} 1``, ``contract(V) = (1/n) (V Xᵀ)^{∘(l−1)} X`` and
    ``sq_norm = (1/n²) Σ_{k,k'} (x_k·x_k')^l``, evaluated in chunks of ``chunk_size`` samples so that
    memory stays ``O(chunk_size · max(m, chunk_size))``.

    The cheaper exact path (issue 10, item 8). The implicit ``sq_norm`` costs ``n² d`` and
    ``values``/``contract`` of ``m`` rows ``m n d``; the dense moment ``M`` (``d^l`` entries) costs
    ``n d^l`` once, then ``d^l`` and ``m d^l``. So when ``d^{l−1} < n`` and ``d^l`` fits in
    ``max_dense_entries``, ``M`` is formed once (chunked over samples, memory
    ``≤ max_dense_entries`` entries at any time) and every operation uses it; otherwise nothing of
    size ``d^l`` is ever formed. Both paths compute the same tensor (to rounding).

    Parameters
    ----------
    samples : array ``(n, d)``
    order : int
    chunk_size : int
        Samples per block of the implicit operations.
    truth : SymmetricCP, optional
    dense : bool or None
        ``None`` (default): choose as above; ``True``/``False``: force the dense / implicit path.
    max_dense_entries : int
        Memory budget of the dense path in entries (default ``10**7``, 80 MB in float64).
    """

    samples: torch.Tensor
    order: int
    chunk_size: int = 4096
    truth: SymmetricCP | None = None
    dense: bool | None = None
    max_dense_entries: int = 10**7

    def __post_init__(self) -> None:
        self.order = check_int("order", self.order, 2)
        self.samples = as_tensor("samples", self.samples)
        if self.samples.ndim != 2 or self.samples.shape[0] < 1 or self.samples.shape[1] < 1:
            raise ValueError(
                f"samples must have shape (n, d) with n, d >= 1, got {tuple(self.samples.shape)}"
            )
        self.chunk_size = check_int("chunk_size", self.chunk_size, 1)
        self.max_dense_entries = check_int("max_dense_entries", self.max_dense_entries, 1)
        if self.dense is not None and not isinstance(self.dense, bool):
            raise ValueError(f"dense must be True, False or None, got {self.dense!r}")
        self.dim = self.samples.shape[1]
        self._sq_norm: torch.Tensor | None = None
        self._check_range("samples", f"the entries of the order-{self.order} moment (1/n) Σ x^⊗"
                                     f"{self.order} (max |x| = {self._max_abs():.3g})")

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

    @property
    def uses_dense(self) -> bool:
        """Whether the operations go through the dense moment (see the class docstring)."""
        if self.dense is not None:
            return bool(self.dense)
        d, l = self.dim, self.order
        return d**l <= self.max_dense_entries and d ** (l - 1) < self.n

    def moment(self) -> torch.Tensor:
        """The dense moment ``(1/n) Σ_k x_k^{⊗l}`` as a ``(d,)*l`` array, formed once and kept
        (``n d^l`` operations, in chunks of samples within ``max_dense_entries``)."""
        M = self.__dict__.get("_moment")
        if M is None:
            d, l = self.dim, self.order
            rows = max(1, min(self.n, self.max_dense_entries // d ** (l - 1)))
            M = self.samples.new_zeros(d, d ** (l - 1))
            for X in torch.split(self.samples, rows, dim=0):
                P = X
                for _ in range(l - 2):  # rows of x^{⊗(l−1)}, flattened
                    P = (P.unsqueeze(-1) * X.unsqueeze(1)).reshape(X.shape[0], -1)
                M = M + X.T @ P
            M = (M / self.n).reshape((d,) * l)
            self.__dict__["_moment"] = M
        return M

    def _dense_contract(self, V: torch.Tensor, k: int) -> torch.Tensor:
        # M(v, …, v, ·^{l−k}) for every row of V (any leading dims), in row blocks whose
        # intermediate (rows × d^{l−1}) stays within the memory budget.
        d, l = self.dim, self.order
        M = self.moment().reshape(d, -1)
        flat = V.reshape(-1, d)
        rows = max(1, self.max_dense_entries // d ** (l - 1))
        outs = []
        for Vb in torch.split(flat, rows, dim=0):
            Y = Vb @ M
            for _ in range(k - 1):
                Y = (Vb.unsqueeze(-1) * Y.reshape(Vb.shape[0], d, -1)).sum(1)
            outs.append(Y)
        out = torch.cat(outs) if outs else flat.new_zeros(0, d ** (l - k))
        return out.reshape(*V.shape[:-1], *((d,) if k == l - 1 else ()))

    def sq_norm(self):
        if self._sq_norm is None:
            if self.uses_dense:
                self._sq_norm = self.moment().square().sum()
                return self._sq_norm
            total = self.samples.new_zeros(())
            for A in self._chunks():
                for B in self._chunks():
                    total = total + ((A @ B.T) ** self.order).sum()
            self._sq_norm = total / self.n**2
        return self._sq_norm

    def values(self, V):
        if self.uses_dense:
            return self._dense_contract(V, self.order)
        out = 0
        for X in self._chunks():
            out = out + ((V @ X.T) ** self.order).sum(-1)
        return out / self.n

    def contract(self, V):
        if self.uses_dense:
            return self._dense_contract(V, self.order - 1)
        out = 0
        for X in self._chunks():
            out = out + ((V @ X.T) ** (self.order - 1)) @ X
        return out / self.n

    def to(self, dtype=None, device=None):
        truth = self.truth.to(dtype=dtype, device=device) if self.truth is not None else None
        return MomentTarget(self.samples.to(dtype=dtype, device=device), self.order,
                            self.chunk_size, truth, self.dense, self.max_dense_entries)

    def log2_magnitude(self):
        # (x/2^e)^{⊗l} = x^{⊗l} / 2^{el}: only multiples of l scale the samples exactly.
        return self.order * exponent_of(self._max_abs())

    def _max_abs(self) -> float:
        return float(self.samples.detach().abs().max())

    def _rescaled(self, exponent):
        if exponent % self.order:
            raise ValueError(f"a moment target of order {self.order} can only be rescaled by "
                             f"2^(multiple of {self.order}), got exponent={exponent}")
        return MomentTarget(ldexp(self.samples, exponent // self.order), self.order,
                            self.chunk_size, _rescaled_truth(self.truth, exponent), self.dense,
                            self.max_dense_entries)


def _rescaled_truth(truth: SymmetricCP | None, exponent: int) -> SymmetricCP | None:
    if truth is None:
        return None
    return SymmetricCP(ldexp(truth.weights, exponent), truth.components, truth.order)


def as_target(obj: Any, order: int | None = None) -> Target:
    """Turn user input into a :class:`Target`.

    Accepts a :class:`Target`, a :class:`~overtensor.tensors.cp.SymmetricCP` (or a result holding
    one as ``cp``), a ``(weights, factors)`` pair (factors as ``(r, d)`` rows or a TensorLy list
    ``[U]*l`` of ``(d, r)`` matrices; ``order`` needed for the former), a TensorLy ``CPTensor`` (or
    any object with ``weights`` and a list ``factors``; :func:`cp_pair`), or a dense symmetric
    array.

    Raises
    ------
    ValueError
        If ``order`` is given and differs from the order of ``obj``; if a TensorLy-style factor
        list holds unequal factors (a non-symmetric CP: overtensor decomposes symmetric tensors
        only, and using one factor would silently decompose another tensor; symmetrize it
        yourself for small ``d``, e.g.
        ``DenseTarget(symmetrize(torch.as_tensor(tensorly.cp_to_tensor(cp))))``).
    TypeError
        For complex or non-numeric arrays (also a ``ValueError``; see :mod:`overtensor._checks`).
    """
    if order is not None:
        order = check_int("order", order, 2)
    tgt = _as_target(obj, order)
    if order is not None and tgt.order != order:
        raise ValueError(f"order={order} does not match the target, which has order {tgt.order}")
    return tgt


def cp_pair(obj: Any, allow_list: bool = False) -> tuple[Any, list | tuple] | None:
    """``(weights, factors)`` of a CP in any of the forms users of the field hold, else ``None``.

    Recognised (issue 22, item 5): a ``(weights, [F_1, …, F_l])`` tuple (or list, with
    ``allow_list``: a nested list is otherwise a dense array), TensorLy's
    ``CPTensor`` and any object with ``weights`` and a list ``factors`` of ``(d, r)`` matrices
    (weights ``None`` means all ones, as in TensorLy), and an object with a
    :class:`~overtensor.tensors.cp.SymmetricCP` as ``cp`` (a :class:`FitResult`). Arrays are left
    to the caller. The factors are not checked here (:func:`_symmetric_factor` does).
    """
    inner = getattr(obj, "cp", None)
    if isinstance(inner, SymmetricCP):
        obj = inner
    if isinstance(obj, SymmetricCP):
        return None
    pair_types = (tuple, list) if allow_list else (tuple,)
    if isinstance(obj, pair_types) and len(obj) == 2 and isinstance(obj[1], list | tuple):
        weights, factors = obj
    elif not isinstance(obj, torch.Tensor | np.ndarray) and isinstance(
            getattr(obj, "factors", None), list | tuple) and hasattr(obj, "weights"):
        weights, factors = obj.weights, obj.factors
    else:
        return None
    if weights is None and len(factors) and hasattr(factors[0], "shape") and len(factors[0].shape) == 2:
        weights = torch.ones(factors[0].shape[1], dtype=torch.float64)
    return weights, factors


def check_single(target: Target) -> Target:
    """Refuse a target with batch dimensions (a :class:`CPTarget` of weights ``(B, r)``): the
    single-target doors (``fit``) decompose one tensor; :func:`overtensor.fit_batched` takes
    many."""
    factors = getattr(target, "factors", None)
    if isinstance(factors, torch.Tensor) and factors.ndim > 2:
        raise ValueError(f"target has batch dimensions {tuple(factors.shape[:-2])} (weights "
                         f"{tuple(target.weights.shape)}, factors {tuple(factors.shape)}): fit "
                         "decomposes one tensor; pass a list of targets to overtensor.fit_batched")
    return target


def _as_target(obj: Any, order: int | None) -> Target:
    if isinstance(obj, Target):
        return obj
    if obj is None or isinstance(obj, str | bytes | dict | numbers.Number):
        raise ArgumentTypeError(
            f"target must be a Target, a SymmetricCP, a (weights, factors) pair or a dense "
            f"symmetric array, got {obj!r}" if not isinstance(obj, str | bytes) or len(obj) < 80
            else f"target must be a Target or an array, got a {type(obj).__name__}")
    inner = getattr(obj, "cp", None)
    if isinstance(inner, SymmetricCP):  # a FitResult: its CP
        obj = inner
    if isinstance(obj, SymmetricCP):
        return CPTarget(obj.weights, obj.components, obj.order)
    pair = cp_pair(obj)
    if pair is not None:
        weights, factors = pair
        return CPTarget(weights, _symmetric_factor(factors), len(factors))
    if isinstance(obj, tuple) and len(obj) == 2:
        weights, factors = obj
        if order is None:
            raise ValueError("order is required when the target is given as (weights, factors)")
        return CPTarget(weights, factors, order)
    return DenseTarget(as_tensor("target", obj))


def _symmetric_factor(factors: list | tuple) -> torch.Tensor:
    """The rows ``U`` (``(r, d)``) of a TensorLy factor list ``[Uᵀ]*l``, which must hold equal
    ``(d, r)`` matrices (to ``1e-12`` relative): a CP with unequal factors is not symmetric."""
    if len(factors) < 2:
        raise ValueError(f"target factors must be a list of order >= 2 matrices, got {len(factors)}")
    mats = [as_tensor(f"factors[{i}]", f) for i, f in enumerate(factors)]
    first = mats[0]
    if first.ndim != 2:
        raise ValueError(f"factors[0] must be a (dim, rank) matrix, got shape {tuple(first.shape)}")
    scale = float(first.abs().max()) if first.numel() else 0.0
    for i, F in enumerate(mats[1:], start=1):
        if F.shape != first.shape:
            raise ValueError(
                f"factors[{i}] has shape {tuple(F.shape)}, factors[0] has {tuple(first.shape)}: "
                "a CP with unequal factors is not a symmetric tensor")
        gap = float((F.to(first) - first).abs().max()) if F.numel() else 0.0
        if gap > 1e-12 * max(scale, 1e-300):
            raise ValueError(
                f"factors[{i}] differs from factors[0] (largest entry difference {gap:.3g}): a CP "
                "with unequal factors is not a symmetric tensor, and overtensor decomposes "
                "symmetric tensors only. Pass a symmetric CP ([U] * order), or symmetrize the "
                "tensor yourself (overtensor.tensors.targets.symmetrize of its dense array, small d)")
    return first.T


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
    # The components are drawn as a float64 (dim, rank) matrix, and up to four such arrays are
    # alive at once (the draw, its transposed copy, the range check's scaled rows, the target's
    # copy in dtype): refuse sizes whose four copies cannot fit, before drawing anything.
    big = ("dim", dim) if dim >= rank else ("rank", rank)
    check_memory(*big, (4, dim, rank), torch.float64,
                 "four float64 (dim, rank) component arrays", dev)
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
        U = G.div_(G.norm(dim=0)).T  # in place: one (dim, rank) array fewer at the peak
    truth = CPTarget(lam, U.contiguous(), order)
    del G, U
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
    scalar = (isinstance(weights, numbers.Real) or
              (isinstance(weights, torch.Tensor | np.ndarray) and weights.ndim == 0))
    if scalar and not isinstance(weights, bool | np.bool_):
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
