"""Array backends: the only module of refimpl that knows which libraries exist.

Every op takes its array namespace from its inputs through the array API
standard (``array_api_compat``): NumPy in, NumPy out; CuPy in, CuPy out.
Ops never call ``numpy.*`` on an input and never copy to host memory.

This module provides

* :func:`get_namespace` -- the namespace (and the common device) of the inputs;
* :func:`device` -- the device of one array (``x.device`` does not exist on
  NumPy < 2, so refimpl never reads that attribute);
* a *default backend* for functions that create arrays from nothing (the
  ``REFIMPL_BACKEND`` environment variable, :func:`set_backend`,
  :func:`use_backend`, :func:`get_backend`);
* :func:`available_backends` and :func:`backend_namespace` for the
  verification suite, which runs every op on every backend;
* :func:`to_numpy` and :func:`from_numpy`, for the verification side only.

A backend is named by a string: ``"numpy"``, ``"cupy"``, ``"array_api_strict"``,
optionally followed by ``":DEVICE"`` (``"array_api_strict:device1"`` places
arrays on array-api-strict's second device, where any hidden conversion to
host memory raises, as it would on a GPU).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "Backend",
    "available_backends",
    "backend_namespace",
    "device",
    "from_numpy",
    "get_backend",
    "get_namespace",
    "set_backend",
    "to_numpy",
    "use_backend",
]

_KNOWN = ("numpy", "array_api_strict", "cupy")
_ENV_VAR = "REFIMPL_BACKEND"


@dataclass(frozen=True)
class Backend:
    """A resolved backend: its name, array namespace and device."""

    name: str
    xp: Any
    device: Any

    def __str__(self) -> str:
        return self.name


def device(x):
    """The device of array ``x``, for any array library (``"cpu"`` for NumPy arrays).

    The portable spelling of ``x.device``, an attribute that NumPy arrays only
    have from NumPy 2.0 on.
    """
    return array_api_compat.device(x)


def get_namespace(*arrays, **named):
    """Return ``(xp, device)`` shared by all array arguments.

    Arrays are given by position or, better, by their parameter names
    (``get_namespace(V=V, X=X)``): errors then name the arguments. ``None``
    arguments are skipped. Anything that is not an array is a
    :class:`TypeError` naming it; mixed namespaces or devices raise a
    :class:`TypeError` that names both arguments and what each is, instead of
    letting a library copy silently between host and device.
    """
    present = {f"argument {i}": a for i, a in enumerate(arrays) if a is not None}
    present.update({k: a for k, a in named.items() if a is not None})
    if not present:
        raise TypeError("get_namespace needs at least one array argument")
    spaces = {}
    for name, a in present.items():
        try:
            spaces[name] = array_api_compat.array_namespace(a)
        except TypeError:
            raise TypeError(f"{name} must be an array (NumPy, CuPy or another array-API "
                            f"library), got {type(a).__name__}") from None
    first = next(iter(present))
    for name, xp in spaces.items():
        if xp is not spaces[first]:
            raise TypeError(
                f"{first} and {name} come from different array libraries "
                f"({_kind(present[first])} and {_kind(present[name])}); convert them to one first"
            )
    devices = {name: array_api_compat.device(a) for name, a in present.items()}
    for name, dev in devices.items():
        if dev != devices[first]:
            raise TypeError(
                f"{first} and {name} live on different devices ({devices[first]!r} and {dev!r}); "
                "move them to one device first"
            )
    return spaces[first], devices[first]


def _kind(a) -> str:
    return f"{type(a).__module__}.{type(a).__name__}"


def _split(name: str) -> tuple[str, str | None]:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string such as 'numpy', got {type(name).__name__}")
    lib, _, device = name.partition(":")
    if lib not in _KNOWN:
        raise ValueError(f"unknown backend {name!r}; known libraries: {', '.join(_KNOWN)}")
    return lib, device or None


def backend_namespace(name: str) -> Backend:
    """Resolve a backend name to its namespace and device.

    Raises :class:`ValueError` for an unknown name or device and
    :class:`RuntimeError` when the library cannot be used on this machine.
    """
    lib, device_name = _split(name)
    if lib == "numpy":
        if device_name not in (None, "cpu"):
            raise ValueError(f"numpy has only the 'cpu' device, got {device_name!r}")
        return Backend(name, array_api_compat.array_namespace(np.empty(0)), "cpu")
    if lib == "array_api_strict":
        import array_api_strict as xp

        info = xp.__array_namespace_info__()
        if device_name is None:
            return Backend(name, xp, info.default_device())
        devices = info.devices()
        matches = [d for d in devices if repr(d) == f"array_api_strict.Device({device_name!r})"]
        if not matches:
            raise ValueError(f"array_api_strict has no device {device_name!r}; devices: {devices}")
        return Backend(name, xp, matches[0])
    if not _cupy_usable():
        raise RuntimeError("backend 'cupy' needs CuPy and a CUDA GPU, and none is usable here")
    import cupy

    xp = array_api_compat.array_namespace(cupy.empty(0))
    device = cupy.cuda.Device(int(device_name)) if device_name else cupy.cuda.Device()
    return Backend(name, xp, device)


def _cupy_usable() -> bool:
    try:
        cupy = importlib.import_module("cupy")
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDA driver errors: no usable GPU either way
        return False


def available_backends(*, devices: bool = False) -> list[str]:
    """Backends usable on this machine: numpy, array_api_strict, and cupy with a GPU.

    array_api_strict comes with the ``verify`` and ``test`` extras.

    With ``devices=True`` the list also holds ``"array_api_strict:device1"``,
    the second device that makes hidden host conversions fail.
    """
    names = ["numpy"]
    if importlib.util.find_spec("array_api_strict") is not None:
        names.append("array_api_strict")
        if devices:
            names.append("array_api_strict:device1")
    if _cupy_usable():
        names.append("cupy")
    return names


_default = [None]


def get_backend() -> Backend:
    """The default backend for functions that create arrays without array inputs.

    ``set_backend`` / ``use_backend`` take precedence over the ``REFIMPL_BACKEND``
    environment variable, which takes precedence over ``"numpy"``.
    """
    return backend_namespace(_default[0] or os.environ.get(_ENV_VAR) or "numpy")


def set_backend(name: str | None) -> None:
    """Set the default backend (``None`` restores the environment's or NumPy)."""
    if name is not None:
        backend_namespace(name)  # fail now, not at the next array creation
    _default[0] = name


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager that sets the default backend and restores it on exit."""
    previous = _default[0]
    set_backend(name)
    try:
        yield get_backend()
    finally:
        _default[0] = previous


def from_numpy(x, backend: str | Backend, dtype=None):
    """Copy a NumPy array onto ``backend`` (verification side only)."""
    be = backend if isinstance(backend, Backend) else backend_namespace(backend)
    x = np.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if be.name.startswith("cupy"):
        import cupy

        with be.device:
            return cupy.asarray(x)
    if be.name.startswith("array_api_strict"):
        host = be.xp.asarray(x)
        return host.to_device(be.device)
    return x


def to_numpy(x) -> np.ndarray:
    """Copy any supported array to a NumPy array (verification side only).

    Ops never call this: it is the one sanctioned host transfer, used to
    compare results with SciPy ground truth.
    """
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    xp = array_api_compat.array_namespace(x)
    if getattr(xp, "__name__", "") == "array_api_strict":
        return np.asarray(x.to_device(xp.__array_namespace_info__().default_device()))
    return np.asarray(x)
