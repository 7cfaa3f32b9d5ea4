"""Symmetric tensor decomposition (``docs/theory/tensors.md``): implicit targets (``targets``),
models, losses and closed-form gradients, the methods (``gradient``, ``power``, ``spm``), regimes,
the default route (``route``), results and metrics, and the entry point ``fitting.fit``
(``overtensor.fit``). A family package: it never imports ``networks`` or ``regression``.
"""
