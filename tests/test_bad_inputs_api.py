"""The API half of the bad-input battery (issue 9, items 5 and 6).

Every case is one call with one bad argument. It must raise the documented exception type
(``TypeError`` for a wrong kind of value -- :class:`overtensor._checks.ArgumentTypeError`, which is
also a ``ValueError`` -- and ``ValueError`` for a value out of range), with a message that names
the argument and shows the value, and it must do so *before any work*: the targets below refuse
every numerical operation, so a check that came after the first ``sq_norm``/``contract``/``to``
would fail the test with "work started" instead.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import overtensor as ot
from overtensor import _checks
from overtensor.tensors.batched import fit_batched
from overtensor.tensors.config import split_options


class NoWorkTarget(ot.CPTarget):
    """A real order-3 CP target (d = 5, r = 2) whose numerical methods fail the test."""

    def _work(self, *args, **kwargs):
        raise AssertionError("work started before the arguments were validated")

    sq_norm = values = contract = to = float64 = _work


def _target(order: int = 3, dim: int = 5, rank: int = 2) -> NoWorkTarget:
    gen = torch.Generator().manual_seed(0)
    U = torch.randn(rank, dim, generator=gen, dtype=torch.float64)
    return NoWorkTarget(torch.ones(rank, dtype=torch.float64), U / U.norm(dim=-1, keepdim=True),
                        order)


def _cp(weights=(1.0, 0.5), dim=5, order=3) -> ot.SymmetricCP:
    U = torch.eye(dim, dtype=torch.float64)[: len(weights)]
    return ot.SymmetricCP(torch.tensor(weights, dtype=torch.float64), U, order)


def _tensorly_unequal(dim=5, rank=2):
    gen = torch.Generator().manual_seed(1)
    A, B, C = (torch.randn(dim, rank, generator=gen, dtype=torch.float64) for _ in range(3))
    return torch.ones(rank, dtype=torch.float64), [A, B, C]


def _rows(m=4, dim=5, fill=None, dtype=torch.float64):
    W = torch.randn(m, dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    if fill is not None:
        W[1, 2] = fill
    return W.to(dtype)


@pytest.fixture(autouse=True)
def _small_memory_budget(monkeypatch):
    # One GiB per array, whatever the machine: the memory cases do not depend on its RAM.
    monkeypatch.setattr(_checks, "MEMORY_BUDGET", 2**30)


def _fit(**kwargs):
    return lambda: ot.fit(_target(), **split_options({"width": 4, **kwargs}))


# (id, call, exception type, argument named in the message, value shown in the message)
CASES = [
    # fit: options a method or regime ignores
    ("power-method+optimizer", _fit(method="power-method", optimizer="adam"), ValueError,
     "optimizer", "'adam'"),
    ("power-method+lr", _fit(method="power-method", lr=0.1), ValueError, "lr", "0.1"),
    ("power-method+init_scale", _fit(method="power-method", init_scale=0.01), ValueError,
     "init_scale", "0.01"),
    ("power-method+weight_decay", _fit(method="power-method", weight_decay=0.1), ValueError,
     "weight_decay", "0.1"),
    ("power-method+callback", _fit(method="power-method", callback=print), ValueError,
     "callback", "print"),
    ("power-method+engine", _fit(method="power-method", engine="autograd"), ValueError,
     "engine", "'autograd'"),
    ("lazy+final_steps", _fit(regime="lazy", final_steps=5), ValueError, "final_steps", "5"),
    ("lazy+merge_cos", _fit(regime="lazy", merge_cos=0.5), ValueError, "merge_cos", "0.5"),
    ("full+alpha", _fit(alpha=2.0), ValueError, "alpha", "2.0"),
    # fit: order, device, seeds, optimizers, callbacks, recorders, sizes
    ("order-mismatch", lambda: ot.as_target(_target(), order=4), ValueError, "order", "4"),
    ("device-mps", _fit(device="mps"), ValueError, "device", "'mps'"),
    ("device-int", _fit(device=3), TypeError, "device", "3"),
    ("seed-negative", _fit(random_state=-1), ValueError, "random_state", "-1"),
    ("seed-2**64", _fit(random_state=2**64), ValueError, "random_state", str(2**64)),
    ("seed-float", _fit(random_state=1.5), TypeError, "random_state", "1.5"),
    ("seed-str", _fit(random_state="7"), TypeError, "random_state", "'7'"),
    ("seed-numpy-generator", _fit(random_state=np.random.default_rng(0)), TypeError,
     "random_state", "Generator"),
    ("lazy-unknown-optimizer", _fit(regime="lazy", optimizer="sgdx"), ValueError, "optimizer",
     "'sgdx'"),
    ("optimizer-int", _fit(optimizer=42), TypeError, "optimizer", "42"),
    ("callback-int", _fit(callback=3), TypeError, "callback", "3"),
    ("recorders-callable", _fit(recorders=print), TypeError, "recorders", "print"),
    ("recorders-item", _fit(recorders=[len, "norm"]), TypeError, "recorders[1]", "'norm'"),
    ("width-float", _fit(width=2.5), TypeError, "width", "2.5"),
    ("tol-bool", _fit(tol=True), TypeError, "tol", "True"),
    ("tol-complex", _fit(tol=1e-3 + 1j), TypeError, "tol", "1j"),
    ("regime-unknown", _fit(regime="ntk"), ValueError, "regime", "'ntk'"),
    ("width-1e8", _fit(width=10**8), ValueError, "width", "100000000"),
    ("exact-rank-width", _fit(method="exact-rank", width=3), ValueError, "width", "3"),
    # targets
    ("tensorly-unequal-factors", lambda: ot.as_target(_tensorly_unequal()), ValueError,
     "factors[1]", "differs"),
    ("complex-dense", lambda: ot.as_target(np.zeros((3, 3, 3), dtype=complex)), TypeError,
     "target", "complex"),
    ("complex-torch-weights",
     lambda: ot.CPTarget(torch.ones(2, dtype=torch.complex128), torch.eye(2, 5), 3), TypeError,
     "weights", "complex"),
    ("string-weights", lambda: ot.CPTarget(["a", "b"], torch.eye(2, 5), 3), TypeError,
     "weights", "'a'"),
    ("nan-factors", lambda: ot.CPTarget([1.0], [[float("nan")] * 5], 3), ValueError, "factors",
     "nan"),
    ("as_target-order-1", lambda: ot.as_target(_target(), order=1), ValueError, "order", "1"),
    ("random_target-dim-1e9", lambda: ot.random_target(3, 10**9, 5), ValueError, "dim",
     "1000000000"),
    ("random_target-rank-1e10", lambda: ot.random_target(3, 10, 10**10), ValueError, "rank",
     "10000000000"),
    ("random_target-complex-weights", lambda: ot.random_target(3, 5, 2, weights=[1, 2 + 1j]),
     TypeError, "weights", "complex"),
    ("random_target-seed", lambda: ot.random_target(3, 5, 2, random_state=-5), ValueError,
     "random_state", "-5"),
    ("random_target-mps", lambda: ot.random_target(3, 5, 2, device="mps"), ValueError, "device",
     "'mps'"),
    ("random_target-numpy-ratio", lambda: ot.random_target(3, 5, 2, weights=np.float64(1.5)),
     ValueError, "weights", "1.5"),
    # lazy training
    ("lazy_error-W0-nan", lambda: ot.lazy_error(_target(), _rows(fill=float("nan"))), ValueError,
     "W0", "nan"),
    ("lazy_error-W0-dim", lambda: ot.lazy_error(_target(), _rows(dim=4)), ValueError, "W0",
     "(4, 4)"),
    ("lazy_error-W0-complex", lambda: ot.lazy_error(_target(), _rows(dtype=torch.complex128)),
     TypeError, "W0", "complex"),
    ("lazy_least_squares-W0-list", lambda: ot.lazy_least_squares(_target(), [[1.0] * 5]),
     TypeError, "W0", "[[1.0"),
    ("lazy_least_squares-rcond", lambda: ot.lazy_least_squares(_target(), _rows(), rcond=-1.0),
     ValueError, "rcond", "-1.0"),
    ("lazy_least_squares-W0-huge",
     lambda: ot.lazy_least_squares(_target(), torch.ones(1, 5, dtype=torch.float64)
                                   .expand(10**6, 5)),
     ValueError, "W0", "(1000000, 5)"),
    ("random_features-W0-inf",
     lambda: ot.random_features_least_squares(_target(), _rows(fill=float("inf"))), ValueError,
     "W0", "inf"),
    ("random_features-W0-empty",
     lambda: ot.random_features_least_squares(_target(), torch.zeros(0, 5)), ValueError, "W0",
     "(0, 5)"),
    # metrics
    ("cp_relative_error-nan", lambda: ot.cp_relative_error(_cp((1.0, float("nan"))), _target()),
     ValueError, "cp.weights", "nan"),
    ("cp_relative_error-dim", lambda: ot.cp_relative_error(_cp(dim=4), _target()), ValueError,
     "cp", "4"),
    ("cp_relative_error-order", lambda: ot.cp_relative_error(_cp(order=4), _target()),
     ValueError, "cp", "4"),
    ("cp_relative_error-type", lambda: ot.cp_relative_error("1.0*u^3", _target()), TypeError,
     "cp", "str"),
    ("cp_relative_error-tensorly-unequal",
     lambda: ot.cp_relative_error(_tensorly_unequal(), _target()), ValueError, "factors[1]",
     "differs"),
    ("recovery-threshold", lambda: ot.recovery(_cp(), _target(), threshold=1.5), ValueError,
     "threshold", "1.5"),
    ("recovery-dim", lambda: ot.recovery(_cp(dim=6), _target()), ValueError, "cp", "6"),
    ("laziness-shapes", lambda: ot.laziness(_rows(), _rows(m=3)), ValueError, "W0", "(3, 5)"),
    # batched fits
    ("fit_batched-callback", lambda: fit_batched([_target()] * 2, 4, random_states=[0, 1],
                                                 callback="stop"), TypeError, "callback",
     "'stop'"),
    ("fit_batched-width-1e8", lambda: fit_batched([_target()] * 2, 10**8, random_states=[0, 1]),
     ValueError, "width", "100000000"),
    ("fit_batched-seed", lambda: fit_batched([_target()] * 2, 4, random_states=[0, -1]),
     ValueError, "random_state", "-1"),
]


@pytest.mark.parametrize(("call", "exc", "name", "shown"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_argument_is_one_clear_error_before_any_work(call, exc, name, shown):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert name in message, message
    assert shown in message, message
    assert "\n" not in message  # one line
    assert isinstance(info.value, ValueError)  # every bad argument is also a ValueError


def test_the_battery_has_at_least_35_cases():
    assert len(CASES) >= 35


# Inputs that are right and were mishandled ------------------------------------------------------

U3 = [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]


@pytest.mark.parametrize("weights", [[1, 2], np.array([1, 2]), torch.tensor([1, 2]),
                                     [1.0, 2.0], np.array([1.0, 2.0]), (np.int64(1), 2)],
                         ids=["python-int", "numpy-int", "torch-int", "python-float",
                              "numpy-float", "numpy-scalar"])
def test_integer_weights_of_any_origin_give_the_dtype_of_python_numbers(weights):
    target = ot.CPTarget(weights, U3, 3)
    assert target.dtype == torch.float64
    torch.testing.assert_close(target.weights, torch.tensor([1.0, 2.0], dtype=torch.float64))
    # With float32 factors, integers (of any origin) bring no dtype of their own.
    single = ot.CPTarget(torch.tensor([1, 2]), torch.tensor(U3, dtype=torch.float32), 3)
    assert single.dtype == torch.float32
    assert ot.CPTarget(np.array([1, 2]), torch.tensor(U3, dtype=torch.float32), 3).dtype == \
        torch.float32


def test_integer_rows_and_numpy_scalars_give_the_same_numbers_as_floats():
    target = ot.random_target(3, 4, 2, random_state=0)
    W0 = torch.tensor([[1, 0, 2, 0], [0, 1, 0, 1], [1, 1, 1, 0]])
    assert ot.lazy_error(target, W0) == ot.lazy_error(target, W0.double())
    ref = ot.random_target(3, 4, 2, weights=1, random_state=0)
    for w in (np.int64(1), torch.tensor(1)):
        torch.testing.assert_close(ot.random_target(3, 4, 2, weights=w, random_state=0).weights,
                                   ref.weights)
    half = ot.random_target(3, 4, 2, weights=0.5, random_state=0).weights
    torch.testing.assert_close(ot.random_target(3, 4, 2, weights=torch.tensor(0.5),
                                                random_state=0).weights, half)


def test_exact_rank_takes_the_width_passed_when_the_rank_is_unknown():
    cp = ot.random_target(3, 5, 2, components="orthonormal", random_state=0).truth
    dense = ot.DenseTarget(cp.to_dense())
    assert dense.truth is None
    result = ot.fit(dense, width=2, method="exact-rank", random_state=0,
                    schedule=ot.GradientSchedule(max_steps=50))
    assert result.width == 2
    with pytest.raises(ValueError, match="width"):
        ot.fit(dense, method="exact-rank")


def test_tensorly_pairs_with_equal_factors_are_accepted_by_the_metrics():
    target = ot.random_target(3, 5, 2, random_state=0)
    weights, factors = target.truth
    assert ot.cp_relative_error((weights, factors), target) == \
        ot.cp_relative_error(target.truth, target)
    assert ot.recovery((weights, factors), target).all_recovered


def test_options_a_method_uses_or_leaves_at_their_default_are_accepted():
    target = ot.random_target(3, 6, 2, components="orthonormal", random_state=0)
    # Groups whose fields are all at their defaults are not "options given".
    result = ot.fit(target, method="power-method", recorders=[], alpha=1.0, random_state=0,
                    schedule=ot.GradientSchedule(max_steps=20000, lr=None, optimizer=None),
                    extraction=ot.Extraction(), runtime=ot.Runtime(progress=False))
    assert result.method == "power-method"
    # max_steps counts gradient steps, which the power method does not take: refused, not ignored.
    with pytest.raises(ValueError, match=r"does not use GradientSchedule\(max_steps=5000\)"):
        ot.fit(target, method="power-method", schedule=ot.GradientSchedule(max_steps=5000))


def test_memory_budget_comes_from_the_setting_the_environment_or_the_machine(monkeypatch):
    monkeypatch.setattr(_checks, "MEMORY_BUDGET", None)
    monkeypatch.delenv("OVERTENSOR_MEMORY_BUDGET", raising=False)
    assert _checks.memory_budget() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setenv("OVERTENSOR_MEMORY_BUDGET", "4K")
    assert _checks.memory_budget() == 4096
    # Four (dim, rank) float64 arrays are alive at once (issue 23): 4 x 25 x 5 x 8 = 4000 bytes.
    ot.random_target(3, 25, 5)
    with pytest.raises(ValueError, match=r"dim=26 .*above the memory budget of 4 KiB"):
        ot.random_target(3, 26, 5)  # 4160 bytes
    monkeypatch.setenv("OVERTENSOR_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="OVERTENSOR_MEMORY_BUDGET"):
        _checks.memory_budget()
    monkeypatch.setattr(_checks, "MEMORY_BUDGET", 10**6)
    assert _checks.memory_budget() == 10**6


def test_sizes_beyond_any_machine_are_refused_with_the_default_budget(monkeypatch):
    monkeypatch.setattr(_checks, "MEMORY_BUDGET", None)
    monkeypatch.delenv("OVERTENSOR_MEMORY_BUDGET", raising=False)
    with pytest.raises(ValueError, match="dim=1000000000000 needs"):
        ot.random_target(3, 10**12, 5)
    with pytest.raises(ValueError, match="width=100000000 needs"):
        ot.fit(_target(), width=10**8)
