"""What the flows records share: every layer from its definition, per-sample Jacobians, tree gradients.

The naive layers are written once, for NumPy (``reference``) and
autograd.numpy (``naive``, the Jacobians and gradients): a layer is read by
its class name and fields only, as a candidate framework reads it, never
through refimpl's functions. Linear layers take their log-determinant from
``slogdet`` of their dense per-sample matrix (the circulant, block-circulant,
``W``, ``kron(W, I_HW)``), the coupling layers from the definition
``sum log s`` (their Jacobian is triangular after a permutation).

:func:`tree_autograd` is the gradient check of a tree primal (a flow or a
conditioner): autograd differentiates the naive forward with respect to
every array of the tree, rebuilt around autograd's boxes.
"""

from __future__ import annotations

import dataclasses

import autograd.numpy as anp
import numpy as np
from autograd import grad

from ...checks import _flat, call_forward, cotangent_for, natural_scale, rel_error, run_vjp, worst
from ..._tree import is_array, tree_leaves
from ...registry import Case, Output, Property, get_op
from ..conv.circular import circulant_index
from ..conv.periodic import _dense as periodic_dense
from ..linalg.householder import _dense_product, _default_tau
from ..linalg.svd_layer import _dense as svd_dense
from ..nn.network import network_reference
from .glow import _lu_weight

#: Every layer's log-determinant output: compared absolutely below magnitude 1 (it may be 0).
LOGDET = Output("logdet", scale=1.0)
NFLOWS_SCALE_FLOOR = 1e-3  # AffineCouplingTransform: sigmoid(u + 2) + 1e-3
NFLOWS_LU_EPS = 1e-3  # LULinear: softplus(u) + 1e-3
FREIA_ATAN = 0.636


def _sigmoid(np_, a):
    return 0.5 * (1.0 + np_.tanh(0.5 * a))


#: ``s = sigma(u)`` of each scale convention of the affine coupling, from its library's source.
SCALES = {
    "nflows": lambda np_, u, clamp: _sigmoid(np_, u + 2.0) + NFLOWS_SCALE_FLOOR,
    "glow": lambda np_, u, clamp: _sigmoid(np_, u + 2.0),
    "exp": lambda np_, u, clamp: np_.exp(u),
    "tanh": lambda np_, u, clamp: np_.exp(clamp * np_.tanh(u)),
    "atan": lambda np_, u, clamp: np_.exp(clamp * FREIA_ATAN * np_.arctan(u)),
}

#: ``(t, u)`` from the conditioner output ``h`` of width ``2m``, by ``split``.
SPLITS = {
    "shift_first": lambda h, m: (h[:, :m], h[:, m:]),
    "scale_first": lambda h, m: (h[:, m:], h[:, :m]),
    "interleaved": lambda h, m: (h[:, 0::2], h[:, 1::2]),
}


# -- one layer from its definition: (np_, x, ..., inverse) -> (output, logdet) ---------------


def coupling_reference(np_, x, mask, conditioner, *, affine, scale="nflows", split="shift_first",
                       clamp=2.0, inverse=False):
    """The coupling layer (or its inverse) of ``mask`` (True = transformed) and ``conditioner``."""
    mask = np.asarray(mask, dtype=bool)
    a, b = np.flatnonzero(~mask), np.flatnonzero(mask)
    xa, xb = x[:, a], x[:, b]
    h = network_reference(np_, conditioner, xa)
    if affine:
        t, u = SPLITS[split](h, len(b))
        s = SCALES[scale](np_, u, clamp)
        logdet = np_.sum(np_.log(s), axis=1)
    else:
        t, s, logdet = h, 1.0, np_.zeros(x.shape[0])
    zb = (xb - t) / s if inverse else xb * s + t
    merged = np_.concatenate([xa, zb], axis=1)[:, np.argsort(np.concatenate([a, b]))]
    return merged, (-logdet if inverse else logdet)


def permutation_reference(np_, x, perm, inverse=False):
    """``z[:, i] = x[:, perm[i]]``; the inverse scatters back."""
    index = np.argsort(perm) if inverse else np.asarray(perm)
    return x[:, index], np_.zeros(x.shape[0])


def actnorm_reference(np_, x, log_scale, shift, inverse=False):
    """``exp(a) x + b`` per channel (axis 1); log-determinant ``positions * sum a``."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    a, b = np_.reshape(log_scale, shape), np_.reshape(shift, shape)
    positions = int(np.prod(x.shape[2:]))
    if inverse:
        return (x - b) * np_.exp(-a), -positions * np_.sum(log_scale) * np_.ones(x.shape[0])
    return np_.exp(a) * x + b, positions * np_.sum(log_scale) * np_.ones(x.shape[0])


def lu_weight(np_, lower, upper, unconstrained_diag, eps=NFLOWS_LU_EPS):
    """nflows' ``W = (tril(L, -1) + I)(triu(U, 1) + diag(softplus(u) + eps))``."""
    d = lower.shape[0]
    diag = np_.log(1.0 + np_.exp(unconstrained_diag)) + eps
    return np_.dot(np_.tril(lower, -1) + np.eye(d), np_.triu(upper, 1) + np_.diag(diag))


def _dense_layer(np_, M, x, bias=None, inverse=False):
    """``M`` (or ``M^{-1}``) applied to each flattened sample; ``slogdet(M)`` as the log-determinant."""
    flat = np_.reshape(x, (x.shape[0], -1))
    if inverse:
        flat = flat if bias is None else flat - bias
        out = np_.transpose(np_.linalg.solve(M, np_.transpose(flat)))
    else:
        out = np_.dot(flat, np_.transpose(M))
        out = out if bias is None else out + bias
    logdet = np_.linalg.slogdet(M)[1] * np_.ones(x.shape[0])
    return np_.reshape(out, x.shape), (-logdet if inverse else logdet)


def lu_reference(np_, x, lower, upper, unconstrained_diag, bias=None, eps=NFLOWS_LU_EPS,
                 inverse=False):
    return _dense_layer(np_, lu_weight(np_, lower, upper, unconstrained_diag, eps), x, bias, inverse)


def householder_matrices(np_, V):
    """``U = H(v_1) ... H(v_K)`` (one, or one per sample for ``V (n, K, d)``), from the definition."""
    return _dense_product(np_, V, _default_tau(np_, V), False)


def householder_reference(np_, x, V, inverse=False):
    """``z_n = U^T x_n``, i.e. ``H_1`` first (the inverse applies ``U``); log-determinant 0."""
    U = householder_matrices(np_, V)
    if V.ndim == 2:
        out = np_.dot(x, np_.transpose(U) if inverse else U)
    else:
        out = np_.einsum("nij,nj->ni" if inverse else "nji,nj->ni", U, x)
    return out, np_.zeros(x.shape[0])


def _circulant(np_, K):
    return np_.reshape(K, (-1,))[circulant_index(tuple(K.shape))]


#: ``(np_, layer, x, inverse) -> (output, logdet)`` for every flow layer, by class name.
LAYERS = {
    "AdditiveCoupling": lambda np_, l, x, inverse: coupling_reference(
        np_, x, l.mask, l.conditioner, affine=False, inverse=inverse),
    "AffineCoupling": lambda np_, l, x, inverse: coupling_reference(
        np_, x, l.mask, l.conditioner, affine=True, scale=l.scale, split=l.split, clamp=l.clamp,
        inverse=inverse),
    "Permutation": lambda np_, l, x, inverse: permutation_reference(np_, x, l.perm, inverse),
    "Reverse": lambda np_, l, x, inverse: permutation_reference(
        np_, x, np.arange(x.shape[1])[::-1], inverse),
    "ActNorm": lambda np_, l, x, inverse: actnorm_reference(np_, x, l.log_scale, l.shift, inverse),
    "LULinear": lambda np_, l, x, inverse: lu_reference(
        np_, x, l.lower, l.upper, l.unconstrained_diag, l.bias, l.eps, inverse),
    "HouseholderFlow": lambda np_, l, x, inverse: householder_reference(np_, x, l.V, inverse),
    "SVDLinear": lambda np_, l, x, inverse: _dense_layer(
        np_, svd_dense(np_, l.Vu, l.s, l.Vv), x, inverse=inverse),
    "CircularConv": lambda np_, l, x, inverse: _dense_layer(np_, _circulant(np_, l.K), x,
                                                            inverse=inverse),
    "PeriodicConv": lambda np_, l, x, inverse: _dense_layer(np_, periodic_dense(np_, l.K), x,
                                                            inverse=inverse),
    "Glow1x1": lambda np_, l, x, inverse: _dense_layer(
        np_, np_.kron(_lu_weight(np_, l.L, l.U, l.s, l.perm), np.eye(x.shape[2] * x.shape[3])),
        x, inverse=inverse),
}


def flow_reference(np_, flow, x, inverse=False):
    """``(f(x), log|det J_f(x)|)`` (or the inverse's) of any flow layer or ``Sequential``."""
    if type(flow).__name__ != "Sequential":
        return LAYERS[type(flow).__name__](np_, flow, x, inverse)
    logdet = np_.zeros(x.shape[0])
    for layer in (reversed(flow.layers) if inverse else flow.layers):
        x, ld = flow_reference(np_, layer, x, inverse)
        logdet = logdet + ld
    return x, logdet


def gaussian_logpdf(np_, z):
    """``log N(z_n; 0, I)`` per sample (for autograd; the references use scipy.stats.norm)."""
    flat = np_.reshape(z, (z.shape[0], -1))
    return -0.5 * np_.sum(flat * flat, axis=1) - 0.5 * flat.shape[1] * np.log(2 * np.pi)


# -- relations and checks ---------------------------------------------------------------------


def per_sample_points(data, per_sample=()):
    """``jacobian_points`` for a per-sample ``logdet`` output: one point per sample.

    Point ``i`` is the case with ``data`` (and each primal in ``per_sample``
    that has one entry per sample, such as ``V (n, K, d)``) cut to sample
    ``i``; its Jacobian is ``d out_i / d data_i``, compared with ``logdet[i]``.
    """
    def points(case):
        n = case.primals[data].shape[0]
        out = []
        for i in range(n):
            primals = dict(case.primals)
            for name in (data, *per_sample):
                value = primals.get(name)
                if value is not None and (name == data or value.ndim == 3):
                    primals[name] = value[i:i + 1]
            out.append((Case(primals, case.params), (i,)))
        return out

    return points


def _rebuild(tree, leaves):
    """``tree`` with its array leaves taken in order from the iterator ``leaves``.

    Dataclasses (layers) are rebuilt without ``__init__``: refimpl's layers
    validate their fields as arrays of a known library, and autograd's boxes
    are not; the naive forwards only read the fields.
    """
    if is_array(tree):
        return next(leaves)
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        return type(tree)(_rebuild(t, leaves) for t in tree)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        rebuilt = object.__new__(type(tree))
        for f in dataclasses.fields(tree):
            object.__setattr__(rebuilt, f.name, _rebuild(getattr(tree, f.name), leaves))
        return rebuilt
    return tree


def _tree_autograd(op, name, impl, case, ctx):
    c = cotangent_for(op, case)
    got = run_vjp(op, impl, case, ctx, c)[name]
    inputs = {k: ctx.rounded(v) for k, v in case.primals.items()}
    tree = inputs[name]

    def pairing(values):
        primals = {**inputs, name: _rebuild(tree, iter(values))}
        outs = _flat(call_forward(op, op.naive, primals, case.params, lambda a: a))
        return sum(anp.sum(ci * o) for ci, o in zip(c, outs))

    leaves = list(tree_leaves(tree))
    if not leaves:  # a flow of permutations has no parameter
        return worst({})
    expected = grad(pairing)(leaves)
    scale = max(max(np.linalg.norm(e) for e in expected), natural_scale(op, case, c))
    return worst({f"cotangent of {name}, array {i}": rel_error(g, e, scale=scale)
                  for i, (g, e) in enumerate(zip(got, expected))})


def tree_autograd(op_name, name) -> Property:
    """Every array of the tree primal ``name`` of op ``op_name`` against autograd of its ``naive``.

    The record is looked up when the check runs (the property is built before
    the record exists).
    """
    return Property(
        f"vjp: autograd of every array of {name}",
        lambda impl, case, ctx: _tree_autograd(get_op(op_name), name, impl, case, ctx),
        f"the cotangent of every parameter array in {name} equals autograd's gradient of "
        f"<c, naive forward> (layers rebuilt around autograd's boxes)",
    )


