"""Teeth for the Householder ops: an independent NumPy implementation and planted bugs.

Read by tests/test_verify_teeth.py. The correct candidate applies one
reflector at a time with explicit loops and a VJP derived here, per step
``Y = H X``, ``H = I - t v v^T``, ``a = v^T X``, ``g = v^T G``::

    dX = H G,   dv = -t (G a^T + X g^T),   dt = -<g, a>,

and with the default ``t = 2 / ||v||^2`` (``dt/dv = -t^2 v``) ``dv += t^2 <g, a> v``.
Each mutant changes one of these lines.
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import unbroadcast as _unbroadcast

from verify import Candidate
from verify.testing import Teeth


def _order(n, transpose):
    # U X = H_1 (H_2 (... (H_n X))): H_n first; U^T X applies H_1 first.
    return list(range(n)) if transpose else list(range(n - 1, -1, -1))


def _identity_like(V):
    d = V.shape[-1]
    return np.broadcast_to(np.eye(d, dtype=V.dtype), V.shape[:-2] + (d, d))


def _default_tau(V):
    return 2.0 / np.sum(V * V, axis=-1)


class Reflectors:
    """One reflector at a time, forward and VJP; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _tau(self, V, tau):
        if tau is None or self.bug == "tau ignored":
            return _default_tau(V)
        if self.bug == "tau shifted by one":
            return np.roll(tau, 1, axis=-1)
        return tau

    def _steps(self, V, tau, X, transpose):
        n = V.shape[-2]
        if self.bug == "transpose ignored":
            transpose = False
        if self.bug == "transposed product":
            transpose = not transpose
        order = _order(n, transpose)
        if self.bug == "last reflector skipped":
            order = [i for i in order if i != n - 1]
        sign = 1.0 if self.bug == "wrong sign" else -1.0
        xs = []
        for i in order:
            v, t = V[..., i, :, None], tau[..., i, None, None]
            xs.append((i, X))
            X = X + sign * t * (v @ (np.swapaxes(v, -1, -2) @ X))
        return X, xs

    def forward(self, V, X, tau=None, *, transpose=False):
        return self._steps(V, self._tau(V, tau), X, transpose)[0]

    def vjp(self, V, X, G, tau=None, *, transpose=False):
        t_all = self._tau(V, tau)
        _, xs = self._steps(V, t_all, X, transpose)
        dV = np.zeros(np.broadcast_shapes(V.shape, X.shape[:-2] + (1, 1)), dtype=V.dtype)
        dtau = np.zeros(dV.shape[:-1], dtype=V.dtype)
        steps = xs if self.bug == "dX in forward order" else reversed(xs)
        for i, X_in in steps:
            v, t = V[..., i, :, None], t_all[..., i, None, None]
            a, g = np.swapaxes(v, -1, -2) @ X_in, np.swapaxes(v, -1, -2) @ G
            dt = -np.sum(g * a, axis=(-2, -1))
            if self.bug == "dtau wrong sign":
                dt = -dt
            dv = -t * (G @ np.swapaxes(a, -1, -2) + X_in @ np.swapaxes(g, -1, -2))
            if tau is None and self.bug != "stale tau term dropped":
                dv = dv - (t**2 * dt[..., None, None]) * v  # dt/dv = -t^2 v
            if tau is not None and self.bug == "stale default-tau term":
                dv = dv - (t**2 * dt[..., None, None]) * v
            dV[..., i, :], dtau[..., i] = dv[..., 0], dt
            G = G - t * (v @ g)
        cotangents = [_unbroadcast(dV, V.shape), _unbroadcast(G, X.shape)]
        if tau is not None:
            cotangents.append(_unbroadcast(dtau, tau.shape))
        return tuple(cotangents)

    def matrix(self, V, tau=None):
        """``U`` as the product applied to the identity."""
        return self.forward(V, _identity_like(V), tau)

    def matrix_vjp(self, V, G, tau=None):
        dV, _, *dtau = self.vjp(V, _identity_like(V), G, tau)
        return (dV, *dtau)


class Blocked(Reflectors):
    """Blocks of two reflectors in compact WY form, ``B = I - V_b^T T V_b``."""

    def __init__(self, bug=None):
        super().__init__(bug)

    def forward(self, V, X, tau=None, *, transpose=False):
        n, d = V.shape[-2], V.shape[-1]
        tau = _default_tau(V)  # the planted bug is in the blocks; tau is ignored too
        stop = n - 1 if self.bug == "off-by-one block" else n
        starts = list(range(0, stop, 2))
        for s in (starts if transpose else reversed(starts)):
            Vb, tb = V[..., s:s + 2, :], tau[..., s:s + 2]
            k = tb.shape[-1]
            T = np.linalg.inv(np.triu(Vb @ np.swapaxes(Vb, -1, -2), 1) + np.eye(k) / tb[..., None, :])
            B = np.eye(d) - np.swapaxes(Vb, -1, -2) @ T @ Vb
            X = (np.swapaxes(B, -1, -2) if transpose else B) @ X
        return X


def _candidate(bug=None):
    r = Reflectors(bug)
    return Candidate(r.forward, vjp=r.vjp)


def _matrix_candidate(bug=None):
    r = Reflectors(bug)
    return Candidate(r.matrix, vjp=r.matrix_vjp)


TEETH = {
    "householder_product": Teeth(
        correct=_candidate(),
        mutants={
            "wrong sign": _candidate("wrong sign"),
            "transposed product": _candidate("transposed product"),
            "transpose ignored": _candidate("transpose ignored"),
            "last reflector skipped": _candidate("last reflector skipped"),
            "off-by-one block": Candidate(Blocked("off-by-one block").forward),
            "assumes unit reflectors (tau = 2)": Candidate(
                lambda V, X, tau=None, transpose=False: Reflectors().forward(
                    V, X, np.full(V.shape[:-1], 2.0), transpose=transpose)),
            "stale tau term dropped": _candidate("stale tau term dropped"),
            "dX in forward order": _candidate("dX in forward order"),
            "tau ignored": _candidate("tau ignored"),
            "tau shifted by one": _candidate("tau shifted by one"),
            "dtau wrong sign": _candidate("dtau wrong sign"),
            "stale default-tau term": _candidate("stale default-tau term"),
        },
        caught_by={
            "wrong sign": {"matches ground truth", "orthogonality", "determinant parity",
                           "single reflector is an involution"},
            "transpose ignored": {"transpose is the reversed product"},
            "assumes unit reflectors (tau = 2)": {"scale invariance", "orthogonality"},
            "stale tau term dropped": {"vjp: dot-product test", "vjp: autograd",
                                       "vjp: matches refimpl", "gradient orthogonal to v"},
            "tau ignored": {"matches ground truth", "determinant parity",
                            "agrees with LAPACK dormqr/dorgqr"},
            "dtau wrong sign": {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"},
        },
    ),
    "householder_matrix": Teeth(
        correct=_matrix_candidate(),
        mutants={
            "wrong sign": _matrix_candidate("wrong sign"),
            "last reflector skipped": _matrix_candidate("last reflector skipped"),
            "stale tau term dropped": _matrix_candidate("stale tau term dropped"),
        },
        caught_by={
            "wrong sign": {"matches ground truth", "orthogonality"},
            "stale tau term dropped": {"vjp: dot-product test", "vjp: autograd",
                                       "vjp: matches refimpl"},
        },
    ),
}
