"""The single-topic model of documents by the method of moments (Anandkumar, Ge, Hsu, Kakade,
Telgarsky 2014, §3.1 "exchangeable single topic models"; Anandkumar, Hsu, Kakade 2012).

Model: a document draws one topic ``h`` with ``P(h) = w_h`` and then its ``L ≥ 3`` words i.i.d.
from the topic-word distribution ``μ_h`` over a vocabulary of ``V`` words. With ``x_t = e_{word t}``,

    M2 = E[x_1 ⊗ x_2] = Σ_h w_h μ_h μ_hᵀ,          M3 = E[x_1 ⊗ x_2 ⊗ x_3] = Σ_h w_h μ_h^{⊗3}.

From a document's word counts ``c`` (``Σ c = L``) the unbiased estimates over *distinct* word
positions are

    M2 ≈ (c cᵀ − diag c) / (L(L−1)),
    M3 ≈ (c^{⊗3} − Σ_i c_i Sym₃(e_i⊗e_i⊗c) + 2 Σ_i c_i e_i^{⊗3}) / (L(L−1)(L−2)),

(``Sym₃`` the sum of the three placements), averaged over documents. ``M3`` is formed only in
whitened coordinates (``k³`` entries): with ``W`` (``V × k``, rows ``w_i``), ``a = Wᵀc`` and the
per-chunk weights ``s``, the middle term is ``Σ_i w_i ⊗ w_i ⊗ b_i`` (and placements) with
``b = (s ∘ C)ᵀ A``, so a chunk costs ``O(chunk · V · k + V k³)``. The rest is as for mixtures:
whiten with ``M2``'s top-``k`` eigenpairs, best rank-``k`` CP, ``w_h = λ_h^{−2}``,
``μ_h = λ_h U diag(s)^{1/2} v_h``, then clipped at 0 and normalized to a distribution.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from overtensor._checks import check_int, check_magnitude, make_generator
from overtensor.moments.decompose import best_rank_cp
from overtensor.moments.whitening import Whitening


def _counts(C: Any) -> torch.Tensor:
    if hasattr(C, "toarray"):  # scipy.sparse
        C = C.toarray()
    t = torch.as_tensor(np.asarray(C))
    if t.is_complex() or t.ndim != 2:
        raise ValueError(f"counts must be a real (n_documents, n_words) matrix, got shape "
                         f"{tuple(t.shape)} and dtype {t.dtype}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all() or (t < 0).any() or (t != t.round()).any():
        raise ValueError("counts must hold non-negative integer word counts")
    # The moments divide by L(L-1)(L-2) of each document's length L: it must be finite.
    check_magnitude("counts", t.sum(1, keepdim=True), 3, "the cubes of the document lengths",
                    advice="these are not word counts of a corpus")
    return t


def _pair_scale(L: torch.Tensor) -> torch.Tensor:
    return 1.0 / (L * (L - 1))


def _triple_scale(L: torch.Tensor) -> torch.Tensor:
    return 1.0 / (L * (L - 1) * (L - 2))


def cross_moment2(C: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """``M2`` of the single-topic model, ``(V, V)``, from counts ``C`` (``(n, V)``, ``L ≥ 2``)."""
    V = C.shape[1]
    M2 = torch.zeros(V, V, dtype=torch.float64)
    for Cc in torch.split(C, chunk_size):
        s = _pair_scale(Cc.sum(1))
        M2 += (Cc * s[:, None]).T @ Cc - torch.diag((Cc * s[:, None]).sum(0))
    return M2 / C.shape[0]


def whitened_cross_moment3(C: torch.Tensor, W: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """``M3(W, W, W)`` of the single-topic model, ``(k, k, k)``, from counts (``L ≥ 3``)."""
    k = W.shape[1]
    T = torch.zeros(k, k, k, dtype=torch.float64)
    for Cc in torch.split(C, chunk_size):
        s = _triple_scale(Cc.sum(1))
        A = Cc @ W
        Cs = Cc * s[:, None]
        T += torch.einsum("n,ni,nj,nl->ijl", s, A, A, A)
        B = Cs.T @ A  # (V, k): b_i = Σ_n s_n c_ni a_n
        mid = torch.einsum("ip,iq,ir->pqr", W, W, B)
        T -= mid + mid.permute(0, 2, 1) + mid.permute(2, 1, 0)
        T += 2 * torch.einsum("i,ip,iq,ir->pqr", Cs.sum(0), W, W, W)
    return T / C.shape[0]


class SingleTopicModel:
    """Topics of a document–word count matrix, one topic per document, by the method of moments.

    Parameters
    ----------
    n_components : int
        Number of topics ``k`` (``k ≤ V``).
    discovery : "auto" or tuple
        See :func:`overtensor.moments.decompose.best_rank_cp`.
    random_state : int, torch.Generator or None

    Attributes
    ----------
    topic_word_ : ndarray ``(k, V)``
        Topic-word distributions (rows sum to 1).
    weights_ : ndarray ``(k,)``
        Topic proportions (sum to 1).
    whitened_error_ : float
    timings_ : dict
    """

    def __init__(self, n_components: int, *, discovery: str | tuple[str, ...] = "auto",
                 random_state: Any = None) -> None:
        self.n_components = n_components
        self.discovery = discovery
        self.random_state = random_state

    def fit(self, counts: Any) -> SingleTopicModel:
        """Estimate topics from counts (``(n_documents, V)``, numpy, torch or scipy.sparse).

        Raises
        ------
        ValueError
            On non-integer or negative counts, documents with fewer than 3 words, ``k > V`` or
            an ``M2`` with fewer than ``k`` positive eigenvalues.
        """
        C = _counts(counts)
        k = check_int("n_components", self.n_components, 1)
        if k > C.shape[1]:
            raise ValueError(f"n_components must be <= n_words={C.shape[1]}, got {k}")
        short = int((C.sum(1) < 3).sum())
        if short:
            raise ValueError(f"counts: {short} document(s) have fewer than 3 words; "
                             "the third moment needs 3 distinct word positions")
        gen = make_generator(self.random_state)
        t0 = time.perf_counter()
        evals, evecs = torch.linalg.eigh(cross_moment2(C))
        whitening = Whitening(evecs[:, -k:].flip(1), evals[-k:].flip(0))
        t1 = time.perf_counter()
        T = whitened_cross_moment3(C, whitening.matrix)
        t2 = time.perf_counter()
        dec = best_rank_cp(T, k, discovery=self.discovery, random_state=gen)
        t3 = time.perf_counter()
        lam, v = dec.cp.weights, dec.cp.components
        mu = (lam.unsqueeze(1) * whitening.unwhiten(v)).clamp_min(0)
        self.topic_word_ = (mu / mu.sum(1, keepdim=True).clamp_min(1e-300)).numpy()
        w = 1.0 / lam**2
        self.weights_ = (w / w.sum()).numpy()
        self.whitened_error_ = dec.relative_error
        self.timings_ = {"second_moment": t1 - t0, "third_moment": t2 - t1, "decompose": t3 - t2}
        return self
