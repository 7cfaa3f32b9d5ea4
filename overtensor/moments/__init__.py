"""Method of moments: learn latent-variable models from the moments of data (Anandkumar, Ge, Hsu,
Kakade, Telgarsky 2014), with the over-parameterized decomposition of overtensor at the core.

* :class:`GaussianMixture` — spherical Gaussian mixtures, one variance per component (Hsu &
  Kakade 2013) or one shared variance (``covariance_type="tied-spherical"``);
* :class:`SingleTopicModel` — the single-topic (multi-view) model of documents;
* :class:`SpectralLDA` — latent Dirichlet allocation with a known concentration ``α₀``;

the three are scikit-learn estimators (``BaseEstimator``; ``check_estimator`` passes up to the
expected failures their docstrings declare). Also:

* :func:`best_rank_cp` — the best rank-``k`` CP of a small noisy tensor;
* :func:`second_moment`, :class:`Whitening` — streaming second moments and whitening;
* :class:`SphericalMixtureStream` — synthetic samples generated chunk by chunk.
"""

from overtensor.moments.decompose import Decomposition, best_rank_cp
from overtensor.moments.lda import SpectralLDA, lda_moments, planted_lda_documents
from overtensor.moments.mixture import GaussianMixture
from overtensor.moments.sources import ArraySource, SphericalMixtureStream, as_source, planted_documents
from overtensor.moments.topics import SingleTopicModel
from overtensor.moments.whitening import SecondMoment, Whitening, second_moment

__all__ = [
    "ArraySource",
    "Decomposition",
    "GaussianMixture",
    "SecondMoment",
    "SingleTopicModel",
    "SpectralLDA",
    "SphericalMixtureStream",
    "Whitening",
    "as_source",
    "best_rank_cp",
    "lda_moments",
    "planted_documents",
    "planted_lda_documents",
    "second_moment",
]
