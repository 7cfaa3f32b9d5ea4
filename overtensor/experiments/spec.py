"""Experiment specs: loading and validation of spec files, expansion of a spec into runs.

Schema (YAML/TOML file or dict)::

    name: lazy-lower-bound          # identifier (letters, digits, '.', '_', '-'; never a path)
    run: lazy_error                  # a registered run function (see registry.py), nothing else
    description: one line
    fixed: {order: 3, rank: 1}       # parameters common to all runs
    grid: {dim: [8, 12], width: [4, 8, 16]}   # cartesian product over these
    seeds: 5                         # int n -> seeds 0..n-1, or an explicit list
    metrics: [lazy_error]            # metrics to keep (empty/missing: all returned)
    success: {metric: relative_error, op: "<=", value: 1.0e-4}   # optional

A run's config is ``{**fixed, **grid_point, "seed": s}``.

:func:`load_spec` validates a file or dict with pydantic before anything runs: an unknown key, a
wrong type, an empty grid, an unknown run function, a value outside the run function's declared
parameters (:mod:`overtensor.experiments.params`), a ``metrics`` or ``success.metric`` name the run
function does not declare (:func:`check_metrics`) or a grid of more than ``max_runs`` runs raises
one :class:`SpecError` (a ``ValueError``) whose message names the offending key and the file.
Specs run registered code only: ``run: module:function`` is an unknown name, nothing is imported.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import operator
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from overtensor.experiments.names import name_problem

SPEC_SUFFIXES = (".yaml", ".yml", ".toml")
#: Default largest number of runs a spec may expand to (``max_runs`` / ``--max-runs``).
DEFAULT_MAX_RUNS = 10**6
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


class SpecError(ValueError):
    """A spec file or dict is invalid; the message names the key and the source.

    ``exit_code`` is the CLI's exit status for it: 2 (bad input), or 4 when the file cannot be read.
    """

    exit_code = 2

    def __init__(self, source: str, key: str | None, message: str, *, exit_code: int | None = None):
        self.source, self.key = source, key
        if exit_code is not None:
            self.exit_code = exit_code
        where = f"key '{key}': " if key else ""
        super().__init__(f"invalid spec {source}: {where}{message}")


class Success(BaseModel):
    """Success criterion: ``metrics[metric] <op> value``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    metric: str = Field(min_length=1)
    op: Literal["<", "<=", ">", ">=", "=="] = "<="
    # A NaN threshold makes every comparison false (success never, silently); inf is no threshold.
    value: float = Field(allow_inf_nan=False)


class Spec(BaseModel):
    """The validated form of a spec (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1)
    run: str = Field(min_length=1)
    description: str = ""
    fixed: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] | None = None
    seeds: Any = 1
    metrics: list[str] = Field(default_factory=list)
    success: Success | None = None

    @field_validator("name", mode="after")
    @classmethod
    def _name(cls, v: str) -> str:
        problem = name_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | list):
            raise ValueError(f"must be a positive integer or a non-empty list of integers, got {v!r}")
        if isinstance(v, int) and v < 1:
            raise ValueError(f"must be >= 1, got {v!r}")
        if isinstance(v, list):
            if not v or any(isinstance(s, bool) or not isinstance(s, int) for s in v):
                raise ValueError(f"must be a non-empty list of integers, got {v!r}")
            if len(set(v)) != len(v):
                raise ValueError(f"has repeated seeds: {v!r}")
        return v

    @field_validator("fixed", "grid", mode="after")
    @classmethod
    def _json_values(cls, v: dict | None, info: ValidationInfo) -> dict | None:
        for key, value in (v or {}).items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise _KeyError(f"{info.field_name}.{key}",
                                f"value {value!r} is not a finite JSON number/string/list") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.grid is not None and not self.grid:
            raise _KeyError("grid", "is empty: list at least one parameter, or remove the key")
        for key, values in (self.grid or {}).items():
            if not values:
                raise _KeyError(f"grid.{key}", "empty list: a grid parameter needs at least one value")
            # A repeated value makes configs with one hash: the sweep would count runs it never
            # does (they are one run), like repeated seeds.
            seen: dict[str, int] = {}
            for j, value in enumerate(values):
                canon = json.dumps(value, sort_keys=True)
                if canon in seen:
                    raise _KeyError(f"grid.{key}[{j}]", f"repeats {value!r} (grid.{key}[{seen[canon]}])")
                seen[canon] = j
        both = set(self.fixed) & set(self.grid or {})
        if both:
            key = sorted(both)[0]
            raise _KeyError(f"grid.{key}", f"{key!r} is both in 'fixed' and in 'grid'")
        for part in ("fixed", "grid"):
            if "seed" in (getattr(self, part) or {}):
                raise _KeyError(f"{part}.seed", "set seeds with the top-level key 'seeds'")
        return self


class _KeyError(ValueError):
    """Raised inside model validators to report a precise key path."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


def load_spec(source: str | Path | dict[str, Any], *, origin: str | None = None,
              check_run: bool = True, max_runs: int = DEFAULT_MAX_RUNS) -> dict[str, Any]:
    """Read and validate a spec from a YAML/TOML file or a dict; returns a plain dict.

    Parameters
    ----------
    source : path or dict
        A ``.yaml``/``.yml``/``.toml`` file, or an already parsed spec.
    origin : str, optional
        How to name the source in error messages (default: the file path, or ``"<dict>"``).
    check_run : bool
        Also check that the run function is registered (nothing is imported for an unregistered
        name) and validate ``fixed`` and every ``grid`` value against its parameter schema.
    max_runs : int
        Refuse a spec that expands to more runs than this (computed from the axis lengths, before
        any config is built).

    Raises
    ------
    SpecError
        One error naming the first offending key and the source, before any run starts.
    """
    if isinstance(source, dict):
        data, where = source, origin or f"<dict {source.get('name', '?')!r}>"
    else:
        path = Path(source)
        where = origin or str(path)
        data = _read(path, where)
    if not isinstance(data, dict):
        raise SpecError(where, None, f"the top level must be a mapping, got {type(data).__name__}")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, where) from None
    except _KeyError as exc:  # pragma: no cover - pydantic wraps these, kept as a safety net
        raise SpecError(where, exc.key, exc.message) from None
    out = spec.model_dump(exclude_none=True)
    _check_size(out, where, max_runs)
    if check_run:
        from overtensor.experiments.catalog import canonical_run_name

        out["run"] = canonical_run_name(out["run"])  # "opt-energy" is "opt_energy"
        try:
            resolve_run(out["run"])
        except ValueError as exc:
            raise SpecError(where, "run", str(exc)) from None
        check_params(out, where)
        check_metrics(out, where)
    return out


def count_runs(spec: dict[str, Any]) -> int:
    """Number of runs ``spec`` expands to: the product of the grid's axis lengths times the seeds."""
    seeds = spec.get("seeds", 1)
    n = seeds if isinstance(seeds, int) else len(seeds)
    return math.prod(len(v) for v in (spec.get("grid") or {}).values()) * n


def _check_size(spec: dict[str, Any], where: str, max_runs: int) -> None:
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise ValueError(f"max_runs must be an integer >= 1, got {max_runs!r}")
    n = count_runs(spec)
    if n > max_runs:
        axes = " x ".join(f"{k}: {len(v)}" for k, v in (spec.get("grid") or {}).items())
        raise SpecError(where, "grid", f"expands to {n} runs ({axes or 'no grid'} x seeds), more than the "
                                       f"limit of {max_runs}; split the sweep or raise max_runs (--max-runs)")


#: Largest number of grid points (seeds aside) whose every combination :func:`check_params`
#: validates; above it, each axis value is validated once (see there).
MAX_CHECKED_POINTS = 10_000


def check_params(spec: dict[str, Any], where: str) -> None:
    """Validate ``fixed`` and each value of each ``grid`` axis against the run function's schema.

    Each grid value is first checked in a config made of ``fixed``, the first value of every other
    axis and the first seed (the work is the sum of the axis lengths, and a bad value is named by
    itself); then, for a grid of at most :data:`MAX_CHECKED_POINTS` points, every combination, so
    that keys that conflict across axes (``grid: {rank: [2, 30], dim: [50, 5]}`` with orthonormal
    components) are refused before any run rather than failing the runs that combine them.

    Raises
    ------
    SpecError
        Naming the key (``fixed.dim``, ``grid.width[2]``), the combination for a conflict
        between axes, and the source.
    """
    from pydantic import ValidationError

    from overtensor.experiments.catalog import get_params

    schema = get_params(spec["run"])
    if schema is None:
        return
    fixed, grid = dict(spec.get("fixed") or {}), dict(spec.get("grid") or {})
    seeds = spec.get("seeds", 1)
    base = {**fixed, **{k: v[0] for k, v in grid.items()},
            "seed": 0 if isinstance(seeds, int) else seeds[0]}
    checks: list[tuple[dict[str, Any], dict[str, int]]] = [(base, {})] + [
        ({**base, k: v}, {k: i}) for k, values in grid.items() for i, v in enumerate(values) if i > 0]
    conflict = None  # a value's own error (type, range) is named before any conflict of keys
    for config, indices in checks:
        try:
            schema.model_validate(config)
        except ValidationError as exc:
            error = _param_error(exc, schema, spec, config, indices, where)
            if not getattr(error, "conflict", False):
                raise error from None
            conflict = conflict or error
    if conflict is not None:
        raise conflict
    if 1 < math.prod(len(v) for v in grid.values()) <= MAX_CHECKED_POINTS:
        keys = list(grid)
        for combo in itertools.product(*(range(len(grid[k])) for k in keys)):
            indices = dict(zip(keys, combo, strict=True))
            if sum(i > 0 for i in combo) < 2:
                continue  # checked above
            config = {**base, **{k: grid[k][i] for k, i in indices.items()}}
            try:
                schema.model_validate(config)
            except ValidationError as exc:
                raise _param_error(exc, schema, spec, config, indices, where) from None
    _check_used(schema, spec, where)


def _selector_values(schema: type, spec: dict[str, Any], selector: str) -> list[Any]:
    """The values ``selector`` takes over the configs of ``spec`` (its default when unset)."""
    fixed, grid = spec.get("fixed") or {}, spec.get("grid") or {}
    if selector in grid:
        return list(grid[selector])
    if selector in fixed:
        return [fixed[selector]]
    field = schema.model_fields.get(selector)
    return [None if field is None else field.default]


def _check_used(schema: type, spec: dict[str, Any], where: str) -> None:
    """Refuse a key that no config of the spec uses (``schema.USED_ONLY_WITH``): e.g.
    ``scale`` when no config has ``problem: nuisance``; and an entry of a mapping keyed by a
    selector (``schema.KEYED_BY``) for a value no config has: ``lr: {adam: ...}`` when no config
    has ``optimizer: adam``."""
    fixed, grid = spec.get("fixed") or {}, spec.get("grid") or {}
    for key, selector in getattr(schema, "KEYED_BY", {}).items():
        values = _selector_values(schema, spec, selector)
        places = [(f"fixed.{key}", fixed[key])] if key in fixed else []
        places += [(f"grid.{key}[{i}]", v) for i, v in enumerate(grid.get(key, []))]
        for path, mapping in places:
            for name in mapping or {}:
                if name not in values:
                    raise SpecError(where, f"{path}.{name}",
                                    f"no run of this spec has {selector}={name!r} ({selector}: "
                                    f"{', '.join(map(repr, values))}); remove the entry")
    for key, (selector, allowed) in getattr(schema, "USED_ONLY_WITH", {}).items():
        if key not in fixed and key not in grid:
            continue
        values = _selector_values(schema, spec, selector)
        if not any(v in allowed for v in values):
            path = f"fixed.{key}" if key in fixed else f"grid.{key}"
            shown = " or ".join(repr(v) for v in allowed)
            raise SpecError(where, path, f"is used only with {selector}={shown}, and no run of "
                                         f"this spec has it ({selector}: "
                                         f"{', '.join(map(repr, values))}); remove it")


def _metric_names(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, name)`` of every metric name a spec holds: ``metrics[i]`` and ``success.metric``.
    ``success`` in ``metrics`` is the column the criterion adds, not a metric of the run."""
    has_success = bool(spec.get("success"))
    out = [(f"metrics[{i}]", m) for i, m in enumerate(spec.get("metrics") or [])
           if not (has_success and m == "success")]
    if has_success:
        out.append(("success.metric", spec["success"]["metric"]))
    return out


def check_metrics(spec: dict[str, Any], where: str) -> None:
    """Check every metric name of ``spec`` (``metrics``, ``success.metric``) against the metrics
    its run function declared (``register_run(..., metrics=...)``), before any run.

    A run function that declared none (a plug-in) is not checked here: its names are checked when
    its first run returns (:func:`select_metrics`: that run and the next fail naming the key).

    Raises
    ------
    SpecError
        Naming the key (``metrics[1]``, ``success.metric``), the name, the closest declared name
        and the declared ones.
    """
    from overtensor.experiments.catalog import get_metrics
    from overtensor.experiments.registry import METRIC_INDEX, metric_declared

    declared = get_metrics(spec["run"])
    if declared is None:
        return
    from overtensor.experiments.catalog import get_params

    schema = get_params(spec["run"])
    only_with = getattr(schema, "METRICS_ONLY_WITH", {}) if schema is not None else {}
    for key, name in _metric_names(spec):
        if metric_declared(name, declared):
            if name in only_with:
                selector, allowed = only_with[name]
                values = _selector_values(schema, spec, selector)
                if not any(v is not None if allowed is None else v in allowed for v in values):
                    need = (f"{selector} set" if allowed is None else
                            f"{selector}=" + " or ".join(map(repr, allowed)))
                    raise SpecError(where, key, f"run function {spec['run']!r} returns {name!r} "
                                                f"only with {need}, and no run of this spec has it "
                                                f"({selector}: {', '.join(map(repr, values))})")
            continue
        # An indexed name is suggested with the user's own index (``t5_2`` -> ``t50_2``).
        index = "".join(itertools.takewhile(str.isdigit, reversed(name)))[::-1].lstrip("0") or "1"
        candidates = {d.replace(METRIC_INDEX, index): d for d in declared}
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if name == "success":
            hint = "; 'success' is the column a 'success:' criterion adds, and this spec has none"
        shown = ", ".join(d.replace(METRIC_INDEX, "<j>") for d in declared)
        raise SpecError(where, key, f"run function {spec['run']!r} returns no metric {name!r}{hint} "
                                    f"(its metrics: {shown})")


def _param_error(exc, schema, spec, config, indices, where) -> SpecError:
    err = exc.errors()[0]
    key = str(err["loc"][0]) if err["loc"] else "fixed"
    conflict = (err.get("ctx") or {}).get("error")
    if not err["loc"] and hasattr(conflict, "key"):  # a params model's ConflictError
        key = conflict.key
    grid = spec.get("grid") or {}
    if key == "seed":
        path = "seeds"
    elif key in grid:
        path = f"grid.{key}[{indices.get(key, 0)}]"
    else:
        path = f"fixed.{key}"
    # Follow pydantic's loc into the value itself (``fixed.lr.adam``), skipping the tags it adds
    # for union members (``constrained-float``, ``literal[...]``) that are not keys of the data.
    got = config.get(key)
    for part in err["loc"][1:]:
        if isinstance(got, dict) and part in got:
            path, got = f"{path}.{part}", got[part]
        elif isinstance(got, list | tuple) and isinstance(part, int) and 0 <= part < len(got):
            path, got = f"{path}[{part}]", got[part]
        else:
            break
    if len(err["loc"]) > 1:
        got = err.get("input", got)  # the offending value or key itself (``[key]`` errors)
    run = spec["run"]
    if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
        allowed = [k for k in schema.model_fields if k != "seed"]
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return SpecError(where, path, f"unknown parameter of run function {run!r} "
                                      f"(allowed: {', '.join(allowed)}){hint}")
    if err["type"] == "missing":
        return SpecError(where, key, f"run function {run!r} needs this parameter: "
                                     "set it in 'fixed' or 'grid'")
    msg = err["msg"].removeprefix("Value error, ")
    if hasattr(conflict, "key"):
        # A conflict explains itself; in a combination of several axes, name the combination.
        shown = {k: config[k] for k in grid if len(grid[k]) > 1 and indices.get(k, 0) > 0}
        combo = (" (in the grid point " + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
                 if len(shown) > 1 else "")
        error = SpecError(where, path, f"{msg}{combo} (run function {run!r})")
        error.conflict = True
        return error
    return SpecError(where, path, f"{msg} for run function {run!r}, got {got!r}")


#: Largest spec file read, in bytes: a spec is a few lines; this bounds the parser's work.
MAX_SPEC_BYTES = 1 << 20


def _read(path: Path, where: str) -> Any:
    if path.is_dir():  # e.g. a built-in experiment's figures folder named as ./NAME
        raise SpecError(where, None, f"is a directory, not a spec file (a {', '.join(SPEC_SUFFIXES)} "
                                     "file); a built-in experiment is named without a path "
                                     "(overtensor experiment list)", exit_code=4)
    if path.suffix not in SPEC_SUFFIXES:
        raise SpecError(where, None, f"unknown file type {path.suffix!r}; use one of {list(SPEC_SUFFIXES)}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(where, None, f"the file is larger than {MAX_SPEC_BYTES} bytes; a spec "
                                         "lists parameters, not data")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise SpecError(where, None, f"cannot read the file ({exc.strerror})", exit_code=4) from None
    except UnicodeDecodeError:
        raise SpecError(where, None, "not a text file (not valid UTF-8)") from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        return _load_yaml(text)
    except SpecError:
        raise
    except _AliasError as exc:
        raise SpecError(where, None, str(exc)) from None
    except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError carry line numbers
        raise SpecError(where, None, f"not valid {path.suffix[1:].upper()}: {exc}") from None


class _AliasError(ValueError):
    """A YAML alias in a spec (refused: see :func:`_load_yaml`)."""


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses anchors' aliases (``*name``, also in ``<<: *name``).

    Aliases are the one YAML feature whose expanded size is unbounded by the file's: nested
    aliases ("billion laughs") make a 400-byte file expand to gigabytes before any validation.
    A spec is a handful of parameters, so it never needs them; the refusal comes from the
    composer at the first alias event, before anything is expanded.
    """
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _AliasError(f"line {event.start_mark.line + 1}: YAML alias *{event.anchor} "
                                  "is not allowed in a spec (write the value out)")
            return super().compose_node(parent, index)

    loader = NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _spec_error(exc: ValidationError, where: str) -> SpecError:
    err = exc.errors()[0]
    ctx_err = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _KeyError):
        return SpecError(where, ctx_err.key, ctx_err.message)
    loc = [str(p) for p in err["loc"]]
    # List positions as in the other messages (``metrics[0]``, ``grid.width[2]``).
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "extra_forbidden":
        model = Success if len(loc) > 1 and loc[0] == "success" else Spec
        allowed = list(model.model_fields)
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return SpecError(where, key, f"unknown key (allowed: {', '.join(allowed)}){hint}")
    if err["type"] == "missing":
        return SpecError(where, key, "required key is missing")
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if err["type"] not in ("value_error",) and not isinstance(got, dict):
        msg = f"{msg}, got {got!r}"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(where, key, msg)


def resolve_run(name: str):
    """The run function registered as ``name`` (see :func:`overtensor.experiments.catalog.get_run`).

    Only registered names resolve; a ``"module:function"`` string is refused without importing.
    """
    from overtensor.experiments.catalog import get_run

    return get_run(name)


def is_success(metrics: dict[str, Any], success: dict[str, Any] | None) -> bool | None:
    """Evaluate ``success`` (``{metric, op, value}``) on a metrics dict; None without a criterion.

    A missing or non-finite metric counts as a failure.
    """
    if not success:
        return None
    value = metrics.get(success["metric"])
    if value is None or isinstance(value, str):
        return False
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(value):
        return False
    return bool(_OPS[success.get("op", "<=")](value, float(success["value"])))


def expand(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """All run configs of a spec, in a stable order (grid order, then seeds)."""
    fixed = dict(spec.get("fixed") or {})
    grid = dict(spec.get("grid") or {})
    seeds = spec.get("seeds", 1)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        for s in seeds:
            out.append({**fixed, **point, "seed": s})
    return out


def config_hash(run: str, config: dict[str, Any]) -> str:
    """Stable hash of a run function name and its config (canonical JSON)."""
    blob = json.dumps({"run": run, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def select_metrics(metrics: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Keep the metrics the spec lists (all when it lists none) and add ``success``."""
    keep = spec.get("metrics") or []
    # A misspelled name would record nothing (or a success that is always False) with exit 0.
    # Names a run function declared were checked before any run (check_metrics); here the run
    # fails instead, naming the spec key, the name and the metrics the run has: a plug-in's
    # undeclared names, or a declared metric this config does not return.
    # A skipped grid point (``{"skipped": True}``: e.g. a dimension its order does not sweep)
    # returns no metric by design: nothing to check or keep, and no success verdict.
    if metrics.get("skipped") is True:
        return dict(metrics)
    for key, name in _metric_names(spec):
        if name not in metrics:
            close = difflib.get_close_matches(name, list(metrics), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"experiment {spec.get('name', '?')!r}", key,
                            f"the run returned no metric {name!r} (its metrics: "
                            f"{', '.join(sorted(metrics))}){hint}")
    success = spec.get("success")
    if success:
        # A text, list or mapping compared with a number is never a success: fail the run naming
        # the key rather than record success = False in every run.
        value = metrics[success["metric"]]
        if value is not None and not isinstance(value, bool | int | float):
            raise SpecError(f"experiment {spec.get('name', '?')!r}", "success.metric",
                            f"metric {success['metric']!r} is not a number (the run returned "
                            f"{value!r:.80}); choose a numeric metric")
    out = {k: v for k, v in metrics.items() if not keep or k in keep}
    ok = is_success(metrics, success)
    if ok is not None and "success" not in out:
        out["success"] = ok
    return out


def run_inprocess(spec: dict[str, Any]):
    """Run every config of ``spec`` sequentially in this process; returns a pandas DataFrame.

    The simplest runner, without store or resume; see :mod:`overtensor.experiments.runner`.
    """
    import pandas as pd

    fn = resolve_run(spec["run"])
    rows = []
    for cfg in expand(spec):
        metrics = dict(fn(dict(cfg)))
        metrics.pop("history", None)
        rows.append({**cfg, **select_metrics(metrics, spec)})
    return pd.DataFrame(rows)
