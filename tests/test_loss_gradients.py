"""Loss and gradient by the Gram identity against the dense ``d^l`` computation (float64, 1e-10)."""

import pytest
import torch

import overtensor as ot
from overtensor.tensors.loss import half_sq_distance, relative_error
from overtensor.tensors.models import MODELS, balanced_signs, init_params, model_cp
from overtensor.tensors.targets import symmetrize

from .conftest import dense_cp


def _make_targets(order: int, d: int):
    g = torch.Generator().manual_seed(10 + order)
    cp = ot.random_target(order=order, dim=d, rank=3, weights=[1.0, -0.7, 0.4], random_state=3)
    X = torch.randn(25, d, generator=g, dtype=torch.float64)
    mom = ot.MomentTarget(X, order, chunk_size=10)
    dense = ot.DenseTarget(symmetrize(torch.randn((d,) * order, generator=g, dtype=torch.float64)))
    return {
        "cp": (cp, dense_cp(cp.weights, cp.factors, order)),
        "moments": (mom, dense_cp(torch.full((25,), 1 / 25, dtype=torch.float64), X, order)),
        "dense": (dense, dense.array),
    }


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["cp", "moments", "dense"])
def test_gram_identity_loss_and_gradient_match_dense_computation(order, model, kind):
    d, m = 5, 4
    target, A = _make_targets(order, d)[kind]
    gen = torch.Generator().manual_seed(0)
    params = init_params(model, m, d, 0.7, gen, torch.float64, torch.device("cpu"))
    if model == "coefficients":
        params["c"] = torch.randn(m, generator=gen, dtype=torch.float64)
    signs = balanced_signs(m, True, torch.float64, "cpu")
    scale = 0.37

    def grads(loss_fn):
        ps = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        loss = loss_fn(ps)
        gs = torch.autograd.grad(loss, list(ps.values()))
        return loss.detach(), gs

    def implicit(ps):
        a, V = model_cp(model, ps, signs)
        return half_sq_distance(a, V, target, scale)

    def dense(ps):
        a, V = model_cp(model, ps, signs)
        return 0.5 * ((dense_cp(a, V, order) - scale * A) ** 2).sum()

    l1, g1 = grads(implicit)
    l2, g2 = grads(dense)
    torch.testing.assert_close(l1, l2, rtol=1e-10, atol=0)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * float(b.abs().max()))


def test_relative_error_is_computed_in_float64_even_for_float32_inputs():
    t = ot.random_target(order=3, dim=6, rank=2, random_state=0)
    a, V = t.weights.float() * 1.001, t.factors.float()
    err = relative_error(a, V, t.to(dtype=torch.float32))
    assert err.dtype == torch.float64
    dense_err = (dense_cp(a.double(), V.double(), 3) - dense_cp(t.weights, t.factors.double(), 3)).norm() / (
        dense_cp(t.weights, t.factors, 3).norm()
    )
    assert float(err) == pytest.approx(float(dense_err), rel=1e-5)
