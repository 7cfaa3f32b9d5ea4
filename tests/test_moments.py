"""Method of moments: spherical Gaussian mixtures and single-topic models from their moments."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import overtensor as ot
from overtensor.moments import (
    GaussianMixture,
    SingleTopicModel,
    SphericalMixtureStream,
    as_source,
    best_rank_cp,
    planted_documents,
    second_moment,
)


def _mixture(seed, d=20, k=4, n=50_000, sigma=0.5):
    g = torch.Generator().manual_seed(100 + seed)
    M = torch.randn(k, d, generator=g, dtype=torch.float64)
    M = 2 * M / M.norm(dim=1, keepdim=True)
    src = SphericalMixtureStream(M, torch.full((k,), 1 / k), sigma, n, seed=seed)
    return M.numpy(), src, torch.cat(list(src.chunks())).numpy()


def _max_mean_error(est, truth):
    D = np.linalg.norm(est[:, None] - truth[None], axis=-1)
    r, c = linear_sum_assignment(D)
    return D[r, c].max()


def test_spherical_mixture_means_weights_and_variance_are_recovered_close_to_em():
    from sklearn.mixture import GaussianMixture as SkGM

    M, _, X = _mixture(0)
    gm = GaussianMixture(4, random_state=0).fit(X)
    err = _max_mean_error(gm.means_, M)
    em = SkGM(4, covariance_type="spherical", random_state=0).fit(X)
    # Sampling error of a mean is about σ·sqrt(d/(n w)) = 0.5·sqrt(20/12500) = 0.02.
    assert err < 0.1
    assert err <= 2 * _max_mean_error(em.means_, M) + 0.02
    assert np.allclose(np.sort(gm.weights_), 0.25, atol=0.02)
    assert gm.covariance_ == pytest.approx(0.25, rel=0.02)
    assert gm.predict(X[:5]).shape == (5,)


def test_em_started_from_the_moment_estimate_never_lowers_its_likelihood():
    _, _, X = _mixture(1, n=20_000)
    gm = GaussianMixture(4, random_state=1).fit(X)
    em = gm.to_sklearn(random_state=0, max_iter=20).fit(X)
    assert em.score(X) >= gm.score(X) - 1e-9


def test_a_streamed_source_gives_the_estimate_of_the_array_it_streams():
    _, src, X = _mixture(2, n=20_000)
    a = GaussianMixture(4, random_state=0).fit(X)
    b = GaussianMixture(4, random_state=0).fit(src)
    assert np.allclose(a.means_, b.means_, atol=1e-8)
    assert src.labels().shape == (20_000,)


def test_randomized_second_moment_equals_the_exact_one_on_a_low_rank_design():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 5, generator=g, dtype=torch.float64) @ torch.randn(
        5, 60, generator=g, dtype=torch.float64)
    src = as_source(X)
    exact = second_moment(src, 5)
    fast = second_moment(src, 5, exact_below=0, random_state=0)
    assert torch.allclose(fast.eigenvalues[:5], exact.eigenvalues[:5], rtol=1e-9)
    P = exact.eigenvectors[:, :5] @ exact.eigenvectors[:, :5].T
    Q = fast.eigenvectors[:, :5]
    assert torch.allclose(P @ Q, Q, atol=1e-8)


def test_refined_decomposition_is_never_farther_from_the_tensor_than_the_power_method():
    g = torch.Generator().manual_seed(3)
    Q = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64)).Q
    clean = ot.SymmetricCP(torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0], dtype=torch.float64), Q.T, 3)
    E = ot.random_target(3, 5, 1, noise=0.2, random_state=3).array  # a symmetric perturbation
    T = clean.to_dense() + 0.3 * E / E.norm()
    dec = best_rank_cp(T, 5, random_state=0)
    power = ot.fit(ot.DenseTarget(T), 5, method="power-method", random_state=0).cp
    power_err = float((power.to_dense() - T).norm() / T.norm())
    assert dec.relative_error <= power_err + 1e-12
    assert dec.cp.rank == 5


def test_single_topic_model_recovers_planted_topics():
    g = torch.Generator().manual_seed(0)
    E = -torch.log(torch.rand(5, 100, generator=g, dtype=torch.float64))
    mu = E / E.sum(1, keepdim=True)
    unit = mu / mu.norm(dim=1, keepdim=True)
    assert (unit @ unit.T - torch.eye(5)).max() <= 0.75  # the setting
    counts, _ = planted_documents(mu, torch.full((5,), 0.2), 20_000, 10, random_state=0)
    model = SingleTopicModel(5, random_state=0).fit(counts)
    est = torch.as_tensor(model.topic_word_)
    C = ((est / est.norm(dim=1, keepdim=True)) @ unit.T).numpy()
    r, c = linear_sum_assignment(-C)
    assert C[r, c].min() >= 0.99
    assert np.allclose(model.topic_word_.sum(1), 1)


@pytest.mark.parametrize("call, match", [
    (lambda X: GaussianMixture(20).fit(X), "n_components"),
    (lambda X: GaussianMixture(0).fit(X), "n_components"),
    (lambda X: GaussianMixture(2).fit(X[:, 0]), r"X must have shape \(n_samples, n_features\), got \(50,\)"),
    (lambda X: GaussianMixture(2).fit(X.astype(complex)), "complex"),
    (lambda X: GaussianMixture(2).predict(X), "not fitted"),
    (lambda X: best_rank_cp(np.ones((3, 3, 3)), 2, discovery=("als",)), "discovery"),
    (lambda X: best_rank_cp(np.ones((3, 3, 3)), 2, discovery=()), "discovery"),
    (lambda X: SingleTopicModel(2).fit(np.full((4, 6), -0.5)), "Negative values"),  # floats are counts too
    (lambda X: SingleTopicModel(2).fit(np.eye(6)), "fewer than 3 words"),
])
def test_bad_input_is_one_clear_error(call, match):
    X = np.random.default_rng(0).normal(size=(50, 20))
    with pytest.raises((ValueError, TypeError), match=match):
        call(X)


def test_cli_gmm_reads_a_csv_and_writes_json_and_npz(tmp_path, capsys):
    import json

    from overtensor.cli.main import main

    M, _, X = _mixture(3, n=5_000)
    path = tmp_path / "X.csv"
    np.savetxt(path, X, delimiter=",")
    assert main(["moments", "gmm", str(path), "-k", "4", "--json", "-o", str(tmp_path / "p.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.array(out["means"]).shape == (4, 20)
    assert _max_mean_error(np.array(out["means"]), M) < 0.3
    with np.load(tmp_path / "p.npz") as f:
        assert f["means"].shape == (4, 20)


def test_cli_moments_missing_or_bad_file_is_one_error_line(tmp_path, capsys):
    from overtensor.cli.main import main

    assert main(["moments", "gmm", str(tmp_path / "nope.csv"), "-k", "2"]) != 0
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\nx,y\n")
    assert main(["moments", "gmm", str(bad), "-k", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("data file" in line for line in err)
