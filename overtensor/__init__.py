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
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "PowerOptions": "overtensor.algorithms.power",
    "fit_batched": "overtensor.batched",
    "compress": "overtensor.compression",
    "fit_compressed": "overtensor.compression",
    "SymmetricCP": "overtensor.cp",
    "METHODS": "overtensor.fit",
    "fit": "overtensor.fit",
    "laziness_recorder": "overtensor.laziness",
    "lazy_error": "overtensor.lazy",
    "lazy_least_squares": "overtensor.lazy",
    "random_features_least_squares": "overtensor.lazy",
    "cp_relative_error": "overtensor.metrics",
    "laziness": "overtensor.metrics",
    "recovery": "overtensor.metrics",
    "REGIMES": "overtensor.regimes",
    "FitResult": "overtensor.result",
    "Shortcuts": "overtensor.shortcuts",
    "CPTarget": "overtensor.targets",
    "DenseTarget": "overtensor.targets",
    "MomentTarget": "overtensor.targets",
    "Target": "overtensor.targets",
    "as_target": "overtensor.targets",
    "random_target": "overtensor.targets",
    "DivergenceError": "overtensor.training",
}

#: Submodules reachable as ``overtensor.<name>`` without an explicit import (imported on first use).
_SUBMODULES = ("compression", "moments", "networks", "shortcuts")

__all__ = [
    "METHODS",
    "REGIMES",
    "CPTarget",
    "DenseTarget",
    "DivergenceError",
    "FitResult",
    "MomentTarget",
    "PowerOptions",
    "Shortcuts",
    "SymmetricCP",
    "Target",
    "__version__",
    "as_target",
    "compress",
    "cp_relative_error",
    "fit",
    "fit_batched",
    "fit_compressed",
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


class _Package(types.ModuleType):
    """The package module. Importing a submodule binds it as an attribute of the package;
    ``overtensor.fit`` (the module) must not shadow ``overtensor.fit`` (the function), nor
    ``overtensor.laziness`` the function of that name, as the eager imports used to ensure."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return  # reachable as sys.modules["overtensor." + name]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # static analysers see the eager imports
    from overtensor.algorithms.power import PowerOptions
    from overtensor.batched import fit_batched
    from overtensor.compression import compress, fit_compressed
    from overtensor.cp import SymmetricCP
    from overtensor.fit import METHODS, fit
    from overtensor.laziness import laziness_recorder
    from overtensor.lazy import lazy_error, lazy_least_squares, random_features_least_squares
    from overtensor.metrics import cp_relative_error, laziness, recovery
    from overtensor.regimes import REGIMES
    from overtensor.result import FitResult
    from overtensor.shortcuts import Shortcuts
    from overtensor.targets import (
        CPTarget,
        DenseTarget,
        MomentTarget,
        Target,
        as_target,
        random_target,
    )
    from overtensor.training import DivergenceError
