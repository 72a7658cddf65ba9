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
* :func:`to_numpy` and :func:`from_numpy`, for the verification side only;
* the library-specific kernels that the array API standard lacks:
  :func:`matmul_update` (a GEMM that accumulates into an existing array),
  :func:`inv_triangular` and :func:`fft_namespace`. Each has a plain
  array-API fallback with the same meaning, so results do not depend on the
  library beyond rounding.

A backend is named by a string: ``"numpy"``, ``"cupy"``, ``"array_api_strict"``,
optionally followed by ``":DEVICE"`` (``"array_api_strict:device1"`` places
arrays on array-api-strict's second device, where any hidden conversion to
host memory raises, as it would on a GPU).
"""

from __future__ import annotations

import contextlib
import functools
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
    "fft_namespace",
    "get_namespace",
    "inv_triangular",
    "matmul_update",
    "set_backend",
    "to_numpy",
    "use_backend",
]

_KNOWN = ("numpy", "array_api_strict", "cupy")
_NUMPY_XP = array_api_compat.array_namespace(np.empty(0))
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
    if all(type(a) is np.ndarray for a in present.values()):
        # The common case without array_api_compat's dispatch (10 us, a budget of
        # O(d) ops such as svd_linear_slogdet).
        return _NUMPY_XP, "cpu"
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
        return Backend(name, _NUMPY_XP, "cpu")
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


# ---------------------------------------------------------------------------
# Kernels the array API standard lacks
# ---------------------------------------------------------------------------


def matmul_update(C, A, B, *, alpha=-1.0, beta=1.0):
    r"""``beta C + alpha A @ B`` (BLAS ``gemm``), written into ``C`` on NumPy and CuPy.

    .. math::  C \leftarrow \beta\, C + \alpha\, A B \qquad(\text{default } C - A B).

    ``beta = 0`` ignores the values of ``C`` (NaN included), as BLAS does, so
    ``C`` may be an uninitialised buffer. ``C`` must have the shape and dtype
    of the result and must not overlap ``A`` or ``B``.

    * NumPy, 2-D: SciPy's BLAS ``dgemm`` / ``sgemm`` with ``overwrite_c``:
      no temporary for ``A @ B`` and no new array. ``C`` may be a block of
      rows or columns of a larger C- or Fortran-ordered array; ``A`` and
      ``B`` may be transposed views (BLAS's ``trans`` flags, no copy).
    * CuPy, 2-D: cuBLAS, through ``cupy.cublas.gemm(..., out=C)``.
    * NumPy and CuPy with batch axes: ``A @ B``, then ``C`` updated in place.
    * Other namespaces (array-api-strict, ...): the expression, as a new
      array; ``C`` is left alone.

    Returns the result, which is ``C`` itself on NumPy and CuPy: callers
    use the return value and run unchanged on every namespace.
    """
    if isinstance(C, np.ndarray) and _blas_compatible(C, A, B):
        return _blas_matmul_update(C, A, B, alpha, beta)
    if array_api_compat.is_cupy_array(C):
        if C.ndim == A.ndim == B.ndim == 2 and C.size and A.shape[1]:
            from cupy import cublas

            return cublas.gemm("N", "N", A, B, out=C, alpha=alpha, beta=beta)
        return _update_in_place(C, A @ B, alpha, beta)
    if isinstance(C, np.ndarray):
        return _update_in_place(C, A @ B, alpha, beta)
    product = A @ B if alpha == 1.0 else alpha * (A @ B)
    if beta == 0.0:
        return product
    return (C if beta == 1.0 else beta * C) + product


def _blas_compatible(C, A, B) -> bool:
    """2-D float arrays of one dtype, ``C`` writeable and contiguous, no empty dimension."""
    return (
        isinstance(A, np.ndarray) and isinstance(B, np.ndarray)
        and C.ndim == A.ndim == B.ndim == 2
        and C.dtype in _GEMM and A.dtype == C.dtype and B.dtype == C.dtype
        and C.size > 0 and A.shape[1] > 0
        and C.flags.writeable and (C.flags.c_contiguous or C.flags.f_contiguous)
    )


def _gemm_functions():
    from scipy.linalg import blas

    return {np.dtype(np.float64): blas.dgemm, np.dtype(np.float32): blas.sgemm}


_GEMM = _gemm_functions()


def _fortran_operand(M):
    """``(array, trans)`` for BLAS: a C-ordered matrix is the transpose of a Fortran-ordered one."""
    if M.flags.f_contiguous:
        return M, 0
    if M.flags.c_contiguous:
        return M.T, 1
    return np.asfortranarray(M), 0


def _blas_matmul_update(C, A, B, alpha, beta):
    # BLAS writes Fortran-ordered matrices in place; a C-ordered C is the Fortran-ordered
    # C^T, updated as C^T <- beta C^T + alpha B^T A^T.
    c, a, b = (C, A, B) if C.flags.f_contiguous else (C.T, B.T, A.T)
    a, trans_a = _fortran_operand(a)
    b, trans_b = _fortran_operand(b)
    out = _GEMM[C.dtype](alpha, a, b, beta=beta, c=c, trans_a=trans_a, trans_b=trans_b,
                         overwrite_c=1)
    if out is not c:  # f2py had to copy c (it does not for the arrays _blas_compatible admits)
        c[...] = out
    return C


def _update_in_place(C, product, alpha, beta):
    if alpha != 1.0:
        product *= alpha
    if beta == 0.0:
        C[...] = product
        return C
    if beta != 1.0:
        C *= beta
    C += product
    return C


def inv_triangular(A, *, lower=False, unit_diagonal=False):
    r"""Inverse of the triangular matrices ``A`` (``(..., k, k)``), reading one triangle only.

    Only the upper triangle of ``A`` is read (the lower one with
    ``lower=True``), and with ``unit_diagonal=True`` not its diagonal either,
    which is taken to be ones: the other entries may hold anything. The
    result is triangular, zeros included.

    * NumPy: LAPACK ``trtri`` (SciPy) per matrix, in place in one copy of
      ``A``, ``k^3 / 3`` flops each;
    * CuPy, 2-D: ``cupyx.scipy.linalg.solve_triangular`` against the identity;
    * otherwise: ``xp.linalg.solve`` of the triangle against the identity.

    A zero on the diagonal raises ``numpy.linalg.LinAlgError`` on NumPy (the
    library's singular-matrix error elsewhere).
    """
    xp, device = get_namespace(A)
    k = A.shape[-1]
    if isinstance(A, np.ndarray) and A.dtype in _GEMM and A.size:
        return _lapack_inv_triangular(A, lower, unit_diagonal)
    eye = xp.eye(k, dtype=A.dtype, device=device)
    if array_api_compat.is_cupy_array(A) and A.ndim == 2:
        from cupyx.scipy.linalg import solve_triangular

        return solve_triangular(A, eye, lower=lower, unit_diagonal=unit_diagonal)
    triangle = _triangle(xp, A, lower, unit_diagonal, eye)
    inv = xp.linalg.solve(triangle, xp.broadcast_to(eye, A.shape))
    # A pivoting LU of a lower triangle leaves rounding-level entries above it.
    return xp.tril(inv) if lower else xp.triu(inv)


def _triangle(xp, A, lower, unit_diagonal, eye):
    """The part of ``A`` that :func:`inv_triangular` reads, as a full matrix."""
    offset = 1 if unit_diagonal else 0
    part = xp.tril(A, k=-offset) if lower else xp.triu(A, k=offset)
    return part + eye if unit_diagonal else part


@functools.lru_cache(maxsize=64)
def _triangle_mask(k, lower, strict, dtype):
    """Ones on the (strict) triangle, zeros elsewhere: multiplying by it beats ``np.triu``."""
    mask = np.tri(k, k, -1 if strict else 0, dtype=dtype)
    mask = mask if lower else mask.T.copy()
    mask.flags.writeable = False
    return mask


def _lapack_inv_triangular(A, lower, unit_diagonal):
    from scipy.linalg import lapack

    trtri = lapack.dtrtri if A.dtype == np.float64 else lapack.strtri
    k = A.shape[-1]
    inv = np.array(A, order="C").reshape((-1, k, k))  # a copy that trtri overwrites
    for i, a in enumerate(inv):
        # A C-ordered matrix is the Fortran-ordered transpose, whose triangle is the other one.
        view = a.T
        out, info = trtri(view, lower=int(not lower), unitdiag=int(unit_diagonal), overwrite_c=1)
        if info > 0:
            raise np.linalg.LinAlgError(f"singular triangular matrix {i}: zero pivot at index {info - 1}")
        if out is not view:
            view[...] = out
    # trtri leaves the other triangle, and a unit diagonal, as they were in A.
    inv *= _triangle_mask(k, lower, unit_diagonal, inv.dtype)
    if unit_diagonal:
        inv.reshape((-1, k * k))[:, :: k + 1] = 1.0
    return inv.reshape(A.shape)


def fft_namespace(xp):
    """The FFT functions for arrays of ``xp``: :mod:`scipy.fft` for NumPy, ``xp.fft`` otherwise.

    Both run pocketfft, but NumPy's n-d transforms loop over the axes in
    Python, each pass into a new array, where SciPy transforms all axes in
    one call: 1.1-4x faster on the convolutions' shapes (figures in
    ``docs/performance.rst``). The functions take the same arguments (``s``,
    ``axes``, ``norm``). Threads: SciPy's ``workers`` default, 1 unless the
    caller sets ``scipy.fft.set_workers``; as with NumPy's FFTs, a thread
    pin (``OPENBLAS_NUM_THREADS=1``, ``threadpoolctl``) is never exceeded.
    """
    if array_api_compat.is_numpy_namespace(xp):
        import scipy.fft

        return scipy.fft
    return xp.fft
