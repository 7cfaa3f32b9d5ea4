"""Spherical Gaussian mixtures by the method of moments (Hsu & Kakade 2013, *Learning mixtures of
spherical Gaussians: moment methods and spectral decompositions*, ITCS, Theorem 2; Anandkumar, Ge,
Hsu, Kakade, Telgarsky 2014, §3.2 and §4.3), as a scikit-learn estimator.

Model (``covariance_type="spherical"``, the default; scikit-learn's ``"spherical"`` too):
``x = μ_z + σ_z g`` with ``P(z = i) = w_i``, ``g ~ N(0, I_d)``, one variance ``σ_i²`` per
component, ``k < d``. Let ``σ̄² = Σ w_i σ_i²``. Then (Hsu & Kakade 2013, Theorem 2)

* ``M1 = E[x] = Σ w_i μ_i``;
* ``σ̄²`` is the ``(d − k + 1)``-fold smallest eigenvalue of ``Cov(x)``; it is estimated here by
  the **mean of the bottom ``d − k + 1`` eigenvalues** (trace minus the top ``k − 1``) rather than
  the single smallest one, which an empirical covariance biases low (Marchenko–Pastur);
* ``m = E[x (uᵀ(x − M1))²] = Σ w_i σ_i² μ_i`` for any unit ``u`` orthogonal to the span of the
  centred means; averaged here over the whole noise subspace (projector ``P`` onto the bottom
  ``d − k + 1`` eigenvectors of the covariance): ``m = E[x ‖P(x − M1)‖²] / (d − k + 1)``, one
  pass, no ``d × d`` array (``‖P y‖² = ‖y‖² − ‖V_{k−1}ᵀ y‖²``);
* ``M2 = E[x xᵀ] − σ̄² I = Σ w_i μ_i μ_iᵀ``;
* ``M3 = E[x⊗x⊗x] − Σ_j (m⊗e_j⊗e_j + e_j⊗m⊗e_j + e_j⊗e_j⊗m) = Σ w_i μ_i^{⊗3}``;
* after the decomposition, ``σ_i²`` solves ``Σ_i w_i σ_i² μ_i = m`` (least squares; the ``μ_i``
  are linearly independent).

``covariance_type="tied-spherical"`` is the model with one shared variance ``σ_i = σ``
(``m = σ² M1``; Anandkumar et al. 2014, §3.2).

Whitening with ``M2``'s top-``k`` eigenpairs (:mod:`overtensor.moments.whitening`) turns ``M3``
into ``Σ_i w_i^{−1/2} v_i^{⊗3}`` with orthonormal ``v_i``; it is formed directly in whitened
coordinates (``k³`` entries, one pass over the data): with ``a = Wᵀ m`` and ``G = Wᵀ W`` the
correction is ``a⊗G + G⊗a + a-in-the-middle``. Its best rank-``k`` CP
(:func:`overtensor.moments.decompose.best_rank_cp`) gives ``λ_i = w_i^{−1/2}`` and ``v_i``, hence
``w_i = λ_i^{−2}`` and ``μ_i = λ_i · U diag(s)^{1/2} v_i``. No ``d × d`` or ``d³`` array is formed
when ``d > exact_below``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from overtensor._checks import check_int, estimator_generator
from overtensor.moments._sklearn import RANDOM_STATE, check_matrix_shape
from overtensor.moments.decompose import best_rank_cp
from overtensor.moments.sources import as_source
from overtensor.moments.whitening import Whitening, second_moment

# Largest per-sample cache (x U and ‖x‖², float64) that GaussianMixture.fit keeps to score its
# candidates without another pass over the data: 1 GiB, e.g. n = 10⁷ samples at k = 12.
PROJECTIONS_BYTES = 2**30

COVARIANCE_TYPES = ("spherical", "tied-spherical")

#: Under ``covariance_type="tied-spherical"``, a warning when the per-component variances that the
#: same moments estimate (module docstring, ``m``) differ by more than this factor: the data then
#: contradict the shared-variance model (Hsu–Kakade's configuration σ = 0.5, 1, 2 has a factor 16).
VARIANCE_RATIO_WARN = 4.0

#: A warning when ``‖E[x]‖² ≤ CENTRED_BELOW · E‖x‖²`` (centred data, see ``_warn_if_contradicted``).
CENTRED_BELOW = 1e-6

#: Per-component variances are floored at this fraction of ``σ̄²`` (a noisy least-squares solve can
#: give a non-positive one on data that are not a spherical mixture; a warning says so).
VARIANCE_FLOOR = 1e-3


def whitened_third_moment(source, whitening: Whitening, mean: torch.Tensor,
                          sigma2: float) -> torch.Tensor:
    """``M3(W, W, W)`` of a shared-variance spherical mixture, ``(k, k, k)`` float64, one pass."""
    raw, _, _ = _whitened_pass(source, whitening, mean, None, keep_projections=False)
    return raw - _correction(whitening, sigma2 * mean)


def _correction(whitening: Whitening, m: torch.Tensor) -> torch.Tensor:
    """``Σ_j Sym(m⊗e_j⊗e_j)`` in whitened coordinates: ``a⊗G + G⊗a + …`` with ``a = Wᵀm``."""
    W = whitening.matrix
    a, G = W.T @ m, W.T @ W
    return (torch.einsum("i,jl->ijl", a, G) + torch.einsum("j,il->ijl", a, G)
            + torch.einsum("l,ij->ijl", a, G))


def _whitened_pass(source, whitening: Whitening, mean: torch.Tensor, noise_top: torch.Tensor | None,
                   keep_projections: bool
                   ) -> tuple[torch.Tensor, torch.Tensor | None, Projections | None]:
    """The raw whitened third moment ``E[y⊗y⊗y]`` (``y = Wᵀx``), Hsu–Kakade's ``m`` (when
    ``noise_top``, the top ``k − 1`` covariance eigenvectors ``(d, k − 1)``, is given) and, on
    request, every sample's ``(x U, ‖x‖²)``, in one pass.

    Per chunk: one ``(c, d) × (d, 2k)`` product in the chunk's dtype, then float64:
    ``X W = P diag(s)^{−1/2}`` and its ``k³`` outer products; ``‖P(x − M1)‖² = ‖x − M1‖² −
    ‖V_{k−1}ᵀ(x − M1)‖²`` and ``Σ_x x ‖P(x − M1)‖²``. ``O(n d k)`` in all.
    """
    U, s = whitening.basis, whitening.eigenvalues
    k, d = U.shape[1], U.shape[0]
    cols = [U] if noise_top is None else [U, noise_top, mean[:, None]]
    B = torch.cat(cols, dim=1)
    T = torch.zeros(k, k, k, dtype=torch.float64)
    m = torch.zeros(d, dtype=torch.float64) if noise_top is not None else None
    mean_top = noise_top.T @ mean if noise_top is not None else None
    n = 0
    kept_P, kept_sq = [], []
    for X in source.chunks():
        XB = (X @ B.to(X.dtype)).to(torch.float64)
        P = XB[:, :k]
        Y = P / s.sqrt()
        T += torch.einsum("ni,nj,nl->ijl", Y, Y, Y)
        n += X.shape[0]
        sq = torch.einsum("ij,ij->i", X, X).to(torch.float64) if (keep_projections or m is not None) \
            else None
        if m is not None:
            j = noise_top.shape[1]
            top = XB[:, k:k + j] - mean_top
            xm = XB[:, k + j]
            resid = (sq - 2 * xm + mean @ mean - (top * top).sum(1)).clamp_min(0)
            m += (X.T @ resid.to(X.dtype)).to(torch.float64)
        if keep_projections:
            kept_P.append(P)
            kept_sq.append(sq)
    T /= n
    if m is not None:
        m /= n * (d - noise_top.shape[1])
    proj = Projections(U, torch.cat(kept_P), torch.cat(kept_sq)) if keep_projections else None
    return T, m, proj


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
                            variances: Any) -> float:
        """As :func:`mean_log_likelihood` on the samples these were taken from, for means in
        ``span(U)`` (``(k, d)``) and variances ``(k,)`` (or one shared float)."""
        d = self.basis.shape[0]
        sq = (self.sq_norms[:, None] - 2 * self.coords @ (means @ self.basis).T
              + (means * means).sum(1)).clamp_min(0)
        return float(torch.logsumexp(_log_joint(sq, weights, variances, d), dim=1).mean())


def _log_joint(sq: torch.Tensor, weights: torch.Tensor, variances: Any, d: int) -> torch.Tensor:
    """``log w_i + log N(x; μ_i, σ_i² I)`` from squared distances ``sq`` ``(n, k)``."""
    var = torch.as_tensor(variances, dtype=torch.float64).expand(sq.shape[1])
    logw = torch.log(torch.as_tensor(weights, dtype=torch.float64).clamp_min(1e-300))
    return logw - 0.5 * sq / var - 0.5 * d * torch.log(2 * math.pi * var)


@dataclass(frozen=True)
class WhitenedMoments:
    """The moments of a spherical mixture that the decomposition needs.

    Attributes
    ----------
    whitening : Whitening
        From ``M2 = E[x xᵀ] − σ̄² I``'s top-``k`` eigenpairs.
    tensor : Tensor ``(k, k, k)``
        The whitened, corrected third moment ``M3(W, W, W)`` of the requested model.
    sigma2 : float
        The estimated mean variance ``σ̄² = Σ w_i σ_i²`` (the shared variance of the tied model).
    mean : Tensor ``(d,)``
    noise_moment : Tensor ``(d,)``
        Hsu–Kakade's ``m = Σ w_i σ_i² μ_i`` (module docstring), estimated under either model.
    projections : Projections or None
        Every sample's ``x U`` and ``‖x‖²`` (``keep_projections=True`` only).
    """

    whitening: Whitening
    tensor: torch.Tensor
    sigma2: float
    mean: torch.Tensor
    noise_moment: torch.Tensor
    projections: Projections | None = None


def spherical_mixture_moments(source, k: int, *, covariance_type: str = "tied-spherical",
                              exact_below: int = 2000, power_iters: int = 3,
                              random_state: Any = None, progress: Any = None,
                              keep_projections: bool = False) -> WhitenedMoments:
    """``σ̄²``, ``m``, the whitening and the whitened third moment of a spherical mixture (module
    doc), for ``covariance_type`` ``"spherical"`` (per-component variances) or ``"tied-spherical"``.

    Two passes over ``source`` when ``d ≤ exact_below`` (``3 + power_iters`` otherwise).
    ``keep_projections=True`` also keeps every sample's ``x U`` and ``‖x‖²`` from the last pass
    (:class:`Projections`, ``8 n (k + 1)`` bytes), so that likelihoods need no further pass.

    Raises
    ------
    ValueError
        If ``k >= d``, the noise variance is not positive or ``M2`` has fewer than ``k``
        eigenvalues above the noise level.
    """
    d = source.dim
    k = check_int("n_components", k, 1)
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {list(COVARIANCE_TYPES)}, "
                         f"got {covariance_type!r}")
    if k >= d:
        raise ValueError(f"n_components must be < n_features={d} (a moment method needs k < d), "
                         f"got {k}")
    # progress(pass, total) over every pass: the second moment's, then the third moment's.
    n_passes = (1 if d <= exact_below else 2 + power_iters) + 1
    inner = (lambda p, _total: progress(p, n_passes)) if progress else None
    sm = second_moment(source, k, exact_below=exact_below, power_iters=power_iters,
                       random_state=random_state, progress=inner)
    V = sm.eigenvectors
    Bc = torch.diag(sm.eigenvalues) - torch.outer(V.T @ sm.mean, V.T @ sm.mean)
    cov_vals, cov_vecs = torch.linalg.eigh((Bc + Bc.T) / 2)
    top = cov_vals.flip(0)[: k - 1]
    noise_top = V @ cov_vecs.flip(1)[:, : k - 1]  # top k − 1 covariance eigenvectors, (d, k − 1)
    cov_trace = sm.trace - float(sm.mean @ sm.mean)
    sigma2 = (cov_trace - float(top.sum())) / (d - k + 1)
    if not sigma2 > 0:
        raise ValueError(
            f"X: the estimated noise variance is {sigma2:.3g} (n={sm.n} samples in d={d}): a spherical "
            "mixture needs samples that spread in every direction; give more samples than features")
    whitening = Whitening(V[:, :k], sm.eigenvalues[:k] - sigma2)
    if progress:
        progress(n_passes - 1, n_passes)
    raw, m, proj = _whitened_pass(source, whitening, sm.mean, noise_top, keep_projections)
    vector = m if covariance_type == "spherical" else sigma2 * sm.mean
    return WhitenedMoments(whitening, raw - _correction(whitening, vector), sigma2, sm.mean, m,
                           proj)


def mixture_parameters(weights: torch.Tensor, components: torch.Tensor,
                       whitening: Whitening) -> tuple[torch.Tensor, torch.Tensor]:
    """Means ``(k, d)`` and mixing weights ``(k,)`` (summing to 1) from a CP of the whitened
    moment: ``w_i = λ_i^{−2}``, ``μ_i = λ_i U diag(s)^{1/2} v_i``."""
    means = weights.unsqueeze(1) * whitening.unwhiten(components)
    w = 1.0 / weights**2
    return means, w / w.sum()


def component_variances(means: torch.Tensor, weights: torch.Tensor,
                        noise_moment: torch.Tensor) -> torch.Tensor:
    """``σ_i²`` solving ``Σ_i w_i σ_i² μ_i = m`` in least squares (Hsu & Kakade 2013, Thm. 2),
    ``(k,)``, not floored."""
    A = (weights.unsqueeze(1) * means).T  # (d, k)
    return torch.linalg.lstsq(A, noise_moment.unsqueeze(1)).solution.squeeze(1)


def mean_log_likelihood(source, means: torch.Tensor, weights: torch.Tensor, variances: Any) -> float:
    """Mean log-likelihood per sample of a spherical mixture, in one pass over ``source``
    (``variances``: ``(k,)`` or one shared float)."""
    return _mean_log_likelihoods(source, [(means, weights, variances)])[0]


def _mean_log_likelihoods(source, mixtures: list[tuple[torch.Tensor, torch.Tensor, Any]]
                          ) -> list[float]:
    """:func:`mean_log_likelihood` of several ``(means, weights, variances)`` in a single pass."""
    d = source.dim
    totals, n = [0.0] * len(mixtures), 0
    for X in source.chunks():
        X = X.to(torch.float64)
        for j, (means, weights, variances) in enumerate(mixtures):
            sq = torch.cdist(X, means) ** 2
            totals[j] += float(torch.logsumexp(_log_joint(sq, weights, variances, d), dim=1).sum())
        n += X.shape[0]
    return [t / n for t in totals]


def _is_source(X: Any) -> bool:
    return hasattr(X, "chunks") and hasattr(X, "n") and hasattr(X, "dim")


class GaussianMixture(DensityMixin, BaseEstimator):
    """Spherical Gaussian mixture learned from the first three moments (a scikit-learn estimator).

    Parameters
    ----------
    n_components : int, default=1
        ``k``; must be below the number of features (a moment method needs ``k < d``).
    covariance_type : {"spherical", "tied-spherical"}, default="spherical"
        ``"spherical"``: one variance per component, ``x = μ_z + σ_z g`` (Hsu & Kakade 2013; the
        model scikit-learn's ``GaussianMixture(covariance_type="spherical")`` fits by EM).
        ``"tied-spherical"``: one variance shared by all components (Anandkumar et al. 2014,
        §3.2); it warns when the data contradict it (per-component variances estimated from the
        same moments more than :data:`VARIANCE_RATIO_WARN` apart).
    discovery : "auto" or tuple of {"power-method", "beyond-lazy"}
        Starts of the rank-``k`` decomposition of the whitened moment (see
        :func:`overtensor.moments.decompose.best_rank_cp`). Default ``("power-method",)``:
        measured in ``docs/moments.md``, the over-parameterized start costs seconds and did not
        give better mixtures on whitened moments, which are close to orthogonally decomposable.
    exact_below : int, default=2000
        Dimension up to which ``E[x xᵀ]`` is diagonalized exactly; randomized above.
    power_iters : int, default=3
        Subspace iterations of the randomized path.
    random_state : None, int, numpy Generator or RandomState, or torch.Generator
        Seeds every random draw (through one ``torch.Generator``,
        :func:`overtensor._checks.estimator_generator`).

    Attributes
    ----------
    means_ : ndarray ``(k, d)``
    weights_ : ndarray ``(k,)``, positive, summing to 1
    covariances_ : ndarray ``(k,)``
        Per-component variance ``σ_i²`` (per coordinate), as scikit-learn's spherical
        ``covariances_``; all equal under ``"tied-spherical"``.
    precisions_ : ndarray ``(k,)``
        ``1 / covariances_``.
    covariance_ : float
        The mean variance ``σ̄² = Σ w_i σ_i²`` (the shared variance under ``"tied-spherical"``).
    whitened_error_ : float
        Relative error of the rank-``k`` CP of the whitened third moment.
    candidate_scores_ : dict of str to float
        Mean log-likelihood per sample (nats) of every candidate mixture, keyed by its start:
        ``"<start> (raw)"`` before and ``"<start>"`` after the L-BFGS refinement (see Notes).
    selected_ : str
        The key of ``candidate_scores_`` whose mixture was kept (the highest finite score).
    n_features_in_ : int
        ``d``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame ``X`` (only then).
    timings_ : dict
        Seconds spent in the moments, the decomposition and the selection.

    Notes
    -----
    Every start, before and after its L-BFGS refinement, gives a candidate mixture; the one with
    the highest log-likelihood on the data is kept (scored from every sample's ``x U`` and
    ``‖x‖²``, kept during the third-moment pass when they take at most ``PROJECTIONS_BYTES``;
    otherwise one more pass over the data for all candidates), because on data that is not
    exactly a mixture the CP closest to the moment in Frobenius norm can be a poor mixture (tiny
    or cancelling weights).

    ``sklearn.utils.estimator_checks.check_estimator`` passes every check with no expected
    failure (``tests/test_moments_sklearn.py``).

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

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "discovery": [StrOptions({"auto"}), tuple],
        "exact_below": [Interval(Integral, 0, None, closed="left")],
        "power_iters": [Interval(Integral, 0, None, closed="left")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, n_components: int = 1, *, covariance_type: str = "spherical",
                 discovery: str | tuple[str, ...] = ("power-method",), exact_below: int = 2000,
                 power_iters: int = 3, random_state: Any = None) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.discovery = discovery
        self.exact_below = exact_below
        self.power_iters = power_iters
        self.random_state = random_state

    def _source(self, X: Any, reset: bool):
        """A :class:`~overtensor.moments.sources.Source` of validated samples."""
        if _is_source(X):  # a stream: validated chunk by chunk by its own maker
            if reset:
                self.n_features_in_ = X.dim
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            return X
        check_matrix_shape("X", X, min_rows=2)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32],
                          ensure_min_samples=2)
        return as_source(np.require(X, requirements=["W"]))  # torch refuses read-only views

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, *, progress: Any = None) -> GaussianMixture:
        """Estimate the mixture from samples ``X`` (``(n, d)`` array, DataFrame or a streamed
        source, :mod:`overtensor.moments.sources`). ``y`` is ignored.

        Raises
        ------
        ValueError
            On bad parameters or input shapes, ``n_components >= n_features`` or a second moment
            that cannot be whitened (fewer than ``k`` components above the noise level).
        """
        source = self._source(X, reset=True)
        k = self.n_components
        gen = estimator_generator(self.random_state)
        t0 = time.perf_counter()
        keep = source.n * (k + 1) * 8 <= PROJECTIONS_BYTES
        mom = spherical_mixture_moments(source, k, covariance_type=self.covariance_type,
                                        exact_below=self.exact_below,
                                        power_iters=self.power_iters, random_state=gen,
                                        progress=progress, keep_projections=keep)
        t1 = time.perf_counter()
        dec = best_rank_cp(mom.tensor, k, discovery=self.discovery, random_state=gen)
        t2 = time.perf_counter()
        candidates = {**{f"{k} (raw)": cp for k, cp in dec.starts.items()}, **dec.refined}
        mixtures = {}
        for name, cp in candidates.items():
            means, weights = mixture_parameters(cp.weights, cp.components, mom.whitening)
            mixtures[name] = (means, weights, self._variances(means, weights, mom))
        if mom.projections is not None:  # no further pass over the data
            scores = {name: mom.projections.mean_log_likelihood(*mix)
                      for name, mix in mixtures.items()}
        else:  # one pass for all candidates
            scores = dict(zip(mixtures, _mean_log_likelihoods(source, list(mixtures.values())),
                              strict=True))
        best = max(scores, key=lambda name: scores[name] if math.isfinite(scores[name]) else -math.inf)
        means, weights, variances = mixtures[best]
        self.means_, self.weights_ = means.numpy(), weights.numpy()
        self.covariances_ = variances.numpy()
        self.precisions_ = 1.0 / self.covariances_
        self.covariance_ = float(weights @ variances)
        self.whitened_error_ = dec.relative_error
        self.selected_, self.candidate_scores_ = best, scores
        self.timings_ = {"moments": t1 - t0, "decompose": t2 - t1,
                         "select": time.perf_counter() - t2}
        self._warn_if_contradicted(means, weights, mom)
        return self

    def _variances(self, means: torch.Tensor, weights: torch.Tensor,
                   mom: WhitenedMoments) -> torch.Tensor:
        """The model's variances ``(k,)`` for a candidate mixture, floored (:data:`VARIANCE_FLOOR`)."""
        if self.covariance_type == "tied-spherical":
            return torch.full((means.shape[0],), mom.sigma2, dtype=torch.float64)
        var = component_variances(means, weights, mom.noise_moment)
        return var.clamp_min(VARIANCE_FLOOR * mom.sigma2)

    def _warn_if_contradicted(self, means: torch.Tensor, weights: torch.Tensor,
                              mom: WhitenedMoments) -> None:
        # Centred data (StandardScaler's default) have Σ w_i μ_i = E[x] = 0: the means are then
        # linearly dependent, which the moment method excludes (Hsu & Kakade 2013, Condition 1).
        spread = float(mom.sigma2) * mom.mean.numel() + float((means * means).sum(1) @ weights)
        if float(mom.mean @ mom.mean) <= CENTRED_BELOW * spread:
            warnings.warn(
                "GaussianMixture: X is centred (its mean is 0), so the component means are "
                "linearly dependent (Σ w_i μ_i = 0) and the moments cannot identify them (Hsu & "
                "Kakade 2013 need linearly independent means); fit on data that are not centred, "
                "e.g. StandardScaler(with_mean=False)", UserWarning, stacklevel=3)
        var = component_variances(means, weights, mom.noise_moment)
        if self.covariance_type == "spherical":
            bad = [i for i, v in enumerate(var.tolist()) if v < VARIANCE_FLOOR * mom.sigma2]
            if bad:
                warnings.warn(
                    f"GaussianMixture: the moment estimate of the variance of component(s) {bad} is "
                    f"not positive ({', '.join(f'{float(var[i]):.3g}' for i in bad)}; floored at "
                    f"{VARIANCE_FLOOR * mom.sigma2:.3g}): the data do not look like a spherical "
                    "mixture", UserWarning, stacklevel=3)
            return
        lo, hi = float(var.min()), float(var.max())
        if lo <= 0 or hi > VARIANCE_RATIO_WARN * lo:
            warnings.warn(
                "GaussianMixture(covariance_type='tied-spherical'): the data contradict a shared "
                f"variance: per-component variances estimated from the same moments range from "
                f"{lo:.3g} to {hi:.3g} (more than a factor {VARIANCE_RATIO_WARN:g}); use "
                "covariance_type='spherical'", UserWarning, stacklevel=3)

    # -- scoring ------------------------------------------------------------------------------
    def _estimate_weighted_log_prob(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        check_matrix_shape("X", X)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        X = torch.from_numpy(np.require(X, dtype=np.float64, requirements=["W"]))
        M = torch.from_numpy(np.asarray(self.means_, dtype=np.float64))
        sq = ((X * X).sum(1, keepdim=True) - 2 * X @ M.T + (M * M).sum(1)).clamp_min(0)
        return _log_joint(sq, torch.from_numpy(np.asarray(self.weights_)),
                          torch.from_numpy(np.asarray(self.covariances_, dtype=np.float64)),
                          X.shape[1]).numpy()

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of every row of ``X`` under the mixture, ``(n,)`` (nats)."""
        from scipy.special import logsumexp

        return logsumexp(self._estimate_weighted_log_prob(X), axis=1)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per sample (nats), as :meth:`sklearn.mixture.GaussianMixture.score`."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component for every row of ``X``, ``(n, k)``."""
        from scipy.special import softmax

        return softmax(self._estimate_weighted_log_prob(X), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """The most likely component of every row of ``X``, ``(n,)``."""
        return self._estimate_weighted_log_prob(X).argmax(1)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X)`` then the labels of ``X`` (``X`` must be an array, not a stream)."""
        return self.fit(X).predict(X)

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        n_var = 1 if self.covariance_type == "tied-spherical" else k
        return k * d + n_var + k - 1

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on ``X`` (lower is better), as scikit-learn's."""
        n = np.shape(X)[0]
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion on ``X`` (lower is better), as scikit-learn's."""
        return -2 * self.score(X) * np.shape(X)[0] + 2 * self._n_parameters()

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` draws from the fitted mixture: ``(X (n, d), labels (n,))``, grouped by
        component as scikit-learn's ``sample``, drawn from ``random_state``."""
        check_is_fitted(self)
        n_samples = check_int("n_samples", n_samples, 1)
        gen = estimator_generator(self.random_state)
        w = torch.from_numpy(np.asarray(self.weights_, dtype=np.float64))
        z = torch.multinomial(w, n_samples, replacement=True, generator=gen).sort().values
        g = torch.randn(n_samples, self.means_.shape[1], generator=gen, dtype=torch.float64)
        sd = torch.from_numpy(np.sqrt(np.asarray(self.covariances_, dtype=np.float64)))
        X = torch.from_numpy(np.asarray(self.means_, dtype=np.float64))[z] + sd[z, None] * g
        return X.numpy(), z.numpy()

    def to_sklearn(self, **kwargs: Any):
        """An unfitted :class:`sklearn.mixture.GaussianMixture` initialized at this estimate.

        Call ``.fit(X)`` on it to run EM from the moment estimate (``means_init``,
        ``weights_init``, ``precisions_init``, the latter in the shape that ``covariance_type``
        needs: ``(k,)`` spherical, ``(d, d)`` tied, ``(k, d)`` diag, ``(k, d, d)`` full, from the
        per-component variances; ``tied`` from ``covariance_``). ``kwargs`` go to its
        constructor and override these (``covariance_type`` defaults to ``"spherical"``).

        Raises
        ------
        ValueError
            When not fitted, or on an unknown ``covariance_type``.
        """
        from sklearn.mixture import GaussianMixture as SkGM

        check_is_fitted(self)
        k, d = self.means_.shape
        kind = kwargs.pop("covariance_type", "spherical")
        prec = np.asarray(self.precisions_, dtype=np.float64)
        inits = {"spherical": lambda: prec.copy(),
                 "tied": lambda: np.eye(d) / self.covariance_,
                 "diag": lambda: np.repeat(prec[:, None], d, axis=1),
                 "full": lambda: prec[:, None, None] * np.eye(d)[None]}
        if kind not in inits:
            raise ValueError(f"covariance_type must be one of {list(inits)}, got {kind!r}")
        w = np.clip(self.weights_, 1e-6, None)
        params = {"n_components": k, "covariance_type": kind, "means_init": self.means_,
                  "weights_init": w / w.sum(), "precisions_init": inits[kind]()}
        params.update(kwargs)
        return SkGM(**params)
