"""A foreign-array candidate through every registered op.

The candidate is refimpl itself behind a gate that accepts only
array-api-strict arrays on its second device and refuses NumPy (and any
other array): every check that hands a candidate a NumPy array fails here.
The other direction is watched too: while the test runs, refimpl's
:func:`~refimpl.backend.get_namespace` (every op's entry) refuses
array-api-strict arrays outside the candidate's own calls, so a check that
runs refimpl on a candidate's arrays (instead of NumPy copies) fails as well.
The candidate must pass every op wherever refimpl itself passes (refimpl's
own suite runs every generic property on that device:
``verify.testing.backends_for``).
"""

import contextvars
import sys
from types import SimpleNamespace

import array_api_compat
import array_api_strict as xps
import numpy as np
import pytest

import refimpl.backend
import verify
import verify.adapters
from verify._tree import tree_leaves
from verify.checks import Context
from verify.registry import ops

DEVICE = xps.Device("device1")
FOREIGN = "array_api_strict:device1"
_INSIDE_CANDIDATE = contextvars.ContextVar("inside_candidate", default=False)


class ForeignArrayRefused(AssertionError):
    """An array of the wrong library or device crossed to the wrong side."""


def _is_foreign(a) -> bool:
    return type(a).__module__.startswith("array_api_strict")


def _only_own_arrays(args, kwargs):
    for i, value in enumerate([*args, *kwargs.values()]):
        for leaf in tree_leaves(value):
            if not _is_foreign(leaf):
                raise ForeignArrayRefused(f"argument {i}: a {type(leaf).__name__}, not an "
                                          "array_api_strict array")
            if leaf.device != DEVICE:
                raise ForeignArrayRefused(f"argument {i} is on {leaf.device}, not {DEVICE}")


def _candidate_side(fn):
    """``fn`` run as the candidate's own code: refimpl may see its arrays there."""
    def call(*args, **kwargs):
        token = _INSIDE_CANDIDATE.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _INSIDE_CANDIDATE.reset(token)

    return call


def _gated(fn):
    fn = _candidate_side(fn)

    def call(*args, **kwargs):
        _only_own_arrays(args, kwargs)
        return fn(*args, **kwargs)

    return call


def foreign_candidate(op) -> verify.Candidate:
    """refimpl's ``op`` taking and returning only array-api-strict arrays on ``device1``."""
    return verify.Candidate(_gated(op.forward), vjp=op.vjp and _gated(op.vjp),
                            from_numpy=FOREIGN)


@pytest.fixture
def refimpl_refuses_candidate_arrays(monkeypatch):
    """refimpl's ops refuse array-api-strict arrays unless the candidate is calling them, or the
    check is building the candidate's inputs (``Context.put``: refimpl.nn layers holding the
    candidate's arrays validate them as they are made)."""
    real = array_api_compat.array_namespace
    entry = refimpl.backend.get_namespace.__code__

    def array_namespace(*arrays, **kw):
        outside = not _INSIDE_CANDIDATE.get() and sys._getframe(1).f_code is entry
        if outside and any(_is_foreign(a) for a in arrays):
            raise ForeignArrayRefused("refimpl ran on the candidate's arrays; checks must give "
                                      "refimpl NumPy copies")
        return real(*arrays, **kw)

    proxy = SimpleNamespace(**{k: getattr(array_api_compat, k) for k in dir(array_api_compat)
                               if not k.startswith("__")})
    proxy.array_namespace = array_namespace
    monkeypatch.setattr(refimpl.backend, "array_api_compat", proxy)
    monkeypatch.setattr(Context, "put", _candidate_side(Context.put))


def test_the_gates_refuse(refimpl_refuses_candidate_arrays):
    op = verify.get_op("relu")
    with pytest.raises(ForeignArrayRefused, match="not an array_api_strict array"):
        foreign_candidate(op).forward(np.ones(3))
    with pytest.raises(ForeignArrayRefused, match="refimpl ran on the candidate's arrays"):
        op.forward(xps.ones(3, device=DEVICE))
    assert foreign_candidate(op).forward(xps.ones(3, device=DEVICE)).device == DEVICE


def test_a_0d_cotangent_stays_0d():
    """Autograd VJPs of scalar-output ops (slogdet, spectral norm) need a 0-d cotangent."""
    put = verify.adapters.adapter(FOREIGN).put
    assert put(np.array(2.0)).shape == () and put(np.ones((2, 0))).shape == (2, 0)


@pytest.mark.parametrize("op", ops(), ids=lambda op: op.name)
def test_foreign_candidate_passes(op, refimpl_refuses_candidate_arrays):
    report = verify.check(foreign_candidate(op), op, max_examples=1, seed=0)
    assert report.passed, str(report)
