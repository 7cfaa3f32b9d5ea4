"""Start-up: ``overtensor --help`` and a small fit import only what they use (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import overtensor as ot

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy", "pandas", "matplotlib", "dask", "distributed", "sklearn", "torch._dynamo")


def _loaded_after(code: str) -> dict:
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_help_imports_no_numerical_library():
    loaded = _loaded_after("from overtensor.cli.main import build_parser\nbuild_parser().format_help()")
    assert not any(loaded.values()), loaded


@pytest.mark.parametrize("engine", ["auto", "paper"])
def test_a_small_fit_imports_neither_scipy_nor_dataframes_nor_plots_nor_dask_nor_dynamo(engine):
    loaded = _loaded_after(
        "import overtensor as ot\n"
        "t = ot.random_target(order=3, dim=10, rank=2, random_state=0)\n"
        f"r = ot.fit(t, width=6, random_state=0, runtime=ot.Runtime(engine={engine!r}))\n"
        "assert r.converged, r.info")
    assert loaded["torch"]
    # The paper's schedule polishes with SciPy's L-BFGS: SciPy is used there.
    for name in ("scipy",) * (engine == "auto") + (
            "pandas", "matplotlib", "dask", "distributed", "sklearn", "torch._dynamo"):
        assert not loaded[name], name


def _cli(*args: str) -> subprocess.CompletedProcess:
    probe = ("import sys\nfrom overtensor.cli.main import main\ncode = main(sys.argv[1:])\n"
             "print('LOADED', sorted(m for m in ('torch', 'numpy', 'scipy', 'torch._dynamo', "
             "'pydantic') if m in sys.modules))\nsys.exit(code)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args,message", [
    (("fit", "--width", "-3"), "--width must be a positive integer, got -3"),
    (("fit", "--method", "bogus"), "invalid choice: 'bogus'"),
    (("fit", "--tensor", "t.npy"), "--width is required with --tensor"),
    (("fit", "--samples", "x.npy", "--width", "4"), "--samples needs --moment"),
    (("fit", "--tensor", "t.npy", "--dim", "5", "--width", "4"), "--dim: only for the synthetic"),
    (("fit", "--tol", "-1"), "--tol must be >= 0, got -1.0"),
])
def test_fit_argument_errors_come_before_torch_is_imported(args, message):
    out = _cli(*args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1
    assert "torch" not in out.stdout.split("LOADED", 1)[1]


def test_cli_fit_imports_neither_scipy_nor_dynamo_and_reports_the_process_time():
    out = _cli("fit", "--order", "3", "--dim", "20", "--rank", "3", "--width", "12", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.splitlines()[0])
    loaded = out.stdout.split("LOADED", 1)[1]
    assert "torch" in loaded and "scipy" not in loaded and "torch._dynamo" not in loaded
    assert "pydantic" not in loaded  # the experiment commands' parser is not built for fit
    assert summary["seconds_total"] >= summary["seconds"] > 0
    assert summary["cpu_seconds_total"] > 0 and summary["route"] in ("spm", "shortcuts", "paper")
    assert summary["converged"] and summary["recovered"] == 3


def test_cli_method_and_regime_lists_agree_with_the_library():
    from overtensor.cli.main import FIT_METHODS, FIT_REGIMES
    from overtensor.tensors.regimes import FIT_REGIMES as LIBRARY_REGIMES

    assert FIT_METHODS == tuple(ot.METHODS)
    assert FIT_REGIMES == tuple(LIBRARY_REGIMES)


def test_public_names_survive_importing_every_submodule():
    import overtensor as ot
    import overtensor.tensors.fitting
    import overtensor.tensors.recorders
    from overtensor.tensors.metrics import laziness

    assert callable(ot.fit) and ot.fit.__name__ == "fit"
    assert ot.laziness is laziness
    assert set(ot.__all__) == {"__version__", *ot._EXPORTS}


def test_public_submodules_are_reachable_without_an_explicit_import():
    # A fresh process: in this one another test may already have imported them.
    code = ("import sys, overtensor as ot\n"
            "assert 'overtensor.tensors.compression' not in sys.modules\n"
            "assert ot.tensors.__name__ == 'overtensor.tensors'\n"
            "assert ot.moments.__name__ == 'overtensor.moments'\n"
            "assert 'tensors' in dir(ot)\n"
            "try:\n    ot.nosuch\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, timeout=120, check=True)
