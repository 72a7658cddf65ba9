"""JAX as a client of verify: jax.nn / lax layers and JAX-written attributions, jax.vjp as the VJP.

Written as a JAX developer checks their own code: each candidate is the
natural JAX expression (``lax.conv_general_dilated``, ``lax.reduce_window``,
``jax.nn.relu``, ``jax.nn.softmax``, ...) of the arrays verify hands it
(``from_numpy="jax"``, float64 enabled), and the VJP is ``jax.vjp`` of that
forward for every op at once (:func:`jax_vjp`). A network is the list of
:mod:`refimpl.nn` layers verify draws, their arrays JAX arrays; the VJP
differentiates each layer's arrays (``layer.arrays()``) as a pytree.

Candidates run eagerly (no ``jax.jit`` around a whole check): each primitive is
compiled once per shape and reused, so every check stays within seconds.
Attributions are written as JAX users write them: saliency and input times
gradient by ``jax.grad`` of the target score, integrated gradients by
Gauss-Legendre quadrature (``numpy.polynomial.legendre.leggauss``, the
record's default ``method``), the LRP epsilon rule as ``x * vjp(R / S(z))``
with ``S(z) = z + eps sgn(z)``, ``sgn(0) = +1`` (the record's
``stabilizer="sign"``; ``"zero_only"`` is ``z + eps [z = 0]``).

Bugs a JAX port could ship are planted at the end, each caught with the failing
property named. Skipped without JAX (``pip install "jax[cpu]"``).
"""

import dataclasses

import numpy as np
import pytest

import verify
from _nn_frameworks import (
    Call,
    failed_properties,
    layer_arrays,
    timed_check,
    with_layer_arrays,
)

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
lax = jax.lax

#: float64 only: the float32 rounding is the torch suite's (the same verify checks); here
#: the JAX-specific risks are float64 handling (x64, precision flags) and compile time.
DTYPES = ["float64"]


# -- jax.vjp as the VJP, for every record -------------------------------------------------------


def _differentiable(value):
    """The part of a primal that jax.vjp differentiates: a float array, or each layer's arrays."""
    if isinstance(value, list):
        return layer_arrays(value)
    return value if jnp.issubdtype(value.dtype, jnp.floating) else None


def jax_vjp(op_name, forward):
    """``vjp(*primals, *cotangents, **optional primals, **params)`` of ``forward``: jax.vjp's."""
    call = Call.of(op_name)

    def vjp(*args, **kwargs):
        primals, cotangents, params = call.split(args, kwargs)
        names = [k for k in call.differentiable
                 if k in primals and _differentiable(primals[k]) is not None]

        def f(*parts):
            changed = {**primals, **{k: with_layer_arrays(primals[k], p) for k, p in zip(names, parts)}}
            return call.forward(forward, changed, params)

        _, pullback = jax.vjp(f, *(_differentiable(primals[k]) for k in names))
        grads = dict(zip(names, pullback(tuple(cotangents))))
        return tuple(with_layer_arrays(primals[k], grads[k]) if k in grads else None
                     for k in call.given(primals))

    return vjp


# -- layers ---------------------------------------------------------------------------------------


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def jax_linear(x, weight, bias=None):
    out = x @ weight.T
    return out if bias is None else out + bias


def jax_conv2d(x, weight, bias=None, stride=1, padding=0):
    """PyTorch's Conv2d (cross-correlation, NCHW / OIHW, zero padding) by lax."""
    ph, pw = _pair(padding)
    out = lax.conv_general_dilated(x, weight, _pair(stride), [(ph, ph), (pw, pw)],
                                   dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                   precision=lax.Precision.HIGHEST)
    return out if bias is None else out + bias[:, None, None]


def _window(kernel_size, stride):
    k = _pair(kernel_size)
    return (1, 1) + k, (1, 1) + _pair(k if stride is None else stride)


def jax_avg_pool2d(x, kernel_size, stride=None):
    dims, strides = _window(kernel_size, stride)
    return lax.reduce_window(x, 0.0, lax.add, dims, strides, "VALID") / np.prod(dims)


def jax_max_pool2d(x, kernel_size, stride=None):
    dims, strides = _window(kernel_size, stride)
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, "VALID")


def _adaptive_means(n_in, n_out):
    """(n_out, n_in) averaging matrix of PyTorch's bins [floor(i n / m), ceil((i + 1) n / m))."""
    P = np.zeros((n_out, n_in))
    for i in range(n_out):
        start, stop = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
        P[i, start:stop] = 1.0 / (stop - start)
    return P


def jax_adaptive_avg_pool2d(x, output_size):
    """One contraction with the two axes' averaging matrices (no per-bin slices to compile)."""
    h, w = _pair(output_size)
    Ph, Pw = (jnp.asarray(_adaptive_means(n, m), x.dtype)
              for n, m in ((x.shape[-2], h), (x.shape[-1], w)))
    return jnp.einsum("hH,...HW,wW->...hw", Ph, x, Pw, precision=lax.Precision.HIGHEST)


def jax_batch_norm(x, weight, bias, running_mean, running_var, eps=1e-5):
    """Inference-mode batch norm (flax's BatchNorm with use_running_average), channels axis 1."""
    shape = (-1,) + (1,) * (x.ndim - 2)
    scale = weight * lax.rsqrt(running_var + eps)
    return x * scale.reshape(shape) + (bias - running_mean * scale).reshape(shape)


JAX_LAYERS = {
    "Linear": lambda l, x: jax_linear(x, l.weight, l.bias),
    "Conv2d": lambda l, x: jax_conv2d(x, l.weight, l.bias, l.stride, l.padding),
    "AvgPool2d": lambda l, x: jax_avg_pool2d(x, l.kernel_size, l.stride),
    "MaxPool2d": lambda l, x: jax_max_pool2d(x, l.kernel_size, l.stride),
    "AdaptiveAvgPool2d": lambda l, x: jax_adaptive_avg_pool2d(x, l.output_size),
    "ReLU": lambda l, x: jax.nn.relu(x),
    "Tanh": lambda l, x: jnp.tanh(x),
    "Sigmoid": lambda l, x: jax.nn.sigmoid(x),
    "BatchNorm": lambda l, x: jax_batch_norm(x, l.weight, l.bias, l.running_mean,
                                             l.running_var, l.eps),
    "Flatten": lambda l, x: x.reshape(x.shape[0], -1),
}


def jax_network(layers, x):
    for layer in layers:
        x = JAX_LAYERS[type(layer).__name__](layer, x)
    return x


def jax_squash(s):
    """Capsule squash ``|s|^2 / (1 + |s|^2) s / |s|``, finite to the float maximum and at 0.

    ``u = s 2^-e`` with ``2^e`` the power of two of ``max|s|`` (exact; ``s / max|s|`` is not:
    XLA's CPU division flushes the subnormal ``1 / max|s|`` near the float maximum to 0),
    ``r = |u|`` and ``n = r 2^e = |s|``: for ``n > 1`` the squash is ``(u / r) / (1 + 1/n^2)``
    (n only as 1/n^2: an overflowing n gives the unit vector), else ``n / (1 + n^2) s``. A
    capsule at 0 is replaced by ones before the norm (the double where): the norm's cotangent
    at 0 is NaN, and NaN times a where's zero is NaN.
    """
    big = jnp.max(jnp.abs(s), axis=-1, keepdims=True)
    zero, e = big == 0, jnp.frexp(big)[1]
    u = jnp.where(zero, 1.0, jnp.ldexp(s, -e))
    r = jnp.linalg.norm(u, axis=-1, keepdims=True)
    n = jnp.where(zero, 0.0, jnp.ldexp(r, e))
    large = jnp.where(n > 1, n, 2.0)
    return jnp.where(n > 1, (u / r) / (1 + 1 / (large * large)), n / (1 + n * n) * s)


def jax_dynamic_routing(u_hat, n_iter=3):
    b = jnp.zeros(u_hat.shape[:-1], u_hat.dtype)
    for _ in range(n_iter):
        c = jax.nn.softmax(b, axis=-1)
        v = jax_squash(jnp.sum(c[..., None] * u_hat, axis=-3))
        b = b + jnp.sum(u_hat * v[..., None, :, :], axis=-1)
    return v


def jax_distillation(student_logits, teacher_logits, labels=None, *, temperature, alpha=0.5):
    """T^2 KL(teacher || student) of the softened distributions, batch mean, plus cross-entropy."""
    log_p = jax.nn.log_softmax(teacher_logits / temperature, axis=1)
    log_q = jax.nn.log_softmax(student_logits / temperature, axis=1)
    soft = temperature ** 2 * jnp.mean(jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=1))
    if labels is None:
        return soft
    log_probs = jax.nn.log_softmax(student_logits, axis=1)
    hard = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))
    return alpha * soft + (1 - alpha) * hard


def jax_memory_readout(u, q):
    """Soft memory read: softmax over the rows of u of <u_i, q>, then the weighted rows."""
    weights = jax.nn.softmax(jnp.einsum("...nd,...d->...n", u, q), axis=-1)
    return jnp.einsum("...n,...nd->...d", weights, u)


LAYER_CANDIDATES = {
    "linear": jax_linear,
    "conv2d": jax_conv2d,
    "batch_norm": jax_batch_norm,
    "avg_pool2d": jax_avg_pool2d,
    "max_pool2d": jax_max_pool2d,
    "adaptive_avg_pool2d": jax_adaptive_avg_pool2d,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "flatten": lambda x: x.reshape(x.shape[0], -1),
    "softmax": lambda x, axis=-1: jax.nn.softmax(x, axis=axis),
    "log_softmax": lambda x, axis=-1: jax.nn.log_softmax(x, axis=axis),
    "sequential": jax_network,
    "memory_readout": jax_memory_readout,
    "squash": jax_squash,
    "dynamic_routing": jax_dynamic_routing,
    "distillation_loss": jax_distillation,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(LAYER_CANDIDATES))
def test_jax_layer_passes(op_name, dtype):
    forward = LAYER_CANDIDATES[op_name]
    report, seconds = timed_check(forward, op_name, vjp=jax_vjp(op_name, forward),
                                  from_numpy="jax", dtype=dtype)
    assert report.passed, str(report)
    assert not any(r.skipped for r in report.results), str(report)
    print(f"{op_name} {dtype}: {seconds:.1f} s")


# -- attributions and the LRP epsilon rule, as JAX users write them -----------------------------


def _target_score(layers, x, target):
    """Sum over samples of each sample's target output (samples do not interact)."""
    return jnp.sum(jnp.take_along_axis(jax_network(layers, x), target[:, None], axis=1))


def jax_saliency(layers, x, target, *, abs=True):
    g = jax.grad(_target_score, argnums=1)(layers, x, target)
    return jnp.abs(g) if abs else g


def jax_input_x_gradient(layers, x, target):
    return x * jax.grad(_target_score, argnums=1)(layers, x, target)


def _path_rule(method, n, trapezoid):
    """Points and weights on [0, 1] of the record's ``method`` (captum's names)."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return (nodes + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        weights = np.full(n, 1.0 / (n if trapezoid == "captum" else n - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n), weights
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return (np.arange(n) + offset) / n, np.full(n, 1.0 / n)


def jax_integrated_gradients(layers, x, target, baseline=None, *, n_steps=50,
                             method="gausslegendre", trapezoid="captum", halve=True):
    """IG along the straight path and its completeness gap ``sum IG - (f(x) - f(b))``."""
    b = jnp.zeros_like(x) if baseline is None else baseline
    alphas, weights = _path_rule(method, n_steps, trapezoid)
    grad = jax.grad(_target_score, argnums=1)
    total = sum(w * grad(layers, b + a * (x - b), target) for a, w in zip(alphas, weights))
    attribution = (x - b) * total
    scores = jax.vmap(lambda v, t: jax_network(layers, v[None])[0, t])
    gap = scores(x, target) - scores(b, target)
    return attribution, jnp.sum(attribution.reshape(x.shape[0], -1), axis=1) - gap


def stabilize(z, epsilon, stabilizer="sign"):
    """``z + eps sgn(z)`` with ``sgn(0) = +1``, or ``z + eps [z = 0]`` (``"zero_only"``)."""
    if stabilizer == "zero_only":
        return z + epsilon * (z == 0)
    return z + epsilon * jnp.where(z >= 0, 1.0, -1.0)


def jax_lrp_epsilon(x, weight, R, bias=None, *, epsilon=1e-6, zero_bias=False,
                    stabilizer="sign", stride=1, padding=0, sign=stabilize):
    """``R_i = x_i [W^T (R / S(z))]_i``: the transposed layer by jax.vjp, no explicit matrix."""
    b = None if zero_bias else bias

    def layer(v):
        if weight.ndim == 4:
            return jax_conv2d(v, weight, b, stride, padding)
        return jax_linear(v, weight, b)

    z, pullback = jax.vjp(layer, x)
    (back,) = pullback(R / sign(z, epsilon, stabilizer))
    return x * back


ATTRIBUTION_CANDIDATES = {
    "saliency": jax_saliency,
    "input_x_gradient": jax_input_x_gradient,
    "integrated_gradients": jax_integrated_gradients,
    "lrp_epsilon": jax_lrp_epsilon,
}


def _dense_layer(case):
    return case.primals["weight"].ndim == 2


def _cases(op_name):
    """The record's cases; for the LRP rule on Linear layers only: jax.vjp of a strided
    lax.conv_general_dilated on some of its Conv2d cases aborts the process inside XLA
    ("Window dimensions do not match RHS shape", jax 0.10.2 CPU)."""
    cases = verify.get_op(op_name).cases
    return (lambda: cases().filter(_dense_layer)) if op_name == "lrp_epsilon" else None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(ATTRIBUTION_CANDIDATES))
def test_jax_attribution_passes(op_name, dtype):
    report, seconds = timed_check(ATTRIBUTION_CANDIDATES[op_name], op_name, from_numpy="jax",
                                  dtype=dtype, cases=_cases(op_name))
    assert report.passed, str(report)
    print(f"{op_name} {dtype}: {seconds:.1f} s")


# -- planted bugs of a JAX port: each caught, by the property named ------------------------------


def lrp_epsilon_sign_zero_bug(x, weight, R, bias=None, **params):
    """``jnp.sign`` as the stabiliser's sign: ``S(0) = 0``, a division by zero at z = 0."""
    return jax_lrp_epsilon(x, weight, R, bias, **params,
                           sign=lambda z, eps, _: z + eps * jnp.sign(z))


def softmax_without_max_bug(x, axis=-1):
    e = jnp.exp(x)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def conv2d_float32_accumulation_bug(x, weight, bias=None, stride=1, padding=0):
    """A float64 convolution run in float32 (TPU-style default precision) and cast back."""
    out = jax_conv2d(x.astype(jnp.float32), weight.astype(jnp.float32),
                     None if bias is None else bias.astype(jnp.float32), stride, padding)
    return out.astype(x.dtype)


def integrated_gradients_missing_half_bug(layers, x, target, baseline=None, *, n_steps=50,
                                          method="gausslegendre", **params):
    """Gauss-Legendre weights of [-1, 1] used on [0, 1]: the Jacobian's 1/2 left out."""
    attribution, delta = jax_integrated_gradients(layers, x, target, baseline, n_steps=n_steps,
                                                  method=method, **params)
    return (2 * attribution, delta) if method == "gausslegendre" else (attribution, delta)


def squash_textbook_bug(s):
    sq = jnp.sum(s * s, axis=-1, keepdims=True)
    return sq / (1 + sq) * s / jnp.sqrt(sq)


PLANTED = {
    "stabiliser's sign at z = 0 (jnp.sign(0) = 0)": (
        "lrp_epsilon", lrp_epsilon_sign_zero_bug, False, "matches ground truth"),
    "softmax without subtracting the max": (
        "softmax", softmax_without_max_bug, True, "logits near the float maximum"),
    "float32 accumulation inside a float64 convolution": (
        "conv2d", conv2d_float32_accumulation_bug, True, "matches ground truth"),
    "Gauss-Legendre weights without the 1/2": (
        "integrated_gradients", integrated_gradients_missing_half_bug, False,
        "matches ground truth"),
    "squash without scaling (NaN at 0)": (
        "squash", squash_textbook_bug, True, "zero capsules"),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_jax_bug_is_caught(bug):
    op_name, forward, with_vjp, prop = PLANTED[bug]
    report, _ = timed_check(forward, op_name, from_numpy="jax", properties=[prop],
                            vjp=jax_vjp(op_name, forward) if with_vjp else None,
                            cases=_cases(op_name))
    assert prop in failed_properties(report), str(report)
