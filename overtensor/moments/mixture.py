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

import time
from typing import Any

import numpy as np
import torch

from overtensor._checks import check_int, make_generator
from overtensor.moments.decompose import best_rank_cp
from overtensor.moments.sources import as_source
from overtensor.moments.whitening import Whitening, second_moment


def whitened_third_moment(source, whitening: Whitening, mean: torch.Tensor,
                          sigma2: float) -> torch.Tensor:
    """``M3(W, W, W)`` of a spherical mixture, ``(k, k, k)`` float64, in one pass over ``source``."""
    W = whitening.matrix
    k = W.shape[1]
    T = torch.zeros(k, k, k, dtype=torch.float64)
    n = 0
    for X in source.chunks():
        Y = X @ W
        T += torch.einsum("ni,nj,nl->ijl", Y, Y, Y)
        n += X.shape[0]
    T /= n
    a, G = W.T @ mean, W.T @ W
    corr = (torch.einsum("i,jl->ijl", a, G) + torch.einsum("j,il->ijl", a, G)
            + torch.einsum("l,ij->ijl", a, G))
    return T - sigma2 * corr


class GaussianMixture:
    """Spherical Gaussian mixture with a shared variance, learned from the first three moments.

    Parameters
    ----------
    n_components : int
        ``k``; must be below the number of features.
    discovery : "auto" or tuple of {"power-method", "beyond-lazy"}
        Starts of the rank-``k`` decomposition of the whitened moment (see
        :func:`overtensor.moments.decompose.best_rank_cp`).
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
    timings_ : dict
        Seconds spent in the second moment, the third moment and the decomposition.

    Examples
    --------
    >>> from overtensor.moments import GaussianMixture
    >>> gm = GaussianMixture(4, random_state=0).fit(X)          # doctest: +SKIP
    >>> gm.means_.shape, gm.predict(X)[:5]                      # doctest: +SKIP
    """

    def __init__(self, n_components: int, *, discovery: str | tuple[str, ...] = "auto",
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
        k = check_int("n_components", self.n_components, 1)
        d = source.dim
        if k >= d:
            raise ValueError(f"n_components must be < n_features={d}, got {k}")
        gen = make_generator(self.random_state)
        t0 = time.perf_counter()
        sm = second_moment(source, k, exact_below=self.exact_below, power_iters=self.power_iters,
                           random_state=gen, progress=progress)
        V = sm.eigenvectors
        Bc = torch.diag(sm.eigenvalues) - torch.outer(V.T @ sm.mean, V.T @ sm.mean)
        top = torch.linalg.eigvalsh((Bc + Bc.T) / 2).flip(0)[: k - 1]
        cov_trace = sm.trace - float(sm.mean @ sm.mean)
        sigma2 = max((cov_trace - float(top.sum())) / (d - k + 1), 0.0)
        whitening = Whitening(V[:, :k], sm.eigenvalues[:k] - sigma2)
        t1 = time.perf_counter()
        T = whitened_third_moment(source, whitening, sm.mean, sigma2)
        t2 = time.perf_counter()
        dec = best_rank_cp(T, k, discovery=self.discovery, random_state=gen)
        t3 = time.perf_counter()
        lam, v = dec.cp.weights, dec.cp.components
        weights = 1.0 / lam**2
        means = lam.unsqueeze(1) * whitening.unwhiten(v)
        self.means_ = means.numpy()
        self.weights_ = (weights / weights.sum()).numpy()
        self.covariance_ = float(sigma2)
        self.whitened_error_ = dec.relative_error
        self.n_features_in_ = d
        self.timings_ = {"second_moment": t1 - t0, "third_moment": t2 - t1, "decompose": t3 - t2}
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
