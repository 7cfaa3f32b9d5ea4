"""Optimizers shared by every family: the registry of names (``registry``), the Cayley step on
the orthogonal group (``cayley``), the one top-eigenvalue routine and the curvature steps built on
it (``curvature``), L-BFGS (``lbfgs``). Layer 1 of ``docs/architecture.md``.
"""
