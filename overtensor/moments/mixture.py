"""Spherical Gaussian mixtures by the method of moments (Hsu & Kakade 2013; Anandkumar, Ge, Hsu,
Kakade, Telgarsky 2014, §3.2 and §4.3), with scikit-learn's estimator conventions.

Model: ``x = μ_z + σ g`` with ``P(z = i) = w_i``, ``g ~ N(0, I_d)``, ``k < d``. Then

* ``M1 = E[x] = Σ w_i μ_i``;
* ``σ²`` is the ``(d − k + 1)``-fold smallest eigenvalue of ``Cov(x)``; it is estimated here by
  the **mean of the bottom ``d − k + 1`` eigenvalues** (trace minus the top ``k − 1``) rather than
  the single smallest one, which an empirical covariance biases low (Marchenko–Pastur);
* ``M2 = E[x xᵀ] − σ² I = Σ w_i μ_i μ_iᵀ``;
* ``M3 = E[x⊗x⊗x] − σ² Σ_j (M1⊗e_j⊗e_j + e_j⊗M1⊗e_j + e_j⊗e_j⊗M1) = Σ w_i μ_i^{⊗3}``.

Whitening with ``M2``'s top-``k`` eigenpairs (:mod:`overtensor.moments.whitening`) turns ``M3``
into ``Σ_i w_i^{−1/2} v_i^{⊗3}`` with orthonormal ``v_i``; it is formed directly in whitened
coordinates (``k³`` entries, one pass over the data): with ``a = Wᵀ M1`` and ``G = Wᵀ W`` the
correction is ``σ² (a⊗G + G⊗a + a-in-the-middle)``. Its best rank-``k`` CP
(:func:`overtensor.moments.decompose.best_rank_cp`) gives ``λ_i = w_i^{−1/2}`` and ``v_i``, hence
``w_i = λ_i^{−2}`` and ``μ_i = λ_i · U diag(s)^{1/2} v_i``. No ``d × d`` or ``d³`` array is formed
when ``d > exact_below``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from overtensor._checks import check_int, make_generator
from overtensor.moments.decompose import best_rank_cp
from overtensor.moments.sources import as_source
from overtensor.moments.whitening import Whitening, second_moment

# Largest per-sample cache (x U and ‖x‖², float64) that GaussianMixture.fit keeps to score its
# candidates without another pass over the data: 1 GiB, e.g. n = 10⁷ samples at k = 12.
PROJECTIONS_BYTES = 2**30


def whitened_third_moment(source, whitening: Whitening, mean: torch.Tensor,
                          sigma2: float) -> torch.Tensor:
    """``M3(W, W, W)`` of a spherical mixture, ``(k, k, k)`` float64, in one pass over ``source``."""
    return _whitened_pass(source, whitening, mean, sigma2, keep_projections=False)[0]


def _whitened_pass(source, whitening: Whitening, mean: torch.Tensor, sigma2: float,
                   keep_projections: bool) -> tuple[torch.Tensor, Projections | None]:
    """The whitened third moment and, on request, every sample's ``(x U, ‖x‖²)``, in one pass.

    Per chunk: one ``(c, d) × (d, k)`` product ``P = X U`` in the chunk's dtype, then float64:
    ``X W = P diag(s)^{−1/2}`` and its ``k³`` outer products. ``O(n d k)`` in all.
    """
    U, s = whitening.basis, whitening.eigenvalues
    k = U.shape[1]
    T = torch.zeros(k, k, k, dtype=torch.float64)
    n = 0
    kept_P, kept_sq = [], []
    for X in source.chunks():
        P = (X @ U.to(X.dtype)).to(torch.float64)
        Y = P / s.sqrt()
        T += torch.einsum("ni,nj,nl->ijl", Y, Y, Y)
        n += X.shape[0]
        if keep_projections:
            kept_P.append(P)
            kept_sq.append(torch.einsum("ij,ij->i", X, X).to(torch.float64))
    T /= n
    W = whitening.matrix
    a, G = W.T @ mean, W.T @ W
    corr = (torch.einsum("i,jl->ijl", a, G) + torch.einsum("j,il->ijl", a, G)
            + torch.einsum("l,ij->ijl", a, G))
    proj = Projections(U, torch.cat(kept_P), torch.cat(kept_sq)) if keep_projections else None
    return T - sigma2 * corr, proj


@dataclass(frozen=True)
class Projections:
    """Every sample's coordinates in the whitening basis and squared norm (``O(n k)`` memory).

    Enough to evaluate the likelihood of any mixture whose means lie in ``span(U)`` (all the
    candidates do: ``μ = U diag(s)^{1/2} v λ``) without another pass over the data:
    ``‖x − μ‖² = ‖x‖² − 2 (xU)·(Uᵀμ) + ‖μ‖²``.

    Attributes
    ----------
    basis : Tensor ``(d, k)``
        ``U``, orthonormal columns.
    coords : Tensor ``(n, k)``, float64
        ``x U`` for every sample.
    sq_norms : Tensor ``(n,)``, float64
        ``‖x‖²`` for every sample.
    """

    basis: torch.Tensor
    coords: torch.Tensor
    sq_norms: torch.Tensor

    def mean_log_likelihood(self, means: torch.Tensor, weights: torch.Tensor,
                            sigma2: float) -> float:
        """As :func:`mean_log_likelihood` on the samples these were taken from, for means in
        ``span(U)`` (``(k, d)``)."""
        d = self.basis.shape[0]
        logw = torch.log(weights.clamp_min(1e-300))
        sq = (self.sq_norms[:, None] - 2 * self.coords @ (means @ self.basis).T
              + (means * means).sum(1)).clamp_min(0)
        ll = torch.logsumexp(logw - 0.5 * sq / sigma2, dim=1).mean()
        return float(ll) - 0.5 * d * math.log(2 * math.pi * sigma2)


@dataclass(frozen=True)
class WhitenedMoments:
    """The moments of a spherical mixture that the decomposition needs.

    Attributes
    ----------
    whitening : Whitening
        From ``M2 = E[x xᵀ] − σ² I``'s top-``k`` eigenpairs.
    tensor : Tensor ``(k, k, k)``
        The whitened, corrected third moment ``M3(W, W, W)``.
    sigma2 : float
        The estimated shared variance ``σ²``.
    mean : Tensor ``(d,)``
    projections : Projections or None
        Every sample's ``x U`` and ``‖x‖²`` (``keep_projections=True`` only).
    """

    whitening: Whitening
    tensor: torch.Tensor
    sigma2: float
    mean: torch.Tensor
    projections: Projections | None = None


def spherical_mixture_moments(source, k: int, *, exact_below: int = 2000, power_iters: int = 3,
                              random_state: Any = None, progress: Any = None,
                              keep_projections: bool = False) -> WhitenedMoments:
    """``σ²``, the whitening and the whitened third moment of a spherical mixture (module doc).

    Two passes over ``source`` when ``d ≤ exact_below`` (``3 + power_iters`` otherwise).
    ``keep_projections=True`` also keeps every sample's ``x U`` and ``‖x‖²`` from the last pass
    (:class:`Projections`, ``8 n (k + 1)`` bytes), so that likelihoods need no further pass.

    Raises
    ------
    ValueError
        If ``k >= d`` or ``M2`` has fewer than ``k`` eigenvalues above the noise level.
    """
    d = source.dim
    k = check_int("n_components", k, 1)
    if k >= d:
        raise ValueError(f"n_components must be < n_features={d}, got {k}")
    # progress(pass, total) over every pass: the second moment's, then the third moment's.
    n_passes = (1 if d <= exact_below else 2 + power_iters) + 1
    inner = (lambda p, _total: progress(p, n_passes)) if progress else None
    sm = second_moment(source, k, exact_below=exact_below, power_iters=power_iters,
                       random_state=random_state, progress=inner)
    V = sm.eigenvectors
    Bc = torch.diag(sm.eigenvalues) - torch.outer(V.T @ sm.mean, V.T @ sm.mean)
    top = torch.linalg.eigvalsh((Bc + Bc.T) / 2).flip(0)[: k - 1]
    cov_trace = sm.trace - float(sm.mean @ sm.mean)
    sigma2 = (cov_trace - float(top.sum())) / (d - k + 1)
    if not sigma2 > 0:
        raise ValueError(
            f"X: the estimated noise variance is {sigma2:.3g} (n={sm.n} samples in d={d}): a spherical "
            "mixture needs samples that spread in every direction; give more samples than features")
    whitening = Whitening(V[:, :k], sm.eigenvalues[:k] - sigma2)
    if progress:
        progress(n_passes - 1, n_passes)
    T, proj = _whitened_pass(source, whitening, sm.mean, sigma2, keep_projections)
    return WhitenedMoments(whitening, T, sigma2, sm.mean, proj)


def mixture_parameters(weights: torch.Tensor, components: torch.Tensor,
                       whitening: Whitening) -> tuple[torch.Tensor, torch.Tensor]:
    """Means ``(k, d)`` and mixing weights ``(k,)`` (summing to 1) from a CP of the whitened
    moment: ``w_i = λ_i^{−2}``, ``μ_i = λ_i U diag(s)^{1/2} v_i``."""
    means = weights.unsqueeze(1) * whitening.unwhiten(components)
    w = 1.0 / weights**2
    return means, w / w.sum()


def mean_log_likelihood(source, means: torch.Tensor, weights: torch.Tensor, sigma2: float) -> float:
    """Mean log-likelihood per sample of a spherical mixture, in one pass over ``source``."""
    return _mean_log_likelihoods(source, [(means, weights)], sigma2)[0]


def _mean_log_likelihoods(source, mixtures: list[tuple[torch.Tensor, torch.Tensor]],
                          sigma2: float) -> list[float]:
    """:func:`mean_log_likelihood` of several ``(means, weights)`` in a single pass."""
    d = source.dim
    totals, n = [0.0] * len(mixtures), 0
    for X in source.chunks():
        X = X.to(torch.float64)
        for j, (means, weights) in enumerate(mixtures):
            sq = torch.cdist(X, means) ** 2
            logw = torch.log(weights.clamp_min(1e-300))
            totals[j] += float(torch.logsumexp(logw - 0.5 * sq / sigma2, dim=1).sum())
        n += X.shape[0]
    return [t / n - 0.5 * d * math.log(2 * math.pi * sigma2) for t in totals]


class GaussianMixture:
    """Spherical Gaussian mixture with a shared variance, learned from the first three moments.

    Parameters
    ----------
    n_components : int
        ``k``; must be below the number of features.
    discovery : "auto" or tuple of {"power-method", "beyond-lazy"}
        Starts of the rank-``k`` decomposition of the whitened moment (see
        :func:`overtensor.moments.decompose.best_rank_cp`). Default ``("power-method",)``:
        measured in ``docs/moments.md``, the over-parameterized start costs seconds and did not
        give better mixtures on whitened moments, which are close to orthogonally decomposable.
    exact_below : int
        Dimension up to which ``E[x xᵀ]`` is diagonalized exactly; randomized above.
    power_iters : int
        Subspace iterations of the randomized path.
    random_state : int, torch.Generator or None

    Attributes
    ----------
    means_ : ndarray ``(k, d)``
    weights_ : ndarray ``(k,)``, positive, summing to 1
    covariance_ : float
        The shared variance ``σ²`` (per coordinate).
    whitened_error_ : float
        Relative error of the rank-``k`` CP of the whitened third moment.
    candidate_scores_ : dict of str to float
        Mean log-likelihood per sample (nats) of every candidate mixture, keyed by its start:
        ``"<start> (raw)"`` before and ``"<start>"`` after the L-BFGS refinement (see Notes).
    selected_ : str
        The key of ``candidate_scores_`` whose mixture was kept (the highest finite score).
    n_features_in_ : int
        ``d``.
    timings_ : dict
        Seconds spent in the second moment, the third moment and the decomposition.

    Notes
    -----
    Every start, before and after its L-BFGS refinement, gives a candidate mixture; the one with
    the highest log-likelihood on the data is kept (scored from every sample's ``x U`` and
    ``‖x‖²``, kept during the third-moment pass when they take at most ``PROJECTIONS_BYTES``;
    otherwise one more pass over the data for all candidates), because on data that is not
    exactly a mixture the CP closest to the moment in Frobenius norm can be a poor mixture (tiny
    or cancelling weights).

    Examples
    --------
    >>> import numpy as np
    >>> from overtensor.moments import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> means = 4.0 * np.eye(4, 8)
    >>> labels = rng.integers(0, 4, size=4000)
    >>> X = means[labels] + rng.standard_normal((4000, 8))
    >>> gm = GaussianMixture(4, random_state=0).fit(X)
    >>> gm.means_.shape
    (4, 8)
    >>> bool(np.abs(np.sort(np.abs(gm.means_).max(axis=1)) - 4.0).max() < 0.3)
    True
    """

    def __init__(self, n_components: int, *, discovery: str | tuple[str, ...] = ("power-method",),
                 exact_below: int = 2000, power_iters: int = 3, random_state: Any = None) -> None:
        self.n_components = n_components
        self.discovery = discovery
        self.exact_below = exact_below
        self.power_iters = power_iters
        self.random_state = random_state

    def fit(self, X: Any, progress: Any = None) -> GaussianMixture:
        """Estimate the mixture from samples ``X`` (``(n, d)`` array or a streamed source).

        Raises
        ------
        ValueError
            On bad input shapes, ``n_components >= n_features`` or a second moment that cannot be
            whitened (fewer than ``k`` components above the noise level).
        """
        source = as_source(X)
        gen = make_generator(self.random_state)
        t0 = time.perf_counter()
        keep = source.n * (self.n_components + 1) * 8 <= PROJECTIONS_BYTES
        mom = spherical_mixture_moments(source, self.n_components, exact_below=self.exact_below,
                                        power_iters=self.power_iters, random_state=gen,
                                        progress=progress, keep_projections=keep)
        t1 = time.perf_counter()
        dec = best_rank_cp(mom.tensor, self.n_components, discovery=self.discovery,
                           random_state=gen)
        t2 = time.perf_counter()
        candidates = {**{f"{k} (raw)": cp for k, cp in dec.starts.items()}, **dec.refined}
        mixtures = {name: mixture_parameters(cp.weights, cp.components, mom.whitening)
                    for name, cp in candidates.items()}
        if mom.projections is not None:  # no further pass over the data
            scores = {name: mom.projections.mean_log_likelihood(m, w, mom.sigma2)
                      for name, (m, w) in mixtures.items()}
        else:  # one pass for all candidates
            scores = dict(zip(mixtures, _mean_log_likelihoods(source, list(mixtures.values()),
                                                              mom.sigma2), strict=True))
        best = max(scores, key=lambda name: scores[name] if math.isfinite(scores[name]) else -math.inf)
        means, weights = mixture_parameters(candidates[best].weights, candidates[best].components,
                                            mom.whitening)
        self.means_, self.weights_ = means.numpy(), weights.numpy()
        self.covariance_ = mom.sigma2
        self.whitened_error_ = dec.relative_error
        self.selected_, self.candidate_scores_ = best, scores
        self.n_features_in_ = source.dim
        self.timings_ = {"moments": t1 - t0, "decompose": t2 - t1,
                         "select": time.perf_counter() - t2}
        return self

    def _check_fitted(self, X: Any) -> np.ndarray:
        if not hasattr(self, "means_"):
            raise ValueError("this GaussianMixture is not fitted yet: call fit(X) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have shape (n, {self.n_features_in_}), got {tuple(X.shape)}"
            )
        return X

    def _log_joint(self, X: np.ndarray) -> np.ndarray:
        d, s2 = X.shape[1], self.covariance_
        sq = ((X[:, None, :] - self.means_[None]) ** 2).sum(-1)
        w = np.clip(self.weights_, 1e-300, None)
        return np.log(w) - 0.5 * sq / s2 - 0.5 * d * np.log(2 * np.pi * s2)

    def predict(self, X: Any) -> np.ndarray:
        """The most likely component of every row of ``X``, ``(n,)``."""
        return self._log_joint(self._check_fitted(X)).argmax(1)

    def score(self, X: Any) -> float:
        """Mean log-likelihood per sample (nats), as :meth:`sklearn.mixture.GaussianMixture.score`."""
        from scipy.special import logsumexp

        return float(logsumexp(self._log_joint(self._check_fitted(X)), axis=1).mean())

    def to_sklearn(self, **kwargs: Any):
        """An unfitted :class:`sklearn.mixture.GaussianMixture` (spherical) initialized here.

        Call ``.fit(X)`` on it to run EM from the moment estimate (``means_init``,
        ``weights_init``, ``precisions_init``); ``kwargs`` go to its constructor.
        """
        from sklearn.mixture import GaussianMixture as SkGM

        if not hasattr(self, "means_"):
            raise ValueError("this GaussianMixture is not fitted yet: call fit(X) first")
        k = self.n_components
        w = np.clip(self.weights_, 1e-6, None)
        return SkGM(k, covariance_type="spherical", means_init=self.means_,
                    weights_init=w / w.sum(), precisions_init=np.full(k, 1 / self.covariance_),
                    **kwargs)
