"""Start-up: ``overtensor --help`` and a small fit import only what they use (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_small_fit_imports_neither_dataframes_nor_plots_nor_dask_nor_dynamo():
    loaded = _loaded_after(
        "import overtensor as ot\n"
        "t = ot.random_target(order=3, dim=10, rank=2, random_state=0)\n"
        "r = ot.fit(t, width=6, random_state=0)\n"
        "assert r.info['polished'], r.info")
    assert loaded["torch"]
    for name in ("pandas", "matplotlib", "dask", "distributed", "sklearn", "torch._dynamo"):
        assert not loaded[name], name


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
