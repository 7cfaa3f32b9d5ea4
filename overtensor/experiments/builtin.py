"""Imports every built-in experiment module so that they register themselves."""

from overtensor.experiments import (
    adaptive_networks,  # noqa: F401
    adaptive_regression,  # noqa: F401
    batched_runs,  # noqa: F401
    deflation,  # noqa: F401
    lazy_lower_bound,  # noqa: F401
    lazy_vs_full_networks,  # noqa: F401
    method_of_moments,  # noqa: F401
    method_of_moments_topics,  # noqa: F401
    min_norm_generalization,  # noqa: F401
    opt_energy,  # noqa: F401
    opt_expressivity,  # noqa: F401
    opt_generalization,  # noqa: F401
    runs,  # noqa: F401
    vs_classical,  # noqa: F401
    width_vs_dimension,  # noqa: F401
)
