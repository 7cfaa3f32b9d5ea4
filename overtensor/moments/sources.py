"""Data sources for moment estimation: arrays in memory, or samples streamed in chunks.

A *source* is anything with ``n``, ``dim`` and ``chunks()`` (an iterator over ``(c, d)`` float64
or float32 tensors that can be called again: estimators make several passes; they multiply a
chunk in its own dtype and accumulate the sums over chunks in float64). Arrays are wrapped by
:func:`as_source`; :class:`SphericalMixtureStream` generates a synthetic mixture chunk by chunk,
each chunk from its own seeded generator, so a pass reproduces the same samples without ever
holding all of them (``n = 10⁶``, ``d = 10⁴`` is 80 GB in float64).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from overtensor._checks import (
    as_tensor,
    check_float,
    check_int,
    check_magnitude,
    check_mixture,
    make_generator,
)


class Source(Protocol):
    """What the moment estimators read: ``n`` samples in ``R^d``, in chunks."""

    n: int
    dim: int

    def chunks(self) -> Iterator[torch.Tensor]: ...


@dataclass
class ArraySource:
    """An ``(n, d)`` array in memory, read in chunks of ``chunk_size`` rows."""

    X: torch.Tensor
    chunk_size: int = 65536

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.X.shape[0] < 1 or self.X.shape[1] < 1:
            raise ValueError(f"X must have shape (n, d) with n, d >= 1, got {tuple(self.X.shape)}")

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    def chunks(self) -> Iterator[torch.Tensor]:
        for c in torch.split(self.X, self.chunk_size):
            yield c.to(torch.float64)


def as_source(X: Any, name: str = "X") -> Source:
    """A :class:`Source` from a source, a numpy array, a torch tensor or nested lists.

    Raises
    ------
    ValueError
        When ``X`` is not a 2-D finite numeric array (the message names ``name``).
    TypeError
        When ``X`` is complex.
    """
    if hasattr(X, "chunks") and hasattr(X, "n") and hasattr(X, "dim"):
        return X
    t = X if isinstance(X, torch.Tensor) else torch.as_tensor(_numpy(X))
    if t.is_complex():
        raise TypeError(f"{name} must be real, got a complex array of dtype {t.dtype}")
    t = as_tensor(name, t)
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got {tuple(t.shape)}")
    check_magnitude(name, t, 3, "its third-order products")  # the estimators' third moments
    return ArraySource(t)


def _numpy(X: Any):
    import numpy as np

    return np.asarray(X)


@dataclass
class SphericalMixtureStream:
    """``n`` samples of ``x = μ_z + σ g``, ``z ~ weights``, ``g ~ N(0, I_d)``, generated in chunks.

    Chunk ``c`` is drawn from a generator seeded with :func:`chunk_seed` ``(seed, c)`` (float32
    draws), so every pass over the source sees the same samples without storing them, and
    streams of different seeds share no chunk (with ``seed + c``, chunk ``c + 1`` of seed ``s``
    was chunk ``c`` of seed ``s + 1``).

    ``dtype=torch.float32`` returns the draws as they are; the default float64 returns the same
    values converted. Float32 chunks halve the memory traffic and make the products the
    estimators take of them (``X @ Q`` with ``d × (k + 10)`` blocks) several times faster
    (0.23 s against 1.9 s per ``10⁸`` entries, docs/moments.md); the estimators accumulate over
    chunks in float64, so the rounding (relative ``~1e-6`` per chunk product) stays far below the
    sampling error of the estimates (``~0.1`` for a mean at ``n = 10⁶``, ``d = 10⁴``,
    ``σ = 0.25``; ``tests/test_moments_stream.py`` asserts means within 1e-3 of float64's at
    ``d = 40``).

    Parameters
    ----------
    means : Tensor ``(k, d)``
    weights : Tensor ``(k,)``, positive, summing to 1
    sigma : float
    n : int
    seed : int
    chunk_size : int
        Rows per chunk; part of the definition of the samples (chunk ``c`` holds rows
        ``c·chunk_size …``). Memory per chunk: ``chunk_size · d · 4`` bytes.
    dtype : torch.float64 or torch.float32
        Dtype of the chunks (the draws are float32 either way).
    """

    means: torch.Tensor
    weights: torch.Tensor
    sigma: float
    n: int
    seed: int = 0
    chunk_size: int = 8192
    dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        self.means = as_tensor("means", self.means, dtype=torch.float64)
        self.weights = as_tensor("weights", self.weights, dtype=torch.float64)
        check_mixture(self.means, self.weights)
        self.sigma = check_float("sigma", self.sigma, minimum=0.0)
        self.n = check_int("n", self.n, 1)
        self.seed = check_int("seed", self.seed, 0)
        self.chunk_size = check_int("chunk_size", self.chunk_size, 1)
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype!r}")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def labels(self) -> torch.Tensor:
        """The component of every sample, ``(n,)`` (regenerated, same draws as ``chunks``)."""
        return torch.cat([z for z, _ in self._draw()])

    def chunks(self) -> Iterator[torch.Tensor]:
        for _, x in self._draw():
            yield x

    def _draw(self):
        means32 = self.means.to(torch.float32)
        k = means32.shape[0]
        for c, start in enumerate(range(0, self.n, self.chunk_size)):
            size = min(self.chunk_size, self.n - start)
            gen = make_generator(chunk_seed(self.seed, c))
            z = torch.multinomial(self.weights.float(), size, replacement=True, generator=gen)
            x = torch.randn(size, self.dim, generator=gen, dtype=torch.float32)
            # x ← σ x + onehot(z) μ in place: one sweep over the chunk, where ``μ[z] + σ x`` makes
            # two (c, d) temporaries (the gather took 4x the time of the draw at d = 10⁴).
            x.addmm_(torch.nn.functional.one_hot(z, k).to(torch.float32), means32, beta=self.sigma)
            yield z, x.to(self.dtype)


def chunk_seed(seed: int, chunk: int) -> int:
    """A 64-bit seed for chunk ``chunk`` of a stream seeded ``seed``: NumPy's ``SeedSequence``
    hashing of the pair, so that nearby pairs give unrelated generator states."""
    import numpy as np

    state = np.random.SeedSequence([seed, chunk]).generate_state(2, np.uint32)
    return int(state[0]) | int(state[1]) << 32


def planted_documents(
    topic_word: torch.Tensor, weights: torch.Tensor, n_documents: int, length: int,
    random_state: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents of the single-topic model: counts ``(n_documents, V)`` and topics ``(n_documents,)``.

    Each document draws a topic ``h ~ weights`` and ``length`` words i.i.d. from ``topic_word[h]``.
    """
    topic_word = as_tensor("topic_word", topic_word, dtype=torch.float64)
    weights = as_tensor("weights", weights, dtype=torch.float64)
    n_documents = check_int("n_documents", n_documents, 1)
    length = check_int("length", length, 1)
    gen = make_generator(random_state)
    h = torch.multinomial(weights, n_documents, replacement=True, generator=gen)
    words = torch.multinomial(topic_word[h], length, replacement=True, generator=gen)
    counts = torch.zeros(n_documents, topic_word.shape[1], dtype=torch.float64)
    counts.scatter_add_(1, words, torch.ones_like(words, dtype=torch.float64))
    return counts, h
