"""Teeth for the periodic convolution ops: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate uses complex
``np.fft.fft2`` and per-frequency ``np.linalg`` (``solve``, ``slogdet``,
``inv``); its VJPs are derived here. With ``A(f) = K_hat(f)`` the
``c_out x c_in`` matrix of frequency ``f`` and ``x_hat(f)`` the column of
channels:

* ``z_hat = A x_hat``: ``dx_hat = A^H g_hat``, ``dA = sum_batch g_hat x_hat^H``;
* the inverse ``x_hat = A^-1 z_hat``: ``dz_hat = A^-H g_hat``,
  ``dA = -sum_batch dz_hat x_hat^H``;
* ``l = sum_f log|det A(f)|``: ``dl/dK[o, i, m] = Re F(A^-T)[o, i, m]``;
  the sign from the self-conjugate frequencies.

``dA`` becomes ``dK`` by one inverse 2-D DFT. Each mutant changes one of
these lines.
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth, self_conjugate


def _per_frequency(K, s=None):
    """``A(f)``: ``(..., c_out, c_in, H, W)`` -> ``(..., H, W, c_out, c_in)``."""
    return np.moveaxis(np.fft.fft2(K, s=s), (-4, -3), (-2, -1))


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
            logabs = 2 * np.linalg.slogdet(A[..., : A.shape[-3] // 2 + 1, :, :])[1]
        sign = np.prod(np.sign(phase.real[..., self_conjugate(A.shape[-4:-2])]), axis=-1)
        if self.bug == "sign always +1":
            sign = np.ones_like(sign)
        return np.asarray(sign, dtype=K.dtype), np.sum(logabs, axis=(-2, -1)).astype(K.dtype)

    def slogdet_vjp(self, K, g):
        inv = np.linalg.inv(_per_frequency(K))
        if self.bug != "gradient with A^-1 for A^-T":
            inv = np.swapaxes(inv, -1, -2)
        inv = np.moveaxis(inv, (-2, -1), (-4, -3))
        if self.bug == "gradient without conjugate":
            grad = inv.shape[-2] * inv.shape[-1] * np.fft.ifft2(inv).real
        else:
            grad = np.fft.fft2(inv).real
        return ((np.reshape(g, np.shape(g) + (1, 1, 1, 1)) * grad).astype(K.dtype),)


TEETH = {
    "periodic_conv": class_teeth(
        Periodic, "forward", "vjp",
        ["transposed per-frequency matrix", "correlation instead of convolution",
         "zero padding instead of wrap-around", "dX without conjugate", "dK without conjugate"],
        {
            "transposed per-frequency matrix": {"matches ground truth", "matches refimpl forward",
                                                "k = 1 is the 1x1 convolution"},
            "correlation instead of convolution": {"matches ground truth",
                                                   "impulse response is the kernel"},
            "zero padding instead of wrap-around": {"shift equivariance"},
            "dX without conjugate": {"adjoint test in X", *GRADIENT_CHECKS},
            "dK without conjugate": {"adjoint test in K", *GRADIENT_CHECKS},
        },
    ),
    "periodic_conv_inverse": class_teeth(
        Periodic, "inverse", "inverse_vjp",
        ["transposed per-frequency matrix", "multiplies instead of solving",
         "dZ without conjugate", "dK sign flipped"],
        {
            "transposed per-frequency matrix": {"matches ground truth",
                                                "round trip with periodic_conv (error / cond)"},
            "multiplies instead of solving": {"matches ground truth",
                                              "round trip with periodic_conv (error / cond)"},
            "dZ without conjugate": {"adjoint test in Z", *GRADIENT_CHECKS},
            "dK sign flipped": GRADIENT_CHECKS,
        },
    ),
    "periodic_conv_slogdet": class_teeth(
        Periodic, "slogdet", "slogdet_vjp",
        ["sign always +1", "half spectrum, every bin weighted 2", "gradient with A^-1 for A^-T",
         "gradient without conjugate"],
        {
            "sign always +1": {"matches ground truth", "log-determinant of the Jacobian"},
            "half spectrum, every bin weighted 2": {"matches ground truth",
                                                    "log-determinant of the Jacobian"},
            "gradient with A^-1 for A^-T": GRADIENT_CHECKS,
            "gradient without conjugate": GRADIENT_CHECKS,
        },
    ),
}
