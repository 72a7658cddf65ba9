"""Argument checks shared by every op: clear errors that name the argument."""

from __future__ import annotations

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
