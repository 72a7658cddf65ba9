"""Teeth for the SVD-parametrised layer: an independent NumPy implementation and planted bugs.

Read by tests/test_verify_teeth.py. The correct candidate builds the dense
``U = H(u_1) ... H(u_n)`` one reflector at a time, ``W = U f(s) V^T`` (``V = U``
for the symmetric ops) and gets every VJP from the dense cotangent ``M = dL/dW``::

    dU = M V diag(f),   dV = M^T U diag(f),   df = diag(U^T M V),   ds = f'(s) df,

and, through each reflector ``H = I - t v v^T`` (``t = 2 / ||v||^2``) with
``N = dL/dH = A^T dU B^T`` (``U = A H B``)::

    dv = -t (N + N^T) v + t^2 (v^T N v) v.

Each mutant changes one of these lines.
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import unbroadcast as _unbroadcast

from verify import Candidate
from verify.testing import Teeth

T = np.swapaxes


def _reflectors(V, bug=None):
    d = V.shape[-1]
    v = V[..., :, :, None]
    t = 2.0 / np.sum(V * V, axis=-1)[..., None, None]
    sign = 1.0 if bug == "reflector I + t v v^T" else -1.0
    return np.eye(d, dtype=V.dtype) + sign * t * (v @ T(v, -1, -2)), v, t


def _orthogonal(V, bug=None):
    H = _reflectors(V, bug)[0]
    U = np.broadcast_to(np.eye(V.shape[-1], dtype=V.dtype), V.shape[:-2] + (V.shape[-1],) * 2)
    for i in range(H.shape[-3] - (bug == "last reflector skipped")):
        U = U @ H[..., i, :, :]
    return U


def _orthogonal_vjp(V, dU, bug=None):
    """``dV`` from ``dL/dU``, ``U = A_i H_i B_i`` for every reflector ``i``."""
    H, v, t = _reflectors(V)
    n, d = H.shape[-3], V.shape[-1]
    eye = np.broadcast_to(np.eye(d, dtype=V.dtype), H.shape[:-3] + (d, d))
    prefix, suffix = [eye], [eye]
    for i in range(n):
        prefix.append(prefix[-1] @ H[..., i, :, :])
        suffix.append(H[..., n - 1 - i, :, :] @ suffix[-1])
    rows = []
    for i in range(n):
        N = T(prefix[i], -1, -2) @ dU @ T(suffix[n - 1 - i], -1, -2)
        vi, ti = v[..., i, :, :], t[..., i, :, :]
        dv = -ti * ((N + T(N, -1, -2)) @ vi)
        if bug != "stale tau term dropped":
            dv = dv + ti**2 * (T(vi, -1, -2) @ N @ vi) * vi
        rows.append(dv[..., 0])
    return _unbroadcast(np.stack(rows, axis=-2), V.shape)


def _times_derivative(fprime):
    """The chain ``ds = f'(s) df`` of an elementwise ``f``."""
    return lambda s, df: fprime(s) * df


class Layer:
    """``W = U diag(f(s)) V^T``, forward and VJP; ``chain(s, df)`` maps ``dL/df`` to ``dL/ds``."""

    def __init__(self, f, chain, bug=None):
        self.f, self.chain, self.bug = f, chain, bug

    def parts(self, Vu, Vv):
        U = _orthogonal(Vu, self.bug)
        V = U if Vv is None else _orthogonal(Vv, self.bug)
        return (V, U) if self.bug == "U and V swapped" else (U, V)

    def matrix(self, Vu, s, Vv=None):
        U, V = self.parts(Vu, Vv)
        Vt = V if self.bug == "V used untransposed" else T(V, -1, -2)
        return (U * self.f(s)[..., None, :]) @ Vt

    def matrix_vjp(self, Vu, s, Vv, M):
        """Cotangents of ``(Vu, s[, Vv])`` from ``M = dL/dW``."""
        U, V = self.parts(Vu, Vv)
        f = self.f(s)[..., None, :]
        df = np.sum(U * (M @ V), axis=-1 if self.bug == "ds summed over the wrong axis" else -2)
        ds = _unbroadcast(self.chain(np.broadcast_to(s, df.shape), df), s.shape)
        if Vv is None:
            return _orthogonal_vjp(Vu, (M + T(M, -1, -2)) @ U * f, self.bug), ds
        return (_orthogonal_vjp(Vu, M @ V * f, self.bug), ds,
                _orthogonal_vjp(Vv, T(M, -1, -2) @ U * f, self.bug))


def _identity(s):
    return s


def _plain(s, df):
    return df


def _candidate_matrix(bug=None):
    layer = Layer(_identity, _plain, bug)
    return Candidate(lambda Vu, s, Vv: layer.matrix(Vu, s, Vv),
                     vjp=lambda Vu, s, Vv, G: layer.matrix_vjp(Vu, s, Vv, G))


def _applied(layer, bug=None):
    """``W X`` with ``W`` from ``layer``: ``dW = G X^T``, ``dX = W^T G``."""

    def forward(Vu, s, Vv, X):
        return layer.matrix(Vu, s, Vv) @ X

    def vjp(Vu, s, Vv, X, G):
        W = layer.matrix(Vu, s, Vv)
        dX = (W if bug == "dX uses W, not W^T" else T(W, -1, -2)) @ G
        if bug == "dX scaled by 1 + 1e-3":
            dX = (1 + 1e-3) * dX
        return (*layer.matrix_vjp(Vu, s, Vv, G @ T(X, -1, -2)), _unbroadcast(dX, X.shape))

    return Candidate(forward, vjp=vjp)


def _candidate_linear(bug=None):
    return _applied(Layer(_identity, _plain, bug), bug)


def _candidate_inverse(bug=None):
    """``W^-1 = V diag(1/s) U^T``: the layer with ``U`` and ``V`` exchanged, ``f(s) = 1/s``."""
    recip = _identity if bug == "multiplies by s" else (lambda s: 1.0 / s)
    chain = _plain if bug == "1/s^2 chain term missing" else (lambda s, df: -df / s**2)
    inner = _applied(Layer(recip, chain, bug), bug)

    def forward(Vu, s, Vv, Y):
        return inner.forward(Vv, s, Vu, Y)

    def vjp(Vu, s, Vv, Y, G):
        dVv, ds, dVu, dY = inner.vjp(Vv, s, Vu, Y, G)
        return dVu, ds, dVv, dY

    return Candidate(forward, vjp=vjp)


def _one_hot(s, index):
    return (np.arange(s.shape[-1]) == index[..., None]).astype(s.dtype)


def _max_abs_chain(bug=None):
    """``r = s / max|s|``: ``ds = dr / M - e_k sign(s_k) <dr, s> / M^2``, ``k = argmax |s|``."""

    def chain(s, dr):
        big = np.max(np.abs(s), axis=-1, keepdims=True)
        ds = dr / big
        if bug != "stale max term dropped":
            hot = _one_hot(s, np.argmax(np.abs(s), axis=-1)) * np.sign(s)
            ds = ds - hot * np.sum(dr * s, axis=-1, keepdims=True) / big**2
        return ds

    return chain


def _candidate_normalize(bug=None):
    def scaled(s):
        big = np.max(s if bug == "max(s) instead of max|s|" else np.abs(s), axis=-1)
        return s / big[..., None]

    return _applied(Layer(scaled, _max_abs_chain(bug), bug), bug)


def _batch(Vu, s, Vv):
    return np.broadcast_shapes(Vu.shape[:-2], s.shape[:-1], Vv.shape[:-2])


def _of_s(value, grad):
    """A function of ``s`` alone, broadcast over the batch; ``Vu`` and ``Vv`` get zeros."""

    def forward(Vu, s, Vv):
        return np.broadcast_to(value(s), _batch(Vu, s, Vv)).copy()

    def vjp(Vu, s, Vv, c):
        sb = np.broadcast_to(s, _batch(Vu, s, Vv) + s.shape[-1:])
        return np.zeros_like(Vu), _unbroadcast(grad(sb) * c[..., None], s.shape), np.zeros_like(Vv)

    return Candidate(forward, vjp=vjp)


def _candidate_slogdet(bug=None):
    """``(sign, logabsdet)``: ``det W = (-1)^(n_u + n_v) prod s`` (every row a proper reflector)."""
    magnitude = _identity if bug == "log s without abs" else np.abs
    slope = np.abs if bug == "gradient 1/|s|" else _identity
    logabsdet = _of_s(lambda s: np.sum(np.log(magnitude(s)), axis=-1), lambda s: 1.0 / slope(s))

    def forward(Vu, s, Vv):
        reflections = 0 if bug == "sign ignores the reflectors" else Vu.shape[-2] + Vv.shape[-2]
        sign = (-1.0) ** reflections * np.prod(np.sign(s), axis=-1)
        return np.broadcast_to(sign, _batch(Vu, s, Vv)).copy(), logabsdet.forward(Vu, s, Vv)

    return Candidate(forward, vjp=logabsdet.vjp)


def _candidate_spectral_norm(bug=None):
    magnitude = _identity if bug == "max(s) instead of max|s|" else np.abs

    def grad(s):
        hot = _one_hot(s, np.argmax(magnitude(s), axis=-1))
        return hot if bug == "sign of s dropped" else hot * np.sign(s)

    return _of_s(lambda s: np.max(magnitude(s), axis=-1), grad)


def _candidate_condition(bug=None):
    def value(s):
        big, small = np.max(np.abs(s), axis=-1), np.min(np.abs(s), axis=-1)
        return small / big if bug == "min / max" else big / small

    def grad(s):
        a = np.abs(s)
        big, small = np.max(a, axis=-1)[..., None], np.min(a, axis=-1)[..., None]
        hi, lo = _one_hot(s, np.argmax(a, axis=-1)), _one_hot(s, np.argmin(a, axis=-1))
        d_small = 0.0 if bug == "d/dmin term missing" else big / small**2
        return np.sign(s) * (hi / small - lo * d_small)

    return _of_s(value, grad)


def _symmetric(f, fprime, bug=None):
    """``U diag(f(s)) U^T X``, ``f`` elementwise."""
    inner = _applied(Layer(f, _times_derivative(fprime), bug), bug)
    return Candidate(lambda Vu, s, X: inner.forward(Vu, s, None, X),
                     vjp=lambda Vu, s, X, G: inner.vjp(Vu, s, None, X, G))


def _candidate_expm(bug=None):
    sign = -1.0 if bug == "exp(-s)" else 1.0
    slope = (lambda s: np.exp(-s)) if bug == "derivative exp(-s)" else (lambda s: sign * np.exp(sign * s))
    if bug == "exp(|s|)":
        return _symmetric(lambda s: np.exp(np.abs(s)), lambda s: np.sign(s) * np.exp(np.abs(s)))
    return _symmetric(lambda s: np.exp(sign * s), slope, bug)


def _candidate_cayley(bug=None):
    if bug == "(1 + s) / (1 - s)":
        return _symmetric(lambda s: (1 + s) / (1 - s), lambda s: 2.0 / (1 - s) ** 2, bug)
    if bug == "(1 - |s|) / (1 + |s|)":
        return _symmetric(lambda s: (1 - np.abs(s)) / (1 + np.abs(s)),
                          lambda s: -2.0 * np.sign(s) / (1 + np.abs(s)) ** 2)
    slope = (lambda s: 2.0 / (1 + s) ** 2) if bug == "derivative sign" else (lambda s: -2.0 / (1 + s) ** 2)
    return _symmetric(lambda s: (1 - s) / (1 + s), slope, bug)


_REFLECTOR_BUGS = ("last reflector skipped", "stale tau term dropped")

TEETH = {
    "svd_linear_matrix": Teeth(
        correct=_candidate_matrix(),
        mutants={b: _candidate_matrix(b) for b in (
            "V used untransposed", "U and V swapped", "ds summed over the wrong axis",
            "reflector I + t v v^T", *_REFLECTOR_BUGS)},
        caught_by={"stale tau term dropped": {"vjp: dot-product test", "vjp: autograd",
                                              "vjp: matches refimpl"},
                   "reflector I + t v v^T": {"singular values are abs(s)"}},
    ),
    "svd_linear": Teeth(
        correct=_candidate_linear(),
        mutants={b: _candidate_linear(b) for b in (
            "V used untransposed", "U and V swapped", "dX uses W, not W^T", *_REFLECTOR_BUGS)},
        caught_by={"U and V swapped": {"matches ground truth"},
                   "dX uses W, not W^T": {"adjoint test in X"}},
    ),
    "svd_linear_inverse": Teeth(
        correct=_candidate_inverse(),
        mutants={b: _candidate_inverse(b) for b in (
            "multiplies by s", "1/s^2 chain term missing", "V used untransposed",
            "U and V swapped", "dX uses W, not W^T", *_REFLECTOR_BUGS)},
        caught_by={"multiplies by s": {"matches ground truth",
                                       "round trip with svd_linear (error / cond)"},
                   "1/s^2 chain term missing": {"vjp: dot-product test", "vjp: autograd",
                                                "vjp: matches refimpl"}},
    ),
    "svd_linear_slogdet": Teeth(
        correct=_candidate_slogdet(),
        mutants={b: _candidate_slogdet(b) for b in (
            "log s without abs", "gradient 1/|s|", "sign ignores the reflectors")},
        caught_by={"gradient 1/|s|": {"vjp: dot-product test", "vjp: autograd",
                                      "vjp: matches refimpl"},
                   "sign ignores the reflectors": {"matches ground truth",
                                                   "log-determinant of the Jacobian"}},
    ),
    "spectral_norm": Teeth(
        correct=_candidate_spectral_norm(),
        mutants={b: _candidate_spectral_norm(b) for b in (
            "max(s) instead of max|s|", "sign of s dropped")},
        caught_by={"sign of s dropped": {"vjp: dot-product test", "vjp: autograd",
                                         "vjp: matches refimpl"}},
    ),
    "condition_number": Teeth(
        correct=_candidate_condition(),
        mutants={b: _candidate_condition(b) for b in ("min / max", "d/dmin term missing")},
        caught_by={"d/dmin term missing": {"vjp: dot-product test", "vjp: autograd",
                                           "vjp: matches refimpl"}},
    ),
    "spectral_normalize": Teeth(
        correct=_candidate_normalize(),
        mutants={b: _candidate_normalize(b) for b in (
            "max(s) instead of max|s|", "stale max term dropped", "V used untransposed",
            "dX uses W, not W^T")},
        caught_by={"stale max term dropped": {"vjp: dot-product test", "vjp: autograd",
                                              "vjp: matches refimpl"}},
    ),
    "sym_expm_apply": Teeth(
        correct=_candidate_expm(),
        mutants={b: _candidate_expm(b) for b in (
            "exp(-s)", "derivative exp(-s)", "exp(|s|)", "last reflector skipped",
            "dX scaled by 1 + 1e-3")},
        caught_by={"exp(|s|)": {"expm(-W) undoes expm(W)"},
                   "exp(-s)": {"matches ground truth"},
                   "derivative exp(-s)": {"vjp: dot-product test", "vjp: autograd",
                                          "vjp: matches refimpl"}},
    ),
    "sym_cayley_apply": Teeth(
        correct=_candidate_cayley(),
        mutants={b: _candidate_cayley(b) for b in (
            "(1 + s) / (1 - s)", "derivative sign", "(1 - |s|) / (1 + |s|)",
            "last reflector skipped", "dX scaled by 1 + 1e-3")},
        caught_by={"(1 - |s|) / (1 + |s|)": {"C(-W) undoes C(W)"},
                   "(1 + s) / (1 - s)": {"matches ground truth"},
                   "derivative sign": {"vjp: dot-product test", "vjp: autograd",
                                       "vjp: matches refimpl"}},
    ),
}
