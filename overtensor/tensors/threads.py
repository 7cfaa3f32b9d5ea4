"""Intra-op threads chosen for the problem: small fits run on one torch thread.

A fit is a long chain of small tensor operations. Below a few million multiply-adds per step, the
fixed cost of waking and synchronizing a thread pool at every operation exceeds what a second core
saves, and on a machine whose cores are busy with other processes it is far worse: every
operation waits for a thread that is not scheduled (the quick-start fit took 52–117 s with torch's
default thread count on a busy 2-core machine, 2–3 s with one thread; ``docs/performance.md``).

The rule (:func:`choose_threads`):

* ``OVERTENSOR_THREADS=N`` in the environment (or ``Runtime(threads=N)`` passed to :func:`overtensor.fit`)
  wins: ``N`` threads; ``0`` or ``auto`` means the rule below;
* otherwise the per-step work is estimated as ``w = m·d·(m + k)`` multiply-adds (the Gram matrix
  ``VVᵀ`` and the target's ``values``/``contract``), with ``k`` the target's rank (CP), number of
  samples ``n`` (moments) or ``d^{l−1}`` (dense array); for ``w < SMALL_WORK`` the fit runs on one
  thread, otherwise the current setting (``torch.get_num_threads()``) is kept — the rule never
  raises the thread count, so a process that chose one thread per core (the sweep runner's
  workers, ``OMP_NUM_THREADS=1``) keeps it.

The previous setting is restored when the fit returns (:func:`torch_threads`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

#: Per-step work (multiply-adds) below which a fit runs on one thread: about 10 ms of one core's
#: time per step, where the per-operation cost of a thread pool is no longer negligible.
SMALL_WORK = 2**26

ENV = "OVERTENSOR_THREADS"


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` intra-op torch threads (``None``: unchanged); restore afterwards.

    Yields the number of threads in effect.
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield before
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive int, got {n!r}")
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def step_work(target: Any, width: int | None) -> int | None:
    """Estimated multiply-adds of one gradient step, ``m·d·(m + k)`` (see the module docstring);
    ``None`` when the target's shape is not known without converting it."""
    from overtensor.tensors.targets import CPTarget, DenseTarget, MomentTarget, Target

    if not isinstance(target, Target):
        return None
    d = int(target.dim)
    if isinstance(target, CPTarget):
        k = int(target.weights.shape[-1]) if target.weights.ndim else 1
    elif isinstance(target, MomentTarget):
        k = target.n
    elif isinstance(target, DenseTarget):
        k = d ** (target.order - 1)
    else:
        k = None
    m = int(width) if width is not None else (k or d)
    return m * d * (m + (k if k is not None else m))


def choose_threads(work: int | None, threads: int | str | None = None) -> int | None:
    """The number of intra-op threads for a fit of ``work`` multiply-adds per step.

    ``threads`` (else ``$OVERTENSOR_THREADS``): a positive int forces it; ``None``, ``0`` or
    ``"auto"`` apply the rule of the module docstring. Returns ``None`` for "keep the current
    setting".

    Raises
    ------
    ValueError
        If ``threads`` (or the environment variable) is not a non-negative int or ``"auto"``.
    """
    source = "threads"
    if threads is None:
        threads, source = os.environ.get(ENV) or None, ENV
    if isinstance(threads, str):
        text = threads.strip().lower()
        if text == "auto":
            threads = 0
        else:
            try:
                threads = int(text)
            except ValueError:
                raise ValueError(f"{source} must be a non-negative int or 'auto', got {threads!r}") \
                    from None
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 0):
        raise ValueError(f"{source} must be a non-negative int or 'auto', got {threads!r}")
    if threads:
        return threads
    if work is not None and work < SMALL_WORK:
        return 1
    return None
