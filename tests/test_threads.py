"""Threads chosen for the problem, restored afterwards; ``seconds`` covering the whole fit."""

from __future__ import annotations

import pytest
import torch

import overtensor as ot
from overtensor.tensors.threads import SMALL_WORK, choose_threads, step_work, torch_threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_rule_one_thread_below_the_threshold_else_keep(monkeypatch):
    monkeypatch.delenv("OVERTENSOR_THREADS", raising=False)
    assert choose_threads(SMALL_WORK - 1) == 1
    assert choose_threads(SMALL_WORK) is None  # keep the current setting, never raise it
    assert choose_threads(None) is None  # unknown size: keep
    assert choose_threads(SMALL_WORK, threads=3) == 3
    assert choose_threads(10, threads="auto") == 1
    monkeypatch.setenv("OVERTENSOR_THREADS", "4")
    assert choose_threads(10) == 4
    assert choose_threads(10, threads=0) == 1  # the argument wins over the environment
    monkeypatch.setenv("OVERTENSOR_THREADS", "many")
    with pytest.raises(ValueError, match=r"OVERTENSOR_THREADS must be .* got 'many'"):
        choose_threads(10)
    with pytest.raises(ValueError, match=r"threads must be .* got -1"):
        choose_threads(10, threads=-1)


def test_step_work_follows_the_target_kind():
    cp = ot.random_target(order=3, dim=100, rank=10, random_state=0)
    assert step_work(cp, 50) == 50 * 100 * (50 + 10)
    moments = ot.MomentTarget(torch.randn(300, 20, dtype=torch.float64), order=3)
    assert step_work(moments, 8) == 8 * 20 * (8 + 300)
    dense = ot.DenseTarget(torch.zeros(6, 6, 6, dtype=torch.float64))
    assert step_work(dense, 4) == 4 * 6 * (4 + 36)
    assert step_work(torch.zeros(3, 3), 4) is None


def test_torch_threads_restores_the_previous_setting_even_on_error(two_threads):
    with pytest.raises(RuntimeError), torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == 2


def test_fit_runs_small_problems_on_one_thread_and_restores(two_threads, monkeypatch):
    monkeypatch.delenv("OVERTENSOR_THREADS", raising=False)
    seen = []
    target = ot.random_target(order=3, dim=10, rank=2, random_state=0)
    result = ot.fit(target, width=6, random_state=0,
                    callback=lambda rec, state: seen.append(torch.get_num_threads()),
                    runtime=ot.Runtime(engine="paper"))
    assert seen and set(seen) == {1}
    assert result.info["threads"] == 1
    assert torch.get_num_threads() == 2
    forced = ot.fit(target, width=6, random_state=0, runtime=ot.Runtime(threads=2, engine="paper"))
    assert forced.info["threads"] == 2
    # one thread or two: the same decisions (at most rounding apart)
    assert forced.steps == result.steps


def test_seconds_covers_training_extraction_and_polish():
    target = ot.random_target(order=3, dim=10, rank=2, random_state=0)
    # The paper's engine: the gradient method's parts.
    result = ot.fit(target, width=6, random_state=0, runtime=ot.Runtime(engine="paper"))
    parts = [result.info[k] for k in ("seconds_train", "seconds_extract", "seconds_polish")]
    assert result.info["polished"] and all(p >= 0 for p in parts)
    assert result.seconds >= sum(parts)
    summary = result.summary()
    assert summary["seconds"] == round(result.seconds, 4)
    assert summary["seconds_polish"] == result.info["seconds_polish"]
