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
