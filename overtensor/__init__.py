"""overtensor: over-parameterized symmetric tensor decomposition with gradient methods.

>>> import overtensor
>>> target = overtensor.random_target(order=3, dim=30, rank=3, random_state=0)
>>> result = overtensor.fit(target, width=12, random_state=0)
>>> result.relative_error < 1e-4
True

The public names are imported on first use (PEP 562 module ``__getattr__``), so that
``import overtensor`` and ``overtensor --help`` do not pay for torch and scipy until a name that
needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "PowerOptions": "overtensor.tensors.power",
    "OrthogonalOptions": "overtensor.tensors.orthogonal_fit",
    "GradientSchedule": "overtensor.tensors.config",
    "Extraction": "overtensor.tensors.config",
    "Runtime": "overtensor.tensors.config",
    "fit_batched": "overtensor.tensors.batched",
    "compress": "overtensor.tensors.compression",
    "SPMOptions": "overtensor.tensors.spm",
    "SymmetricCP": "overtensor.tensors.cp",
    "SymmetricCPDecomposition": "overtensor.tensors.estimator",
    "METHODS": "overtensor.tensors.methods",
    "fit": "overtensor.tensors.fitting",
    "laziness_recorder": "overtensor.tensors.recorders",
    "lazy_error": "overtensor.tensors.lazy",
    "lazy_least_squares": "overtensor.tensors.lazy",
    "random_features_least_squares": "overtensor.tensors.lazy",
    "cp_relative_error": "overtensor.tensors.metrics",
    "laziness": "overtensor.tensors.metrics",
    "recovery": "overtensor.tensors.metrics",
    "REGIMES": "overtensor.tensors.regimes",
    "FitResult": "overtensor.tensors.result",
    "Shortcuts": "overtensor.tensors.shortcuts",
    "CPTarget": "overtensor.tensors.targets",
    "DenseTarget": "overtensor.tensors.targets",
    "MomentTarget": "overtensor.tensors.targets",
    "Target": "overtensor.tensors.targets",
    "as_target": "overtensor.tensors.targets",
    "random_target": "overtensor.tensors.targets",
    "DivergenceError": "overtensor.training.loop",
}

#: Submodules reachable as ``overtensor.<name>`` without an explicit import (imported on first use).
_SUBMODULES = (
    "experiments", "moments", "networks", "optim", "regimes", "regression", "tensors", "training",
)

__all__ = [
    "METHODS",
    "REGIMES",
    "CPTarget",
    "DenseTarget",
    "DivergenceError",
    "Extraction",
    "FitResult",
    "GradientSchedule",
    "MomentTarget",
    "OrthogonalOptions",
    "PowerOptions",
    "Runtime",
    "SPMOptions",
    "Shortcuts",
    "SymmetricCP",
    "SymmetricCPDecomposition",
    "Target",
    "__version__",
    "as_target",
    "compress",
    "cp_relative_error",
    "fit",
    "fit_batched",
    "laziness",
    "laziness_recorder",
    "lazy_error",
    "lazy_least_squares",
    "random_features_least_squares",
    "random_target",
    "recovery",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # binds it as an attribute too
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'overtensor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


if TYPE_CHECKING:  # static analysers see the eager imports
    from overtensor.tensors.batched import fit_batched
    from overtensor.tensors.compression import compress
    from overtensor.tensors.config import Extraction, GradientSchedule, Runtime
    from overtensor.tensors.cp import SymmetricCP
    from overtensor.tensors.estimator import SymmetricCPDecomposition
    from overtensor.tensors.fitting import fit
    from overtensor.tensors.lazy import lazy_error, lazy_least_squares, random_features_least_squares
    from overtensor.tensors.methods import METHODS
    from overtensor.tensors.metrics import cp_relative_error, laziness, recovery
    from overtensor.tensors.orthogonal_fit import OrthogonalOptions
    from overtensor.tensors.power import PowerOptions
    from overtensor.tensors.recorders import laziness_recorder
    from overtensor.tensors.regimes import REGIMES
    from overtensor.tensors.result import FitResult
    from overtensor.tensors.shortcuts import Shortcuts
    from overtensor.tensors.spm import SPMOptions
    from overtensor.tensors.targets import (
        CPTarget,
        DenseTarget,
        MomentTarget,
        Target,
        as_target,
        random_target,
    )
    from overtensor.training.loop import DivergenceError
