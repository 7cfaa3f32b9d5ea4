"""Overflow is never success (issue 23, item 1): targets and data sets whose scale leaves the
float64 range are refused in one line naming the input and its magnitude; a result holding
NaN or inf is never converged, never printed or written with exit 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import overtensor as ot
from overtensor.cli.main import main
from overtensor.cli.userdata import NonFiniteResult, write_result


def gaussian(n: int = 40, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("scale, word", [(1e110, "largest"), (1e-110, "smallest normal")])
def test_a_moment_target_out_of_range_is_refused_naming_the_samples(scale, word):
    with pytest.raises(ValueError, match=rf"samples: .*max \|x\| = .*{word}"):
        ot.MomentTarget(scale * gaussian(), 3)


def test_a_moment_target_near_the_edge_is_fitted_with_finite_weights():
    X = gaussian()
    result = ot.fit(ot.MomentTarget(1e100 * X, 3), width=20, random_state=0)
    assert result.finite and torch.isfinite(result.cp.weights).all()
    # Scale-free: the fit of 1e100·X is as good as that of X (their errors agree to 1e-6).
    ref = ot.fit(ot.MomentTarget(X, 3), width=20, random_state=0)
    assert abs(result.relative_error - ref.relative_error) < 1e-6
    assert float(result.cp.weights.abs().max()) > 1e290


@pytest.mark.parametrize("weights, factor_scale", [([1e300, 1.0], 1e10), ([1e-300, 1e-300], 1e-10)])
def test_a_cp_target_out_of_range_is_refused(weights, factor_scale):
    factors = torch.randn(2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(ValueError, match="weights and factors"):
        ot.CPTarget(torch.tensor(weights, dtype=torch.float64), factor_scale * factors, 3)


def test_a_float32_dense_tensor_whose_norm_overflows_float32_is_refused():
    T = torch.full((4, 4, 4), 3e38, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"tensor: .*float32"):
        ot.DenseTarget(T)


def test_the_cli_refuses_overflowing_samples_in_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "X.npy"
    np.save(path, 1e110 * gaussian())
    out = tmp_path / "r.json"
    code = main(["fit", "--samples", str(path), "--moment", "3", "--width", "20", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--samples" in err[0] and "1e" in err[0]
    assert not out.exists()


def test_a_non_finite_result_is_not_converged_and_never_written(tmp_path):
    X = torch.as_tensor(gaussian())
    result = ot.fit(ot.MomentTarget(X, 3), width=20, random_state=0,
                    schedule=ot.GradientSchedule(max_steps=50))
    result.cp.weights[0] = float("inf")
    result.converged = True
    result.mark_non_finite()
    assert not result.converged and result.stop_reason == "non-finite"
    assert any("NaN or inf" in w for w in result.info["warnings"])
    with pytest.raises(NonFiniteResult, match="weights") as info:
        write_result(tmp_path / "r.json", result, result.summary())
    assert info.value.exit_code == 5 and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e110])
def test_moments_gmm_refuses_data_out_of_range(tmp_path, capsys, scale):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(60, 4)) * 0.3 + 3 * np.eye(4)[j] for j in range(2)])
    path = tmp_path / "X.csv"
    np.savetxt(path, scale * X, delimiter=",")
    assert main(["moments", "gmm", str(path), "-k", "2", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "third-order products" in captured.err


@pytest.mark.parametrize("kind", ["topics", "lda"])
def test_topic_models_refuse_counts_whose_document_lengths_overflow(tmp_path, capsys, kind):
    C = np.random.default_rng(2).poisson(3, size=(30, 8)) + 1
    path = tmp_path / "C.npy"
    np.save(path, C * 1e110)
    assert main(["moments", kind, str(path), "-k", "2", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "document lengths" in captured.err


def test_the_estimators_refuse_the_same_data_through_the_api():
    from overtensor.moments import GaussianMixture, SingleTopicModel

    with pytest.raises(ValueError, match="X: its third-order products"):
        GaussianMixture(2, random_state=0).fit(gaussian() * 1e200)
    C = np.random.default_rng(2).poisson(3, size=(30, 8)) + 1
    with pytest.raises(ValueError, match="X: the cubes"):
        SingleTopicModel(2, random_state=0).fit(C * 1e110)


def test_json_output_of_a_fit_holds_no_infinity(tmp_path, capsys):
    path = tmp_path / "X.npy"
    np.save(path, 1e100 * gaussian())
    out = tmp_path / "r.json"
    assert main(["fit", "--samples", str(path), "--moment", "3", "--width", "20", "--json",
                 "-o", str(out)]) == 0
    assert "Infinity" not in out.read_text() and "NaN" not in out.read_text()
    assert json.loads(capsys.readouterr().out)["converged"] in (True, False)


@pytest.mark.parametrize("arrays, match", [
    ({"weights": np.array([0.5, np.nan]), "means": np.zeros((2, 3))}, "weights"),
    ({"weights": np.array([0.5, 0.5]), "topic_word": np.array([[0.5, 0.5], [0.0, 0.0]])},
     "topic 1 is all zeros"),
])
def test_moments_estimates_with_nan_or_empty_topics_are_never_written(arrays, match):
    from overtensor.cli.moments import _check_estimates

    with pytest.raises(NonFiniteResult, match=match) as info:
        _check_estimates("topics", arrays, {})
    assert info.value.exit_code == 5
