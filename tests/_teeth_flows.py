"""Plain-NumPy flow layers for the flows teeth (no refimpl): every layer kind, forward, inverse, VJPs.

A layer is read by its class name and fields, as a candidate framework reads
refimpl's. Samples are rows (axis 0); the VJP of a layer returns
``(d input, [parameter cotangents in field order])``, a conditioner's as
the nn teeth's ``[{field: cotangent}]`` per layer.

The linear layers are dense: each gives its per-sample matrix ``M`` (``z_n =
M x_n`` on the flattened sample) and the adjoint of that map from its
parameters, so that one forward, inverse and VJP serve them all::

    forward  z = x M^T (+ b):   dx = G M,       dM = G^T x + sum(gl) M^{-T},   db = sum G;
    inverse  x = (z - b) M^-T:  dz = G M^-1,    dM = -dz^T x - sum(gl) M^{-T}, db = -sum dz;

(``log|det M|`` has gradient ``M^{-T}``). Matrices: nflows' LU ``W = A B``,
``A = tril(L, -1) + I``, ``B = triu(U, 1) + diag(softplus(u) + 1e-3)``
(``dA = dW B^T``, ``dB = A^T dW``, masked); Householder ``U^T`` with
``U = H(v_1) ... H(v_K)``, ``H(v) = I - 2 v v^T / v^T v`` (``dH_i = P_i^T dU S_i^T``
from the prefix and suffix products, ``dv = -2 (dH + dH^T) v / q + 4 (v^T dH v) v / q^2``);
the SVD layer ``U diag(s) V^T``; circulant and block-circulant matrices
built column by column from rolled kernels (the adjoint rolls back); Glow's
``kron(P A B, I_HW)``. The couplings, ActNorm and permutations are written
out with their own derivatives.
"""

from __future__ import annotations

import math

import numpy as np
from _teeth_nn import network_forward, network_vjp


def sigmoid(a):
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _flat(x):
    return x.reshape(x.shape[0], -1)


class Flows:
    """Every flow layer in NumPy; ``bug`` (a description) plants one mistake where it is named."""

    def __init__(self, bug=None):
        self.bug = bug

    # -- coupling --------------------------------------------------------------------------

    def scale(self, u, scale, clamp):
        """``(s, log s, dlog s / du)`` of the scale conventions."""
        if scale == "nflows":
            sig = sigmoid(u + 2.0)
            s = sig + (0.0 if self.bug == "nflows scale without its 1e-3" else 1e-3)
            return s, np.log(s), sig * (1.0 - sig) / s
        if scale == "glow":
            sig = sigmoid(u + 2.0)
            return sig, np.log(sig), 1.0 - sig
        if scale == "exp":
            return np.exp(u), u, np.ones_like(u)
        if scale == "tanh":
            t = np.tanh(u)
            return np.exp(clamp * t), clamp * t, clamp * (1.0 - t * t)
        log_s = clamp * 0.636 * np.arctan(u)
        return np.exp(log_s), log_s, clamp * 0.636 / (1.0 + u * u)

    def _split(self, h, m, split):
        if self.bug == "shift and scale halves swapped":
            split = {"shift_first": "scale_first", "scale_first": "shift_first"}.get(split, split)
        if split == "shift_first":
            return h[:, :m], h[:, m:]
        if split == "scale_first":
            return h[:, m:], h[:, :m]
        return h[:, 0::2], h[:, 1::2]

    @staticmethod
    def _join(dt, du, split):
        if split == "shift_first":
            return np.concatenate([dt, du], axis=1)
        if split == "scale_first":
            return np.concatenate([du, dt], axis=1)
        out = np.empty((dt.shape[0], 2 * dt.shape[1]), dtype=dt.dtype)
        out[:, 0::2], out[:, 1::2] = dt, du
        return out

    def _coupling_parts(self, x, mask, net, affine, settings):
        mask = np.asarray(mask, dtype=bool)
        a, b = np.flatnonzero(~mask), np.flatnonzero(mask)
        h = network_forward(net, x[:, a])
        if not affine:
            return a, b, h, np.ones_like(h), np.zeros_like(h), np.zeros_like(h)
        t, u = self._split(h, len(b), settings["split"])
        return (a, b, t, *self.scale(u, settings["scale"], settings["clamp"]))

    def _logdet_cotangent(self, gl):
        return 0.0 if self.bug == "du misses the logdet's cotangent" else gl[:, None]

    def coupling(self, x, mask, net, affine, settings, inverse=False):
        a, b, t, s, log_s, _ = self._coupling_parts(x, mask, net, affine, settings)
        out = x.copy()
        if inverse:
            out[:, b] = (x[:, b] * s + t) if self.bug == "inverse applies the forward" \
                else (x[:, b] - t) / s
        else:
            out[:, b] = x[:, b] * s + t
        if self.bug == "identity features shifted":
            out[:, a] = out[:, a] + 0.5
        logdet = np.sum(log_s if self.bug != "logdet sums s, not log s" else s, axis=1)
        if inverse and self.bug != "inverse logdet not negated":
            logdet = -logdet
        return out, logdet.astype(x.dtype)

    def coupling_vjp(self, x, mask, net, g, gl, affine, settings, inverse=False):
        a, b, t, s, _, dlog_s = self._coupling_parts(x, mask, net, affine, settings)
        ga, gb = g[:, a], g[:, b]
        if inverse:
            g_over_s = gb / s
            dt, dxb = -g_over_s, g_over_s
            du = -dlog_s * (g_over_s * (x[:, b] - t) + self._logdet_cotangent(gl))
        else:
            dt, dxb = gb, (gb if self.bug == "dx_b misses the scale" else gb * s)
            du = dlog_s * (gb * x[:, b] * s + self._logdet_cotangent(gl))
        dh = self._join(dt, du, settings["split"]) if affine else dt
        grads, da = network_vjp(net, x[:, a], dh)
        if self.bug == "bias cotangents of the conditioner not summed":
            grads = [{k: (v * 2.0 if k == "bias" else v) for k, v in d.items()} for d in grads]
        dx = np.empty_like(x)
        dx[:, a] = ga if self.bug == "conditioner's input cotangent dropped" else ga + da
        dx[:, b] = dxb
        return dx, grads

    # -- permutations, ActNorm -------------------------------------------------------------

    def permute(self, x, perm, inverse=False):
        index = np.asarray(perm)
        if inverse != (self.bug == "inverse permutation"):
            index = np.argsort(index)
        logdet = np.full(x.shape[0], 1.0 if self.bug == "logdet 1" else 0.0, dtype=x.dtype)
        return x[:, index], logdet

    def permute_vjp(self, x, perm, g, inverse=False):
        index = np.asarray(perm)
        gather = index if inverse else np.argsort(index)
        if self.bug == "vjp gathers the wrong way":
            gather = np.argsort(gather)
        return g[:, gather]

    @staticmethod
    def _per_channel(v, x):
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    def actnorm(self, x, log_scale, shift, inverse=False):
        e, b = self._per_channel(np.exp(log_scale), x), self._per_channel(shift, x)
        if self.bug == "scale exp(-a)":
            e = 1.0 / e
        positions = 1 if self.bug == "logdet without the positions" else math.prod(x.shape[2:])
        logdet = np.full(x.shape[0], positions * np.sum(log_scale), dtype=x.dtype)
        if inverse:
            return (x - b) / e, (logdet if self.bug == "inverse logdet not negated" else -logdet)
        return e * x + b, logdet

    def actnorm_vjp(self, x, log_scale, shift, g, gl, inverse=False):
        axes = (0,) + tuple(range(2, x.ndim))
        e = self._per_channel(np.exp(log_scale), x)
        positions = math.prod(x.shape[2:])
        logdet_term = 0.0 if self.bug == "d log_scale misses the logdet" else positions * np.sum(gl)
        if inverse:
            out = (x - self._per_channel(shift, x)) / e
            return g / e, -np.sum(g * out, axis=axes) - logdet_term, -np.sum(g / e, axis=axes)
        d_shift = np.sum(g, axis=axes) * (-1.0 if self.bug == "shift cotangent negated" else 1.0)
        return e * g, np.sum(g * x, axis=axes) * np.exp(log_scale) + logdet_term, d_shift

    def actnorm_init(self, x, ddof=1, eps=0.0):
        ddof = 1 if self.bug == "ddof ignored" else ddof
        values = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
        mean = values.mean(axis=0)
        std = np.sqrt(np.sum((values - mean) ** 2, axis=0) / (values.shape[0] - ddof))
        r = np.sqrt(std**2 + eps) if self.bug == "eps added to the variance" else std + eps
        return (-np.log(r)).astype(x.dtype), (-mean / r).astype(x.dtype)

    def actnorm_init_vjp(self, x, g_log_scale, g_shift, ddof=1, eps=0.0):
        values = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
        count = values.shape[0]
        mean = values.mean(axis=0)
        std = np.sqrt(np.sum((values - mean) ** 2, axis=0) / (count - ddof))
        r = std + eps
        g_r = -g_log_scale / r + g_shift * mean / r**2
        g_mean = 0.0 if self.bug == "the mean's cotangent dropped" else -g_shift / r
        d_values = g_r * (values - mean) / ((count - ddof) * std) + g_mean / count
        moved = d_values.reshape(np.moveaxis(x, 1, -1).shape)
        return (np.moveaxis(moved, -1, 1).astype(x.dtype),)

    # -- dense linear layers -----------------------------------------------------------------

    def lu_factors(self, L, U, s, perm=None):
        """``(A, B, W)`` with ``W = P A B``, ``A = tril(L, -1) + I``, ``B = triu(U, 1) + diag(s)``."""
        eye = np.eye(s.shape[0])
        A = np.tril(L) if self.bug == "lower's diagonal used" else np.tril(L, -1) + eye
        B = np.triu(U, 1) + np.diag(s)
        W = A @ B
        return A, B, (W if perm is None else W[list(perm)])

    @staticmethod
    def lu_factor_vjp(A, B, perm, dW):
        if perm is not None:
            unpermuted = np.empty_like(dW)
            unpermuted[list(perm)] = dW
            dW = unpermuted
        dA, dB = dW @ B.T, A.T @ dW
        return np.tril(dA, -1), np.triu(dB, 1), np.diag(dB).copy()

    def lu_diagonal(self, u, eps=1e-3):
        return np.logaddexp(0.0, u) + (0.0 if self.bug == "softplus without eps" else eps)

    def householder(self, V):
        """``U = H(v_1) ... H(v_K)`` and its factors, for ``V (K, d)``."""
        d = V.shape[-1]
        two = 1.0 if self.bug == "reflector without its factor 2" else 2.0
        factors = [np.eye(d) - two * np.outer(v, v) / (v @ v) for v in V]
        U = np.eye(d)
        for H in factors:
            U = U @ H
        return U, factors

    def householder_vjp(self, V, dU):
        """Cotangent of the reflectors ``V (K, d)`` for ``dU``, through the prefix and suffix products."""
        d = V.shape[-1]
        _, factors = self.householder(V)
        dV = np.empty_like(V)
        for i, v in enumerate(V):
            prefix, suffix = np.eye(d), np.eye(d)
            for H in factors[:i]:
                prefix = prefix @ H
            for H in factors[i + 1:]:
                suffix = suffix @ H
            dH = prefix.T @ dU @ suffix.T
            q = v @ v
            dV[i] = -2.0 * (dH + dH.T) @ v / q + 4.0 * (v @ dH @ v) * v / q**2
        return -dV if self.bug == "reflector cotangent negated" else dV

    @staticmethod
    def circulant(K):
        """The matrix of the circular convolution by ``K`` on flattened samples of ``K``'s shape."""
        shifts = list(np.ndindex(K.shape))
        return np.stack([np.roll(K, m, axis=tuple(range(K.ndim))).ravel() for m in shifts], axis=1)

    @staticmethod
    def circulant_adjoint(dM, shape):
        return sum(np.roll(dM[:, j].reshape(shape), [-k for k in m], axis=tuple(range(len(shape))))
                   for j, m in enumerate(np.ndindex(shape)))

    def matrix(self, layer, sample_shape):
        """The per-sample matrix ``M`` of a linear layer (``(n, D, D)`` for per-sample reflectors)."""
        kind = type(layer).__name__
        if kind == "LULinear":
            return self.lu_factors(layer.lower, layer.upper,
                                   self.lu_diagonal(layer.unconstrained_diag, layer.eps))[2]
        if kind == "HouseholderFlow":
            if layer.V.ndim == 3:
                return np.stack([self.householder(V)[0].T for V in layer.V])
            U = self.householder(layer.V)[0]
            return U if self.bug == "H_K acts first" else U.T
        if kind == "SVDLinear":
            return (self.householder(layer.Vu)[0] * layer.s) @ self.householder(layer.Vv)[0].T
        if kind == "CircularConv":
            return self.circulant(layer.K)
        if kind == "PeriodicConv":
            K = layer.K
            return np.block([[self.circulant(K[o, i]) for i in range(K.shape[1])]
                             for o in range(K.shape[0])])
        W = self.lu_factors(layer.L, layer.U, layer.s, layer.perm)[2]
        return np.kron(W, np.eye(math.prod(sample_shape[1:])))

    def matrix_adjoint(self, layer, sample_shape, dM):
        """The parameters' cotangents (field order) from the cotangent of the matrix."""
        kind = type(layer).__name__
        if kind == "LULinear":
            s = self.lu_diagonal(layer.unconstrained_diag, layer.eps)
            A, B, _ = self.lu_factors(layer.lower, layer.upper, s)
            dL, dU, ds = self.lu_factor_vjp(A, B, None, dM)
            sig = 1.0 if self.bug == "du misses the softplus slope" else sigmoid(layer.unconstrained_diag)
            return [dL, dU, ds * sig]
        if kind == "HouseholderFlow":
            if layer.V.ndim == 3:
                return [np.stack([self.householder_vjp(V, d.T) for V, d in zip(layer.V, dM)])]
            return [self.householder_vjp(layer.V, dM.T)]
        if kind == "SVDLinear":
            U, V = self.householder(layer.Vu)[0], self.householder(layer.Vv)[0]
            return [self.householder_vjp(layer.Vu, dM @ V * layer.s), np.diag(U.T @ dM @ V).copy(),
                    self.householder_vjp(layer.Vv, dM.T @ U * layer.s)]
        if kind == "CircularConv":
            return [self.circulant_adjoint(dM, layer.K.shape)]
        if kind == "PeriodicConv":
            c, grid = layer.K.shape[0], layer.K.shape[2:]
            size = math.prod(grid)
            return [np.stack([np.stack([self.circulant_adjoint(
                dM[o * size:(o + 1) * size, i * size:(i + 1) * size], grid) for i in range(c)])
                for o in range(c)])]
        c, size = layer.s.shape[0], math.prod(sample_shape[1:])
        dW = np.einsum("opiq->oi", dM.reshape(c, size, c, size) * np.eye(size)[None, :, None, :])
        A, B, _ = self.lu_factors(layer.L, layer.U, layer.s, layer.perm)
        return list(self.lu_factor_vjp(A, B, layer.perm, dW))

    def _bias(self, layer):
        return getattr(layer, "bias", None)

    def linear(self, layer, x, inverse=False):
        M = self.matrix(layer, x.shape[1:])
        b = self._bias(layer)
        flat = _flat(x)
        if inverse:
            flat = flat if b is None else flat - b
            out = np.linalg.solve(M, flat[..., None])[..., 0] if M.ndim == 3 \
                else np.linalg.solve(M, flat.T).T
        else:
            out = np.einsum("nij,nj->ni", M, flat) if M.ndim == 3 else flat @ M.T
            out = out if b is None else out + b
        logdet = np.linalg.slogdet(M)[1] * np.ones(x.shape[0])
        return out.reshape(x.shape), (-logdet if inverse else logdet)

    def linear_vjp(self, layer, x, g, gl, inverse=False):
        M = self.matrix(layer, x.shape[1:])
        b = self._bias(layer)
        flat, G = _flat(x), _flat(g)
        per_sample = M.ndim == 3
        M_inv_T = np.swapaxes(np.linalg.inv(M), -1, -2)
        log_term = (gl[:, None, None] * M_inv_T) if per_sample else np.sum(gl) * M_inv_T
        if inverse:
            out = (np.linalg.solve(M, (flat if b is None else flat - b)[..., None])[..., 0]
                   if per_sample else np.linalg.solve(M, (flat if b is None else flat - b).T).T)
            dz = (np.linalg.solve(np.swapaxes(M, -1, -2), G[..., None])[..., 0] if per_sample
                  else np.linalg.solve(M.T, G.T).T)
            dM = (-np.einsum("ni,nj->nij", dz, out) if per_sample else -dz.T @ out) - log_term
            d_in, d_bias = dz, -np.sum(dz, axis=0)
        else:
            d_in = np.einsum("nij,ni->nj", M, G) if per_sample else G @ M
            dM = (np.einsum("ni,nj->nij", G, flat) if per_sample else G.T @ flat) + log_term
            if self.bug == "logdet's gradient dropped":
                dM = dM - log_term
            d_bias = np.sum(G, axis=0)
        params = self.matrix_adjoint(layer, x.shape[1:], dM)
        if b is not None:
            params.append(d_bias)
        return d_in.reshape(x.shape), params

    # -- any layer, flows ------------------------------------------------------------------

    def layer(self, layer, x, inverse=False):
        kind = type(layer).__name__
        if kind in ("AdditiveCoupling", "AffineCoupling"):
            return self.coupling(x, layer.mask, layer.conditioner, kind == "AffineCoupling",
                                 _settings(layer), inverse)
        if kind in ("Permutation", "Reverse"):
            return self.permute(x, _perm(layer, x), inverse)
        if kind == "ActNorm":
            return self.actnorm(x, layer.log_scale, layer.shift, inverse)
        return self.linear(layer, x, inverse)

    def layer_vjp(self, layer, x, g, gl, inverse=False):
        dx, params = self._layer_vjp(layer, x, g, gl, inverse)
        if self.bug == "parameter cotangents halved":
            params = _scaled(params, 0.5)
        return dx, params

    def _layer_vjp(self, layer, x, g, gl, inverse):
        kind = type(layer).__name__
        if kind in ("AdditiveCoupling", "AffineCoupling"):
            dx, grads = self.coupling_vjp(x, layer.mask, layer.conditioner, g, gl,
                                          kind == "AffineCoupling", _settings(layer), inverse)
            return dx, grads
        if kind in ("Permutation", "Reverse"):
            return self.permute_vjp(x, _perm(layer, x), g, inverse), []
        if kind == "ActNorm":
            dx, da, db = self.actnorm_vjp(x, layer.log_scale, layer.shift, g, gl, inverse)
            return dx, [da, db]
        return self.linear_vjp(layer, x, g, gl, inverse)

    def flow(self, flow, x, inverse=False):
        """``(output, logdet)`` of any layer or Sequential, in float64."""
        layers = _layers(flow)
        if inverse != (self.bug == "layers in reverse order"):
            layers = layers[::-1]
        logdet = np.zeros(x.shape[0])
        for layer in layers:
            x, ld = self.layer(layer, x, inverse)
            ld = 2.0 * ld if self.bug == "every logdet doubled" else ld
            logdet = ld if self.bug == "only the last logdet" else logdet + ld
        return x, logdet

    def flow_vjp(self, flow, x, g, gl, inverse=False):
        """``(d input, flow cotangent)``: a list per layer for a Sequential, the layer's list otherwise."""
        layers = _layers(flow)
        order = list(range(len(layers)))[::-1] if inverse else list(range(len(layers)))
        inputs = []
        for i in order:
            inputs.append(x)
            x, _ = self.layer(layers[i], x, inverse)
        grads = [None] * len(layers)
        for i, a in zip(reversed(order), reversed(inputs)):
            g, grads[i] = self.layer_vjp(layers[i], a, g, gl, inverse)
        return g, (grads if type(flow).__name__ == "Sequential" else grads[0])


def _settings(layer):
    return {k: getattr(layer, k, None) for k in ("scale", "split", "clamp")}


def _perm(layer, x):
    return layer.perm if type(layer).__name__ == "Permutation" else tuple(range(x.shape[1] - 1, -1, -1))


def _layers(flow):
    return list(flow.layers) if type(flow).__name__ == "Sequential" else [flow]


def _scaled(tree, factor):
    if isinstance(tree, list):
        return [_scaled(t, factor) for t in tree]
    if isinstance(tree, dict):
        return {k: _scaled(v, factor) for k, v in tree.items()}
    return factor * tree


def cast(tree, dtype):
    """Every array of a cotangent structure (lists, dicts, arrays) in ``dtype``."""
    if isinstance(tree, list):
        return [cast(t, dtype) for t in tree]
    if isinstance(tree, dict):
        return {k: cast(v, dtype) for k, v in tree.items()}
    return np.asarray(tree).astype(dtype)


def gaussian_logpdf(z):
    flat = _flat(z)
    return -0.5 * np.sum(flat * flat, axis=1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)
