"""Teeth for ``flatten``: NumPy reshapes and planted bugs.

Read by tests/verify/test_teeth.py. Row-major ``(N, ...) -> (N, prod(...))``, the
cotangent reshaped back; the mutants flatten channels last (NHWC order, as a
TensorFlow-layout port would).
"""

from __future__ import annotations

import numpy as np

from verify import Candidate
from verify.testing import Teeth


def _channels_last(x):
    return np.moveaxis(x, 1, -1) if x.ndim > 2 else x


def _candidate(bug=None):
    def forward(x):
        return (_channels_last(x) if bug == "channels last" else x).reshape(x.shape[0], -1)

    def vjp(x, G):
        if bug in ("channels last", "cotangent unflattened channels last"):
            return (np.moveaxis(G.reshape(_channels_last(x).shape), -1, 1) if x.ndim > 2
                    else G.reshape(x.shape),)
        return (G.reshape(x.shape),)

    return Candidate(forward, vjp=vjp)


TEETH = {
    "flatten": Teeth(
        correct=_candidate(),
        mutants={bug: _candidate(bug) for bug in ("channels last",
                                                  "cotangent unflattened channels last")},
        caught_by={"channels last": {"matches ground truth", "matches refimpl forward"},
                   "cotangent unflattened channels last": {
                       "vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl",
                       "adjoint test in x"}},
    ),
}
