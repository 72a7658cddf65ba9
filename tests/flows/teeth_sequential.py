"""Teeth for flows (flow_forward, flow_inverse, log_prob, sample): tests/_teeth_flows.py and planted bugs.

The candidate runs every layer kind from its class name and fields in
NumPy, sums the log-determinants, backpropagates layer by layer (each
log-determinant takes ``glogdet``), and adds ``log N(z; 0, I)`` by hand:
``log_prob``'s VJP is the flow's with ``gz = -g z``, ``glogdet = g``;
``sample``'s log density is ``log N(z) - logdet_inverse`` and its VJP the
inverse's with ``-glog_prob`` plus ``-glog_prob z``.
"""

from __future__ import annotations

import math

import numpy as np
from _teeth_flows import Flows, cast, gaussian_logpdf
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

TREE = "vjp: autograd of every array of flow"
JACOBIAN = "log-determinant of the Jacobian"


def per_sample(g, like):
    return g.reshape((-1,) + (1,) * (like.ndim - 1))


class FlowOps(Flows):
    """The four ops of refimpl.flows.sequential over any flow."""

    def forward(self, flow, x):
        z, logdet = self.flow(flow, x)
        return z.astype(x.dtype), logdet.astype(x.dtype)

    def forward_vjp(self, flow, x, gz, glogdet):
        dx, dflow = self.flow_vjp(flow, x, gz, glogdet)
        return cast(dflow, x.dtype), dx.astype(x.dtype)

    def inverse(self, flow, z):
        x, logdet = self.flow(flow, z, inverse=True)
        return x.astype(z.dtype), logdet.astype(z.dtype)

    def inverse_vjp(self, flow, z, gx, glogdet):
        dz, dflow = self.flow_vjp(flow, z, gx, glogdet, inverse=True)
        return cast(dflow, z.dtype), dz.astype(z.dtype)

    def _base(self, z):
        shift = 0.5 * math.prod(z.shape[1:]) * math.log(2 * math.pi)
        return gaussian_logpdf(z) + (shift if self.bug == "no log 2 pi" else 0.0)

    def log_prob(self, flow, x):
        z, logdet = self.flow(flow, x)
        sign = -1.0 if self.bug == "logdet subtracted" else 1.0
        return (self._base(z) + sign * logdet).astype(x.dtype)

    def log_prob_vjp(self, flow, x, g):
        z, _ = self.flow(flow, x)
        sign = 1.0 if self.bug == "base density's cotangent +g z" else -1.0
        dx, dflow = self.flow_vjp(flow, x, sign * per_sample(g, z) * z, g)
        return cast(dflow, x.dtype), dx.astype(x.dtype)

    def sample(self, flow, z):
        x, logdet = self.flow(flow, z, inverse=True)
        sign = 1.0 if self.bug == "inverse logdet added" else -1.0
        return x.astype(z.dtype), (self._base(z) + sign * logdet).astype(z.dtype)

    def sample_vjp(self, flow, z, gx, glog_prob):
        sign = 1.0 if self.bug == "logdet cotangent not negated" else -1.0
        dz, dflow = self.flow_vjp(flow, z, gx, sign * glog_prob, inverse=True)
        if self.bug != "base density's cotangent dropped":
            dz = dz - per_sample(glog_prob, z) * z
        return cast(dflow, z.dtype), dz.astype(z.dtype)


TEETH = {
    "flow_forward": class_teeth(
        FlowOps, "forward", "forward_vjp",
        ["layers in reverse order", "only the last logdet", "every logdet doubled",
         "conditioner's input cotangent dropped", "parameter cotangents halved"],
        {"layers in reverse order": {"matches ground truth", "log-dets add under composition"},
         "only the last logdet": {"matches ground truth", JACOBIAN,
                                  "log-dets add under composition"},
         "every logdet doubled": {"matches ground truth", JACOBIAN},
         "conditioner's input cotangent dropped": GRADIENT_CHECKS,
         "parameter cotangents halved": {"vjp: dot-product test", TREE}},
    ),
    "flow_inverse": class_teeth(
        FlowOps, "inverse", "inverse_vjp",
        ["layers in reverse order", "inverse logdet not negated", "parameter cotangents halved",
         "conditioner's input cotangent dropped"],
        {"layers in reverse order": {"matches ground truth", "round trip with flow_forward"},
         "inverse logdet not negated": {"matches ground truth", JACOBIAN,
                                        "minus the forward's log-det at the image"},
         "parameter cotangents halved": {"vjp: dot-product test", TREE},
         "conditioner's input cotangent dropped": GRADIENT_CHECKS},
    ),
    "log_prob": class_teeth(
        FlowOps, "log_prob", "log_prob_vjp",
        ["logdet subtracted", "no log 2 pi", "base density's cotangent +g z"],
        {"logdet subtracted": {"matches ground truth", "single ActNorm is a Gaussian"},
         "no log 2 pi": {"matches ground truth", "single ActNorm is a Gaussian"},
         "base density's cotangent +g z": {*GRADIENT_CHECKS, TREE}},
    ),
    "sample": class_teeth(
        FlowOps, "sample", "sample_vjp",
        ["inverse logdet added", "base density's cotangent dropped", "logdet cotangent not negated"],
        {"inverse logdet added": {"matches ground truth", "log_prob of the sample"},
         "base density's cotangent dropped": GRADIENT_CHECKS,
         "logdet cotangent not negated": {"vjp: dot-product test", TREE}},
    ),
}
