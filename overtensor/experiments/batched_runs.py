"""Batched variant of the ``fit`` run function (:func:`overtensor.experiments.runs.run_fit`).

The sweep runner groups pending configs by :func:`fit_batch_key` and hands each group to
:func:`run_fit_batched`, which advances them together with :func:`overtensor.tensors.batched.fit_batched`
and returns, config by config, the same metrics as ``run_fit`` (same target and fit seeds, same
history thinning; timing metrics aside). A config whose fit diverged gets its
:class:`~overtensor.training.loop.DivergenceError` in its slot instead of a metrics dict.
"""

from __future__ import annotations

from typing import Any

from overtensor.experiments.registry import register_batched
from overtensor.experiments.runs import eps_callback, fit_inputs, fit_outputs, run_fit

#: Config keys that fix the shapes (or the code path) of a run: equal keys may share a batch.
_SHAPE_KEYS = ("method", "order", "dim", "rank", "width", "width_factor", "model", "dtype",
               "device", "optimizer")


def fit_batch_key(config: dict[str, Any]) -> tuple:
    """Hashable key: configs with equal keys have the same shapes and may share a batch."""
    key = tuple((k, str(config.get(k))) for k in _SHAPE_KEYS)
    return (*key, ("dense", float(config.get("noise", 0.0) or 0.0) > 0))


@register_batched("fit", key=fit_batch_key)
def run_fit_batched(configs: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
    """``[run_fit(c) for c in configs]``, computed as one batch where the method allows it."""
    import time

    from overtensor.tensors.batched import fit_batched
    from overtensor.tensors.methods import METHOD_DEFAULTS

    inputs = [fit_inputs(c) for c in configs]
    methods = {cfg.get("method", "beyond-lazy") for _, cfg, _, _ in inputs}
    if len(methods) != 1 or not methods <= set(METHOD_DEFAULTS):
        return [run_fit(c) for c in configs]  # power-method or a mixed group: one by one
    method = methods.pop()
    common = {k: inputs[0][1].get(k) for k in ("device", "dtype")}
    keys = sorted({k for _, cfg, _, _ in inputs for k in cfg} - {"method", "width", "device", "dtype"})
    options = {k: [cfg.get(k, _fit_default(k)) for _, cfg, _, _ in inputs] for k in keys}
    hits: list[dict[str, Any]] = [{} for _ in configs]
    t0 = time.perf_counter()
    callbacks = [eps_callback(eps, hits[b], t0) if eps is not None else None
                 for b, (_, _, _, eps) in enumerate(inputs)]

    def callback(record, state):
        fn = callbacks[state.extra["run"]]
        return fn(record, state) if fn is not None else False

    results = fit_batched(
        [target for target, _, _, _ in inputs], [cfg.get("width") for _, cfg, _, _ in inputs],
        method, random_states=[seed + 10_000 for _, _, seed, _ in inputs], callback=callback,
        **common, **options)
    return [r if isinstance(r, Exception) else fit_outputs(r, method, inputs[b][3], hits[b])
            for b, r in enumerate(results)]


def _fit_default(name: str) -> Any:
    from overtensor.tensors.methods import GRADIENT_DEFAULTS

    if name not in GRADIENT_DEFAULTS:
        raise ValueError(f"option {name!r} of a 'fit' run config cannot be batched")
    return GRADIENT_DEFAULTS[name]
