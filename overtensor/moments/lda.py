"""Latent Dirichlet allocation by the method of moments (Anandkumar, Foster, Hsu, Kakade, Liu,
*A spectral algorithm for latent Dirichlet allocation*, NIPS 2012; Anandkumar, Ge, Hsu, Kakade,
Telgarsky, JMLR 2014, §3.1 / Theorem 3.5).

Model: a document draws topic proportions ``h ~ Dirichlet(α)`` with ``α₀ = Σ_i α_i``, then each of
its ``L ≥ 3`` words i.i.d. from the mixed distribution ``Σ_i h_i μ_i`` over ``V`` words. With
``x_t = e_{word t}``, ``M1 = E[x_1]``, the raw pair moment ``P = E[x_1 ⊗ x_2]`` and the raw triple
moment ``R = E[x_1 ⊗ x_2 ⊗ x_3]`` (over distinct word positions), the corrected moments

    M2 = P − α₀/(α₀+1) M1⊗M1
       = Σ_i α_i / ((α₀+1) α₀) μ_i⊗μ_i,
    M3 = R − α₀/(α₀+2) (P⊗M1 + the two other placements of M1)
           + 2α₀² / ((α₀+1)(α₀+2)) M1⊗M1⊗M1
       = Σ_i 2 α_i / ((α₀+2)(α₀+1) α₀) μ_i^{⊗3}

are those of a mixture with weights ``w_i = α_i / ((α₀+1) α₀)`` (which sum to ``1/(α₀+1)``). At
``α₀ → 0`` they are ``P`` and ``R``, the moments of the single-topic model
(:mod:`overtensor.moments.topics`).

Estimation, never with a ``V × V × V`` array (nor a ``V × V`` one when ``V > exact_below``):

* ``P`` and ``R`` are the unbiased per-document estimates of :mod:`overtensor.moments.topics`
  (``P ≈ mean_n (c cᵀ − diag c)/(L(L−1))``; ``R`` likewise with ``L(L−1)(L−2)``), read from a
  sparse count matrix. ``M2`` is a sample part plus a rank-one correction: its top-``k``
  eigenpairs come from a dense ``V × V`` eigendecomposition when ``V ≤ exact_below``, otherwise
  from ARPACK (``scipy.sparse.linalg.eigsh``) on the operator
  ``v ↦ Cᵀ(s ∘ C v)/n − (d ∘ v)/n − β M1 (M1ᵀ v)`` (``O(nnz + V)`` per product).
* ``M3`` exists only whitened, ``M3(W, W, W)`` (``k³`` entries): ``R(W, W, W)`` as for the
  single-topic model, ``P(W, W) = WᵀPW`` from ``A = C W``, and ``a = WᵀM1``, so that the
  correction is ``α₀/(α₀+2) Sym(WᵀPW ⊗ a) − 2α₀²/((α₀+1)(α₀+2)) a⊗a⊗a``.

Unwhitening: whitening makes ``v_i = √w_i Wᵀμ_i`` orthonormal and
``M3(W,W,W) = Σ_i 2/(α₀+2) · w_i^{−1/2} v_i^{⊗3}``; a CP term ``λ_i v_i`` gives
``w_i = (2 / ((α₀+2) λ_i))²`` and ``μ_i ∝ U diag(s)^{1/2} v_i``. The Dirichlet parameters are
``α_i = α₀ · w_i / Σ_j w_j`` (exact moments give ``Σ_j w_j = 1/(α₀+1)`` and hence
``α_i = α₀ (α₀+1) w_i``; normalizing makes ``Σ α_i = α₀``, the concentration the user gave, on
empirical moments too).

Simplex rule for ``topic_word_``: an empirical ``μ_i`` has small negative entries (noise on
words the topic does not use). Negative entries are set to 0 and the row is divided by its sum
(AFHKL 2012 leave the projection open; this is the rule of :class:`SingleTopicModel` too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from overtensor._checks import check_float, check_int, check_magnitude, estimator_generator, make_generator
from overtensor.moments._sklearn import RANDOM_STATE, validate_counts
from overtensor.moments.decompose import best_rank_cp
from overtensor.moments.topics import TopicModelMixin
from overtensor.moments.whitening import Whitening, check_whitenable


def as_counts(counts: Any, name: str = "counts") -> sp.csr_matrix:
    """A validated ``(n_documents, V)`` CSR float64 matrix of word counts (dense or sparse input).

    Raises
    ------
    ValueError
        On a non-2-D, complex, non-finite or negative input (counts may be floats: weighted or
        fractional counts).
    """
    if sp.issparse(counts):
        C = sp.csr_matrix(counts)
    else:
        arr = counts.detach().cpu().numpy() if isinstance(counts, torch.Tensor) else np.asarray(counts)
        if arr.ndim != 2 or np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be a real (n_documents, n_words) matrix, got shape "
                             f"{arr.shape} and dtype {arr.dtype}")
        C = sp.csr_matrix(arr)
    if np.iscomplexobj(C.data) or C.ndim != 2:
        raise ValueError(f"{name} must be a real (n_documents, n_words) matrix, got dtype {C.dtype}")
    C = C.astype(np.float64)
    v = C.data
    if not np.isfinite(v).all() or (v < 0).any():
        raise ValueError(f"{name} must hold non-negative, finite word counts")
    if C.shape[0] < 1 or C.shape[1] < 1:
        raise ValueError(f"{name} must have at least one document and one word, got shape {C.shape}")
    # The moments divide by L(L-1)(L-2) of each document's length L: it must be finite.
    lengths = torch.from_numpy(np.asarray(C.sum(axis=1), dtype=np.float64))
    check_magnitude(name, lengths, 3, "the cubes of the document lengths",
                    advice="these are not word counts of a corpus")
    return C


def document_lengths(C: sp.csr_matrix, minimum: int = 3, name: str = "counts") -> np.ndarray:
    """Words per document, ``(n,)``; raises ``ValueError`` when one has fewer than ``minimum``."""
    L = np.asarray(C.sum(axis=1)).ravel()
    short = int((L < minimum).sum())
    if short:
        raise ValueError(f"{name}: {short} document(s) have fewer than {minimum} words; the third "
                         f"moment needs {minimum} distinct word positions")
    return L


@dataclass(frozen=True)
class LDAMoments:
    """Whitened moments of LDA (module docstring).

    Attributes
    ----------
    whitening : Whitening
        From the top-``k`` eigenpairs of ``M2``.
    tensor : Tensor ``(k, k, k)``
        ``M3(W, W, W)``.
    mean : Tensor ``(V,)``
        ``M1``, the expected word distribution.
    alpha0 : float
    """

    whitening: Whitening
    tensor: torch.Tensor
    mean: torch.Tensor
    alpha0: float


def pair_moment_dense(C: sp.csr_matrix) -> np.ndarray:
    """The raw pair moment ``P = E[x_1⊗x_2]``, ``(V, V)`` dense (for ``V`` small enough)."""
    L = document_lengths(C, 2)
    s = 1.0 / (L * (L - 1))
    Cs = sp.diags(s) @ C
    P = (C.T @ Cs).toarray() - np.diag(np.asarray(Cs.sum(axis=0)).ravel())
    return P / C.shape[0]


def lda_second_moment_eigs(C: sp.csr_matrix, k: int, alpha0: float, *, exact_below: int = 2000,
                           random_state: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` eigenpairs of ``M2 = P − α₀/(α₀+1) M1 M1ᵀ`` and ``M1``.

    Returns ``(eigenvalues (k,), eigenvectors (V, k), mean (V,))``, eigenvalues decreasing.
    Dense ``eigh`` when ``V ≤ exact_below``; ARPACK on the implicit operator otherwise (start
    vector drawn from ``random_state``).
    """
    n, V = C.shape
    L = document_lengths(C, 2)
    mean = np.asarray((sp.diags(1.0 / L) @ C).sum(axis=0)).ravel() / n
    beta = alpha0 / (alpha0 + 1.0)
    if V <= exact_below or k >= V - 1:  # ARPACK needs k < V - 1
        M2 = pair_moment_dense(C) - beta * np.outer(mean, mean)
        evals, evecs = np.linalg.eigh((M2 + M2.T) / 2)
        return evals[::-1][:k].copy(), evecs[:, ::-1][:, :k].copy(), mean
    from scipy.sparse.linalg import LinearOperator, eigsh

    s = 1.0 / (L * (L - 1))
    Cs = sp.diags(s) @ C
    diag = np.asarray(Cs.sum(axis=0)).ravel()
    CT = C.T.tocsr()

    def matvec(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v).reshape(V, -1)
        out = (CT @ (Cs @ v) - diag[:, None] * v) / n - beta * np.outer(mean, mean @ v)
        return out if out.shape[1] > 1 else out.ravel()

    op = LinearOperator((V, V), matvec=matvec, matmat=matvec, dtype=np.float64)
    gen = make_generator(random_state)
    v0 = torch.randn(V, generator=gen, dtype=torch.float64).numpy()
    evals, evecs = eigsh(op, k=k, which="LA", v0=v0, tol=1e-10)
    order = np.argsort(evals)[::-1]
    return evals[order], evecs[:, order], mean


def whitened_raw_triple_moment(C: sp.csr_matrix, W: np.ndarray, chunk_size: int = 8192) -> np.ndarray:
    """``R(W, W, W)``, ``(k, k, k)``, the whitened raw triple moment over distinct word positions
    (the single-topic ``M3`` of :func:`overtensor.moments.topics.whitened_cross_moment3`, on
    sparse counts)."""
    n, k = C.shape[0], W.shape[1]
    L = document_lengths(C, 3)
    T = np.zeros((k, k, k))
    for start in range(0, n, chunk_size):
        Cc = C[start:start + chunk_size]
        s = 1.0 / (L[start:start + chunk_size] * (L[start:start + chunk_size] - 1)
                   * (L[start:start + chunk_size] - 2))
        A = np.asarray(Cc @ W)
        Cs = sp.diags(s) @ Cc
        T += np.einsum("n,ni,nj,nl->ijl", s, A, A, A, optimize=True)
        B = np.asarray(Cs.T @ A)  # (V, k): b_i = Σ_n s_n c_ni a_n
        mid = np.einsum("ip,iq,ir->pqr", W, W, B, optimize=True)
        T -= mid + mid.transpose(0, 2, 1) + mid.transpose(2, 1, 0)
        T += 2 * np.einsum("i,ip,iq,ir->pqr", np.asarray(Cs.sum(axis=0)).ravel(), W, W, W,
                           optimize=True)
    return T / n


def whitened_pair_moment(C: sp.csr_matrix, W: np.ndarray) -> np.ndarray:
    """``P(W, W) = Wᵀ P W``, ``(k, k)``, without forming ``P``."""
    L = document_lengths(C, 2)
    s = 1.0 / (L * (L - 1))
    A = np.asarray(C @ W)
    diag = np.asarray((sp.diags(s) @ C).sum(axis=0)).ravel()
    return (A.T @ (s[:, None] * A) - (W * diag[:, None]).T @ W) / C.shape[0]


def lda_whitened_third_moment(C: sp.csr_matrix, W: np.ndarray, mean: np.ndarray,
                              alpha0: float) -> np.ndarray:
    """``M3(W, W, W)`` of LDA (module docstring), ``(k, k, k)`` float64."""
    R = whitened_raw_triple_moment(C, W)
    Pw = whitened_pair_moment(C, W)
    a = W.T @ mean
    sym = (np.einsum("pq,r->pqr", Pw, a) + np.einsum("pr,q->pqr", Pw, a)
           + np.einsum("qr,p->pqr", Pw, a))
    aaa = np.einsum("p,q,r->pqr", a, a, a)
    return (R - alpha0 / (alpha0 + 2) * sym
            + 2 * alpha0**2 / ((alpha0 + 1) * (alpha0 + 2)) * aaa)


def lda_moments(counts: Any, k: int, alpha0: float, *, exact_below: int = 2000,
                random_state: Any = None) -> LDAMoments:
    """Whitening and whitened third moment of LDA from counts (module docstring).

    Raises
    ------
    ValueError
        On bad counts, documents with fewer than 3 words, ``k > V`` (``k ≤ V`` is the true limit:
        ``k`` linearly independent topics in ``R^V`` give a rank-``k`` ``M2``), ``α₀ < 0`` or an
        ``M2`` with fewer than ``k`` positive eigenvalues (sampling noise, or topics that are
        nearly linearly dependent; likely as ``k`` nears ``V``): the message says how many topics
        the data support.
    """
    C = as_counts(counts)
    k = check_int("n_topics", k, 1)
    alpha0 = check_float("alpha0", alpha0, minimum=0.0)
    if k > C.shape[1]:
        raise ValueError(f"n_topics must be <= n_words={C.shape[1]}, got {k}")
    document_lengths(C, 3)
    evals, evecs, mean = lda_second_moment_eigs(C, k, alpha0, exact_below=exact_below,
                                                random_state=random_state)
    check_whitenable(evals, "topics")  # noise can leave the smallest of k <= V eigenvalues <= 0
    whitening = Whitening(torch.from_numpy(evecs), torch.from_numpy(evals))
    W = whitening.matrix.numpy()
    T = lda_whitened_third_moment(C, W, mean, alpha0)
    return LDAMoments(whitening, torch.from_numpy(T), torch.from_numpy(mean), alpha0)


def project_to_simplex_rows(mu: torch.Tensor) -> torch.Tensor:
    """Rows clipped at 0 and divided by their sum (the documented simplex rule)."""
    mu = mu.clamp_min(0)
    return mu / mu.sum(1, keepdim=True).clamp_min(1e-300)


class SpectralLDA(TopicModelMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                  BaseEstimator):
    """Latent Dirichlet allocation learned from the first three moments of a count matrix (a
    scikit-learn transformer: ``transform`` gives topic proportions).

    Parameters
    ----------
    n_topics : int, default=1
        Number of topics ``k`` (``k ≤ V``; the data may support fewer, see :func:`lda_moments`).
    alpha0 : float, default=1.0
        Dirichlet concentration ``α₀ = Σ α_i ≥ 0`` (assumed known, as in AFHKL 2012; ``0`` is the
        single-topic model). Small ``α₀`` means documents about one or few topics.
    discovery : "auto" or tuple
        See :func:`overtensor.moments.decompose.best_rank_cp`.
    exact_below : int, default=2000
        Vocabulary size up to which ``M2`` is diagonalized densely; ARPACK above.
    min_words : float or None, default=None
        Documents with fewer words are dropped and counted in ``n_documents_dropped_`` (at least
        3); ``None``: a document with fewer than 3 words is an error.
    random_state : None, int, numpy Generator or RandomState, or torch.Generator

    Attributes
    ----------
    topic_word_ : ndarray ``(k, V)``
        Topic-word distributions (rows on the simplex, module docstring's rule), sorted by
        decreasing ``alpha_``.
    alpha_ : ndarray ``(k,)``
        Dirichlet parameters, ``Σ alpha_ = alpha0``.
    weights_ : ndarray ``(k,)``
        ``alpha_ / alpha0`` (expected topic proportions). At ``alpha0 = 0`` (the single-topic
        limit) ``alpha_`` is all zeros and ``weights_`` are the topic probabilities
        ``(2 / ((α₀+2) λ_i))²`` normalized, as :attr:`SingleTopicModel.weights_` (which estimates
        the same model from dense counts).
    vocabulary_ : ndarray ``(V,)`` of str
        The ``vocabulary`` given to ``fit``, else a DataFrame's column names, else ``word_<j>``.
    n_documents_, n_documents_dropped_ : int
        Documents used, and dropped for having fewer than ``min_words`` words.
    n_features_in_ : int
    feature_names_in_ : ndarray of str (DataFrame input only)
    whitened_error_ : float
        Relative error of the rank-``k`` CP of the whitened third moment.
    timings_ : dict

    Notes
    -----
    ``check_estimator`` passes (``tests/test_moments_sklearn.py``, on an instance with
    ``min_words=3``) except the checks in
    :data:`overtensor.moments.topics.EXPECTED_FAILED_CHECKS`, whose data have no document of 3
    words or more: ``check_fit_score_takes_y``, ``check_estimators_nan_inf``,
    ``check_estimator_sparse_tag``, ``check_estimator_sparse_array``,
    ``check_estimator_sparse_matrix``, ``check_fit2d_1feature``.

    Examples
    --------
    >>> import torch
    >>> topic_word = torch.eye(3, 12) * 0.7 + 0.3 / 12
    >>> topic_word = topic_word / topic_word.sum(1, keepdim=True)
    >>> counts, _ = planted_lda_documents(topic_word, torch.full((3,), 1 / 3), 4000, 30,
    ...                                   random_state=0)
    >>> lda = SpectralLDA(3, alpha0=1.0, random_state=0).fit(counts)
    >>> tuple(lda.topic_word_.shape), round(float(lda.alpha_.sum()), 6)
    ((3, 12), 1.0)
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_topics": [Interval(Integral, 1, None, closed="left")],
        "alpha0": [Interval(Real, 0, None, closed="left")],
        "discovery": [StrOptions({"auto"}), tuple],
        "exact_below": [Interval(Integral, 0, None, closed="left")],
        "min_words": [None, Interval(Real, 3, None, closed="left")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, n_topics: int = 1, alpha0: float = 1.0, *,
                 discovery: str | tuple[str, ...] = "auto", exact_below: int = 2000,
                 min_words: float | None = None, random_state: Any = None) -> None:
        self.n_topics = n_topics
        self.alpha0 = alpha0
        self.discovery = discovery
        self.exact_below = exact_below
        self.min_words = min_words
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, *, vocabulary: Any = None) -> SpectralLDA:
        """Estimate topics from counts ``X`` (``(n_documents, V)``; NumPy, torch, DataFrame or
        scipy.sparse; non-negative, integer or float). ``y`` is ignored.

        Parameters
        ----------
        vocabulary : sequence of str, optional
            The word of each column (e.g. ``CountVectorizer.get_feature_names_out()``).

        Raises
        ------
        ValueError
            See :func:`lda_moments` and ``min_words`` (raised before any moment is computed).
        """
        C = self._prepare_counts(X, vocabulary)
        gen = estimator_generator(self.random_state)
        t0 = time.perf_counter()
        mom = lda_moments(C, self.n_topics, self.alpha0, exact_below=self.exact_below,
                          random_state=gen)
        t1 = time.perf_counter()
        k, a0 = self.n_topics, mom.alpha0
        dec = best_rank_cp(mom.tensor, k, discovery=self.discovery, random_state=gen)
        t2 = time.perf_counter()
        lam, v = dec.cp.weights, dec.cp.components
        w = (2.0 / ((a0 + 2.0) * lam)) ** 2
        order = torch.argsort(w, descending=True)
        mu = project_to_simplex_rows(mom.whitening.unwhiten(v[order]))
        self.topic_word_ = mu.numpy()
        self.weights_ = (w[order] / w.sum()).numpy()
        self.alpha_ = a0 * self.weights_
        self.whitened_error_ = dec.relative_error
        self.timings_ = {"moments": t1 - t0, "decompose": t2 - t1}
        return self

    @property
    def _n_features_out(self) -> int:
        """Number of topics (the names ``get_feature_names_out`` gives: ``spectrallda0`` …)."""
        return self.topic_word_.shape[0]

    def transform(self, X: Any, n_iter: int = 100) -> np.ndarray:
        """Topic proportions of documents, ``(n_documents, k)`` (rows sum to 1).

        Fixed point of ``γ_h = α_h + Σ_w c_w θ_h μ_hw / Σ_j θ_j μ_jw`` with ``θ = γ / Σγ``: the
        variational update of Blei, Ng, Jordan (2003, eq. 7) with the digamma mean replaced by
        the plain mean; ``n_iter`` iterations from ``θ = α / α₀`` (uniform when ``α₀ = 0``).

        Raises
        ------
        ValueError
            When not fitted, on bad counts or a different number of words than in ``fit``.
        """
        check_is_fitted(self)
        C = validate_counts(self, X, reset=False)
        n_iter = check_int("n_iter", n_iter, 1)
        return proportions(C, self.topic_word_, self.alpha_, n_iter)


def proportions(C: sp.csr_matrix, topic_word: np.ndarray, alpha: np.ndarray,
                n_iter: int = 100) -> np.ndarray:
    """Per-document topic proportions (see :meth:`SpectralLDA.transform`), ``(n, k)``."""
    k = topic_word.shape[0]
    prior = alpha if alpha.sum() > 0 else np.full(k, 1.0 / k)
    theta = np.tile(prior / prior.sum(), (C.shape[0], 1))
    Ccoo = C.tocoo()
    rows, cols, vals = Ccoo.row, Ccoo.col, Ccoo.data
    Mu = topic_word.T  # (V, k)
    n = C.shape[0]
    for _ in range(n_iter):
        mix = np.einsum("ek,ek->e", theta[rows], Mu[cols]).clip(1e-300)
        resp = theta[rows] * Mu[cols] * (vals / mix)[:, None]
        gamma = np.stack([np.bincount(rows, weights=resp[:, j], minlength=n) for j in range(k)], 1)
        gamma += alpha
        theta = gamma / gamma.sum(1, keepdims=True).clip(1e-300)
    return theta


def planted_lda_documents(topic_word: Any, alpha: Any, n_documents: int, length: int,
                          random_state: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents of LDA: counts ``(n_documents, V)`` and topic proportions ``(n_documents, k)``.

    Each document draws ``h ~ Dirichlet(alpha)`` and ``length`` words i.i.d. from
    ``Σ_i h_i topic_word[i]``. The Dirichlet draw is NumPy's (torch's takes no generator), seeded
    from one draw of the ``random_state`` generator, so the corpus is a function of it.

    Raises
    ------
    ValueError
        On rows of ``topic_word`` that are not distributions, non-positive ``alpha`` or bad sizes.
    """
    from overtensor._checks import as_tensor

    topic_word = as_tensor("topic_word", topic_word, dtype=torch.float64)
    alpha = as_tensor("alpha", alpha, dtype=torch.float64)
    if topic_word.ndim != 2 or (topic_word < 0).any() or not torch.allclose(
            topic_word.sum(1), torch.ones(topic_word.shape[0], dtype=torch.float64)):
        raise ValueError(f"topic_word must be (k, V) with rows on the simplex, got shape "
                         f"{tuple(topic_word.shape)}")
    if alpha.shape != (topic_word.shape[0],) or not bool((alpha > 0).all()):
        raise ValueError(f"alpha must be ({topic_word.shape[0]},) and positive, got {alpha.tolist()}")
    n_documents = check_int("n_documents", n_documents, 1)
    length = check_int("length", length, 1)
    gen = make_generator(random_state)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    h = torch.from_numpy(np.random.default_rng(seed).dirichlet(alpha.numpy(), n_documents))
    words = torch.multinomial(h @ topic_word, length, replacement=True, generator=gen)
    counts = torch.zeros(n_documents, topic_word.shape[1], dtype=torch.float64)
    counts.scatter_add_(1, words, torch.ones_like(words, dtype=torch.float64))
    return counts, h
