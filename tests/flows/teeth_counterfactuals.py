"""Teeth for counterfactuals: the flow in NumPy (tests/_teeth_flows.py), a dense projection, planted bugs.

``z' = z - (z . b) b / q`` with ``q = b . b`` on flattened representations;
the cotangents: ``dz = w P`` (``P = I - b b^T / q``, ``w`` the inverse's
input cotangent at ``z'``), ``db = -sum_n [(w_n . b) z_n + (z_n . b) w_n] / q
+ 2 sum_n (z_n . b)(w_n . b) b / q^2``, and the flow's from both passes.
"""

from __future__ import annotations

import numpy as np
from _teeth_flows import Flows, cast
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

TREE = "vjp: autograd of every array of flow"


def _add(a, b):
    if isinstance(a, list):
        return [_add(x, y) for x, y in zip(a, b)]
    if isinstance(a, dict):
        return {k: _add(a[k], b[k]) for k in a}
    return a + b


class Counterfactual(Flows):
    def _direction(self, b):
        """The direction moved along: ``b``, or (a planted bug) ``b + e_0``, oblique to it."""
        if self.bug == "oblique projection":
            return b + np.eye(b.size)[0]
        return b

    def forward(self, flow, beta, x):
        z, _ = self.flow(flow, x)
        b = beta.ravel().astype(np.float64)
        flat = z.reshape(z.shape[0], -1)
        c = self._direction(b)
        amount = flat @ b / (c @ b)
        if self.bug == "component halved":
            amount = 0.5 * amount
        moved = (flat - np.outer(amount, c)).reshape(z.shape)
        return self.flow(flow, moved, inverse=True)[0].astype(x.dtype)

    def vjp(self, flow, beta, x, g):
        z, _ = self.flow(flow, x)
        b = beta.ravel().astype(np.float64)
        q = b @ b
        flat = z.reshape(z.shape[0], -1)
        projection = np.eye(b.size) - np.outer(b, b) / q
        moved = (flat @ projection).reshape(z.shape)
        no_logdet = np.zeros(x.shape[0])
        w, dflow_inverse = self.flow_vjp(flow, moved, g, no_logdet, inverse=True)
        w = w.reshape(flat.shape)
        zb, wb = flat @ b, w @ b
        dbeta = -(wb @ flat + zb @ w) / q
        if self.bug != "beta's cotangent misses the norm's term":
            dbeta = dbeta + 2.0 * (zb @ wb) * b / q**2
        dx, dflow_forward = self.flow_vjp(flow, x, (w @ projection).reshape(z.shape), no_logdet)
        dflow = dflow_forward if self.bug == "inverse pass dropped from the flow's cotangent" \
            else _add(dflow_forward, dflow_inverse)
        return cast(dflow, x.dtype), dbeta.reshape(beta.shape).astype(x.dtype), dx.astype(x.dtype)


TEETH = {
    "counterfactual": class_teeth(
        Counterfactual, "forward", "vjp",
        ["component halved", "oblique projection", "beta's cotangent misses the norm's term",
         "inverse pass dropped from the flow's cotangent"],
        {"component halved": {"matches ground truth", "logit at the counterfactual is 0"},
         "oblique projection": {"matches ground truth", "representation moves only along beta"},
         "beta's cotangent misses the norm's term": GRADIENT_CHECKS,
         "inverse pass dropped from the flow's cotangent": {"vjp: dot-product test", TREE}},
    ),
}
