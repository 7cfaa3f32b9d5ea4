"""Validation at the API boundary: one clear ``ValueError`` naming the argument and its value."""

from __future__ import annotations

import math
from typing import Any

import torch


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
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
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
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
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def as_tensor(name: str, value: Any, *, dtype=None, device=None) -> torch.Tensor:
    """Convert array-likes to a floating tensor, keeping a tensor's device and dtype by default."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{name} must be an array of numbers, got {type(value).__name__}") from exc
        if not t.is_floating_point():
            t = t.to(torch.float64)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype() if dtype is None else dtype)
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    check_finite(name, t)
    return t


def resolve_device(device: Any) -> torch.device:
    """Parse ``device`` and check it exists here, with a clear error otherwise."""
    if device is None:
        return torch.device("cpu")
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
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
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
        raise ValueError(f"random_state must be an int, a torch.Generator or None, got {random_state!r}")
    seed = int(random_state)
    if seed < 0:
        raise ValueError(f"random_state must be >= 0, got {random_state!r}")
    gen.manual_seed(seed)
    return gen
