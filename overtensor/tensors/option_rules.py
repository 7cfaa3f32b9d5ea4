"""Which options of :func:`overtensor.fit` a method and a regime use: the one rule.

Free of torch and of every numerical import, so that the command line applies the same rule to its
flags before it imports anything (``overtensor fit --method spm --lr 0.1`` is refused in
milliseconds), while :func:`overtensor.fit` and the sweep schema apply it to option names.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The methods without a gradient model: the tensor power method and the subspace power method.
DIRECT_METHODS = ("power-method", "spm")
#: Fields of the gradient schedule that only the ``full`` regime's phases use.
PHASE_FIELDS = ("epoch_growth", "main_epochs", "final_steps")
#: Fields of the runtime that choose the engine of the ``full`` regime's gradient methods.
ENGINE_FIELDS = ("engine", "shortcuts")


def unused_options(method: str, regime: str, given: Mapping[str, str | None]) -> list[str]:
    """The names in ``given`` that ``method`` in ``regime`` does not use (refused by ``fit``, the
    sweep schema and the CLI, so that no option is ever ignored silently).

    ``given`` maps each option a caller set to its group: ``"schedule"``, ``"extraction"`` or
    ``"runtime"`` for a field of :class:`~overtensor.tensors.config.GradientSchedule`,
    :class:`~overtensor.tensors.config.Extraction` or :class:`~overtensor.tensors.config.Runtime`,
    ``None`` for a keyword of ``fit`` itself (``power``, ``orthogonal``, ``alpha``, ``callback``,
    ``recorders``). The direct methods use no schedule, extraction, engine or callback; the
    one-phase regimes no extraction, no phase field and no engine; the orthogonal regime steps
    ``R`` by its rotation rule (``OrthogonalOptions``), not by ``optimizer``.
    """
    out = []
    for key, group in given.items():
        if method in DIRECT_METHODS:
            unused = group in ("schedule", "extraction") or key in (
                *ENGINE_FIELDS, "callback", "recorders")
        elif regime != "full":
            unused = (group == "extraction" or key in (*PHASE_FIELDS, *ENGINE_FIELDS)
                      or (regime == "orthogonal" and key == "optimizer"))
        else:
            unused = False
        if ((key == "power" and method != "power-method")
                or (key == "orthogonal" and regime != "orthogonal")
                or (key == "alpha" and regime != "alpha-scaled")):
            unused = True
        if unused:
            out.append(key)
    return out
