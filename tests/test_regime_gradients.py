"""Closed-form regime gradients (overtensor.tensors.regime_gradients) against the torch.func/autograd
definitions of overtensor.tensors.regimes, and lazy conjugate gradients reaching the exact optimum."""

from __future__ import annotations

import pytest
import torch

import overtensor as ot
from overtensor.tensors.lazy import dense_target, tangent_relative_error, tangent_to_cp, tangent_to_dense
from overtensor.tensors.models import get_model, init_params
from overtensor.tensors.regime_gradients import ShiftedTarget
from overtensor.tensors.regimes import closed_form_problem, linearize, make_regime, regime_fit

F64 = torch.float64
CPU = torch.device("cpu")
MODELS = ("plain", "homogeneous", "coefficients")
# Closed form and autograd compute the same sums in different orders: they agree to ~1e-15
# relative; 1e-9 is far above that and far below any error in a formula.
RTOL = 1e-9


def _setup(model, regime, m=5, d=4, order=3, seed=0, alpha=3.0, dense=False):
    gen = torch.Generator().manual_seed(seed)
    target = ot.random_target(order, d, 2, random_state=seed)
    if dense:
        target = ot.DenseTarget(target.truth.to_dense())
    p0 = init_params(model, m, d, 1.0, gen, F64, CPU)
    if model == "coefficients":
        p0["c"] = torch.randn(m, generator=gen, dtype=F64)
    signs = torch.tensor([1.0, -1.0] * m, dtype=F64)[:m]
    reg = make_regime(regime, model, order, p0, signs, alpha)
    theta = reg.init()
    # Away from the start, where every term of the gradient is non-zero.
    theta = {k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=F64) for k, v in theta.items()}
    sq = target.sq_norm()
    scale = 1.0 / sq.sqrt()
    return reg, theta, target, scale, sq


def _autograd(reg, theta, target, scale, sq):
    x = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    loss = reg.loss(x, target, scale, sq)
    grads = torch.autograd.grad(loss, list(x.values()))
    return loss.detach(), dict(zip(x, grads, strict=True))


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * float(b.abs().max()))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("regime", ["lazy", "random-features", "alpha-scaled", "full"])
def test_closed_form_loss_and_gradient_equal_autograd_of_the_regime_definition(model, regime):
    for dense in (False, True):
        reg, theta, target, scale, sq = _setup(model, regime, dense=dense)
        loss_ref, grad_ref = _autograd(reg, theta, target, scale, sq)
        loss, grads = closed_form_problem(reg, target, scale, sq).loss_and_grad(theta)
        assert set(grads) == set(grad_ref)
        _close(loss, loss_ref)
        for k in grads:
            assert float(grad_ref[k].norm()) > 1e-3  # a real test: the gradient is not ~0
            _close(grads[k], grad_ref[k])


@pytest.mark.parametrize("model", MODELS)
def test_closed_form_tangent_map_is_the_torch_func_linearization_and_its_adjoint(model):
    reg, theta, *_ = _setup(model, "lazy", order=4)
    forward, adjoint = get_model(model).tangent_map(reg.params0, reg.signs, 4)
    V, U = linearize(model, reg.params0, reg.signs, 4)(theta)
    _close(reg.a0.unsqueeze(-1) * reg.V0 + forward(theta), U)
    torch.testing.assert_close(V, reg.V0)
    g = torch.randn(U.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    lhs = (forward(theta) * g).sum()
    rhs = sum((theta[k] * v).sum() for k, v in adjoint(g).items())
    _close(lhs, rhs)


@pytest.mark.parametrize("regime", ["lazy", "random-features"])
def test_quadratic_hessian_vector_product_equals_autograd(regime):
    reg, theta, target, scale, sq = _setup("homogeneous", regime)
    z = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
         for k, v in theta.items()}
    x = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    grads = torch.autograd.grad(reg.loss(x, target, scale, sq), list(x.values()), create_graph=True)
    ref = torch.autograd.grad(sum((g * z[k]).sum() for g, k in zip(grads, x, strict=True)),
                              list(x.values()))
    hz = closed_form_problem(reg, target, scale, sq).hvp(z)
    for k, r in zip(x, ref, strict=True):
        _close(hz[k], r)


def test_shifted_target_is_the_affine_combination():
    target = ot.random_target(3, 4, 2, random_state=1)
    gen = torch.Generator().manual_seed(2)
    a, V = torch.randn(3, generator=gen, dtype=F64), torch.randn(3, 4, generator=gen, dtype=F64)
    R = ShiftedTarget(a, V, 0.7, target, -1.3)
    dense = 0.7 * ot.SymmetricCP(a, V, 3).to_dense() - 1.3 * target.truth.to_dense()
    X = torch.randn(5, 4, generator=gen, dtype=F64)
    _close(R.contract(X), torch.einsum("abc,ia,ib->ic", dense, X, X))
    _close(R.values(X), torch.einsum("abc,ia,ib,ic->i", dense, X, X, X))
    _close(R.sq_norm(), (dense**2).sum())


@pytest.mark.parametrize("order", [3, 4])
def test_dense_tangent_and_target_arrays(order):
    gen = torch.Generator().manual_seed(4)
    V, U = torch.randn(3, 4, generator=gen, dtype=F64), torch.randn(3, 4, generator=gen, dtype=F64)
    a, R = tangent_to_cp(V, U, order)
    _close(tangent_to_dense(V, U, order), ot.SymmetricCP(a, R, order).to_dense())
    target = ot.random_target(order, 4, 3, random_state=0)
    _close(dense_target(target), target.truth.to_dense())
    # Both evaluations of the lazy error agree where the Gram identity resolves it.
    dense = dense_target(target.float64())
    e_dense = tangent_relative_error(V, U, target, 1.0, dense)
    e_gram = tangent_relative_error(V, U, target, 1.0)
    assert 0.1 < e_dense and abs(e_dense - e_gram) < 1e-10


def test_lazy_conjugate_gradients_reach_the_exact_optimum_at_the_threshold_width():
    # The case: m·d = 15·8 = 120 = C(10, 3), so the tangent space is all of Sym³(R⁸) and
    # the exact lazy optimum is 0; κ(K) ≈ 3e7 there, and gradient descent with 1/L stalled at
    # 0.06 after 20 000 steps. CG reaches it far within the default budget.
    target = ot.random_target(3, 8, 1, random_state=0)
    res = ot.fit(target, width=15, regime="lazy", tol=0.0, random_state=0)
    assert res.info["solver"] == "conjugate-gradients"
    assert res.info["lazy_optimum_error"] == 0.0
    assert res.relative_error < 1e-6 and res.steps < 5000


@pytest.mark.parametrize("optimizer", [None, "gd"])
def test_lazy_fit_matches_the_exact_optimum_below_the_threshold(optimizer):
    target = ot.random_target(3, 10, 5, random_state=1)
    res = ot.fit(target, width=8, regime="lazy", tol=0.0, random_state=1,
                 schedule=ot.GradientSchedule(optimizer=optimizer))
    opt = res.info["lazy_optimum_error"]
    assert 0.3 < opt < 0.99
    assert res.info["solver"] == ("conjugate-gradients" if optimizer is None else "gradient-descent")
    # Neither can beat the least-squares optimum (beyond rounding, ~1e-15).
    assert -1e-12 <= res.relative_error - opt < 1e-6


@pytest.mark.parametrize("regime", ["alpha-scaled", "random-features", "lazy"])
def test_closed_form_and_autograd_fits_follow_the_same_trajectory(regime):
    target = ot.random_target(3, 6, 2, random_state=3)
    kw = dict(regime=regime, method="beyond-lazy", model="homogeneous", width=5, init_scale=1.0,
              alpha=10.0, max_steps=300, tol=0.0, lr=None, optimizer="gd", signs="auto",
              patience=5, eval_every=50, epoch_steps=100, dtype=F64, device=CPU)
    runs = [regime_fit(target, generator=torch.Generator().manual_seed(0), engine=e, **kw)
            for e in ("auto", "autograd")]
    assert [r.info["solver"] for r in runs] == ["gradient-descent", "autograd"]
    assert runs[0].info["lr"] == pytest.approx(runs[1].info["lr"], rel=1e-6)
    e0 = [h["relative_error"] for h in runs[0].history]
    e1 = [h["relative_error"] for h in runs[1].history]
    assert len(e0) == len(e1) > 3 and e0[0] - e0[-1] > 1e-3  # it moved
    for x, y in zip(e0, e1, strict=True):
        assert abs(x - y) < 1e-9


@pytest.mark.parametrize("model", MODELS)
def test_each_tensor_model_pullback_is_the_autograd_gradient_of_its_model_function(model):
    # The closed form of a TensorModel (its vector-Jacobian product) against autograd through
    # its model function cp(): for given ∂L/∂a = g and ∂L/∂v = l·a·r the parameters' gradient.
    import torch

    from overtensor.tensors.models import TENSOR_MODELS

    gen = torch.Generator().manual_seed(5)
    kind = get_model(model)
    assert TENSOR_MODELS[model] is kind and get_model(kind) is kind
    params = kind.init(4, 3, 0.7, gen, torch.float64, torch.device("cpu"))
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    g = torch.randn(4, generator=gen, dtype=torch.float64)
    r = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    order = 3
    a, V = kind.cp(params, signs)
    # ∂L/∂v_i = l a_i r_i with r_i fixed; the model's pullback assumes g_i = v_i·r_i.
    g = torch.linalg.vecdot(V, r).detach()
    loss = (g * a).sum() + (order * a.detach().unsqueeze(-1) * r * V).sum()
    auto = torch.autograd.grad(loss, list(params.values()))
    closed = kind.pullback({k: v.detach() for k, v in params.items()}, a.detach(), V.detach(),
                           r.clone(), g, signs, order, torch.tensor(0.0, dtype=torch.float64))
    for (name, _), ref in zip(params.items(), auto, strict=True):
        torch.testing.assert_close(closed[name], ref, rtol=1e-10, atol=1e-12)
