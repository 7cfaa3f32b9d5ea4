"""Experiments: run functions, built-in specs, runner, store and figures."""
