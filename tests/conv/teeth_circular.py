"""Teeth for the circular convolution ops: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate uses ``np.fft`` on
the complex path only (refimpl defaults to real FFTs) with the grid axes
moved last; its VJPs are derived here. With hats the unnormalised DFT over
the grid and bars complex conjugates:

* ``Z = F^-1(K_hat X_hat)``: ``dX = F^-1(conj(K_hat) G_hat)``,
  ``dK = sum_batch F^-1(G_hat conj(X_hat))``;
* the inverse ``X = F^-1(Z_hat / K_hat)``: ``dZ = F^-1(G_hat / conj(K_hat))``,
  ``dK = -sum_batch F^-1(dZ_hat conj(X_hat))``;
* ``l = sum_f log|K_hat[f]|``: ``dl/dK[m] = Re sum_f e^{-2 pi i <f, m/N>} / K_hat[f]
  = Re F(1 / K_hat)[m]``; the sign from the self-conjugate bins ``2 f = 0 mod N``.

Each mutant changes one of these lines; a candidate sees the op's params
without ``method`` (a refimpl-only option).
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth, self_conjugate


def _grid_axes(x, axes):
    if axes is None:
        return tuple(range(x.ndim))
    return tuple(sorted(a % x.ndim for a in np.atleast_1d(axes)))


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
        last = tuple(range(-d, 0))
        K_hat = _fft(Km, d)
        if self.bug == "half spectrum, every bin weighted 2":
            logabsdet = 2 * np.sum(np.log(np.abs(np.fft.rfftn(Km, axes=last))), axis=last)
        else:
            logabsdet = np.sum(np.log(np.abs(K_hat)), axis=last)
        sign = np.prod(np.sign(K_hat.real[..., self_conjugate(Km.shape[-d:])]), axis=-1)
        if self.bug == "sign always +1":
            sign = np.ones_like(sign)
        return np.asarray(sign, dtype=K.dtype), np.asarray(logabsdet, dtype=K.dtype)

    def slogdet_vjp(self, K, g, axes=None):
        axes = _grid_axes(K, axes)
        d = len(axes)
        K_hat = _fft(_to_end(K, axes), d)
        if self.bug == "gradient without conjugate":
            grad = np.prod(K_hat.shape[-d:]) * _ifft(1.0 / K_hat, d)
        else:
            grad = _fft(1.0 / K_hat, d).real
        dK = np.reshape(g, np.shape(g) + (1,) * d) * grad
        return (_from_end(dK, axes).astype(K.dtype),)


TEETH = {
    "circular_conv": class_teeth(
        Circular, "forward", "vjp",
        ["correlation instead of convolution", "zero padding instead of wrap-around",
         "dX without conjugate", "dK without conjugate"],
        {
            "correlation instead of convolution": {
                "matches ground truth", "matches refimpl forward", "impulse response is the kernel",
                "matches scipy.ndimage.convolve (wrap)", "matches folded scipy.signal.convolve (full)",
                "3-D conv == periodic conv with channel-circulant kernel"},
            "zero padding instead of wrap-around": {"shift equivariance", "matches ground truth"},
            "dX without conjugate": {"adjoint test in X",
                                     "adjoint matches scipy.ndimage.correlate (wrap)", *GRADIENT_CHECKS},
            "dK without conjugate": {"adjoint test in K", *GRADIENT_CHECKS},
        },
    ),
    "circular_conv_inverse": class_teeth(
        Circular, "inverse", "inverse_vjp",
        ["multiplies instead of divides", "correlation instead of convolution",
         "dZ without conjugate", "dK sign flipped"],
        {
            "multiplies instead of divides": {"matches ground truth",
                                              "round trip with circular_conv (error / cond)"},
            "correlation instead of convolution": {"matches ground truth",
                                                   "round trip with circular_conv (error / cond)"},
            "dZ without conjugate": {"adjoint test in Z", *GRADIENT_CHECKS},
            "dK sign flipped": GRADIENT_CHECKS,
        },
    ),
    "circular_conv_slogdet": class_teeth(
        Circular, "slogdet", "slogdet_vjp",
        ["sign always +1", "half spectrum, every bin weighted 2", "gradient without conjugate"],
        {
            "sign always +1": {"matches ground truth", "log-determinant of the Jacobian"},
            "half spectrum, every bin weighted 2": {
                "matches ground truth", "log-determinant of the Jacobian",
                "3-D logdet == periodic logdet with channel-circulant kernel"},
            "gradient without conjugate": GRADIENT_CHECKS,
        },
    ),
}
