"""Records of :mod:`refimpl.flows.coupling` (docs/conventions.rst, section 3.2).

``additive_coupling`` and ``affine_coupling`` (data ``x``) and their inverses
(data ``z``, round trips with the forwards), primals ``(x, mask, conditioner)``:
``mask`` boolean (True = transformed), the conditioner a differentiable tree
(a list of :mod:`refimpl.nn` layers whose arrays a candidate loads). Every
op's ``logdet`` output is checked against ``slogdet`` of the Jacobian of its
own first output, one sample at a time (autograd of the naive forward).

Ground truth: the coupling written from its definition
(:func:`._common.coupling_reference`: index the two parts, the conditioner
through the nn records' per-layer references, the scale conventions as their
libraries write them). The affine records draw every ``scale`` and ``split``
and the ``clamp`` of the soft-clamped ones. Invariants: the identity
features pass through unchanged; the cotangent of every conditioner array
against autograd.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.flows import SCALES, SPLITS, coupling

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, get_op, register
from ...strategies import conditioner, coupling_masks, rng
from ._common import LOGDET, coupling_reference, per_sample_points, tree_autograd

REFERENCES = (
    "Dinh, Krueger, Bengio 2015, NICE: non-linear independent components estimation "
    "(ICLR workshop, arXiv:1410.8516)",
    "Dinh, Sohl-Dickstein, Bengio 2017, Density estimation using Real NVP (ICLR, arXiv:1605.08803)",
    "nflows, nflows/transforms/coupling.py (AffineCouplingTransform, AdditiveCouplingTransform)",
)
TOL = {"float64": 1e-12, "float32": 5e-5}
CONVENTIONS = {
    "additive_coupling":
        "x (n, d); mask (d,) bool, True = transformed (nflows' mask > 0); t = conditioner("
        "x[:, ~mask]) (refimpl.nn layers, output (n, m)); z[:, mask] = x[:, mask] + t, "
        "z[:, ~mask] = x[:, ~mask]; logdet = 0 per sample.",
    "additive_coupling_inverse":
        "x[:, mask] = z[:, mask] - conditioner(z[:, ~mask]), x[:, ~mask] = z[:, ~mask]; "
        "logdet = 0; mask and conditioner as additive_coupling.",
    "affine_coupling":
        "mask as additive_coupling; h = conditioner(x[:, ~mask]) (n, 2m) gives (t, u) by split "
        "(default shift_first: t = h[:, :m]) and s = scale(u) (default nflows: sigmoid(u + 2) + "
        "1e-3); z[:, mask] = x[:, mask] * s + t; logdet = sum log s per sample.",
    "affine_coupling_inverse":
        "x[:, mask] = (z[:, mask] - t) / s with (t, s) from conditioner(z[:, ~mask]) as "
        "affine_coupling; logdet = -sum log s.",
}


@st.composite
def _cases(draw, affine, data="x"):
    """``d`` in 2..5, one to three samples, a drawn mask and a Tanh or ReLU conditioner."""
    gen = draw(rng())
    d = draw(st.integers(2, 5))
    mask = draw(coupling_masks(d))
    m = int(mask.sum())
    net = conditioner(gen, d - m, (2 if affine else 1) * m, draw(st.integers(1, 4)),
                      draw(st.sampled_from(["tanh", "relu"])))
    primals = {data: gen.standard_normal((draw(st.integers(1, 3)), d)), "mask": mask,
               "conditioner": net}
    if not affine:
        return Case(primals)
    return Case(primals, {"scale": draw(st.sampled_from(SCALES)),
                          "split": draw(st.sampled_from(SPLITS)),
                          "clamp": draw(st.sampled_from([1.0, 2.0]))})


def _identity_part(name):
    """The features outside ``mask`` leave op ``name`` (a layer or its inverse) unchanged."""
    def check(impl, case, ctx):
        op = get_op(name)
        first = op.outputs[0].name
        out = run_outputs(op, impl, case, ctx, [first])[first]
        keep = ~case.primals["mask"]
        return rel_error(out[:, keep], ctx.rounded(case.primals[op.data])[:, keep])

    return Property("identity features pass through", check,
                    "out[:, ~mask] equals the input's (the conditioner's input is unchanged)")


def _bench_case(size, affine=True, data="x"):
    """``size = (n, d)``: ``n`` samples, the second half of the ``d`` features transformed by a
    conditioner of width ``d``."""
    n, d = size
    gen = np.random.default_rng(0)
    mask = np.arange(d) >= d // 2
    m = int(mask.sum())
    primals = {data: gen.standard_normal((n, d)), "mask": mask,
               "conditioner": conditioner(gen, d - m, (2 if affine else 1) * m, d)}
    return Case(primals)


def _record(forward, vjp, affine, inverse_of=None):
    data = "z" if inverse_of else "x"
    reference = functools.partial(coupling_reference, affine=affine, inverse=inverse_of is not None)
    numpy_reference = functools.partial(reference, np)
    return register(Op(
        forward=forward, vjp=vjp,
        primals=(Primal(data), Primal("mask", dtype="bool"),
                 Primal("conditioner", dtype="tree", differentiable=True)),
        outputs=(Output("x" if inverse_of else "z"), LOGDET),
        cases=functools.partial(_cases, affine, data),
        reference=numpy_reference,
        naive=lambda *a, **p: reference(anp, *a, **p),
        properties=(_identity_part(forward.__name__), tree_autograd(forward.__name__, "conditioner")),
        tolerance=TOL, data=data, inverse_of=inverse_of,
        slogdet_of=forward.__name__, jacobian_points=per_sample_points(data),
        convention=CONVENTIONS[forward.__name__], section="3.2", references=REFERENCES,
        bench_case=functools.partial(_bench_case, affine=affine, data=data),
        bench_sizes=((256, 64), (256, 1024)), bench_anchor=Anchor("definition"),
    ))


ADDITIVE = _record(coupling.additive_coupling, coupling.additive_coupling_vjp, False)
ADDITIVE_INVERSE = _record(coupling.additive_coupling_inverse, coupling.additive_coupling_inverse_vjp,
                           False, inverse_of="additive_coupling")
AFFINE = _record(coupling.affine_coupling, coupling.affine_coupling_vjp, True)
AFFINE_INVERSE = _record(coupling.affine_coupling_inverse, coupling.affine_coupling_inverse_vjp,
                         True, inverse_of="affine_coupling")
