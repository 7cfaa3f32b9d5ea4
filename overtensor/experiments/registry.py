"""Registry of run functions and built-in experiments.

An *experiment* is a grid of *runs*. A run is one call of a registered **run function**
``fn(config: dict) -> dict``: it receives a flat, JSON-serializable configuration (fixed
parameters, one point of the grid and a ``seed``) and returns a flat dict of JSON-serializable
metrics. It may add a key ``"history"`` holding a short list of dicts (a compact history); the
runner stores it separately. Run functions must be deterministic given ``config`` (all random
draws from ``config["seed"]``) and must not print.

Specs run registered code only: a spec's ``run:`` names a run function registered here (by the
built-in modules, by the caller's own ``register_run``, or by an installed package through the
entry point group ``overtensor.runs``, see :data:`ENTRY_POINT_GROUP`). Nothing is imported from a
name that is not registered. Each run function may declare a parameter schema (a pydantic model
derived from :class:`overtensor.experiments.params.RunParams`) against which spec values are
checked before any run starts.

A built-in :class:`Experiment` bundles a spec per preset (``"small"``, ``"full"``) and a
``figures`` function that turns the results table into PNG/SVG figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RunFn = Callable[[dict[str, Any]], dict[str, Any]]

#: Entry point group through which installed packages register third-party run functions: an entry
#: point ``name = "package.module:function"`` makes ``run: name`` valid in specs. Its module is
#: imported only when a spec names it.
ENTRY_POINT_GROUP = "overtensor.runs"
FiguresFn = Callable[[Any, Path], list[Path]]  # (pandas.DataFrame of runs, output dir) -> files

BatchedRunFn = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

_RUNS: dict[str, RunFn] = {}
_PARAMS: dict[str, type | None] = {}
_BATCHED: dict[str, tuple[BatchedRunFn, Callable[[dict[str, Any]], Any]]] = {}
_EXPERIMENTS: dict[str, Experiment] = {}


def register_run(name: str, params: type | None = None) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``fn`` as the run function called ``name``.

    Parameters
    ----------
    name : str
        The name specs use (``run: NAME``); letters, digits, ``.``, ``_``, ``-``.
    params : pydantic model class, optional
        The keys a config may hold, with their types and ranges (derive it from
        :class:`overtensor.experiments.params.RunParams`). Without one, spec values are not checked
        against the function (only that they are JSON).
    """
    from overtensor.experiments.names import check_name

    check_name(name, "run function name")

    def deco(fn: RunFn) -> RunFn:
        _RUNS[name] = fn
        _PARAMS[name] = params
        return fn

    return deco


def register_batched(name: str, key: Callable[[dict[str, Any]], Any]):
    """Decorator registering a batched variant of the run function ``name``.

    ``fn(configs) -> list of metrics`` runs several configs together and must give the same
    metrics as calling the single run function on each. ``key(config)`` returns a hashable: only
    configs with equal keys (same shapes) may share a batch.
    """

    def deco(fn: BatchedRunFn) -> BatchedRunFn:
        _BATCHED[name] = (fn, key)
        return fn

    return deco


def get_batched(name: str) -> tuple[BatchedRunFn, Callable[[dict[str, Any]], Any]] | None:
    _load_builtins()
    return _BATCHED.get(canonical_run_name(name))


def canonical_run_name(name: str) -> str:
    """``name``, or the one registered run name that differs from it only in ``-`` versus ``_``
    (``"opt-energy"`` → ``"opt_energy"``); ``name`` unchanged when none or several do."""
    _load_builtins()
    if not isinstance(name, str) or name in _RUNS:
        return name
    key = name.replace("-", "_")
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

    if name not in _RUNS and isinstance(name, str) and name_problem(name) is None:
        _load_entry_point(name)
    if name not in _RUNS:
        import difflib

        known = run_names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6) if isinstance(name, str) \
            else []
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"unknown run function {name!r}; {hint}known: {known}. Specs run registered functions only: "
            f"register yours with register_run() or the '{ENTRY_POINT_GROUP}' entry point group "
            "(docs/experiments.md)")
    return _RUNS[name]


def get_params(name: str) -> type | None:
    """The parameter schema of the run function ``name``: the one it declared, else one inferred
    from the presets of the built-in experiments that use it (:func:`_preset_params`), else None."""
    get_run(name)
    name = canonical_run_name(name)
    return _PARAMS.get(name) or _preset_params(name)


def _preset_params(name: str) -> type | None:
    """A strict schema from the presets that run ``name``: only the keys they use, each with the
    types of the values they give it (an int is also accepted where a float is). It catches
    misspelled keys and wrongly typed values for run functions that declared no schema; ranges are
    the run function's own checks."""
    from typing import Union

    from pydantic import ConfigDict, create_model

    seen: dict[str, set[type]] = {}
    for exp in _EXPERIMENTS.values():
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
    return sorted(set(_RUNS) | {ep.name for ep in _entry_points()})


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_point(name: str) -> None:
    # Only an installed package's declared entry point is imported, and only when a spec names it.
    for ep in _entry_points():
        if ep.name != name:
            continue
        obj = ep.load()
        if name not in _RUNS:  # the module did not register itself under the entry point's name
            if not callable(obj):
                raise ValueError(f"entry point {name!r} of group {ENTRY_POINT_GROUP!r} is not callable")
            _RUNS[name] = obj
            _PARAMS[name] = getattr(obj, "params", None)
        return


@dataclass(frozen=True)
class Experiment:
    """A built-in experiment.

    Attributes
    ----------
    name : str
        Identifier used on the command line (``overtensor experiment run NAME``).
    description : str
        One line: the question the experiment answers.
    presets : dict[str, dict]
        Spec dictionaries (same schema as spec files) keyed by preset name.
    figures : callable
        ``figures(df, outdir) -> list[Path]``: draws the experiment's figures from the table of
        finished runs (one row per run: config columns, then metric columns).
    summary : callable, optional
        ``summary(df) -> str``: a short plain-text summary printed after a run.
    claims : callable, optional
        ``claims(df) -> list[Claim]``: each claim the experiment tests, the numbers that decide it and
        the verdict. The HTML report shows one section per claim.
    captions : dict[str, str]
        Caption of each figure, keyed by its file stem: what the figure shows (axes, statistic,
        number of seeds). The report falls back to the stem.
    """

    name: str
    description: str
    presets: dict[str, dict[str, Any]]
    figures: FiguresFn | None = None
    summary: Callable[[Any], str] | None = field(default=None)
    claims: Callable[[Any], list[Claim]] | None = field(default=None)
    captions: dict[str, str] = field(default_factory=dict)


def mean_sd(mean: float, sd: float, fmt: str = ".3g", sd_fmt: str | None = None) -> str:
    """``"mean ± sd"`` for claims and summaries; a spread over a single seed is no spread: with
    ``sd`` NaN (pandas' ``std`` of one value) the text is ``"mean (n = 1)"``."""
    if sd != sd:  # NaN
        return f"{mean:{fmt}} (n = 1)"
    return f"{mean:{fmt}} ± {sd:{sd_fmt or fmt}}"


#: Verdicts a claim can get.
VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """One claim an experiment tests, with the numbers that decide it.

    Attributes
    ----------
    paper : str
        Short citation, e.g. ``"Wang, Wu, Lee, Ma, Ge (NeurIPS 2020)"``.
    url : str
        Link to the paper (empty when none).
    statement : str
        The claim in one sentence.
    verdict : {"supported", "not supported", "inconclusive"}
        What the numbers say.
    reason : str
        Why: the numbers that decide it, with the statistic named and the number of seeds it rests
        on (e.g. ``"median over 5 seeds: 0.02 < 0.05"``).
    figure : str
        File name (stem) of the figure that shows it, or empty.
    """

    paper: str
    url: str
    statement: str
    verdict: str
    reason: str
    figure: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def register_experiment(exp: Experiment) -> Experiment:
    """Register a built-in experiment; its name must be a valid experiment name (never a path)."""
    from overtensor.experiments.names import check_name

    check_name(exp.name, "experiment name")
    _EXPERIMENTS[exp.name] = exp
    return exp


def get_experiment(name: str) -> Experiment:
    _load_builtins()
    if name not in _EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(_EXPERIMENTS)}")
    return _EXPERIMENTS[name]


def list_experiments() -> list[Experiment]:
    _load_builtins()
    return [_EXPERIMENTS[k] for k in sorted(_EXPERIMENTS)]


def _load_builtins() -> None:
    # Importing the modules registers their run functions and experiments.
    from overtensor.experiments import builtin  # noqa: F401
