"""JAX as a client of verify: jax.nn / lax layers and JAX-written attributions, jax.vjp as the VJP.

Written as a JAX developer checks their own code: each candidate is the
natural JAX expression (``lax.conv_general_dilated``, ``lax.reduce_window``,
``jax.nn.relu``, ``jax.nn.softmax``, ...) of the arrays verify hands it
(``from_numpy="jax"``, float64 enabled), jitted, and the VJP is ``jax.vjp`` of
that forward (``jax_autodiff_vjp``, tests/clients/_frameworks.py), checked in
float64 and float32. A network is the list of :mod:`refimpl.nn` layers verify
draws; as with stax or flax, it runs as ``apply_network(structure, params, x)``
under ``jax.jit``: the layers' kinds and settings static, their arrays a pytree
(``params``). Each check draws its inputs from a pool of at most three shapes
(``few_shapes``), so that it compiles a few times, not once per example.

Attributions are written as JAX users write them: saliency and input times
gradient by ``jax.grad`` of the target score, integrated gradients by
Gauss-Legendre quadrature (``numpy.polynomial.legendre.leggauss``, the
record's default ``method``) with the path's gradients under ``jax.vmap``, the
LRP epsilon rule as ``x * vjp(R / S(z))`` with ``S(z) = z + eps sgn(z)``,
``sgn(0) = +1`` (the record's ``stabilizer="sign"``; ``"zero_only"`` is
``z + eps [z = 0]``).

Bugs a JAX port could ship are planted at the end, each caught with the failing
property named. Skipped without JAX (``pip install "jax[cpu]"``).
"""

import dataclasses
import functools
import types

import numpy as np
import pytest
from _frameworks import (
    DTYPES,
    PlantedBug,
    assert_caught,
    assert_every_op_accounted_for,
    assert_passes,
    few_shapes,
    jax_autodiff_vjp,
    jax_client,
    refine,
)

import verify
from verify._tree import is_array

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
lax = jax.lax
FRAMEWORK = "jax"


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


def network_structure(layers) -> tuple:
    """The static part of a network: each layer's class name and settings (hashable)."""
    return tuple((type(layer).__name__,
                  tuple((f.name, getattr(layer, f.name)) for f in dataclasses.fields(layer)
                        if not is_array(getattr(layer, f.name))))
                 for layer in layers)


def network_params(layers) -> list:
    """The arrays of a network, a pytree: one ``{field: array}`` per layer."""
    return [layer.arrays() for layer in layers]


@functools.partial(jax.jit, static_argnums=0)
def apply_network(structure, params, x):
    """The layers in order, each by its JAX expression (JAX_LAYERS), compiled once per
    structure and input shape."""
    for (kind, settings), arrays in zip(structure, params):
        x = JAX_LAYERS[kind](types.SimpleNamespace(**dict(settings), **arrays), x)
    return x


def jax_network(layers, x):
    return apply_network(network_structure(layers), network_params(layers), x)


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


#: Candidates of ops with a network primal (layers, not JAX types): called eagerly, the
#: network inside under jax.jit (apply_network).
TAKES_LAYERS = ("sequential",)
LAYER_CLIENTS = {op: jax_client(f, op, jit=op not in TAKES_LAYERS)
                 for op, f in LAYER_CANDIDATES.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(LAYER_CLIENTS))
def test_jax_layer_passes(op_name, dtype):
    assert_passes(LAYER_CLIENTS[op_name], FRAMEWORK, dtype)


# -- attributions and the LRP epsilon rule, as JAX users write them -----------------------------


def _target_score(structure, params, x, target):
    """Sum over samples of each sample's target output (samples do not interact)."""
    out = apply_network(structure, params, x)
    return jnp.sum(jnp.take_along_axis(out, target[:, None], axis=1))


_input_gradient = jax.grad(_target_score, argnums=2)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _gradient_attribution(structure, params, x, target, absolute, times_input):
    g = _input_gradient(structure, params, x, target)
    return x * g if times_input else (jnp.abs(g) if absolute else g)


def jax_saliency(layers, x, target, *, abs=True):
    return _gradient_attribution(network_structure(layers), network_params(layers), x, target,
                                 abs, False)


def jax_input_x_gradient(layers, x, target):
    return _gradient_attribution(network_structure(layers), network_params(layers), x, target,
                                 False, True)


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


#: Path points per compiled call: n_steps is padded to a multiple (weights 0), so that every
#: n_steps reuses one compilation per network and input shape (captum's internal_batch_size).
STEPS_PER_CALL = 16


@functools.partial(jax.jit, static_argnums=0)
def _path_chunk(structure, params, x, baseline, target, alphas, weights, total):
    """``total + sum_k w_k grad f(b + a_k (x - b))`` over one chunk of the path, vmapped."""
    b = jnp.zeros_like(x) if baseline is None else baseline
    gradients = jax.vmap(lambda a: _input_gradient(structure, params, b + a * (x - b), target))
    return total + jnp.tensordot(weights, gradients(alphas), axes=1)


@functools.partial(jax.jit, static_argnums=0)
def _attribution_and_delta(structure, params, x, baseline, target, total):
    """``(x - b) total`` and its completeness gap ``sum IG - (f(x) - f(b))`` per sample."""
    b = jnp.zeros_like(x) if baseline is None else baseline
    attribution = (x - b) * total
    n = x.shape[0]
    scores = jnp.take_along_axis(apply_network(structure, params, jnp.concatenate([x, b])),
                                 jnp.concatenate([target, target])[:, None], axis=1)[:, 0]
    return attribution, jnp.sum(attribution.reshape(n, -1), axis=1) - (scores[:n] - scores[n:])


def jax_integrated_gradients(layers, x, target, baseline=None, *, n_steps=50,
                             method="gausslegendre", trapezoid="captum"):
    """IG along the straight path, by chunks of STEPS_PER_CALL points, and its delta."""
    structure, params = network_structure(layers), network_params(layers)
    alphas, weights = (np.pad(a, (0, -n_steps % STEPS_PER_CALL)).reshape(-1, STEPS_PER_CALL)
                       .astype(x.dtype) for a in _path_rule(method, n_steps, trapezoid))
    total = np.zeros(x.shape, x.dtype)
    for a, w in zip(alphas, weights):
        total = _path_chunk(structure, params, x, baseline, target, a, w, total)
    return _attribution_and_delta(structure, params, x, baseline, target, total)


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


def _dense_layer_cases():
    """The LRP rule's cases on Linear layers only: jax.vjp of a strided
    lax.conv_general_dilated on some of its Conv2d cases aborts the process inside XLA
    ("Window dimensions do not match RHS shape", jax 0.10.2 CPU)."""
    return verify.get_op("lrp_epsilon").cases().filter(
        lambda case: case.primals["weight"].ndim == 2)


ATTRIBUTION_CLIENTS = {c.op: c for c in [
    jax_client(refine, "refine"),
    jax_client(jax_saliency, "saliency", vjp=False, jit=False),
    jax_client(jax_input_x_gradient, "input_x_gradient", vjp=False, jit=False),
    # n_steps and method are arrays to the compiled path (chunks of STEPS_PER_CALL points):
    # the pool's shapes are the inputs' alone, so it holds every method.
    jax_client(jax_integrated_gradients, "integrated_gradients", vjp=False, jit=False,
               static_params=False),
    jax_client(jax_lrp_epsilon, "lrp_epsilon", vjp=False, cases=_dense_layer_cases),
]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(ATTRIBUTION_CLIENTS))
def test_jax_attribution_passes(op_name, dtype):
    assert_passes(ATTRIBUTION_CLIENTS[op_name], FRAMEWORK, dtype)


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


def _gauss_legendre_cases():
    return verify.get_op("integrated_gradients").cases().filter(
        lambda case: case.params.get("method", "gausslegendre") == "gausslegendre")


BUGS = [
    PlantedBug("lrp_epsilon", "stabiliser's sign at z = 0 (jnp.sign(0) = 0)",
               ("matches ground truth",), forward=lrp_epsilon_sign_zero_bug),
    PlantedBug("softmax", "softmax without subtracting the max",
               ("logits near the float maximum",), forward=softmax_without_max_bug),
    PlantedBug("conv2d", "float32 accumulation inside a float64 convolution",
               ("matches ground truth",), forward=conv2d_float32_accumulation_bug),
    PlantedBug("integrated_gradients", "Gauss-Legendre weights without the 1/2",
               ("matches ground truth",), forward=integrated_gradients_missing_half_bug,
               cases=few_shapes(_gauss_legendre_cases, static_params=False)),
    PlantedBug("squash", "squash without scaling (NaN at 0)", ("zero capsules",),
               forward=squash_textbook_bug),
]
CLIENTS = {**LAYER_CLIENTS, **ATTRIBUTION_CLIENTS}

_ATTRIBUTION = "no JAX attribution library: the torch suite checks captum's"
_LRP_RULE = "the LRP rules but epsilon are captum's and zennit's (the torch suite)"
WITHOUT_JAX_CLIENT = {
    "scaled_dot_product_attention": "jax.nn.dot_product_attention takes (B, T, N, H) only and "
                                    "has no convention for a query without an allowed key",
    "multi_head_attention": "no multi-head attention in jax.nn (flax's is a module library)",
    **{op: _ATTRIBUTION for op in (
        "sensitivity", "smoothgrad", "vargrad", "guided_backprop", "deconvnet", "grad_cam",
        "guided_grad_cam", "cam", "occlusion", "feature_ablation", "lime", "upsample",
        "activation_maximization", "lrp")},
    **{op: _LRP_RULE for op in ("lrp_gamma", "lrp_alpha_beta", "lrp_zplus", "lrp_zbox",
                                "lrp_wsquare", "lrp_flat", "lrp_norm")},
}


def test_jax_clients_cover_every_op_of_nn_and_attribution():
    assert_every_op_accounted_for(CLIENTS, ("nn", "attribution"), WITHOUT_JAX_CLIENT)


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: f"{b.op}-{b.description}")
def test_jax_bug_is_caught(bug):
    assert_caught(bug, CLIENTS[bug.op], FRAMEWORK, autodiff=jax_autodiff_vjp)
