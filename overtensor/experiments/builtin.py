"""Imports every built-in experiment module so that they register themselves."""

from overtensor.experiments import runs  # noqa: F401
