"""The grouped options of :func:`overtensor.fit`: one small frozen dataclass per concern.

``fit(target, width, method, *, regime, alpha, tol, schedule, extraction, power, orthogonal,
random_state, callback, recorders, runtime)``: what is fitted and to which accuracy are keywords of
``fit``; *how* is grouped by concern, each group validated in its own constructor (a bad value
fails where it is written, naming the field and the value):

* :class:`GradientSchedule` — the gradient methods' schedule (docs/theory/tensors.md §5: model,
  initialization, weight decay, re-initialization, epochs, phases, step size, optimizer);
* :class:`Extraction` — turning the over-parameterized solution into a CP (merge, drop, polish,
  rank reduction; :mod:`overtensor.tensors.extraction`, :mod:`overtensor.tensors.reduction`);
* :class:`Runtime` — how the computation runs without changing what is fitted (engine, its
  shortcuts, device, dtype, threads, progress bar);
* :class:`~overtensor.tensors.power.PowerOptions` (``method="power-method"``) and
  :class:`~overtensor.tensors.orthogonal_fit.OrthogonalOptions` (``regime="orthogonal"``).

``fit`` refuses a group that its method or regime does not use (``schedule=`` with
``method="spm"``), so an option can never be ignored silently.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from overtensor._checks import check_choice, check_float, check_int, check_stopping
from overtensor.optim.registry import check_optimizer
from overtensor.tensors.models import MODELS
from overtensor.tensors.shortcuts import Shortcuts
from overtensor.tensors.threads import choose_threads


def as_dict(options: Any) -> dict[str, Any]:
    """The fields of a config object as a flat dict (values as they are: no deep copy, so an
    optimizer instance or a generator stays the same object)."""
    return {f.name: getattr(options, f.name) for f in fields(options)}


def changed(options: Any) -> dict[str, Any]:
    """The fields of a config object that differ from their defaults."""
    default = type(options)()
    return {k: v for k, v in as_dict(options).items() if not is_default(v, getattr(default, k))}


def is_default(value: Any, default: Any) -> bool:
    """Whether ``value`` is the default ``default`` (same type and equal; ``()`` and ``[]`` alike)."""
    if value is default:
        return True
    if isinstance(default, tuple) and isinstance(value, list | tuple):
        return len(value) == 0 and len(default) == 0
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except Exception:  # values without a plain truth value (tensors, optimizers) are not defaults
        return False


@dataclass(frozen=True)
class GradientSchedule:
    """The schedule of the gradient methods (``beyond-lazy``, ``gd``, ``exact-rank``,
    ``deflation``) and of the non-``full`` regimes.

    ``None`` (and ``"default"``) mean the method's default
    (:data:`overtensor.tensors.methods.METHOD_DEFAULTS`; docs/theory/tensors.md §5).

    Attributes
    ----------
    model : {"plain", "homogeneous", "coefficients"} or None
        Override the method's model.
    signs : {"auto", "positive", "balanced"}
        Fixed signs of the terms; ``auto`` balances them for even orders with negative weights.
    init_scale, weight_decay : float or None
        ``δ_0`` (norm of the initial rows, > 0) and ``μ`` (≥ 0).
    reinit_threshold : float, "half-init", None or "default"
        ``δ_1``: rows whose norm falls below it are re-initialized; ``None`` disables
        re-initialization; ``"half-init"`` is ``δ_0/2``.
    epoch_steps, epoch_growth : int, float or None
        ``K`` (steps of the first epoch, ≥ 1) and ``γ ≥ 1`` (each epoch ``γ`` times longer).
    main_epochs : int, "auto", None or "default"
        Epochs after which the main phase (with weight decay) ends; ``"auto"`` derives it from
        ``tol`` (:func:`overtensor.tensors.deflation_schedule.deflation_epochs`); ``None``: only
        stagnation ends it. Only the ``full`` regime has phases.
    max_steps, final_steps : int
        Step budget (≥ 1) and budget of the final ``μ = 0`` phase (≥ 0; ``full`` regime only).
    lr : float or None
        Step size for the unit-norm normalized target; default ``0.5 / max(order, 4)`` (below the
        curvature of a fitted component, ``≈ max(4, l)·λ_max``); in the non-``full`` regimes
        ``1/L`` from the top Hessian eigenvalue at the start.
    optimizer : None, str, torch.optim.Optimizer class or instance, or callable
        Default plain gradient descent; any name of
        :data:`overtensor.optim.registry.OPTIMIZERS` (:func:`overtensor.optim.registry.make_optimizer`).
    patience : int
        Epochs without 1 % improvement that end a phase (≥ 1).
    eval_every : int
        Steps between two evaluations (history, callback, recorders, divergence check; ≥ 1).

    Raises
    ------
    ValueError, TypeError
        At construction, naming the field and its value.
    """

    model: str | None = None
    signs: str = "auto"
    init_scale: float | None = None
    weight_decay: float | None = None
    reinit_threshold: float | str | None = "default"
    epoch_steps: int | None = None
    epoch_growth: float | None = None
    main_epochs: int | str | None = "default"
    max_steps: int = 20000
    final_steps: int = 10000
    lr: float | None = None
    optimizer: Any = None
    patience: int = 5
    eval_every: int = 50

    def __post_init__(self) -> None:
        if self.model is not None:
            check_choice("model", self.model, MODELS)
        check_choice("signs", self.signs, ("auto", "positive", "balanced"))
        max_steps, _, final_steps = check_stopping(self.max_steps, None, self.final_steps)
        object.__setattr__(self, "max_steps", max_steps)
        object.__setattr__(self, "final_steps", final_steps)
        if self.init_scale is not None:
            check_float("init_scale", self.init_scale, minimum=0.0, strict=True)
        if self.weight_decay is not None:
            check_float("weight_decay", self.weight_decay, minimum=0.0)
        if self.reinit_threshold not in ("default", "half-init", None):
            check_float("reinit_threshold", self.reinit_threshold, minimum=0.0)
        if self.epoch_steps is not None:
            check_int("epoch_steps", self.epoch_steps, 1)
        if self.epoch_growth is not None:
            check_float("epoch_growth", self.epoch_growth, minimum=1.0)
        if self.main_epochs not in ("default", "auto", None):
            check_int("main_epochs", self.main_epochs, 1)
        if self.lr is not None:
            check_float("lr", self.lr, minimum=0.0, strict=True)
        check_optimizer(self.optimizer)
        object.__setattr__(self, "patience", check_int("patience", self.patience, 1))
        object.__setattr__(self, "eval_every", check_int("eval_every", self.eval_every, 1))


@dataclass(frozen=True)
class Extraction:
    """How the over-parameterized solution becomes a CP (``full`` regime of the gradient methods;
    :mod:`overtensor.tensors.extraction`, :mod:`overtensor.tensors.reduction`).

    Attributes
    ----------
    extract : bool
        Merge and drop terms after training (default True); ``False`` returns the trained
        model's terms as they are.
    merge_cos : float in [0, 1]
        Rows with ``|cos| ≥ merge_cos`` are merged into one term.
    drop_tol : float in [0, 1]
        Terms below ``drop_tol·max|λ|`` are dropped.
    polish_iter : int
        L-BFGS steps of the polish (≥ 0), run only when the model's own relative error is
        ``≤ polish_below``.
    polish_below : float
        See ``polish_iter``.
    rank : int or None
        Cap on the number of returned terms, always applied: the best CP with at most ``rank``
        terms reachable from the over-parameterized solution (greedy removal with polish); when
        it misses ``tol``, ``result.warnings`` says so. Without it, a CP that meets ``tol`` is
        reduced to the fewest terms that still meet it, and one that misses ``tol`` keeps the
        terms whose removal more than doubles the polished error (``info["rank_support"]``).

    Raises
    ------
    ValueError, TypeError
        At construction, naming the field and its value.
    """

    extract: bool = True
    merge_cos: float = 0.99
    drop_tol: float = 1e-3
    polish_iter: int = 100
    polish_below: float = 1e-2
    rank: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.extract, bool):
            raise TypeError(f"extract must be True or False, got {self.extract!r}")
        check_float("merge_cos", self.merge_cos, minimum=0.0, maximum=1.0)
        check_float("drop_tol", self.drop_tol, minimum=0.0, maximum=1.0)
        object.__setattr__(self, "polish_iter", check_int("polish_iter", self.polish_iter, 0))
        check_float("polish_below", self.polish_below, minimum=0.0)
        if self.rank is not None:
            object.__setattr__(self, "rank", check_int("rank", self.rank, 1))


#: The engines of :func:`overtensor.fit` (``auto``: the fast route where it applies; ``paper``:
#: the paper's schedule; ``autograd``: the paper's schedule on the autograd loop).
ENGINES = ("auto", "paper", "autograd")


@dataclass(frozen=True)
class Runtime:
    """How :func:`overtensor.fit` computes, not what it fits.

    Attributes
    ----------
    engine : {"auto", "paper", "autograd"}
        ``auto`` (default): the fastest route to the same decomposition
        (:func:`overtensor.tensors.route.fast_route`, ``docs/method.md``; ``result.info["route"]``
        says which and why); ``paper``: the paper's exact schedule (what the experiments pin;
        plain gradient descent on the batched engine, :mod:`overtensor.tensors.batched`, other
        optimizers on the autograd loop); ``autograd`` forces the latter. ``paper`` and
        ``autograd`` take the same decisions from the same random draws.
    shortcuts : Shortcuts or None
        The speed-ups of the ``auto`` route (:class:`overtensor.tensors.shortcuts.Shortcuts`;
        default ``Shortcuts()``); an explicit one is refused where the route cannot apply it.
    device, dtype
        Default: the target's device; float64 on CPU, float32 on CUDA.
    threads : int, "auto" or None
        Intra-op torch threads of the fit (:mod:`overtensor.tensors.threads`): default
        ``$OVERTENSOR_THREADS``, else ``"auto"`` (one thread for small problems, the current
        setting otherwise); the previous setting is restored afterwards.
    progress : bool
        Show a progress bar.

    Raises
    ------
    ValueError, TypeError
        At construction, naming the field and its value.
    """

    engine: str = "auto"
    shortcuts: Shortcuts | None = None
    device: Any = None
    dtype: Any = None
    threads: int | str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        check_choice("engine", self.engine, ENGINES)
        if self.shortcuts is not None:
            if not isinstance(self.shortcuts, Shortcuts):
                raise TypeError(f"shortcuts must be a Shortcuts or None, got "
                                f"{type(self.shortcuts).__name__}: {self.shortcuts!r}")
            if self.engine != "auto":
                raise ValueError(f"shortcuts are only used with engine='auto', got "
                                 f"engine={self.engine!r}")
        if self.threads is not None:
            choose_threads(None, self.threads)  # ValueError naming threads and the value
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be True or False, got {self.progress!r}")


def check_group(name: str, value: Any, cls: type) -> Any:
    """``value`` if it is a ``cls`` (or ``None``: the defaults), else ``TypeError`` naming the
    argument, the class to pass and the value."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise TypeError(f"{name} must be {article} {cls.__name__} (overtensor.{cls.__name__}(...)) "
                        f"or None, got {type(value).__name__}: {value!r}")
    return value


#: Which group each flat option name belongs to (for :func:`split_options`).
GROUPS: dict[str, type] = {
    **{f.name: GradientSchedule for f in fields(GradientSchedule)},
    **{f.name: Extraction for f in fields(Extraction)},
    **{f.name: Runtime for f in fields(Runtime)},
}
_ARGUMENT = {GradientSchedule: "schedule", Extraction: "extraction", Runtime: "runtime"}
#: Which argument of :func:`overtensor.fit` each flat option name belongs to
#: (for :func:`overtensor.tensors.option_rules.unused_options`).
GROUP_OF: dict[str, str] = {name: _ARGUMENT[cls] for name, cls in GROUPS.items()}
#: The default of every field of the three groups, by name (read once, no instance built).
FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for cls in _ARGUMENT for f in fields(cls)}


def split_options(options: dict[str, Any]) -> dict[str, Any]:
    """Flat option names (as in a sweep's spec or the CLI: ``{"lr": 0.1, "rank": 3}``) as the
    grouped keyword arguments of :func:`overtensor.fit` (``{"schedule": GradientSchedule(lr=0.1),
    "extraction": Extraction(rank=3)}``); names that are already keywords of ``fit`` pass through.

    Raises
    ------
    ValueError
        From the config constructors, naming the field and its value.
    """
    groups: dict[type, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for key, value in options.items():
        cls = GROUPS.get(key)
        if cls is None:
            out[key] = value
        else:
            groups.setdefault(cls, {})[key] = value
    for cls, values in groups.items():
        out[_ARGUMENT[cls]] = cls(**values)
    return out


__all__ = ["ENGINES", "FIELD_DEFAULTS", "GROUP_OF", "Extraction", "GradientSchedule", "Runtime",
           "as_dict", "changed", "check_group", "is_default", "split_options"]
