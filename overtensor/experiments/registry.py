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
checked before any run starts, and the names of the metrics it returns (``metrics=``), against
which a spec's ``metrics`` and ``success.metric`` are checked before any run starts. The
declarations live in one table per kind (``_PARAMS``, ``_METRICS``), filled by
:func:`register_run`; every built-in run function declares both, and a test runs each built-in
experiment's ``tiny`` preset to check that what the runs return is declared.

A built-in :class:`Experiment` bundles a spec per preset (``"small"``, ``"full"``) and a
``figures`` function that turns the results table into PNG/SVG figures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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
#: Declared metric names per run function (None: not declared; see :func:`register_run`).
_METRICS: dict[str, tuple[str, ...] | None] = {}
_BATCHED: dict[str, tuple[BatchedRunFn, Callable[[dict[str, Any]], Any]]] = {}
_EXPERIMENTS: dict[str, Experiment] = {}


#: The one placeholder a declared metric name may hold: a positive integer index (``t50_{j}``
#: declares ``t50_1``, ``t50_2``, ...; per-component columns whose count depends on the config).
METRIC_INDEX = "{j}"


def register_run(name: str, params: type | None = None,
                 metrics: Iterable[str] | None = None) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``fn`` as the run function called ``name``.

    Parameters
    ----------
    name : str
        The name specs use (``run: NAME``); letters, digits, ``.``, ``_``, ``-``.
    params : pydantic model class, optional
        The keys a config may hold, with their types and ranges (derive it from
        :class:`overtensor.experiments.params.RunParams`). Without one, spec values are not checked
        against the function (only that they are JSON).
    metrics : iterable of str, optional
        Every metric name the function may return (the keys of its dict, ``"history"`` excepted),
        over all configs; a name may hold :data:`METRIC_INDEX` (``"t50_{j}"``) for numbered
        columns. With it, a spec's ``metrics`` and ``success.metric`` are checked before any run
        (an undeclared name is refused naming the closest declared one). Without it they are
        checked when the first run returns (the run fails naming the spec key).

    Raises
    ------
    ValueError
        ``name`` is not a valid name or a spelling of a built-in's; ``metrics`` is a string or
        holds a name that is not a non-empty string without spaces.
    """
    from overtensor.experiments.names import check_name

    check_name(name, "run function name")
    declared = check_metric_names(metrics, name)

    def deco(fn: RunFn) -> RunFn:
        key = name.replace("-", "_")
        taken = [n for n, f in _RUNS.items()
                 if n.replace("-", "_") == key and is_builtin(f) and not is_builtin(fn)]
        if taken:
            raise ValueError(f"run function name {name!r} is a spelling of the built-in "
                             f"{taken[0]!r}; register yours under another name")
        _RUNS[name] = fn
        _PARAMS[name] = params
        _METRICS[name] = declared
        return fn

    return deco


def check_metric_names(metrics: Any, run: str) -> tuple[str, ...] | None:
    """``metrics`` (a run function's declaration) as a tuple of names, checked; None stays None.

    Raises
    ------
    ValueError
        A string (a common slip for a one-name list), or a name that is not a non-empty string
        without whitespace, or holds ``{`` / ``}`` other than in :data:`METRIC_INDEX`.
    """
    if metrics is None:
        return None
    if isinstance(metrics, str | bytes) or not isinstance(metrics, Iterable):
        raise ValueError(f"metrics of run function {run!r} must be a list of names, got {metrics!r}")
    names = tuple(metrics)
    for m in names:
        if (not isinstance(m, str) or not m or re.search(r"\s", m)
                or "{" in m.replace(METRIC_INDEX, "") or "}" in m.replace(METRIC_INDEX, "")):
            raise ValueError(f"metrics of run function {run!r}: {m!r} is not a metric name "
                             f"(a non-empty string without spaces; {METRIC_INDEX} for an index)")
    return names


def metric_declared(name: str, declared: Iterable[str]) -> bool:
    """Whether the metric ``name`` is one of ``declared`` (names, or names holding
    :data:`METRIC_INDEX`, which matches a positive integer without leading zeros)."""
    for d in declared:
        if d == name:
            return True
        if METRIC_INDEX in d:
            parts = [re.escape(p) for p in d.split(METRIC_INDEX)]
            if re.fullmatch("[1-9][0-9]*".join(parts), name):
                return True
    return False


def is_builtin(fn: Any) -> bool:
    """Whether ``fn`` is one of overtensor's own run functions (defined in its experiments)."""
    return str(getattr(fn, "__module__", "")).startswith("overtensor.experiments.")


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
