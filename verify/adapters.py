"""Moving check inputs into a candidate framework's arrays, and results back.

A candidate (see :func:`verify.check`) takes and returns its own arrays.
Its :class:`Adapter` has two conversions:

* ``from_numpy`` -- NumPy (already in the check's dtype) to the candidate's
  arrays. A callable, or a framework name: ``"numpy"`` (the default: NumPy
  arrays, which every framework can read zero-copy with ``from_dlpack``),
  ``"torch"`` / ``"torch:DEVICE"`` (through DLPack), ``"jax"`` / ``"jax:gpu"``
  (through DLPack), ``"cupy"`` / ``"cupy:N"`` (host to GPU copy), or a refimpl backend
  name such as ``"array_api_strict:device1"``;
* ``to_numpy`` -- back to NumPy. The default recognises PyTorch tensors
  (detached, copied to the host), JAX and CuPy arrays, array-api-strict and
  NumPy arrays, and uses ``numpy.from_dlpack`` for anything else.

Frameworks are imported only when named, never at import time of this module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import array_api_compat
import numpy as np

from refimpl.backend import Backend, backend_namespace
from refimpl.backend import from_numpy as backend_from_numpy
from refimpl.backend import to_numpy as backend_to_numpy

__all__ = ["FRAMEWORKS", "Adapter", "adapter", "default_to_numpy"]


@dataclass(frozen=True)
class Adapter:
    """A candidate framework's conversions, and a name for reports."""

    name: str
    from_numpy: Callable
    to_numpy: Callable

    def put(self, x: np.ndarray):
        """``from_numpy(x)``, refused when the conversion changed the dtype."""
        out = self.from_numpy(np.asarray(x, order="C"))  # ascontiguousarray makes 0-d arrays 1-d
        got = str(getattr(out, "dtype", "?")).rsplit(".", 1)[-1]
        if got != x.dtype.name:
            raise TypeError(
                f"from_numpy turned a {x.dtype.name} array into {got} ({self.name}); "
                "for JAX, enable float64 with jax.config.update('jax_enable_x64', True)"
            )
        return out

    def backend(self, dtype: str) -> Backend:
        """The namespace and device of this adapter's arrays (probed once)."""
        try:
            probe = self.put(np.zeros(1, dtype=dtype))
        except TypeError:
            raise
        except Exception as exc:  # a bad device name, a framework without this dtype, ...
            raise ValueError(f"from_numpy ({self.name}) cannot convert a {dtype} array: "
                             f"{type(exc).__name__}: {exc}") from exc
        return Backend(self.name, array_api_compat.array_namespace(probe),
                       array_api_compat.device(probe))


def _torch(device):
    torch = importlib.import_module("torch")

    def convert(x):
        t = torch.from_dlpack(x)
        return t.to(device) if device else t

    return convert


def _jax(device):
    jax = importlib.import_module("jax")
    target = jax.devices(device)[0] if device else None  # "jax:gpu": the first GPU
    return lambda x: jax.device_put(jax.numpy.from_dlpack(x), target)


def _cupy(device):
    cupy = importlib.import_module("cupy")

    def convert(x):
        with cupy.cuda.Device(int(device or 0)):
            return cupy.asarray(x)

    return convert


def _refimpl_backend(name):
    be = backend_namespace(name)
    return lambda x: backend_from_numpy(x, be)


_FRAMEWORKS = {
    "numpy": lambda device: np.array,
    "torch": _torch,
    "jax": _jax,
    "cupy": _cupy,
}


FRAMEWORKS = (*_FRAMEWORKS, "array_api_strict")


def _from_numpy_named(name: str) -> Callable:
    lib, _, device = name.partition(":")
    if lib in _FRAMEWORKS:
        try:
            return _FRAMEWORKS[lib](device or None)
        except ImportError as exc:
            raise ValueError(f"from_numpy={name!r} needs {lib}, which is not installed") from exc
    if lib == "array_api_strict":
        return _refimpl_backend(name)
    raise ValueError(
        f"unknown framework {name!r} for from_numpy; give a callable or one of "
        f"{', '.join(FRAMEWORKS)}"
    )


def default_to_numpy(x) -> np.ndarray:
    """Any framework's array as NumPy: PyTorch, JAX, CuPy and refimpl's backends, else DLPack."""
    if array_api_compat.is_torch_array(x):
        return x.detach().resolve_conj().cpu().numpy()
    if array_api_compat.is_jax_array(x):
        return np.asarray(x)
    if array_api_compat.is_numpy_array(x) or array_api_compat.is_cupy_array(x):
        return backend_to_numpy(x)
    if type(x).__module__.startswith("array_api_strict"):
        return backend_to_numpy(x)
    return np.from_dlpack(x)


def adapter(from_numpy=None, to_numpy=None) -> Adapter:
    """Resolve the ``from_numpy`` / ``to_numpy`` arguments of :func:`verify.check`."""
    if from_numpy is None or isinstance(from_numpy, str):
        name = from_numpy or "numpy"
        convert = _from_numpy_named(name)
    elif callable(from_numpy):
        name, convert = getattr(from_numpy, "__name__", "custom"), from_numpy
    else:
        raise TypeError(f"from_numpy must be a callable or a framework name, got {from_numpy!r}")
    if to_numpy is not None and not callable(to_numpy):
        raise TypeError(f"to_numpy must be a callable, got {to_numpy!r}")
    return Adapter(name, convert, to_numpy or default_to_numpy)
