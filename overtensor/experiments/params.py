"""Parameter schemas of run functions: spec values are checked against them before any run starts.

A run function declares the keys its config may hold with a pydantic model derived from
:class:`RunParams` (``register_run(name, params=Model)``): types, ranges and choices. A spec's
``fixed`` values and every value of every ``grid`` axis are validated against it in
:func:`overtensor.experiments.spec.load_spec`, so ``dim: -5`` or a misspelled key is one error that
names the key and the file, and nothing has run yet.

The models are strict: ``dim: "5"`` or ``dim: 5.0`` is refused (an integer is expected), an integer
is accepted where a float is expected, and unknown keys are refused.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class ConflictError(ValueError):
    """Two keys of a run config that cannot go together (raised by a params model's validator);
    ``key`` is the one to name in the error (:func:`overtensor.experiments.spec.check_params`
    reports it as ``fixed.KEY`` or ``grid.KEY[i]``)."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


class RunParams(BaseModel):
    """Base of every run function's parameter schema: strict types, no unknown keys, and the
    ``seed`` the runner adds to each config."""

    model_config = ConfigDict(extra="forbid", strict=True)
    seed: int = 0

    #: ``{key: (selector, values)}``: ``key`` is used only when ``selector`` is one of
    #: ``values``. A spec that sets ``key`` while none of its configs has such a selector is
    #: refused (:func:`overtensor.experiments.spec.check_params`): the key would be recorded in
    #: every run and used by none. (A grid over the selector may share the key.)
    USED_ONLY_WITH: ClassVar[dict[str, tuple[str, tuple[Any, ...]]]] = {}
    #: ``{key: selector}``: ``key`` is a mapping whose keys are values of ``selector`` (``lr:
    #: {adam: 0.01}`` keyed by ``optimizer``); an entry for a value no config of the spec has is
    #: refused (:func:`overtensor.experiments.spec.check_params`): it would be recorded, unused.
    KEYED_BY: ClassVar[dict[str, str]] = {}
    #: ``{metric: (selector, values)}``: a declared metric the run returns only when ``selector``
    #: is one of ``values`` (``None``: when ``selector`` is set at all). A spec naming the metric
    #: (``metrics``, ``success.metric``) while none of its configs has such a selector is refused
    #: (:func:`overtensor.experiments.spec.check_metrics`): every run would fail for the metric.
    METRICS_ONLY_WITH: ClassVar[dict[str, tuple[str, tuple[Any, ...] | None]]] = {}

    def target_components(self) -> str | None:
        """The ``components`` of the random target a config draws (``"orthonormal"`` needs
        ``rank <= dim``); a model whose target's components come from another key overrides it."""
        return getattr(self, "components", None)

    @model_validator(mode="after")
    def _orthonormal_rank(self) -> RunParams:
        # random_target refuses rank > dim for orthonormal components: checked here for every
        # run function drawing one, before any run (it failed each run with exit 3).
        rank, dim = getattr(self, "rank", None), getattr(self, "dim", None)
        if (self.target_components() == "orthonormal" and isinstance(rank, int)
                and isinstance(dim, int) and rank > dim):
            raise ConflictError("rank", f"components='orthonormal' needs rank <= dim={dim}, "
                                        f"got rank={rank}")
        return self


class TargetParams(RunParams):
    """Keys of :func:`overtensor.random_target` as a run function takes them."""

    order: Annotated[int, Field(ge=2)] = 3
    dim: PositiveInt = 20
    rank: PositiveInt = 3
    components: Literal["random", "orthonormal"] = "random"
    weights: Literal["equal", "geometric", "linear"] | Fraction = "equal"
    noise: NonNegativeFloat = 0.0


class FitParams(TargetParams):
    """Config of the built-in ``fit`` run: the target's keys, ``width_factor``, ``eps`` and the
    keywords of :func:`overtensor.fit` that a spec can set (JSON values only)."""

    width_factor: PositiveFloat | None = None
    eps: PositiveFloat | None = None
    width: PositiveInt | None = None
    method: Literal["beyond-lazy", "gd", "exact-rank", "deflation", "power-method"] = "beyond-lazy"
    model: Literal["plain", "homogeneous", "coefficients"] | None = None
    regime: Literal["full", "lazy", "random-features", "alpha-scaled", "orthogonal"] = "full"
    threads: PositiveInt | Literal["auto"] | None = None
    alpha: PositiveFloat = 1.0
    init_scale: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None
    reinit_threshold: NonNegativeFloat | Literal["default", "half-init"] | None = "default"
    epoch_steps: PositiveInt | None = None
    epoch_growth: PositiveFloat | None = None
    max_steps: NonNegativeInt = 20000
    final_steps: NonNegativeInt = 10000
    tol: NonNegativeFloat = 1e-4
    lr: PositiveFloat | None = None
    optimizer: Literal["gd", "adam"] | None = None
    signs: Literal["auto", "positive", "balanced"] = "auto"
    patience: PositiveInt = 5
    eval_every: PositiveInt = 50
    extract: bool = True
    polish_iter: NonNegativeInt = 100
    polish_below: NonNegativeFloat = 1e-2
    main_epochs: PositiveInt | Literal["default", "auto"] | None = "default"
    merge_cos: Fraction = 0.99
    drop_tol: NonNegativeFloat = 1e-3
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:[0-9]+)?)$")] | None = None
    dtype: Literal["float32", "float64"] | None = None
    engine: Literal["auto", "autograd"] = "auto"

    METRICS_ONLY_WITH: ClassVar[dict[str, tuple[str, tuple[Any, ...] | None]]] = {
        "steps_to_eps": ("eps", None), "time_to_eps": ("eps", None),
        **{m: ("method", ("power-method",)) for m in (
            "found_order", "found_cos", "found_weights", "n_restarts", "n_iter", "variant")},
    }

    @model_validator(mode="after")
    def _used(self) -> FitParams:
        # The options overtensor.fit refuses for this method and regime (it would ignore them),
        # refused here too with fit's own rule: before any run, naming the key, instead of every
        # run failing. A value equal to fit's default is fine.
        from overtensor.tensors.config import FIELD_DEFAULTS, GROUP_OF, is_default
        from overtensor.tensors.option_rules import unused_options

        defaults = {**FIELD_DEFAULTS, "alpha": 1.0}
        target_keys = set(TargetParams.model_fields)  # "rank" here is the target's, not a cap
        given = {k: GROUP_OF.get(k) for k in self.model_fields_set - target_keys
                 if k in defaults and not is_default(getattr(self, k), defaults[k])}
        given.pop("max_steps", None)  # a sweep's step budget: the gradient methods' (runs.py)
        for key in unused_options(self.method, self.regime, given):
            raise ConflictError(key, f"method={self.method!r} with regime={self.regime!r} "
                                     f"does not use {key}; remove it")
        return self

    @model_validator(mode="after")
    def _width(self) -> FitParams:
        # The width of a gradient method: width or width_factor, not both (width_factor would
        # silently replace width); exact-rank and power-method take the rank (both ignored).
        if self.regime != "full" and self.method == "power-method":
            raise ConflictError("regime", f"regime={self.regime!r} needs a gradient method, "
                                          f"got method={self.method!r}")
        if self.method in ("exact-rank", "power-method"):
            return self
        if self.width is not None and self.width_factor is not None:
            raise ConflictError("width_factor", f"sets width = ceil(width_factor * rank) and "
                                                f"width={self.width} is set too; remove one")
        if self.width is None and self.width_factor is None:
            raise ConflictError("width", f"method={self.method!r} needs width or width_factor "
                                         "(set one in 'fixed' or 'grid')")
        return self


class LazyLowerBoundParams(RunParams):
    """Config of the ``lazy_lower_bound`` run (:mod:`overtensor.experiments.lazy_lower_bound`)."""

    order: Annotated[int, Field(ge=2)]
    dim: PositiveInt
    rank: PositiveInt
    md_ratio: PositiveFloat
    components: Literal["random", "orthonormal"] = "random"
    full_seeds: NonNegativeInt = 1
    full_max_steps: NonNegativeInt = 3000
    full_tol: NonNegativeFloat = 1e-3
    solver: Literal["auto", "explicit", "cg"] = "auto"
    dims_by_order: dict[str, list[PositiveInt]] | None = None


class WidthVsDimensionParams(RunParams):
    """Config of the ``width_vs_dimension`` run (:mod:`overtensor.experiments.width_vs_dimension`)."""

    regime: Literal["lazy", "beyond-lazy"]
    dim: PositiveInt
    rank: PositiveInt
    order: Annotated[int, Field(ge=2)] = 3
    eps: PositiveFloat = 1e-2
    lazy_max_dim: PositiveInt = 40
    max_width: PositiveInt | None = None
    max_steps: NonNegativeInt = 3000
    final_steps: NonNegativeInt = 1000

    @model_validator(mode="after")
    def _ladder(self) -> WidthVsDimensionParams:
        # The beyond-lazy ladder starts at the rank: below it no width is tried and every run
        # records min_width None after 0 fits, as if no width had reached eps.
        if self.max_width is not None and self.max_width < self.rank:
            raise ConflictError("max_width", f"the width ladder starts at rank={self.rank}; "
                                             f"max_width={self.max_width} leaves it empty")
        return self

