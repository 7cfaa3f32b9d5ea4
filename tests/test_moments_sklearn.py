"""The moment estimators and the decomposition estimator are scikit-learn estimators.

``check_estimator`` runs through ``parametrize_with_checks`` with the expected failures each
module declares (and documents) next to its estimator.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import overtensor as ot
from overtensor.moments import GaussianMixture, SingleTopicModel, SpectralLDA
from overtensor.moments.topics import EXPECTED_FAILED_CHECKS as TOPIC_FAILURES
from overtensor.tensors.estimator import EXPECTED_FAILED_CHECKS as CP_FAILURES

ESTIMATORS = [GaussianMixture(random_state=0), SingleTopicModel(min_words=3, random_state=0),
              SpectralLDA(min_words=3, random_state=0),
              ot.SymmetricCPDecomposition(method="power-method", random_state=0)]


def _expected(estimator):
    if isinstance(estimator, SingleTopicModel | SpectralLDA):
        return TOPIC_FAILURES
    if isinstance(estimator, ot.SymmetricCPDecomposition):
        return CP_FAILURES
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # model-mismatch warnings on check data
        check(estimator)


def test_every_declared_failure_is_documented_in_the_docstring():
    for cls, failures in ((SingleTopicModel, TOPIC_FAILURES), (SpectralLDA, TOPIC_FAILURES),
                          (ot.SymmetricCPDecomposition, CP_FAILURES)):
        for name in failures:
            assert name in cls.__doc__, (cls.__name__, name)


def _blobs(seed, n=3000, d=8, k=3):
    rng = np.random.default_rng(seed)
    M = 4 * np.eye(k, d)
    z = rng.choice(k, n, p=[0.3, 0.3, 0.4])
    return M[z] + rng.normal(size=(n, d)) * np.array([0.5, 1.0, 2.0])[z, None], z, M


def test_clone_get_set_params_and_numpy_random_states():
    gm = GaussianMixture(3, covariance_type="tied-spherical", random_state=np.random.default_rng(0))
    c = clone(gm)
    assert c.get_params()["covariance_type"] == "tied-spherical" and c is not gm
    assert gm.set_params(n_components=2).n_components == 2
    X, _, _ = _blobs(0)
    for rs in (np.random.default_rng(1), np.random.RandomState(1), 1, torch.Generator().manual_seed(1)):
        assert GaussianMixture(3, random_state=rs).fit(X).means_.shape == (3, 8)
    with pytest.raises(ValueError, match="random_state"):
        GaussianMixture(3, random_state="seed").fit(X)


def test_pipeline_and_grid_search_over_n_components_pick_the_true_k():
    X, _, _ = _blobs(1)
    # BIC (lower is better) through a scorer; score (mean log-likelihood) through the default.
    grid = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3, 4]}, cv=3,
                        scoring=lambda est, X, y=None: -est.bic(X))
    assert grid.fit(X).best_params_ == {"n_components": 3}
    # A few missing values, imputed in the pipeline. (Not a scaler: centring makes Σ w_i μ_i = 0
    # and the means linearly dependent, which the moment method excludes, and per-feature scaling
    # makes the components non-spherical.)
    X[np.random.default_rng(0).choice(3000, 20), 0] = np.nan
    pipe = make_pipeline(SimpleImputer(), GaussianMixture(random_state=0))
    grid = GridSearchCV(pipe, {"gaussianmixture__n_components": [2, 3, 4]}, cv=3)
    assert grid.fit(X).best_params_["gaussianmixture__n_components"] == 3
    assert pipe.set_params(gaussianmixture__n_components=3).fit(X).predict(X).shape == (3000,)


def test_mixture_methods_agree_with_each_other_and_with_scikit_learn_conventions():
    from scipy.special import logsumexp

    X, _, _ = _blobs(2)
    gm = GaussianMixture(3, random_state=0)
    labels = gm.fit_predict(X)
    assert np.array_equal(labels, gm.predict(X))
    P = gm.predict_proba(X)
    assert np.allclose(P.sum(1), 1) and np.array_equal(P.argmax(1), labels)
    assert gm.score(X) == pytest.approx(gm.score_samples(X).mean())
    p = 3 * 8 + 3 + 2
    assert gm.bic(X) == pytest.approx(-2 * gm.score(X) * 3000 + p * np.log(3000))
    assert gm.aic(X) == pytest.approx(-2 * gm.score(X) * 3000 + 2 * p)
    Xs, ys = gm.sample(20_000)
    assert Xs.shape == (20_000, 8) and np.all(np.diff(ys) >= 0)
    assert np.allclose(np.bincount(ys, minlength=3) / 20_000, gm.weights_, atol=0.02)
    # the log-likelihood is the Gaussian density with per-component variances
    d = X.shape[1]
    sq = ((X[:5, None] - gm.means_[None]) ** 2).sum(-1)
    direct = logsumexp(np.log(gm.weights_) - 0.5 * sq / gm.covariances_
                       - 0.5 * d * np.log(2 * np.pi * gm.covariances_), axis=1)
    assert np.allclose(gm.score_samples(X[:5]), direct)


@pytest.mark.parametrize("kind", ["spherical", "tied", "diag", "full"])
def test_to_sklearn_starts_em_for_every_covariance_type(kind):
    X, _, _ = _blobs(3)
    gm = GaussianMixture(3, random_state=0).fit(X)
    em = gm.to_sklearn(covariance_type=kind, max_iter=5, random_state=0).fit(X)
    assert em.covariance_type == kind and em.means_.shape == (3, 8)


def _hk_mixture(seed, n=30_000):
    """Hsu & Kakade (2013)'s configuration: d = 10, k = 3, means 4e₁, 4e₂, 4e₃, weights
    (0.3, 0.3, 0.4), σ = (0.5, 1, 2)."""
    rng = np.random.default_rng(seed)
    M, w, s = 4 * np.eye(3, 10), np.array([0.3, 0.3, 0.4]), np.array([0.5, 1.0, 2.0])
    z = rng.choice(3, n, p=w)
    return M[z] + s[z, None] * rng.normal(size=(n, 10)), M, w, s


def _matched(est, M):
    D = np.linalg.norm(est[:, None] - M[None], axis=-1)
    r, c = linear_sum_assignment(D)
    order = np.empty(len(c), dtype=int)
    order[c] = r
    return D[r, c].max(), order  # order[j]: the estimated component matched to true j


def test_per_component_variances_on_hsu_kakade_configuration_are_close_to_em():
    from sklearn.mixture import GaussianMixture as SkGM

    ours, em = [], []
    for seed in range(5):
        X, M, w, s = _hk_mixture(seed)
        gm = GaussianMixture(3, random_state=seed).fit(X)
        err, order = _matched(gm.means_, M)
        ours.append(err)
        em.append(_matched(SkGM(3, covariance_type="spherical", random_state=seed).fit(X).means_,
                           M)[0])
        assert np.abs(gm.weights_[order] - w).max() <= 0.05
        # σ_i within 20 % (the smallest component's variance is the noisiest moment estimate)
        assert np.allclose(np.sqrt(gm.covariances_[order]), s, rtol=0.2)
    # measured: ours 0.065–0.097, EM 0.042–0.058 (worst 0.097 against 0.058)
    assert max(ours) <= 2 * max(em)


def test_shared_variance_model_warns_when_the_data_contradict_it():
    X, M, _, _ = _hk_mixture(0)
    with pytest.warns(UserWarning, match="contradict a shared variance"):
        gm = GaussianMixture(3, covariance_type="tied-spherical", random_state=0).fit(X)
    assert _matched(gm.means_, M)[0] > 1.0  # the 1.58: the wrong model
    equal = np.random.default_rng(0).normal(size=(30_000, 10)) + 4 * np.eye(3, 10)[
        np.random.default_rng(1).choice(3, 30_000)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(3, covariance_type="tied-spherical", random_state=0).fit(equal)


def _documents(seed=0, n=3000, length=12):
    g = torch.Generator().manual_seed(seed)
    E = -torch.log(torch.rand(4, 30, generator=g, dtype=torch.float64))
    topics = E / E.sum(1, keepdim=True)
    counts, _ = ot.moments.planted_documents(topics, torch.full((4,), 0.25), n, length,
                                             random_state=seed)
    return counts.numpy(), topics.numpy()


@pytest.mark.parametrize("cls", [SingleTopicModel, SpectralLDA])
def test_topic_models_take_float_and_sparse_counts_and_a_vocabulary(cls):
    C, _ = _documents()
    words = [f"w{j}" for j in range(30)]
    dense = cls(4, random_state=0).fit(C, vocabulary=words)
    sparse = cls(4, random_state=0).fit(sp.csr_matrix(C), vocabulary=words)
    assert np.allclose(dense.topic_word_, sparse.topic_word_, atol=1e-8)
    top = dense.top_words(3)
    assert len(top) == 4 and all(len(t) == 3 and set(t) <= set(words) for t in top)
    assert top[0][0] == words[int(np.argmax(dense.topic_word_[0]))]
    halves = cls(4, random_state=0).fit(C / 2 + 0.0)  # fractional counts are counts too
    assert halves.topic_word_.shape == (4, 30)
    assert cls(4).fit(C).vocabulary_[7] == "word_7"
    with pytest.raises(ValueError, match="Negative values"):
        cls(4).fit(-C)
    with pytest.raises(ValueError, match="vocabulary must hold one word per column"):
        cls(4).fit(C, vocabulary=words[:5])


@pytest.mark.parametrize("cls", [SingleTopicModel, SpectralLDA])
def test_short_documents_are_an_error_or_dropped_and_counted(cls):
    C, _ = _documents()
    C[:7] = 0
    C[:7, 0] = 2  # seven documents of two words
    with pytest.raises(ValueError, match=r"7 of 3000 document\(s\) have fewer than 3 words.*min_words"):
        cls(4).fit(C)
    model = cls(4, min_words=3, random_state=0).fit(C)
    assert model.n_documents_dropped_ == 7 and model.n_documents_ == 2993
    with pytest.raises(ValueError, match="all 3000 documents have fewer than min_words=13"):
        cls(4, min_words=13).fit(C)
    with pytest.raises(ValueError, match="min_words"):
        cls(4, min_words=2).fit(C)


def test_centred_data_are_warned_about():
    X, _, _ = _blobs(4)
    with pytest.warns(UserWarning, match="X is centred"):
        GaussianMixture(3, random_state=0).fit(X - X.mean(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(3, random_state=0).fit(X)


def test_symmetric_cp_decomposition_recovers_a_planted_tensor_as_weights_and_factors():
    t = ot.random_target(order=3, dim=10, rank=2, random_state=0)
    T = ot.SymmetricCP(t.weights, t.factors, 3).to_dense()
    est = ot.SymmetricCPDecomposition(2, random_state=np.random.default_rng(0))  # beyond-lazy
    weights, factors = est.fit_transform(T.numpy())
    assert weights.shape == (2,) and len(factors) == 3 and factors[0].shape == (10, 2)
    assert est.relative_error_ < 1e-6 and est.n_features_in_ == 10
    rebuilt = torch.einsum("r,ir,jr,kr->ijk", weights, *factors)
    assert torch.allclose(rebuilt, T, atol=1e-6 * float(T.norm()))
    assert clone(est).get_params()["rank"] == 2
    with pytest.raises(ValueError, match="not symmetric"):
        ot.SymmetricCPDecomposition(2).fit(np.arange(27.0).reshape(3, 3, 3))


def test_randomized_whitening_gives_the_exact_paths_per_component_estimate():
    X, _, _, _ = _hk_mixture(0, n=10_000)
    exact = GaussianMixture(3, random_state=0).fit(X)
    randomized = GaussianMixture(3, exact_below=0, random_state=0).fit(X)  # block Krylov path
    assert np.allclose(randomized.means_, exact.means_, atol=1e-8)
    assert np.allclose(randomized.covariances_, exact.covariances_, rtol=1e-8)
