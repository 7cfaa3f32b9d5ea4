"""Validation at the API boundary: one clear error naming the argument and its value.

Every public function checks its arguments with these helpers before any work. A value of the
wrong kind raises :class:`ArgumentTypeError`, which is both a ``TypeError`` and a ``ValueError``
(so ``except ValueError`` keeps catching every bad argument); a value of the right kind out of
range raises ``ValueError``. Messages name the argument and show the value.

Memory budget
-------------
:func:`check_memory` refuses a size whose largest array would exceed the memory budget, before
anything is allocated, so that ``random_target(dim=10**9)`` or ``fit(width=10**8)`` is one clear
error instead of a request for hundreds of GB. The budget, in bytes, is the first of

1. :data:`MEMORY_BUDGET` (set ``overtensor._checks.MEMORY_BUDGET = 2**33`` to allow 8 GiB);
2. the environment variable ``OVERTENSOR_MEMORY_BUDGET`` (bytes, or with a suffix
   ``K``/``M``/``G``/``T``, powers of 1024: ``OVERTENSOR_MEMORY_BUDGET=8G``);
3. the device's total memory (physical memory for the CPU, the GPU's memory for CUDA).

It bounds one array; a run holds a few of that size, so sizes near the budget may still fail.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: Memory budget in bytes for one array (``None``: see the module docstring).
MEMORY_BUDGET: int | None = None

#: Seeds of ``torch.Generator.manual_seed`` are unsigned 64-bit integers.
MAX_SEED = 2**64 - 1


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (also a ``ValueError``, like every other bad argument)."""


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    complex_like = (value.is_complex() if isinstance(value, torch.Tensor)
                    else isinstance(value, complex) or np.iscomplexobj(value))
    if isinstance(value, bool | str | bytes) or complex_like:
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (x < minimum or (strict and x == minimum)):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value!r}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return x


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        first = tensor[~torch.isfinite(tensor)].flatten()[0].item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s) (e.g. {first})")


def _describe(value: Any) -> str:
    """A short description of an array-like for error messages (never its whole contents)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else f"{type(value).__name__} {text[:60]}..."


def floating_dtype_of(value: Any) -> torch.dtype | None:
    """The dtype an array-like brings with it: that of a floating tensor or NumPy array, float64
    for Python floats, ``None`` for integers and booleans (of any origin), which have no
    floating dtype of their own and take the one of their company (or float64)."""
    if isinstance(value, torch.Tensor):
        return value.dtype if value.is_floating_point() else None
    try:
        arr = np.asarray(value)
    except Exception:  # anything unconvertible is reported by as_tensor
        return None
    if arr.dtype.kind == "f":
        return torch.from_numpy(np.zeros(0, dtype=arr.dtype)).dtype
    return None


def as_tensor(name: str, value: Any, *, dtype=None, device=None) -> torch.Tensor:
    """Convert array-likes to a real floating tensor, keeping a tensor's device and dtype by default.

    Integers and booleans -- Python, NumPy or torch alike -- become float64 (the library's CPU
    default), so ``[1, 2]``, ``np.array([1, 2])`` and ``torch.tensor([1, 2])`` give the same tensor;
    Python floats give float64 too. Floating tensors and NumPy arrays keep their dtype.

    Raises
    ------
    ArgumentTypeError
        For complex values (their imaginary part would be dropped silently), strings and other
        non-numeric input.
    ValueError
        For NaN or infinite entries.
    """
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists, objects that refuse conversion
            raise ArgumentTypeError(
                f"{name} must be an array of real numbers, got {_describe(value)}") from exc
        if arr.dtype.kind == "c":
            raise ArgumentTypeError(
                f"{name} must be real, got complex values ({_describe(value)}); pass the real "
                "part explicitly if that is what you mean")
        if arr.dtype.kind not in "biuf":
            raise ArgumentTypeError(
                f"{name} must be an array of real numbers, got {_describe(value)}")
        t = torch.as_tensor(arr if arr.dtype.kind == "f" else arr.astype(np.float64))
    if t.is_complex():
        raise ArgumentTypeError(
            f"{name} must be real, got complex values ({_describe(value)}); pass the real part "
            "explicitly if that is what you mean")
    if not t.is_floating_point():
        t = t.to(torch.float64 if dtype is None else dtype)
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    check_finite(name, t)
    return t


def check_rows(name: str, value: Any, dim: int | None = None) -> torch.Tensor:
    """A real, finite ``(m, dim)`` tensor of rows (``m >= 1``), e.g. an initialization ``W0``.

    Only tensors are accepted (``TypeError`` otherwise); integer tensors become float64.
    """
    want = f"(m, {dim})" if dim is not None else "(m, d)"
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a tensor of shape {want}, got {_describe(value)}")
    if value.ndim != 2 or value.shape[0] < 1 or (dim is not None and value.shape[1] != dim):
        extra = f" (the target's dimension is {dim})" if dim is not None else ""
        raise ValueError(f"{name} must be a tensor of shape {want} with m >= 1{extra}, got shape "
                         f"{tuple(value.shape)}")
    return as_tensor(name, value)


def check_covariance(name: str, S: torch.Tensor, dim: int) -> torch.Tensor:
    """A covariance: a ``(dim,)`` vector of variances (a diagonal) ``>= 0``, or a symmetric
    positive semi-definite ``(dim, dim)`` matrix (eigenvalues ``>= -1e-10·max|eigenvalue|``,
    rounding). A negative variance makes risks negative (``null_risk() = -3``).

    Raises
    ------
    ValueError
        Naming ``name``, the shape, or the offending entry or eigenvalue.
    """
    if tuple(S.shape) not in ((dim,), (dim, dim)):
        raise ValueError(f"{name} must have shape ({dim},) or ({dim}, {dim}), got {tuple(S.shape)}")
    if S.ndim == 1:
        if (S < 0).any():
            i = int(torch.nonzero(S < 0)[0])
            raise ValueError(f"{name} must hold variances >= 0, got {name}[{i}] = {float(S[i])!r}")
        return S
    S64 = S.to(torch.float64)
    scale = float(S64.abs().max()) if S64.numel() else 0.0
    if float((S64 - S64.T).abs().max()) > 1e-10 * max(scale, 1e-300):
        raise ValueError(f"{name} must be symmetric, got a matrix that differs from its transpose")
    low = float(torch.linalg.eigvalsh(S64).min())
    if low < -1e-10 * scale:
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue {low:.3g}")
    return S


def check_positive_entries(name: str, value: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """A vector of ``dim`` entries, all ``> 0`` (e.g. a diagonal preconditioner)."""
    if value.ndim != 1 or (dim is not None and value.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(p,)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")
    if (value <= 0).any():
        i = int(torch.nonzero(value <= 0)[0])
        raise ValueError(f"{name} must hold entries > 0, got {name}[{i}] = {float(value[i])!r}")
    return value


def check_mixture(means: torch.Tensor, weights: torch.Tensor) -> None:
    """Means ``(k, d)`` with ``k, d >= 1`` and weights ``(k,)``: non-negative, summing to 1
    (within ``1e-6``), one per mean.

    Raises
    ------
    ValueError
        Naming ``means`` or ``weights`` and what is wrong.
    """
    if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
        raise ValueError(f"means must have shape (k, d) with k, d >= 1, got {tuple(means.shape)}")
    if weights.shape != (means.shape[0],):
        raise ValueError(f"weights must have shape ({means.shape[0]},), one per row of means, "
                         f"got {tuple(weights.shape)}")
    if (weights < 0).any():
        i = int(torch.nonzero(weights < 0)[0])
        raise ValueError(f"weights must be >= 0, got weights[{i}] = {float(weights[i])!r}")
    total = float(weights.sum())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got sum {total!r}")
    check_magnitude("means", means, 3, "their third-order products")


def check_stopping(max_steps: Any = None, tol: Any = None, final_steps: Any = None
                   ) -> tuple[int | None, float | None, int | None]:
    """The stopping arguments shared by every fitting door (``fit``, ``fit_compressed``,
    ``fit_batched``...): ``max_steps >= 1``, ``tol`` a finite number ``>= 0``,
    ``final_steps >= 0``; ``None`` is passed through (the door's default applies). NumPy
    integers and floats are accepted like Python ones.

    Raises
    ------
    ValueError
        Naming the argument and its value (``tol=nan``, ``tol=-1``, ``max_steps=0``).
    """
    return (None if max_steps is None else check_int("max_steps", max_steps, 1),
            None if tol is None else check_float("tol", tol, minimum=0.0),
            None if final_steps is None else check_int("final_steps", final_steps, 0))


def check_magnitude(name: str, data: torch.Tensor, power: int, what: str,
                    dtype: torch.dtype = torch.float64,
                    advice: str = "rescale the data by a constant") -> None:
    """Refuse data whose ``power``-th powers leave ``dtype``'s normal range (issue 23, item 1).

    Moment methods form products of ``power`` entries (a third moment: ``x_i x_j x_k``); with
    entries ``1e110`` these are ``1e330``, beyond float64, and the estimate becomes ``inf``/NaN
    or a raw ``LinAlgError`` later. Checked here, before any work, from ``max |x|`` alone (plus
    ``log2 d`` for the sums over a row's ``d`` entries): the largest product must be finite and
    (for nonzero data) a normal number.

    Raises
    ------
    ValueError
        ``"{name}: {what} reach about 1e..., ..."`` naming the largest ``|entry|``.
    """
    if data.numel() == 0:
        return
    amax = float(data.detach().abs().max())
    if amax == 0.0 or not math.isfinite(amax):
        return  # zeros are representable; non-finite entries are check_finite's to report
    fi = torch.finfo(dtype)
    width = data.shape[-1] if data.ndim else 1
    log2 = power * math.log2(amax)
    if log2 + math.log2(max(width, 1)) < math.log2(fi.max) and log2 >= math.log2(fi.tiny):
        return
    side = (f"beyond the largest {dtype} number {fi.max:.3g}" if log2 > 0 else
            f"below the smallest normal {dtype} number {fi.tiny:.3g}")
    raise ValueError(f"{name}: {what} reach about 1e{round(log2 * math.log10(2))} (largest "
                     f"|entry| {amax:.3g}), {side}; {advice}")


def check_callable(name: str, value: Any, *, optional: bool = True) -> Callable | None:
    """``value`` itself if it is callable (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if not callable(value):
        raise ArgumentTypeError(f"{name} must be callable{' or None' if optional else ''}, "
                                f"got {value!r}")
    return value


def check_callables(name: str, value: Any) -> list[Callable]:
    """A sequence of callables (e.g. ``recorders``), each checked, as a list."""
    if callable(value) or isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise ArgumentTypeError(f"{name} must be a sequence of callables, got {value!r}")
    items = list(value)
    for i, fn in enumerate(items):
        check_callable(f"{name}[{i}]", fn, optional=False)
    return items


_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _total_memory(device: torch.device) -> int:
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX systems
        return 16 * 2**30


def memory_budget(device: Any = None) -> int:
    """The memory budget in bytes (module docstring): ``MEMORY_BUDGET``, else
    ``$OVERTENSOR_MEMORY_BUDGET``, else the device's total memory."""
    if MEMORY_BUDGET is not None:
        return int(MEMORY_BUDGET)
    env = os.environ.get("OVERTENSOR_MEMORY_BUDGET", "").strip().upper().removesuffix("B")
    if env:
        unit = env[-1] if env[-1] in _SUFFIXES else ""
        try:
            return int(float(env[: len(env) - len(unit)]) * _SUFFIXES[unit])
        except ValueError:
            raise ValueError("OVERTENSOR_MEMORY_BUDGET must be a number of bytes such as 8G, got "
                             f"{os.environ['OVERTENSOR_MEMORY_BUDGET']!r}") from None
    return _total_memory(torch.device("cpu") if device is None else torch.device(device))


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_memory(name: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype | None,
                 what: str, device: Any = None) -> None:
    """Refuse ``name=value`` if the array of ``shape`` and ``dtype`` it implies (described by
    ``what``) exceeds :func:`memory_budget`; nothing is allocated."""
    item = torch.empty((), dtype=dtype or torch.float64).element_size()
    n_bytes = math.prod(int(s) for s in shape) * item
    budget = memory_budget(device)
    if n_bytes > budget:
        raise ValueError(
            f"{name}={value!r} needs {what} of shape {tuple(int(s) for s in shape)} "
            f"({format_bytes(n_bytes)}), above the memory budget of {format_bytes(budget)}; "
            "lower it, or raise the budget with OVERTENSOR_MEMORY_BUDGET if the machine has room")


def resolve_device(device: Any) -> torch.device:
    """Parse ``device`` and check it exists here, with a clear error otherwise."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, str | torch.device):
        raise ArgumentTypeError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (overtensor runs on CPUs "
                         f"and CUDA GPUs only), got {device!r}")
    return dev


_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: Any, device: torch.device | None = None) -> torch.dtype:
    """``None`` means float64 on the CPU and float32 on accelerators."""
    if dtype is None:
        return torch.float64 if device is None or device.type == "cpu" else torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype!r}")
        return dtype
    key = str(dtype).replace("torch.", "")
    if key not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    return _DTYPES[key]


def make_generator(random_state: Any, device: torch.device | str = "cpu") -> torch.Generator:
    """An explicit generator from a seed, or the generator itself when one is given.

    ``None`` draws a fresh seed from the operating system (non-reproducible, by request).
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    gen = torch.Generator(device=device)
    if random_state is None:
        gen.seed()
        return gen
    if isinstance(random_state, bool) or not hasattr(random_state, "__index__"):
        raise ArgumentTypeError(
            f"random_state must be an int, a torch.Generator or None, got {random_state!r}")
    seed = int(random_state)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"random_state must be in [0, 2**64 - 1], got {random_state!r}")
    gen.manual_seed(seed)
    return gen


def estimator_generator(random_state: Any) -> torch.Generator:
    """:func:`make_generator` for the scikit-learn estimators, which also take scikit-learn's
    NumPy random states: a NumPy ``Generator`` or ``RandomState`` seeds the torch generator with
    one 63-bit draw from it (so the result is a function of its state, and it advances as it would
    for a NumPy-based estimator). The functional API (``fit``) keeps refusing NumPy generators."""
    if isinstance(random_state, np.random.Generator):
        return torch.Generator().manual_seed(int(random_state.integers(0, 2**63 - 1)))
    if isinstance(random_state, np.random.RandomState):
        return torch.Generator().manual_seed(int(random_state.randint(0, 2**62, dtype=np.int64)))
    return make_generator(random_state)
