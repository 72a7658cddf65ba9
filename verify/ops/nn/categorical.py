"""Records of :mod:`refimpl.nn.categorical` (docs/conventions.rst, section 4.8).

Ground truth: ``scipy.special.softmax`` and ``scipy.special.log_softmax``;
the naive forwards are the definitions ``exp(x) / sum exp(x)`` and
``x - log sum exp(x)`` in autograd.numpy (no shift: the cases are moderate).
Cases draw 1 to 4 axes and the axis (at least 2 entries along it). ``logits near the float maximum``
scales logits to the float range of the check's dtype, where the
definition overflows: the softmax is then uniform over the maximal entries
and the log-softmax is ``x - max - log(#maximal)``, ``-inf`` below the range.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import scipy.special
from hypothesis import strategies as st

from refimpl.nn.categorical import log_softmax, log_softmax_vjp, softmax, softmax_vjp

from ...checks import mismatch, rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng
from .activation import BENCH_SIZES, bench_case

TOL = {"float64": 1e-12, "float32": 2e-5}
REFERENCES = ("PyTorch documentation, torch.softmax and torch.log_softmax",)


def softmax_definition(np_, x, axis=-1):
    """``exp(x) / sum exp(x)`` along ``axis``, written from the definition (no shift)."""
    e = np_.exp(x)
    return e / np_.sum(e, axis=axis, keepdims=True)


@st.composite
def _cases(draw, huge=False):
    """Gaussian logits (scale up to 3) of 1 to 4 axes, the axis drawn; ``huge``: ratios in [-1, 1].

    The ``huge`` cases hold entries from a few levels (ties are frequent); the
    property scales them by the float maximum of its dtype.
    """
    gen = draw(rng())
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    # At least two classes: with one, both functions are constant (1 and 0) and a gradient
    # check would compare rounding noise with an exact zero.
    shape[axis] = draw(st.integers(2, 4))
    shape = tuple(shape)
    if huge:
        x = gen.choice([-1.0, -0.5, 0.25, 0.5, 0.9, 1.0], size=shape)
    else:
        x = gen.standard_normal(shape) * gen.uniform(0.1, 3.0)
    return Case({"x": x}, {"axis": axis})


def _at_float_maximum(case, ctx):
    """The case's ratios times the float maximum of the check's dtype (float64 NumPy)."""
    return ctx.rounded(case.primals["x"] * float(np.finfo(ctx.dtype).max))


def _maximal(x, axis):
    top = x == np.max(x, axis=axis, keepdims=True)
    return top, np.sum(top, axis=axis, keepdims=True)


def _softmax_near_max(impl, case, ctx):
    """Uniform over the maximal entries, 0 elsewhere (differences are beyond exp's range)."""
    x, axis = _at_float_maximum(case, ctx), case.params["axis"]
    got = run_outputs(SOFTMAX, impl, case, ctx, primals={"x": x})["out"]
    top, count = _maximal(x, axis)
    return rel_error(got, np.where(top, 1.0 / count, 0.0))


def _log_softmax_near_max(impl, case, ctx):
    """``x - max - log(#maximal)``, and ``-inf`` exactly where ``x - max < -max_float``."""
    x, axis = _at_float_maximum(case, ctx), case.params["axis"]
    got = run_outputs(LOG_SOFTMAX, impl, case, ctx, primals={"x": x})["out"]
    _, count = _maximal(x, axis)
    fmax = float(np.finfo(ctx.dtype).max)
    # In units of the float maximum, where neither the values nor their norms overflow.
    shifted = x / fmax - np.max(x, axis=axis, keepdims=True) / fmax
    below = shifted < -1.0
    expected = np.where(below, 0.0, shifted - np.log(count) / fmax)
    return worst({"-inf entries": mismatch(np.isneginf(got), below),
                  "finite entries": rel_error(np.where(below, 0.0, got / fmax), expected)})


def _sums_to_one(impl, case, ctx):
    """Entries in [0, 1] that sum to 1 along the axis."""
    got = run_outputs(SOFTMAX, impl, case, ctx)["out"]
    sums = np.sum(got, axis=case.params["axis"])
    outside = np.sum(np.clip(got, None, 0.0) ** 2 + np.clip(got - 1.0, 0.0, None) ** 2)
    return max(rel_error(sums, np.ones_like(sums)), float(np.sqrt(outside)))


def _near_max_property(check, what):
    return Property("logits near the float maximum", check,
                    f"logits up to the float maximum of the dtype: {what} (no overflow, no NaN)",
                    cases=lambda: _cases(huge=True))


def _record(forward, vjp, reference, naive, properties, convention):
    """The benchmark's anchor is ``reference``, SciPy's function, along the last axis."""
    return register(Op(forward=forward, vjp=vjp, primals=(Primal("x"),), cases=_cases,
                       reference=reference, naive=naive, properties=properties, tolerance=TOL,
                       convention=convention, section="4.8", references=REFERENCES,
                       bench_case=bench_case, bench_sizes=BENCH_SIZES,
                       bench_anchor=Anchor(f"scipy_{forward.__name__}",
                                           lambda case: lambda: reference(case.primals["x"]))))


SOFTMAX = _record(
    softmax, softmax_vjp, lambda x, axis=-1: scipy.special.softmax(x, axis=axis),
    lambda x, axis=-1: softmax_definition(anp, x, axis),
    (_near_max_property(_softmax_near_max, "uniform over the maximal entries, 0 elsewhere"),
     Property("sums to 1", _sums_to_one, "entries lie in [0, 1] and sum to 1 along the axis")),
    "softmax along axis (torch.softmax(x, dim)), shifted by the maximum and clamped: finite and "
    "exact for logits up to the float maximum.")

LOG_SOFTMAX = _record(
    log_softmax, log_softmax_vjp, lambda x, axis=-1: scipy.special.log_softmax(x, axis=axis),
    lambda x, axis=-1: x - anp.log(anp.sum(anp.exp(x), axis=axis, keepdims=True)),
    (_near_max_property(_log_softmax_near_max,
                        "x - max - log(#maximal), -inf exactly below the float range"),),
    "log_softmax along axis (torch.log_softmax(x, dim)) = (x - max) - log sum exp(x - max); "
    "-inf where the value is below -max_float; the cotangent is G - softmax(x) sum G.")
