"""Records of :mod:`refimpl.conv.periodic` (docs/conventions.rst, section 2.3).

``periodic_conv`` (data ``X``, linear in ``X`` and in ``K``), its inverse
(data ``Z``; the round trip with ``periodic_conv`` is divided by
``max_f cond K_hat(f)``, the condition number of the operator) and
``periodic_conv_slogdet`` (``SlogdetResult``: the log-determinant of the
Jacobian of ``periodic_conv`` with respect to ``X`` of shape ``(c, H, W)``,
one point per kernel of the batch).

Ground truth never uses an FFT: ``Z_o = sum_i sum_m K_oi[m] roll(X_i, m)``
and the dense ``(c_out HW) x (c_in HW)`` operator (``solve``, ``slogdet``,
autograd through it). Kernels of the inverse are ``Q delta + P`` with ``Q``
orthogonal (:func:`verify.strategies.near_orthogonal_periodic_kernel`),
kernels of the log-determinant Gaussian with moderately conditioned
``K_hat(f)`` (:func:`verify.strategies.moderate_periodic_kernel`).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.conv import periodic as pc
from refimpl.conv import spectrum as sp

from ... import anchors
from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import moderate_periodic_kernel, near_orthogonal_periodic_kernel, rng
from .circular import (
    REFERENCES,
    cached_property,
    circulant_index,
    paths_property,
    roll_sum,
    shift_equivariance,
)

TOL = {"float64": 1e-12, "float32": 5e-6}
INVERSE_TOL = {"float64": 1e-12, "float32": 2e-5}
SLOGDET_TOL = {"float64": 1e-12, "float32": 2e-5}
CONVENTION = (
    "X (..., c_in, H, W), K (c_out, c_in, H, W): Z_o = sum_i K_oi (*) X_i with (*) the 2-D "
    "circular convolution of circular_conv, i.e. z_hat(f) = K_hat(f) x_hat(f) with K_hat(f) a "
    "c_out x c_in matrix per frequency."
)
GRID = (-2, -1)


# -- the definition: sums of rolls and the dense operator (NumPy or autograd.numpy) ---------


def periodic_reference(X, K, **_):
    """``Z_o = sum_i sum_m K_oi[m] roll(X_i, m)`` over ``(H, W)``: the definition."""
    return np.stack([sum(roll_sum(X[..., i, :, :], K[o, i], GRID) for i in range(K.shape[1]))
                     for o in range(K.shape[0])], axis=-3)


def _dense(np_, K):
    """Dense ``(c_out HW) x (c_in HW)`` operator: block ``(o, i)`` is the circulant of ``K_oi``."""
    c_out, c_in, H, W = K.shape
    blocks = np_.reshape(K, (c_out, c_in, H * W))[:, :, circulant_index((H, W))]
    return np_.reshape(np_.transpose(blocks, (0, 2, 1, 3)), (c_out * H * W, c_in * H * W))


def _per_image(np_, M, X, c_out):
    flat = np_.reshape(X, (-1, M.shape[1]))
    return np_.reshape(np_.matmul(flat, np_.transpose(M)), X.shape[:-3] + (c_out,) + X.shape[-2:])


def _naive(X, K, **_):
    return _per_image(anp, _dense(anp, K), X, K.shape[0])


def _inverse(np_, Z, K):
    M = _dense(np_, K)
    flat = np_.reshape(Z, (-1, M.shape[0]))
    return np_.reshape(np_.transpose(np_.linalg.solve(M, np_.transpose(flat))), Z.shape)


def _reference_inverse(Z, K, **_):
    return _inverse(np, Z, K)


def _naive_inverse(Z, K, **_):
    return _inverse(anp, Z, K)


def _kernels(np_, K):
    """The square kernels of a batch ``(..., c, c, H, W)`` as ``(B, c, c, H, W)``."""
    return np_.reshape(K, (-1,) + K.shape[-4:])


def _slogdet(np_, K):
    """``(sign, logabsdet)`` of the dense operator of every kernel of the batch."""
    pairs = [np_.linalg.slogdet(_dense(np_, k)) for k in _kernels(np_, K)]
    return tuple(np_.reshape(np_.stack([p[i] for p in pairs]), K.shape[:-4]) for i in (0, 1))


def _reference_slogdet(K, **_):
    return _slogdet(np, K)


def _naive_logabsdet(K, **_):
    return _slogdet(anp, K)[1]


# -- inputs -------------------------------------------------------------------------------


@st.composite
def _cases(draw, kind="forward"):
    """``forward``: Gaussian ``K``, ``c_out != c_in`` allowed; ``inverse``: ``Q delta + P``;
    ``slogdet``: moderately conditioned square kernels, one or a batch of two."""
    gen = draw(rng())
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    c_in = draw(st.integers(1, 3))
    params = {"method": draw(st.sampled_from(sp.METHODS))}
    if kind == "slogdet":
        batch = draw(st.sampled_from([(), (2,)]))
        K = np.stack([moderate_periodic_kernel(gen, c_in, H, W) for _ in range(int(np.prod(batch)))])
        return Case({"K": K.reshape(batch + K.shape[1:])}, params)
    batch = draw(st.sampled_from([(), (2,), (2, 1)]))
    data = gen.standard_normal(batch + (c_in, H, W))
    if kind == "inverse":
        return Case({"Z": data, "K": near_orthogonal_periodic_kernel(gen, c_in, H, W)}, params)
    c_out = draw(st.integers(1, 3))
    return Case({"X": data, "K": gen.standard_normal((c_out, c_in, H, W))}, params)


# -- invariants (impl.forward / impl.vjp may be refimpl's or a candidate's) -----------------


def _conv(impl, case, ctx, **primals):
    return run_outputs(CONV, impl, case, ctx, primals={**case.primals, **primals})["out"]


def _impulse_response(impl, case, ctx):
    """A delta at pixel 0 of channel ``i`` (image ``i`` of a batch) returns ``K[:, i]``."""
    c_out, c_in, H, W = case.primals["K"].shape
    delta = np.zeros((c_in, c_in, H, W))
    delta[np.arange(c_in), np.arange(c_in), 0, 0] = 1.0
    return rel_error(_conv(impl, case, ctx, X=delta), np.swapaxes(ctx.rounded(case.primals["K"]), 0, 1))


def _one_by_one(impl, case, ctx):
    """``K = W delta``: the periodic convolution is the per-pixel product ``W x`` (1x1 convolution)."""
    X = case.primals["X"]
    c_out, c_in = case.primals["K"].shape[:2]
    W = np.random.default_rng(8).standard_normal((c_out, c_in))
    K = np.zeros((c_out, c_in) + X.shape[-2:])
    K[:, :, 0, 0] = W
    expected = np.einsum("oi,...ihw->...ohw", ctx.rounded(W), ctx.rounded(X))
    return rel_error(_conv(impl, case, ctx, K=K), expected)


# -- records -------------------------------------------------------------------------------


def _condition(case):
    """``max_f cond K_hat(f)``: the operator's singular values are those of every ``K_hat(f)``."""
    A = np.moveaxis(np.fft.fft2(case.primals["K"]), (0, 1), (-2, -1))
    s = np.linalg.svd(A, compute_uv=False)
    return float(s.max() / s.min())


def _slogdet_points(case):
    """``periodic_conv`` at ``X = 0`` of shape ``(c, H, W)``, one point per kernel of the batch."""
    K = case.primals["K"]
    batch = K.shape[:-4]
    return [(Case({"X": np.zeros(K.shape[-3:]), "K": K[index]}), index) for index in np.ndindex(batch)]


def _bench_case(size):
    """``size = (c, H, W)``: data ``X`` (also ``Z``) and a near-orthogonal (invertible) kernel."""
    gen = np.random.default_rng(0)
    X = gen.standard_normal(size)
    return Case({"X": X, "Z": X, "K": near_orthogonal_periodic_kernel(gen, *size)})


def _fft_anchor(name, per_frequency):
    """FFTs of the data and the kernel, ``per_frequency`` on every ``c x c`` matrix, inverse FFT."""
    return Anchor(name, lambda case: anchors.periodic_fft(
        case.primals["X"], case.primals["K"], per_frequency))


BENCH_SIZES = ((4, 32, 32), (16, 32, 32))


CONV = register(Op(
    forward=pc.periodic_conv,
    vjp=pc.periodic_conv_vjp,
    primals=(Primal("X"), Primal("K")),
    cases=_cases,
    reference=periodic_reference,
    naive=_naive,
    properties=(
        Property("impulse response is the kernel", _impulse_response,
                 "delta at pixel 0 of channel i -> K[:, i]"),
        Property("shift equivariance", shift_equivariance("periodic_conv", lambda case: GRID),
                 "roll(X, s) -> roll(Z, s) over (H, W)"),
        Property("k = 1 is the 1x1 convolution", _one_by_one,
                 "K = W delta gives the per-pixel product W x"),
        paths_property("periodic_conv"),
        cached_property("periodic_conv", "periodic_kernel_spectrum"),
    ),
    data="X",
    linear_in=("X", "K"),
    tolerance=TOL,
    convention=CONVENTION,
    section="2.3",
    references=REFERENCES,
    options=("method",),
    bench_case=_bench_case,
    bench_sizes=BENCH_SIZES,
    bench_anchor=_fft_anchor("fft_matmul", np.matmul),
))

INVERSE = register(Op(
    forward=pc.periodic_conv_inverse,
    vjp=pc.periodic_conv_inverse_vjp,
    primals=(Primal("Z"), Primal("K")),
    cases=lambda: _cases(kind="inverse"),
    reference=_reference_inverse,
    naive=_naive_inverse,
    properties=(
        paths_property("periodic_conv_inverse"),
        cached_property("periodic_conv_inverse", "periodic_kernel_spectrum"),
    ),
    data="Z",
    inverse_of="periodic_conv",
    condition=_condition,
    linear_in=("Z",),
    tolerance=INVERSE_TOL,
    convention="x_hat(f) = solve(K_hat(f), z_hat(f)) for square K (c_out = c_in), periodic_conv's "
               "convention; a singular K_hat(f) is a ValueError naming the frequency.",
    section="2.3",
    references=REFERENCES,
    options=("method",),
    bench_case=_bench_case,
    bench_sizes=BENCH_SIZES,
    bench_anchor=_fft_anchor("fft_solve", np.linalg.solve),
))

SLOGDET = register(Op(
    forward=pc.periodic_conv_slogdet,
    vjp=pc.periodic_conv_slogdet_vjp,
    primals=(Primal("K"),),
    outputs=(Output("sign", differentiable=False), Output("logabsdet")),
    cases=lambda: _cases(kind="slogdet"),
    reference=_reference_slogdet,
    naive=_naive_logabsdet,
    properties=(paths_property("periodic_conv_slogdet"),),
    slogdet_of="periodic_conv",
    jacobian_points=_slogdet_points,
    tolerance=SLOGDET_TOL,
    convention="SlogdetResult(sign, logabsdet) per square kernel (..., c, c, H, W) of the batch: "
               "logabsdet = sum_f log|det K_hat(f)|, sign = prod of sign(det K_hat(f)) over the "
               "self-conjugate f; the VJP takes the cotangent of logabsdet.",
    section="2.3",
    references=REFERENCES,
    options=("method",),
    bench_case=_bench_case,
    bench_sizes=BENCH_SIZES,
    bench_anchor=Anchor("fft_slogdet",
                        lambda case: anchors.periodic_fft_slogdet(case.primals["K"])),
))
