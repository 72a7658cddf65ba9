"""Registry records for FFT circular convolutions as invertible layers (CONVENTIONS section 3).

Ops: ``circular_conv`` (+ ``_inverse``, ``_slogdet``), ``periodic_conv`` (+
``_inverse``, ``_slogdet``), ``embed_kernel`` and Glow's ``glow_conv1x1`` (+
``_inverse``, ``_slogdet``). The registered forward of a ``*_slogdet`` op
returns ``stack([sign, logabsdet], axis=-1)``, so the ground truth checks the
sign too; its VJP takes that pair's cotangent and uses the logabsdet part.

Ground truth never uses an FFT: the definition as an explicit ``np.roll`` sum,
the dense operator ``M[n, n'] = K[(n - n') mod N]`` (solve, slogdet), SciPy's
``ndimage.convolve/correlate(mode="wrap")`` and a folded
``signal.convolve(mode="full")``; autograd differentiates the dense operator.
Kernels for inverses are ``a delta + P`` with ``||P||_1 <= r |a|``, so that
``cond <= (1 + r) / (1 - r)`` by construction; kernels for log-determinants
are Gaussian, redrawn until the spectrum's condition number is moderate (all
signs occur).
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
import scipy.linalg
import scipy.ndimage as ndimage
import scipy.signal as signal
from hypothesis import strategies as st

from refimpl import fftconv as fc
from refimpl.backend import get_namespace

from ..checks import rel_error
from ..registry import Case, Op, Property, register
from ..strategies import rng

REFERENCES = (
    "Hoogeboom, van den Berg, Welling 2019, Emerging convolutions for generative normalizing flows "
    "(ICML, arXiv:1901.11137)",
    "Karami et al. 2019, Invertible convolutional flow (NeurIPS)",
    "Kingma and Dhariwal 2018, Glow: generative flow with invertible 1x1 convolutions (arXiv:1807.03039)",
)
TOL = {"float64": 1e-12, "float32": 5e-6}
INVERSE_TOL = {"float64": 1e-12, "float32": 2e-5}
SLOGDET_TOL = {"float64": 1e-12, "float32": 2e-5}
CIRCULAR = (
    "Z[n] = sum_m K[m] X[(n - m) mod N] over the chosen axes (a convolution, kernel flipped); "
    "DFT unnormalised forward, 1/N inverse; rfft path with multiplicity weights 1 (last-axis bins 0, "
    "N/2) else 2; scipy.ndimage.convolve(X, K, mode='wrap') = roll(Z, -(s // 2))."
)
PERIODIC = (
    "X (..., c_in, H, W), K (c_out, c_in, H, W): Z_o = sum_i K_oi (*) X_i (2-D circular convolution); "
    "z_hat(f) = K_hat(f) x_hat(f) with K_hat(f) a c_out x c_in matrix; logabsdet = sum_f log|det K_hat(f)|."
)


# -- the definition: dense operators, roll sums (NumPy or autograd.numpy) -----------------


@functools.lru_cache(maxsize=64)
def _circulant_index(grid):
    """``idx[n, n'] = ravel((n - n') mod N)``: the dense operator is ``K.ravel()[idx]``."""
    n = int(np.prod(grid))
    coords = np.array(np.unravel_index(np.arange(n), grid))
    diff = (coords[:, :, None] - coords[:, None, :]) % np.array(grid)[:, None, None]
    return np.ravel_multi_index(tuple(diff), grid)


def _dense(K, grid):
    """Dense ``M`` with ``vec(Z) = M vec(X)`` (C order), from the definition."""
    return K.reshape(-1)[_circulant_index(tuple(grid))]


def _dense_periodic(np_, K):
    """Dense ``(c_out HW) x (c_in HW)`` operator of the periodic convolution."""
    c_out, c_in, H, W = K.shape
    blocks = K.reshape(c_out, c_in, H * W)[:, :, _circulant_index((H, W))]
    return np_.reshape(np_.transpose(blocks, (0, 2, 1, 3)), (c_out * H * W, c_in * H * W))


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


def _roll_sum(X, K, axes):
    """``sum_m K[m] roll(X, m, axes)``: the definition, term by term."""
    out = np.zeros_like(X)
    for m in np.ndindex(K.shape):
        out = out + K[m] * np.roll(X, m, axis=axes)
    return out


def _circular_reference(X, K, axes=None, **_):
    return _roll_sum(X, K, tuple(axes))


def _circular_naive(X, K, axes=None, **_):
    return _apply_dense(anp, _dense(K, K.shape), X, tuple(axes))


def _circular_inverse_reference(Z, K, axes=None, **_):
    return _solve_dense(np, _dense(K, K.shape), Z, tuple(axes))


def _circular_inverse_naive(Z, K, axes=None, **_):
    return _solve_dense(anp, _dense(K, K.shape), Z, tuple(axes))


def _slogdet_pair(np_, M):
    sign, logabsdet = np_.linalg.slogdet(M)
    return np_.stack([sign, logabsdet], axis=-1)


def _circular_slogdet_dense(K, axes=None, np_=np, **_):
    """``[sign, logabsdet]`` of the dense operator of each kernel in the batch."""
    axes = tuple(range(K.ndim)) if axes is None else tuple(axes)
    batch = [a for a in range(K.ndim) if a not in axes]
    grid = tuple(K.shape[a] for a in axes)
    kernels = np_.reshape(np_.transpose(K, batch + list(axes)), (-1,) + grid)
    pairs = np_.stack([_slogdet_pair(np_, _dense(kernels[b], grid)) for b in range(kernels.shape[0])])
    return np_.reshape(pairs, tuple(K.shape[a] for a in batch) + (2,))


def _periodic_reference(X, K, **_):
    return np.stack([sum(_roll_sum(X[..., i, :, :], K[o, i], (-2, -1)) for i in range(K.shape[1]))
                     for o in range(K.shape[0])], axis=-3)


def _per_image(np_, M, X, c_out):
    flat = np_.reshape(X, (-1, M.shape[1]))
    return np_.reshape(np_.matmul(flat, np_.transpose(M)), X.shape[:-3] + (c_out,) + X.shape[-2:])


def _periodic_naive(X, K, **_):
    return _per_image(anp, _dense_periodic(anp, K), X, K.shape[0])


def _periodic_inverse_reference(Z, K, np_=np, **_):
    M = _dense_periodic(np_, K)
    flat = np_.reshape(Z, (-1, M.shape[0]))
    return np_.reshape(np_.transpose(np_.linalg.solve(M, np_.transpose(flat))), Z.shape)


def _periodic_slogdet_dense(K, np_=np, **_):
    return _slogdet_pair(np_, _dense_periodic(np_, K))


# -- inputs -------------------------------------------------------------------------------


def _delta(shape):
    d = np.zeros(shape)
    d[(0,) * len(shape)] = 1.0
    return d


def _near_identity(gen, grid):
    """``a delta + P``, ``||P||_1 = r |a|``: ``|K_hat|`` in ``|a| [1 - r, 1 + r]``."""
    a = gen.choice([-1.0, 1.0]) * gen.uniform(0.5, 2.0)
    P = gen.standard_normal(grid)
    r = gen.uniform(0.0, 0.8)
    return a * _delta(grid) + P * (r * abs(a) / np.abs(P).sum())


def _moderate_spectrum(gen, grid, limit=30.0):
    """A Gaussian kernel whose spectrum has ``max|K_hat| / min|K_hat| <= limit``."""
    for _ in range(200):
        K = gen.standard_normal(grid)
        mags = np.abs(np.fft.fftn(K))
        if mags.max() <= limit * mags.min():
            return K
    return _near_identity(gen, grid)


def _grid(draw, max_d=3, max_n=4):
    d = draw(st.integers(1, max_d))
    return tuple(draw(st.integers(1, max_n)) for _ in range(d))


def _with_batch(draw, grid):
    """X's shape and the grid axes: an optional batch axis of size 2 before, between or after."""
    d = len(grid)
    pos = draw(st.sampled_from([None, 0, d, max(0, d - 1)]))
    shape, axes = list(grid), list(range(d))
    if pos is not None:
        shape.insert(pos, 2)
        axes = [a if a < pos else a + 1 for a in axes]
    return tuple(shape), tuple(axes)


@st.composite
def _circular_cases(draw, kernel="gaussian", max_d=3):
    gen = draw(rng())
    grid = _grid(draw, max_d)
    shape, axes = _with_batch(draw, grid)
    K = _near_identity(gen, grid) if kernel == "near_identity" else gen.standard_normal(grid)
    first = "Z" if kernel == "near_identity" else "X"
    return Case({first: gen.standard_normal(shape), "K": K},
                {"axes": axes, "method": draw(st.sampled_from(fc.METHODS))})


@st.composite
def _three_d_cases(draw, slogdet=False):
    """``h x w x c`` tensors (optionally with a leading batch axis) for the channel-circulant check."""
    gen = draw(rng())
    grid = tuple(draw(st.integers(1, 4)) for _ in range(3))
    K = _moderate_spectrum(gen, grid)
    if slogdet:
        return Case({"K": K}, {"axes": (0, 1, 2), "method": draw(st.sampled_from(fc.METHODS))})
    batch = draw(st.sampled_from([(), (2,)]))
    axes = tuple(range(len(batch), len(batch) + 3))
    return Case({"X": gen.standard_normal(batch + grid), "K": K},
                {"axes": axes, "method": draw(st.sampled_from(fc.METHODS))})


@st.composite
def _slogdet_cases(draw):
    gen = draw(rng())
    grid = _grid(draw, 3, 4)
    batched = draw(st.booleans())
    if batched:
        K = np.stack([_moderate_spectrum(gen, grid) for _ in range(2)], axis=-1)
        axes = tuple(range(len(grid)))
    else:
        K, axes = _moderate_spectrum(gen, grid), None
    return Case({"K": K}, {"axes": axes, "method": draw(st.sampled_from(fc.METHODS))})


def _periodic_near_identity(gen, c, H, W):
    """``Q delta + P`` with ``Q`` orthogonal and ``sum_m ||P_m||_2 = r``: ``sigma(K_hat(f))`` in ``[1 - r, 1 + r]``."""
    Q, _ = np.linalg.qr(gen.standard_normal((c, c)))
    P = gen.standard_normal((c, c, H, W))
    r = gen.uniform(0.0, 0.8)
    norms = sum(np.linalg.norm(P[:, :, h, w], 2) for h in range(H) for w in range(W))
    K = P * (r / norms)
    K[:, :, 0, 0] += Q
    return K


def _periodic_moderate(gen, c, H, W, limit=100.0):
    for _ in range(200):
        K = gen.standard_normal((c, c, H, W))
        A = np.moveaxis(np.fft.fft2(K), (0, 1), (-2, -1))
        if np.all(np.linalg.cond(A) <= limit):
            return K
    return _periodic_near_identity(gen, c, H, W)


@st.composite
def _periodic_cases(draw, kind="gaussian"):
    gen = draw(rng())
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    c_in = draw(st.integers(1, 3))
    c_out = c_in if kind != "gaussian" else draw(st.integers(1, 3))
    method = draw(st.sampled_from(fc.METHODS))
    if kind == "slogdet":
        return Case({"K": _periodic_moderate(gen, c_in, H, W)}, {"method": method})
    batch = draw(st.sampled_from([(), (2,), (2, 1)]))
    if kind == "near_identity":
        return Case({"Z": gen.standard_normal(batch + (c_in, H, W)),
                     "K": _periodic_near_identity(gen, c_in, H, W)}, {"method": method})
    return Case({"X": gen.standard_normal(batch + (c_in, H, W)),
                 "K": gen.standard_normal((c_out, c_in, H, W))}, {"method": method})


# -- invariants (impl.forward / impl.vjp may be refimpl's or a candidate's) -----------------


def _run(impl, ctx, primals, params, shape, what="output"):
    return ctx.take(impl.forward(*[ctx.put(v) for v in primals], **params), shape, what)


def _first(case):
    return next(iter(case.primals))


def _adjoint_test(impl, case, ctx):
    """``<f(x), g> = <x, vjp(g)_x>`` for an op linear in its first primal (no differences)."""
    name = _first(case)
    primals = list(case.primals.values())
    out_shape = np.asarray(impl.forward(*primals, **case.params)).shape
    g = np.random.default_rng(11).standard_normal(out_shape)
    y = _run(impl, ctx, primals, case.params, out_shape)
    cot = impl.vjp(*[ctx.put(v) for v in primals], ctx.put(g), **case.params)[0]
    x_bar = ctx.take(cot, case.primals[name].shape, f"cotangent of {name}")
    x = ctx.rounded(case.primals[name])
    scale = np.linalg.norm(y) * np.linalg.norm(g) + np.linalg.norm(x) * np.linalg.norm(x_bar)
    return abs(np.sum(y * g) - np.sum(x * x_bar)) / max(scale, 1e-300)


def _paths_agree(impl, case, ctx):
    """``method="rfft"`` and ``method="complex"``: forward and VJP agree."""
    primals = list(case.primals.values())
    out_shape = np.asarray(impl.forward(*primals, **case.params)).shape
    g = np.random.default_rng(5).standard_normal(out_shape)
    errors = []
    results = {}
    for method in fc.METHODS:
        params = {**case.params, "method": method}
        out = _run(impl, ctx, primals, params, out_shape)
        cots = impl.vjp(*[ctx.put(v) for v in primals], ctx.put(g), **params)
        results[method] = [out] + [ctx.take(c, p.shape) for c, p in zip(cots, primals)]
    for a, b in zip(*results.values()):
        errors.append(rel_error(a, b))
    return max(errors)


def _cached_spectrum(spectrum_name):
    def check(impl, case, ctx):
        """Passing the cached spectrum in place of K gives the same forward."""
        primals = dict(case.primals)
        first = _first(case)
        shape = np.asarray(impl.forward(*primals.values(), **case.params)).shape
        direct = _run(impl, ctx, list(primals.values()), case.params, shape)
        method = case.params.get("method")
        spec = getattr(fc, spectrum_name)(ctx.put(primals["K"]), method=method)
        params = {k: v for k, v in case.params.items() if k != "method"}
        cached = ctx.take(impl.forward(ctx.put(primals[first]), spec, **params), shape)
        return rel_error(cached, direct)
    return check


def _per_slice(X, axes, fn):
    """Apply ``fn`` to every grid slice of ``X`` (batch axes anywhere)."""
    grid = tuple(X.shape[a] for a in axes)
    return _on_grid(np, X, axes, lambda rows: np.stack([fn(r.reshape(grid)).ravel() for r in rows]))


def _centre(K):
    return tuple(n // 2 for n in K.shape)


def _matches_ndimage_convolve(impl, case, ctx):
    X, K, axes = ctx.rounded(case.primals["X"]), ctx.rounded(case.primals["K"]), case.params["axes"]
    Z = _run(impl, ctx, [case.primals["X"], case.primals["K"]], case.params, X.shape)
    expected = _per_slice(X, axes, lambda x: ndimage.convolve(x, K, mode="wrap"))
    return rel_error(np.roll(Z, [-c for c in _centre(K)], axis=axes), expected)


def _adjoint_matches_ndimage_correlate(impl, case, ctx):
    """``dX = C(K)^T G`` is ``scipy.ndimage.correlate(G, K, mode="wrap")`` rolled by ``-(s // 2)``."""
    X, K, axes = case.primals["X"], ctx.rounded(case.primals["K"]), case.params["axes"]
    G = ctx.rounded(np.random.default_rng(2).standard_normal(X.shape))
    dX = ctx.take(impl.vjp(ctx.put(X), ctx.put(case.primals["K"]), ctx.put(G), **case.params)[0],
                  X.shape, "cotangent of X")
    expected = _per_slice(G, axes, lambda g: ndimage.correlate(g, K, mode="wrap"))
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
    Z = _run(impl, ctx, [case.primals["X"], case.primals["K"]], case.params, X.shape)
    expected = _per_slice(X, axes, lambda x: _fold(signal.convolve(x, K, mode="full"), K.shape))
    return rel_error(Z, expected)


def _impulse_response(impl, case, ctx):
    """A delta at the origin of every grid slice returns the kernel."""
    X, K, axes = case.primals["X"], case.primals["K"], case.params["axes"]
    delta = _per_slice(np.zeros(X.shape), axes, lambda x: _delta(x.shape))
    Z = _run(impl, ctx, [delta, K], case.params, X.shape)
    return rel_error(Z, _per_slice(np.zeros(X.shape), axes, lambda _: ctx.rounded(K)))


def _shift_equivariance(impl, case, ctx, grid_axes=None):
    X = case.primals[_first(case)]
    axes = grid_axes or case.params["axes"]
    shift = [int(np.random.default_rng(4).integers(0, X.shape[a])) + 1 for a in axes]
    rest = list(case.primals.values())[1:]
    shape = np.asarray(impl.forward(X, *rest, **case.params)).shape
    Z = _run(impl, ctx, [X] + rest, case.params, shape)
    Zs = _run(impl, ctx, [np.roll(X, shift, axis=axes)] + rest, case.params, shape)
    return rel_error(Zs, np.roll(Z, shift, axis=axes))


def _channel_circulant(K):
    """``W[o, i] = K[:, :, (o - i) mod c]``: the 3-D kernel as a periodic-convolution kernel."""
    c = K.shape[-1]
    return np.stack([np.stack([K[:, :, (o - i) % c] for i in range(c)]) for o in range(c)])


def _three_d_is_periodic(impl, case, ctx):
    X, K = case.primals["X"], case.primals["K"]
    Z = _run(impl, ctx, [X, K], case.params, X.shape)
    expected = fc.periodic_conv(ctx.put(np.moveaxis(X, -1, -3)), ctx.put(_channel_circulant(K)))
    expected = np.moveaxis(ctx.take(expected, X.shape[:-3] + (X.shape[-1],) + X.shape[-3:-1]), -3, -1)
    return rel_error(Z, expected)


def _three_d_slogdet_is_periodic(impl, case, ctx):
    K = case.primals["K"]
    pair = _run(impl, ctx, [K], case.params, (2,))
    sign, logabsdet = fc.periodic_conv_slogdet(ctx.put(_channel_circulant(K)))
    return rel_error(pair, [ctx.take(sign, ()), ctx.take(logabsdet, ())])


def _condition(case):
    K = case.primals["K"]
    if K.ndim == 4 and "axes" not in case.params:
        A = np.moveaxis(np.fft.fft2(K), (0, 1), (-2, -1))
        s = np.linalg.svd(A, compute_uv=False)
        return s.max() / s.min()
    mags = np.abs(np.fft.fftn(K))
    return mags.max() / mags.min()


def _round_trip(forward):
    def check(impl, case, ctx):
        """``f(f^{-1}(Z)) = Z`` and ``f^{-1}(f(X)) = X``, error divided by ``cond(K)``."""
        Z, K = case.primals["Z"], case.primals["K"]
        X = impl.forward(ctx.put(Z), ctx.put(K), **case.params)
        back = forward(X, ctx.put(K), **case.params)
        there = forward(ctx.put(Z), ctx.put(K), **case.params)
        again = impl.forward(there, ctx.put(K), **case.params)
        errors = [rel_error(ctx.take(back, Z.shape), ctx.rounded(Z)),
                  rel_error(ctx.take(again, Z.shape), ctx.rounded(Z))]
        return max(errors) / _condition(case)
    return check


def _periodic_impulse(impl, case, ctx):
    """A delta at pixel 0 of channel ``i`` returns ``K[:, i]``."""
    X, K = case.primals["X"], case.primals["K"]
    c_out, c_in, H, W = K.shape
    delta = np.zeros((c_in, c_in, H, W))
    delta[np.arange(c_in), np.arange(c_in), 0, 0] = 1.0
    Z = _run(impl, ctx, [delta, K], case.params, (c_in, c_out, H, W))
    return rel_error(Z, np.swapaxes(ctx.rounded(K), 0, 1))


def _one_by_one(impl, case, ctx):
    """``K = W delta``: the periodic convolution is the per-pixel product ``W x`` (1x1 convolution)."""
    X = case.primals["X"]
    c_out, c_in = case.primals["K"].shape[:2]
    W = np.random.default_rng(8).standard_normal((c_out, c_in))
    K = np.zeros((c_out, c_in) + X.shape[-2:])
    K[:, :, 0, 0] = W
    Z = _run(impl, ctx, [X, K], case.params, X.shape[:-3] + (c_out,) + X.shape[-2:])
    return rel_error(Z, np.einsum("oi,...ihw->...ohw", ctx.rounded(W), ctx.rounded(X)))


# -- records ------------------------------------------------------------------------------


def _pair(slogdet):
    def forward(*args, **params):
        sign, logabsdet = slogdet(*args, **params)
        xp, _ = get_namespace(logabsdet)
        return xp.stack([sign, logabsdet], axis=-1)
    return forward


def _pair_vjp(slogdet_vjp):
    def vjp(*args, **params):
        *primals, cotangent = args
        return slogdet_vjp(*primals, cotangent[..., 1], **params)
    return vjp


_ADJOINT = Property("adjoint test", _adjoint_test,
                    "<f(x), g> = <x, vjp(g)> for the linear first argument (no differences)")
_PATHS = Property("rfft path == complex path", _paths_agree,
                  "method='rfft' and method='complex' give the same forward and cotangents",
                  refimpl_only=True)

register(Op(
    name="circular_conv",
    module="fftconv",
    forward=fc.circular_conv,
    vjp=fc.circular_conv_vjp,
    primals=("X", "K"),
    cases=_circular_cases,
    reference=_circular_reference,
    naive=_circular_naive,
    properties=(
        Property("matches scipy.ndimage.convolve (wrap)", _matches_ndimage_convolve,
                 "ndimage.convolve(X, K, mode='wrap') = roll(Z, -(s // 2)) per grid slice"),
        Property("adjoint matches scipy.ndimage.correlate (wrap)", _adjoint_matches_ndimage_correlate,
                 "dX = C(K)^T G = roll(ndimage.correlate(G, K, mode='wrap'), -(s // 2))"),
        Property("matches folded scipy.signal.convolve (full)", _matches_folded_linear,
                 "the linear convolution of length 2N - 1, summed modulo N per axis"),
        Property("impulse response is the kernel", _impulse_response, "delta at the origin -> K"),
        Property("shift equivariance", _shift_equivariance, "roll(X, s) -> roll(Z, s)"),
        _ADJOINT,
        _PATHS,
        Property("cached spectrum", _cached_spectrum("kernel_spectrum"),
                 "K replaced by kernel_spectrum(K) gives the same output", refimpl_only=True),
        Property("3-D conv == periodic conv with channel-circulant kernel", _three_d_is_periodic,
                 "h x w x c convolution = periodic_conv with W[o, i] = K[:, :, (o - i) mod c]",
                 cases=_three_d_cases),
    ),
    tolerance=TOL,
    convention=CIRCULAR,
    references=REFERENCES,
    options=("method",),
    bench_case=lambda size: Case({"X": np.random.default_rng(0).standard_normal(size),
                                  "K": np.random.default_rng(1).standard_normal(size)}),
    bench_sizes=((32, 32, 3), (64, 64, 16)),
))

register(Op(
    name="circular_conv_inverse",
    module="fftconv",
    forward=fc.circular_conv_inverse,
    vjp=fc.circular_conv_inverse_vjp,
    primals=("Z", "K"),
    cases=lambda: _circular_cases(kernel="near_identity"),
    reference=_circular_inverse_reference,
    naive=_circular_inverse_naive,
    properties=(
        Property("round trip (error / cond)", _round_trip(fc.circular_conv),
                 "conv(inverse(Z)) = Z and inverse(conv(X)) = X, relative error / cond(C(K))",
                 tolerance={"float64": 1e-14, "float32": 2e-6}),
        _ADJOINT,
        _PATHS,
    ),
    tolerance=INVERSE_TOL,
    convention="X = C(K)^{-1} Z = ifftn(fftn(Z) / K_hat). " + CIRCULAR,
    references=REFERENCES,
    options=("method",),
))

register(Op(
    name="circular_conv_slogdet",
    module="fftconv",
    forward=_pair(fc.circular_conv_slogdet),
    vjp=_pair_vjp(fc.circular_conv_slogdet_vjp),
    primals=("K",),
    cases=_slogdet_cases,
    reference=_circular_slogdet_dense,
    naive=functools.partial(_circular_slogdet_dense, np_=anp),
    properties=(
        _PATHS,
        Property("3-D logdet == periodic logdet with channel-circulant kernel",
                 _three_d_slogdet_is_periodic, "sign and logabsdet of both constructions agree",
                 cases=lambda: _three_d_cases(slogdet=True)),
    ),
    tolerance=SLOGDET_TOL,
    convention="Forward returns stack([sign, logabsdet]); logabsdet = sum_f omega_f log|K_hat[f]|, "
               "sign = prod over self-conjugate f of sign(K_hat[f]). " + CIRCULAR,
    references=REFERENCES,
    options=("method",),
))

register(Op(
    name="periodic_conv",
    module="fftconv",
    forward=fc.periodic_conv,
    vjp=fc.periodic_conv_vjp,
    primals=("X", "K"),
    cases=_periodic_cases,
    reference=_periodic_reference,
    naive=_periodic_naive,
    properties=(
        Property("impulse response is the kernel", _periodic_impulse,
                 "delta at pixel 0 of channel i -> K[:, i]"),
        Property("shift equivariance", functools.partial(_shift_equivariance, grid_axes=(-2, -1)),
                 "roll(X, s) -> roll(Z, s) over (H, W)"),
        Property("k = 1 is the 1x1 convolution", _one_by_one,
                 "K = W delta gives the per-pixel product W x"),
        _ADJOINT,
        _PATHS,
        Property("cached spectrum", _cached_spectrum("periodic_kernel_spectrum"),
                 "K replaced by periodic_kernel_spectrum(K) gives the same output", refimpl_only=True),
    ),
    tolerance=TOL,
    convention=PERIODIC,
    references=REFERENCES,
    options=("method",),
    bench_case=lambda size: Case({"X": np.random.default_rng(0).standard_normal((size[0],) + size[1:]),
                                  "K": np.random.default_rng(1).standard_normal((size[0],) + size)}),
    bench_sizes=((4, 32, 32), (16, 32, 32)),
))

register(Op(
    name="periodic_conv_inverse",
    module="fftconv",
    forward=fc.periodic_conv_inverse,
    vjp=fc.periodic_conv_inverse_vjp,
    primals=("Z", "K"),
    cases=lambda: _periodic_cases(kind="near_identity"),
    reference=_periodic_inverse_reference,
    naive=functools.partial(_periodic_inverse_reference, np_=anp),
    properties=(
        Property("round trip (error / cond)", _round_trip(fc.periodic_conv),
                 "conv(inverse(Z)) = Z and inverse(conv(X)) = X, relative error / max_f cond(K_hat(f))",
                 tolerance={"float64": 1e-14, "float32": 2e-6}),
        _ADJOINT,
        _PATHS,
    ),
    tolerance=INVERSE_TOL,
    convention="x_hat(f) = solve(K_hat(f), z_hat(f)). " + PERIODIC,
    references=REFERENCES,
    options=("method",),
))

register(Op(
    name="periodic_conv_slogdet",
    module="fftconv",
    forward=_pair(fc.periodic_conv_slogdet),
    vjp=_pair_vjp(fc.periodic_conv_slogdet_vjp),
    primals=("K",),
    cases=lambda: _periodic_cases(kind="slogdet"),
    reference=_periodic_slogdet_dense,
    naive=functools.partial(_periodic_slogdet_dense, np_=anp),
    properties=(_PATHS,),
    tolerance=SLOGDET_TOL,
    convention="Forward returns stack([sign, logabsdet]); logabsdet = sum_f omega_f log|det K_hat(f)|, "
               "sign = prod over self-conjugate f of sign(det K_hat(f)). " + PERIODIC,
    references=REFERENCES,
    options=("method",),
))


# -- deep-learning kernels ------------------------------------------------------------------


def _embed_reference(w, shape, layout="oihw"):
    if layout == "hwio":
        w = np.transpose(w, (3, 2, 0, 1))
    c_out, c_in, kh, kw = w.shape
    H, W = shape
    K = np.zeros((c_out, c_in, H, W))
    for a in range(kh):
        for b in range(kw):
            K[:, :, (kh // 2 - a) % H, (kw // 2 - b) % W] = w[:, :, a, b]
    return K


def _embed_naive(w, shape, layout="oihw"):
    if layout == "hwio":
        w = anp.transpose(w, (3, 2, 0, 1))
    kh, kw = w.shape[2:]
    H, W = shape
    K = 0.0
    for a in range(kh):
        for b in range(kw):
            onehot = np.zeros((H, W))
            onehot[(kh // 2 - a) % H, (kw // 2 - b) % W] = 1.0
            K = K + w[:, :, a, b][:, :, None, None] * onehot
    return K


@st.composite
def _embed_cases(draw):
    gen = draw(rng())
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh = draw(st.sampled_from([k for k in (1, 3, 5) if k <= H]))
    kw = draw(st.sampled_from([k for k in (1, 3, 5) if k <= W]))
    c_out, c_in = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layout = draw(st.sampled_from(fc.LAYOUTS))
    shape = (c_out, c_in, kh, kw) if layout == "oihw" else (kh, kw, c_in, c_out)
    return Case({"w": gen.standard_normal(shape)}, {"shape": (H, W), "layout": layout})


def _oihw(case, ctx):
    w = ctx.rounded(case.primals["w"])
    return w if case.params["layout"] == "oihw" else np.transpose(w, (3, 2, 0, 1))


def _layer(impl, case, ctx):
    """``(x, z)``: a random image through ``periodic_conv(x, impl.forward(w))``."""
    w = _oihw(case, ctx)
    c_out, c_in = w.shape[:2]
    H, W = case.params["shape"]
    x = np.random.default_rng(9).standard_normal((c_in, H, W))
    K = impl.forward(ctx.put(case.primals["w"]), **case.params)
    z = ctx.take(fc.periodic_conv(ctx.put(x), K), (c_out, H, W))
    return ctx.rounded(x), w, z


def _layer_matches_ndimage(impl, case, ctx):
    x, w, z = _layer(impl, case, ctx)
    expected = np.stack([sum(ndimage.correlate(x[i], w[o, i], mode="wrap") for i in range(w.shape[1]))
                         for o in range(w.shape[0])])
    return rel_error(z, expected)


def _layer_matches_padded_xcorr(impl, case, ctx):
    """The layer as PyTorch writes it: circular padding by ``k // 2``, then a cross-correlation."""
    x, w, z = _layer(impl, case, ctx)
    kh, kw = w.shape[2:]
    H, W = x.shape[1:]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)), mode="wrap")
    expected = np.zeros_like(z)
    for a in range(kh):
        for b in range(kw):
            expected += np.einsum("oi,ihw->ohw", w[:, :, a, b], padded[:, a:a + H, b:b + W])
    return rel_error(z, expected)


register(Op(
    name="embed_kernel",
    module="fftconv",
    forward=fc.embed_kernel,
    vjp=lambda w, G, **params: fc.embed_kernel_vjp(w, G, **params),
    primals=("w",),
    cases=_embed_cases,
    reference=_embed_reference,
    naive=_embed_naive,
    properties=(
        Property("layer matches scipy.ndimage.correlate (wrap)", _layer_matches_ndimage,
                 "periodic_conv(x, embed_kernel(w)) = sum_i ndimage.correlate(x_i, w_oi, mode='wrap')"),
        Property("layer matches circular padding + cross-correlation", _layer_matches_padded_xcorr,
                 "= conv2d of np.pad(x, k // 2, mode='wrap') with w (PyTorch's layer)"),
        _ADJOINT,
    ),
    tolerance=TOL,
    convention="K[o, i, (p - a) mod H, (p - b) mod W] = w[o, i, a, b], p = k // 2, odd k <= grid; "
               "layouts 'oihw' (PyTorch) and 'hwio' (TF).",
    references=REFERENCES,
))


# -- Glow's invertible 1x1 convolution -------------------------------------------------------


def _lu_weight(np_, L, U, s, perm):
    c = s.shape[0]
    W = np_.dot(np_.tril(L, -1) + np.eye(c), np_.triu(U, 1) + np_.diag(s))
    return W if perm is None else W[list(perm)]


def _glow_reference(X, L, U, s, perm=None, np_=np):
    W = _lu_weight(np_, L, U, s, perm)
    return np_.einsum("oi,...ihw->...ohw", W, X)


def _glow_inverse_reference(Z, L, U, s, perm=None, np_=np):
    W = _lu_weight(np_, L, U, s, perm)
    c, H, Wd = Z.shape[-3:]
    flat = np_.reshape(np_.moveaxis(Z, -3, -1), (-1, c))
    X = np_.transpose(np_.linalg.solve(W, np_.transpose(flat)))
    return np_.moveaxis(np_.reshape(X, Z.shape[:-3] + (H, Wd, c)), -1, -3)


def _glow_slogdet_reference(s, shape, perm=None, np_=np):
    """slogdet of the dense ``(c HW)^2`` Jacobian, with arbitrary fixed L and U."""
    c = s.shape[0]
    fixed = np.random.default_rng(c).standard_normal((2, c, c))
    W = _lu_weight(np_, fixed[0], fixed[1], s, perm)
    return _slogdet_pair(np_, np_.kron(W, np.eye(shape[0] * shape[1])))


@st.composite
def _glow_cases(draw, first="X"):
    gen = draw(rng())
    c = draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = gen.choice([-1.0, 1.0], size=c) * gen.uniform(0.5, 2.0, size=c)
    perm = draw(st.one_of(st.none(), st.permutations(range(c)).map(tuple)))
    if first == "s":
        return Case({"s": s}, {"shape": (H, W), "perm": perm})
    batch = draw(st.sampled_from([(), (2,)]))
    # Small triangular factors keep W well conditioned for the inverse.
    L, U = 0.3 * gen.standard_normal((c, c)), 0.3 * gen.standard_normal((c, c))
    return Case({first: gen.standard_normal(batch + (c, H, W)), "L": L, "U": U, "s": s},
                {"perm": perm})


def _glow_is_k1_periodic(impl, case, ctx):
    """The k = 1 case: ``periodic_conv(X, embed_kernel(W[:, :, None, None]))``."""
    X, L, U, s = (case.primals[k] for k in ("X", "L", "U", "s"))
    Z = _run(impl, ctx, [X, L, U, s], case.params, X.shape)
    W = _lu_weight(np, *(ctx.rounded(a) for a in (L, U, s)), case.params["perm"])
    K = fc.embed_kernel(ctx.put(W[:, :, None, None]), X.shape[-2:])
    return rel_error(Z, ctx.take(fc.periodic_conv(ctx.put(X), K), X.shape))


def _glow_from_scipy_lu(impl, case, ctx):
    """Factors of ``scipy.linalg.lu(W0)`` (``perm = P.argmax(1)``, ``s = diag U``) reproduce ``W0 X``."""
    X = case.primals["X"]
    c = X.shape[-3]
    W0 = np.random.default_rng(c + 17).standard_normal((c, c))
    P, L, U = scipy.linalg.lu(W0)
    params = {**case.params, "perm": tuple(int(i) for i in P.argmax(axis=1))}
    Z = _run(impl, ctx, [X, L, U, np.diag(U).copy()], params, X.shape)
    return rel_error(Z, np.einsum("oi,...ihw->...ohw", W0, ctx.rounded(X)))


def _glow_slogdet_is_periodic(impl, case, ctx):
    s, (H, W) = case.primals["s"], case.params["shape"]
    pair = _run(impl, ctx, [s], case.params, (2,))
    c = s.shape[0]
    fixed = np.random.default_rng(c).standard_normal((2, c, c))
    Wm = _lu_weight(np, fixed[0], fixed[1], ctx.rounded(s), case.params["perm"])
    K = fc.embed_kernel(ctx.put(Wm[:, :, None, None]), (H, W))
    sign, logabsdet = fc.periodic_conv_slogdet(K)
    return rel_error(pair, [ctx.take(sign, ()), ctx.take(logabsdet, ())])


register(Op(
    name="glow_conv1x1",
    module="fftconv",
    forward=fc.glow_conv1x1,
    vjp=fc.glow_conv1x1_vjp,
    primals=("X", "L", "U", "s"),
    cases=_glow_cases,
    reference=_glow_reference,
    naive=functools.partial(_glow_reference, np_=anp),
    properties=(
        Property("k = 1 case of periodic_conv", _glow_is_k1_periodic,
                 "equals periodic_conv(X, embed_kernel(W[:, :, None, None]))"),
        Property("factors of scipy.linalg.lu", _glow_from_scipy_lu,
                 "P, L, U = scipy.linalg.lu(W0) reproduce W0 X"),
        _ADJOINT,
    ),
    tolerance=TOL,
    convention="W = P tril(L, -1)+I (triu(U, 1) + diag(s)), (P A)[i] = A[perm[i]]; Z = W X per pixel "
               "(PyTorch's column convention); logabsdet = H W sum log|s|.",
    references=REFERENCES,
))

register(Op(
    name="glow_conv1x1_inverse",
    module="fftconv",
    forward=fc.glow_conv1x1_inverse,
    vjp=fc.glow_conv1x1_inverse_vjp,
    primals=("Z", "L", "U", "s"),
    cases=lambda: _glow_cases(first="Z"),
    reference=_glow_inverse_reference,
    naive=functools.partial(_glow_inverse_reference, np_=anp),
    properties=(_ADJOINT,),
    tolerance=INVERSE_TOL,
    convention="X = W^{-1} Z per pixel (solve), W as glow_conv1x1.",
    references=REFERENCES,
))

register(Op(
    name="glow_conv1x1_slogdet",
    module="fftconv",
    forward=_pair(fc.glow_conv1x1_slogdet),
    vjp=_pair_vjp(fc.glow_conv1x1_slogdet_vjp),
    primals=("s",),
    cases=lambda: _glow_cases(first="s"),
    reference=_glow_slogdet_reference,
    naive=functools.partial(_glow_slogdet_reference, np_=anp),
    properties=(
        Property("k = 1 logdet == periodic logdet", _glow_slogdet_is_periodic,
                 "equals periodic_conv_slogdet(embed_kernel(W[:, :, None, None], (H, W)))"),
    ),
    tolerance=SLOGDET_TOL,
    convention="Forward returns stack([sign, logabsdet]) of the (c H W)^2 Jacobian: "
               "logabsdet = H W sum log|s|, sign = (det P prod sign s)^(H W).",
    references=REFERENCES,
))
