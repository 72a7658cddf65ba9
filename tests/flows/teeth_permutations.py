"""Teeth for the permutations: NumPy fancy indexing (tests/_teeth_flows.py) and planted bugs.

The candidate gathers ``x[:, perm]`` (the inverse ``z[:, argsort(perm)]``) and
scatters the cotangent back by the other index array; log-determinant 0.
"""

from __future__ import annotations

from _teeth_flows import Flows
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

DENSE = "dense permutation matrix"
JACOBIAN = "log-determinant of the Jacobian"


class Permutations(Flows):
    def forward(self, x, perm):
        return self.permute(x, perm)

    def vjp(self, x, gz, glogdet, perm):
        return (self.permute_vjp(x, perm, gz),)

    def inverse(self, z, perm):
        return self.permute(z, perm, inverse=True)

    def inverse_vjp(self, z, gx, glogdet, perm):
        return (self.permute_vjp(z, perm, gx, inverse=True),)


_BUGS = {
    "inverse permutation": {"matches ground truth", "matches refimpl forward", DENSE},
    "logdet 1": {"matches ground truth", JACOBIAN},
    "vjp gathers the wrong way": GRADIENT_CHECKS,
}

TEETH = {
    "permutation": class_teeth(Permutations, "forward", "vjp", list(_BUGS), _BUGS),
    "permutation_inverse": class_teeth(
        Permutations, "inverse", "inverse_vjp", list(_BUGS),
        {**_BUGS, "inverse permutation": {"matches ground truth", DENSE,
                                          "round trip with permutation"}}),
}
