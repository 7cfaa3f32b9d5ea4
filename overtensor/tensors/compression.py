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
refused and :func:`fit_compressed` fits the full problem.

On the core, :func:`fit_compressed` runs ``beyond-lazy`` with the speed-ups of
:mod:`overtensor.tensors.shortcuts` (early switch to a Levenberg–Marquardt extraction, a curvature step
size, NumPy steps) when they can apply, unless ``shortcuts=None``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import check_float, check_int, check_stopping, make_generator
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


#: The default of ``fit_compressed(shortcuts=...)``: where it cannot apply, the fit falls back to
#: :func:`overtensor.fit` and says why in ``info``; an explicit :class:`Shortcuts` is refused instead.
DEFAULT_SHORTCUTS = Shortcuts()


def fit_compressed(
    target: Any,
    width: int | None = None,
    method: str = "beyond-lazy",
    *,
    order: int | None = None,
    max_ratio: float = 0.5,
    random_state: Any = None,
    shortcuts: Shortcuts | None = DEFAULT_SHORTCUTS,
    **fit_options: Any,
) -> FitResult:
    """:func:`overtensor.fit` on the compressed core, lifted back to ``R^d``.

    The fit runs in dimension ``k`` (the rank of the target's unfolding) when
    :func:`compress` accepts the target, and on the full problem otherwise; the returned
    ``relative_error`` and ``converged`` are always measured against ``target`` itself in float64.
    ``result.info["compression"]`` records ``dim`` (``k``, or ``None`` when not compressed) and the
    seconds spent compressing. ``result.params`` stay in core coordinates (rows in ``R^k``).

    Parameters
    ----------
    target, method, order
        As in :func:`overtensor.fit`.
    width : int or None
        ``m``, the number of rank-one terms. Required (``ValueError`` before any work when
        missing) except for ``method="exact-rank"`` and ``"power-method"``, as in
        :func:`overtensor.fit`.
    max_ratio : float
        See :func:`compress`.
    random_state : int, torch.Generator or None
        Seeds the sketch and then the fit (one generator for both).
    shortcuts : Shortcuts or None
        The speed-ups of :class:`overtensor.tensors.shortcuts.Shortcuts` (early switch to the polish,
        curvature step size, NumPy steps on the small core). They apply when all of these hold:
        ``method="beyond-lazy"``; every other option in ``fit_options`` is in
        :data:`SHORTCUT_OPTIONS` or equal to :func:`overtensor.fit`'s default; the target was
        compressed; and the core is *small*: in float64, and either dense with
        ``k^l ≤`` :data:`overtensor.tensors.small_core.MAX_DENSE_ENTRIES` (32 768) entries, or in CP or
        moment form (see :func:`overtensor.tensors.shortcuts.small_core`).
        With the default, a fit where they cannot apply runs :func:`overtensor.fit` on the core
        and records ``info["shortcuts"] = None`` and ``info["shortcuts_skipped"]``, the reason
        (e.g. ``"optimizer='adam'"``); when they ran, ``info["shortcuts"]`` records the switch.
        ``None``: the paper's schedule, :func:`overtensor.fit` on the core (``docs/method.md``,
        "Which settings reproduce the paper"); ``info`` then has no ``"shortcuts"`` key.
    **fit_options
        Any other keyword argument of :func:`overtensor.fit` (``tol`` included).

    Returns
    -------
    FitResult
        With ``cp`` in ``R^d`` and ``target`` the original target.

    Raises
    ------
    TypeError
        ``shortcuts`` is neither a :class:`Shortcuts` nor ``None``.
    ValueError
        ``width`` is missing for a method that needs it; an explicit ``shortcuts`` (other than
        the default) with a ``method`` or an option it cannot honour (pass ``shortcuts=None`` or
        drop the option); and every error of :func:`compress` and :func:`overtensor.fit`.
    """
    from overtensor.tensors.fitting import fit

    tgt = as_target(target, order)
    # The checks of overtensor.fit, before any work: the shortcut path below never calls fit.
    check_stopping(fit_options.get("max_steps"), fit_options.get("tol"),
                   fit_options.get("final_steps"))
    if width is not None:
        width = check_int("width", width, 1)
    if shortcuts is not None and not isinstance(shortcuts, Shortcuts):
        raise TypeError(f"shortcuts must be a Shortcuts or None, got "
                        f"{type(shortcuts).__name__}: {shortcuts!r}")
    if width is None and method not in ("exact-rank", "power-method"):
        raise ValueError(f"width is required for method={method!r}, got width=None")
    blocker = _static_blocker(method, fit_options) if shortcuts is not None else None
    if blocker is not None and shortcuts is not DEFAULT_SHORTCUTS:
        raise ValueError(f"an explicit shortcuts=Shortcuts(...) cannot apply with {blocker}; "
                         f"pass shortcuts=None or remove the option")
    gen = make_generator(random_state)
    start = time.perf_counter()
    comp = compress(tgt, max_ratio=max_ratio, random_state=gen,
                    sketch_size=None if width is None else width + 10)
    seconds = time.perf_counter() - start
    skipped = blocker
    if comp is None:
        result = fit(tgt, width, method, random_state=gen, **fit_options)
        if shortcuts is not None:
            skipped = skipped or "the target was not compressed (unfolding rank above max_ratio·d)"
            result.info["shortcuts"], result.info["shortcuts_skipped"] = None, skipped
        result.info["compression"] = {"dim": None, "seconds": seconds}
        return result
    result = None
    if shortcuts is not None and skipped is None and width is not None:
        result, skipped = _fit_with_shortcuts(comp.core, width, gen, shortcuts, fit_options)
    if result is None:
        result = fit(comp.core, width, method, random_state=gen, **fit_options)
        if shortcuts is not None:
            result.info["shortcuts"], result.info["shortcuts_skipped"] = None, skipped
    cp = comp.lift(result.cp)
    rel = cp_relative_error(cp, tgt)
    tol = fit_options.get("tol", 1e-4)
    result.cp, result.relative_error, result.converged, result.target = cp, rel, rel <= tol, tgt
    result.seconds += seconds
    result.info["compression"] = {"dim": comp.dim, "seconds": seconds}
    return result.mark_non_finite()  # the lifted CP is checked like fit's (issue 23, item 1)


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
