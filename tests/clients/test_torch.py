"""PyTorch as a client of verify: linalg, conv, flows, vi, embedding, analysis, compression.

Each op that PyTorch can express is written the way a PyTorch developer would write it
(``torch.linalg``, ``torch.fft``, ``conv2d`` with circular padding, ``torch.distributions``,
``torch.optim``, ``torch.nn.utils.prune``'s counting), with ``torch.autograd.grad`` as the
VJP, and checked by :func:`verify.check` in float64 and float32; then realistic PyTorch
mistakes are planted and each must be caught by the named check. The mapping of
conventions is docs/checking.rst, "Recipes: PyTorch and JAX". Ops without a PyTorch
counterpart are listed in ``WITHOUT_COUNTERPART`` (tests/clients/_frameworks.py).
Skipped when PyTorch is not importable.
"""

from __future__ import annotations

import math
import pathlib
import re
import sys

import numpy as np
import pytest
from _frameworks import (
    DTYPES,
    LAPACK_LEFT_OUT,
    Client,
    PlantedBug,
    assert_caught,
    assert_every_op_accounted_for,
    assert_passes,
    coupling_scale,
    coupling_split,
    flow_candidates,
    lapack_matrix_cases,
    grid_axes,
    kernel_on,
    least_squares_cases,
    normal_expected_log_joint,
    pruned_count,
    torch_autograd_vjp,
)

import verify
from verify.strategies import lapack_reflector_cases

torch = pytest.importorskip("torch")
F = torch.nn.functional
from test_torch_nn import torch_network  # noqa: E402 (after the skip without torch)

FRAMEWORK = "torch"


# -- linalg: Householder products (docs/conventions.rst, section 1.1) -----------------------
# verify's reflectors are the rows of V; LAPACK's (and torch's) are the columns of
# tril(A, -1) + I: A = V^T, the same tau. torch reads only the strict lower part of A.


def _lapack_tau(A):
    """``tau = 2 / ||v||^2`` of LAPACK-form columns (unit diagonal, zeros above)."""
    return 2.0 / (1.0 + (torch.tril(A, -1) ** 2).sum(-2))


def householder_product(V, X, tau=None, *, transpose=False):
    A = V.mT
    tau = _lapack_tau(A) if tau is None else tau
    return torch.ormqr(A, tau, X, left=True, transpose=transpose)


def householder_matrix(V, tau=None):
    A = V.mT
    tau = _lapack_tau(A) if tau is None else tau
    d, n = A.shape[-2:]
    # torch returns the first n columns of U: d - n more reflectors with tau = 0 (identities).
    return torch.linalg.householder_product(F.pad(A, (0, d - n)), F.pad(tau, (0, d - n)))


# -- linalg: the SVD-parametrised layer (section 1.2) ----------------------------------------


def _reflector_product(V):
    """``U = H(v_1) ... H(v_n)``, ``H(v) = I - 2 v v^T / ||v||^2``, for reflectors in any form."""
    U = torch.eye(V.shape[-1], dtype=V.dtype)
    for i in range(V.shape[-2]):
        v = V[..., i, :, None]
        U = U - (U @ v) @ (2.0 * v.mT / (v.mT @ v))
    return U


def _svd_weight(Vu, s, Vv=None):
    U = _reflector_product(Vu)
    V = U if Vv is None else _reflector_product(Vv)
    return (U * s[..., None, :]) @ V.mT


def svd_linear(Vu, s, Vv, X):
    return _svd_weight(Vu, s, Vv) @ X


def svd_linear_inverse(Vu, s, Vv, Y):
    return torch.linalg.solve(_svd_weight(Vu, s, Vv), Y)


def svd_linear_slogdet(Vu, s, Vv):
    return tuple(torch.linalg.slogdet(_svd_weight(Vu, s, Vv)))


def svd_linear_matrix(Vu, s, Vv):
    return _svd_weight(Vu, s, Vv)


def spectral_norm(Vu, s, Vv):
    return torch.linalg.matrix_norm(_svd_weight(Vu, s, Vv), ord=2)


def condition_number(Vu, s, Vv):
    return torch.linalg.cond(_svd_weight(Vu, s, Vv))


def spectral_normalize(Vu, s, Vv, X):
    W = _svd_weight(Vu, s, Vv)
    return W / torch.linalg.matrix_norm(W, ord=2)[..., None, None] @ X


def sym_expm_apply(Vu, s, X):
    return torch.linalg.matrix_exp(_svd_weight(Vu, s)) @ X


def sym_cayley_apply(Vu, s, X):
    W = _svd_weight(Vu, s)
    eye = torch.eye(W.shape[-1], dtype=W.dtype)
    return torch.linalg.solve(eye + W, (eye - W) @ X)


# -- conv: circular convolutions by torch.fft (section 2.2) ----------------------------------


def _circular(X, K, axes, apply):
    """``irfftn(apply(rfftn(X), rfftn(K)))`` over the grid axes of ``X``."""
    axes = grid_axes(X, axes)
    spectrum = apply(torch.fft.rfftn(X, dim=axes), torch.fft.rfftn(kernel_on(K, X, axes), dim=axes))
    return torch.fft.irfftn(spectrum, s=[X.shape[a] for a in axes], dim=axes)


def circular_conv(X, K, *, axes=None):
    return _circular(X, K, axes, lambda x, k: x * k)


def circular_conv_inverse(Z, K, *, axes=None):
    return _circular(Z, K, axes, lambda z, k: z / k)


def _sign_of_product(phases, dims):
    """``sign(prod phases)`` over ``dims``: the product of unit complex numbers is real, +-1."""
    return torch.sign(torch.prod(phases.flatten(-len(dims)), dim=-1).real)


def circular_conv_slogdet(K, *, axes=None):
    axes = grid_axes(K, axes)
    spectrum = torch.fft.fftn(K, dim=axes).movedim(axes, tuple(range(-len(axes), 0)))
    magnitude = spectrum.abs()
    dims = tuple(range(-len(axes), 0))
    return _sign_of_product(spectrum / magnitude, dims), torch.log(magnitude).sum(dims)


# -- conv: periodic convolutions by conv2d and torch.fft (section 2.3) -----------------------


def periodic_conv(X, K):
    # A full-size kernel: conv2d cross-correlates, so flip K, and wrap H - 1 rows and W - 1
    # columns onto the top and left only: z[n] = sum_m K[m] x[(n - m) mod N].
    c_out, c_in, H, W = K.shape
    x = F.pad(X.reshape(-1, c_in, H, W), (W - 1, 0, H - 1, 0), mode="circular")
    return F.conv2d(x, K.flip(-2, -1)).reshape(X.shape[:-3] + (c_out, H, W))


def periodic_conv_inverse(Z, K):
    H, W = Z.shape[-2:]
    z = torch.fft.rfft2(Z).movedim(-3, -1)[..., None]  # (..., H, W//2 + 1, c, 1)
    k = torch.fft.rfft2(K).permute(2, 3, 0, 1)  # (H, W//2 + 1, c_out, c_in)
    x = torch.linalg.solve(k, z)[..., 0].movedim(-1, -3)
    return torch.fft.irfft2(x, s=(H, W))


def periodic_conv_slogdet(K):
    spectrum = torch.fft.fft2(K).movedim((-2, -1), (-4, -3))  # (..., H, W, c, c)
    sign, logabsdet = torch.linalg.slogdet(spectrum)
    return _sign_of_product(sign, (-2, -1)), logabsdet.sum((-2, -1))


def embed_kernel(w, *, shape, layout="oihw"):
    # The full-size kernel of the layer conv2d(circular pad by k // 2, w): its impulse
    # responses, one per input channel (docs/conventions.rst, section 2.4).
    if layout == "hwio":
        w = w.permute(3, 2, 0, 1)
    c_in, (kh, kw), (H, W) = w.shape[1], w.shape[2:], shape
    deltas = torch.zeros((c_in, c_in, H, W), dtype=w.dtype)
    deltas[:, :, 0, 0] = torch.eye(c_in, dtype=w.dtype)
    padded = F.pad(deltas, (kw // 2, kw // 2, kh // 2, kh // 2), mode="circular")
    return F.conv2d(padded, w).transpose(0, 1)


# -- flows: Glow's invertible 1x1 convolution (section 3.1) -----------------------------------


def glow_lu_weight(L, U, s, *, perm=None):
    eye = torch.eye(s.shape[0], dtype=s.dtype)
    W = (torch.tril(L, -1) + eye) @ (torch.triu(U, 1) + torch.diag(s))
    return W if perm is None else W[list(perm)]


def _conv1x1(X, W):
    c, H, Wd = X.shape[-3:]
    return F.conv2d(X.reshape(-1, c, H, Wd), W[:, :, None, None]).reshape(X.shape)


def glow_conv1x1(X, L, U, s, *, perm=None):
    return _conv1x1(X, glow_lu_weight(L, U, s, perm=perm))


def glow_conv1x1_inverse(Z, L, U, s, *, perm=None):
    return _conv1x1(Z, torch.linalg.inv(glow_lu_weight(L, U, s, perm=perm)))


def glow_conv1x1_slogdet(s, *, shape, perm=None):
    # Glow: log|det| = H W sum log|s|; the sign of det(P L U) = det P prod sign(s), per pixel.
    pixels = shape[0] * shape[1]
    P = torch.eye(s.shape[0], dtype=s.dtype)[list(perm) if perm is not None else slice(None)]
    sign = (torch.linalg.det(P) * torch.prod(torch.sign(s))) ** pixels
    return sign, pixels * torch.log(torch.abs(s)).sum()


# -- flows: coupling, permutation, ActNorm and LU layers (sections 3.2-3.5), nflows' layout ----
# Data (n, d) or (n, c, H, W), features on axis 1; every layer returns (output, logdet) with
# one log-determinant per sample. A conditioner is a list of refimpl.nn layers holding torch
# tensors: torch_network applies it by torch.nn.functional, so autograd reaches its weights.


def _per_sample(value, x):
    """A log-determinant shared by every sample, one entry per sample (autograd follows)."""
    return value.expand(x.shape[0])


def _channels(v, x):
    """A per-channel vector shaped to broadcast over axis 1 of ``x``."""
    return v.reshape((-1,) + (1,) * (x.ndim - 2))


def actnorm(x, log_scale, shift):
    positions = math.prod(x.shape[2:])  # Glow: log|det| = H W sum log_scale
    z = torch.exp(_channels(log_scale, x)) * x + _channels(shift, x)
    return z, _per_sample(positions * log_scale.sum(), x)


def actnorm_inverse(z, log_scale, shift):
    positions = math.prod(z.shape[2:])
    x = (z - _channels(shift, z)) * torch.exp(-_channels(log_scale, z))
    return x, _per_sample(-positions * log_scale.sum(), z)


def actnorm_init(x, *, ddof=1, eps=0.0):
    values = x.movedim(1, -1).reshape(-1, x.shape[1])  # every value of a channel in a column
    std = values.std(0, correction=ddof) + eps
    return -torch.log(std), -values.mean(0) / std


def permutation(x, *, perm):
    return x[:, list(perm)], x.new_zeros(x.shape[0])


def permutation_inverse(z, *, perm):
    return z[:, torch.argsort(torch.tensor(perm))], z.new_zeros(z.shape[0])


def _lu_linear_weight(lower, upper, unconstrained_diag):
    """nflows' LULinear weight: Glow's LU with s = softplus(u) + 1e-3, and s."""
    s = F.softplus(unconstrained_diag) + 1e-3
    return glow_lu_weight(lower, upper, s), s


def lu_linear(x, lower, upper, unconstrained_diag, bias=None):
    W, s = _lu_linear_weight(lower, upper, unconstrained_diag)
    return F.linear(x, W, bias), _per_sample(torch.log(s).sum(), x)


def lu_linear_inverse(z, lower, upper, unconstrained_diag, bias=None):
    W, s = _lu_linear_weight(lower, upper, unconstrained_diag)
    y = z if bias is None else z - bias
    return torch.linalg.solve(W, y.mT).mT, _per_sample(-torch.log(s).sum(), z)


def _coupling(x, mask, conditioner, transform):
    """nflows' coupling: the features outside ``mask`` pass and condition the others,
    ``transform(x[:, mask], conditioner(x[:, ~mask])) -> (out[:, mask], logdet)``."""
    mask = torch.as_tensor(mask)  # a flow layer keeps its mask as a tuple of bools
    identity = x[:, ~mask]
    transformed, logdet = transform(x[:, mask], torch_network(conditioner, identity))
    out = torch.empty_like(x)
    out[:, ~mask], out[:, mask] = identity, transformed
    return out, logdet


def additive_coupling(x, mask, conditioner):
    return _coupling(x, mask, conditioner, lambda xb, t: (xb + t, x.new_zeros(x.shape[0])))


def additive_coupling_inverse(z, mask, conditioner):
    return _coupling(z, mask, conditioner, lambda zb, t: (zb - t, z.new_zeros(z.shape[0])))


def _shift_and_scale(h, scale, split, clamp):
    t, u = coupling_split(h, split)
    return t, coupling_scale(u, scale, clamp, torch, torch.sigmoid)


def affine_coupling(x, mask, conditioner, *, scale="nflows", split="shift_first", clamp=2.0):
    def transform(xb, h):
        t, s = _shift_and_scale(h, scale, split, clamp)
        return xb * s + t, torch.log(s).sum(1)

    return _coupling(x, mask, conditioner, transform)


def affine_coupling_inverse(z, mask, conditioner, *, scale="nflows", split="shift_first",
                            clamp=2.0):
    def transform(zb, h):
        t, s = _shift_and_scale(h, scale, split, clamp)
        return (zb - t) / s, -torch.log(s).sum(1)

    return _coupling(z, mask, conditioner, transform)


# -- flows: the Householder flow (section 3.6), flows of layers, log_prob, sample (3.8) -------
# A flow is a refimpl layer or Sequential; run_flow reads each layer by class name and runs the
# candidate of its op above (this module's functions), the log-determinants summed.


def householder_flow(x, V):
    # z_n = U^T x_n, U = H(v_1) ... H(v_K); per-sample reflectors V (n, K, d) give U (n, d, d).
    return (x[:, None, :] @ _reflector_product(V))[:, 0], x.new_zeros(x.shape[0])


def householder_flow_inverse(z, V):
    return (z[:, None, :] @ _reflector_product(V).mT)[:, 0], z.new_zeros(z.shape[0])


def _base_log_prob(z):
    """``log N(z_n; 0, I)`` per sample."""
    return torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)


flow_forward, flow_inverse, log_prob, sample = flow_candidates(sys.modules[__name__], torch,
                                                               _base_log_prob)


def counterfactual(flow, beta, x):
    z, _ = flow_forward(flow, x)
    u = (beta / beta.abs().max()).flatten()  # beta's direction, without overflow
    flat = z.flatten(1)
    return flow_inverse(flow, (flat - (flat @ u / (u @ u))[:, None] * u).reshape(z.shape))[0]


# -- vi: ADVI (section 6.3) and the normal model's ELBO (section 6.1) -------------------------


def _sigma(omega, parametrization):
    return torch.exp(omega) if parametrization == "exp" else F.softplus(omega)


def advi_elbo(mu, omega, eps, *, log_p, grad_log_p, parametrization):
    sigma = _sigma(omega, parametrization)
    q = torch.distributions.Normal(mu, sigma)
    return log_p(mu + sigma * eps).mean() + q.entropy().sum()


def advi_elbo_grad(mu, omega, eps, **target):
    mu, omega = mu.detach().requires_grad_(), omega.detach().requires_grad_()
    return torch.autograd.grad(advi_elbo(mu, omega, eps, **target), (mu, omega))


def advi_fit(mu, omega, eps, *, step_size, n_steps=None, **target):
    mu, omega = mu.detach().clone().requires_grad_(), omega.detach().clone().requires_grad_()
    optimizer = torch.optim.SGD([mu, omega], lr=step_size, maximize=True)
    trace = []
    for t in range(eps.shape[0] if n_steps is None else n_steps):
        optimizer.zero_grad()
        elbo = advi_elbo(mu, omega, eps[t] if eps.ndim == 3 else eps, **target)
        elbo.backward()
        optimizer.step()
        trace.append(elbo.detach())
    sigma = _sigma(omega, target["parametrization"])
    return mu.detach(), omega.detach(), sigma.detach(), torch.stack(trace)


def householder_vae_bound(mu, omega, V, eps, *, log_lik, grad_log_lik=None,
                          parametrization="exp", entropy="sample"):
    sigma = _sigma(omega, parametrization)
    q0 = torch.distributions.Normal(mu, sigma)
    z0 = mu + sigma * eps
    zK, _ = householder_flow(z0, V)
    terms = log_lik(zK) + _base_log_prob(zK)
    if entropy == "sample":  # Tomczak and Welling's estimator: -log q_0 at the draws
        return (terms - q0.log_prob(z0).sum(1)).mean()
    return terms.mean() + q0.entropy().sum()


def normal_elbo(x, mean, var, shape, rate, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0):
    q_mu = torch.distributions.Normal(mean, var.sqrt())
    q_lam = torch.distributions.Gamma(shape, rate)
    e_log_lam = torch.digamma(shape) - torch.log(rate)
    elbo = normal_expected_log_joint(x, mean, var, q_lam.mean, e_log_lam, mu0=mu0, kappa0=kappa0,
                                     a0=a0, b0=b0)
    return elbo + q_mu.entropy() + q_lam.entropy()


# -- embedding: t-SNE's Student-t affinities and KL (section 7.1) -----------------------------


def _student_t_log_weights(Y, dof):
    """``log w_ij = -(nu + 1)/2 log(1 + ||y_i - y_j||^2 / nu)``, ``-inf`` on the diagonal."""
    d2 = ((Y[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
    logits = -0.5 * (dof + 1.0) * torch.log1p(d2 / dof)
    return logits.masked_fill(torch.eye(Y.shape[0], dtype=torch.bool), -math.inf)


def student_t_affinities(Y, *, dof=1.0):
    n = Y.shape[0]
    return torch.softmax(_student_t_log_weights(Y, dof).reshape(-1), 0).reshape(n, n)


def tsne_kl(P, Y, *, dof=1.0, floor=np.finfo(np.float64).eps):
    n = Y.shape[0]
    log_q = torch.log_softmax(_student_t_log_weights(Y, dof).reshape(-1), 0).reshape(n, n)
    off = ~torch.eye(n, dtype=torch.bool)
    p, log_q = P[off], log_q[off].clamp_min(math.log(floor))
    return (torch.special.xlogy(p, p.clamp_min(floor)) - p * log_q).sum()


# -- analysis: channel correspondence and dissection (sections 8.1, 8.2) ----------------------


def _samples(A):
    """``(M, C)``: channels as columns, samples and positions as rows."""
    return A.movedim(1, -1).reshape(-1, A.shape[1])


def _live(Z, constant):
    """Channels that vary; a constant one is a ValueError unless ``constant="zero"``."""
    live = Z.amax(0) > Z.amin(0)
    if constant == "raise" and not bool(live.all()):
        raise ValueError(f"constant channels {torch.nonzero(~live).flatten().tolist()}")
    return live


def channel_correlation(A, B, *, constant="raise"):
    a, b = _samples(A), _samples(B)
    live = torch.cat([_live(a, constant), _live(b, constant)])
    rho = torch.corrcoef(torch.cat([a, b], 1).T)
    rho = torch.where(live[:, None] & live[None, :], rho, 0.0)
    return rho[:a.shape[1], a.shape[1]:]


def semi_matching(rho):
    return torch.argmax(rho, dim=1)


def _standardised(Z, constant):
    live = _live(Z, constant)
    std = torch.where(live, Z.std(0, correction=0), 1.0)
    return torch.where(live, (Z - Z.mean(0)) / std, 0.0)


def channel_regression(A, B, *, constant="raise", l1=None):
    if l1 is not None:
        raise NotImplementedError("torch has no lasso solver")
    ZA, ZB = _standardised(_samples(A), constant), _standardised(_samples(B), constant)
    coef = torch.linalg.lstsq(ZA, ZB, driver="gelsd").solution  # minimum norm
    loss = ((ZB - ZA @ coef) ** 2).mean(0)
    return coef, loss, torch.count_nonzero(coef, dim=0)


def dissection_iou(activations, masks, *, quantile=0.005):
    units, (H, W) = activations.shape[1], masks.shape[2:]
    threshold = torch.quantile(_samples(activations), 1.0 - quantile, dim=0)
    upsampled = F.interpolate(activations, size=(H, W), mode="bilinear", align_corners=False)
    unit = (upsampled > threshold[:, None, None]).transpose(0, 1).reshape(units, -1).double()
    concept = masks.transpose(0, 1).reshape(masks.shape[1], -1).double()
    intersection = unit @ concept.T
    union = unit.sum(1)[:, None] + concept.sum(1)[None, :] - intersection
    iou = torch.where(union > 0, intersection / union.clamp_min(1.0), 0.0)
    return iou.to(activations.dtype), threshold


# -- compression: pruning and weight sharing (sections 9.1, 9.2) -----------------------------


def _smallest_first(a, ties):
    """Flat indices by increasing ``a``; equal values by index (``ties="high_index"``: reversed)."""
    if ties == "low_index":
        return torch.argsort(a, stable=True)
    return a.shape[0] - 1 - torch.argsort(a.flip(0), stable=True)


def prune_magnitude(w, sparsity, *, ties="low_index", count="pruned"):
    a = w.abs().reshape(-1)
    keep = torch.ones(a.shape, dtype=torch.bool)
    keep[_smallest_first(a, ties)[:pruned_count(a.shape[0], sparsity, count)]] = False
    return keep.reshape(w.shape)


def prune_threshold(w, threshold, *, at_threshold="prune"):
    return w.abs() >= threshold if at_threshold == "keep" else w.abs() > threshold


def dsd_masks(snapshots, sparsities, *, ties="prune_all", count="pruned"):
    masks = []
    for w, sparsity in zip(snapshots, sparsities):
        if ties != "prune_all":
            masks.append(prune_magnitude(w, sparsity, ties=ties, count=count))
            continue
        k = pruned_count(w.numel(), sparsity, count)
        if k == 0:
            masks.append(torch.ones(w.shape, dtype=torch.bool))
        else:  # DSD's rule: lambda the k-th smallest magnitude, ties with it pruned too
            masks.append(w.abs() > torch.kthvalue(w.abs().reshape(-1), k).values)
    return torch.stack(masks)


def shared_weights(codebook, codes):
    return torch.where(codes >= 0, codebook[codes.clamp_min(0)], 0.0)


def centroid_gradient(grad, codes, *, n_clusters):
    kept = torch.where(codes >= 0, grad, 0.0).reshape(-1)
    return torch.zeros(n_clusters, dtype=grad.dtype).index_add(0, codes.clamp_min(0).reshape(-1), kept)


# -- the clients ----------------------------------------------------------------------------

def _client(forward, vjp=True, **fields):
    op = forward.__name__
    return Client(op, forward, torch_autograd_vjp(op, forward) if vjp else None, **fields)


CLIENTS = {c.op: c for c in [
    _client(householder_product, cases=lapack_reflector_cases, left_out=LAPACK_LEFT_OUT),
    _client(householder_matrix, cases=lapack_matrix_cases,
            left_out={k: LAPACK_LEFT_OUT[k] for k in ("vjp: autograd", "vjp: matches refimpl")}),
    *map(_client, [svd_linear, svd_linear_inverse, svd_linear_slogdet, svd_linear_matrix,
                   spectral_norm, condition_number, spectral_normalize, sym_expm_apply,
                   sym_cayley_apply]),
    *map(_client, [circular_conv, circular_conv_inverse, circular_conv_slogdet, periodic_conv,
                   periodic_conv_inverse, periodic_conv_slogdet, embed_kernel]),
    *map(_client, [glow_conv1x1, glow_conv1x1_inverse, glow_conv1x1_slogdet, glow_lu_weight]),
    *map(_client, [actnorm, actnorm_inverse, actnorm_init, permutation, permutation_inverse,
                   lu_linear, lu_linear_inverse, additive_coupling, additive_coupling_inverse,
                   affine_coupling, affine_coupling_inverse]),
    *map(_client, [householder_flow, householder_flow_inverse, flow_forward, flow_inverse,
                   log_prob, sample, counterfactual, householder_vae_bound]),
    _client(advi_elbo),
    _client(advi_elbo_grad, vjp=False),
    _client(advi_fit, vjp=False),
    _client(normal_elbo, vjp=False),
    _client(student_t_affinities),
    _client(tsne_kl),
    _client(channel_correlation, vjp=False),
    _client(semi_matching, vjp=False),
    _client(channel_regression, vjp=False, cases=least_squares_cases,
            left_out={"the lasso's optimality conditions hold": "torch has no lasso solver"}),
    _client(dissection_iou, vjp=False),
    *[_client(f, vjp=False) for f in (prune_magnitude, prune_threshold, dsd_masks)],
    _client(shared_weights),
    _client(centroid_gradient),
]}


def test_torch_clients_cover_every_op_of_the_families():
    assert_every_op_accounted_for(CLIENTS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(CLIENTS))
def test_torch_candidate_passes(op_name, dtype):
    assert_passes(CLIENTS[op_name], FRAMEWORK, dtype)


def test_householder_gradient_is_the_free_part_of_ours():
    """torch's A.grad is tril(dV^T, -1) (the unit diagonal and the zeros above it are
    structural); dX and dtau are refimpl's outright. Through ``_lapack_tau`` (tau computed
    from A in the graph) torch differentiates refimpl's default-tau op."""
    from refimpl.linalg import householder_product_vjp

    gen = np.random.default_rng(0)
    d, n, m = 6, 4, 3
    A0, X0, G = gen.standard_normal((d, n)), gen.standard_normal((d, m)), gen.standard_normal((d, m))
    tau0 = 2.0 / (1.0 + np.sum(np.tril(A0, -1) ** 2, axis=0))
    V = (np.tril(A0, -1) + np.eye(d, n)).T
    for explicit_tau in (True, False):
        A, X = torch.tensor(A0, requires_grad=True), torch.tensor(X0, requires_grad=True)
        tau = torch.tensor(tau0, requires_grad=True) if explicit_tau else None
        householder_product(A.mT, X, tau).backward(torch.tensor(G))
        dV, dX, dtau = householder_product_vjp(V, X0, G, tau=tau0 if explicit_tau else None)
        np.testing.assert_allclose(A.grad.numpy(), np.tril(dV.T, -1), rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(X.grad.numpy(), dX, rtol=1e-12, atol=1e-12)
        if explicit_tau:
            np.testing.assert_allclose(tau.grad.numpy(), dtau, rtol=1e-12, atol=1e-12)


# -- planted PyTorch mistakes: each is caught, by the named check ---------------------------


def _conv_dx_without_conjugate(X, K, G, *, axes=None):
    """A hand-written backward of the FFT convolution: dX = irfft(rfft(G) k_hat), where the
    adjoint multiplies by conj(k_hat); dK from autograd."""
    return {**CLIENTS["circular_conv"].vjp(X, K, G, axes=axes),
            "X": _circular(G, K, axes, lambda g, k: g * k)}


def _householder_tau_off_by_one(V, X, tau=None, *, transpose=False):
    return torch.ormqr(V.mT, tau.roll(1, -1), X, left=True, transpose=transpose)


def _householder_matrix_unpadded(V, tau=None):
    return torch.linalg.householder_product(V.mT, tau)  # n < d: only n columns of U


def _periodic_conv_in_float32(X, K):
    return periodic_conv(X.float(), K.float()).to(X.dtype)


def _periodic_conv_unflipped(X, K):
    c_out, c_in, H, W = K.shape
    x = F.pad(X.reshape(-1, c_in, H, W), (W - 1, 0, H - 1, 0), mode="circular")
    return F.conv2d(x, K).reshape(X.shape[:-3] + (c_out, H, W))  # conv2d cross-correlates


def _advi_elbo_entropy_without_half(mu, omega, eps, *, log_p, grad_log_p, parametrization):
    sigma = _sigma(omega, parametrization)
    entropy = torch.log(sigma).sum() + mu.shape[0] * (1.0 + math.log(2 * math.pi))
    return log_p(mu + sigma * eps).mean() + entropy


def _glow_transposed_weight(X, L, U, s, *, perm=None):
    return _conv1x1(X, glow_lu_weight(L, U, s, perm=perm).T)


def _glow_slogdet_per_pixel(s, *, shape, perm=None):
    sign, logabsdet = glow_conv1x1_slogdet(s, shape=(1, 1), perm=perm)
    return sign ** (shape[0] * shape[1]), logabsdet  # log|det W| without the factor H W


def _actnorm_logdet_per_pixel(x, log_scale, shift):
    z, _ = actnorm(x, log_scale, shift)
    return z, _per_sample(log_scale.sum(), x)  # nflows' vector form, without the factor H W


def _tsne_kl_row_softmax(P, Y, *, dof=1.0, floor=np.finfo(np.float64).eps):
    log_q = torch.log_softmax(_student_t_log_weights(Y, dof), 1)  # SNE's conditional q_j|i
    off = ~torch.eye(Y.shape[0], dtype=torch.bool)
    p, log_q = P[off], log_q[off].clamp_min(math.log(floor))
    return (torch.special.xlogy(p, p.clamp_min(floor)) - p * log_q).sum()


def _sym_expm_detached(Vu, s, X):
    return torch.linalg.matrix_exp(_svd_weight(Vu, s).detach()) @ X


def _centroid_gradient_mean(grad, codes, *, n_clusters):
    kept = torch.where(codes >= 0, grad, 0.0).reshape(-1)
    return torch.zeros(n_clusters, dtype=grad.dtype).scatter_reduce(
        0, codes.clamp_min(0).reshape(-1), kept, reduce="mean", include_self=False)


def _prune_by_torch_prune(w, sparsity, *, ties="low_index", count="pruned"):
    """``torch.nn.utils.prune.l1_unstructured``: the same count, ties in torch.topk's order."""
    module = torch.nn.Module()
    module.weight = torch.nn.Parameter(w.clone())
    torch.nn.utils.prune.l1_unstructured(module, "weight", amount=sparsity)
    return module.weight_mask.bool()


BUGS = [
    PlantedBug("circular_conv", "FFT convolution backward without the conjugate",
               ("adjoint test in X", "vjp: matches refimpl",
                "adjoint matches scipy.ndimage.correlate (wrap)"),
               vjp=_conv_dx_without_conjugate),
    PlantedBug("householder_product", "tau off by one (reflector i scaled by tau_{i-1})",
               ("matches ground truth", "orthogonality", "agrees with LAPACK dormqr/dorgqr"),
               forward=_householder_tau_off_by_one),
    PlantedBug("householder_matrix", "householder_product without the identity padding",
               ("matches ground truth", "orthogonality"), forward=_householder_matrix_unpadded),
    PlantedBug("periodic_conv", "float32 arithmetic inside a float64 op",
               ("matches ground truth", "matches refimpl forward"),
               forward=_periodic_conv_in_float32),
    PlantedBug("periodic_conv", "conv2d's cross-correlation without flipping the kernel",
               ("matches ground truth", "impulse response is the kernel"),
               forward=_periodic_conv_unflipped),
    PlantedBug("advi_elbo", "Gaussian entropy missing its 1/2",
               ("matches ground truth", "entropy equals scipy"),
               forward=_advi_elbo_entropy_without_half),
    PlantedBug("glow_conv1x1", "transposed 1x1 weight", ("matches ground truth",),
               forward=_glow_transposed_weight),
    PlantedBug("glow_conv1x1_slogdet", "log|det W| of one pixel, not times H W",
               ("matches ground truth", "log-determinant of the Jacobian"),
               forward=_glow_slogdet_per_pixel),
    PlantedBug("actnorm", "log-determinant sum log_scale on images, not times H W",
               ("matches ground truth", "log-determinant of the Jacobian"),
               forward=_actnorm_logdet_per_pixel),
    PlantedBug("tsne_kl", "row-wise softmax (SNE's conditional q) for t-SNE's joint q",
               ("matches ground truth", "zero with a zero gradient at P = Q(Y)"),
               forward=_tsne_kl_row_softmax),
    PlantedBug("sym_expm_apply", "weight detached from the graph",
               ("vjp: dot-product test", "vjp: matches refimpl"), forward=_sym_expm_detached),
    PlantedBug("centroid_gradient", "grouped mean for the grouped sum",
               ("matches ground truth", "is the VJP of the codebook expansion"),
               forward=_centroid_gradient_mean),
    PlantedBug("prune_magnitude", "torch.nn.utils.prune.l1_unstructured: torch.topk's tie order",
               ("ties follow the flat index",), forward=_prune_by_torch_prune),
]


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: f"{b.op}-{b.description}")
def test_torch_planted_bug_is_caught(bug):
    assert_caught(bug, CLIENTS[bug.op], FRAMEWORK, autodiff=torch_autograd_vjp)


# -- a torch user's check of torch.linalg.householder_product, as docs/checking.rst shows it --


def _docs_block(title):
    """The one ``.. code-block:: python`` of the section ``title`` of docs/checking.rst."""
    text = (pathlib.Path(__file__).parents[2] / "docs" / "checking.rst").read_text()
    section = text[text.index(f"{title}\n{'-' * len(title)}\n"):]
    body = re.search(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section, flags=re.M)
    return "\n".join(line[4:] for line in body.group(1).rstrip("\n").split("\n")) + "\n"


def test_torch_user_checks_householder_product_and_its_gradient_in_under_15_lines():
    """The docs' example: torch.linalg.householder_product with autograd as its VJP, on
    LAPACK-form reflectors, passes in both dtypes; the same check fails the unpadded call."""
    block = _docs_block("A worked PyTorch example")
    assert len(block.strip().splitlines()) < 15, block
    ns = {}
    exec(compile(block, "docs/checking.rst, A worked PyTorch example", "exec"), ns)
    assert ns["report"].passed, str(ns["report"])
    float32 = verify.check(ns["forward"], "householder_product", vjp=ns["vjp"], dtype="float32",
                           from_numpy="torch", cases="lapack",  # the dot-product test: float64
                           properties=[r.property for r in ns["report"].results
                                       if r.property != "vjp: dot-product test"])
    assert float32.passed, str(float32)

    def unpadded(V, X, tau, *, transpose=False):
        U = torch.linalg.householder_product(V.mT, tau)
        return (U.mT if transpose else U) @ X

    report = verify.check(unpadded, "householder_product", from_numpy="torch",
                          cases="lapack", properties=["matches ground truth"])
    assert not report.passed and "shapes cannot be multiplied" in report.failures[0].message
