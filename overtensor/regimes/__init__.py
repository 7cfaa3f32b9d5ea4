"""Training regimes as transformations of any model function ``model_fn(params, *inputs)``
(``layer``: full, lazy, random-features, alpha-scaled, and the registry every family uses), the
orthogonal transform (``orthogonal``), the hyperspherical energy (``energy``) and the distance from
initialization (``diagnostics``). Layer 1 of ``docs/architecture.md``.
"""
