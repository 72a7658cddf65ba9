"""Argument checks shared by every op: clear errors that name the argument."""

from __future__ import annotations

import math
import operator

from .backend import get_namespace

_FLOATING = ("float32", "float64")


def dtype_name(x) -> str:
    """The dtype of ``x`` as a plain string (``"float64"``), for any namespace."""
    # str(dtype) costs microseconds (NumPy formats it anew each time), and the ops
    # whose math is O(d) check every argument's dtype. The key starts with the type,
    # so that dtypes of two libraries are never compared with each other.
    key = (type(x.dtype), x.dtype)
    name = _NAMES.get(key)
    if name is None:
        name = _NAMES[key] = str(x.dtype).rsplit(".", 1)[-1]
    return name


_NAMES: dict = {}


def require_real_floating(name: str, x) -> None:
    """Raise TypeError unless ``x`` is a float32 or float64 array."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if dtype_name(x) not in _FLOATING:
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64), got {dtype_name(x)}"
        )


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


def _interval(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def require_number(name: str, value, low=None, high=None, *, low_open=False, high_open=False,
                   why="") -> float:
    """``value`` as a float: TypeError unless a finite real number (not a bool), ValueError
    outside the interval (ends open or closed); ``why`` explains the interval in the message."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if ((low is not None and (value <= low if low_open else value < low))
            or (high is not None and (value >= high if high_open else value > high))):
        reason = f" ({why})" if why else ""
        raise ValueError(f"{name} must be {_interval(low, high, low_open, high_open)}{reason}, "
                         f"got {value!r}")
    return float(value)


def require_integer(name: str, value, low=None, high=None) -> int:
    """``value`` as an int: TypeError unless a Python or NumPy integer (not a bool), ValueError
    outside ``[low, high]``."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or hasattr(value, "shape") and \
            getattr(value, "ndim", 0):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = operator.index(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {_interval(low, high, False, False)}, "
                         f"got {value!r}")
    return value


def require_choice(name: str, value, choices):
    """``value``: ValueError unless one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


_INTEGER = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def require_integer_array(name: str, x) -> None:
    """Raise TypeError unless ``x`` is an array of an integer dtype (codes, symbols, counts)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if dtype_name(x) not in _INTEGER:
        raise TypeError(f"{name} must have an integer dtype, got {dtype_name(x)}")


def require_bool_array(name: str, x) -> None:
    """Raise TypeError unless ``x`` is a boolean array (a mask)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if dtype_name(x) != "bool":
        raise TypeError(f"{name} must have dtype bool, got {dtype_name(x)}")
