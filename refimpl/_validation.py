"""Argument checks shared by every op: clear errors that name the argument."""

from __future__ import annotations

import math
import numbers

from .backend import get_namespace

_FLOATING = ("float32", "float64")


def dtype_name(x) -> str:
    """The dtype of ``x`` as a plain string (``"float64"``), for any namespace."""
    return str(x.dtype).rsplit(".", 1)[-1]


def require_real_floating(name: str, x) -> None:
    """Raise TypeError unless ``x`` is a float32 or float64 array."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if dtype_name(x) not in _FLOATING:
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64), got {dtype_name(x)}"
        )


def require_integer(name: str, x) -> None:
    """Raise TypeError unless ``x`` is an array of a (signed or unsigned) integer dtype."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an integer array, got {type(x).__name__}")
    if not dtype_name(x).startswith(("int", "uint")):
        raise TypeError(f"{name} must have an integer dtype, got {dtype_name(x)}")


def require_boolean(name: str, x) -> None:
    """Raise TypeError unless ``x`` is an array of boolean dtype."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be a boolean array, got {type(x).__name__}")
    if dtype_name(x) != "bool":
        raise TypeError(f"{name} must have a boolean dtype, got {dtype_name(x)}")


def require_same_dtype(**arrays) -> None:
    """Raise TypeError when the named arrays differ in dtype (no silent promotion)."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {k: dtype_name(v) for k, v in present.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{k}: {d}" for k, d in dtypes.items())
        raise TypeError(f"arguments must share one dtype, got {listing}")


def require_ndim(name: str, x, at_least: int, meaning: str) -> None:
    """Raise ValueError unless ``x.ndim >= at_least``."""
    if x.ndim < at_least:
        raise ValueError(f"{name} must have shape {meaning}, got shape {tuple(x.shape)}")


def require_finite(name: str, x) -> None:
    """Raise ValueError when ``x`` holds NaN or infinity (as SciPy's check_finite)."""
    xp, _ = get_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} must not contain infs or NaNs (pass check_finite=False to skip)")


def broadcast_batch(**shapes) -> tuple:
    """Broadcast leading batch shapes; ValueError naming the arguments on mismatch."""
    result: list[int] = []
    for name, shape in shapes.items():
        for i, size in enumerate(reversed(shape)):
            if i == len(result):
                result.insert(0, size)
                continue
            current = result[-1 - i]
            if current == 1:
                result[-1 - i] = size
            elif size not in (1, current):
                listing = ", ".join(f"{k}: {tuple(v)}" for k, v in shapes.items())
                raise ValueError(f"batch shapes do not broadcast ({listing})")
    return tuple(result)


def sum_to_shape(xp, x, shape: tuple):
    """Sum ``x`` over the axes that broadcasting added to reach ``shape``."""
    extra = x.ndim - len(shape)
    if extra:
        x = xp.sum(x, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    if axes:
        x = xp.sum(x, axis=axes, keepdims=True)
    return x


def check_integer(name, value, low):
    """``value`` as an int of at least ``low``; TypeError or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return int(value)


def check_number(name, value, low=None, strict=True):
    """``value`` as a finite float, above ``low`` (at least ``low`` unless ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


def check_choice(name, value, choices):
    """``value`` if it is one of ``choices``; ValueError naming ``name`` and listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
