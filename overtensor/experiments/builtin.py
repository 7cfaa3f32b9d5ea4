"""Imports every built-in experiment module so that they register themselves."""

from overtensor.experiments import (
    batched_runs,  # noqa: F401
    deflation,  # noqa: F401
    lazy_lower_bound,  # noqa: F401
    lazy_vs_full_networks,  # noqa: F401
    runs,  # noqa: F401
    vs_classical,  # noqa: F401
    width_vs_dimension,  # noqa: F401
)
