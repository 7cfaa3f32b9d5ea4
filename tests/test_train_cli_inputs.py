"""``overtensor train`` validates like ``fit`` (issue 23, item 8): a memory estimate before any
allocation, divergence exits 5 as the exit-code table says, options that do not apply refused."""

from __future__ import annotations

import pytest

from overtensor.cli.exit_codes import DIVERGED, USAGE
from overtensor.cli.main import main


def one_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    return lines[0]


@pytest.mark.parametrize("width, what", [("1000000000", "first layer"),
                                         ("1000000", "hidden activations")])
def test_a_width_beyond_the_memory_budget_is_one_line(capsys, width, what):
    assert main(["train", "--width", width, "--json"]) == USAGE
    line = one_error(capsys)
    assert f"width={width}" in line and what in line and "memory budget" in line


def test_a_width_in_exponent_notation_is_a_usage_error_not_a_traceback(capsys):
    assert main(["train", "--width", "1e9"]) == USAGE
    assert "--width" in one_error(capsys)


def test_divergence_exits_with_the_documented_code(capsys):
    code = main(["train", "--lr", "1e6", "--steps", "50", "--width", "5", "--dim", "5",
                 "--test-samples", "100", "--json"])
    assert code == DIVERGED
    assert "diverged" in one_error(capsys)


@pytest.mark.parametrize("args, option", [
    (["--alpha", "2"], "--alpha"),
    (["--regime", "lazy", "--alpha", "0.5"], "--alpha"),
    (["--degree", "3"], "--degree"),
    (["--activation", "relu", "--degree", "4"], "--degree"),
    (["--rank", "3"], "--rank"),
    (["--data", "mixture", "--rank", "2"], "--rank"),
    (["--data", "mixture", "--noise", "0.1"], "--noise"),
    (["--regime", "alpha-scaled"], "--alpha"),
])
def test_options_that_do_not_apply_are_refused_naming_them(capsys, args, option):
    assert main(["train", *args, "--json"]) == USAGE
    assert option in one_error(capsys)


def test_options_that_apply_are_accepted(capsys):
    assert main(["train", "--data", "rank", "--rank", "2", "--noise", "0.1", "--activation",
                 "hermite", "--degree", "2", "--regime", "alpha-scaled", "--alpha", "2",
                 "--width", "4", "--dim", "4", "--steps", "20", "--test-samples", "200",
                 "--json"]) == 0
    assert '"test_risk"' in capsys.readouterr().out


@pytest.mark.parametrize("args, name", [
    (["--dim", "100000"], "dim=100000"),                                   # B of the authors
    (["--dim", "100000", "--data", "rank", "--rank", "2"], "dim=100000"),  # B = U Uᵀ/√k
    (["--dim", "100000", "--data", "mixture"], "test_samples=10000"),      # the test inputs
    (["--train-samples", "100000000"], "samples=100000000"),              # the training set
    (["--test-samples", "300000000", "--width", "2"], "test_samples=300000000"),
    (["--batch-size", "300000000", "--width", "2"], "batch_size=300000000"),
])
def test_data_beyond_the_memory_budget_is_one_line_before_any_allocation(capsys, monkeypatch, args,
                                                                        name):
    from overtensor import _checks

    monkeypatch.setattr(_checks, "MEMORY_BUDGET", 16 * 2**30)  # the same verdicts on any machine
    # Were a traceback from the allocator (exit 1) or an OOM kill: the check counted only W and
    # the activations, not the (d, d) target matrix or the (n, d) inputs.
    assert main(["train", *args, "--steps", "1", "--json"]) == USAGE
    line = one_error(capsys)
    assert line.startswith("overtensor: error: ") and name in line and "memory budget" in line


def test_the_data_checks_follow_the_budget_in_every_door(monkeypatch):
    import torch

    from overtensor import _checks
    from overtensor.networks.data import authors_matrix, flat_matrix, gaussian_quadratic, low_rank_matrix
    from overtensor.networks.model import NetworkSpec
    from overtensor.networks.train import TrainConfig, train_network

    monkeypatch.setattr(_checks, "MEMORY_BUDGET", 8 * 2**20)  # 8 MiB: d = 1000 needs 15 MiB
    gen = torch.Generator().manual_seed(0)
    for make in (lambda: authors_matrix(1000, gen), lambda: low_rank_matrix(1000, 2, gen),
                 lambda: flat_matrix(1000, gen), lambda: gaussian_quadratic(1000, gen)):
        with pytest.raises(ValueError, match=r"dim=1000 needs .*target matri.*memory budget"):
            make()
    assert authors_matrix(300, gen).shape == (300, 300)  # 1.4 MiB: within
    data = gaussian_quadratic(10, gen)
    with pytest.raises(ValueError, match=r"samples=200000 needs .*input samples.*memory budget"):
        train_network(data, NetworkSpec(4, 10), TrainConfig(samples=200_000, steps=1,
                                                             test_samples=100), random_state=0)
