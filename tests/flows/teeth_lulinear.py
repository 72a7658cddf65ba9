"""Teeth for nflows' LULinear: the dense weight ``W = A B`` (tests/_teeth_flows.py) and planted bugs.

The candidate forms ``A = tril(L, -1) + I`` and ``B = triu(U, 1) +
diag(softplus(u) + 1e-3)``, applies ``x W^T + b`` or solves with ``W``, takes
``log|det W|`` from ``numpy.linalg.slogdet`` and its gradient ``W^{-T}``, and
maps ``dW`` to the factors (``dA = dW B^T``, ``dB = A^T dW``, masked;
``du = ds sigmoid(u)``).
"""

from __future__ import annotations

from collections import namedtuple

from _teeth_flows import Flows
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

JACOBIAN = "log-determinant of the Jacobian"
LULinear = namedtuple("LULinear", "lower upper unconstrained_diag bias eps")


class LU(Flows):
    def _call(self, x, lower, upper, u, bias, inverse):
        out, logdet = self.linear(LULinear(lower, upper, u, bias, 1e-3), x, inverse)
        return out.astype(x.dtype), logdet.astype(x.dtype)

    def _vjp(self, x, lower, upper, u, g, gl, bias, inverse):
        dx, params = self.linear_vjp(LULinear(lower, upper, u, bias, 1e-3), x, g, gl, inverse)
        return (dx.astype(x.dtype), *(p.astype(x.dtype) for p in params),
                *([None] if bias is None else []))

    def forward(self, x, lower, upper, unconstrained_diag, bias=None):
        return self._call(x, lower, upper, unconstrained_diag, bias, False)

    def vjp(self, x, lower, upper, unconstrained_diag, gz, glogdet, bias=None):
        return self._vjp(x, lower, upper, unconstrained_diag, gz, glogdet, bias, False)

    def inverse(self, z, lower, upper, unconstrained_diag, bias=None):
        return self._call(z, lower, upper, unconstrained_diag, bias, True)

    def inverse_vjp(self, z, lower, upper, unconstrained_diag, gx, glogdet, bias=None):
        return self._vjp(z, lower, upper, unconstrained_diag, gx, glogdet, bias, True)


_BUGS = {
    "lower's diagonal used": {"matches ground truth", "nflows' parameter vectors",
                              "Glow's LU weight in nn.Linear rows"},
    "softplus without eps": {"matches ground truth", "Glow's LU weight in nn.Linear rows"},
    "du misses the softplus slope": GRADIENT_CHECKS,
    "logdet's gradient dropped": {"vjp: dot-product test", "vjp: autograd"},
}

TEETH = {
    "lu_linear": class_teeth(LU, "forward", "vjp", list(_BUGS), _BUGS),
    "lu_linear_inverse": class_teeth(
        LU, "inverse", "inverse_vjp", ["lower's diagonal used", "du misses the softplus slope"],
        {"lower's diagonal used": {"matches ground truth",
                                   "round trip with lu_linear (error / cond)", JACOBIAN},
         "du misses the softplus slope": GRADIENT_CHECKS}),
}
