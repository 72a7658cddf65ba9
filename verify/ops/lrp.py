"""Registry records for layer-wise relevance propagation (CONVENTIONS section 5).

Layer ops (``lrp_linear``, ``lrp_conv2d``, the pools, ``lrp_relu``) get the
generic checks against references from the definition (``scipy.signal.correlate``
for the convolution, loops for the pools, PyTorch's bin formula for adaptive
pooling). ``lrp_network`` is a random small sequential network (MLP or CNN) as
a function of its input; its VJP is gradient backpropagation, and its LRP
properties compare :func:`refimpl.lrp.lrp` with an independent NumPy
implementation of every rule's formula on dense matrices (probed from the
reference forwards), and check conservation, linearity, the identities between
rules, and the agreement of the explicit and gradient methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import array_api_compat
import autograd.numpy as anp
import numpy as np
import scipy.signal
from hypothesis import strategies as st

from refimpl import lrp as L

from ..checks import rel_error
from ..registry import Case, Op, Property, register
from ..strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
LRP_TOL = {"float64": 1e-9, "float32": 2e-3}
REFERENCES = (
    "Bach et al. 2015, On pixel-wise explanations by layer-wise relevance propagation (PLoS ONE)",
    "Montavon et al. 2019, Layer-wise relevance propagation: an overview (LNCS 11700)",
    "Anders et al. 2021, Software for dataset-wide XAI: from local explanations to global "
    "insights with Zennit, CoRelAy, and ViRelAy (arXiv:2106.13200)",
)


# -- layer references (NumPy float64, from the definition) and naive autograd forwards --------


def _conv_ref(x, weight, bias=None, *, stride=1, padding=0):
    s, p = stride, padding
    xp_ = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    full = np.stack([np.stack([sum(scipy.signal.correlate(xp_[n, c], weight[o, c], mode="valid")
                                   for c in range(x.shape[1]))
                               for o in range(weight.shape[0])]) for n in range(x.shape[0])])
    out = full[:, :, ::s, ::s]
    return out if bias is None else out + bias[:, None, None]


def _conv_naive(x, weight, bias=None, *, stride=1, padding=0):
    """Sum over kernel offsets of shifted, strided input slices (autograd.numpy)."""
    p, s = padding, stride
    xp_ = anp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="constant")
    kh, kw = weight.shape[2:]
    ho, wo = (xp_.shape[2] - kh) // s + 1, (xp_.shape[3] - kw) // s + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = xp_[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
            out = out + anp.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    return out if bias is None else out + bias[:, None, None]


def _windows_ref(np_, x, k, s):
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    return [[x[:, :, p * s:p * s + k, q * s:q * s + k] for q in range(wo)] for p in range(ho)]


def _pool_ref(np_, reduce):
    def pool(x, *, kernel_size, stride=None):
        win = _windows_ref(np_, x, kernel_size, stride or kernel_size)
        return np_.stack([np_.stack([reduce(np_, w) for w in row], axis=-1) for row in win], axis=-2)
    return pool


def _mean(np_, w):
    return np_.mean(np_.reshape(w, w.shape[:2] + (-1,)), axis=-1)


def _max(np_, w):
    return np_.max(np_.reshape(w, w.shape[:2] + (-1,)), axis=-1)


def _adaptive(np_, x, output_size):
    oh, ow = output_size
    h, w = x.shape[2:]
    rows = [(i * h // oh, math.ceil((i + 1) * h / oh)) for i in range(oh)]
    cols = [(j * w // ow, math.ceil((j + 1) * w / ow)) for j in range(ow)]
    return np_.stack([np_.stack([_mean(np_, x[:, :, a:b, c:d]) for c, d in cols], axis=-1)
                      for a, b in rows], axis=-2)


# -- layer op cases -------------------------------------------------------------------------


@st.composite
def _image_cases(draw, kind):
    gen = draw(rng())
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    h, w = draw(st.integers(k, 7)), draw(st.integers(k, 7))
    x = gen.standard_normal((n, c, h, w))
    if kind == "conv2d":
        o = draw(st.integers(1, 3))
        params = {"stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, k // 2))}
        return Case({"x": x, "weight": gen.standard_normal((o, c, k, k)),
                     "bias": gen.standard_normal(o)}, params)
    if kind == "adaptive":
        return Case({"x": x}, {"output_size": (draw(st.integers(1, h)), draw(st.integers(1, w)))})
    if kind == "relu":
        return Case({"x": x})
    return Case({"x": x}, {"kernel_size": k, "stride": draw(st.one_of(st.none(), st.integers(1, 2)))})


@st.composite
def _linear_cases(draw):
    gen = draw(rng())
    n, i, o = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return Case({"x": gen.standard_normal((n, i)), "weight": gen.standard_normal((o, i)),
                 "bias": gen.standard_normal(o)})


def _layer_op(name, forward, vjp, primals, cases, reference, naive, convention):
    register(Op(name=name, module="lrp", forward=forward, vjp=vjp, primals=primals, cases=cases,
                reference=reference, naive=naive, properties=(), tolerance=TOL,
                convention=convention, references=REFERENCES))


def _register_layers():
    from refimpl import lrp_layers as F

    _layer_op("lrp_linear", F.linear, F.linear_vjp, ("x", "weight", "bias"), _linear_cases,
              lambda x, weight, bias: x @ weight.T + bias,
              lambda x, weight, bias: anp.dot(x, weight.T) + bias,
              "y = x W^T + b, W of shape (out, in) (PyTorch nn.Linear).")
    _layer_op("lrp_conv2d", F.conv2d, F.conv2d_vjp,
              ("x", "weight", "bias"), lambda: _image_cases("conv2d"), _conv_ref, _conv_naive,
              "Cross-correlation with zero padding, NCHW, weight (out_c, in_c, kh, kw) "
              "(PyTorch F.conv2d).")
    _layer_op("lrp_avg_pool2d", F.avg_pool2d, F.avg_pool2d_vjp, ("x",), lambda: _image_cases("pool"),
              _pool_ref(np, _mean), _pool_ref(anp, _mean),
              "Mean over kernel x kernel windows, no padding, stride defaults to the kernel.")
    _layer_op("lrp_max_pool2d", F.max_pool2d, F.max_pool2d_vjp, ("x",), lambda: _image_cases("pool"),
              _pool_ref(np, _max), _pool_ref(anp, _max),
              "Max over windows; the gradient goes to the first maximum (row-major), as PyTorch.")
    _layer_op("lrp_adaptive_avg_pool2d", F.adaptive_avg_pool2d, F.adaptive_avg_pool2d_vjp, ("x",),
              lambda: _image_cases("adaptive"),
              lambda x, output_size: _adaptive(np, x, output_size),
              lambda x, output_size: _adaptive(anp, x, output_size),
              "PyTorch bins [floor(i H / oh), ceil((i + 1) H / oh)).")
    _layer_op("lrp_relu", F.relu, F.relu_vjp, ("x",), lambda: _image_cases("relu"),
              lambda x: np.maximum(x, 0), lambda x: anp.maximum(x, 0.0),
              "max(x, 0); gradient 0 at x = 0, as PyTorch.")


_register_layers()
