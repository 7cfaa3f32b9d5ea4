"""Every ``>>>`` example in the package's docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "overtensor"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if ">>>" in p.read_text(encoding="utf-8")
)


def test_the_package_has_doctest_examples_and_skips_none():
    assert "overtensor" in MODULES
    skipped = [p.name for p in PACKAGE.rglob("*.py") if "doctest: +SKIP" in p.read_text(encoding="utf-8")]
    assert not skipped, f"examples that never run: {skipped}"


@pytest.mark.parametrize("name", MODULES)
def test_doctest_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has '>>>' but doctest found no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
