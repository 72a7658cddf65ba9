"""Records of :mod:`refimpl.attribution.class_maps` (docs/conventions.rst, section 5.4).

Cases are :func:`verify.strategies.networks` of kind ``"cam"`` (two convolutions,
the second followed by ReLU, global average pooling, Flatten, Linear), one target
per sample. Ground truth from the naive network: CAM from the pooled features
and the last weight; Grad-CAM from autograd's gradient of the target score with
respect to the explained layer's output (the tail of the naive network); guided
Grad-CAM from autograd's guided gradient times the reference upsampling of
:mod:`verify.ops.attribution.maps`. ``cam`` has a VJP in ``x`` (checked against
autograd of the naive forward).
"""

from __future__ import annotations

import functools

import autograd
import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.attribution import UPSAMPLE_MODES, cam, cam_vjp, grad_cam, guided_grad_cam

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Primal, Property, register
from ._networks import (
    BENCH_CAM_LAYER,
    BENCH_SIZES,
    bench_case,
    naive_activations,
    naive_gradient,
    naive_score,
    network_cases,
    target_rows,
)
from .maps import upsample_reference

TOL = {"float64": 1e-10, "float32": 1e-4}
REFERENCES = (
    "Zhou et al. 2016, Learning deep features for discriminative localization (CVPR), CAM",
    "Selvaraju et al. 2017, Grad-CAM: visual explanations from deep networks via gradient-based "
    "localization (ICCV)",
    "captum: LayerGradCam, GuidedGradCam",
)
PRIMALS = (Primal("layers", dtype="tree", differentiable=False), Primal("x"),
           Primal("target", dtype="int64"))


def _cam_map(np_, layers, x, target):
    """``sum_k W_{t k} A_k`` with ``A`` the global pooling's input, ``(N, 1, H, W)``."""
    features = naive_activations(np_, layers, x)[-4]
    weight = layers[-1].weight
    rows = target_rows(target, weight.shape[0]) @ weight
    return np_.sum(np_.reshape(rows, rows.shape + (1, 1)) * features, axis=1, keepdims=True)


def _grad_cam_map(layers, x, target, layer, relu=False):
    """``sum_k mean_hw(d f_t / d A_k) A_k`` at the output ``A`` of ``layers[layer]``."""
    features = naive_activations(np, layers, x)[layer + 1]
    tail = layers[layer + 1:]
    gradient = autograd.grad(lambda a: anp.sum(naive_score(anp, tail, a, target)))(features)
    heat = np.sum(gradient.mean(axis=(2, 3), keepdims=True) * features, axis=1, keepdims=True)
    return np.maximum(heat, 0.0) if relu else heat


def _cases():
    return network_cases(kind="cam").map(Case)


def _bench_case(size, **params):
    """The benchmarks' CAM network (:func:`._networks.bench_case`), Grad-CAM at its last ReLU."""
    return Case(bench_case(size, cam=True).primals, params)


def _pooled_layer(layers):
    """The index of the ReLU before the global average pooling."""
    return len(layers) - 4


@st.composite
def _layer_cases(draw, modes=False):
    primals = draw(network_cases(kind="cam"))
    layers, x = primals["layers"], primals["x"]
    images = [i for i, a in enumerate(naive_activations(np, layers, x)[1:]) if a.ndim == 4]
    params = {"layer": draw(st.sampled_from(images))}
    if modes:
        params["mode"] = draw(st.sampled_from(UPSAMPLE_MODES))
    else:
        params["relu"] = draw(st.booleans())
    return Case(primals, params)


def _rounded(case, ctx):
    return {k: ctx.rounded(v) for k, v in case.primals.items()}


def _mean_plus_bias_is_score(impl, case, ctx):
    """``mean_hw(M) + b_t = f_t(x)``: CAM distributes the target's logit over the map."""
    got = run_outputs(CAM, impl, case, ctx)["out"]
    p = _rounded(case, ctx)
    last = p["layers"][-1]
    bias = 0.0 if last.bias is None else last.bias[p["target"]]
    return rel_error(got.mean(axis=(1, 2, 3)) + bias,
                     naive_score(np, p["layers"], p["x"], p["target"]))


CAM = register(Op(
    forward=cam,
    vjp=cam_vjp,
    primals=PRIMALS,
    cases=_cases,
    reference=lambda layers, x, target: _cam_map(np, layers, x, target),
    naive=lambda layers, x, target: _cam_map(anp, layers, x, target),
    properties=(Property("the map's mean plus the bias is the target score",
                         _mean_plus_bias_is_score,
                         "mean over (h, w) of the map plus b_t equals f_t(x) (reference network)"),),
    tolerance=TOL,
    convention="cam(layers, x, target) for a network ending in global average pooling "
               "(AdaptiveAvgPool2d((1, 1)) or AvgPool2d over the whole map), Flatten, Linear "
               "(weight W): M = sum_k W[t, k] A_k with A the pooling's input, shape (N, 1, H, W), "
               "no bias; the VJP is in x.",
    section="5.4",
    references=REFERENCES,
    bench_case=_bench_case, bench_sizes=BENCH_SIZES, bench_anchor=Anchor("definition"),
))


def _is_cam_over_area(impl, case, ctx):
    """Grad-CAM at the ReLU before the pooling (no ReLU on the map) equals CAM / (H W)."""
    layers = case.primals["layers"]
    at_features = Case(case.primals, {"layer": _pooled_layer(layers), "relu": False})
    got = run_outputs(GRAD_CAM, impl, at_features, ctx)["out"]
    p = _rounded(case, ctx)
    expected = _cam_map(np, p["layers"], p["x"], p["target"])
    return rel_error(got, expected / (expected.shape[2] * expected.shape[3]))


GRAD_CAM = register(Op(
    forward=grad_cam,
    primals=PRIMALS,
    cases=_layer_cases,
    reference=lambda layers, x, target, *, layer, relu=False: _grad_cam_map(layers, x, target,
                                                                             layer, relu),
    properties=(Property("equals CAM over the pooled area at the last ReLU", _is_cam_over_area,
                         "layer = the ReLU before the global pooling, relu=False: the map is "
                         "CAM / (H W) (reference CAM)"),),
    tolerance=TOL,
    convention="grad_cam(layers, x, target, layer, relu=False): at the output A (N, K, H, W) of "
               "layers[layer], alpha_k = mean_hw(d f_t / d A_k), map sum_k alpha_k A_k of shape "
               "(N, 1, H, W); relu=True takes max(map, 0) (captum's default is False).",
    section="5.4",
    references=REFERENCES,
    bench_case=functools.partial(_bench_case, layer=BENCH_CAM_LAYER), bench_sizes=BENCH_SIZES,
    bench_anchor=Anchor("autograd"),
))


def _guided_grad_cam(layers, x, target, *, layer, mode="nearest"):
    heat = _grad_cam_map(layers, x, target, layer, relu=True)
    up = upsample_reference(np, heat, x.shape[2:], mode)
    return naive_gradient(layers, x, target, "guided") * up


register(Op(
    forward=guided_grad_cam,
    primals=PRIMALS,
    cases=lambda: _layer_cases(modes=True),
    reference=_guided_grad_cam,
    tolerance=TOL,
    convention="guided_grad_cam(layers, x, target, layer, mode='nearest') = guided_backprop(x) "
               "times grad_cam(layer, relu=True) upsampled to x's (H, W) in mode (as "
               "upsample) and broadcast over x's channels (captum's GuidedGradCam).",
    section="5.4",
    references=REFERENCES,
    bench_case=functools.partial(_bench_case, layer=BENCH_CAM_LAYER, mode="bilinear"),
    bench_sizes=BENCH_SIZES, bench_anchor=Anchor("autograd"),
))
