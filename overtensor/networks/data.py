"""Data models for two-layer networks, each drawn from an explicit ``torch.Generator``.

* :class:`GaussianQuadratic` — ``x ~ N(0, I_d)``, ``y = xᵀBx − tr B + noise·ξ``; the default ``B`` is
  the authors' ``diag(γ)/√d`` with ``γ_j ~ Exp(1)`` (Ghorbani, Mei, Misiakiewicz, Montanari,
  NeurIPS 2019, companion code); :func:`low_rank_matrix` gives a rank-``k`` ``B``,
  :func:`flat_matrix` a trace-free one with a flat spectrum.
* :class:`GaussianMixtureClassification` — two centred Gaussians ``N(0, I + Δ)`` and
  ``N(0, I − Δ)`` with
  ``Δ = ε·diag(s)``, ``s_j = ±1`` drawn once (full-rank difference; with ``rank=k``, ``s_j = 0``
  beyond the first ``k`` coordinates: a rank-``k`` difference), labels ``±1`` with probability ½
  each. The Bayes
  classifier is the quadratic form ``sign(xᵀ[(I − Δ)^{−1} − (I + Δ)^{−1}]x − log det((I+Δ)/(I−Δ)))``.
* :class:`UserData` — a user's ``(X, y)`` (numpy or torch), split into training and test rows.

Every model exposes ``sample(n, generator) -> (X (n, d), y (n,))`` and ``dim``; training is either
*online* (a fresh batch each step: the population risk) or on a fixed training set of ``n``
samples with a held-out test set (:func:`train_test`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor._checks import as_tensor, check_float, check_int, check_magnitude, check_memory


def _check_dim(dim: int, copies: int = 1) -> int:
    """``dim`` checked, and refused before any allocation when the dense ``(d, d)`` float64 target
    matrix (``copies`` of it at once while it is built) exceeds the memory budget: a ``--dim``
    that no machine holds is one line naming it, not an allocator's traceback."""
    dim = check_int("dim", dim, 1)
    check_memory("dim", dim, (copies, dim, dim), torch.float64,
                 f"{copies} target matrices B" if copies > 1 else "a target matrix B")
    return dim


def authors_matrix(dim: int, generator: torch.Generator) -> torch.Tensor:
    """``B = diag(γ)/√d``, ``γ_j ~ Exp(1)`` (the authors' target; ``(d, d)`` float64).

    Raises
    ------
    ValueError
        ``dim < 1``, or the ``(d, d)`` matrices (``diag`` and its quotient) exceed the memory
        budget.
    """
    dim = _check_dim(dim, 2)
    gamma = torch.empty(dim, dtype=torch.float64).exponential_(1.0, generator=generator)
    return torch.diag(gamma) / math.sqrt(dim)


def low_rank_matrix(dim: int, rank: int, generator: torch.Generator) -> torch.Tensor:
    """``B = U Uᵀ / √k`` with ``U`` ``(d, k)`` orthonormal and uniformly random (``‖B‖_F = 1``).

    Rank ``k``, positive semidefinite, eigenvalues ``1/√k``: a target that a network of ``N ≥ k``
    neurons fits exactly while the tangent space at a random ``W_0`` misses most of it for
    ``N < d`` (docs/theory/networks.md §1).
    """
    dim, rank = _check_dim(dim, 2), check_int("rank", rank, 1)
    if rank > dim:
        raise ValueError(f"rank must be <= dim={dim}, got {rank!r}")
    G = torch.randn(dim, rank, generator=generator, dtype=torch.float64)
    U, _ = torch.linalg.qr(G)
    return U @ U.T / math.sqrt(rank)


def flat_matrix(dim: int, generator: torch.Generator) -> torch.Tensor:
    """``B = Q diag(s) Qᵀ / √d`` with ``s = (1, −1, 1, −1, …)`` and ``Q`` uniformly random orthogonal.

    Trace 0 for even ``d`` (``1/√d`` for odd), every eigenvalue of modulus ``1/√d`` (``‖B‖_F = 1``):
    a flat spectrum, so that a rank-``N`` form captures only ``N/d`` of ``B`` while the tangent
    space at a random ``W_0`` captures ``1 − (1 − N/d)²`` of it (docs/theory/networks.md §1).
    """
    dim = _check_dim(dim, 4)  # the draw, Q, Q·s and the product
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    s = torch.ones(dim, dtype=torch.float64)
    s[1::2] = -1.0
    return (Q * s) @ Q.T / math.sqrt(dim)


@dataclass
class GaussianQuadratic:
    """``x ~ N(0, I_d)``, ``y = xᵀBx − tr B + noise·ξ``, ``ξ ~ N(0, 1)``.

    Attributes
    ----------
    B : Tensor ``(d, d)``, symmetric (validated)
    noise : float
        Standard deviation of the label noise (≥ 0).
    """

    B: torch.Tensor
    noise: float = 0.0

    def __post_init__(self) -> None:
        B = as_tensor("B", self.B, dtype=torch.float64)
        if B.dim() != 2 or B.shape[0] != B.shape[1]:
            raise ValueError(f"B must be a square matrix, got shape {tuple(B.shape)}")
        if not torch.allclose(B, B.T, rtol=1e-10, atol=1e-12 * float(B.abs().max().clamp_min(1e-300))):
            raise ValueError("B must be symmetric, got a matrix with B != B.T")
        self.B = B
        self.noise = check_float("noise", self.noise, minimum=0.0)
        self._trace = float(torch.trace(B))

    @property
    def dim(self) -> int:
        return self.B.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        X = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        y = ((X @ self.B) * X).sum(-1) - self._trace
        if self.noise > 0:
            y = y + self.noise * torch.randn(n, generator=generator, dtype=torch.float64)
        return X, y


def gaussian_quadratic(dim: int, generator: torch.Generator, rank: int | None = None,
                       noise: float = 0.0) -> GaussianQuadratic:
    """The authors' target (``rank=None``) or a rank-``k`` one, ``B`` drawn from ``generator``."""
    B = authors_matrix(dim, generator) if rank is None else low_rank_matrix(dim, rank, generator)
    return GaussianQuadratic(B, noise)


@dataclass
class GaussianMixtureClassification:
    """Labels ``±1`` with probability ½; ``x | y ~ N(0, I + y·Δ)``, ``Δ = eps·diag(s)``.

    Attributes
    ----------
    signs : Tensor ``(d,)`` of ±1 or 0 (``s``; zeros: coordinates where the classes agree)
    eps : float in (0, 1): size of the covariance difference
    """

    signs: torch.Tensor
    eps: float = 0.5

    def __post_init__(self) -> None:
        self.eps = check_float("eps", self.eps, minimum=0.0, strict=True)
        if self.eps >= 1:
            raise ValueError(f"eps must be < 1 (covariances I ± eps·diag(s)), got {self.eps!r}")
        self.signs = as_tensor("signs", self.signs, dtype=torch.float64)

    @property
    def dim(self) -> int:
        return self.signs.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 2, (n,), generator=generator).to(torch.float64) * 2 - 1
        Z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        scale = torch.sqrt(1 + y[:, None] * self.eps * self.signs[None, :])
        return Z * scale, y

    def bayes_error(self, n: int, generator: torch.Generator) -> float:
        """Monte-Carlo error of the Bayes classifier on ``n`` fresh samples."""
        X, y = self.sample(n, generator)
        dp, dm = 1 + self.eps * self.signs, 1 - self.eps * self.signs
        score = (X**2 * (1 / dm - 1 / dp)).sum(-1) - torch.log(dp / dm).sum()
        return float((torch.sign(score) != y).double().mean())

    def bayes_matrix(self) -> torch.Tensor:
        """``(I − Δ)^{−1} − (I + Δ)^{−1}``: the matrix of the Bayes classifier's quadratic score
        ``(d, d)``, float64), the quadratic form a network with ``σ(t) = t²`` has to approximate."""
        return torch.diag(1 / (1 - self.eps * self.signs) - 1 / (1 + self.eps * self.signs))


def gaussian_mixture(dim: int, generator: torch.Generator, eps: float = 0.5,
                     rank: int | None = None) -> GaussianMixtureClassification:
    """A :class:`GaussianMixtureClassification` with the signs ``s`` drawn from ``generator``; with
    ``rank=k`` the covariance difference is ``ε·diag(s_1, …, s_k, 0, …, 0)`` (rank ``k``), else full rank."""
    dim = check_int("dim", dim, 1)
    s = torch.randint(0, 2, (dim,), generator=generator).to(torch.float64) * 2 - 1
    if rank is not None:
        rank = check_int("rank", rank, 1)
        if rank > dim:
            raise ValueError(f"rank must be <= dim={dim}, got {rank!r}")
        s[rank:] = 0.0
    return GaussianMixtureClassification(s, eps)


@dataclass
class UserData:
    """A user's data ``(X, y)`` (numpy or torch); ``sample`` draws rows with replacement."""

    X: Any
    y: Any
    _X: torch.Tensor = field(init=False, repr=False)
    _y: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._X = as_tensor("X", self.X, dtype=torch.float64)
        self._y = as_tensor("y", self.y, dtype=torch.float64).reshape(-1)
        if self._X.dim() != 2:
            raise ValueError(f"X must be 2-dimensional (n, d), got shape {tuple(self._X.shape)}")
        if self._X.shape[0] != self._y.shape[0]:
            raise ValueError(f"y must have one value per row of X ({self._X.shape[0]}), "
                             f"got {self._y.shape[0]}")
        if self._X.shape[0] < 2 or self._X.shape[1] < 1:
            raise ValueError(f"X must have at least 2 rows (a training and a test row) and 1 "
                             f"column, got shape {tuple(self._X.shape)}")
        # Risks square the labels and (quadratic activation) the projections of the rows.
        check_magnitude("X", self._X, 2, "the squares of its entries")
        check_magnitude("y", self._y, 2, "the squares of the labels")

    @property
    def dim(self) -> int:
        return self._X.shape[1]

    @property
    def size(self) -> int:
        return self._X.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = check_int("n", n, 1)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        idx = torch.randint(0, self.size, (n,), generator=generator)
        return self._X[idx], self._y[idx]

    def split(self, test_fraction: float, generator: torch.Generator):
        """``(train, test)`` as two :class:`UserData` from one random permutation."""
        f = check_float("test_fraction", test_fraction, minimum=0.0, maximum=1.0, strict=True)
        perm = torch.randperm(self.size, generator=generator)
        k = max(1, round(f * self.size))
        if k >= self.size:
            raise ValueError(f"test_fraction={test_fraction!r} of {self.size} rows leaves no "
                             "training row")
        return (UserData(self._X[perm[k:]], self._y[perm[k:]]),
                UserData(self._X[perm[:k]], self._y[perm[:k]]))


def train_test(data, samples: int | None, test_samples: int, generator: torch.Generator):
    """Fixed training and test sets: ``(X, y, X_test, y_test)``.

    For a data *model*, ``samples=None`` returns ``None`` for the training set (online training) and
    only draws ``test_samples`` test points. For :class:`UserData` the rows are split by one random
    permutation: ``samples`` training rows (default three quarters) and every other row held out
    for the test (``test_samples`` is then unused); a user's finite data cannot be trained online.
    """
    if isinstance(data, UserData):
        n = data.size
        k = n - max(1, n // 4) if samples is None else check_int("samples", samples, 1)
        if k >= n:
            raise ValueError(f"samples must be < the number of rows {n} (the rest is the test set), "
                             f"got {samples!r}")
        perm = torch.randperm(n, generator=generator)
        return data._X[perm[:k]], data._y[perm[:k]], data._X[perm[k:]], data._y[perm[k:]]
    X_test, y_test = data.sample(check_int("test_samples", test_samples, 1), generator)
    if samples is None:
        return None, None, X_test, y_test
    X, y = data.sample(check_int("samples", samples, 1), generator)
    return X, y, X_test, y_test
