"""The gradient methods of :func:`overtensor.fit`: their defaults and validated options.

Defined below :mod:`overtensor.tensors.fitting` (the entry point) so that the engines that need
the defaults (:mod:`overtensor.tensors.batched`, :mod:`overtensor.tensors.regimes`) import them
from here and never the entry point (the import graph stays acyclic).
"""

from __future__ import annotations

from typing import Any

from overtensor._checks import check_choice, check_float, check_int, check_stopping
from overtensor.optim.steps import tensor_step
from overtensor.tensors.config import FIELD_DEFAULTS, GROUP_OF
from overtensor.tensors.models import MODELS
from overtensor.tensors.option_rules import DIRECT_METHODS
from overtensor.tensors.targets import Target

#: Defaults per method. ``None`` for ``reinit_threshold`` disables re-initialization;
#: ``"half-init"`` means ``init_scale / 2`` (docs/theory/tensors.md §5: ``δ_1 = δ_0/2``).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "beyond-lazy": dict(model="homogeneous", init_scale=1e-3, weight_decay=1e-3,
                        reinit_threshold="half-init", epoch_steps=200, epoch_growth=1.0),
    "gd": dict(model="plain", init_scale=1e-3, weight_decay=0.0, reinit_threshold=None,
               epoch_steps=200, epoch_growth=1.0),
    "exact-rank": dict(model="homogeneous", init_scale=1e-3, weight_decay=0.0,
                       reinit_threshold=None, epoch_steps=200, epoch_growth=1.0),
    # Ge, Ren, Wang, Zhou 2021: geometric epochs (γ = 2), main-phase epochs from tol ("auto").
    "deflation": dict(model="homogeneous", init_scale=1e-3, weight_decay=1e-3,
                      reinit_threshold="half-init", epoch_steps=50, epoch_growth=2.0,
                      main_epochs="auto"),
}
#: The methods without a gradient model: the tensor power method and the subspace power method
#: (Kileel & Pereira; :mod:`overtensor.tensors.spm`); both take the number of components as
#: ``width`` (default the target's rank).
METHODS = (*METHOD_DEFAULTS, *DIRECT_METHODS)

#: Defaults of the flat options of the gradient methods: the fields of
#: :class:`~overtensor.tensors.config.GradientSchedule` and
#: :class:`~overtensor.tensors.config.Extraction` and ``tol`` (the keywords of
#: :func:`overtensor.tensors.batched.fit_batched` and of :func:`gradient_options`).
GRADIENT_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in FIELD_DEFAULTS.items() if GROUP_OF[k] != "runtime"}, "tol": 1e-4,
}


def gradient_options(
    tgt: Target, width: int | None, method: str, *, model, init_scale, weight_decay,
    reinit_threshold, epoch_steps, epoch_growth, max_steps, final_steps, tol, lr, optimizer,
    signs, patience, eval_every, extract, polish_iter, polish_below, merge_cos, drop_tol,
    main_epochs: int | str | None = "default", rank: int | None = None,
) -> dict[str, Any]:
    """Validated keyword arguments of :func:`~overtensor.tensors.gradient.gradient_fit` for a
    gradient method (method defaults filled in); shared by :func:`fit` and
    :func:`overtensor.tensors.batched.fit_batched`. Arguments as in :func:`fit`."""
    # The stopping checks of every door (fit, fit_batched, the default route) in one place.
    max_steps, tol, final_steps = check_stopping(max_steps, tol, final_steps)
    cfg = dict(METHOD_DEFAULTS[method])
    width = resolve_width(tgt, width, method)
    for key, value in dict(model=model, init_scale=init_scale, weight_decay=weight_decay,
                           epoch_steps=epoch_steps, epoch_growth=epoch_growth).items():
        if value is not None:
            cfg[key] = value
    if reinit_threshold != "default":
        cfg["reinit_threshold"] = reinit_threshold
    check_choice("model", cfg["model"], MODELS)
    cfg["init_scale"] = check_float("init_scale", cfg["init_scale"], minimum=0.0, strict=True)
    cfg["weight_decay"] = check_float("weight_decay", cfg["weight_decay"], minimum=0.0)
    cfg["epoch_steps"] = check_int("epoch_steps", cfg["epoch_steps"], 1)
    cfg["epoch_growth"] = check_float("epoch_growth", cfg["epoch_growth"], minimum=1.0)
    if cfg["reinit_threshold"] == "half-init":
        cfg["reinit_threshold"] = cfg["init_scale"] / 2
    elif cfg["reinit_threshold"] is not None:
        cfg["reinit_threshold"] = check_float("reinit_threshold", cfg["reinit_threshold"],
                                              minimum=0.0)
    if lr is None:
        lr = tensor_step(tgt.order)
    lr = check_float("lr", lr, minimum=0.0, strict=True)
    if main_epochs != "default":
        cfg["main_epochs"] = main_epochs
    if cfg.get("main_epochs") == "auto":
        from overtensor.tensors.deflation_schedule import deflation_epochs

        cfg["main_epochs"] = deflation_epochs(
            tgt.order, tgt.dim, tol, init_scale=cfg["init_scale"], epoch_steps=cfg["epoch_steps"],
            epoch_growth=cfg["epoch_growth"], lr=lr, main_budget=max_steps - final_steps)
    elif cfg.get("main_epochs") is not None:
        cfg["main_epochs"] = check_int("main_epochs", cfg["main_epochs"], 1)
    check_choice("signs", signs, ("auto", "positive", "balanced"))
    patience = check_int("patience", patience, 1)
    eval_every = check_int("eval_every", eval_every, 1)
    polish_iter = check_int("polish_iter", polish_iter, 0)
    polish_below = check_float("polish_below", polish_below, minimum=0.0)
    merge_cos = check_float("merge_cos", merge_cos, minimum=0.0, maximum=1.0)
    drop_tol = check_float("drop_tol", drop_tol, minimum=0.0, maximum=1.0)
    if rank is not None:
        rank = check_int("rank", rank, 1)

    return dict(
        method=method, width=width, max_steps=max_steps, final_steps=final_steps, tol=tol,
        lr=lr, optimizer=optimizer, signs=signs, patience=patience, eval_every=eval_every,
        extract=extract, polish_iter=polish_iter, polish_below=polish_below, merge_cos=merge_cos,
        drop_tol=drop_tol, rank=rank, **cfg,
    )


def resolve_width(tgt: Target, width: int | None, method: str) -> int:
    """The width of a gradient method: the target's rank for ``exact-rank`` (the width passed
    when the rank is unknown), else required."""
    if method == "exact-rank":
        if tgt.truth is None and width is not None:
            return width  # the rank is unknown: the width passed is the rank to fit
        rank = _target_rank(tgt, method)
        if width is not None and width != rank:
            raise ValueError(f"method='exact-rank' uses width = rank = {rank}, got width={width}")
        return rank
    if width is None:
        raise ValueError(f"width is required for method={method!r}")
    return width


def _target_rank(target: Target, method: str) -> int:
    if target.truth is None:
        raise ValueError(
            f"method={method!r} needs the rank: pass width=RANK (the target's rank is unknown)"
        )
    return target.truth.rank
