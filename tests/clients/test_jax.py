"""JAX as a client of verify: linalg, conv, flows, vi, embedding, analysis, compression.

Each op that JAX can express is written the way a JAX developer would write it
(``jax.lax.linalg``, ``jnp.fft``, ``lax.conv_general_dilated`` on a wrap-padded input,
``jnp.linalg``, ``jax.scipy``, ``lax.scan``, ``jax.ops.segment_sum``), jitted, with
``jax.vjp`` (jitted too) as the VJP, and checked by :func:`verify.check` in float64 and
float32; then realistic JAX mistakes are planted and each must be caught by the named
check. jit compiles once per shape (0.5-1 s of CPU for a linear-algebra op), so each
check draws from a pool of cases of at most three shapes (``few_shapes``).
``jax.lax.linalg.householder_product`` has no differentiation rule: its gradient checks
are left out with that reason, the forward is checked. Skipped when JAX is not importable.
"""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import pytest
from _frameworks import (
    DTYPES,
    LAPACK_LEFT_OUT,
    PlantedBug,
    assert_caught,
    assert_every_op_accounted_for,
    assert_passes,
    coupling_scale,
    coupling_split,
    flow_candidates,
    grid_axes,
    kernel_on,
    jax_autodiff_vjp,
    jax_client,
    jax_jit,
    lapack_matrix_cases,
    least_squares_cases,
    normal_expected_log_joint,
    pruned_count,
)

from verify.strategies import lapack_reflector_cases

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)  # verify's float64 inputs stay float64
from test_jax_nn import jax_network  # noqa: E402 (after the skip without JAX)
jnp = jax.numpy
lax = jax.lax
jsp = jax.scipy

FRAMEWORK = "jax"


# -- linalg: Householder products (docs/conventions.rst, section 1.1) -----------------------
# As for torch: A = V^T (LAPACK's columns are verify's rows), the same tau; JAX reads only
# the strict lower part of A and returns the first n columns of U, so pad to d reflectors.


def _lapack_tau(A):
    """``tau = 2 / ||v||^2`` of LAPACK-form columns (unit diagonal, zeros above)."""
    return 2.0 / (1.0 + jnp.sum(jnp.tril(A, -1) ** 2, axis=-2))


def householder_matrix(V, tau=None):
    A = jnp.swapaxes(V, -1, -2)
    tau = _lapack_tau(A) if tau is None else tau
    d, n = A.shape[-2:]
    batch = jnp.broadcast_shapes(A.shape[:-2], tau.shape[:-1])
    A = jnp.broadcast_to(A, batch + A.shape[-2:])
    tau = jnp.broadcast_to(tau, batch + tau.shape[-1:])
    pad = [(0, 0)] * len(batch)
    return lax.linalg.householder_product(jnp.pad(A, pad + [(0, 0), (0, d - n)]),
                                          jnp.pad(tau, pad + [(0, d - n)]))


def householder_product(V, X, tau=None, *, transpose=False):
    U = householder_matrix(V, tau)
    return (jnp.swapaxes(U, -1, -2) if transpose else U) @ X


# -- linalg: the SVD-parametrised layer (section 1.2) ----------------------------------------


def _reflector_product(V):
    """``U = H(v_1) ... H(v_n) = I - V^T T V`` (compact WY, the "UT transform"), where
    ``T^{-1} = triu(V V^T)`` with its diagonal halved: ``||v_i||^2 / 2 = 1 / tau_i``.

    One triangular solve instead of ``n`` rank-one updates: the form LAPACK's blocked
    routines use, and one small XLA computation to compile per shape.
    """
    gram = V @ jnp.swapaxes(V, -1, -2)
    half_norms = jnp.diagonal(gram, axis1=-2, axis2=-1)[..., None] / 2
    T_inv = jnp.triu(gram, 1) + half_norms * jnp.eye(V.shape[-2], dtype=V.dtype)
    eye = jnp.eye(V.shape[-1], dtype=V.dtype)
    return eye - jnp.swapaxes(V, -1, -2) @ jsp.linalg.solve_triangular(T_inv, V, lower=False)


def _svd_weight(Vu, s, Vv=None):
    U = _reflector_product(Vu)
    V = U if Vv is None else _reflector_product(Vv)
    return (U * s[..., None, :]) @ jnp.swapaxes(V, -1, -2)


def svd_linear(Vu, s, Vv, X):
    return _svd_weight(Vu, s, Vv) @ X


def _solve(A, B):
    """``A^{-1} B`` with the batch axes of ``A`` and ``B`` broadcast against each other."""
    batch = jnp.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    return jnp.linalg.solve(jnp.broadcast_to(A, batch + A.shape[-2:]),
                            jnp.broadcast_to(B, batch + B.shape[-2:]))


def svd_linear_inverse(Vu, s, Vv, Y):
    return _solve(_svd_weight(Vu, s, Vv), Y)


def svd_linear_slogdet(Vu, s, Vv):
    return tuple(jnp.linalg.slogdet(_svd_weight(Vu, s, Vv)))


def svd_linear_matrix(Vu, s, Vv):
    return _svd_weight(Vu, s, Vv)


def spectral_norm(Vu, s, Vv):
    return jnp.linalg.matrix_norm(_svd_weight(Vu, s, Vv), ord=2)


def condition_number(Vu, s, Vv):
    return jnp.linalg.cond(_svd_weight(Vu, s, Vv))


def spectral_normalize(Vu, s, Vv, X):
    W = _svd_weight(Vu, s, Vv)
    return W / jnp.linalg.matrix_norm(W, ord=2)[..., None, None] @ X


def sym_expm_apply(Vu, s, X):
    return jsp.linalg.expm(_svd_weight(Vu, s)) @ X


def sym_cayley_apply(Vu, s, X):
    W = _svd_weight(Vu, s)
    eye = jnp.eye(W.shape[-1], dtype=W.dtype)
    return _solve(eye + W, (eye - W) @ X)


# -- conv: circular convolutions by jnp.fft (section 2.2) ------------------------------------


def _circular(X, K, axes, apply):
    """``irfftn(apply(rfftn(X), rfftn(K)))`` over the grid axes of ``X``."""
    axes = grid_axes(X, axes)
    spectrum = apply(jnp.fft.rfftn(X, axes=axes), jnp.fft.rfftn(kernel_on(K, X, axes), axes=axes))
    return jnp.fft.irfftn(spectrum, s=[X.shape[a] for a in axes], axes=axes)


def circular_conv(X, K, *, axes=None):
    return _circular(X, K, axes, lambda x, k: x * k)


def circular_conv_inverse(Z, K, *, axes=None):
    return _circular(Z, K, axes, lambda z, k: z / k)


def _sign_of_product(phases, dims):
    """``sign(prod phases)`` over ``dims``: the product of unit complex numbers is real, +-1."""
    return jnp.sign(jnp.prod(phases, axis=dims).real)


def circular_conv_slogdet(K, *, axes=None):
    axes = grid_axes(K, axes)
    dims = tuple(range(-len(axes), 0))
    spectrum = jnp.moveaxis(jnp.fft.fftn(K, axes=axes), axes, dims)
    magnitude = jnp.abs(spectrum)
    return _sign_of_product(spectrum / magnitude, dims), jnp.sum(jnp.log(magnitude), axis=dims)


# -- conv: periodic convolutions by lax.conv_general_dilated and jnp.fft (section 2.3) -------

NCHW = ("NCHW", "OIHW", "NCHW")


def periodic_conv(X, K):
    # A full-size kernel: lax.conv cross-correlates, so flip K, and wrap H - 1 rows and W - 1
    # columns onto the top and left only: z[n] = sum_m K[m] x[(n - m) mod N].
    c_out, c_in, H, W = K.shape
    x = jnp.pad(X.reshape(-1, c_in, H, W), ((0, 0), (0, 0), (H - 1, 0), (W - 1, 0)), mode="wrap")
    z = lax.conv_general_dilated(x, K[..., ::-1, ::-1], (1, 1), "VALID", dimension_numbers=NCHW)
    return z.reshape(X.shape[:-3] + (c_out, H, W))


def periodic_conv_inverse(Z, K):
    H, W = Z.shape[-2:]
    z = jnp.moveaxis(jnp.fft.rfft2(Z), -3, -1)[..., None]  # (..., H, W//2 + 1, c, 1)
    k = jnp.transpose(jnp.fft.rfft2(K), (2, 3, 0, 1))  # (H, W//2 + 1, c_out, c_in)
    x = _solve(k, z)[..., 0]
    return jnp.fft.irfft2(jnp.moveaxis(x, -1, -3), s=(H, W))


def periodic_conv_slogdet(K):
    spectrum = jnp.moveaxis(jnp.fft.fft2(K), (-2, -1), (-4, -3))  # (..., H, W, c, c)
    sign, logabsdet = jnp.linalg.slogdet(spectrum)
    return _sign_of_product(sign, (-2, -1)), jnp.sum(logabsdet, axis=(-2, -1))


def embed_kernel(w, *, shape, layout="oihw"):
    # The full-size kernel of the layer conv(wrap pad by k // 2, w): its impulse responses,
    # one per input channel (docs/conventions.rst, section 2.4).
    if layout == "hwio":
        w = jnp.transpose(w, (3, 2, 0, 1))
    c_in, (kh, kw), (H, W) = w.shape[1], w.shape[2:], shape
    eye = jnp.eye(c_in, dtype=w.dtype)
    deltas = jnp.zeros((c_in, c_in, H, W), dtype=w.dtype).at[:, :, 0, 0].set(eye)
    padded = jnp.pad(deltas, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)), mode="wrap")
    responses = lax.conv_general_dilated(padded, w, (1, 1), "VALID", dimension_numbers=NCHW)
    return jnp.swapaxes(responses, 0, 1)


# -- flows: Glow's invertible 1x1 convolution (section 3.1) -----------------------------------


def glow_lu_weight(L, U, s, *, perm=None):
    eye = jnp.eye(s.shape[0], dtype=s.dtype)
    W = (jnp.tril(L, -1) + eye) @ (jnp.triu(U, 1) + jnp.diag(s))
    return W if perm is None else W[jnp.asarray(perm)]


def _conv1x1(X, W):
    return jnp.einsum("oc,...chw->...ohw", W, X)


def glow_conv1x1(X, L, U, s, *, perm=None):
    return _conv1x1(X, glow_lu_weight(L, U, s, perm=perm))


def glow_conv1x1_inverse(Z, L, U, s, *, perm=None):
    return _conv1x1(Z, jnp.linalg.inv(glow_lu_weight(L, U, s, perm=perm)))


def glow_conv1x1_slogdet(s, *, shape, perm=None):
    # Glow: log|det| = H W sum log|s|; the sign of det(P L U) = det P prod sign(s), per pixel.
    pixels = shape[0] * shape[1]
    P = jnp.eye(s.shape[0], dtype=s.dtype)
    P = P if perm is None else P[jnp.asarray(perm)]
    sign = (jnp.linalg.det(P) * jnp.prod(jnp.sign(s))) ** pixels
    return sign, pixels * jnp.sum(jnp.log(jnp.abs(s)))


# -- flows: coupling, permutation, ActNorm and LU layers (sections 3.2-3.5), nflows' layout ----
# As for torch: data (n, d) or (n, c, H, W), features on axis 1, (output, logdet) with one
# log-determinant per sample. A conditioner is a list of refimpl.nn layers holding JAX
# arrays, applied by jax_network; layers are not JAX types, so the couplings run eagerly.


def _channels(v, x):
    """A per-channel vector shaped to broadcast over axis 1 of ``x``."""
    return v.reshape((-1,) + (1,) * (x.ndim - 2))


def actnorm(x, log_scale, shift):
    positions = math.prod(x.shape[2:])  # Glow: log|det| = H W sum log_scale
    z = jnp.exp(_channels(log_scale, x)) * x + _channels(shift, x)
    return z, jnp.full(x.shape[0], positions * jnp.sum(log_scale))


def actnorm_inverse(z, log_scale, shift):
    positions = math.prod(z.shape[2:])
    x = (z - _channels(shift, z)) * jnp.exp(-_channels(log_scale, z))
    return x, jnp.full(z.shape[0], -positions * jnp.sum(log_scale))


def actnorm_init(x, *, ddof=1, eps=0.0):
    values = jnp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])  # a channel's values in a column
    std = jnp.std(values, axis=0, ddof=ddof) + eps
    return -jnp.log(std), -jnp.mean(values, axis=0) / std


def permutation(x, *, perm):
    return jnp.take(x, jnp.asarray(perm), axis=1), jnp.zeros(x.shape[0], x.dtype)


def permutation_inverse(z, *, perm):
    return jnp.take(z, jnp.argsort(jnp.asarray(perm)), axis=1), jnp.zeros(z.shape[0], z.dtype)


def _lu_linear_weight(lower, upper, unconstrained_diag):
    """nflows' LULinear weight: Glow's LU with s = softplus(u) + 1e-3, and s."""
    s = jax.nn.softplus(unconstrained_diag) + 1e-3
    return glow_lu_weight(lower, upper, s), s


def lu_linear(x, lower, upper, unconstrained_diag, bias=None):
    W, s = _lu_linear_weight(lower, upper, unconstrained_diag)
    z = x @ W.T
    return (z if bias is None else z + bias), jnp.full(x.shape[0], jnp.sum(jnp.log(s)))


def lu_linear_inverse(z, lower, upper, unconstrained_diag, bias=None):
    W, s = _lu_linear_weight(lower, upper, unconstrained_diag)
    y = z if bias is None else z - bias
    return jnp.linalg.solve(W, y.T).T, jnp.full(z.shape[0], -jnp.sum(jnp.log(s)))


def _coupling(x, mask, conditioner, transform):
    """The features outside ``mask`` pass and condition the others,
    ``transform(x[:, mask], conditioner(x[:, ~mask])) -> (out[:, mask], logdet)``."""
    keep, change = np.flatnonzero(~np.asarray(mask)), np.flatnonzero(np.asarray(mask))
    transformed, logdet = transform(x[:, change], jax_network(conditioner, x[:, keep]))
    return x.at[:, change].set(transformed), logdet


def additive_coupling(x, mask, conditioner):
    return _coupling(x, mask, conditioner, lambda xb, t: (xb + t, jnp.zeros(x.shape[0], x.dtype)))


def additive_coupling_inverse(z, mask, conditioner):
    return _coupling(z, mask, conditioner, lambda zb, t: (zb - t, jnp.zeros(z.shape[0], z.dtype)))


def _shift_and_scale(h, scale, split, clamp):
    t, u = coupling_split(h, split)
    return t, coupling_scale(u, scale, clamp, jnp, jax.nn.sigmoid)


def affine_coupling(x, mask, conditioner, *, scale="nflows", split="shift_first", clamp=2.0):
    def transform(xb, h):
        t, s = _shift_and_scale(h, scale, split, clamp)
        return xb * s + t, jnp.sum(jnp.log(s), axis=1)

    return _coupling(x, mask, conditioner, transform)


def affine_coupling_inverse(z, mask, conditioner, *, scale="nflows", split="shift_first",
                            clamp=2.0):
    def transform(zb, h):
        t, s = _shift_and_scale(h, scale, split, clamp)
        return (zb - t) / s, -jnp.sum(jnp.log(s), axis=1)

    return _coupling(z, mask, conditioner, transform)


# -- flows: the Householder flow (section 3.6), flows of layers, log_prob, sample (3.8) -------
# As for torch: run_flow reads each layer by class name and runs the candidate of its op above,
# jitted as its client is (LAYER_OPS); a flow is not a JAX type, so the flow ops run eagerly.


def householder_flow(x, V):
    # z_n = U^T x_n, U = H(v_1) ... H(v_K); per-sample reflectors V (n, K, d) give U (n, d, d).
    return (x[:, None, :] @ _reflector_product(V))[:, 0], jnp.zeros(x.shape[0], x.dtype)


def householder_flow_inverse(z, V):
    U_T = jnp.swapaxes(_reflector_product(V), -1, -2)
    return (z[:, None, :] @ U_T)[:, 0], jnp.zeros(z.shape[0], z.dtype)


def _base_log_prob(z):
    """``log N(z_n; 0, I)`` per sample."""
    return jnp.sum(jsp.stats.norm.logpdf(z).reshape(z.shape[0], -1), axis=1)


#: The layers' candidates the flows run, filled in below from the clients (each jitted as its
#: client is: op by op a flow's check took 35-41 s).
LAYER_OPS = types.SimpleNamespace()
flow_forward, flow_inverse, log_prob, sample = flow_candidates(LAYER_OPS, jnp, _base_log_prob)


def counterfactual(flow, beta, x):
    z, _ = flow_forward(flow, x)
    u = jnp.ravel(beta / jnp.max(jnp.abs(beta)))  # beta's direction, without overflow
    flat = z.reshape(z.shape[0], -1)
    return flow_inverse(flow, (flat - jnp.outer(flat @ u / (u @ u), u)).reshape(z.shape))[0]


# -- vi: ADVI (section 6.3) and the normal model's ELBO (section 6.1) -------------------------

HALF_LOG_2PI_E = 0.5 * (1.0 + math.log(2 * math.pi))


def _sigma(omega, parametrization):
    return jnp.exp(omega) if parametrization == "exp" else jax.nn.softplus(omega)


def advi_elbo(mu, omega, eps, *, log_p, grad_log_p, parametrization):
    sigma = _sigma(omega, parametrization)
    entropy = jnp.sum(jnp.log(sigma)) + mu.shape[0] * HALF_LOG_2PI_E
    return jnp.mean(log_p(mu + sigma * eps)) + entropy


def advi_elbo_grad(mu, omega, eps, **target):
    return jax.grad(advi_elbo, argnums=(0, 1))(mu, omega, eps, **target)


def advi_fit(mu, omega, eps, *, step_size, n_steps=None, **target):
    """Gradient ascent by ``lax.scan``: a step per ``eps[t]`` (``n_steps`` on a fixed ``eps``)."""
    value_and_grad = jax.value_and_grad(advi_elbo, argnums=(0, 1))

    def step(state, e):
        elbo, (d_mu, d_omega) = value_and_grad(*state, e, **target)
        return (state[0] + step_size * d_mu, state[1] + step_size * d_omega), elbo

    noise = eps if eps.ndim == 3 else jnp.broadcast_to(eps, (n_steps,) + eps.shape)
    (mu, omega), trace = lax.scan(step, (mu, omega), noise)
    return mu, omega, _sigma(omega, target["parametrization"]), trace


def householder_vae_bound(mu, omega, V, eps, *, log_lik, grad_log_lik=None,
                          parametrization="exp", entropy="sample"):
    sigma = _sigma(omega, parametrization)
    z0 = mu + sigma * eps
    zK, _ = householder_flow(z0, V)
    terms = log_lik(zK) + _base_log_prob(zK)
    if entropy == "sample":  # Tomczak and Welling's estimator: -log q_0 at the draws
        return jnp.mean(terms - jnp.sum(jsp.stats.norm.logpdf(z0, mu, sigma), axis=1))
    return jnp.mean(terms) + jnp.sum(jnp.log(sigma)) + mu.shape[0] * HALF_LOG_2PI_E


def _gamma_entropy(shape, rate):
    digamma, gammaln = jsp.special.digamma, jsp.special.gammaln
    return shape - jnp.log(rate) + gammaln(shape) + (1.0 - shape) * digamma(shape)


def normal_elbo(x, mean, var, shape, rate, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0):
    e_lam, e_log_lam = shape / rate, jsp.special.digamma(shape) - jnp.log(rate)
    elbo = normal_expected_log_joint(x, mean, var, e_lam, e_log_lam, mu0=mu0, kappa0=kappa0,
                                     a0=a0, b0=b0)
    return elbo + 0.5 * jnp.log(var) + HALF_LOG_2PI_E + _gamma_entropy(shape, rate)


# -- embedding: t-SNE's Student-t affinities and KL (section 7.1) -----------------------------


def _student_t_log_weights(Y, dof):
    """``log w_ij = -(nu + 1)/2 log(1 + ||y_i - y_j||^2 / nu)``, ``-inf`` on the diagonal."""
    d2 = jnp.sum((Y[:, None, :] - Y[None, :, :]) ** 2, axis=-1)
    logits = -0.5 * (dof + 1.0) * jnp.log1p(d2 / dof)
    return jnp.where(jnp.eye(Y.shape[0], dtype=bool), -jnp.inf, logits)


def student_t_affinities(Y, *, dof=1.0):
    return jax.nn.softmax(_student_t_log_weights(Y, dof), axis=(0, 1))


def tsne_kl(P, Y, *, dof=1.0, floor=float(np.finfo(np.float64).eps)):
    # floor is a Python float (weakly typed): a NumPy float64 would promote float32 to float64.
    off = ~jnp.eye(Y.shape[0], dtype=bool)
    log_q = jax.nn.log_softmax(_student_t_log_weights(Y, dof), axis=(0, 1))
    log_q = jnp.maximum(log_q, math.log(floor))
    kl = jsp.special.xlogy(P, jnp.maximum(P, floor)) - P * log_q
    return jnp.sum(jnp.where(off, kl, 0.0))


# -- analysis: channel correspondence and dissection (sections 8.1, 8.2) ----------------------


def _samples(A):
    """``(M, C)``: channels as columns, samples and positions as rows."""
    return jnp.moveaxis(A, 1, -1).reshape(-1, A.shape[1])


def _live(Z):
    """Channels (columns) that vary."""
    return jnp.max(Z, axis=0) > jnp.min(Z, axis=0)


def _require_varying(constant, *samples):
    """A constant channel is a ValueError unless ``constant="zero"``: read eagerly, before the
    jitted computation (a value-dependent error cannot be raised inside jax.jit)."""
    if constant == "raise":
        for Z in samples:
            if not bool(jnp.all(_live(Z))):
                constant_channels = np.flatnonzero(~np.asarray(_live(Z))).tolist()
                raise ValueError(f"constant channels {constant_channels}")


@jax.jit
def _correlation(a, b):
    live = jnp.concatenate([_live(a), _live(b)])
    rho = jnp.corrcoef(jnp.concatenate([a, b], axis=1), rowvar=False)
    rho = jnp.where(live[:, None] & live[None, :], rho, 0.0)
    return rho[:a.shape[1], a.shape[1]:]


def channel_correlation(A, B, *, constant="raise"):
    a, b = _samples(A), _samples(B)
    _require_varying(constant, a, b)
    return _correlation(a, b)


def semi_matching(rho):
    return jnp.argmax(rho, axis=1)


def _standardised(Z):
    live = _live(Z)
    std = jnp.where(live, jnp.std(Z, axis=0), 1.0)
    return jnp.where(live, (Z - jnp.mean(Z, axis=0)) / std, 0.0)


@jax.jit
def _least_squares(a, b):
    ZA, ZB = _standardised(a), _standardised(b)
    coef = jnp.linalg.lstsq(ZA, ZB)[0]  # minimum norm (SVD)
    loss = jnp.mean((ZB - ZA @ coef) ** 2, axis=0)
    return coef, loss, jnp.count_nonzero(coef, axis=0)


def channel_regression(A, B, *, constant="raise", l1=None):
    if l1 is not None:
        raise NotImplementedError("JAX has no lasso solver")
    a, b = _samples(A), _samples(B)
    _require_varying(constant, a, b)
    return _least_squares(a, b)


def dissection_iou(activations, masks, *, quantile=0.005):
    (n, units), (H, W) = activations.shape[:2], masks.shape[2:]
    threshold = jnp.quantile(_samples(activations), 1.0 - quantile, axis=0)
    upsampled = jax.image.resize(activations, (n, units, H, W), "bilinear", antialias=False)
    unit = jnp.swapaxes(upsampled > threshold[:, None, None], 0, 1).reshape(units, -1)
    unit = unit.astype(jnp.float64)
    concept = jnp.swapaxes(masks, 0, 1).reshape(masks.shape[1], -1).astype(jnp.float64)
    intersection = unit @ concept.T
    union = jnp.sum(unit, axis=1)[:, None] + jnp.sum(concept, axis=1)[None, :] - intersection
    iou = jnp.where(union > 0, intersection / jnp.maximum(union, 1.0), 0.0)
    return iou.astype(activations.dtype), threshold


# -- compression: pruning and weight sharing (sections 9.1, 9.2) -----------------------------


def _smallest_first(a, ties):
    """Flat indices by increasing ``a``; equal values by index (``ties="high_index"``: reversed)."""
    if ties == "low_index":
        return jnp.argsort(a, stable=True)
    return a.shape[0] - 1 - jnp.argsort(a[::-1], stable=True)


def prune_magnitude(w, sparsity, *, ties="low_index", count="pruned"):
    a = jnp.abs(w).reshape(-1)
    pruned = _smallest_first(a, ties)[:pruned_count(a.shape[0], sparsity, count)]
    return jnp.ones(a.shape, dtype=bool).at[pruned].set(False).reshape(w.shape)


def prune_threshold(w, threshold, *, at_threshold="prune"):
    return jnp.abs(w) >= threshold if at_threshold == "keep" else jnp.abs(w) > threshold


def dsd_masks(snapshots, sparsities, *, ties="prune_all", count="pruned"):
    masks = []
    for w, sparsity in zip(snapshots, sparsities):
        if ties != "prune_all":
            masks.append(prune_magnitude(w, sparsity, ties=ties, count=count))
            continue
        k = pruned_count(w.size, sparsity, count)
        if k == 0:
            masks.append(jnp.ones(w.shape, dtype=bool))
        else:  # DSD's rule: lambda the k-th smallest magnitude, ties with it pruned too
            masks.append(jnp.abs(w) > jnp.sort(jnp.abs(w).reshape(-1))[k - 1])
    return jnp.stack(masks)


def shared_weights(codebook, codes):
    return jnp.where(codes >= 0, codebook[jnp.maximum(codes, 0)], 0.0)


def centroid_gradient(grad, codes, *, n_clusters):
    kept = jnp.where(codes >= 0, grad, 0.0).reshape(-1)
    return jax.ops.segment_sum(kept, jnp.maximum(codes, 0).reshape(-1), num_segments=n_clusters)


# -- the clients ----------------------------------------------------------------------------

NO_DIFFERENTIATION_RULE = "jax.lax.linalg.householder_product has no differentiation rule"
JAX_HOUSEHOLDER_LEFT_OUT = {
    **{k: v for k, v in LAPACK_LEFT_OUT.items() if not k.startswith("vjp")},
    "vjp: dot-product test": NO_DIFFERENTIATION_RULE,
    "vjp: autograd": NO_DIFFERENTIATION_RULE,
    "vjp: matches refimpl": NO_DIFFERENTIATION_RULE,
    "adjoint test in X": NO_DIFFERENTIATION_RULE,
}


#: Candidates taking a network primal (a list of layers, not a JAX type): run without jax.jit.
EAGER = (additive_coupling, additive_coupling_inverse, affine_coupling, affine_coupling_inverse)
#: Candidates taking a flow primal, run eagerly too.
FLOWS = (flow_forward, flow_inverse, log_prob, sample, counterfactual)


CLIENTS = {c.op: c for c in [
    jax_client(householder_product, vjp=False, cases=lapack_reflector_cases,
               left_out=JAX_HOUSEHOLDER_LEFT_OUT),
    jax_client(householder_matrix, vjp=False, cases=lapack_matrix_cases,
               left_out={k: NO_DIFFERENTIATION_RULE
                         for k in ("vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl")}),
    *map(jax_client, [svd_linear, svd_linear_inverse, svd_linear_slogdet, svd_linear_matrix,
                       spectral_norm, condition_number, spectral_normalize, sym_expm_apply,
                       sym_cayley_apply]),
    *map(jax_client, [circular_conv, circular_conv_inverse, circular_conv_slogdet, periodic_conv,
                       periodic_conv_inverse, periodic_conv_slogdet, embed_kernel]),
    *map(jax_client, [glow_conv1x1, glow_conv1x1_inverse, glow_conv1x1_slogdet, glow_lu_weight]),
    *map(jax_client, [actnorm, actnorm_inverse, actnorm_init, permutation, permutation_inverse,
                       lu_linear, lu_linear_inverse]),
    # A conditioner's layers are not JAX types: the couplings and their jax.vjp run eagerly,
    # each primitive compiled per shape, so on one drawn shape and scale convention (two take
    # 15-17 s a check, three 20-35 s); coupling_split and coupling_scale, shared with the
    # torch suite, are checked there on every shape and convention.
    *[jax_client(f, jit=False, shapes=1) for f in EAGER],
    *map(jax_client, [householder_flow, householder_flow_inverse]),
    # The vae bound on two decoders (static params: each compiles anew), 7-9 s a check (three:
    # 15 s); a flow (up to three layers of any kind, its couplings eager) on one drawn flow,
    # 2-10 s a check (two: 4-36 s); the layers are checked on every shape above.
    jax_client(householder_vae_bound, shapes=2),
    *[jax_client(f, jit=False, shapes=1) for f in FLOWS],
    jax_client(advi_elbo),
    jax_client(advi_elbo_grad, vjp=False),
    jax_client(advi_fit, vjp=False),
    jax_client(normal_elbo, vjp=False),
    jax_client(student_t_affinities),
    jax_client(tsne_kl),
    jax_client(channel_correlation, vjp=False, jit=False),  # jitted inside, after its checks
    jax_client(semi_matching, vjp=False),
    jax_client(channel_regression, vjp=False, jit=False, cases=least_squares_cases,
               left_out={"the lasso's optimality conditions hold": "JAX has no lasso solver"}),
    jax_client(dissection_iou, vjp=False),
    *[jax_client(f, vjp=False, jit=False) for f in (prune_magnitude, prune_threshold, dsd_masks)],
    jax_client(shared_weights),
    jax_client(centroid_gradient),
]}

vars(LAYER_OPS).update({name: c.forward for name, c in CLIENTS.items()})


def test_jax_clients_cover_every_op_of_the_families():
    assert_every_op_accounted_for(CLIENTS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(CLIENTS))
def test_jax_candidate_passes(op_name, dtype):
    assert_passes(CLIENTS[op_name], FRAMEWORK, dtype)


# -- planted JAX mistakes: each is caught, by the named check -------------------------------


def _conv_dx_without_conjugate(X, K, G, *, axes=None):
    """A hand-written backward of the FFT convolution: dX = irfft(rfft(G) k_hat), where the
    adjoint multiplies by conj(k_hat); dK from jax.vjp."""
    return {**CLIENTS["circular_conv"].vjp(X, K, G, axes=axes),
            "X": _circular(G, K, axes, lambda g, k: g * k)}


def _householder_tau_off_by_one(V, X, tau=None, *, transpose=False):
    return householder_product(V, X, jnp.roll(tau, 1, axis=-1), transpose=transpose)


def _periodic_conv_in_float32(X, K):
    return periodic_conv(X.astype(jnp.float32), K.astype(jnp.float32)).astype(X.dtype)


def _periodic_conv_unflipped(X, K):
    c_out, c_in, H, W = K.shape
    x = jnp.pad(X.reshape(-1, c_in, H, W), ((0, 0), (0, 0), (H - 1, 0), (W - 1, 0)), mode="wrap")
    z = lax.conv_general_dilated(x, K, (1, 1), "VALID", dimension_numbers=NCHW)  # cross-correlates
    return z.reshape(X.shape[:-3] + (c_out, H, W))


def _advi_elbo_entropy_without_half(mu, omega, eps, *, log_p, grad_log_p, parametrization):
    sigma = _sigma(omega, parametrization)
    entropy = jnp.sum(jnp.log(sigma)) + mu.shape[0] * (1.0 + math.log(2 * math.pi))
    return jnp.mean(log_p(mu + sigma * eps)) + entropy


def _glow_slogdet_per_pixel(s, *, shape, perm=None):
    sign, logabsdet = glow_conv1x1_slogdet(s, shape=(1, 1), perm=perm)
    return sign ** (shape[0] * shape[1]), logabsdet  # log|det W| without the factor H W


def _tsne_kl_row_softmax(P, Y, *, dof=1.0, floor=float(np.finfo(np.float64).eps)):
    off = ~jnp.eye(Y.shape[0], dtype=bool)
    log_q = jnp.maximum(jax.nn.log_softmax(_student_t_log_weights(Y, dof), axis=1), math.log(floor))
    return jnp.sum(jnp.where(off, jsp.special.xlogy(P, jnp.maximum(P, floor)) - P * log_q, 0.0))


def _sym_expm_stop_gradient(Vu, s, X):
    return jsp.linalg.expm(lax.stop_gradient(_svd_weight(Vu, s))) @ X


def _centroid_gradient_mean(grad, codes, *, n_clusters):
    kept = jnp.where(codes >= 0, grad, 0.0).reshape(-1)
    ids = jnp.maximum(codes, 0).reshape(-1)
    counts = jax.ops.segment_sum(jnp.ones_like(kept), ids, num_segments=n_clusters)
    return jax.ops.segment_sum(kept, ids, num_segments=n_clusters) / jnp.maximum(counts, 1.0)


def _affine_coupling_logdet_of_s(x, mask, conditioner, **params):
    """The log-determinant as sum s, the log of the scale forgotten (exact only at s = 1)."""
    z, _ = affine_coupling(x, mask, conditioner, **params)
    _, s = _shift_and_scale(jax_network(conditioner, x[:, ~np.asarray(mask)]), params["scale"],
                            params["split"], params["clamp"])
    return z, jnp.sum(s, axis=1)


def _tsne_affinities_precision_lost(Y, *, dof=1.0):
    """The squared distances in float32 (an accumulation dtype left at JAX's default)."""
    return student_t_affinities(Y.astype(jnp.float32), dof=dof).astype(Y.dtype)


BUGS = [
    PlantedBug("circular_conv", "FFT convolution backward without the conjugate",
               ("adjoint test in X", "vjp: matches refimpl",
                "adjoint matches scipy.ndimage.correlate (wrap)"),
               vjp=_conv_dx_without_conjugate),
    PlantedBug("householder_product", "tau off by one (reflector i scaled by tau_{i-1})",
               ("matches ground truth", "orthogonality", "agrees with LAPACK dormqr/dorgqr"),
               forward=_householder_tau_off_by_one),
    PlantedBug("periodic_conv", "float32 arithmetic inside a float64 op",
               ("matches ground truth", "matches refimpl forward"),
               forward=_periodic_conv_in_float32),
    PlantedBug("periodic_conv", "lax.conv's cross-correlation without flipping the kernel",
               ("matches ground truth", "impulse response is the kernel"),
               forward=_periodic_conv_unflipped),
    PlantedBug("advi_elbo", "Gaussian entropy missing its 1/2",
               ("matches ground truth", "entropy equals scipy"),
               forward=_advi_elbo_entropy_without_half),
    PlantedBug("glow_conv1x1_slogdet", "log|det W| of one pixel, not times H W",
               ("matches ground truth", "log-determinant of the Jacobian"),
               forward=_glow_slogdet_per_pixel),
    PlantedBug("tsne_kl", "row-wise softmax (SNE's conditional q) for t-SNE's joint q",
               ("matches ground truth", "zero with a zero gradient at P = Q(Y)"),
               forward=_tsne_kl_row_softmax),
    PlantedBug("sym_expm_apply", "weight under lax.stop_gradient",
               ("vjp: dot-product test", "vjp: matches refimpl"), forward=_sym_expm_stop_gradient),
    PlantedBug("centroid_gradient", "grouped mean for the grouped sum",
               ("matches ground truth", "is the VJP of the codebook expansion"),
               forward=_centroid_gradient_mean),
    PlantedBug("affine_coupling", "log-determinant sum s, without the scale's log",
               ("matches ground truth", "log-determinant of the Jacobian"),
               forward=_affine_coupling_logdet_of_s),
    PlantedBug("student_t_affinities", "float32 accumulation inside a float64 op",
               ("matches ground truth", "matches refimpl forward"),
               forward=_tsne_affinities_precision_lost),
]


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: f"{b.op}-{b.description}")
def test_jax_planted_bug_is_caught(bug):
    client = CLIENTS[bug.op]
    if bug.forward is not None:
        jit = bug.op not in {f.__name__ for f in EAGER}
        vjp = jax_autodiff_vjp(bug.op, bug.forward, jit) if client.vjp is not None else None
        forward = jax_jit(bug.forward) if jit else bug.forward
        bug = dataclasses.replace(bug, forward=forward, vjp=bug.vjp or vjp)
    assert_caught(bug, client, FRAMEWORK)
