"""refimpl._special: digamma, log-gamma and the Gamma entropy against scipy, on every backend."""

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats

from refimpl import _special
from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy

# Allowance relative to max(1, |f(x)|): 200 ulps of the dtype.
ULPS = {"float64": 200 * 2.0**-52, "float32": 200 * 2.0**-23}


@pytest.mark.parametrize("backend", available_backends(devices=True))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ours, theirs", [(_special.digamma, sp.digamma), (_special.lgamma, sp.gammaln)])
def test_matches_scipy_on_1e_minus_3_to_1e5(backend, dtype, ours, theirs):
    x = np.concatenate([np.geomspace(1e-3, 1e5, 300), np.linspace(0.5, 3.0, 101)])
    be = backend_namespace(backend)
    got = to_numpy(ours(be.xp, from_numpy(x, be, dtype=dtype))).astype(np.float64)
    expected = theirs(np.asarray(x, dtype=dtype).astype(np.float64))
    assert np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))) < ULPS[dtype]


def test_gamma_entropy_matches_scipy():
    a, b = np.array([0.3, 1.0, 4.5, 300.0]), np.array([0.2, 1.0, 7.0, 0.01])
    expected = stats.gamma(a, scale=1 / b).entropy()
    np.testing.assert_allclose(_special.gamma_entropy(np, a, b), expected, rtol=1e-13, atol=1e-13)


def test_batched_arguments_keep_their_shape():
    x = np.linspace(0.1, 20.0, 12).reshape(3, 4)
    assert _special.digamma(np, x).shape == (3, 4)
    np.testing.assert_allclose(_special.lgamma(np, x), sp.gammaln(x), rtol=1e-14, atol=1e-14)
