"""The single-topic model of documents by the method of moments (Anandkumar, Ge, Hsu, Kakade,
Telgarsky 2014, §3.1 "exchangeable single topic models"; Anandkumar, Hsu, Kakade 2012).

Model: a document draws one topic ``h`` with ``P(h) = w_h`` and then its ``L ≥ 3`` words i.i.d.
from the topic-word distribution ``μ_h`` over a vocabulary of ``V`` words. With ``x_t = e_{word t}``,

    M2 = E[x_1 ⊗ x_2] = Σ_h w_h μ_h μ_hᵀ,          M3 = E[x_1 ⊗ x_2 ⊗ x_3] = Σ_h w_h μ_h^{⊗3}.

From a document's word counts ``c`` (``Σ c = L``; non-negative, integer or float — weighted or
fractional counts enter the same formulas) the unbiased estimates over *distinct* word positions
are

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
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from overtensor._checks import check_int, estimator_generator
from overtensor.moments._sklearn import (
    RANDOM_STATE,
    drop_short_documents,
    top_words,
    validate_counts,
    vocabulary_array,
)
from overtensor.moments.decompose import best_rank_cp
from overtensor.moments.whitening import Whitening


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


#: ``check_estimator`` checks the topic models fail by design (``tests/test_moments_sklearn.py``).
#: scikit-learn's check data are uniform ``[0, 1)`` entries over 1–5 columns, so every document
#: sums to fewer than 3 words; a topic model's third moment needs 3 word positions per document.
EXPECTED_FAILED_CHECKS = {
    name: "every document of the check's data has fewer than 3 words (entries in [0, 1) over a "
          "few columns); the third moment needs 3 word positions per document"
    for name in ("check_fit_score_takes_y", "check_estimators_nan_inf", "check_estimator_sparse_tag",
                 "check_estimator_sparse_array", "check_estimator_sparse_matrix",
                 "check_fit2d_1feature")
}


class TopicModelMixin:
    """What the two topic models share: count validation, short documents, the vocabulary.

    Subclasses set ``topic_word_`` in ``fit`` and call :meth:`_prepare_counts` first.
    """

    def _prepare_counts(self, X: Any, vocabulary: Any):
        C = validate_counts(self, X, reset=True)
        C, dropped = drop_short_documents(C, self.min_words)
        self.n_documents_dropped_ = dropped
        self.n_documents_ = C.shape[0]
        self.vocabulary_ = vocabulary_array(vocabulary, C.shape[1],
                                            getattr(self, "feature_names_in_", None))
        return C

    def top_words(self, n: int = 10) -> list[list[str]]:
        """The ``n`` most probable words of each topic (from ``vocabulary_``), most probable first."""
        check_is_fitted(self)
        return top_words(self.topic_word_, self.vocabulary_, check_int("n", n, 1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # word counts
        tags.input_tags.sparse = True
        return tags


class SingleTopicModel(TopicModelMixin, BaseEstimator):
    """Topics of a document–word count matrix, one topic per document, by the method of moments
    (a scikit-learn estimator).

    Parameters
    ----------
    n_components : int, default=1
        Number of topics ``k`` (``k ≤ V``).
    discovery : "auto" or tuple
        See :func:`overtensor.moments.decompose.best_rank_cp`.
    min_words : float or None, default=None
        Documents with fewer words (row sums) are dropped and counted in
        ``n_documents_dropped_``; at least 3 (the third moment needs 3 word positions).
        ``None``: a document with fewer than 3 words is an error.
    random_state : None, int, numpy Generator or RandomState, or torch.Generator

    Attributes
    ----------
    topic_word_ : ndarray ``(k, V)``
        Topic-word distributions (rows sum to 1).
    weights_ : ndarray ``(k,)``
        Topic proportions (sum to 1).
    vocabulary_ : ndarray ``(V,)`` of str
        The ``vocabulary`` given to ``fit``, else a DataFrame's column names, else ``word_<j>``.
    n_documents_ : int
        Documents used.
    n_documents_dropped_ : int
        Documents dropped for having fewer than ``min_words`` words.
    n_features_in_ : int
        ``V``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input (only then).
    whitened_error_ : float
    timings_ : dict

    Notes
    -----
    ``check_estimator`` passes (``tests/test_moments_sklearn.py``, on an instance with
    ``min_words=3``) except the checks in :data:`EXPECTED_FAILED_CHECKS`, whose data have no
    document of 3 words or more: ``check_fit_score_takes_y``, ``check_estimators_nan_inf``,
    ``check_estimator_sparse_tag``, ``check_estimator_sparse_array``,
    ``check_estimator_sparse_matrix``, ``check_fit2d_1feature``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "discovery": [StrOptions({"auto"}), tuple],
        "min_words": [None, Interval(Real, 3, None, closed="left")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, n_components: int = 1, *, discovery: str | tuple[str, ...] = "auto",
                 min_words: float | None = None, random_state: Any = None) -> None:
        self.n_components = n_components
        self.discovery = discovery
        self.min_words = min_words
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, *, vocabulary: Any = None) -> SingleTopicModel:
        """Estimate topics from counts ``X`` (``(n_documents, V)``: NumPy, torch, DataFrame or
        scipy.sparse; non-negative, integer or float). ``y`` is ignored.

        Parameters
        ----------
        vocabulary : sequence of str, optional
            The word of each column (e.g. ``CountVectorizer.get_feature_names_out()``).

        Raises
        ------
        ValueError
            On negative or non-finite counts, short documents (see ``min_words``), ``k > V``, a
            vocabulary of the wrong length or an ``M2`` with fewer than ``k`` positive eigenvalues.
        """
        C = self._prepare_counts(X, vocabulary)
        k = self.n_components
        if k > C.shape[1]:
            raise ValueError(f"n_components must be <= n_words={C.shape[1]}, got {k}")
        C = torch.from_numpy(C.toarray())
        gen = estimator_generator(self.random_state)
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
