"""Streamed moment passes: float32 chunks, kept projections and chunk seeds (docs/moments.md)."""

import numpy as np
import pytest
import torch

import overtensor.moments.mixture as mixture
from overtensor.moments import GaussianMixture, SphericalMixtureStream, as_source, second_moment
from overtensor.moments.mixture import mean_log_likelihood, spherical_mixture_moments


def _stream(dtype, d=40, k=3, n=20_000, sigma=0.3, seed=0, chunk_size=4096):
    g = torch.Generator().manual_seed(7)
    M = torch.randn(k, d, generator=g, dtype=torch.float64)
    M = 2 * M / M.norm(dim=1, keepdim=True)
    return M, SphericalMixtureStream(M, torch.full((k,), 1 / k), sigma, n, seed=seed,
                                     chunk_size=chunk_size, dtype=dtype)


def test_float32_chunks_are_the_float64_samples_rounded_and_every_pass_repeats_them():
    _, s32 = _stream(torch.float32)
    _, s64 = _stream(torch.float64)
    a, b = list(s32.chunks()), list(s64.chunks())
    assert all(x.dtype == torch.float32 for x in a) and all(x.dtype == torch.float64 for x in b)
    assert all(torch.equal(x.to(torch.float64), y) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a, s32.chunks(), strict=True))


def test_streams_of_neighbouring_seeds_share_no_chunk():
    # With seeds ``seed + c`` chunk 1 of seed 0 was chunk 0 of seed 1: the same noise twice.
    _, s0 = _stream(torch.float32, seed=0)
    _, s1 = _stream(torch.float32, seed=1)
    c0, c1 = list(s0.chunks())[:-1], list(s1.chunks())[:-1]  # the full-size chunks
    for x in c0:
        for y in c1:
            assert not torch.allclose(x, y)


def test_second_moment_of_float32_chunks_matches_float64_far_below_the_sampling_error():
    _, s32 = _stream(torch.float32)
    _, s64 = _stream(torch.float64)
    a = second_moment(s32, 3, exact_below=0, random_state=0)
    b = second_moment(s64, 3, exact_below=0, random_state=0)
    # Rounding of float32 chunk products is ~1e-6 relative; the sampling error of these moments
    # at n = 20 000 is ~1e-2. 1e-4 tells a float64 accumulation from a broken one.
    assert a.n == b.n == 20_000
    assert a.trace == pytest.approx(b.trace, rel=1e-4)
    assert torch.allclose(a.mean, b.mean, atol=1e-4 * float(b.mean.abs().max()))
    assert torch.allclose(a.eigenvalues[:3], b.eigenvalues[:3], rtol=1e-4)
    P = b.eigenvectors[:, :3] @ b.eigenvectors[:, :3].T
    Q = a.eigenvectors[:, :3]
    assert float((P @ Q - Q).abs().max()) < 1e-3  # subspace sampling error ~1e-2


def test_first_pass_mean_and_trace_are_those_of_the_data():
    _, s64 = _stream(torch.float64, n=5_000)
    X = torch.cat(list(s64.chunks()))
    sm = second_moment(s64, 3, exact_below=0, random_state=0)
    assert torch.allclose(sm.mean, X.mean(0), rtol=1e-10, atol=1e-12)
    assert sm.trace == pytest.approx(float((X * X).sum(1).mean()), rel=1e-10)


def test_float32_stream_gives_the_means_of_the_float64_stream():
    M, s32 = _stream(torch.float32)
    _, s64 = _stream(torch.float64)
    a = GaussianMixture(3, exact_below=0, random_state=0).fit(s32)
    b = GaussianMixture(3, exact_below=0, random_state=0).fit(s64)
    # Sampling error of a mean: σ·sqrt(d/(n w)) = 0.3·sqrt(40/6667) ≈ 0.02; float32 moves the
    # estimate by less than 1e-3 (5 % of it).
    assert np.abs(a.means_ - b.means_).max() < 1e-3
    assert a.covariance_ == pytest.approx(b.covariance_, rel=1e-4)
    order = np.argmax(np.abs(b.means_ @ M.numpy().T), axis=1)
    assert np.abs(b.means_ - M.numpy()[order]).max() < 0.1


def test_kept_projections_give_the_likelihood_of_a_full_pass():
    _, s64 = _stream(torch.float64, n=8_000)
    X = torch.cat(list(s64.chunks()))
    mom = spherical_mixture_moments(as_source(X), 3, keep_projections=True)
    assert mom.projections.coords.shape == (8_000, 3)
    gm = GaussianMixture(3, random_state=0).fit(X)
    means, weights = torch.as_tensor(gm.means_), torch.as_tensor(gm.weights_)
    # means_ lie in span(U) up to rounding; a mixture whose means leave it would not match.
    cached = mom.projections.mean_log_likelihood(means, weights, mom.sigma2)
    direct = mean_log_likelihood(as_source(X), means, weights, mom.sigma2)
    assert cached == pytest.approx(direct, rel=1e-9)


def test_selection_without_kept_projections_scores_every_candidate_alike(monkeypatch):
    _, s32 = _stream(torch.float32, n=8_000)
    a = GaussianMixture(3, random_state=0).fit(s32)
    monkeypatch.setattr(mixture, "PROJECTIONS_BYTES", 0)  # force the extra pass
    b = GaussianMixture(3, random_state=0).fit(s32)
    assert a.selected_ == b.selected_
    for name, score in a.candidate_scores_.items():
        assert score == pytest.approx(b.candidate_scores_[name], rel=1e-7)
    assert np.array_equal(a.means_, b.means_)


@pytest.mark.parametrize("kwargs, match", [
    ({"dtype": torch.float16}, "dtype must be torch.float32 or torch.float64, got torch.float16"),
    ({"seed": -1}, "seed"),
])
def test_bad_stream_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SphericalMixtureStream(torch.eye(2, 4), torch.full((2,), 0.5), 0.1, 10, **kwargs)
