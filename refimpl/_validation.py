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


def all_finite(xp, x) -> bool:
    """Whether ``x`` holds no NaN and no infinity (element-wise: a sum would be cheaper, but
    it overflows, with a floating-point warning or error, on finite data near the float
    maximum)."""
    return bool(xp.all(xp.isfinite(x)))


def require_finite(name: str, x, keyword: bool = True) -> None:
    """Raise ValueError when ``x`` holds NaN or infinity (as SciPy's check_finite); the message
    says how to skip the check when the caller has that ``keyword``."""
    if not all_finite(get_namespace(**{name: x})[0], x):
        hint = " (pass check_finite=False to skip)" if keyword else ""
        raise ValueError(f"{name} must not contain infs or NaNs{hint}")


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


# -- several arrays of one call, checked together; norms that neither overflow nor underflow --


def require_arrays(**named):
    """``(xp, device)`` of the named arguments (``None`` skipped), each a real floating array of
    one namespace, device and dtype; every error names the argument it is about."""
    present = {name: arr for name, arr in named.items() if arr is not None}
    for name, arr in present.items():
        require_real_floating(name, arr)
    xp, dev = get_namespace(**present)
    require_same_dtype(**present)
    return xp, dev


def require_finite_arrays(check_finite=None, **named) -> None:
    """ValueError naming the first of ``named`` (arrays, or ``None`` to skip) that holds NaN
    or infinity.

    ``check_finite`` is the caller's SciPy-style keyword: ``False`` skips the
    check, ``True`` checks and the message says how to skip it; ``None`` (a
    function without the keyword) checks, and the message offers no keyword.
    """
    if check_finite is False:
        return
    for name, arr in named.items():
        if arr is not None:
            require_finite(name, arr, keyword=check_finite is not None)


def require_shape(name: str, x, expected: tuple, what: str = "the output's shape") -> None:
    """ValueError unless ``x.shape == expected`` (a cotangent has its output's shape)."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have {what} {tuple(expected)}, got {tuple(x.shape)}")


def power_of_two_scales(xp, x, axis=-1):
    r"""``2^floor(log2 max|x|)`` along ``axis`` (1 where ``x`` is all zero): one scale per slice,
    as :func:`power_of_two_scale` is one for the whole array.

    Dividing by it is exact (a power of two) and brings the largest entry
    into ``[1, 2)``: sums of squares of the quotients neither overflow nor
    underflow, whatever the scale of ``x`` (the idea of LAPACK's ``dlassq``).
    """
    big = xp.max(xp.abs(x), axis=axis)
    big = xp.where(big > 0, big, xp.ones_like(big))
    exponent = xp.floor(xp.log2(big))
    return xp.pow(xp.full_like(exponent, 2.0), exponent)


def scaled_norm(xp, x, axis=None):
    r"""The Euclidean norm ``sqrt(sum x^2)`` of real ``x`` over ``axis``, without overflow or
    underflow: ``m sqrt(sum (x / m)^2)`` with ``m = max|x|`` (as LAPACK's ``dnrm2``).

    Representable whenever the norm is; 0 for an all-zero ``x``.
    """
    if 0 in tuple(x.shape):  # nothing to scale (and max has no identity)
        return xp.sqrt(xp.sum(x * x, axis=axis))
    big = xp.max(xp.abs(x), axis=axis, keepdims=True)
    safe = xp.where(big > 0, big, xp.ones_like(big))
    ratio = x / safe
    norm = xp.sqrt(xp.sum(ratio * ratio, axis=axis, keepdims=True)) * big
    return xp.squeeze(norm, axis=axis) if axis is not None else xp.reshape(norm, ())


def require_float_arrays(*, check_finite=True, **arrays):
    """``(xp, device)`` of the named floating inputs of one call, checked together.

    ``None`` entries are skipped. Each must be a float32 or float64 array
    (TypeError naming it), all from one array library on one device
    (TypeError naming both), of one dtype (no silent promotion), and with
    ``check_finite`` free of NaN and infinity (ValueError naming it).
    """
    xp, device = require_arrays(**arrays)
    require_finite_arrays(check_finite, **arrays)
    return xp, device


def require_output_cotangent(name: str, g, shape, *, check_finite=True, **like) -> None:
    """The cotangent ``g`` (argument ``name``) of an output of ``shape``, checked as an input.

    ``like`` names the primal(s) whose namespace, device and dtype ``g`` must
    share (``x=x``). ``g`` must have exactly the output's shape (no
    broadcasting: a cotangent is one value per output entry) and, with
    ``check_finite``, no NaN or infinity.
    """
    require_arrays(**like, **{name: g})
    require_shape(name, g, shape)
    require_finite_arrays(check_finite, **{name: g})


def power_of_two_scale(xp, x) -> float:
    """A power of two ``2^e`` with ``1/2 <= max|x| / 2^e < 1`` (1.0 for a zero or empty ``x``).

    Dividing by it is exact (no rounding in the normal range), and the scaled values' squares
    and products neither overflow nor underflow, as LAPACK's ``dnrm2`` scales before it squares:
    an op computes on ``x / scale`` and multiplies the scale back into a result that is
    representable. Divide by the scale: its reciprocal need not be representable in float32.
    """
    peak = float(xp.max(xp.abs(x))) if math.prod(x.shape) else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        return 1.0
    return math.ldexp(1.0, math.frexp(peak)[1])
