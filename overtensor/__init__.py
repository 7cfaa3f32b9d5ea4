"""overtensor: over-parameterized symmetric tensor decomposition with gradient methods.

>>> import overtensor
>>> target = overtensor.random_target(order=3, dim=30, rank=3, random_state=0)
>>> result = overtensor.fit(target, width=12, random_state=0)
>>> result.relative_error < 1e-4
True
"""

from overtensor.algorithms.power import PowerOptions
from overtensor.batched import fit_batched
from overtensor.cp import SymmetricCP
from overtensor.fit import METHODS, fit
from overtensor.laziness import laziness_recorder
from overtensor.lazy import lazy_error, lazy_least_squares, random_features_least_squares
from overtensor.metrics import cp_relative_error, laziness, recovery
from overtensor.regimes import REGIMES
from overtensor.result import FitResult
from overtensor.targets import (
    CPTarget,
    DenseTarget,
    MomentTarget,
    Target,
    as_target,
    random_target,
)
from overtensor.training import DivergenceError

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "REGIMES",
    "CPTarget",
    "DenseTarget",
    "DivergenceError",
    "FitResult",
    "MomentTarget",
    "PowerOptions",
    "SymmetricCP",
    "Target",
    "__version__",
    "as_target",
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
