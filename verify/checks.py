"""Building blocks of property checks: the context, error measures, generic checks.

Every check returns a *normwise relative error*, ``||a - b|| / ||b||`` with a
floor on the denominator, and raises :class:`CheckError` when an output has
the wrong namespace, device, shape or dtype: those are checked before values.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import array_api_compat
import numpy as np

from refimpl.backend import Backend, from_numpy, to_numpy

from .registry import Property

__all__ = [
    "CheckError",
    "Context",
    "NotProvided",
    "absolute_floor",
    "generic_properties",
    "impl_of",
    "rel_error",
]

_TINY = {"float64": 1e-300, "float32": 1e-30}


class CheckError(AssertionError):
    """An output broke the contract before its values were compared."""


@dataclass(frozen=True)
class Context:
    """Where a check runs: a backend and a dtype, plus conversions both ways.

    With an ``adapter`` (see :mod:`verify.adapters`) the arrays are a
    candidate framework's: ``put`` goes through ``adapter.from_numpy`` and
    ``take`` through ``adapter.to_numpy``, after the same contract checks.
    """

    backend: Backend
    dtype: str
    adapter: Any = None

    def put(self, x):
        """A float64 NumPy input as a backend array of this context's dtype."""
        if self.adapter is None:
            return from_numpy(x, self.backend, dtype=self.dtype)
        return self.adapter.put(np.asarray(x, dtype=self.dtype))

    def rounded(self, x) -> np.ndarray:
        """``x`` rounded to this dtype and back to float64: what the op really saw."""
        return np.asarray(x, dtype=self.dtype).astype(np.float64)

    def take(self, out, shape, what="output") -> np.ndarray:
        """Check namespace, device, dtype and shape of ``out``; return float64 NumPy."""
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise CheckError(f"{what} is not an array but {type(out).__name__}")
        expected_ns = self.backend.xp
        try:
            got_ns = array_api_compat.array_namespace(out)
        except TypeError:
            raise CheckError(f"{what} is a {type(out).__name__}, not an array of "
                             f"{expected_ns.__name__}") from None
        if got_ns is not expected_ns:
            raise CheckError(
                f"{what} is in namespace {got_ns.__name__}, expected {expected_ns.__name__}"
            )
        if array_api_compat.device(out) != self.backend.device:
            raise CheckError(
                f"{what} is on device {array_api_compat.device(out)!r}, "
                f"expected {self.backend.device!r}"
            )
        got_dtype = str(out.dtype).rsplit(".", 1)[-1]
        if got_dtype != self.dtype:
            raise CheckError(f"{what} has dtype {got_dtype}, expected {self.dtype}")
        if tuple(out.shape) != tuple(shape):
            raise CheckError(f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)}")
        convert = to_numpy if self.adapter is None else self.adapter.to_numpy
        return np.asarray(convert(out)).astype(np.float64)


class NotProvided(Exception):
    """A check needs a function the candidate does not have (its ``vjp``): skip it."""


_ABSOLUTE_FLOOR = contextvars.ContextVar("absolute_floor", default=0.0)


@contextlib.contextmanager
def absolute_floor(floor: float):
    """Within the block, :func:`rel_error` divides by at least ``floor``.

    With ``floor = atol / rtol`` a check ``rel_error(a, b) <= rtol`` passes
    exactly when ``||a - b|| <= max(rtol ||b||, atol)``.
    """
    token = _ABSOLUTE_FLOOR.set(floor)
    try:
        yield
    finally:
        _ABSOLUTE_FLOOR.reset(token)


def rel_error(actual, expected, scale=None) -> float:
    """Normwise relative error ``||actual - expected|| / max(scale, ||expected||)``."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if not np.all(np.isfinite(actual)):
        return float("inf")
    denom = np.linalg.norm(expected) if scale is None else max(scale, np.linalg.norm(expected))
    denom = max(denom, _ABSOLUTE_FLOOR.get(), _TINY["float64"])
    return float(np.linalg.norm(actual - expected) / denom)


def impl_of(op) -> SimpleNamespace:
    """refimpl's own implementation of ``op``, as the ``impl`` argument of checks."""
    return SimpleNamespace(forward=op.forward, vjp=op.vjp)


def _primals(case, ctx, op):
    return [ctx.put(case.primals[name]) for name in op.primals]


def _as_tuple(cotangents, n):
    if not isinstance(cotangents, (tuple, list)):
        raise CheckError(f"vjp must return a tuple of {n} cotangents, got {type(cotangents).__name__}")
    if len(cotangents) != n:
        raise CheckError(f"vjp must return {n} cotangents (one per primal), got {len(cotangents)}")
    return cotangents


def forward_on(op, impl, case, ctx) -> np.ndarray:
    """Run ``impl.forward`` on ``ctx``; return the checked output as float64 NumPy."""
    out = impl.forward(*_primals(case, ctx, op), **case.params)
    inputs = [ctx.rounded(case.primals[name]) for name in op.primals]
    expected = op.reference(*inputs, **case.params)
    return ctx.take(out, expected.shape), expected


def vjp_on(op, impl, case, ctx, cotangent) -> list[np.ndarray]:
    """Run ``impl.vjp`` on ``ctx``; return the checked cotangents as float64 NumPy."""
    args = _primals(case, ctx, op)
    res = _as_tuple(impl.vjp(*args, ctx.put(cotangent), **case.params), len(op.primals))
    return [
        ctx.take(r, case.primals[name].shape, what=f"cotangent of {name}")
        for r, name in zip(res, op.primals)
    ]


def _ground_truth(op, impl, case, ctx):
    got, expected = forward_on(op, impl, case, ctx)
    return rel_error(got, expected)


def _cotangent_for(op, case):
    out = op.reference(*[case.primals[n] for n in op.primals], **case.params)
    seed = sum(int(abs(v).sum() * 1e6) for v in case.primals.values()) % 2**32
    return np.random.default_rng(seed).standard_normal(out.shape)


def _dot_product(op, impl, case, ctx):
    """``sum_i <t_i, vjp_i(c)>`` against ``<c, (f(x + h t) - f(x - h t)) / 2h>``.

    The error is relative to ``sum_i ||t_i|| ||vjp_i(c)||``, the Cauchy-Schwarz
    bound of the left side, so that cancellation in the sum cannot hide a bug.
    """
    c = _cotangent_for(op, case)
    cotangents = vjp_on(op, impl, case, ctx, c)
    rng = np.random.default_rng(12345)
    directions = [rng.standard_normal(case.primals[n].shape) for n in op.primals]
    lhs = sum(float(np.sum(t * g)) for t, g in zip(directions, cotangents))
    scale = sum(np.linalg.norm(t) * np.linalg.norm(g) for t, g in zip(directions, cotangents))
    h = 1e-6 * max(1.0, max(np.abs(v).max() for v in case.primals.values()))
    outs = []
    for sign in (1.0, -1.0):
        shifted = {n: case.primals[n] + sign * h * t for n, t in zip(op.primals, directions)}
        got = impl.forward(*[ctx.put(shifted[n]) for n in op.primals], **case.params)
        outs.append(ctx.take(got, c.shape))
    rhs = float(np.sum(c * (outs[0] - outs[1]) / (2 * h)))
    return abs(lhs - rhs) / max(scale, 1e-300)


def _autograd(op, impl, case, ctx):
    """Each cotangent against autograd's VJP of the op's naive forward (float64).

    Errors are normwise and relative to the largest expected cotangent: a
    cotangent that is exactly zero (d = 1 reflectors, say) is then held to
    the rounding of its neighbours, not to 0/0.
    """
    from autograd import make_vjp

    c = _cotangent_for(op, case)
    got = vjp_on(op, impl, case, ctx, c)
    inputs = [ctx.rounded(case.primals[n]) for n in op.primals]
    expected = []
    for i in range(len(inputs)):
        def partial_forward(x, i=i):
            args = list(inputs)
            args[i] = x
            return op.naive(*args, **case.params)

        vjp_fn, _ = make_vjp(partial_forward)(inputs[i])
        expected.append(np.asarray(vjp_fn(c)))
    scale = max(np.linalg.norm(e) for e in expected)
    return max(rel_error(g, e, scale=scale) for g, e in zip(got, expected))


_GRADIENT_TOL = {"float64": 1e-6}


def generic_properties(op) -> list[Property]:
    """The properties every op gets: ground truth, dot-product test, autograd."""
    props = [
        Property(
            "matches ground truth",
            partial(_ground_truth, op),
            "forward equals the independent float64 reference (SciPy/LAPACK or the definition)",
        ),
        Property(
            "vjp: dot-product test",
            partial(_dot_product, op),
            "<t, vjp(c)> equals <c, central difference of the forward along t> (float64)",
            tolerance=_GRADIENT_TOL,
            dtypes=("float64",),
        ),
    ]
    if op.naive is not None:
        props.append(
            Property(
                "vjp: autograd",
                partial(_autograd, op),
                "every cotangent equals autograd's VJP of an independent naive forward",
            )
        )
    return props
