"""Teeth for the coupling layers: an independent NumPy implementation (tests/_teeth_flows.py) and bugs.

Read by tests/verify/test_teeth.py. The candidate splits the features with
``numpy.flatnonzero`` of the mask, runs the conditioner with the nn teeth,
writes the five scale conventions and three splits out with their own
derivatives, and backpropagates ``dx_b = g_b s``, ``dt = g_b``,
``du = dlog s/du (g_b x_b s + glogdet)`` (the inverse: ``g_b / s``,
``-g_b / s``, ``-dlog s/du (g_b x_b + glogdet)``) through the conditioner.
"""

from __future__ import annotations

from _teeth_flows import Flows, cast
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

TREE = "vjp: autograd of every array of conditioner"
JACOBIAN = "log-determinant of the Jacobian"
IDENTITY = "identity features pass through"


class Coupling(Flows):
    """The four coupling ops of refimpl's signature."""

    def _forward(self, x, mask, conditioner, affine, inverse, settings):
        out, logdet = self.coupling(x, mask, conditioner, affine, settings, inverse)
        return out.astype(x.dtype), logdet.astype(x.dtype)

    def _vjp(self, x, mask, conditioner, g, gl, affine, inverse, settings):
        dx, grads = self.coupling_vjp(x, mask, conditioner, g, gl, affine, settings, inverse)
        return dx.astype(x.dtype), None, cast(grads, x.dtype)

    def additive(self, x, mask, conditioner):
        return self._forward(x, mask, conditioner, False, False, {})

    def additive_vjp(self, x, mask, conditioner, gz, glogdet):
        return self._vjp(x, mask, conditioner, gz, glogdet, False, False, {})

    def additive_inverse(self, z, mask, conditioner):
        return self._forward(z, mask, conditioner, False, True, {})

    def additive_inverse_vjp(self, z, mask, conditioner, gx, glogdet):
        return self._vjp(z, mask, conditioner, gx, glogdet, False, True, {})

    def affine(self, x, mask, conditioner, scale="nflows", split="shift_first", clamp=2.0):
        return self._forward(x, mask, conditioner, True, False,
                             {"scale": scale, "split": split, "clamp": clamp})

    def affine_vjp(self, x, mask, conditioner, gz, glogdet, scale="nflows", split="shift_first",
                   clamp=2.0):
        return self._vjp(x, mask, conditioner, gz, glogdet, True, False,
                         {"scale": scale, "split": split, "clamp": clamp})

    def affine_inverse(self, z, mask, conditioner, scale="nflows", split="shift_first", clamp=2.0):
        return self._forward(z, mask, conditioner, True, True,
                             {"scale": scale, "split": split, "clamp": clamp})

    def affine_inverse_vjp(self, z, mask, conditioner, gx, glogdet, scale="nflows",
                           split="shift_first", clamp=2.0):
        return self._vjp(z, mask, conditioner, gx, glogdet, True, True,
                         {"scale": scale, "split": split, "clamp": clamp})


_VJP_BUGS = {
    "conditioner's input cotangent dropped": GRADIENT_CHECKS,
    "bias cotangents of the conditioner not summed": {"vjp: dot-product test", TREE,
                                                      "vjp: matches refimpl"},
}
_FORWARD_BUGS = {
    "identity features shifted": {"matches ground truth", "matches refimpl forward", IDENTITY},
    "logdet sums s, not log s": {"matches ground truth", JACOBIAN},
}

TEETH = {
    "additive_coupling": class_teeth(
        Coupling, "additive", "additive_vjp",
        [*_FORWARD_BUGS, *_VJP_BUGS],
        {**_FORWARD_BUGS, **_VJP_BUGS},
    ),
    "additive_coupling_inverse": class_teeth(
        Coupling, "additive_inverse", "additive_inverse_vjp",
        [*_FORWARD_BUGS, *_VJP_BUGS, "inverse applies the forward"],
        {**_FORWARD_BUGS, **_VJP_BUGS,
         "inverse applies the forward": {"matches ground truth",
                                         "round trip with additive_coupling"}},
    ),
    "affine_coupling": class_teeth(
        Coupling, "affine", "affine_vjp",
        [*_FORWARD_BUGS, *_VJP_BUGS, "nflows scale without its 1e-3", "shift and scale halves swapped",
         "du misses the logdet's cotangent", "dx_b misses the scale"],
        {**_FORWARD_BUGS, **_VJP_BUGS,
         "nflows scale without its 1e-3": {"matches ground truth"},
         "shift and scale halves swapped": {"matches ground truth", "matches refimpl forward"},
         "du misses the logdet's cotangent": {"vjp: dot-product test", TREE},
         "dx_b misses the scale": GRADIENT_CHECKS},
    ),
    "affine_coupling_inverse": class_teeth(
        Coupling, "affine_inverse", "affine_inverse_vjp",
        [*_FORWARD_BUGS, *_VJP_BUGS, "inverse applies the forward", "inverse logdet not negated",
         "du misses the logdet's cotangent"],
        {**_FORWARD_BUGS, **_VJP_BUGS,
         "inverse applies the forward": {"matches ground truth", "round trip with affine_coupling"},
         "inverse logdet not negated": {"matches ground truth", JACOBIAN},
         "du misses the logdet's cotangent": {"vjp: dot-product test", TREE}},
    ),
}
