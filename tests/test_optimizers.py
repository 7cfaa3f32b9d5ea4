"""The optimizer registry: names, classes, instances and callables, everywhere the library trains."""

from __future__ import annotations

import functools

import pytest
import torch

import overtensor as ot
from overtensor.optim.registry import (
    OPTIMIZERS,
    DiagonalPreconditioner,
    SpanPreservingPreconditioner,
    check_optimizer,
    make_optimizer,
)


def _param():
    return [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))]


@pytest.mark.parametrize(("name", "cls"), [
    ("gd", torch.optim.SGD), ("sgd", torch.optim.SGD), ("momentum", torch.optim.SGD),
    ("nesterov", torch.optim.SGD), ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop),
    ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
])
def test_names_resolve_to_torch_optim(name, cls):
    opt = make_optimizer(name, _param(), 0.01)
    assert type(opt) is cls and opt.defaults["lr"] == 0.01
    if name in ("momentum", "nesterov"):
        assert opt.defaults["momentum"] == 0.9


def test_every_registered_name_is_covered():
    assert set(OPTIMIZERS) == {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
                               "span-preserving", "diagonal"}


def test_class_instance_and_callable():
    opt = make_optimizer(torch.optim.RMSprop, _param(), 0.02, alpha=0.9)
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["alpha"] == 0.9
    template = torch.optim.Adam([torch.zeros(1)], lr=3e-4, betas=(0.8, 0.95))
    params = _param()
    opt = make_optimizer(template, params, 0.5)
    assert isinstance(opt, torch.optim.Adam) and opt is not template
    assert opt.defaults["lr"] == 3e-4 and opt.defaults["betas"] == (0.8, 0.95)
    assert opt.param_groups[0]["params"][0] is params[0]
    opt = make_optimizer(functools.partial(torch.optim.Adagrad, lr=0.7), _param(), 0.5)
    assert isinstance(opt, torch.optim.Adagrad) and opt.defaults["lr"] == 0.7


def test_bad_spellings():
    with pytest.raises(ValueError, match="'adamm'"):
        check_optimizer("adamm")
    with pytest.raises(TypeError, match="42"):
        check_optimizer(42)
    with pytest.raises(ValueError, match="design"):
        make_optimizer("span-preserving", _param(), 0.1)
    X = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="targets"):
        SpanPreservingPreconditioner(_param(), 0.1, X)
    with pytest.raises(ValueError, match="length p=5"):
        SpanPreservingPreconditioner(_param(), 0.1, torch.randn(4, 5), torch.randn(4))
    with pytest.raises(ValueError, match="non-negative"):
        SpanPreservingPreconditioner(_param(), 0.1, X, weights=torch.tensor([1.0, -1.0, 0, 0]))
    with pytest.raises(ValueError, match="positive"):
        DiagonalPreconditioner(_param(), 0.1, torch.tensor([1.0, 0.0, 1.0]))


def test_span_preserving_step_is_I_plus_XtSX():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(4, generator=gen, dtype=torch.float64)
    w = torch.nn.Parameter(torch.randn(6, generator=gen, dtype=torch.float64))
    S = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    S = S @ S.T  # a full PSD S_k
    opt = SpanPreservingPreconditioner([w], 0.1, X, y, weights=S)
    w0 = w.detach().clone()
    g = X.T @ (X @ w0 - y)
    w.grad = g
    opt.step()
    D = torch.eye(6, dtype=torch.float64) + X.T @ S @ X
    assert torch.allclose(w.detach(), w0 - 0.1 * D @ g, atol=1e-12)
    # The default residual weighting: D = I + Xᵀ diag(|r|)/n X.
    w2 = torch.nn.Parameter(w0.clone())
    opt = SpanPreservingPreconditioner([w2], 0.1, X, y)
    w2.grad = g
    opt.step()
    r = X @ w0 - y
    D = torch.eye(6, dtype=torch.float64) + X.T @ torch.diag(r.abs() / 4) @ X
    assert torch.allclose(w2.detach(), w0 - 0.1 * D @ g, atol=1e-12)


@pytest.fixture(scope="module")
def target():
    return ot.random_target(order=3, dim=6, rank=1, random_state=0)


def _fit(target, optimizer, **kw):
    return ot.fit(target, width=3, method="gd", random_state=0,
                  schedule=ot.GradientSchedule(optimizer=optimizer, max_steps=150, eval_every=50,
                                               final_steps=0, **kw),
                  extraction=ot.Extraction(extract=False))


def test_tensor_fit_takes_every_spelling(target):
    by_name = _fit(target, "rmsprop", lr=0.01)
    by_class = _fit(target, torch.optim.RMSprop, lr=0.01)
    by_instance = _fit(target, torch.optim.RMSprop([torch.zeros(1)], lr=0.01))
    by_callable = _fit(target, functools.partial(torch.optim.RMSprop, lr=0.01))
    plain = _fit(target, "gd", lr=0.01)
    losses = [r.history[-1]["loss"] for r in (by_name, by_class, by_instance, by_callable)]
    assert losses[1:] == [losses[0]] * 3  # the same optimizer, bit for bit
    assert losses[0] != plain.history[-1]["loss"]  # and not plain gradient descent
    # Adaptive steps escape the small-init saddle that holds plain gradient descent for long.
    err = {name: _fit(target, name, lr=0.01).history[-1]["relative_error"]
           for name in ("sgd", "momentum", "adagrad", "adam", "adamw")}
    gd_err = plain.history[-1]["relative_error"]
    assert gd_err > 0.99 and err["sgd"] == gd_err
    assert err["momentum"] < gd_err
    for name in ("adagrad", "adam", "adamw"):
        assert err[name] < 0.5, (name, err[name])
    assert by_name.history[-1]["relative_error"] < 0.5


def test_tensor_fit_rejects_bad_optimizer(target):
    with pytest.raises(ValueError, match="'rmsprp'"):
        _fit(target, "rmsprp")
    with pytest.raises(ValueError, match="design"):
        _fit(target, "span-preserving")


def test_normalized_residual_weights_bound_the_preconditioner():
    gen = torch.Generator().manual_seed(1)
    X = 5 * torch.randn(6, 15, generator=gen, dtype=torch.float64)
    y = 100 * torch.randn(6, generator=gen, dtype=torch.float64)  # large residuals do not matter
    w = torch.nn.Parameter(torch.zeros(15, dtype=torch.float64))
    opt = SpanPreservingPreconditioner([w], 0.1, X, y, weights="normalized-residual")
    w.grad = X.T @ (X @ w.detach() - y)
    opt.step()
    S = opt.state[w]["S"]
    eig = torch.linalg.eigvalsh(X.T @ torch.diag(S) @ X)
    assert float(eig[-1]) <= 1 + 1e-12 and float(eig[-1]) > 0.05  # Xᵀ S X ⪯ I, and not trivially 0
    assert float(eig[0]) > -1e-12
