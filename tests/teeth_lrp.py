"""Teeth for the LRP layer ops and networks: an independent NumPy implementation and planted bugs.

Read by tests/test_verify_teeth.py. The correct candidates loop over kernel
offsets (convolution) or output positions (pools) in PyTorch layouts (NCHW,
weight ``(out, in, kh, kw)``) and use VJPs derived here::

    linear  y = x W^T + b:       dx = G W,  dW = G^T x,  db = sum_n G;
    conv2d  y[n,o,i,j] = b[o] + sum_{c,a,b} xpad[n, c, s i + a, s j + b] w[o, c, a, b]:
            dxpad[n, c, s i + a, s j + b] += G[n,o,i,j] w[o,c,a,b] (then unpad),
            dw[o, c, a, b] = sum G[n,o,i,j] xpad[n, c, s i + a, s j + b],  db = sum_{n,i,j} G;
    pools   each output's cotangent goes to its window: 1/k^2 to every element (average),
            all to the first row-major maximum (max), 1/|bin| over PyTorch's adaptive bins;
    relu    dx = G [x > 0].

``lrp_network`` composes these layers; its VJP is backpropagation through them.
Each mutant changes one of these lines; the LRP properties of ``lrp_network``
are refimpl-only, so its candidate checks are the generic ones.
"""

from __future__ import annotations

import math

import numpy as np

from verify import Candidate
from verify.testing import Teeth


# -- linear -----------------------------------------------------------------------------------


def _candidate_linear(bug=None):
    def forward(x, weight, bias):
        y = x @ weight.T
        return y if bug == "bias not added" else y + bias

    def vjp(x, weight, bias, G):
        dW = x.T @ G if bug == "weight gradient transposed" else G.T @ x
        db = G[0] if bug == "bias gradient not summed over the batch" else G.sum(axis=0)
        return G @ weight, dW, db

    return Candidate(forward, vjp=vjp)


# -- conv2d -----------------------------------------------------------------------------------


def _offsets(weight, bug=None):
    """``(a, b)`` kernel offsets, and where each offset's weight is read from."""
    kh, kw = weight.shape[2:]
    flip = bug == "convolution (flipped kernel)"
    return [((a, b), (kh - 1 - a, kw - 1 - b) if flip else (a, b))
            for a in range(kh) for b in range(kw)]


def _strided(xpad, a, b, s, out_hw):
    ho, wo = out_hw
    return (slice(None), slice(None), slice(a, a + s * (ho - 1) + 1, s),
            slice(b, b + s * (wo - 1) + 1, s))


def _conv_geometry(x, weight, stride, padding):
    p = padding
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = weight.shape[2:]
    out_hw = ((xpad.shape[2] - kh) // stride + 1, (xpad.shape[3] - kw) // stride + 1)
    return xpad, out_hw


def _candidate_conv2d(bug=None):
    def forward(x, weight, bias, *, stride=1, padding=0):
        xpad, out_hw = _conv_geometry(x, weight, stride, padding)
        out = np.zeros((x.shape[0], weight.shape[0]) + out_hw, dtype=x.dtype)
        for (a, b), (ra, rb) in _offsets(weight, bug):
            patch = xpad[_strided(xpad, a, b, stride, out_hw)]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, ra, rb])
        return out + bias[:, None, None]

    def vjp(x, weight, bias, G, *, stride=1, padding=0):
        xpad, out_hw = _conv_geometry(x, weight, stride, padding)
        dxpad, dw = np.zeros_like(xpad), np.zeros_like(weight)
        for (a, b), (ra, rb) in _offsets(weight, bug):
            index = _strided(xpad, a, b, stride, out_hw)
            dxpad[index] += np.einsum("nohw,oc->nchw", G, weight[:, :, ra, rb])
            dw[:, :, ra, rb] = np.einsum("nohw,nchw->oc", G, xpad[index])
        h, w = x.shape[2:]
        p = padding + 1 if bug == "padding off by one in dx" else padding
        dx = dxpad[:, :, p:p + h, p:p + w]
        db = G[:, :, 0, 0].sum(axis=0) if bug == "bias gradient not summed over space" \
            else G.sum(axis=(0, 2, 3))
        return dx, dw, db

    return Candidate(forward, vjp=vjp)


# -- pools ------------------------------------------------------------------------------------


def _pool_windows(x, k, s, bug=None):
    """``(i, j, rows, cols)`` of every output position."""
    h, w = x.shape[2:]
    size = k - 1 if bug == "window one row short" else k
    return [(i, j, slice(i * s, i * s + size), slice(j * s, j * s + k))
            for i in range((h - k) // s + 1) for j in range((w - k) // s + 1)]


def _pooled(x, windows, reduce):
    rows = 1 + max(i for i, *_ in windows)
    cols = 1 + max(j for _, j, *_ in windows)
    out = np.empty(x.shape[:2] + (rows, cols), dtype=x.dtype)
    for i, j, r, c in windows:
        out[:, :, i, j] = reduce(x[:, :, r, c])
    return out


def _candidate_avg_pool(bug=None):
    divisor = (lambda k: k) if bug == "divisor k instead of k^2" else (lambda k: k * k)

    def forward(x, *, kernel_size, stride=None):
        windows = _pool_windows(x, kernel_size, stride or kernel_size)
        return _pooled(x, windows, lambda w: w.sum(axis=(2, 3)) / divisor(kernel_size))

    def vjp(x, G, *, kernel_size, stride=None):
        dx = np.zeros_like(x)
        share = kernel_size if bug == "gradient divided by k, not k^2" else kernel_size**2
        for i, j, r, c in _pool_windows(x, kernel_size, stride or kernel_size):
            if bug == "overlapping windows overwrite":
                dx[:, :, r, c] = G[:, :, i, j, None, None] / share
            else:
                dx[:, :, r, c] += G[:, :, i, j, None, None] / share
        return (dx,)

    return Candidate(forward, vjp=vjp)


def _first_max_mask(w):
    """1 at the first row-major maximum of each ``(n, c)`` window, 0 elsewhere."""
    flat = w.reshape(w.shape[:2] + (-1,))
    hot = np.arange(flat.shape[-1]) == np.argmax(flat, axis=-1)[..., None]
    return hot.reshape(w.shape).astype(w.dtype)


def _candidate_max_pool(bug=None):
    def forward(x, *, kernel_size, stride=None):
        windows = _pool_windows(x, kernel_size, stride or kernel_size, bug)
        return _pooled(x, windows, lambda w: w.max(axis=(2, 3)))

    def vjp(x, G, *, kernel_size, stride=None):
        dx = np.zeros_like(x)
        for i, j, r, c in _pool_windows(x, kernel_size, stride or kernel_size):
            w = x[:, :, r, c]
            mask = np.ones_like(w) if bug == "gradient to every element of the window" \
                else _first_max_mask(w)
            dx[:, :, r, c] += G[:, :, i, j, None, None] * mask
        return (dx,)

    return Candidate(forward, vjp=vjp)


def _bins(n_in, n_out, bug=None):
    end = math.floor if bug == "bin ends rounded down" else math.ceil
    return [(i, i * n_in // n_out, end((i + 1) * n_in / n_out)) for i in range(n_out)]


def _candidate_adaptive(bug=None):
    def forward(x, *, output_size):
        out = np.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
        for i, r0, r1 in _bins(x.shape[2], output_size[0], bug):
            for j, c0, c1 in _bins(x.shape[3], output_size[1], bug):
                out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        return out

    def vjp(x, G, *, output_size):
        dx = np.zeros_like(x)
        for i, r0, r1 in _bins(x.shape[2], output_size[0]):
            for j, c0, c1 in _bins(x.shape[3], output_size[1]):
                size = 1 if bug == "gradient not divided by the bin size" else (r1 - r0) * (c1 - c0)
                dx[:, :, r0:r1, c0:c1] += G[:, :, i, j, None, None] / size
        return (dx,)

    return Candidate(forward, vjp=vjp)


# -- relu -------------------------------------------------------------------------------------


def _candidate_relu(bug=None):
    slope = 0.01 if bug == "leaky (slope 0.01)" else 0.0

    def forward(x):
        return np.where(x > 0, x, slope * x)

    def vjp(x, G):
        if bug == "gradient on the wrong side":
            return (G * (x < 0),)
        return (G * np.where(x > 0, 1.0, slope).astype(x.dtype),)

    return Candidate(forward, vjp=vjp)


# -- networks ---------------------------------------------------------------------------------


def _layer(kind, p, dtype, bug=None):
    """``(forward(x), vjp(x, G) -> dx)`` of one network layer, weights cast to ``dtype``."""
    if kind in ("linear", "conv"):
        weight = p["weight"].astype(dtype)
        bias = np.zeros(weight.shape[0], dtype) if p["bias"] is None else p["bias"].astype(dtype)
        if kind == "linear":
            cand, params = _candidate_linear(), {}
        else:
            cand, params = _candidate_conv2d(), {"stride": p["stride"], "padding": p["padding"]}
        return (lambda x: cand.forward(x, weight, bias, **params),
                lambda x, G: cand.vjp(x, weight, bias, G, **params)[0])
    if kind == "flatten":
        if bug == "flatten channels last":
            return (lambda x: np.moveaxis(x, 1, -1).reshape(x.shape[0], -1),
                    lambda x, G: np.moveaxis(G.reshape(np.moveaxis(x, 1, -1).shape), -1, 1))
        return lambda x: x.reshape(x.shape[0], -1), lambda x, G: G.reshape(x.shape)
    cand, params = {
        "relu": (_candidate_relu(), {}),
        "avgpool": (_candidate_avg_pool(), {"kernel_size": p.get("kernel_size")}),
        "maxpool": (_candidate_max_pool(), {"kernel_size": p.get("kernel_size")}),
        "adaptive": (_candidate_adaptive(), {"output_size": p.get("output_size")}),
    }[kind]
    if kind == "relu" and bug == "relu gradient passed through":
        return cand.forward, lambda x, G: G
    return (lambda x: cand.forward(x, **params), lambda x, G: cand.vjp(x, G, **params)[0])


def _candidate_network(bug=None):
    def layers(net, dtype):
        return [_layer(kind, p, dtype, bug) for kind, p in net.specs]

    def forward(x, *, net, rule_set):
        for f, _ in layers(net, x.dtype):
            x = f(x)
        return x

    def vjp(x, G, *, net, rule_set):
        inputs = []
        for f, back in layers(net, x.dtype):
            inputs.append((x, back))
            x = f(x)
        for a, back in reversed(inputs):
            G = back(a, G)
        return (G,)

    return Candidate(forward, vjp=vjp)


def _teeth(factory, bugs, caught_by=None):
    return Teeth(correct=factory(), mutants={b: factory(b) for b in bugs},
                 caught_by=caught_by or {})


_VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}
_FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}

TEETH = {
    "lrp_linear": _teeth(_candidate_linear, (
        "bias not added", "weight gradient transposed", "bias gradient not summed over the batch"),
        {"bias not added": _FORWARD_CHECKS,
         "bias gradient not summed over the batch": _VJP_CHECKS}),
    "lrp_conv2d": _teeth(_candidate_conv2d, (
        "convolution (flipped kernel)", "padding off by one in dx",
        "bias gradient not summed over space"),
        {"convolution (flipped kernel)": _FORWARD_CHECKS,
         "bias gradient not summed over space": _VJP_CHECKS}),
    "lrp_avg_pool2d": _teeth(_candidate_avg_pool, (
        "divisor k instead of k^2", "gradient divided by k, not k^2",
        "overlapping windows overwrite"),
        {"divisor k instead of k^2": _FORWARD_CHECKS,
         "gradient divided by k, not k^2": _VJP_CHECKS}),
    "lrp_max_pool2d": _teeth(_candidate_max_pool, (
        "window one row short", "gradient to every element of the window"),
        {"window one row short": _FORWARD_CHECKS,
         "gradient to every element of the window": _VJP_CHECKS}),
    "lrp_adaptive_avg_pool2d": _teeth(_candidate_adaptive, (
        "bin ends rounded down", "gradient not divided by the bin size"),
        {"bin ends rounded down": _FORWARD_CHECKS,
         "gradient not divided by the bin size": _VJP_CHECKS}),
    "lrp_relu": _teeth(_candidate_relu, ("leaky (slope 0.01)", "gradient on the wrong side"),
                       {"leaky (slope 0.01)": _FORWARD_CHECKS,
                        "gradient on the wrong side": _VJP_CHECKS}),
    "lrp_network": _teeth(_candidate_network, (
        "flatten channels last", "relu gradient passed through"),
        {"flatten channels last": _FORWARD_CHECKS,
         "relu gradient passed through": _VJP_CHECKS}),
}
