"""Look-ups over the registry with the built-in experiments loaded: run functions, experiments.

:mod:`overtensor.experiments.registry` holds the tables and the ``register_*`` decorators that the
built-in experiment modules call when imported; this module imports them all (through
:mod:`overtensor.experiments.builtin`) at the first look-up, and installed packages' entry points of
:data:`~overtensor.experiments.registry.ENTRY_POINT_GROUP` when a spec names one. Splitting the two
keeps the import graph acyclic: experiments import the registry, the catalog imports experiments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from overtensor.experiments import registry
from overtensor.experiments.registry import ENTRY_POINT_GROUP, BatchedRunFn, Experiment, RunFn


def get_batched(name: str) -> tuple[BatchedRunFn, Callable[[dict[str, Any]], Any]] | None:
    _load_builtins()
    return registry._BATCHED.get(canonical_run_name(name))


def _builtin_runs() -> dict[str, str]:
    """``{spelling key: name}`` of overtensor's own run functions (``-`` and ``_`` equated)."""
    return {n.replace("-", "_"): n for n, fn in registry._RUNS.items()
            if registry.is_builtin(fn)}


def canonical_run_name(name: str) -> str:
    """``name``, or the one registered run name that differs from it only in ``-`` versus ``_``
    (``"opt-energy"`` → ``"opt_energy"``); ``name`` unchanged when none or several do.

    A built-in's spellings always mean the built-in: a plugin (registered or an entry point)
    named ``opt-energy`` can never take over ``run: opt-energy`` or ``run: opt_energy``."""
    _load_builtins()
    if not isinstance(name, str):
        return name
    key = name.replace("-", "_")
    builtin = _builtin_runs().get(key)
    if builtin is not None:
        return builtin
    if name in registry._RUNS:
        return name
    matches = [n for n in run_names() if n.replace("-", "_") == key]
    return matches[0] if len(matches) == 1 else name


def get_run(name: str) -> RunFn:
    """The run function registered as ``name`` (built-in, registered, or from an entry point of the
    group :data:`ENTRY_POINT_GROUP`).

    A name that differs from exactly one registered name only in ``-`` versus ``_`` selects that
    one (:func:`canonical_run_name`).

    Raises
    ------
    ValueError
        ``name`` is not registered (the message suggests the closest registered names). Nothing
        is imported for it: a ``"module:function"`` string is an unknown name like any other.
    """
    _load_builtins()
    name = canonical_run_name(name)
    # A name read from a spec selects an installed entry point by equality and never reaches an
    # import itself; names that could not be registered (``pkg.mod:fn``, paths) are not even
    # looked up.
    from overtensor.experiments.names import name_problem

    if name not in registry._RUNS and isinstance(name, str) and name_problem(name) is None:
        _load_entry_point(name)
    if name not in registry._RUNS:
        import difflib

        known = run_names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6) if isinstance(name, str) \
            else []
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"unknown run function {name!r}; {hint}known: {known}. Specs run registered functions only: "
            f"register yours with register_run() or the '{ENTRY_POINT_GROUP}' entry point group "
            "(docs/experiments.md)")
    return registry._RUNS[name]


def get_params(name: str) -> type | None:
    """The parameter schema of the run function ``name``: the one it declared, else one inferred
    from the presets of the built-in experiments that use it (:func:`_preset_params`), else None."""
    get_run(name)
    name = canonical_run_name(name)
    return registry._PARAMS.get(name) or _preset_params(name)


def get_metrics(name: str) -> tuple[str, ...] | None:
    """The metric names the run function ``name`` declared (``register_run(..., metrics=...)``;
    names may hold :data:`~overtensor.experiments.registry.METRIC_INDEX`), or None when it
    declared none (a plug-in: its metrics are checked when its first run returns)."""
    get_run(name)
    return registry._METRICS.get(canonical_run_name(name))


def _preset_params(name: str) -> type | None:
    """A strict schema from the presets that run ``name``: only the keys they use, each with the
    types of the values they give it (an int is also accepted where a float is). It catches
    misspelled keys and wrongly typed values for run functions that declared no schema; ranges are
    the run function's own checks."""
    from typing import Union

    from pydantic import ConfigDict, create_model

    seen: dict[str, set[type]] = {}
    for exp in registry._EXPERIMENTS.values():
        for preset in exp.presets.values():
            if preset.get("run") != name:
                continue
            values = [(k, v) for k, v in (preset.get("fixed") or {}).items()]
            values += [(k, v) for k, vs in (preset.get("grid") or {}).items() for v in vs]
            for key, value in values:
                seen.setdefault(key, set()).add(type(value))
    if not seen:
        return None
    fields: dict[str, Any] = {"seed": (int, 0)}
    for key, types in seen.items():
        if float in types:
            types = types | {int}
        fields[key] = (Union[tuple(sorted(types, key=lambda t: t.__name__))], None)  # noqa: UP007
    return create_model(f"{name}_preset_params", __config__=ConfigDict(extra="forbid", strict=True),
                        **fields)


def run_names() -> list[str]:
    """Names of the registered run functions and of the entry points of :data:`ENTRY_POINT_GROUP`
    (the latter are listed without being imported)."""
    _load_builtins()
    return sorted(set(registry._RUNS) | {ep.name for ep in _entry_points()})


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_point(name: str) -> None:
    # Only an installed package's declared entry point is imported, and only when a spec names it.
    for ep in _entry_points():
        if ep.name != name:
            continue
        obj = ep.load()
        if name not in registry._RUNS:  # the module did not register itself under the entry point's name
            if not callable(obj):
                raise ValueError(f"entry point {name!r} of group {ENTRY_POINT_GROUP!r} is not callable")
            registry._RUNS[name] = obj
            registry._PARAMS[name] = getattr(obj, "params", None)
            # A bare function may declare its metrics as an attribute, like its params.
            registry._METRICS[name] = registry.check_metric_names(getattr(obj, "metrics", None), name)
        return


def get_experiment(name: str) -> Experiment:
    _load_builtins()
    if name not in registry._EXPERIMENTS:
        import difflib

        known = sorted(registry._EXPERIMENTS)
        close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown experiment {name!r}; {hint}known: {known}")
    return registry._EXPERIMENTS[name]


def list_experiments() -> list[Experiment]:
    _load_builtins()
    return [registry._EXPERIMENTS[k] for k in sorted(registry._EXPERIMENTS)]


def _load_builtins() -> None:
    # Importing the modules registers their run functions and experiments.
    # Imported on first look-up, not with this module: the CLI's --help must not pay for torch.
    from overtensor.experiments import builtin  # noqa: F401
