"""Compression of a symmetric target to the span of its components (CANDELINC / Tucker compression).

The mode-1 unfolding of a symmetric tensor ``T = Σ_j λ_j u_j^{⊗l}`` has column space
``span{u_j}``, of dimension at most ``r``. With an orthonormal basis ``Q`` (``d × k``) of that space,
``T = T_Q ×_1 Q ⋯ ×_l Q`` exactly, where the *core* ``T_Q = T ×_1 Qᵀ ⋯ ×_l Qᵀ`` has only ``k^l``
entries; a CP of the core lifts to a CP of ``T`` with components ``Q u``, and

    ‖T − Q^{⊗l}·C‖ = ‖T_Q − C‖        for every core-space tensor C,

so the relative error is the same in both spaces. This is the classical compression step of
CANDELINC (Carroll, Pruzansky, Kruskal 1980) and of compressed PARAFAC (Bro & Andersson 1998,
"Improving the speed of multiway algorithms: Part II. Compression"), applied to a symmetric tensor.

The basis is found by a randomized range finder (Halko, Martinsson, Tropp 2011, Alg. 4.2) whose
test vectors are Khatri–Rao powers ``g^{⊗(l−1)}`` of Gaussian vectors ``g``: then the sketch of the
unfolding is ``T(g, …, g, ·)``, the target's own ``contract``, so no unfolding and no ``d^l`` array
is formed for implicit targets.

**Rule for** ``k`` (documented in ``docs/method.md``): sketch ``s = min(d, k_0 + 10)`` rows
(``k_0`` the width when given, else 10), take the singular values ``σ`` of the sketch in float64
and its numerical rank ``k = #{σ_i > rtol·σ_1}`` (``rtol = 1e-10``). If ``k < s`` the sketch is
rank-deficient, which for Gaussian test vectors happens only when the unfolding's rank is ``k``
(with probability one): the range is captured exactly and ``Q`` is the top ``k`` right singular
vectors. Otherwise ``s`` doubles until it reaches ``d``. Compression is used only when
``k ≤ max_ratio·d`` (default ½); otherwise — full-rank moments, noisy dense tensors — it is
refused and the fast route works on the full problem.

:func:`fast_route` is the default route of :func:`overtensor.fit` (``engine="auto"``): compress,
try the subspace power method (:mod:`overtensor.tensors.spm`) when the flattening's rank is at
most the width, else run ``beyond-lazy`` with the speed-ups of
:mod:`overtensor.tensors.shortcuts` (early switch to a Levenberg–Marquardt extraction, a curvature
step size, NumPy steps) on the core, and lift. ``engine="paper"`` runs the paper's schedule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_float, check_int, make_generator
from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.result import FitResult
from overtensor.tensors.shortcuts import Shortcuts
from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target, as_target

#: Relative singular-value threshold of the float64 sketch that defines the numerical rank.
RANGE_RTOL = 1e-10


@dataclass(frozen=True)
class Compression:
    """A target written in an orthonormal basis of its components' span.

    Attributes
    ----------
    basis : Tensor, shape ``(d, k)``
        ``Q`` with orthonormal columns, in the target's dtype and device.
    core : Target
        ``T ×_1 Qᵀ ⋯ ×_l Qᵀ``: same kind as the target (CP, moments or dense), dimension ``k``.
    singular_values : Tensor, shape ``(s,)``
        Singular values of the last sketch (float64, CPU), for diagnosis.
    """

    basis: torch.Tensor
    core: Target
    singular_values: torch.Tensor

    @property
    def dim(self) -> int:
        """The compressed dimension ``k``."""
        return self.basis.shape[1]

    def lift(self, cp: SymmetricCP) -> SymmetricCP:
        """The CP of the core mapped back to ``R^d``: components ``Q u_j`` (still unit vectors)."""
        Q = self.basis.to(dtype=cp.components.dtype, device=cp.components.device)
        return SymmetricCP(cp.weights, cp.components @ Q.T, cp.order)


def range_basis(
    target: Target,
    *,
    sketch_size: int | None = None,
    rtol: float = RANGE_RTOL,
    random_state: Any = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Orthonormal basis of the column space of the target's unfolding, or ``None`` if full rank.

    Parameters
    ----------
    target : Target
        Any target (only ``contract`` is called, on its float64 twin).
    sketch_size : int, optional
        First number of Gaussian test vectors (default ``min(d, 20)``); doubled until the sketch
        is rank-deficient or reaches ``d``.
    rtol : float
        Relative singular-value threshold defining the numerical rank (default ``1e-10``).
    random_state : int, torch.Generator or None

    Returns
    -------
    basis : Tensor ``(d, k)`` in float64 on the CPU, or None when the unfolding has rank ``d``.
    singular_values : Tensor ``(s,)``, float64
    """
    tgt = as_target(target)
    d = tgt.dim
    s = min(d, check_int("sketch_size", sketch_size, 1) if sketch_size is not None else 20)
    rtol = check_float("rtol", rtol, minimum=0.0, maximum=1.0, strict=True)
    gen = make_generator(random_state)
    t64 = tgt.float64()
    rows: list[torch.Tensor] = []
    drawn = 0
    while True:
        G = torch.randn(s - drawn, d, generator=gen, dtype=torch.float64)
        rows.append(t64.contract(G.to(t64.device)).detach().to("cpu"))
        drawn = s
        Y = torch.cat(rows)
        # Scale-free: divide by the largest entry before the SVD (targets may be tiny or huge).
        Y = Y / Y.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        _, sv, Vh = torch.linalg.svd(Y, full_matrices=False)
        k = int((sv > rtol * sv[0]).sum()) if sv[0] > 0 else 0
        if k < s:
            return Vh[:k].T.contiguous(), sv
        if s == d:
            return None, sv
        s = min(d, 2 * s)


def compress(
    target: Any,
    *,
    order: int | None = None,
    max_ratio: float = 0.5,
    sketch_size: int | None = None,
    rtol: float = RANGE_RTOL,
    random_state: Any = None,
) -> Compression | None:
    """Compress ``target`` to the span of its components when that space is small.

    Parameters
    ----------
    target : Target, SymmetricCP, (weights, factors) or dense array
        CP, moment and dense targets are compressed; other :class:`Target` subclasses are not
        (``None``).
    order : int, optional
        Needed when the target is given as ``(weights, factors)`` rows.
    max_ratio : float
        Compress only when ``k ≤ max_ratio · d`` (default ½).
    sketch_size, rtol, random_state
        See :func:`range_basis`.

    Returns
    -------
    Compression or None
        ``None`` when the unfolding's rank exceeds ``max_ratio · d`` or the target kind is unknown.

    Raises
    ------
    ValueError
        On a bad ``max_ratio``, ``sketch_size`` or ``rtol``.
    """
    tgt = as_target(target, order)
    max_ratio = check_float("max_ratio", max_ratio, minimum=0.0, maximum=1.0, strict=True)
    if not isinstance(tgt, CPTarget | MomentTarget | DenseTarget):
        return None
    Q64, sv = range_basis(tgt, sketch_size=sketch_size, rtol=rtol, random_state=random_state)
    if Q64 is None or Q64.shape[1] == 0 or Q64.shape[1] > max_ratio * tgt.dim:
        return None
    Q = Q64.to(dtype=tgt.dtype, device=tgt.device)
    return Compression(Q, _core(tgt, Q), sv)


def _core(tgt: Target, Q: torch.Tensor) -> Target:
    """``T ×_1 Qᵀ ⋯ ×_l Qᵀ`` of the same kind as ``tgt`` (cost: CP ``O(r d k)``, moments
    ``O(n d k)``, dense ``O(d^l k)``)."""
    if isinstance(tgt, CPTarget):
        return CPTarget(tgt.weights, tgt.factors @ Q, tgt.order)
    if isinstance(tgt, MomentTarget):
        return MomentTarget(tgt.samples @ Q, tgt.order, tgt.chunk_size)
    core = tgt.array
    for _ in range(tgt.order):
        # Contract the first mode by one matrix product and append the new mode last: after l
        # rounds every mode is contracted and back in place (d^l k, then d^{l-1} k^2, ...).
        core = (core.reshape(core.shape[0], -1).T @ Q).reshape(*core.shape[1:], Q.shape[1])
    # The core of a symmetric tensor is symmetric up to rounding; a tolerance well above it.
    return DenseTarget(core, symmetry_tol=1e-6)


#: The default of ``fit(shortcuts=...)`` on the fast route: where the shortcuts cannot apply the
#: route runs the paper's schedule on the core and says why in ``info``; an explicit
#: :class:`Shortcuts` is refused instead.
DEFAULT_SHORTCUTS = Shortcuts()


def route_blocker(method: str, fit_options: dict[str, Any], width: int | None) -> str | None:
    """Why :func:`overtensor.fit`'s fast route cannot apply whatever the target (``"method='gd'"``,
    ``"optimizer='adam'"``, ``"width=None"``), or ``None``."""
    if width is None:
        return "width=None"
    return _static_blocker(method, fit_options)


def fast_route(
    target: Target,
    width: int,
    *,
    generator: torch.Generator,
    shortcuts: Shortcuts,
    fit_options: dict[str, Any],
    max_ratio: float = 0.5,
) -> FitResult:
    """The default route of :func:`overtensor.fit` (``engine="auto"``) for ``beyond-lazy``.

    1. **Compress** (:func:`compress`): the span of the components, found through ``contract``
       (sketch of ``width + 10`` test vectors), when its dimension ``k ≤ max_ratio·d``.
    2. **Subspace power method** (:mod:`overtensor.tensors.spm`) on the (compressed) target of order
       ``≥ 3`` when the flattening's numerical rank ``q`` is at most ``width`` and its basis fits
       the memory budget; accepted when the lifted CP meets ``tol`` against the target and is
       not degenerate (:func:`overtensor.tensors.diagnostics.degeneracy`), then
       reduced like every fit (:func:`~overtensor.tensors.reduction.reduce_rank`) unless the
       flattening's spectrum proves ``q`` terms minimal. Its random starts come from a copy of
       the generator, so a refused attempt leaves the next steps' draws as they were.
    3. Else ``beyond-lazy`` with :class:`Shortcuts` on the small (compressed) target
       (:func:`overtensor.tensors.shortcuts.fit_small`), or the paper's schedule when it is not
       small; the CP is lifted back to ``R^d`` and its error measured against ``target``.

    ``result.info["route"]`` records ``engine`` (``"spm"``, ``"shortcuts"`` or ``"paper"``), ``why``,
    ``compressed_dim`` (``k`` or None), ``spm`` (the attempt: flattening rank, error, or why it
    was skipped) and seconds; ``info["compression"]`` as before. ``result.params`` stay in core
    coordinates (rows in ``R^k``).
    """
    from overtensor.tensors.fitting import fit

    gen = generator
    tol = fit_options.get("tol", 1e-4)
    start = time.perf_counter()
    comp = compress(target, max_ratio=max_ratio, random_state=gen, sketch_size=width + 10)
    seconds = time.perf_counter() - start
    work = target if comp is None else comp.core
    route: dict[str, Any] = {"compressed_dim": None if comp is None else comp.dim,
                             "seconds_compress": seconds}
    result, route["spm"] = (_try_spm(work, comp, target, width, gen, tol, fit_options)
                            if shortcuts.spm else (None, {"skipped": "Shortcuts(spm=False)"}))
    if result is not None:
        route.update(engine="spm", why=(
            f"the flattening has rank {route['spm']['rank']} <= width={width} and the subspace "
            f"power method met tol={tol:g}"))
    else:
        result, skipped = _fit_with_shortcuts(work, width, gen, shortcuts, fit_options)
        if result is None:
            if shortcuts is not DEFAULT_SHORTCUTS:
                raise ValueError(f"an explicit shortcuts=Shortcuts(...) cannot apply: {skipped}; "
                                 f"pass engine='paper'")
            result = fit(work, width, "beyond-lazy", random_state=gen, engine="paper",
                         **fit_options)
            result.info["shortcuts"], result.info["shortcuts_skipped"] = None, skipped
            route.update(engine="paper", why=f"shortcuts skipped: {skipped}")
        else:
            route.update(engine="shortcuts", why="beyond-lazy with Shortcuts() on the "
                         + ("compressed core" if comp is not None else "target (not compressed: "
                            "unfolding rank above max_ratio·d)"))
    if comp is not None:
        cp = comp.lift(result.cp)
        rel = cp_relative_error(cp, target)
        result.cp, result.relative_error, result.converged = cp, rel, rel <= tol
        result.target = target
    result.seconds += seconds
    result.info["compression"] = {"dim": None if comp is None else comp.dim, "seconds": seconds}
    result.info["route"] = route
    return result


def _try_spm(work: Target, comp: Compression | None, target: Target, width: int,
             gen: torch.Generator, tol: float,
             fit_options: dict[str, Any]) -> tuple[FitResult | None, dict[str, Any]]:
    """Step 2 of :func:`fast_route`: the SPM result in ``work``'s coordinates when it meets
    ``tol`` against ``target`` (after lifting), else ``None``; and the attempt's record."""
    from overtensor.tensors.diagnostics import degeneracy
    from overtensor.tensors.reduction import reduce_rank
    from overtensor.tensors.spm import SPMOptions, spm, spm_memory, spm_rank_bound

    l, k = work.order, work.dim
    if l < 3:
        return None, {"skipped": f"order {l} < 3"}
    if "rank" in fit_options:
        return None, {"skipped": "rank cap given"}
    opts = SPMOptions(compress=False)
    if spm_memory(work, spm_rank_bound(l, k), k) > opts.memory_budget:
        return None, {"skipped": "the flattening's basis exceeds the memory budget"}
    t0 = time.perf_counter()
    copy = torch.Generator(device=gen.device).set_state(gen.get_state())
    try:
        res = spm(work, None, generator=copy, tol=tol, options=opts)
    except ValueError as exc:
        return None, {"skipped": str(exc), "seconds": time.perf_counter() - t0}
    q = res.cp.rank
    sv = torch.tensor(res.info["spm"]["singular_values"], dtype=torch.float64)
    record: dict[str, Any] = {"rank": q, "seconds": time.perf_counter() - t0}
    if q > width:
        # Ran (cheap) to learn q; a decomposition with more terms than asked is not the answer.
        record["skipped"] = f"flattening rank {q} > width={width}"
        return None, record
    cp = res.cp if comp is None else comp.lift(res.cp)
    rel = cp_relative_error(cp, target)
    record["relative_error"] = rel
    if not rel <= tol:
        return None, record
    # A CP degeneracy (rank above border rank, e.g. Sym(a^3 b) at order 4) can meet tol with two
    # nearly parallel, cancelling terms: not the answer; the gradient route diagnoses it.
    diag = degeneracy(res.cp.weights, res.cp.components, l, work.norm())
    if diag is not None:
        record["skipped"] = (f"CP degeneracy (|cos| = {diag['max_cos']:.4f}, weights up to "
                             f"{diag['max_weight']:.1f}x ||T||)")
        return None, record
    tail = sv[q - 1:].square().sum().sqrt()  # error floor of q − 1 terms (Eckart–Young)
    if float(tail) > tol:
        res.info["rank_reduction"] = {"tried": [], "stop": (
            f"rank {q} is minimal: the flattening's singular values exclude {q - 1} terms")}
    else:
        red = reduce_rank(res.cp, work, tol=tol,
                          polish_iter=fit_options.get("polish_iter", 100))
        res.info["rank_reduction"] = {"tried": red.tried, "stop": red.stop}
        res.cp = red.cp
    res.width = width
    res.seconds = time.perf_counter() - t0
    return res, record


#: Options of :func:`overtensor.fit` that the shortcut path accepts; any other one (a callback,
#: an optimizer, a rank cap, a regime, ...) runs :func:`overtensor.fit` on the core instead.
SHORTCUT_OPTIONS = (
    "init_scale", "weight_decay", "reinit_threshold", "epoch_steps", "epoch_growth", "max_steps",
    "final_steps", "tol", "lr", "signs", "patience", "eval_every", "polish_iter", "polish_below",
    "merge_cos", "drop_tol",
)


_FIT_DEFAULTS: dict[str, Any] | None = None


def _fit_defaults() -> dict[str, Any]:
    """Every keyword default of :func:`overtensor.fit` (read once: ``inspect.signature`` costs
    ~0.1 ms a call)."""
    import inspect

    from overtensor.tensors.fitting import fit

    global _FIT_DEFAULTS
    if _FIT_DEFAULTS is None:
        _FIT_DEFAULTS = {k: p.default for k, p in inspect.signature(fit).parameters.items()
                         if p.default is not inspect.Parameter.empty}
    return _FIT_DEFAULTS


def _static_blocker(method: str, fit_options: dict[str, Any]) -> str | None:
    """Why the shortcuts cannot apply whatever the target (``"method='gd'"``,
    ``"optimizer='adam'"``), or ``None``."""
    from overtensor.tensors.options import _is_default

    if method != "beyond-lazy":
        return f"method={method!r}"
    defaults = _fit_defaults()
    bad = [k for k, v in fit_options.items()
           if k not in SHORTCUT_OPTIONS and not (k in defaults and _is_default(v, defaults[k]))]
    return ", ".join(f"{k}={fit_options[k]!r}" for k in bad) or None


def _fit_with_shortcuts(core: Target, width: int, gen: torch.Generator, shortcuts: Shortcuts,
                        fit_options: dict[str, Any]) -> tuple[FitResult | None, str | None]:
    """:func:`overtensor.tensors.shortcuts.fit_small` on the core, or ``(None, reason)`` when the core's
    kind or size needs :func:`overtensor.fit` (options were checked by :func:`_static_blocker`)."""
    from overtensor.tensors.methods import gradient_options
    from overtensor.tensors.shortcuts import fit_small

    if core.dtype != torch.float64:
        return None, f"the core is {core.dtype}, the shortcuts run in float64"
    defaults = _fit_defaults()
    opts = {k: fit_options.get(k, defaults[k]) for k in (
        *SHORTCUT_OPTIONS, "model", "optimizer", "extract", "main_epochs", "rank")}
    opts["width"] = check_int("width", width, 1)
    cfg = gradient_options(core, method="beyond-lazy", **opts)
    result = fit_small(core, cfg["width"], generator=gen, shortcuts=shortcuts, options=cfg)
    if result is None:
        return None, (f"the core is not small ({type(core).__name__} with {core.dim}^{core.order} "
                      f"entries; see overtensor.tensors.shortcuts.small_core)")
    return result, None
