"""Which options of :func:`overtensor.fit` each method and regime uses, to refuse the others.

An option passed to a method that does not use it (``fit(method="power-method", lr=0.1)``)
would be ignored silently, and the user would believe it had an effect: :func:`refuse_ignored`
turns it into one error naming every such option and its value. An option counts as passed when
its value differs from ``fit``'s default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

#: Options only the gradient methods (not ``"power-method"`` or ``"spm"``) use.
GRADIENT_OPTIONS = (
    "model", "init_scale", "weight_decay", "reinit_threshold", "epoch_steps", "epoch_growth",
    "final_steps", "lr", "optimizer", "signs", "patience", "eval_every", "extract",
    "polish_iter", "polish_below", "main_epochs", "merge_cos", "drop_tol", "callback",
    "recorders", "engine", "shortcuts",
)
#: Options of the full regime that the other regimes (one phase, no extraction) do not use.
#: ``weight_decay`` and ``reinit_threshold`` are refused by the regimes themselves.
FULL_REGIME_OPTIONS = (
    "epoch_growth", "final_steps", "extract", "polish_iter", "polish_below", "main_epochs",
    "merge_cos", "drop_tol", "engine", "shortcuts",
)


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if isinstance(default, tuple) and isinstance(value, list | tuple):
        return len(value) == 0 and len(default) == 0
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except Exception:  # values without a plain truth value are not the default
        return False


def ignored_options(method: str, regime: str) -> tuple[str, ...]:
    """The options of ``fit`` that ``method`` in ``regime`` does not use."""
    out: list[str] = []
    if method in ("power-method", "spm"):
        out += GRADIENT_OPTIONS
    elif regime != "full":
        out += FULL_REGIME_OPTIONS
    if regime != "alpha-scaled":
        out.append("alpha")
    return tuple(dict.fromkeys(out))


def refuse_ignored(fn: Callable, given: Mapping[str, Any], method: str, regime: str) -> None:
    """Raise ``ValueError`` naming every option in ``given`` that differs from ``fn``'s default
    and that ``method`` in ``regime`` would ignore."""
    params = inspect.signature(fn).parameters
    bad = [k for k in ignored_options(method, regime)
           if k in given and not _is_default(given[k], params[k].default)]
    if bad:
        shown = ", ".join(f"{k}={given[k]!r}" for k in bad)
        raise ValueError(f"method={method!r} with regime={regime!r} does not use {shown}; "
                         f"remove {'it' if len(bad) == 1 else 'them'}")
