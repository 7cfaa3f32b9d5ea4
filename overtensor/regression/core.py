"""Over-parameterized linear regression: problems, the row-space split, and training diagnostics.

``X ∈ R^{n×p}`` with ``n < p``, ``f(w) = ½‖Xw − y‖²``, ``P = X⁺X`` the projection on the row space
and ``w_mn = X⁺y`` the minimum-norm interpolant (Shah, Basu, Kyrillidis, Sanghavi; Shah, Kyrillidis,
Sanghavi; ``docs/theory/networks.md`` §2). :func:`fit_regression` trains ``w`` with any optimizer of
:mod:`overtensor.optim.registry` and records, along the run,

* ``in_span_error = ‖Pw − w_mn‖``, ``out_of_span = ‖(I − P)w‖``, ``norm = ‖w‖``, the training loss
  ``½‖Xw − y‖²`` and the test risk (exact for Gaussian designs: ``(w − w*)ᵀΣ(w − w*) + σ²``);
* the theory's out-of-span limit ``(I − P)w_0 − Σ_k (I − P) η D_k g_k``, rebuilt from each step's
  gradient ``g_k`` and the optimizer's own state (``D_k`` of AdaGrad, RMSProp, Adam, AdamW,
  momentum, the span-preserving and diagonal preconditioners), to compare with the measured
  ``(I − P)w``;
* how much of the path leaves the row space, ``Σ_k ‖(I − P)Δw_k‖ / Σ_k ‖Δw_k‖``, which
  :func:`classify_preconditioner` turns into "span-preserving" or "rotating".

Problems: :func:`gaussian_design` (``x = diag(s) z``, planted ``w*``, optional label noise),
:func:`random_features_problem` (the random-features regime of a two-layer ReLU network, exact test
risk from the arc-cosine kernel), :func:`neural_tangent_features`, and any user design through
:func:`as_problem`. The row-space split (:class:`RowSpace`) uses the thin SVD of ``X`` (never a
``p×p`` matrix; ``O(n²p)``) or, matrix-free, SciPy's LSQR.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from overtensor._checks import (
    as_tensor,
    check_choice,
    check_covariance,
    check_float,
    check_int,
    check_magnitude,
    check_positive_entries,
    make_generator,
)
from overtensor.optim.registry import check_optimizer, make_optimizer, optimizer_name
from overtensor.optim.steps import curvature_step, minibatch_step
from overtensor.training.loop import (
    Divergence,
    Evaluation,
    Progress,
    optimizer_step,
    train_loop,
)
from overtensor.training.result import Callback, TrainingResult, check_callback
from overtensor.training.schedule import StepSchedule

# ---------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionProblem:
    """A design ``X`` (n, p), labels ``y`` (n,), and what is known about the truth.

    Attributes
    ----------
    X, y : tensors (n, p) and (n,)
    w_star : tensor (p,) or None
        Planted coefficients (``y = X w* + noise``).
    covariance : tensor (p,) or (p, p), or None
        Test covariance ``Σ`` of the features (a vector = diagonal): the test risk is then exact,
        ``(w − w*)ᵀΣ(w − w*) + noise²``.
    noise : float
        Standard deviation of the label noise.
    X_test, y_test : tensors or None
        A test sample, used for the risk when ``covariance`` or ``w_star`` is missing.
    name : str
    """

    X: torch.Tensor
    y: torch.Tensor
    w_star: torch.Tensor | None = None
    covariance: torch.Tensor | None = None
    noise: float = 0.0
    X_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    name: str = "user"

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def test_risk(self, w: torch.Tensor) -> float | None:
        """Expected squared error on a fresh sample: exact when ``w*`` and ``Σ`` are known, else the
        mean squared error on ``(X_test, y_test)``; None when neither is available."""
        if self.w_star is not None and self.covariance is not None:
            d = (w - self.w_star).to(torch.float64)
            S = self.covariance.to(torch.float64)
            quad = (S * d * d).sum() if S.ndim == 1 else d @ (S @ d)
            return float(quad) + self.noise ** 2
        if self.X_test is not None and self.y_test is not None:
            r = self.X_test.to(torch.float64) @ w.to(torch.float64) - self.y_test.to(torch.float64)
            return float((r * r).mean())
        return None

    def __post_init__(self) -> None:
        # Also for a problem built directly, not through as_problem: a negative variance would
        # make every risk (null_risk included) negative.
        if self.covariance is not None:
            check_covariance("covariance", self.covariance, self.p)
        check_float("noise", self.noise, minimum=0.0)

    def null_risk(self) -> float | None:
        """Risk of ``w = 0`` (the scale against which a risk is judged)."""
        return self.test_risk(torch.zeros(self.p, dtype=self.X.dtype, device=self.X.device))


def as_problem(X: Any, y: Any, *, w_star: Any = None, covariance: Any = None, noise: float = 0.0,
               X_test: Any = None, y_test: Any = None, name: str = "user") -> RegressionProblem:
    """A :class:`RegressionProblem` from a user design, with shapes checked.

    Raises
    ------
    ValueError
        ``X`` not 2-d, ``y`` not of length ``n``, ``w_star``/``covariance``/test data of the wrong
        shape, non-finite entries, ``noise < 0``.
    """
    X = as_tensor("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d array (n, p), got shape {tuple(X.shape)}")
    n, p = X.shape
    y = as_tensor("y", y, dtype=X.dtype, device=X.device).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"y must have n={n} entries, got {y.shape[0]}")
    noise = check_float("noise", noise, minimum=0.0)
    # Least squares forms X Xᵀ and squared residuals: both must stay in float64's range.
    check_magnitude("X", X, 2, "the squares of its entries")
    check_magnitude("y", y, 2, "the squares of the labels")
    if w_star is not None:
        w_star = as_tensor("w_star", w_star, dtype=X.dtype, device=X.device).reshape(-1)
        if w_star.shape[0] != p:
            raise ValueError(f"w_star must have p={p} entries, got {w_star.shape[0]}")
    if covariance is not None:
        covariance = check_covariance(
            "covariance", as_tensor("covariance", covariance, dtype=X.dtype, device=X.device), p)
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together")
    if X_test is not None:
        X_test = as_tensor("X_test", X_test, dtype=X.dtype, device=X.device)
        y_test = as_tensor("y_test", y_test, dtype=X.dtype, device=X.device).reshape(-1)
        if X_test.ndim != 2 or X_test.shape[1] != p or y_test.shape[0] != X_test.shape[0]:
            raise ValueError(f"X_test must be (m, {p}) and y_test (m,), got {tuple(X_test.shape)} and "
                             f"{tuple(y_test.shape)}")
    return RegressionProblem(X, y, w_star, covariance, noise, X_test, y_test, name)


def planted_coefficients(p: int, support: Any, generator: torch.Generator,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``w* ~ N(0, I/k)`` on the ``k`` coordinates of ``support`` (all when None), zero elsewhere,
    so that ``E‖w*‖² = 1``."""
    w = torch.zeros(p, dtype=dtype)
    idx = torch.arange(p) if support is None else torch.as_tensor(support, dtype=torch.long)
    w[idx] = torch.randn(len(idx), generator=generator, dtype=dtype) / math.sqrt(len(idx))
    return w


def _labels(X, w_star, noise, gen):
    y = X @ w_star
    if noise > 0:
        y = y + noise * torch.randn(X.shape[0], generator=gen, dtype=X.dtype)
    return y


def gaussian_design(n: int, p: int, *, scales: Any = None, noise: float = 0.0, w_star: Any = None,
                    support: Any = None, random_state: Any = None,
                    dtype: torch.dtype = torch.float64) -> RegressionProblem:
    """Gaussian design ``x = diag(s) z``, ``z ~ N(0, I_p)``, labels ``y = Xw* + σ ε``.

    Parameters
    ----------
    n, p : int
        Samples and dimension (over-parameterized when ``n < p``).
    scales : sequence of p positive numbers, optional
        ``s`` (default all ones); the test covariance is ``Σ = diag(s²)``.
    noise : float
        ``σ ≥ 0``.
    w_star : tensor (p,), optional
        Planted coefficients; default ``N(0, I/k)`` on ``support`` (``k`` coordinates; all by
        default), drawn from the generator after ``X``.
    support : sequence of int, optional
    random_state : int or torch.Generator

    Raises
    ------
    ValueError
        Bad sizes, non-positive scales, ``noise < 0``.
    """
    n, p = check_int("n", n), check_int("p", p)
    noise = check_float("noise", noise, minimum=0.0)
    s = torch.ones(p, dtype=dtype) if scales is None else as_tensor("scales", scales, dtype=dtype).reshape(-1)
    if s.shape[0] != p or bool((s <= 0).any()):
        raise ValueError(f"scales must be {p} positive numbers, got {scales!r}")
    gen = make_generator(random_state)
    X = torch.randn(n, p, generator=gen, dtype=dtype) * s
    ws = planted_coefficients(p, support, gen, dtype) if w_star is None else \
        as_tensor("w_star", w_star, dtype=dtype).reshape(-1)
    if ws.shape[0] != p:
        raise ValueError(f"w_star must have p={p} entries, got {ws.shape[0]}")
    return RegressionProblem(X, _labels(X, ws, noise, gen), ws, s * s, noise, name="gaussian")


def nuisance_design(n: int, p: int, scale: float, *, signal: int | None = None, noise: float = 0.0,
                    random_state: Any = None, dtype: torch.dtype = torch.float64) -> RegressionProblem:
    """Signal on low-variance coordinates, nuisance on high-variance ones (Shah, Kyrillidis, Sanghavi).

    The first ``signal`` coordinates (default ``p // 2``) have scale 1 and carry ``w*`` (``N(0, I/k)``);
    the others have scale ``scale`` and carry nothing. For large ``scale`` the minimum-norm
    interpolant leans on the cheap nuisance coordinates; the fixed preconditioner ``diag(1/s²)``
    (:func:`preconditioned_interpolant`) undoes the scales.
    """
    scale = check_float("scale", scale, minimum=0.0, strict=True)
    p = check_int("p", p)
    k = p // 2 if signal is None else check_int("signal", signal)
    if k > p:
        raise ValueError(f"signal must be <= p={p}, got {signal!r}")
    s = torch.ones(p, dtype=dtype)
    s[k:] = scale
    prob = gaussian_design(n, p, scales=s, noise=noise, support=range(k), random_state=random_state,
                           dtype=dtype)
    return RegressionProblem(prob.X, prob.y, prob.w_star, prob.covariance, noise, name="nuisance")


# ---------------------------------------------------------------------------------------------
# Feature maps of a two-layer network f(x) = Σ_i a_i σ(⟨w_i, x⟩)
# Local, minimal versions (ReLU, W_0 rows ~ N(0, I/d)); to be pointed at overtensor.networks.model once
# that module is merged, so that the regression diagnostics run on the same networks.
# ---------------------------------------------------------------------------------------------


def first_layer(d: int, width: int, generator: torch.Generator,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``W_0`` (width, d) with i.i.d. ``N(0, 1/d)`` entries, so that ``⟨w_i, x⟩ ~ N(0, ≈1)``."""
    return torch.randn(width, d, generator=generator, dtype=dtype) / math.sqrt(d)


def random_features(X: torch.Tensor, W0: torch.Tensor) -> torch.Tensor:
    """Random-features map ``x ↦ relu(W_0 x)`` (n, width): the model is linear in the output
    weights ``a`` (Ghorbani, Mei, Misiakiewicz, Montanari 2019, the RF regime)."""
    return torch.relu(X @ W0.T)


def neural_tangent_features(X: torch.Tensor, W0: torch.Tensor, a0: torch.Tensor) -> torch.Tensor:
    """Neural-tangent features at ``(W_0, a_0)``: ``[relu(W_0 x), a_0,i 1{w_i·x > 0} x]``, shape
    (n, width·(1 + d)); the linearized network is linear in ``(Δa, vec ΔW)``."""
    pre = X @ W0.T
    gates = (pre > 0).to(X.dtype) * a0
    return torch.cat([torch.relu(pre), (gates[:, :, None] * X[:, None, :]).reshape(X.shape[0], -1)], 1)


def jacobian_span_split(X: torch.Tensor, W0: torch.Tensor, a0: torch.Tensor, W: torch.Tensor,
                        a: torch.Tensor) -> dict[str, float]:
    """Split a trained two-layer network's displacement ``Δθ = (a − a_0, vec(W − W_0))`` into the row
    space of the Jacobian at the initialization (:func:`neural_tangent_features`) and its complement.

    For the linearized (NT) model trained by a span-preserving method from ``θ_0`` the complement is 0
    exactly; for the network itself (the ``full`` regime) the split is **local and approximate**: the
    Jacobian moves during training, so a non-zero ``out_of_span`` is not by itself a rotating
    preconditioner. Returns ``in_span = ‖PΔθ‖``, ``out_of_span = ‖(I − P)Δθ‖``, ``displacement = ‖Δθ‖``
    and ``span = "Jacobian row space at initialization (local)"``.
    """
    J = neural_tangent_features(X, W0, a0).to(torch.float64)
    delta = torch.cat([(a - a0).reshape(-1), (W - W0).reshape(-1)]).to(torch.float64)
    space = RowSpace(J)
    out = space.complement(delta)
    return {"in_span": float((delta - out).norm()), "out_of_span": float(out.norm()),
            "displacement": float(delta.norm()), "span": "Jacobian row space at initialization (local)"}


def relu_feature_covariance(W0: torch.Tensor) -> torch.Tensor:
    """``E[relu(w_i·x) relu(w_j·x)]`` for ``x ~ N(0, I)``: the arc-cosine kernel
    ``‖w_i‖‖w_j‖ (sin θ + (π − θ) cos θ) / (2π)`` (Cho and Saul 2009), shape (width, width)."""
    norms = W0.norm(dim=1)
    cos = (W0 @ W0.T) / (norms[:, None] * norms[None, :])
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    return norms[:, None] * norms[None, :] * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) \
        / (2 * math.pi)


def random_features_problem(d: int, width: int, n: int, *, block: Any = None, block_scale: float = 1.0,
                            support: Any = None, noise: float = 0.0, random_state: Any = None,
                            dtype: torch.dtype = torch.float64) -> RegressionProblem:
    """Regression in the random-features regime: ``φ(x) = c ⊙ relu(W_0 x)``, ``x ~ N(0, I_d)``.

    The features listed in ``block`` are multiplied by ``block_scale`` (``c``); labels are
    ``y = φ(x)ᵀθ* + σε`` with ``θ* ~ N(0, I/k)`` on ``support``. The test risk is exact:
    ``Σ = diag(c) K diag(c)``, ``K`` the arc-cosine kernel of ``W_0`` (:func:`relu_feature_covariance`).

    Draw order from the generator: ``W_0``, then ``x``, then ``θ*``, then the noise.
    """
    d, width, n = check_int("d", d), check_int("width", width), check_int("n", n)
    block_scale = check_float("block_scale", block_scale, minimum=0.0, strict=True)
    gen = make_generator(random_state)
    W0 = first_layer(d, width, gen, dtype)
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    c = torch.ones(width, dtype=dtype)
    if block is not None:
        c[torch.as_tensor(block, dtype=torch.long)] = block_scale
    X = random_features(x, W0) * c
    theta = planted_coefficients(width, support, gen, dtype)
    cov = c[:, None] * relu_feature_covariance(W0) * c[None, :]
    return RegressionProblem(X, _labels(X, theta, noise, gen), theta, cov, noise, name="random-features")


# ---------------------------------------------------------------------------------------------
# Row space, minimum-norm interpolant
# ---------------------------------------------------------------------------------------------


class RowSpace:
    """``P = X⁺X`` and ``X⁺`` applied without forming a ``p×p`` matrix.

    ``solver="svd"``: thin SVD ``X = U S Vᵀ`` (``O(n²p)`` time, ``O(np)`` memory), rank from
    ``S > rtol·S_max`` (default ``rtol = max(n, p)·eps``), ``P w = V(Vᵀw)``, ``X⁺y = V S⁻¹ Uᵀ y``.
    ``solver="lsqr"``: SciPy's LSQR on the operator ``v ↦ Xv`` from ``0``, which returns the
    minimum-norm solution (``P w = X⁺(Xw)``); matrix-free, for designs too large for an SVD.
    """

    def __init__(self, X: torch.Tensor, solver: str = "svd", rtol: float | None = None) -> None:
        check_choice("solver", solver, ("svd", "lsqr"))
        self.X, self.solver = X.to(torch.float64), solver
        if solver == "svd":
            U, S, Vh = torch.linalg.svd(self.X, full_matrices=False)
            tol = (rtol if rtol is not None else max(X.shape) * torch.finfo(torch.float64).eps) * S[0]
            r = int((S > tol).sum())
            self.U, self.S, self.V = U[:, :r], S[:r], Vh[:r].T
            self.rank = r

    def pinv_apply(self, y: torch.Tensor) -> torch.Tensor:
        """``X⁺ y`` (p,) in float64."""
        y = y.to(torch.float64)
        if self.solver == "svd":
            return self.V @ ((self.U.T @ y) / self.S)
        import numpy as np
        from scipy.sparse.linalg import lsqr

        Xn = self.X.cpu().numpy()
        sol = lsqr(Xn, y.cpu().numpy(), atol=1e-14, btol=1e-14, iter_lim=20 * max(Xn.shape))[0]
        return torch.from_numpy(np.asarray(sol)).to(self.X.device)

    def project(self, w: torch.Tensor) -> torch.Tensor:
        """``P w``."""
        w = w.to(torch.float64)
        if self.solver == "svd":
            return self.V @ (self.V.T @ w)
        return self.pinv_apply(self.X @ w)

    def complement(self, w: torch.Tensor) -> torch.Tensor:
        """``(I − P) w``."""
        return w.to(torch.float64) - self.project(w)


def _design(X: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``X`` ``(n, p)`` and ``y`` ``(n,)`` as tensors, checked as :func:`as_problem` checks them
    (shapes, finite values, float64 range): the interpolants are doors of their own."""
    X = as_tensor("X", X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a 2-d array (n, p) with n, p >= 1, got shape {tuple(X.shape)}")
    y = as_tensor("y", y, dtype=X.dtype, device=X.device).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have n={X.shape[0]} entries, got {y.shape[0]}")
    check_magnitude("X", X, 2, "the squares of its entries")
    check_magnitude("y", y, 2, "the squares of the labels")
    return X, y


def min_norm_interpolant(X: Any, y: Any, solver: str = "svd") -> torch.Tensor:
    """``w_mn = X⁺y`` in float64 (the limit of gradient descent from 0)."""
    X, y = _design(X, y)
    return RowSpace(X, solver).pinv_apply(y)


def preconditioned_interpolant(X: Any, y: Any, diag: Any) -> torch.Tensor:
    """``D Xᵀ (X D Xᵀ)⁻¹ y`` with ``D = diag(diag)``: the limit of gradient descent preconditioned by
    the fixed ``D`` from 0, i.e. the interpolant of minimum ``Σ_j w_j²/D_j``."""
    X, y = _design(X, y)
    X, y = X.to(torch.float64), y.to(torch.float64)
    # D = 0 in a coordinate removes it from the norm's domain (Σ w_j²/D_j): refused, not inf.
    D = check_positive_entries("diag", as_tensor("diag", diag).to(torch.float64).reshape(-1),
                               X.shape[1])
    return D * (X.T @ torch.linalg.lstsq(X * D @ X.T, y[:, None]).solution[:, 0])


# ---------------------------------------------------------------------------------------------
# Training with diagnostics
# ---------------------------------------------------------------------------------------------

#: Default step sizes (``"auto"``: ``1/λ_max`` of the preconditioned curvature at ``w_0``);
#: the adaptive ones are the reference runs' (``docs/theory/networks.md`` §2).
DEFAULT_LR: dict[str, Any] = {
    "gd": "auto", "sgd": "auto", "momentum": "auto", "nesterov": "auto", "span-preserving": "auto",
    "diagonal": "auto", "adagrad": 0.05, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3,
}


@dataclass(kw_only=True)
class RegressionResult(TrainingResult):
    """What :func:`fit_regression` returns.

    Attributes
    ----------
    w : tensor (p,)
        Final iterate.
    w_min_norm : tensor (p,)
        ``X⁺y`` (float64).
    history : list of dict
        Records at log-spaced steps: ``step, loss, in_span_error, out_of_span, norm, test_risk``.
    out_of_span : tensor (p,)
        Measured ``(I − P) w`` at the end.
    predicted_out_of_span : tensor (p,) or None
        ``(I − P)w_0 − Σ_k (I − P) η D_k g_k`` with ``D_k g_k`` rebuilt from the optimizer's state
        (None for an optimizer whose ``D_k`` is not known: see ``prediction_source``).
    prediction_source : str
        ``"theory"`` (rebuilt ``η D_k g_k``) or ``"unavailable"``.
    leak_ratio : float
        ``Σ_k ‖(I − P)u_k‖ / Σ_k ‖u_k‖`` over the steps ``u_k`` (the rebuilt ``η D_k g_k`` when known,
        else the observed ``w_k − w_{k+1}``): 0 to rounding for a span-preserving method.
    optimizer, lr, steps, seconds, info
    """

    w: torch.Tensor
    w_min_norm: torch.Tensor
    out_of_span: torch.Tensor
    predicted_out_of_span: torch.Tensor | None
    prediction_source: str
    leak_ratio: float
    optimizer: str
    lr: float

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-serializable summary: the optimizer, its step, the last record and the
        leak ratio."""
        return {"optimizer": self.optimizer, "lr": self.lr, **super().summary(), **self.final,
                "leak_ratio": self.leak_ratio}

    @property
    def final(self) -> dict[str, Any]:
        """The last history record."""
        return self.history[-1]

    def prediction_error(self) -> float | None:
        """``‖predicted − measured‖ / ‖measured‖`` of the out-of-span part (absolute when it is 0)."""
        if self.predicted_out_of_span is None:
            return None
        diff = float((self.predicted_out_of_span - self.out_of_span).norm())
        ref = float(self.out_of_span.norm())
        return diff / ref if ref > 0 else diff

    def settled_change(self) -> float:
        """Relative change of ``‖(I − P)w‖`` over the last half of training (0 when it is 0)."""
        half = self.steps // 2
        mid = min(self.history, key=lambda h: abs(h["step"] - half))["out_of_span"]
        end = self.final["out_of_span"]
        return abs(end - mid) / end if end > 0 else abs(end - mid)


def classify_preconditioner(result: RegressionResult, tol: float = 1e-8) -> str:
    """``"span-preserving"`` when ``(I − P) D_k Xᵀ r_k`` vanished along the run (``leak_ratio ≤ tol``),
    else ``"rotating"``.

    ``tol = 1e-8`` is far above the rounding of float64 steps (``≲ 1e-13`` for a span-preserving
    method over ``10⁴`` steps) and far below what a rotating preconditioner leaks (``≳ 1e-2``).
    """
    return "span-preserving" if result.leak_ratio <= tol else "rotating"


def log_steps(steps: int, points: int) -> list[int]:
    """About ``points`` integers from 0 to ``steps``, log-spaced, always with 0, 1 and ``steps``."""
    grid = {0, 1, steps}
    for k in range(points):
        grid.add(round(steps ** (k / max(1, points - 1))))
    return sorted(s for s in grid if 0 <= s <= steps)


def _theory_step(opt: torch.optim.Optimizer, w_before: torch.Tensor,
                 g: torch.Tensor) -> torch.Tensor | None:
    """``η D_k g̃_k`` (so that ``w_{k+1} = w_k − η D_k g̃_k``) rebuilt from the optimizer's state after
    its step and the gradient ``g``: ``g̃`` is ``g`` or its momentum average (Adam's ``m``, the
    heavy-ball buffer), which is still a combination of gradients. None when ``D_k`` is not known."""
    group = opt.param_groups[0]
    w = group["params"][0]
    st = opt.state[w]
    lr = group["lr"]
    if isinstance(opt, torch.optim.SGD):
        if group["weight_decay"] or group["nesterov"]:
            return None
        return lr * (st["momentum_buffer"] if group["momentum"] else g)
    if isinstance(opt, torch.optim.Adagrad):
        if group["weight_decay"]:
            return None
        step = float(st["step"])
        clr = lr / (1 + (step - 1) * group["lr_decay"])
        return clr * g / (st["sum"].sqrt() + group["eps"])
    if isinstance(opt, torch.optim.RMSprop):
        if group["weight_decay"] or group["momentum"] or group["centered"]:
            return None
        return lr * g / (st["square_avg"].sqrt() + group["eps"])
    if isinstance(opt, torch.optim.Adam | torch.optim.AdamW):
        if group.get("amsgrad"):
            return None
        decoupled = isinstance(opt, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
        if group["weight_decay"] and not decoupled:
            return None
        b1, b2 = group["betas"]
        step = float(st["step"])
        denom = st["exp_avg_sq"].sqrt() / math.sqrt(1 - b2 ** step) + group["eps"]
        u = (lr / (1 - b1 ** step)) * st["exp_avg"] / denom
        if group["weight_decay"]:
            u = u + lr * group["weight_decay"] * w_before
        return u
    from overtensor.optim.registry import DiagonalPreconditioner, SpanPreservingPreconditioner

    if isinstance(opt, SpanPreservingPreconditioner):
        S = st["S"]
        Xg = opt.design @ g
        return lr * (g + opt.design.T @ (S * Xg if S.ndim == 1 else S @ Xg))
    if isinstance(opt, DiagonalPreconditioner):
        return lr * opt.diag * g
    return None


def _auto_lr(name: str, problem: RegressionProblem, w0: torch.Tensor, options: dict[str, Any],
             batch_size: int | None = None) -> float:
    """``1/λ_max`` of the preconditioned curvature ``X D_0 Xᵀ`` at ``w_0`` (n×n, so cheap); with
    mini-batches of ``b`` rows the step of Ma, Bassily & Belkin (ICML 2018, "The power of
    interpolation", Thm 2) for the gradient rescaled by ``n/b``:
    ``η(b) = b / (n β + (b − 1) λ_max)`` with ``β = max_i K_ii`` (the largest per-sample
    curvature): a mini-batch's curvature ``(n/b) X_bᵀ X_b`` can reach ``n β`` (one row drawn
    ``b`` times), far above ``λ_max`` when ``b ≪ n``, and the full-batch ``1/λ_max`` then
    diverges (issue 22, item 7: ``n = 40, b = 8``)."""
    full = _full_batch_lr(name, problem, w0, options)
    if batch_size is None or full[1] is None:
        return full[0]
    K = full[1]
    return minibatch_step(full[0], problem.n, batch_size, beta=float(torch.diagonal(K).max()),
                          top=float(torch.linalg.eigvalsh(K)[-1]))


def _full_batch_lr(name: str, problem: RegressionProblem, w0: torch.Tensor,
                   options: dict[str, Any]) -> tuple[float, torch.Tensor | None]:
    """``1/λ_max(K)`` of the preconditioned curvature ``K`` and ``K`` itself (``None`` where
    the rule is not ``1/λ_max(K)``)."""
    X = problem.X.to(torch.float64)
    if name == "diagonal":
        K = (X * options["diag"].to(torch.float64)) @ X.T
    else:
        K = X @ X.T
        if name == "span-preserving":
            wts = options.get("weights", "residual")
            if isinstance(wts, torch.Tensor):
                S = wts.to(torch.float64)
            elif wts == "identity":
                S = torch.full((problem.n,), 1.0 / problem.n, dtype=torch.float64)
            elif wts == "normalized-residual":
                # D_k ⪯ 2I: half the step of the unpreconditioned curvature
                return curvature_step(float(torch.linalg.eigvalsh(K)[-1]), factor=0.5, flat=0.5), None
            else:
                r = X @ w0.to(torch.float64) - problem.y.to(torch.float64)
                S = (r.abs() / problem.n) if wts == "residual" else wts(r).to(torch.float64)
            K = K + K @ (torch.diag(S) if S.ndim == 1 else S) @ K
    return curvature_step(float(torch.linalg.eigvalsh(K)[-1]), flat=1.0), K


def fit_regression(
    problem: RegressionProblem,
    optimizer: Any = "gd",
    *,
    lr: float | str | None = None,
    steps: int = 20000,
    w0: Any = None,
    batch_size: int | None = None,
    optimizer_options: dict[str, Any] | None = None,
    records: int = 60,
    random_state: Any = None,
    row_space: RowSpace | None = None,
    schedule: str = "constant",
    progress: bool = False,
    callback: Callback | None = None,
) -> RegressionResult:
    """Train ``w`` on ``f(w) = ½‖Xw − y‖²`` and record the row-space diagnostics (module docstring).

    Parameters
    ----------
    problem : RegressionProblem
    optimizer : str, torch.optim.Optimizer class or instance, or callable
        Any spelling of :func:`overtensor.optim.registry.make_optimizer`; ``"span-preserving"`` gets
        ``design=X, targets=y`` and ``"diagonal"`` needs ``optimizer_options={"diag": d}``.
    lr : float, "auto" or None
        ``None``: :data:`DEFAULT_LR` for a name (``"auto"`` = ``1/λ_max(X D_0 Xᵀ)``, with
        ``batch_size`` the mini-batch step ``b / (n β + (b − 1) λ_max)`` of :func:`_auto_lr`),
        ``1e-3`` for a class (an instance or a callable sets its own).
    steps : int
        Number of optimizer steps.
    w0 : tensor (p,), optional
        Start (default 0, which lies in the row space).
    batch_size : int, optional
        Mini-batch size (indices drawn from the generator; the gradient is rescaled by ``n/b`` so
        that it estimates the full one). Default: full batch.
    optimizer_options : dict, optional
        Extra keywords for a name or a class (e.g. ``{"momentum": 0.5}``).
    records : int
        About how many log-spaced records the history keeps.
    random_state : int or torch.Generator
        Only the mini-batches are random.
    row_space : RowSpace, optional
        Reuse a factorization of ``X`` across runs.
    schedule : {"constant", "step-decay"}
        ``step-decay``: ``lr × 0.1`` at 70 % and again at 85 % of the steps
        (``torch.optim.lr_scheduler.MultiStepLR``; the decay over the last 30 % of the reference
        runs): constant-step RMSProp and Adam otherwise hover at a distance ``∝ lr`` from an
        interpolant.
    progress : bool
    callback : callable ``(record, state) -> bool``, optional
        Called at every record with the history record and ``{"step", "w"}``; returning True stops
        training there (the contract of :data:`overtensor.training.result.Callback`).

    Raises
    ------
    ValueError, TypeError
        Before any step: bad optimizer spelling, sizes, ``lr``, callback; ``"diagonal"`` without
        ``diag``.
    DivergenceError
        The loss became non-finite or exploded (the rule of
        :func:`overtensor.training.loop.check_divergence`).
    """
    check_optimizer(optimizer)
    check_callback(callback)
    if not isinstance(problem, RegressionProblem):
        raise TypeError(f"problem must be a RegressionProblem (see as_problem), got {type(problem).__name__}")
    steps = check_int("steps", steps, 1)
    records = check_int("records", records, 2)
    check_choice("schedule", schedule, ("constant", "step-decay"))
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1)
        if batch_size > problem.n:
            raise ValueError(f"batch_size must be <= n={problem.n}, got {batch_size}")
    options = dict(optimizer_options or {})
    name = optimizer_name(optimizer)
    if optimizer == "diagonal" and "diag" not in options:
        raise ValueError("optimizer='diagonal' needs optimizer_options={'diag': tensor of p positive "
                         "entries}")
    X, y = problem.X, problem.y
    w = torch.zeros(problem.p, dtype=X.dtype, device=X.device) if w0 is None else \
        as_tensor("w0", w0, dtype=X.dtype, device=X.device).reshape(-1).clone()
    if w.shape[0] != problem.p:
        raise ValueError(f"w0 must have p={problem.p} entries, got {w.shape[0]}")
    if lr is None:
        lr = DEFAULT_LR.get(name, "auto") if isinstance(optimizer, str) else 1e-3
    if lr == "auto":
        lr = _auto_lr(name, problem, w, options, batch_size)
    lr = check_float("lr", lr, minimum=0.0, strict=True)
    if optimizer == "span-preserving":
        options.setdefault("design", X)
        options.setdefault("targets", y)
    gen = make_generator(random_state, X.device)

    t0 = time.perf_counter()
    space = row_space if row_space is not None else RowSpace(X)
    w_mn = space.pinv_apply(y)
    w0_out = space.complement(w)
    w.requires_grad_(False)
    param = torch.nn.Parameter(w)
    opt = make_optimizer(optimizer, [param], lr, **options)
    lr_scheduler = None
    if schedule == "step-decay":
        lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(0.7 * steps), int(0.85 * steps)], gamma=0.1)
    sum_u = torch.zeros(problem.p, dtype=torch.float64, device=X.device)
    leak_num = leak_den = 0.0
    buf = torch.empty(min(steps, 512), problem.p, dtype=X.dtype, device=X.device)
    fill = 0
    theory_ok = True

    def flush() -> None:
        # Batched: the leak of each step of the chunk at once (per-step calls dominate).
        nonlocal fill, sum_u, leak_num, leak_den
        if fill == 0:
            return
        chunk = buf[:fill].to(torch.float64)
        sum_u += chunk.sum(0)
        out = chunk - (chunk @ space.V) @ space.V.T if space.solver == "svd" else \
            torch.stack([space.complement(v) for v in chunk])
        leak_num += float(out.norm(dim=1).sum())
        leak_den += float(chunk.norm(dim=1).sum())
        fill = 0

    def evaluate(_: None) -> Evaluation:
        with torch.no_grad():
            wd = param.detach().to(torch.float64)
            r = X.to(torch.float64) @ wd - y.to(torch.float64)
            loss = 0.5 * float(r @ r)
            Pw = space.project(wd)
            rec = {"step": plan.step, "loss": loss, "in_span_error": float((Pw - w_mn).norm()),
                   "out_of_span": float((wd - Pw).norm()), "norm": float(wd.norm()),
                   "test_risk": problem.test_risk(wd)}
        return Evaluation(rec, {"step": plan.step, "w": param.detach()}, loss=loss,
                          note=f"loss {loss:.2e}")

    def step(n: int) -> None:  # n = 1
        nonlocal fill, theory_ok
        k = plan.step + 1
        with torch.no_grad():
            if batch_size is None:
                g = X.T @ (X @ param - y)
            else:
                idx = torch.randint(problem.n, (batch_size,), generator=gen, device=X.device)
                Xb = X[idx]
                g = (problem.n / batch_size) * (Xb.T @ (Xb @ param - y[idx]))
            before = param.detach().clone()
        param.grad = g
        optimizer_step(opt)
        with torch.no_grad():
            u = _theory_step(opt, before, g) if theory_ok else None
            if u is None:
                theory_ok = False
                u = before - param.detach()
            buf[fill] = u
            fill += 1
            if fill == len(buf) or k == steps:
                flush()
        if lr_scheduler is not None:  # after _theory_step, which reads this step's lr
            lr_scheduler.step()

    # The divergence rule's start is the first record's loss (the loss at w0).
    plan = StepSchedule(steps, at=log_steps(steps, records), last=False)
    history = train_loop(plan, step, evaluate, divergence=Divergence(lr, start=None),
                         callback=callback, evaluate_start=True, per_step=True,
                         progress=Progress(progress, steps, f"{name} n={problem.n} p={problem.p}"))
    with torch.no_grad():
        flush()
    wf = param.detach()
    predicted = (w0_out - space.complement(sum_u)) if theory_ok else None
    return RegressionResult(
        w=wf.clone(), w_min_norm=w_mn, history=history, out_of_span=space.complement(wf),
        predicted_out_of_span=predicted, prediction_source="theory" if theory_ok else "unavailable",
        leak_ratio=leak_num / leak_den if leak_den > 0 else 0.0, optimizer=name, lr=lr,
        steps=plan.step, seconds=time.perf_counter() - t0, stop_reason=plan.stop_reason,
    )
