"""Training a two-layer network in one regime: the loop over any ``torch.optim`` optimizer.

The model is :func:`overtensor.networks.model.network_fn`, transformed by a regime of
:mod:`overtensor.regimes.layer` (``full`` = NN, ``lazy`` = NT, ``random-features`` = RF,
``alpha-scaled``, or any registered one such as ``orthogonal``). Training minimizes the squared
loss ``mean (f(x) − y)²`` (times the regime's ``loss_scale``) either *online* — a fresh batch from
the data model at every step, i.e. SGD on the population risk, as in the authors' code — or on a
fixed training set of ``samples`` points (mini-batches, or the full batch with
``batch_size=None``). As in the authors' code, the step size is multiplied by ``decay_factor``
for the last ``decay_fraction`` of the run.

Default step of ``torch.optim.SGD`` (``optimizer`` ``"sgd"``, ``"gd"``, ``"momentum"``,
``"nesterov"`` with ``lr=None``): curvature steps from the mini-batch Hessian at the initialization
(:func:`curvature_steps`, one step per parameter block ``W``, ``a``, ``c``); in the ``lazy`` regime,
whose loss is exactly quadratic in the parameters, with Polyak's heavy-ball momentum ``0.9``.

Reported risks: for a :class:`~overtensor.networks.data.GaussianQuadratic` target and a quadratic
activation, the test risk is exact (:mod:`overtensor.networks.quadratic_risk`: the model is a quadratic
form, nothing is sampled); otherwise it is the mean squared error on a held-out test set, with the
test classification error for ``±1`` labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor._checks import check_choice, check_float, check_int, make_generator, resolve_device
from overtensor.networks.data import GaussianMixtureClassification, GaussianQuadratic, train_test
from overtensor.networks.model import NetworkSpec, init_network, network_fn, quadratic_form
from overtensor.networks.quadratic_risk import null_risk, population_risk
from overtensor.optim.cayley import riemannian_sgd
from overtensor.optim.curvature import DEFAULT_SAFETY, block_steps
from overtensor.optim.registry import check_optimizer, make_optimizer
from overtensor.regimes.diagnostics import relative_distance
from overtensor.regimes.layer import apply_regime, get_regime, loss_scale
from overtensor.regimes.orthogonal import BLOCK_STEPS
from overtensor.training.loop import (
    Divergence,
    Evaluation,
    Progress,
    optimizer_step,
    train_loop,
)
from overtensor.training.result import Callback, TrainingResult, check_callback
from overtensor.training.schedule import StepSchedule

Params = dict[str, torch.Tensor]



def _set(obj: Any, name: str, value: Any) -> None:
    """Store a checked value on a frozen dataclass: a NumPy integer or float given (accepted like a
    Python number) becomes the Python number, so results and summaries stay JSON."""
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the network itself is a :class:`~overtensor.networks.model.NetworkSpec`).

    Attributes
    ----------
    regime : str
        A key of :data:`overtensor.regimes.layer.REGIME_TRANSFORMS` (``full``, ``lazy``,
        ``random-features``, ``alpha-scaled``, ...).
    regime_options : dict
        Extra keyword arguments of the regime transformation (``alpha`` is passed to
        ``alpha-scaled``; ``random-features`` trains ``("a", "c")`` unless ``trained`` is given;
        ``orthogonal`` with ``method="stochastic"`` also takes ``block_steps``, the steps between
        merges of its ``k × k`` block, default :data:`overtensor.regimes.orthogonal.BLOCK_STEPS`).
    optimizer : str, ``torch.optim.Optimizer`` class or instance, or callable
        Any spelling of :mod:`overtensor.optim.registry` (``"sgd"``, ``"momentum"``, ``"adagrad"``,
        ``"rmsprop"``, ``"adam"``, ``"adamw"``, ...); a class is called as ``cls(params, lr=lr)``.
    lr : float or None
        Step size of every parameter; ``None`` takes :func:`curvature_steps` for the
        ``torch.optim.SGD`` names (``"sgd"``, ``"gd"``, ``"momentum"``, ``"nesterov"``) and
        :func:`default_lr` for the others.
    momentum : float or None
        Heavy-ball momentum ``β ∈ [0, 1)`` of ``"sgd"``/``"gd"`` (passed to ``torch.optim.SGD``).
        ``None``: :data:`LAZY_MOMENTUM` in the ``lazy`` regime when the step is the curvature
        default, else 0 (an explicit ``lr`` runs plain SGD unless ``momentum`` is given).
    safety : float or None
        ``c`` of the curvature steps ``c/λ_max`` (:mod:`overtensor.optim.curvature`), in ``(0, 2)``;
        ``None`` is :data:`overtensor.optim.curvature.DEFAULT_SAFETY`. It only sets the default step of
        the ``torch.optim.SGD`` names, so a value given with another optimizer or with an explicit
        ``lr`` raises ``ValueError`` (it would be ignored).
    steps : int
        Optimizer steps.
    batch_size : int or None
        Samples per step; ``None`` with a fixed training set is full-batch gradient descent.
    samples : int or None
        Size of the fixed training set; ``None`` trains online on fresh samples.
    test_samples : int
        Size of the held-out test set (used when the risk is not exact).
    decay_fraction, decay_factor : float
        The step size is multiplied by ``decay_factor`` for the last ``decay_fraction`` of the steps.
    alpha : float
        ``α`` of ``alpha-scaled``.
    a_init : {"ones", "signs"}
        Initial output weights.
    eval_every : int
        Steps between evaluations (history, callback, progress bar; the divergence rule checks
        every step's batch risk).
    dtype : torch.dtype
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; samples are drawn on the CPU (same seed, same data on
        every device) and moved.
    progress : bool
        Show a rich progress bar.
    """

    regime: str = "full"
    regime_options: dict[str, Any] = field(default_factory=dict)
    optimizer: Any = "sgd"
    lr: float | None = None
    momentum: float | None = None
    safety: float | None = None
    steps: int = 2000
    batch_size: int | None = 100
    samples: int | None = None
    test_samples: int = 10000
    decay_fraction: float = 0.3
    decay_factor: float = 0.1
    alpha: float = 1.0
    a_init: str = "ones"
    eval_every: int = 100
    dtype: torch.dtype = torch.float64
    device: str = "cpu"
    progress: bool = False

    def __post_init__(self) -> None:
        get_regime(self.regime)  # ValueError naming the known regimes
        check_optimizer(self.optimizer)  # the plug-ins of overtensor.optim.registry, every spelling
        if self.lr is not None:
            _set(self, "lr", check_float("lr", self.lr, minimum=0.0, strict=True))
        if self.momentum is not None:
            _set(self, "momentum", check_float("momentum", self.momentum, minimum=0.0))
            if not self.momentum < 1:
                raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
            if self.optimizer not in ("sgd", "gd", None):
                raise ValueError(f"momentum is an option of optimizer 'sgd' or 'gd', got "
                                 f"momentum={self.momentum!r} with optimizer={self.optimizer!r}")
        if self.safety is not None:
            _set(self, "safety", check_float("safety", self.safety, minimum=0.0, maximum=2.0,
                                             strict=True))
            if not self.safety < 2:
                raise ValueError(f"safety must be < 2 (gradient descent's stability limit), "
                                 f"got {self.safety!r}")
            # safety only scales the curvature default step of the SGD family: refuse it elsewhere
            if self.lr is not None:
                raise ValueError(f"safety only sets the default (curvature) step; it is ignored with "
                                 f"an explicit lr: got safety={self.safety!r} with lr={self.lr!r}")
            if not (self.optimizer is None or (isinstance(self.optimizer, str)
                                               and self.optimizer in SGD_NAMES)):
                raise ValueError(f"safety is an option of the curvature step of optimizer "
                                 f"{'/'.join(SGD_NAMES)}, got safety={self.safety!r} with "
                                 f"optimizer={self.optimizer!r}")
        _set(self, "steps", check_int("steps", self.steps, 1))
        if self.batch_size is not None:
            _set(self, "batch_size", check_int("batch_size", self.batch_size, 1))
        elif self.samples is None:
            raise ValueError("batch_size=None (full batch) needs a fixed training set, got samples=None")
        if self.samples is not None:
            _set(self, "samples", check_int("samples", self.samples, 1))
        _set(self, "test_samples", check_int("test_samples", self.test_samples, 1))
        _set(self, "decay_fraction", check_float("decay_fraction", self.decay_fraction, minimum=0.0,
                                                 maximum=1.0))
        _set(self, "decay_factor", check_float("decay_factor", self.decay_factor, minimum=0.0,
                                               maximum=1.0, strict=True))
        _set(self, "alpha", check_float("alpha", self.alpha, minimum=0.0, strict=True))
        check_choice("a_init", self.a_init, ("ones", "signs"))
        _set(self, "eval_every", check_int("eval_every", self.eval_every, 1))
        resolve_device(self.device)


@dataclass(kw_only=True)
class NetworkFit(TrainingResult):
    """Outcome of :func:`train_network`.

    ``test_risk``/``null_risk``/``train_risk`` are mean squared errors (``null_risk``: the best
    constant); ``exact`` says whether ``test_risk`` is the exact population risk. ``laziness`` maps
    ``"W"``/``"a"`` to ``‖θ − θ_0‖/‖θ_0‖`` of the network parameters the regime moved (for ``lazy``
    the displacement of the linearization; for ``orthogonal`` the effective rows ``W = W_0 Rᵀ``:
    the rotation moves every neuron although ``‖W‖ = ‖W_0‖``, so ``laziness_W`` lies in ``[0, 2]``).
    ``model_fn``/``params`` evaluate the trained model.
    ``lr`` is the initial step (under the curvature default: of ``W`` when the regime trains it,
    else the largest per-block step, ``lr_a`` for ``random-features`` and ``orthogonal``; the
    per-block steps are ``info["lr_W"]`` or ``info["lr_R"]``, ``info["lr_a"]``, ``info["lr_c"]``);
    ``info["momentum"]`` the heavy-ball momentum of an SGD (``None`` for other optimizers).
    """

    test_risk: float
    null_risk: float
    train_risk: float
    lr: float
    exact: bool
    laziness: dict[str, float]
    model_fn: Callable[..., torch.Tensor]
    params: Params
    params0: Params
    test_error: float | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        out = {"test_risk": self.test_risk, "null_risk": self.null_risk,
               "relative_test_risk": self.test_risk / self.null_risk if self.null_risk > 0 else None,
               "train_risk": self.train_risk, "steps": self.steps, "seconds": round(self.seconds, 4),
               "lr": self.lr, "exact_risk": self.exact,
               **{f"laziness_{k}": v for k, v in self.laziness.items()}}
        if self.test_error is not None:
            out["test_error"] = self.test_error
        return {**out, **self.info}


#: Optimizer names that are ``torch.optim.SGD`` (with their heavy-ball momentum): their default
#: step is :func:`curvature_steps`.
SGD_NAMES = {"sgd": 0.0, "gd": 0.0, "momentum": 0.9, "nesterov": 0.9}

#: Heavy-ball momentum of ``"sgd"`` in the ``lazy`` regime at the curvature step (see
#: :func:`curvature_steps`).
LAZY_MOMENTUM = 0.9


def curvature_steps(loss_fn: Callable[[Params], torch.Tensor], theta: Params, regime: str,
                    momentum: float, safety: float = DEFAULT_SAFETY,
                    random_state: Any = None) -> dict[str, float]:
    """Default steps of ``torch.optim.SGD`` per parameter block: ``c/λ_max`` of the mini-batch Hessian.

    ``loss_fn`` is the training loss of one batch of the training batch size at ``θ_0``;
    :func:`overtensor.optim.curvature.block_steps` gives each block (``W``, ``a``, ``c``) the step
    ``c/λ_max`` in the block-Jacobi metric (their curvatures differ by factors of order ``N·d``
    under mean-field scaling, so one common step would freeze ``W``). ``c = safety``.

    Momentum ``β``: in the ``lazy`` regime the loss *is* the quadratic whose Hessian was measured,
    the step ``c/λ_max`` is within heavy ball's stability limit ``2(1+β)/λ_max`` and the
    effective step along flat directions is ``η/(1−β)`` (Polyak 1964: ``O(√κ)`` instead of
    ``O(κ)`` iterations for condition number ``κ``) — this is what lets SGD reach the NT optimum
    near ``N = d``, where ``κ`` is largest. In the nonlinear regimes the curvature grows as the
    weights move, so the steps are scaled by ``1 − β``: the effective step stays ``c/λ_max``.

    Returns
    -------
    dict
        Parameter key -> step.
    """
    steps = block_steps(loss_fn, theta, safety, random_state=random_state)
    if regime != "lazy" and momentum > 0:
        steps = {k: v * (1.0 - momentum) for k, v in steps.items()}
    return steps


def default_lr(spec: NetworkSpec, optimizer: Any) -> float:
    """A fixed step size that is stable for the authors' scale of target (``‖B‖_F ≈ √2``).

    Adam: ``0.05``; other adaptive methods: ``1e-2``. SGD (used only when the curvature steps of
    :func:`curvature_steps` are not: a custom optimizer): the gradient of neuron ``i`` carries
    the output factor ``s_N`` and ``‖x‖² ≈ d``, so the step is ``0.1/(s_N · d)`` (``0.1·N/d`` under
    mean-field scaling, the authors' per-neuron rate).
    """
    if optimizer == "adam":
        return 0.05
    if optimizer not in ("sgd", "gd"):
        return 1e-2
    return 0.1 / (spec.output_scale * spec.dim)


def _network_params(regime: str, fn, theta: Params, params0: Params) -> Params:
    """The network parameters a trained regime stands for (frozen ones filled in).

    A reparametrized regime maps its trained parameters back to the network's with
    ``fn.full_params`` (``orthogonal``: the effective rows ``W = W_0 Rᵀ``, not the rotation ``R``
    that is trained), so the laziness of ``W`` measures how far the neurons moved whatever the
    regime trains."""
    full = getattr(fn, "full_params", None)
    if callable(full):
        with torch.no_grad():
            return {**params0, **{k: v.detach() for k, v in full(theta).items()}}
    frozen = getattr(fn, "frozen", {})
    return {**params0, **frozen, **{k: v.detach() for k, v in theta.items()}}


#: Copies of a set of input samples that training holds at once (see :func:`check_train_memory`).
_INPUT_COPIES = 4


def check_train_memory(data, spec: NetworkSpec, config: TrainConfig) -> None:
    """Refuse a training run whose largest array would exceed the memory budget, before any
    allocation (as :func:`overtensor.tensors.memory.check_fit_memory` does for ``fit``): the
    ``(N, d)`` first layer, the ``(rows, N)`` hidden activations of the largest forward pass
    (a batch, the fixed training set or the test set) and the ``(rows, d)`` input samples of each
    of them (4 working copies).

    Raises
    ------
    ValueError
        ``"width=N needs ... above the memory budget ..."``.
    """
    from overtensor._checks import check_memory
    from overtensor.networks.data import UserData

    counts = {"test_samples": config.test_samples, "batch_size": config.batch_size or 0,
              "samples": config.samples or 0}
    if isinstance(data, UserData):
        counts["X"] = data.size
    dev = config.device
    # The inputs themselves first: a training or test set of (rows, d) float64 draws is
    # allocated whatever the width (samples=10^8 at d=40 is 30 GiB). Counted 4 times: the draw,
    # its scaled or squared copies and the products with B live at once (peak 3.2 copies measured
    # for --data mixture, d = 10^4, 10^4 test samples: 2.58 GB resident).
    for name, count in counts.items():
        if name != "X" and count:
            check_memory(name, int(count), (_INPUT_COPIES, int(count), spec.dim), torch.float64,
                         f"{_INPUT_COPIES} working copies of {int(count)} input samples of "
                         f"dimension d={spec.dim}", dev)
    rows = max(int(c) for c in counts.values())
    check_memory("width", spec.width, (spec.width, spec.dim), config.dtype,
                 "a first layer W", dev)
    check_memory("width", spec.width, (rows, spec.width), config.dtype,
                 f"hidden activations of {rows} samples", dev)


def train_network(data, spec: NetworkSpec, config: TrainConfig = TrainConfig(),
                  random_state: Any = None,
                  callback: Callback | None = None) -> NetworkFit:
    """Train ``spec`` on ``data`` in ``config.regime``; returns a :class:`NetworkFit`.

    Parameters
    ----------
    data : GaussianQuadratic, GaussianMixtureClassification or UserData
        Anything with ``dim`` and ``sample(n, generator) -> (X, y)``.
    spec : NetworkSpec
        ``spec.dim`` must equal ``data.dim``.
    config : TrainConfig
    random_state : int, torch.Generator or None
        Seeds ``W_0`` and every sample.
    callback : callable ``(record, state) -> bool``, optional
        Called at every evaluation with the history record and ``{"step", "params",
        "model_fn"}``; returning True stops training there (``stop_reason = "callback"``;
        the contract of :data:`overtensor.training.result.Callback`).

    Raises
    ------
    ValueError
        Inconsistent dimensions (before any work).
    DivergenceError
        NaN/inf or an exploding loss; the message gives a step size to try.
    """
    check_callback(callback)
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"spec must be a NetworkSpec, got {type(spec).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not hasattr(data, "sample") or not hasattr(data, "dim"):
        raise TypeError(f"data must have dim and sample(n, generator), got {type(data).__name__}")
    if data.dim != spec.dim:
        raise ValueError(f"spec.dim must equal the data dimension {data.dim}, got {spec.dim}")
    check_train_memory(data, spec, config)
    t0 = time.perf_counter()
    gen = make_generator(random_state)
    dev = resolve_device(config.device)
    params0 = {k: v.to(dev) for k, v in init_network(spec, gen, config.dtype, config.a_init).items()}
    net = network_fn(spec)
    options = dict(config.regime_options)
    if config.regime == "alpha-scaled":
        options.setdefault("alpha", config.alpha)
    # Stochastic OPT (Liu et al. 2021, §3.3) merges its k × k block into W_0 and draws a new one
    # every ``block_steps`` steps; the regime function only rotates, the loop does the merging.
    block_every = options.pop("block_steps", BLOCK_STEPS) if config.regime == "orthogonal" else None
    if block_every is not None:
        check_int("regime_options['block_steps']", block_every, 1)
    fn, theta = apply_regime(config.regime, net, params0, **options)
    # A regime may train parameters that live on a manifold (OPT's ``riemannian`` trains R on O(d)):
    # they need the Riemannian step, which exists for SGD with heavy-ball momentum only.
    manifold = tuple(getattr(fn, "manifold", ()))
    if manifold and config.optimizer not in ("sgd", "gd", "momentum", None):
        raise ValueError(
            f"regime {config.regime!r} trains {list(manifold)} on the orthogonal group, stepped by a "
            f"Riemannian SGD (Cayley retraction); optimizer must be 'sgd', 'gd' or 'momentum', got "
            f"optimizer={config.optimizer!r}")
    resample = getattr(fn, "resample", None) if options.get("method") == "stochastic" else None
    scale = loss_scale(fn)

    X, y, X_test, y_test = train_test(data, config.samples, config.test_samples, gen)
    exact = isinstance(data, GaussianQuadratic) and spec.activation == "quadratic"
    if exact:
        null = null_risk(data.B, data.noise)
    else:
        null = float(((y_test - y_test.mean()) ** 2).mean()) if X is None else \
            float(((y_test - y.mean()) ** 2).mean())
    cast = config.dtype
    X_test, y_test = X_test.to(dev, cast), y_test.to(dev, cast)
    if X is not None:
        X, y = X.to(dev, cast), y.to(dev, cast)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        if X is None:
            Xb, yb = data.sample(config.batch_size, gen)
            return Xb.to(dev, cast), yb.to(dev, cast)
        if config.batch_size is None:
            return X, y
        idx = torch.randint(0, X.shape[0], (config.batch_size,), generator=gen)
        return X[idx.to(dev)], y[idx.to(dev)]

    name = "gd" if config.optimizer is None else \
        config.optimizer if isinstance(config.optimizer, str) else None
    momentum = config.momentum
    if momentum is None:
        momentum = LAZY_MOMENTUM if (config.regime == "lazy" and config.lr is None
                                     and name in ("sgd", "gd")) else 0.0
    options = {"momentum": momentum} if name in ("sgd", "gd") and momentum > 0 else {}
    beta = momentum if name in ("sgd", "gd") else SGD_NAMES.get(name)  # None: not an SGD
    steps_by_key: dict[str, float] | None = None
    if config.lr is None and name in SGD_NAMES:
        Xc, yc = batch()  # one batch of the training size, from the same generator

        def batch_loss(t: Params) -> torch.Tensor:
            return scale * ((fn(t, Xc) - yc) ** 2).mean()

        steps_by_key = curvature_steps(batch_loss, {k: v.detach() for k, v in theta.items()},
                                       config.regime, beta,
                                       DEFAULT_SAFETY if config.safety is None else config.safety,
                                       gen)
        lr = steps_by_key.get("W", max(steps_by_key.values()))  # the first layer's step
    else:
        lr = config.lr if config.lr is not None else default_lr(spec, config.optimizer)

    for p in theta.values():
        p.requires_grad_(True)
    decay_at = config.steps - round(config.decay_fraction * config.steps)

    def build_optimizer(decayed: bool) -> torch.optim.Optimizer:
        factor = config.decay_factor if decayed else 1.0
        groups = list(theta.values()) if steps_by_key is None else \
            [{"params": [theta[k]], "lr": factor * steps_by_key[k]} for k in theta]
        if manifold:
            steps = {k: factor * (lr if steps_by_key is None else steps_by_key[k]) for k in theta}
            return riemannian_sgd(theta, steps, orthogonal=manifold, momentum=beta or 0.0)
        return make_optimizer(config.optimizer, groups, factor * lr, **options)

    opt = build_optimizer(False)
    recent: list[float] = []  # the batch risks since the last evaluation

    def step(n: int) -> float:  # n = 1: the loop checks every batch risk
        nonlocal opt
        k = sched.step + 1
        if k == decay_at + 1 and decay_at < config.steps:
            for g in opt.param_groups:
                g["lr"] = g["lr"] * config.decay_factor
        Xb, yb = batch()
        mse = ((fn(theta, Xb) - yb) ** 2).mean()
        optimizer_step(opt, scale * mse)
        if resample is not None and k % block_every == 0:
            theta.update(resample(theta))  # the new block starts at R = I ...
            theta["R"].requires_grad_(True)
            opt = build_optimizer(k > decay_at)  # ... with no stale optimizer state
        value = float(mse.detach())
        recent.append(value)
        return value

    def evaluate(_: float | None) -> Evaluation:
        rec = {"step": sched.step, "batch_risk": float(sum(recent) / len(recent))}
        recent.clear()
        return Evaluation(rec, {"step": sched.step, "params": theta, "model_fn": fn},
                          note=f"risk/null {rec['batch_risk'] / null:.3g}")

    sched = StepSchedule(config.steps, every=config.eval_every)
    # The advice names the smallest step (a quarter of it is suggested).
    advice_lr = lr if steps_by_key is None else min(steps_by_key.values())
    history = train_loop(sched, step, evaluate, per_step=True, callback=callback,
                         divergence=Divergence(advice_lr, start=null, what="batch risk"),
                         progress=Progress(config.progress, config.steps,
                                           f"{config.regime} N={spec.width}"))

    theta_d = {k: v.detach() for k, v in theta.items()}
    with torch.no_grad():
        if X is not None:
            train_risk = float(((fn(theta_d, X) - y) ** 2).mean())
        else:
            tail = history[-max(1, len(history) // 10):]
            train_risk = float(sum(r["batch_risk"] for r in tail) / len(tail))
    test_error = None
    if exact:
        M, c = quadratic_form(fn, theta_d, spec.dim, cast, dev)
        test_risk = population_risk(M, c, data.B, data.noise)
    else:
        with torch.no_grad():
            pred = fn(theta_d, X_test)
        test_risk = float(((pred - y_test) ** 2).mean())
        if isinstance(data, GaussianMixtureClassification) or bool(((y_test == 1) | (y_test == -1)).all()):
            test_error = float((torch.sign(pred) != y_test).double().mean())
    moved = _network_params(config.regime, fn, theta_d, params0)
    laziness = {k: relative_distance(moved, params0, [k]) for k in ("W", "a")}
    return NetworkFit(
        test_risk=test_risk, null_risk=null, train_risk=train_risk, steps=sched.step,
        seconds=time.perf_counter() - t0, lr=lr, exact=exact, laziness=laziness, history=history,
        model_fn=fn, params=theta_d, params0=params0, test_error=test_error,
        info={"regime": config.regime, "width": spec.width, "dim": spec.dim,
              "activation": spec.activation, "momentum": beta,
              **({f"lr_{k}": v for k, v in steps_by_key.items()} if steps_by_key else {})},
        stop_reason=sched.stop_reason,
    )

