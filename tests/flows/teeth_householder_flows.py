"""Teeth for the Householder flow: dense reflector products (tests/_teeth_flows.py) and planted bugs.

The candidate multiplies ``U = H(v_1) ... H(v_K)`` densely (one per sample
for ``V (n, K, d)``), applies ``z = x U`` (``H_1`` first) or ``x = z U^T``,
and differentiates each reflector through the prefix and suffix products.
"""

from __future__ import annotations

from collections import namedtuple

from _teeth_flows import Flows
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

JACOBIAN = "log-determinant of the Jacobian"
HouseholderFlow = namedtuple("HouseholderFlow", "V")


class Householder(Flows):
    def _call(self, x, V, inverse):
        out, logdet = self.linear(HouseholderFlow(V), x, inverse)
        if self.bug == "logdet log 2":
            logdet = logdet + 0.693
        return out.astype(x.dtype), logdet.astype(x.dtype)

    def _vjp(self, x, V, g, gl, inverse):
        dx, (dV,) = self.linear_vjp(HouseholderFlow(V), x, g, gl, inverse)
        return dx.astype(x.dtype), dV.astype(x.dtype)

    def forward(self, x, V):
        return self._call(x, V, False)

    def vjp(self, x, V, gz, glogdet):
        return self._vjp(x, V, gz, glogdet, False)

    def inverse(self, z, V):
        return self._call(z, V, True)

    def inverse_vjp(self, z, V, gx, glogdet):
        return self._vjp(z, V, gx, glogdet, True)


_BUGS = {
    "H_K acts first": {"matches ground truth", "matches refimpl forward"},
    "reflector without its factor 2": {"matches ground truth", "orthogonal"},
    "logdet log 2": {"matches ground truth", JACOBIAN},
    "reflector cotangent negated": {"vjp: dot-product test", "vjp: autograd",
                                    "vjp: matches refimpl"},
}

TEETH = {
    "householder_flow": class_teeth(Householder, "forward", "vjp", list(_BUGS), _BUGS),
    "householder_flow_inverse": class_teeth(
        Householder, "inverse", "inverse_vjp", list(_BUGS),
        {**_BUGS, "H_K acts first": {"matches ground truth", "round trip with householder_flow"}}),
}
