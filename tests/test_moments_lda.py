"""Latent Dirichlet allocation by the method of moments (overtensor.moments.lda)."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

from overtensor.moments import SingleTopicModel, SpectralLDA, planted_lda_documents
from overtensor.moments.lda import lda_moments, lda_second_moment_eigs
from overtensor.moments.topics import cross_moment2, whitened_cross_moment3


def _topics(seed, k=5, V=100):
    g = torch.Generator().manual_seed(seed)
    E = -torch.log(torch.rand(k, V, generator=g, dtype=torch.float64))  # Dirichlet(1) rows
    mu = E / E.sum(1, keepdim=True)
    unit = mu / mu.norm(dim=1, keepdim=True)
    return mu, unit


def _matched_cos(est, unit):
    est = torch.as_tensor(est)
    C = ((est / est.norm(dim=1, keepdim=True)) @ unit.T).numpy()
    r, c = linear_sum_assignment(-C)
    return C[r, c], c


def _dense_moments(counts, alpha0):
    """M1, M2, M3 of LDA with every ordered triple of distinct word positions spelled out."""
    n, V = counts.shape
    P, R, m = np.zeros((V, V)), np.zeros((V, V, V)), np.zeros(V)
    for c in counts:
        words = np.repeat(np.arange(V), c.astype(int))
        L = len(words)
        m += np.bincount(words, minlength=V) / L
        for i, j in itertools.permutations(range(L), 2):
            P[words[i], words[j]] += 1 / (L * (L - 1))
        for i, j, t in itertools.permutations(range(L), 3):
            R[words[i], words[j], words[t]] += 1 / (L * (L - 1) * (L - 2))
    m, P, R = m / n, P / n, R / n
    a0 = alpha0
    M2 = P - a0 / (a0 + 1) * np.outer(m, m)
    sym = (np.einsum("ij,l->ijl", P, m) + np.einsum("il,j->ijl", P, m)
           + np.einsum("jl,i->ijl", P, m))
    M3 = R - a0 / (a0 + 2) * sym + 2 * a0**2 / ((a0 + 1) * (a0 + 2)) * np.einsum("i,j,l->ijl", m, m, m)
    return m, M2, M3


@pytest.mark.parametrize("alpha0", [0.0, 0.7, 5.0])
def test_implicit_whitened_moments_equal_the_dense_formula(alpha0):
    counts, _ = planted_lda_documents(_topics(1, k=3, V=7)[0], torch.full((3,), 0.5), 40, 5,
                                      random_state=1)
    mom = lda_moments(counts.numpy(), 3, alpha0)
    m, M2, M3 = _dense_moments(counts.numpy(), alpha0)
    W = mom.whitening.matrix.numpy()
    assert np.allclose(W.T @ M2 @ W, np.eye(3), atol=1e-8)  # whitening of the corrected M2
    dense = np.einsum("ijl,ip,jq,lr->pqr", M3, W, W, W)
    assert np.abs(mom.tensor.numpy() - dense).max() <= 1e-8 * np.abs(dense).max()
    assert np.allclose(mom.mean.numpy(), m)


def test_sparse_input_and_the_implicit_second_moment_path_agree_with_the_dense_path():
    mu, _ = _topics(2, k=4, V=60)
    counts, _ = planted_lda_documents(mu, torch.full((4,), 0.25), 3000, 12, random_state=2)
    C = sp.csr_matrix(counts.numpy())
    ev_d, U_d, _ = lda_second_moment_eigs(C, 4, 1.0)
    ev_i, U_i, _ = lda_second_moment_eigs(C, 4, 1.0, exact_below=10, random_state=0)
    assert np.allclose(ev_d, ev_i, rtol=1e-6)
    assert np.allclose(np.abs(U_d.T @ U_i), np.eye(4), atol=1e-5)
    a = SpectralLDA(4, 1.0, random_state=0).fit(counts)
    b = SpectralLDA(4, 1.0, exact_below=10, random_state=0).fit(C)
    assert np.abs(a.topic_word_ - b.topic_word_).max() <= 1e-5


def test_small_alpha0_reduces_to_the_single_topic_model():
    mu, _ = _topics(3)
    counts, _ = planted_lda_documents(mu, torch.full((5,), 0.002), 5000, 10, random_state=3)
    alpha0 = 1e-6
    mom = lda_moments(counts, 5, alpha0)
    C = counts.to(torch.float64)
    M2_single = cross_moment2(C).numpy()
    U = mom.whitening.basis.numpy()
    # Same subspace and eigenvalues as the single-topic M2 (the correction is O(α₀) = 1e-6).
    ev = np.linalg.eigvalsh(M2_single)[::-1][:5]
    assert np.allclose(mom.whitening.eigenvalues.numpy(), ev, rtol=1e-4)
    T_single = whitened_cross_moment3(C, mom.whitening.matrix).numpy()
    assert np.abs(mom.tensor.numpy() - T_single).max() <= 1e-4 * np.abs(T_single).max()
    assert np.abs(U.T @ M2_single @ U - np.diag(ev)).max() <= 1e-4 * ev[0]
    lda = SpectralLDA(5, alpha0, random_state=0).fit(counts)
    single = SingleTopicModel(5, random_state=0).fit(counts)
    cos, match = _matched_cos(lda.topic_word_, torch.as_tensor(single.topic_word_)
                              / torch.as_tensor(single.topic_word_).norm(dim=1, keepdim=True))
    assert cos.min() >= 1 - 1e-4
    assert np.allclose(lda.weights_, single.weights_[match], atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_lda_topics_and_concentrations_are_recovered(seed):
    mu, unit = _topics(seed)
    assert (unit @ unit.T - torch.eye(5)).max() <= 0.75  # the setting
    alpha = torch.tensor([0.1, 0.15, 0.2, 0.25, 0.3], dtype=torch.float64)  # α₀ = 1
    counts, _ = planted_lda_documents(mu, alpha, 20_000, 20, random_state=seed)
    lda = SpectralLDA(5, alpha0=1.0, random_state=0).fit(counts)
    cos, match = _matched_cos(lda.topic_word_, unit)
    assert cos.min() >= 0.99
    assert np.allclose(lda.topic_word_.sum(1), 1) and (lda.topic_word_ >= 0).all()
    assert np.isclose(lda.alpha_.sum(), 1.0)
    assert np.abs(lda.alpha_ - alpha[match].numpy()).max() <= 0.03  # ≈ 10 sampling sd
    # Without the Dirichlet correction (α₀ = 0: the single-topic moments) recovery is worse.
    uncorrected, _ = _matched_cos(SpectralLDA(5, alpha0=0.0, random_state=0).fit(counts).topic_word_,
                                  unit)
    assert uncorrected.min() < 0.985
    theta = lda.transform(counts[:200])
    assert theta.shape == (200, 5) and np.allclose(theta.sum(1), 1)


@pytest.mark.parametrize("call, match", [
    (lambda C: SpectralLDA(2, alpha0=-1).fit(C), "alpha0"),
    (lambda C: SpectralLDA(0).fit(C), "n_topics"),
    (lambda C: SpectralLDA(7).fit(C), "n_topics"),
    (lambda C: SpectralLDA(2).fit(np.full((4, 6), -0.5)), "Negative values"),
    (lambda C: SpectralLDA(2).fit(-C), "Negative values"),
    (lambda C: SpectralLDA(2).fit(np.full((4, 6), np.inf)), "infinity"),
    (lambda C: SpectralLDA(2).fit(np.eye(6)), "fewer than 3 words"),
    (lambda C: SpectralLDA(2).fit(C[0]), r"X must have shape \(n_documents, n_words\), got \(6,\)"),
    (lambda C: SpectralLDA(2).transform(C), "not fitted"),
])
def test_bad_input_is_one_clear_error(call, match):
    C = np.random.default_rng(0).integers(0, 4, size=(50, 6)) + 1
    with pytest.raises((ValueError, TypeError), match=match):
        call(C)


def test_cli_lda_fits_a_count_matrix(tmp_path, capsys):
    import json

    from overtensor.cli.main import main

    mu, unit = _topics(0)
    counts, _ = planted_lda_documents(mu, torch.full((5,), 0.2), 5_000, 20, random_state=0)
    path = tmp_path / "counts.npy"
    np.save(path, counts.numpy())
    assert main(["moments", "lda", str(path), "--topics", "5", "--alpha0", "1", "--json",
                 "-o", str(tmp_path / "p.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.array(out["topic_word"]).shape == (5, 100) and np.isclose(sum(out["alpha"]), 1)
    assert _matched_cos(np.array(out["topic_word"]), unit)[0].min() >= 0.95
    assert main(["moments", "lda", str(path), "--topics", "5", "--alpha0", "-2"]) != 0
    assert "alpha0" in capsys.readouterr().err
