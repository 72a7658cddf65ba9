"""Teeth for Glow's 1x1 convolution: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate writes the factors
out, ``W = P A B`` with ``A = tril(L, -1) + I``, ``B = triu(U, 1) + diag(s)``
and ``(P M)[i] = M[perm[i]]``, and derives its VJPs here: with
``dM = P^T dW``, ``dL = tril(dM B^T, -1)``, ``dU = triu(A^T dM, 1)``,
``ds = diag(A^T dM)``; the forward has ``dW = sum G X^T`` and ``dX = W^T G``,
the inverse ``dZ = W^-T G`` and ``dW = -sum dZ X^T``; the log-determinant
``l = H W sum log|s|`` has ``ds = H W / s`` and the sign
``(det P prod sign s)^(H W)``, ``det P`` by counting inversions. Each mutant
changes one of these lines.
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth


def _perm_sign(perm):
    inversions = sum(perm[i] > perm[j] for i in range(len(perm)) for j in range(i + 1, len(perm)))
    return -1.0 if inversions % 2 else 1.0


def _pixel_columns(X):
    """``(..., c, H, W)`` as ``(-1, c, H W)``."""
    c = X.shape[-3]
    return X.reshape((-1, c, X.shape[-2] * X.shape[-1]))


class Glow:
    """The 1x1 convolution, its inverse, log-determinant and weight; ``bug`` plants one mistake."""

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

    def weight(self, L, U, s, perm=None):
        return self._factors(L, U, s, perm)[2]

    def weight_vjp(self, L, U, s, G, perm=None):
        A, B, _ = self._factors(L, U, s, perm)
        return tuple(c.astype(s.dtype) for c in self._factor_vjp(A, B, perm, G))

    def forward(self, X, L, U, s, perm=None):
        W = self.weight(L, U, s, perm)
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
        W = self.weight(L, U, s, perm)
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
        return np.asarray(sign, dtype=s.dtype), np.asarray(hw * np.sum(np.log(np.abs(s))), dtype=s.dtype)

    def slogdet_vjp(self, s, g, shape, perm=None):
        denominator = np.abs(s) if self.bug == "gradient H W / |s|" else s
        return ((g * shape[0] * shape[1] / denominator).astype(s.dtype),)


TEETH = {
    "glow_conv1x1": class_teeth(
        Glow, "forward", "vjp",
        ["L's diagonal used (not unit)", "U's diagonal kept beside s", "inverse permutation",
         "transposed weight", "dX = W G", "dL keeps the unit diagonal"],
        {
            "L's diagonal used (not unit)": {"matches ground truth", "matches refimpl forward",
                                             "k = 1 case of periodic_conv"},
            "U's diagonal kept beside s": {"matches ground truth", "factors of scipy.linalg.lu"},
            "inverse permutation": {"matches ground truth", "factors of scipy.linalg.lu"},
            "transposed weight": {"matches ground truth", "k = 1 case of periodic_conv",
                                  "factors of scipy.linalg.lu"},
            "dX = W G": {"adjoint test in X", *GRADIENT_CHECKS},
            "dL keeps the unit diagonal": GRADIENT_CHECKS,
        },
    ),
    "glow_conv1x1_inverse": class_teeth(
        Glow, "inverse", "inverse_vjp",
        ["W^T solved", "U's diagonal kept beside s", "dZ solved with W, not W^T", "dW sign flipped"],
        {
            "W^T solved": {"matches ground truth", "matches refimpl forward",
                           "round trip with glow_conv1x1 (error / cond)"},
            "U's diagonal kept beside s": {"matches ground truth"},
            "dZ solved with W, not W^T": {"adjoint test in Z", *GRADIENT_CHECKS},
            "dW sign flipped": GRADIENT_CHECKS,
        },
    ),
    "glow_conv1x1_slogdet": class_teeth(
        Glow, "slogdet", "slogdet_vjp",
        ["H W factor dropped", "permutation sign ignored", "sign not raised to the power H W",
         "gradient H W / |s|"],
        {
            "H W factor dropped": {"matches ground truth", "matches refimpl forward",
                                   "log-determinant of the Jacobian", "k = 1 logdet == periodic logdet"},
            "permutation sign ignored": {"matches ground truth", "log-determinant of the Jacobian",
                                         "k = 1 logdet == periodic logdet"},
            "sign not raised to the power H W": {"matches ground truth"},
            "gradient H W / |s|": GRADIENT_CHECKS,
        },
        # An odd permutation on an odd grid is rare among 10 drawn cases; these checks are cheap.
        max_examples=50,
    ),
    "glow_lu_weight": class_teeth(
        Glow, "weight", "weight_vjp",
        ["L's diagonal used (not unit)", "U's diagonal kept beside s", "inverse permutation",
         "dL keeps the unit diagonal"],
        {
            "L's diagonal used (not unit)": {"matches ground truth", "matches refimpl forward",
                                             "determinant is det P prod s"},
            "U's diagonal kept beside s": {"matches ground truth", "factors of scipy.linalg.lu",
                                           "determinant is det P prod s"},
            "inverse permutation": {"matches ground truth", "factors of scipy.linalg.lu"},
            "dL keeps the unit diagonal": GRADIENT_CHECKS,
        },
    ),
}
