"""Records of :mod:`refimpl.flows.permutations` (docs/conventions.rst, section 3.3).

``permutation`` (data ``x``) and ``permutation_inverse`` (data ``z``, round
trip), ``perm`` a keyword param; inputs are vectors ``(n, d)`` or images
``(n, c, H, W)`` (axis 1 is permuted). Ground truth: NumPy fancy indexing
``x[:, perm]`` and ``z[:, argsort(perm)]``, log-determinant 0; the
log-determinant is also checked against ``slogdet`` of the Jacobian (a
permutation matrix, ``|det| = 1``), one sample at a time. Invariant: the
permutation matrix, applied densely to each sample, gives the output.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.flows import permutations

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, get_op, register
from ...strategies import rng
from ._common import LOGDET, per_sample_points, permutation_reference

REFERENCES = ("nflows, nflows/transforms/permutations.py (Permutation, ReversePermutation)",)
TOL = {"float64": 1e-15, "float32": 1e-7}


@st.composite
def _cases(draw, data="x"):
    gen = draw(rng())
    c = draw(st.integers(1, 5))
    spatial = draw(st.sampled_from([(), (2, 3)]))
    x = gen.standard_normal((draw(st.integers(1, 3)), c) + spatial)
    return Case({data: x}, {"perm": tuple(draw(st.permutations(range(c))))})


def _dense_permutation(name):
    """The output is ``P x`` per sample with ``P[i, perm[i]] = 1`` (``P^T`` for the inverse)."""
    def check(impl, case, ctx):
        op = get_op(name)
        first = op.outputs[0].name
        x = ctx.rounded(case.primals[op.data])
        P = np.eye(x.shape[1])[list(case.params["perm"])]
        P = P.T if op.inverse_of else P
        expected = np.einsum("ij,nj...->ni...", P, x)
        return rel_error(run_outputs(op, impl, case, ctx, [first])[first], expected)

    return Property("dense permutation matrix", check,
                    "out = P x per sample with P = I[perm] (P^T for the inverse), by einsum")


def _bench_case(size, data="x"):
    """``size = (n, d)``: ``n`` samples, a random permutation of the ``d`` features."""
    n, d = size
    gen = np.random.default_rng(0)
    return Case({data: gen.standard_normal((n, d))}, {"perm": tuple(gen.permutation(d).tolist())})


def _record(forward, vjp, inverse_of=None):
    data = "z" if inverse_of else "x"
    inverse = inverse_of is not None
    numpy_reference = functools.partial(permutation_reference, np, inverse=inverse)
    return register(Op(
        forward=forward, vjp=vjp, primals=(Primal(data),),
        outputs=(Output("x" if inverse else "z"), LOGDET),
        cases=functools.partial(_cases, data),
        reference=numpy_reference,
        naive=lambda x, perm: permutation_reference(anp, x, perm, inverse),
        properties=(_dense_permutation(forward.__name__),),
        tolerance=TOL, data=data, inverse_of=inverse_of,
        slogdet_of=forward.__name__, jacobian_points=per_sample_points(data),
        convention=("x[:, perm[i]] = z[:, i] (the inverse of permutation); logdet = 0." if inverse
                    else "z[:, i] = x[:, perm[i]] along axis 1 of x (n, d, ...) (torch.index_select, "
                         "nflows' Permutation); logdet = 0; Reverse is perm = (d-1, ..., 0)."),
        section="3.3", references=REFERENCES,
        bench_case=functools.partial(_bench_case, data=data), bench_sizes=((256, 1024),),
        bench_anchor=Anchor("definition"),
    ))


PERMUTATION = _record(permutations.permutation, permutations.permutation_vjp)
PERMUTATION_INVERSE = _record(permutations.permutation_inverse, permutations.permutation_inverse_vjp,
                              inverse_of="permutation")
