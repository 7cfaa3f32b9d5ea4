"""General-purpose run functions (one fit per run)."""

from __future__ import annotations

from typing import Any

from overtensor.experiments.registry import register_run


@register_run("fit")
def run_fit(config: dict[str, Any]) -> dict[str, Any]:
    """One :func:`overtensor.fit` on a :func:`overtensor.random_target`.

    Config keys: ``order, dim, rank, components, weights, noise`` (target), ``width, method`` and
    any keyword of :func:`overtensor.fit` under ``fit_*`` names is not supported on purpose: the
    keys below are the ones a sweep varies. ``seed`` seeds both the target and the fit.
    """
    import overtensor as ot

    cfg = dict(config)
    seed = int(cfg.pop("seed", 0))
    target = ot.random_target(
        order=cfg.pop("order", 3), dim=cfg.pop("dim", 20), rank=cfg.pop("rank", 3),
        components=cfg.pop("components", "random"), weights=cfg.pop("weights", "equal"),
        noise=cfg.pop("noise", 0.0), random_state=seed,
    )
    result = ot.fit(target, random_state=seed + 10_000, **cfg)
    out = result.summary()
    out["history"] = [
        {k: h[k] for k in ("step", "relative_error") if k in h} for h in result.history[::10]
    ]
    return out
