"""Records of :mod:`refimpl.conv.circular` (docs/conventions.rst, section 2.2).

``circular_conv`` (data ``X``, linear in ``X`` and in ``K``), its inverse
(data ``Z``; the round trip with ``circular_conv`` is measured as relative
error divided by ``cond C(K) = max|K_hat| / min|K_hat|``) and
``circular_conv_slogdet`` (``SlogdetResult``: the log-determinant of the
Jacobian of ``circular_conv`` with respect to ``X``, at one grid-shaped point
per kernel of the batch).

Ground truth never uses an FFT: the definition as a sum of ``np.roll``, the
dense operator ``M[n, n'] = K[(n - n') mod N]`` (``solve``, ``slogdet``, and
autograd through it), ``scipy.ndimage.convolve/correlate(mode="wrap")`` and
a folded ``scipy.signal.convolve(mode="full")``. Kernels of the inverse are
``a delta + P`` (:func:`verify.strategies.near_identity_kernel`), kernels of
the log-determinant Gaussian with a moderate spectrum
(:func:`verify.strategies.moderate_kernel`), so that both signs occur.

The pieces shared with :mod:`verify.ops.conv.periodic` (the circulant
index, the ``rfft``/``complex`` and cached-spectrum checks, shift
equivariance) are defined here.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
import scipy.ndimage as ndimage
import scipy.signal as signal
from hypothesis import strategies as st

from refimpl.conv import circular as cc
from refimpl.conv import spectrum as sp
from refimpl.conv.periodic import periodic_conv, periodic_conv_slogdet

from ... import anchors
from ...checks import cotangent_for, rel_error, run_outputs, run_vjp, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, get_op, register
from ...strategies import moderate_kernel, near_identity_kernel, rng

REFERENCES = (
    "Hoogeboom, van den Berg, Welling 2019, Emerging convolutions for generative normalizing flows "
    "(ICML, arXiv:1901.11137)",
    "Karami et al. 2019, Invertible convolutional flow (NeurIPS)",
)
TOL = {"float64": 1e-12, "float32": 5e-6}
INVERSE_TOL = {"float64": 1e-12, "float32": 2e-5}
SLOGDET_TOL = {"float64": 1e-12, "float32": 2e-5}
CONVENTION = (
    "Z[n] = sum_m K[m] X[(n - m) mod N] over the chosen axes (a convolution: the kernel is "
    "flipped), with unnormalised forward DFTs and 1/N inverses, so that "
    "scipy.ndimage.convolve(X, K, mode='wrap') = roll(Z, -(s // 2))."
)


# -- the definition: the dense operator and the sum of rolls (NumPy or autograd.numpy) -------


def grid_axes(x, axes):
    """``axes`` as sorted non-negative ints (every axis of ``x`` when ``None``)."""
    if axes is None:
        return tuple(range(x.ndim))
    return tuple(sorted(int(a) % x.ndim for a in np.atleast_1d(axes)))


@functools.lru_cache(maxsize=64)
def circulant_index(grid):
    """``idx[n, n'] = ravel((n - n') mod N)``: the dense operator is ``K.ravel()[idx]``."""
    n = int(np.prod(grid))
    coords = np.array(np.unravel_index(np.arange(n), grid))
    diff = (coords[:, :, None] - coords[:, None, :]) % np.array(grid)[:, None, None]
    return np.ravel_multi_index(tuple(diff), grid)


def _dense(K):
    """Dense ``M`` with ``vec(Z) = M vec(X)`` (C order), ``M[n, n'] = K[(n - n') mod N]``."""
    return K.reshape(-1)[circulant_index(tuple(K.shape))]


def _on_grid(np_, X, axes, fn):
    """Apply ``fn`` to ``X`` flattened to ``(batch, grid)`` rows (batch axes anywhere)."""
    batch = [a for a in range(X.ndim) if a not in axes]
    order = batch + list(axes)
    moved = np_.transpose(X, order)
    n = int(np.prod([X.shape[a] for a in axes]))
    out = np_.reshape(fn(np_.reshape(moved, (-1, n))), moved.shape)
    return np_.transpose(out, list(np.argsort(order)))


def _apply_dense(np_, M, X, axes):
    """``M`` applied to the grid axes of ``X``."""
    return _on_grid(np_, X, axes, lambda rows: np_.matmul(rows, np_.transpose(M)))


def _solve_dense(np_, M, Z, axes):
    """``M^{-1}`` applied to the grid axes of ``Z`` (LAPACK solve)."""
    return _on_grid(np_, Z, axes, lambda rows: np_.transpose(np_.linalg.solve(M, np_.transpose(rows))))


def roll_sum(X, K, axes):
    """``sum_m K[m] roll(X, m, axes)``: the definition, term by term."""
    out = np.zeros_like(X)
    for m in np.ndindex(K.shape):
        out = out + K[m] * np.roll(X, m, axis=axes)
    return out


def _batch_first(np_, K, axes):
    """``K`` with its batch axes moved before its grid axes, and the number of batch axes."""
    axes = grid_axes(K, axes)
    batch = [a for a in range(K.ndim) if a not in axes]
    return np_.transpose(K, batch + list(axes)), len(batch)


def _slogdet_dense(np_, K, axes):
    """``(sign, logabsdet)`` of the dense operator of every kernel of the batch."""
    Kb, nb = _batch_first(np_, K, axes)
    batch, grid = Kb.shape[:nb], Kb.shape[nb:]
    flat = np_.reshape(Kb, (-1,) + grid)
    pairs = [np_.linalg.slogdet(_dense(flat[b])) for b in range(flat.shape[0])]
    return tuple(np_.reshape(np_.stack([p[i] for p in pairs]), batch) for i in (0, 1))


def _reference(X, K, axes=None, **_):
    return roll_sum(X, K, grid_axes(X, axes))


def _naive(X, K, axes=None, **_):
    return _apply_dense(anp, _dense(K), X, grid_axes(X, axes))


def _reference_inverse(Z, K, axes=None, **_):
    return _solve_dense(np, _dense(K), Z, grid_axes(Z, axes))


def _naive_inverse(Z, K, axes=None, **_):
    return _solve_dense(anp, _dense(K), Z, grid_axes(Z, axes))


def _reference_slogdet(K, axes=None, **_):
    return _slogdet_dense(np, K, axes)


def _naive_logabsdet(K, axes=None, **_):
    return _slogdet_dense(anp, K, axes)[1]


# -- inputs -------------------------------------------------------------------------------


def _grid(draw, max_d=3, max_n=4):
    return tuple(draw(st.integers(1, max_n)) for _ in range(draw(st.integers(1, max_d))))


def _with_batch(draw, grid):
    """X's shape and the grid axes: an optional batch axis of size 2 before, between or after."""
    d = len(grid)
    pos = draw(st.sampled_from([None, 0, d, max(0, d - 1)]))
    shape, axes = list(grid), list(range(d))
    if pos is not None:
        shape.insert(pos, 2)
        axes = [a if a < pos else a + 1 for a in axes]
    return tuple(shape), tuple(axes)


def _method(draw):
    return draw(st.sampled_from(sp.METHODS))


@st.composite
def _cases(draw, data="X"):
    """Gaussian kernels for the forward (``data="X"``), ``a delta + P`` for the inverse (``"Z"``)."""
    gen = draw(rng())
    grid = _grid(draw)
    shape, axes = _with_batch(draw, grid)
    K = near_identity_kernel(gen, grid) if data == "Z" else gen.standard_normal(grid)
    return Case({data: gen.standard_normal(shape), "K": K}, {"axes": axes, "method": _method(draw)})


@st.composite
def _slogdet_cases(draw):
    """One kernel (``axes=None``) or two stacked on a trailing batch axis."""
    gen = draw(rng())
    grid = _grid(draw)
    if draw(st.booleans()):
        K = np.stack([moderate_kernel(gen, grid) for _ in range(2)], axis=-1)
        axes = tuple(range(len(grid)))
    else:
        K, axes = moderate_kernel(gen, grid), None
    return Case({"K": K}, {"axes": axes, "method": _method(draw)})


@st.composite
def _three_d_cases(draw, slogdet=False):
    """``h x w x c`` tensors (optionally after a batch axis), all three axes periodic."""
    gen = draw(rng())
    grid = tuple(draw(st.integers(1, 4)) for _ in range(3))
    K = moderate_kernel(gen, grid)
    if slogdet:
        return Case({"K": K}, {"axes": (0, 1, 2), "method": _method(draw)})
    batch = draw(st.sampled_from([(), (2,)]))
    axes = tuple(range(len(batch), len(batch) + 3))
    return Case({"X": gen.standard_normal(batch + grid), "K": K}, {"axes": axes, "method": _method(draw)})


# -- checks shared with the periodic convolution (impl is refimpl's or a candidate's) -------


def _outputs_and_cotangents(op, impl, case, ctx, cotangents):
    values = run_outputs(op, impl, case, ctx)
    for name, leaves in run_vjp(op, impl, case, ctx, cotangents).items():
        values[f"cotangent of {name}"] = leaves[0]
    return values


def paths_agree(op_name):
    """Check: ``method="rfft"`` and ``method="complex"`` give the same outputs and cotangents."""

    def check(impl, case, ctx):
        op = get_op(op_name)
        cotangents = cotangent_for(op, case)
        rfft, full = (_outputs_and_cotangents(op, impl, Case(case.primals, {**case.params, "method": m}),
                                              ctx, cotangents) for m in sp.METHODS)
        return worst({k: rel_error(rfft[k], full[k]) for k in rfft})

    return check


def cached_spectrum(op_name, spectrum):
    """Check (refimpl only): ``K`` replaced by ``refimpl.conv.spectrum.<spectrum>(K)``, same output."""

    def check(impl, case, ctx):
        op = get_op(op_name)
        direct = run_outputs(op, impl, case, ctx)["out"]
        spec = getattr(sp, spectrum)(ctx.put(case.primals["K"]), method=case.params["method"])
        params = {k: v for k, v in case.params.items() if k != "method"}
        cached = impl.forward(ctx.put(case.primals[op.data]), spec, **params)
        return rel_error(ctx.take(cached, direct.shape), direct)

    return check


def shift_equivariance(op_name, axes_of):
    """Check: rolling the data primal over the grid axes ``axes_of(case)`` rolls the output."""

    def check(impl, case, ctx):
        op = get_op(op_name)
        X, axes = case.primals[op.data], axes_of(case)
        gen = np.random.default_rng(4)
        shift = [int(gen.integers(1, max(X.shape[a], 2))) for a in axes]
        Z = run_outputs(op, impl, case, ctx)["out"]
        moved = {**case.primals, op.data: np.roll(X, shift, axis=axes)}
        Zs = run_outputs(op, impl, case, ctx, primals=moved)["out"]
        return rel_error(Zs, np.roll(Z, shift, axis=axes))

    return check


def paths_property(op_name):
    return Property("rfft path == complex path", paths_agree(op_name),
                    "method='rfft' and method='complex' give the same outputs and cotangents",
                    refimpl_only=True)


def cached_property(op_name, spectrum):
    return Property("cached spectrum", cached_spectrum(op_name, spectrum),
                    f"K replaced by {spectrum}(K) gives the same output", refimpl_only=True)


# -- invariants of circular_conv ------------------------------------------------------------


def _conv(impl, case, ctx, **primals):
    """``circular_conv`` on ``ctx`` with primals replaced, as float64 NumPy."""
    return run_outputs(CONV, impl, case, ctx, primals={**case.primals, **primals})["out"]


def _per_slice(X, axes, fn):
    """Apply ``fn`` to every grid slice of ``X`` (batch axes anywhere)."""
    grid = tuple(X.shape[a] for a in axes)
    return _on_grid(np, X, axes, lambda rows: np.stack([np.ravel(fn(r.reshape(grid))) for r in rows]))


def _centre(K):
    return [n // 2 for n in K.shape]


def _delta(shape):
    d = np.zeros(shape)
    d[(0,) * len(shape)] = 1.0
    return d


def _matches_ndimage_convolve(impl, case, ctx):
    X, K, axes = ctx.rounded(case.primals["X"]), ctx.rounded(case.primals["K"]), case.params["axes"]
    expected = _per_slice(X, axes, lambda x: ndimage.convolve(x, K, mode="wrap"))
    return rel_error(np.roll(_conv(impl, case, ctx), [-c for c in _centre(K)], axis=axes), expected)


def _adjoint_matches_ndimage_correlate(impl, case, ctx):
    """``dX = C(K)^T G`` is ``scipy.ndimage.correlate(G, K, mode="wrap")`` rolled by ``-(s // 2)``."""
    K, axes = ctx.rounded(case.primals["K"]), case.params["axes"]
    G = np.random.default_rng(2).standard_normal(case.primals["X"].shape)
    (dX,) = run_vjp(CONV, impl, case, ctx, [G])["X"]
    expected = _per_slice(ctx.rounded(G), axes, lambda g: ndimage.correlate(g, K, mode="wrap"))
    return rel_error(dX, np.roll(expected, [-c for c in _centre(K)], axis=axes))


def _fold(full, grid):
    """Sum a linear convolution of length ``2N - 1`` per axis modulo ``N``."""
    for axis, n in enumerate(grid):
        pad = [(0, 0)] * full.ndim
        pad[axis] = (0, 2 * n - full.shape[axis])
        full = np.pad(full, pad)
        full = np.sum(np.reshape(full, full.shape[:axis] + (2, n) + full.shape[axis + 1:]), axis=axis)
    return full


def _matches_folded_linear(impl, case, ctx):
    X, K, axes = ctx.rounded(case.primals["X"]), ctx.rounded(case.primals["K"]), case.params["axes"]
    expected = _per_slice(X, axes, lambda x: _fold(signal.convolve(x, K, mode="full"), K.shape))
    return rel_error(_conv(impl, case, ctx), expected)


def _impulse_response(impl, case, ctx):
    """A delta at the origin of every grid slice returns the kernel."""
    blank, axes = np.zeros(case.primals["X"].shape), case.params["axes"]
    Z = _conv(impl, case, ctx, X=_per_slice(blank, axes, lambda x: _delta(x.shape)))
    return rel_error(Z, _per_slice(blank, axes, lambda _: ctx.rounded(case.primals["K"])))


def channel_circulant(K):
    """``W[o, i] = K[:, :, (o - i) mod c]``: an ``h x w x c`` kernel as a periodic-convolution kernel."""
    c = K.shape[-1]
    return np.stack([np.stack([K[:, :, (o - i) % c] for i in range(c)]) for o in range(c)])


def _three_d_is_periodic(impl, case, ctx):
    """refimpl's ``periodic_conv`` of the channels-first tensor, on NumPy in the check's dtype."""
    X, K = ctx.local(case.primals["X"]), ctx.local(channel_circulant(case.primals["K"]))
    expected = np.asarray(periodic_conv(np.moveaxis(X, -1, -3), K), dtype=np.float64)
    return rel_error(_conv(impl, case, ctx), np.moveaxis(expected, -3, -1))


def _three_d_slogdet_is_periodic(impl, case, ctx):
    got = run_outputs(SLOGDET, impl, case, ctx)
    expected = periodic_conv_slogdet(ctx.local(channel_circulant(case.primals["K"])))
    return worst({"sign": rel_error(got["sign"], np.float64(expected.sign)),
                  "logabsdet": rel_error(got["logabsdet"], np.float64(expected.logabsdet), scale=1.0)})


# -- records -------------------------------------------------------------------------------


def _condition(case):
    """``cond C(K) = max|K_hat| / min|K_hat|`` (the singular values of ``C(K)`` are ``|K_hat|``)."""
    mags = np.abs(np.fft.fftn(case.primals["K"]))
    return float(mags.max() / mags.min())


def _slogdet_points(case):
    """``circular_conv`` at ``X = 0`` of the grid's shape, one point per kernel of the batch."""
    Kb, nb = _batch_first(np, case.primals["K"], case.params.get("axes"))
    grid = Kb.shape[nb:]
    every = tuple(range(len(grid)))
    return [(Case({"X": np.zeros(grid), "K": Kb[index]}, {"axes": every}), index)
            for index in np.ndindex(Kb.shape[:nb])]


def _bench_case(size):
    """Data ``X`` (also ``Z``) and a near-identity (invertible) kernel, every axis periodic."""
    gen = np.random.default_rng(0)
    X = gen.standard_normal(size)
    return Case({"X": X, "Z": X, "K": near_identity_kernel(gen, size)})


BENCH_SIZES = ((32, 32, 3), (64, 64, 16))
FFT_FLOOR = Anchor("fft_round_trip", lambda case: anchors.fft_round_trip(
    case.primals["X"], tuple(range(case.primals["X"].ndim))))


def _rfftn(case):
    """``numpy.fft.rfftn`` of the kernel: the spectrum the log-determinant reads."""
    K = case.primals["K"]
    return lambda: np.fft.rfftn(K)


CONV = register(Op(
    forward=cc.circular_conv,
    vjp=cc.circular_conv_vjp,
    primals=(Primal("X"), Primal("K")),
    cases=_cases,
    reference=_reference,
    naive=_naive,
    properties=(
        Property("matches scipy.ndimage.convolve (wrap)", _matches_ndimage_convolve,
                 "ndimage.convolve(X, K, mode='wrap') = roll(Z, -(s // 2)) per grid slice"),
        Property("adjoint matches scipy.ndimage.correlate (wrap)", _adjoint_matches_ndimage_correlate,
                 "dX = C(K)^T G = roll(ndimage.correlate(G, K, mode='wrap'), -(s // 2))"),
        Property("matches folded scipy.signal.convolve (full)", _matches_folded_linear,
                 "the linear convolution of length 2N - 1, summed modulo N per axis"),
        Property("impulse response is the kernel", _impulse_response, "delta at the origin -> K"),
        Property("shift equivariance", shift_equivariance("circular_conv", lambda c: c.params["axes"]),
                 "roll(X, s) -> roll(Z, s) over the grid axes"),
        Property("3-D conv == periodic conv with channel-circulant kernel", _three_d_is_periodic,
                 "h x w x c convolution = periodic_conv with W[o, i] = K[:, :, (o - i) mod c]",
                 cases=_three_d_cases),
        paths_property("circular_conv"),
        cached_property("circular_conv", "kernel_spectrum"),
    ),
    data="X",
    linear_in=("X", "K"),
    tolerance=TOL,
    convention=CONVENTION,
    section="2.2",
    references=REFERENCES,
    options=("method",),
    bench_case=_bench_case,
    bench_sizes=BENCH_SIZES,
    bench_anchor=FFT_FLOOR,
))

INVERSE = register(Op(
    forward=cc.circular_conv_inverse,
    vjp=cc.circular_conv_inverse_vjp,
    primals=(Primal("Z"), Primal("K")),
    cases=lambda: _cases(data="Z"),
    reference=_reference_inverse,
    naive=_naive_inverse,
    properties=(
        paths_property("circular_conv_inverse"),
        cached_property("circular_conv_inverse", "kernel_spectrum"),
    ),
    data="Z",
    inverse_of="circular_conv",
    condition=_condition,
    linear_in=("Z",),
    tolerance=INVERSE_TOL,
    convention="X = C(K)^{-1} Z = ifftn(fftn(Z) / K_hat) over the chosen axes, "
               "circular_conv's convention; a singular C(K) is a ValueError naming the frequency.",
    section="2.2",
    references=REFERENCES,
    options=("method",),
    bench_case=_bench_case,
    bench_sizes=BENCH_SIZES,
    bench_anchor=FFT_FLOOR,
))

SLOGDET = register(Op(
    forward=cc.circular_conv_slogdet,
    vjp=cc.circular_conv_slogdet_vjp,
    primals=(Primal("K"),),
    outputs=(Output("sign", differentiable=False), Output("logabsdet")),
    cases=_slogdet_cases,
    reference=_reference_slogdet,
    naive=_naive_logabsdet,
    properties=(
        Property("3-D logdet == periodic logdet with channel-circulant kernel",
                 _three_d_slogdet_is_periodic, "sign and logabsdet of both constructions agree",
                 cases=lambda: _three_d_cases(slogdet=True)),
        paths_property("circular_conv_slogdet"),
    ),
    slogdet_of="circular_conv",
    jacobian_points=_slogdet_points,
    tolerance=SLOGDET_TOL,
    convention="SlogdetResult(sign, logabsdet) of C(K) per kernel of the batch: logabsdet = "
               "sum_f log|K_hat[f]|, sign = prod of sign(K_hat[f]) over the self-conjugate f; "
               "the VJP takes the cotangent of logabsdet.",
    section="2.2",
    references=REFERENCES,
    options=("method",),
    bench_case=_bench_case,
    bench_sizes=BENCH_SIZES,
    bench_anchor=Anchor("rfftn", _rfftn),
))
