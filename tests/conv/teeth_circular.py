"""Teeth for the FFT convolution ops: an independent NumPy implementation and planted bugs.

Read by tests/test_verify_teeth.py. The correct candidates use ``np.fft`` on
the complex path only (refimpl defaults to real FFTs), per-frequency
``np.linalg`` for the periodic ops, index arrays for the kernel embedding and
the LU factors written out for Glow; the VJPs are derived here. With hats
the unnormalised DFT over the grid and bars complex conjugates:

* circular ``Z = F^-1(K_hat X_hat)``: ``dX = F^-1(conj(K_hat) G_hat)``,
  ``dK = sum_batch F^-1(G_hat conj(X_hat))``;
* its inverse ``X = F^-1(Z_hat / K_hat)``: ``dZ = F^-1(G_hat / conj(K_hat))``,
  ``dK = -sum_batch F^-1(dZ_hat conj(X_hat))``;
* ``l = sum_f log|K_hat[f]|``: ``dl/dK[m] = Re sum_f e^{-2 pi i <f, m/N>} / K_hat[f]
  = Re F(1 / K_hat)[m]``; sign from the self-conjugate bins ``2 f = 0 mod N``;
* periodic ``z_hat(f) = A(f) x_hat(f)``: ``dx_hat = A^H g_hat``,
  ``dA = sum_batch g_hat x_hat^H``; inverse ``dz_hat = A^-H g_hat``,
  ``dA = -sum_batch dz_hat x_hat^H``; ``l = sum_f log|det A(f)|``:
  ``dl/dK[o, i, m] = Re F(A^-T)[o, i, m]``;
* embedding ``K[o, i, (p - a) mod H, (p - b) mod W] = w[o, i, a, b]``: ``dw`` gathers ``G``
  at the same indices;
* Glow ``W = P A B``, ``A = tril(L, -1) + I``, ``B = triu(U, 1) + diag(s)``:
  with ``dM = P^T dW``, ``dL = tril(dM B^T, -1)``, ``dU = triu(A^T dM, 1)``,
  ``ds = diag(A^T dM)``; forward ``dW = sum G X^T``, inverse
  ``dZ = W^-T G``, ``dW = -sum dZ X^T``; ``l = H W sum log|s|``, ``ds = H W / s``.

Each mutant changes one of these lines; a candidate sees the op's params
without ``method`` (a refimpl-only option).
"""

from __future__ import annotations

import numpy as np

from verify import Candidate
from verify.testing import Teeth


# -- grid helpers: the grid axes moved to the end, complex FFTs over them ---------------------


def _grid_axes(x, axes):
    if axes is None:
        return tuple(range(x.ndim))
    return tuple(a % x.ndim for a in np.atleast_1d(axes))


def _to_end(x, axes):
    return np.moveaxis(x, axes, tuple(range(-len(axes), 0)))


def _from_end(x, axes):
    return np.moveaxis(x, tuple(range(-len(axes), 0)), axes)


def _fft(x, d, s=None):
    return np.fft.fftn(x, s=s, axes=tuple(range(-d, 0)))


def _ifft(y, d):
    return np.fft.ifftn(y, axes=tuple(range(-d, 0))).real


def _batch_sum(x, d):
    """Sum over the leading (batch) axes, keeping the last ``d``."""
    return np.sum(x.reshape((-1,) + x.shape[x.ndim - d:]), axis=0)


def _self_conjugate(grid):
    """Mask of the bins with ``f = -f mod N`` on every axis."""
    mask = np.ones(grid, dtype=bool)
    for j, n in enumerate(grid):
        f = np.arange(n).reshape([-1 if k == j else 1 for k in range(len(grid))])
        mask = mask & ((2 * f) % n == 0)
    return mask


def _pair(sign, logabsdet, dtype):
    return np.stack(np.broadcast_arrays(sign, logabsdet), axis=-1).astype(dtype)


# -- circular convolution ---------------------------------------------------------------------


class Circular:
    """``circular_conv``, ``_inverse`` and ``_slogdet``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _kernel_hat(self, K, d):
        K_hat = _fft(K, d)
        return np.conj(K_hat) if self.bug == "correlation instead of convolution" else K_hat

    def forward(self, X, K, axes=None):
        axes = _grid_axes(X, axes)
        d, Xm = len(axes), _to_end(X, axes)
        if self.bug == "zero padding instead of wrap-around":
            s = tuple(2 * n - 1 for n in K.shape)
            full = _ifft(_fft(K, d, s) * _fft(Xm, d, s), d)
            Z = full[(..., *(slice(0, n) for n in K.shape))]
        else:
            Z = _ifft(self._kernel_hat(K, d) * _fft(Xm, d), d)
        return _from_end(Z, axes).astype(X.dtype)

    def vjp(self, X, K, G, axes=None):
        axes = _grid_axes(X, axes)
        d = len(axes)
        K_hat, X_hat, G_hat = _fft(K, d), _fft(_to_end(X, axes), d), _fft(_to_end(G, axes), d)
        k_adj = K_hat if self.bug == "dX without conjugate" else np.conj(K_hat)
        x_adj = X_hat if self.bug == "dK without conjugate" else np.conj(X_hat)
        dX = _from_end(_ifft(k_adj * G_hat, d), axes)
        dK = _batch_sum(_ifft(x_adj * G_hat, d), d)
        return dX.astype(X.dtype), dK.astype(K.dtype)

    def inverse(self, Z, K, axes=None):
        axes = _grid_axes(Z, axes)
        d = len(axes)
        K_hat, Z_hat = self._kernel_hat(K, d), _fft(_to_end(Z, axes), d)
        X_hat = Z_hat * K_hat if self.bug == "multiplies instead of divides" else Z_hat / K_hat
        return _from_end(_ifft(X_hat, d), axes).astype(Z.dtype)

    def inverse_vjp(self, Z, K, G, axes=None):
        axes = _grid_axes(Z, axes)
        d = len(axes)
        K_hat, G_hat = _fft(K, d), _fft(_to_end(G, axes), d)
        X_hat = _fft(_to_end(Z, axes), d) / K_hat
        dZ_hat = G_hat / (K_hat if self.bug == "dZ without conjugate" else np.conj(K_hat))
        sign = 1.0 if self.bug == "dK sign flipped" else -1.0
        dK = sign * _batch_sum(_ifft(dZ_hat * np.conj(X_hat), d), d)
        return _from_end(_ifft(dZ_hat, d), axes).astype(Z.dtype), dK.astype(K.dtype)

    def slogdet(self, K, axes=None):
        axes = _grid_axes(K, axes)
        d, Km = len(axes), _to_end(K, axes)
        K_hat = _fft(Km, d)
        if self.bug == "half spectrum, every bin weighted 2":
            half = np.fft.rfftn(Km, axes=tuple(range(-d, 0)))
            logabsdet = 2 * np.sum(np.log(np.abs(half)), axis=tuple(range(-d, 0)))
        else:
            logabsdet = np.sum(np.log(np.abs(K_hat)), axis=tuple(range(-d, 0)))
        sign = np.prod(np.sign(K_hat.real[..., _self_conjugate(Km.shape[-d:])]), axis=-1)
        if self.bug == "sign always +1":
            sign = np.ones_like(sign)
        return _pair(sign, logabsdet, K.dtype)

    def slogdet_vjp(self, K, g, axes=None):
        axes = _grid_axes(K, axes)
        d = len(axes)
        K_hat = _fft(_to_end(K, axes), d)
        if self.bug == "gradient without conjugate":
            grad = np.prod(K_hat.shape[-d:]) * _ifft(1.0 / K_hat, d)
        else:
            grad = _fft(1.0 / K_hat, d).real
        dK = g[..., 1].reshape(g.shape[:-1] + (1,) * d) * grad
        return (_from_end(dK, axes).astype(K.dtype),)


# -- multi-channel periodic convolution -------------------------------------------------------


def _per_frequency(K, s=None):
    """``A(f)``, shape ``(H, W, c_out, c_in)``."""
    return np.moveaxis(np.fft.fft2(K, s=s), (0, 1), (-2, -1))


def _pixels_last(Y):
    """``(..., c, H, W)`` spectra as ``(..., H, W, c, 1)`` column vectors."""
    return np.moveaxis(Y, -3, -1)[..., None]


def _channels_first(Y):
    return np.moveaxis(Y[..., 0], -1, -3)


def _outer_sum(a, b):
    """``sum_batch a b^H`` per frequency: ``(..., H, W, c, 1)`` twice -> ``(c, c, H, W)``."""
    a, b = a[..., 0], b[..., 0]
    H, W = a.shape[-3:-1]
    prod = np.einsum("bhwo,bhwi->oihw", a.reshape((-1, H, W, a.shape[-1])),
                     np.conj(b).reshape((-1, H, W, b.shape[-1])))
    return np.fft.ifft2(prod).real


class Periodic:
    """``periodic_conv``, ``_inverse`` and ``_slogdet``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _A(self, K, s=None):
        A = _per_frequency(K, s)
        if self.bug == "transposed per-frequency matrix":
            A = np.swapaxes(A, -1, -2)
        if self.bug == "correlation instead of convolution":
            A = np.conj(A)
        return A

    def forward(self, X, K):
        H, W = X.shape[-2:]
        s = (2 * H - 1, 2 * W - 1) if self.bug == "zero padding instead of wrap-around" else None
        Z = np.fft.ifft2(_channels_first(self._A(K, s) @ _pixels_last(np.fft.fft2(X, s=s)))).real
        return Z[..., :H, :W].astype(X.dtype)

    def vjp(self, X, K, G):
        A, x, g = _per_frequency(K), _pixels_last(np.fft.fft2(X)), _pixels_last(np.fft.fft2(G))
        A_adj = np.swapaxes(A if self.bug == "dX without conjugate" else np.conj(A), -1, -2)
        dX = np.fft.ifft2(_channels_first(A_adj @ g)).real
        dK = _outer_sum(g, np.conj(x) if self.bug == "dK without conjugate" else x)
        return dX.astype(X.dtype), dK.astype(K.dtype)

    def inverse(self, Z, K):
        A, z = self._A(K), _pixels_last(np.fft.fft2(Z))
        x = A @ z if self.bug == "multiplies instead of solving" else np.linalg.solve(A, z)
        return np.fft.ifft2(_channels_first(x)).real.astype(Z.dtype)

    def inverse_vjp(self, Z, K, G):
        A, g = _per_frequency(K), _pixels_last(np.fft.fft2(G))
        x = np.linalg.solve(A, _pixels_last(np.fft.fft2(Z)))
        A_adj = np.swapaxes(A if self.bug == "dZ without conjugate" else np.conj(A), -1, -2)
        dz = np.linalg.solve(A_adj, g)
        sign = 1.0 if self.bug == "dK sign flipped" else -1.0
        dZ = np.fft.ifft2(_channels_first(dz)).real
        return dZ.astype(Z.dtype), (sign * _outer_sum(dz, x)).astype(K.dtype)

    def slogdet(self, K):
        A = _per_frequency(K)
        phase, logabs = np.linalg.slogdet(A)
        if self.bug == "half spectrum, every bin weighted 2":
            logabs = 2 * np.linalg.slogdet(A[:, : A.shape[1] // 2 + 1])[1]
        sign = np.prod(np.sign(phase.real[_self_conjugate(A.shape[:2])]))
        if self.bug == "sign always +1":
            sign = 1.0
        return _pair(sign, np.sum(logabs), K.dtype)

    def slogdet_vjp(self, K, g):
        inv = np.linalg.inv(_per_frequency(K))
        if self.bug != "gradient with A^-1 for A^-T":
            inv = np.swapaxes(inv, -1, -2)
        inv = np.moveaxis(inv, (-2, -1), (0, 1))
        if self.bug == "gradient without conjugate":
            grad = inv.shape[-2] * inv.shape[-1] * np.fft.ifft2(inv).real
        else:
            grad = np.fft.fft2(inv).real
        return ((g[..., 1] * grad).astype(K.dtype),)


# -- kernel embedding -------------------------------------------------------------------------


class Embed:
    """``embed_kernel`` by index arrays; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _index(self, kh, kw, shape):
        def one(k, n):
            p = (k + 1) // 2 if self.bug == "centre off by one" else k // 2
            a = np.arange(k)
            return (a - p) % n if self.bug == "kernel not flipped" else (p - a) % n
        return one(kh, shape[0])[:, None], one(kw, shape[1])[None, :]

    def _oihw(self, w, layout):
        if layout == "hwio" and self.bug != "hwio read as oihw":
            return np.transpose(w, (3, 2, 0, 1))
        return w

    def forward(self, w, shape, layout="oihw"):
        w = self._oihw(w, layout)
        K = np.zeros(w.shape[:2] + tuple(shape), dtype=w.dtype)
        K[(slice(None), slice(None)) + self._index(*w.shape[2:], shape)] = w
        return K

    def vjp(self, w, G, shape, layout="oihw"):
        kh, kw = self._oihw(w, layout).shape[2:]
        rows, cols = Embed()._index(kh, kw, shape)
        if self.bug == "dw gathers G unflipped":
            rows, cols = Embed("kernel not flipped")._index(kh, kw, shape)
        dw = G[:, :, rows, cols]
        if layout == "hwio" and self.bug != "dw left in oihw":
            dw = np.transpose(dw, (2, 3, 1, 0))
        return (dw.astype(w.dtype),)


# -- Glow's invertible 1x1 convolution --------------------------------------------------------


def _perm_sign(perm):
    inversions = sum(perm[i] > perm[j] for i in range(len(perm)) for j in range(i + 1, len(perm)))
    return -1.0 if inversions % 2 else 1.0


def _pixel_columns(X):
    """``(..., c, H, W)`` as ``(-1, c, H W)``."""
    c = X.shape[-3]
    return X.reshape((-1, c, X.shape[-2] * X.shape[-1]))


class Glow:
    """``glow_conv1x1``, ``_inverse`` and ``_slogdet``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _factors(self, L, U, s, perm):
        """``A``, ``B`` and ``W = P A B``, ``(P M)[i] = M[perm[i]]``."""
        eye = np.eye(s.shape[0], dtype=s.dtype)
        A = np.tril(L) if self.bug == "L's diagonal used (not unit)" else np.tril(L, -1) + eye
        B = np.triu(U) if self.bug == "U's diagonal kept beside s" else np.triu(U, 1)
        B = B + np.diag(s)
        M = A @ B
        if perm is None:
            return A, B, M
        if self.bug == "inverse permutation":
            W = np.empty_like(M)
            W[list(perm)] = M
            return A, B, W
        return A, B, M[list(perm)]

    def _factor_vjp(self, A, B, perm, dW):
        dM = dW
        if perm is not None:
            dM = np.empty_like(dW)
            dM[list(perm)] = dW
        dA, dB = dM @ B.T, A.T @ dM
        dL = np.tril(dA) if self.bug == "dL keeps the unit diagonal" else np.tril(dA, -1)
        return dL, np.triu(dB, 1), np.diag(dB).copy()

    def forward(self, X, L, U, s, perm=None):
        W = self._factors(L, U, s, perm)[2]
        if self.bug == "transposed weight":
            W = W.T
        return np.einsum("oi,...ihw->...ohw", W, X).astype(X.dtype)

    def vjp(self, X, L, U, s, G, perm=None):
        A, B, W = self._factors(L, U, s, perm)
        dX = np.einsum("oi,...ohw->...ihw", W.T if self.bug == "dX = W G" else W, G)
        dW = np.einsum("boh,bih->oi", _pixel_columns(G), _pixel_columns(X))
        dL, dU, ds = self._factor_vjp(A, B, perm, dW)
        return dX.astype(X.dtype), dL.astype(L.dtype), dU.astype(U.dtype), ds.astype(s.dtype)

    def _solve(self, W, Z):
        x = np.linalg.solve(W, np.moveaxis(Z, -3, -1)[..., None])
        return np.moveaxis(x[..., 0], -1, -3)

    def inverse(self, Z, L, U, s, perm=None):
        W = self._factors(L, U, s, perm)[2]
        return self._solve(W.T if self.bug == "W^T solved" else W, Z).astype(Z.dtype)

    def inverse_vjp(self, Z, L, U, s, G, perm=None):
        A, B, W = self._factors(L, U, s, perm)
        X = self._solve(W, Z)
        dZ = self._solve(W if self.bug == "dZ solved with W, not W^T" else W.T, G)
        sign = 1.0 if self.bug == "dW sign flipped" else -1.0
        dW = sign * np.einsum("boh,bih->oi", _pixel_columns(dZ), _pixel_columns(X))
        dL, dU, ds = self._factor_vjp(A, B, perm, dW)
        return dZ.astype(Z.dtype), dL.astype(L.dtype), dU.astype(U.dtype), ds.astype(s.dtype)

    def slogdet(self, s, shape, perm=None):
        hw = 1 if self.bug == "H W factor dropped" else shape[0] * shape[1]
        base = np.prod(np.sign(s))
        if perm is not None and self.bug != "permutation sign ignored":
            base = base * _perm_sign(perm)
        sign = base if self.bug == "sign not raised to the power H W" else base ** (shape[0] * shape[1])
        return _pair(sign, hw * np.sum(np.log(np.abs(s))), s.dtype)

    def slogdet_vjp(self, s, g, shape, perm=None):
        denominator = np.abs(s) if self.bug == "gradient H W / |s|" else s
        return ((g[..., 1] * shape[0] * shape[1] / denominator).astype(s.dtype),)


# -- the table --------------------------------------------------------------------------------


def _candidates(cls, forward, vjp, bugs):
    """``(correct, {bug: mutant})``: each candidate is ``cls(bug).forward``, ``.vjp``."""
    def make(bug):
        obj = cls(bug)
        return Candidate(getattr(obj, forward), vjp=getattr(obj, vjp))
    return make(None), {bug: make(bug) for bug in bugs}


def _teeth(cls, forward, vjp, bugs, caught_by, **options):
    correct, mutants = _candidates(cls, forward, vjp, bugs)
    return Teeth(correct=correct, mutants=mutants, caught_by=caught_by, options=options)


_GRADIENT_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}

TEETH = {
    "circular_conv": _teeth(
        Circular, "forward", "vjp",
        ["correlation instead of convolution", "zero padding instead of wrap-around",
         "dX without conjugate", "dK without conjugate"],
        {
            "correlation instead of convolution": {
                "matches ground truth", "impulse response is the kernel",
                "matches scipy.ndimage.convolve (wrap)", "matches folded scipy.signal.convolve (full)",
                "3-D conv == periodic conv with channel-circulant kernel"},
            "zero padding instead of wrap-around": {"shift equivariance", "matches ground truth"},
            "dX without conjugate": {"adjoint test", "adjoint matches scipy.ndimage.correlate (wrap)",
                                     *_GRADIENT_CHECKS},
            "dK without conjugate": _GRADIENT_CHECKS,
        },
    ),
    "circular_conv_inverse": _teeth(
        Circular, "inverse", "inverse_vjp",
        ["multiplies instead of divides", "correlation instead of convolution",
         "dZ without conjugate", "dK sign flipped"],
        {
            "multiplies instead of divides": {"matches ground truth", "round trip (error / cond)"},
            "correlation instead of convolution": {"matches ground truth", "round trip (error / cond)"},
            "dZ without conjugate": {"adjoint test", *_GRADIENT_CHECKS},
            "dK sign flipped": _GRADIENT_CHECKS,
        },
    ),
    "circular_conv_slogdet": _teeth(
        Circular, "slogdet", "slogdet_vjp",
        ["sign always +1", "half spectrum, every bin weighted 2", "gradient without conjugate"],
        {
            "sign always +1": {"matches ground truth"},
            "half spectrum, every bin weighted 2": {
                "matches ground truth", "3-D logdet == periodic logdet with channel-circulant kernel"},
            "gradient without conjugate": _GRADIENT_CHECKS,
        },
    ),
    "periodic_conv": _teeth(
        Periodic, "forward", "vjp",
        ["transposed per-frequency matrix", "correlation instead of convolution",
         "zero padding instead of wrap-around", "dX without conjugate", "dK without conjugate"],
        {
            "transposed per-frequency matrix": {"matches ground truth", "k = 1 is the 1x1 convolution"},
            "correlation instead of convolution": {"matches ground truth",
                                                   "impulse response is the kernel"},
            "zero padding instead of wrap-around": {"shift equivariance"},
            "dX without conjugate": {"adjoint test", *_GRADIENT_CHECKS},
            "dK without conjugate": _GRADIENT_CHECKS,
        },
    ),
    "periodic_conv_inverse": _teeth(
        Periodic, "inverse", "inverse_vjp",
        ["transposed per-frequency matrix", "multiplies instead of solving",
         "dZ without conjugate", "dK sign flipped"],
        {
            "transposed per-frequency matrix": {"matches ground truth", "round trip (error / cond)"},
            "multiplies instead of solving": {"matches ground truth", "round trip (error / cond)"},
            "dZ without conjugate": {"adjoint test", *_GRADIENT_CHECKS},
            "dK sign flipped": _GRADIENT_CHECKS,
        },
    ),
    "periodic_conv_slogdet": _teeth(
        Periodic, "slogdet", "slogdet_vjp",
        ["sign always +1", "half spectrum, every bin weighted 2", "gradient with A^-1 for A^-T",
         "gradient without conjugate"],
        {
            "sign always +1": {"matches ground truth"},
            "half spectrum, every bin weighted 2": {"matches ground truth"},
            "gradient with A^-1 for A^-T": _GRADIENT_CHECKS,
            "gradient without conjugate": _GRADIENT_CHECKS,
        },
    ),
    "embed_kernel": _teeth(
        Embed, "forward", "vjp",
        ["centre off by one", "kernel not flipped", "hwio read as oihw", "dw gathers G unflipped",
         "dw left in oihw"],
        {
            "centre off by one": {"matches ground truth", "layer matches scipy.ndimage.correlate (wrap)",
                                  "layer matches circular padding + cross-correlation"},
            "kernel not flipped": {"layer matches scipy.ndimage.correlate (wrap)",
                                   "layer matches circular padding + cross-correlation"},
            "hwio read as oihw": {"matches ground truth"},
            "dw gathers G unflipped": {"adjoint test", *_GRADIENT_CHECKS},
            "dw left in oihw": {"adjoint test", *_GRADIENT_CHECKS},
        },
    ),
    "glow_conv1x1": _teeth(
        Glow, "forward", "vjp",
        ["L's diagonal used (not unit)", "U's diagonal kept beside s", "inverse permutation",
         "transposed weight", "dX = W G", "dL keeps the unit diagonal"],
        {
            "L's diagonal used (not unit)": {"matches ground truth", "k = 1 case of periodic_conv"},
            "U's diagonal kept beside s": {"matches ground truth", "factors of scipy.linalg.lu"},
            "inverse permutation": {"matches ground truth", "factors of scipy.linalg.lu"},
            "transposed weight": {"matches ground truth", "k = 1 case of periodic_conv",
                                  "factors of scipy.linalg.lu"},
            "dX = W G": {"adjoint test", *_GRADIENT_CHECKS},
            "dL keeps the unit diagonal": _GRADIENT_CHECKS,
        },
    ),
    "glow_conv1x1_inverse": _teeth(
        Glow, "inverse", "inverse_vjp",
        ["W^T solved", "U's diagonal kept beside s", "dZ solved with W, not W^T", "dW sign flipped"],
        {
            "W^T solved": {"matches ground truth"},
            "U's diagonal kept beside s": {"matches ground truth"},
            "dZ solved with W, not W^T": {"adjoint test", *_GRADIENT_CHECKS},
            "dW sign flipped": _GRADIENT_CHECKS,
        },
    ),
    "glow_conv1x1_slogdet": _teeth(
        Glow, "slogdet", "slogdet_vjp",
        ["H W factor dropped", "permutation sign ignored", "sign not raised to the power H W",
         "gradient H W / |s|"],
        {
            "H W factor dropped": {"matches ground truth", "k = 1 logdet == periodic logdet"},
            "permutation sign ignored": {"matches ground truth", "k = 1 logdet == periodic logdet"},
            "sign not raised to the power H W": {"matches ground truth"},
            "gradient H W / |s|": _GRADIENT_CHECKS,
        },
        # An odd permutation on an odd grid is rare among 10 drawn cases; these checks are cheap.
        max_examples=50,
    ),
}
