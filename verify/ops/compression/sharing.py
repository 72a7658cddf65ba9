"""Records of :mod:`refimpl.compression.sharing` (docs/conventions.rst, section 9.2).

``kmeans_quantize`` against scikit-learn's ``KMeans(algorithm="lloyd",
n_init=1)`` started from the centroids each initialisation gives (computed
here from their definitions: ``numpy.linspace``, exact rational quantile
levels, the order of the noise). Cases draw continuous weights with at least
three per cluster and initial centroids beyond the data (several clusters
empty at once), so that the farthest points taken by empty clusters are
never tied: the one place where NumPy's ``argpartition`` leaves
scikit-learn's order unspecified. ``empty_clusters="keep"`` is checked
against SciPy's ``kmeans2``.

``shared_weights`` and ``centroid_gradient`` are each other's VJP:
``bincount`` ground truth, autograd, the adjoint test, and the centroid
gradient against the dot-product test of the codebook expansion.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st
from scipy.cluster.vq import kmeans2
from sklearn.cluster import KMeans

from refimpl.compression.sharing import (
    centroid_gradient,
    centroid_gradient_vjp,
    kmeans_quantize,
    shared_weights,
    shared_weights_vjp,
)

from ...checks import Err, mismatch, rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

REFERENCES = (
    "Han, Mao and Dally 2016, Deep compression (ICLR), section 3 (initialisations: Figure 4)",
    "scikit-learn 1.9 sklearn/cluster/_kmeans.py (_kmeans_single_lloyd, _tolerance) and "
    "_k_means_common.pyx (_relocate_empty_clusters_dense, _average_centers)",
    "SciPy scipy.cluster.vq.kmeans2 (missing='warn': empty clusters keep their centroid)",
    "Hyndman and Fan 1996, Sample quantiles in statistical packages (types 1 and 7)",
)


# -- k-means: the initialisations and scikit-learn ------------------------------------------------


def _levels(k):
    return [Fraction(j, max(k - 1, 1)) for j in range(k)]


def _density(x, k, quantile):
    """Quantiles of ``x`` at ``j / (k - 1)``, the index arithmetic in exact fractions."""
    s, n = np.sort(x), x.size
    if quantile == "inverted_cdf":
        return np.array([s[max(-(-n * p.numerator // p.denominator) - 1, 0)] for p in _levels(k)])
    out = []
    for p in _levels(k):
        h = (n - 1) * p
        lower = h.numerator // h.denominator
        upper = min(lower + 1, n - 1)
        out.append(s[lower] + float(h - lower) * (s[upper] - s[lower]))
    return np.array(out)


def _initial(x, k, init, noise, quantile):
    if not isinstance(init, str):
        return np.asarray(init, dtype=np.float64)
    if init == "linear":
        return np.linspace(x.min(), x.max(), k)
    if init == "density":
        return _density(x, k, quantile)
    return x[np.argsort(noise, kind="stable")[:k]]


def _kept(w, mask):
    return w.ravel() if mask is None else w.ravel()[mask.ravel()]


def _sklearn(w, n_clusters, mask=None, init="linear", noise=None, max_iter=300, tol=1e-4,
             quantile="linear"):
    x = _kept(w, mask)
    u = None if noise is None else _kept(noise, mask)
    centers = _initial(x, n_clusters, init, u, quantile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct clusters than n_clusters
        return KMeans(n_clusters, init=centers.reshape(-1, 1), n_init=1, algorithm="lloyd",
                      max_iter=max_iter, tol=tol).fit(x.reshape(-1, 1))


def _reference_kmeans(w, mask=None, init="linear", noise=None, *, n_clusters, **params):
    # scikit-learn squares distances: it runs on the data divided by a power of two (exact, the
    # same steps), so that it is the ground truth at any scale.
    peak = max(np.abs(w).max(initial=0.0), 0.0 if isinstance(init, str) else np.abs(init).max())
    scale = np.ldexp(1.0, np.frexp(peak)[1])
    km = _sklearn(w / scale, n_clusters, mask, init if isinstance(init, str) else init / scale,
                  noise, **params)
    codes = np.full(w.size, -1)
    codes[np.flatnonzero(np.ones(w.size, bool) if mask is None else mask.ravel())] = km.labels_
    return (km.cluster_centers_.ravel() * scale, codes.reshape(w.shape),
            km.inertia_ * scale * scale, km.n_iter_)


@st.composite
def _kmeans_cases(draw):
    """Continuous weights (scale 1e-3 to 10, Gaussian or heavy-tailed), >= 3 kept per cluster,
    every initialisation; ``"beyond"`` stacks some centroids past the data, all but the nearest
    of them empty at the start, so that most cases move points into empty clusters."""
    gen = draw(rng())
    k = draw(st.sampled_from([4, 2, 8, 3, 6, 1]))
    n = draw(st.integers(3 * k, 3 * k + 30))
    extra = draw(st.integers(0, 10))
    tails = draw(st.sampled_from([1.0, 3.0]))  # Student t degrees of freedom, or Gaussian
    w = (gen.standard_t(tails, n + extra) if tails < 2 else gen.standard_normal(n + extra)) \
        * 10.0 ** gen.uniform(-3, 1)
    primals = {"w": w}
    if extra:
        mask = np.ones(n + extra, dtype=bool)
        mask[gen.choice(n + extra, extra, replace=False)] = False
        primals["mask"] = mask
    kind = draw(st.sampled_from(["beyond", "linear", "density", "random", "sample"]))
    # tol > 0: after a relocation the next assignment often gives back the relocated partition,
    # whose centroids are then unchanged in exact arithmetic, a squared shift of 0 that
    # scikit-learn's sequential sums and refimpl's products round to 0 or to about 1e-33 of the
    # variance; tol = 0 would leave the stop (n_iter) to that rounding. 1e-20 lies far above it
    # and far below the shift of a weight changing cluster (about (spread / n)^2).
    params = {"n_clusters": k, "max_iter": draw(st.sampled_from([300, 1, 2, 5])),
              "tol": draw(st.sampled_from([1e-4, 1e-20, 1e-2]))}
    x = _kept(w, primals.get("mask"))
    if kind in ("linear", "density", "random"):
        params["init"] = kind
    if kind == "density":
        params["quantile"] = draw(st.sampled_from(["linear", "inverted_cdf"]))
    if kind == "random":
        primals["noise"] = gen.uniform(size=w.shape)
    if kind == "sample":
        primals["init"] = gen.choice(x, k, replace=False)
    if kind == "beyond":
        span = x.max() - x.min()
        outside = draw(st.integers(min(2, k), k))  # two or more: at least one starts empty
        inside = gen.choice(x, k - outside, replace=False)
        # Half a span below the data, not a whole one: there the lowest weight would be exactly
        # as far from the first of them as from a centroid at the top, a tie left to rounding.
        primals["init"] = np.concatenate([inside, x.min() - span * (0.5 + np.arange(outside))])
    if draw(st.booleans()) and (n + extra) % 2 == 0:
        primals = {key: (v.reshape(2, -1) if v.shape == w.shape else v)
                   for key, v in primals.items()}
    return Case(primals, params)


def _fit(impl, case, ctx, names=None, **changes):
    return run_outputs(KMEANS, impl, Case(case.primals, {**case.params, **changes}), ctx, names)


def _inertia_never_increases(impl, case, ctx):
    """Inertia after ``t`` iterations, ``t = 1..6`` (tol = 0): never larger than after ``t - 1``."""
    trace = [float(_fit(impl, case, ctx, ["inertia"], max_iter=t, tol=0.0)["inertia"])
             for t in range(1, 7)]
    rises = [b - a for a, b in zip(trace, trace[1:])]
    return Err(max(0.0, max(rises)) / max(trace[0], 1e-300), "inertia rise / first inertia")


def _codes_are_nearest(impl, case, ctx):
    """Each kept weight's code is its nearest centroid, the first one on ties."""
    out = _fit(impl, case, ctx, ["codebook", "codes"])
    mask = case.primals.get("mask")
    x = _kept(ctx.rounded(case.primals["w"]), mask)
    nearest = np.argmin((x[:, None] - out["codebook"][None, :]) ** 2, axis=1)
    return Err(mismatch(_kept(out["codes"], mask), nearest), "codes")


def _affine_equivariance(impl, case, ctx):
    """``w -> a w + b`` (a = 2^4 or 2^-4): the same codes and n_iter, centroids ``a c + b``,
    inertia ``a^2 I`` (the tolerance is relative to the variance)."""
    out = _fit(impl, case, ctx)
    errors = {}
    for a in (2.0**4, 2.0**-4):
        b = 0.5 * a * float(np.std(case.primals["w"]))
        moved = {key: (a * v + b if key in ("w", "init") else v) for key, v in case.primals.items()}
        other = run_outputs(KMEANS, impl, Case(moved, case.params), ctx)
        errors[f"codes, n_iter (a = {a})"] = max(mismatch(other["codes"], out["codes"]),
                                         mismatch(other["n_iter"], out["n_iter"]))
        errors[f"codebook (a = {a})"] = rel_error(other["codebook"], a * out["codebook"] + b)
        errors[f"inertia (a = {a})"] = rel_error(other["inertia"], a * a * out["inertia"])
    return Err(max(errors.values()), max(errors, key=errors.get))


def _keep_matches_kmeans2(impl, case, ctx):
    """empty_clusters='keep', tol = 0, run to convergence: SciPy kmeans2's centroids and labels."""
    out = _fit(impl, case, ctx, ["codebook", "codes", "n_iter"], empty_clusters="keep", tol=0.0,
               max_iter=300)
    mask = case.primals.get("mask")
    x = _kept(ctx.rounded(case.primals["w"]), mask)
    u = case.primals.get("noise")
    init = _initial(x, case.params["n_clusters"], case.params.get("init", case.primals.get("init")),
                    None if u is None else _kept(u, mask), case.params.get("quantile", "linear"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "One of the clusters is empty"
        codebook, labels = kmeans2(x, init, iter=int(out["n_iter"]) + 1, minit="matrix",
                                   missing="warn")
    return Err(max(mismatch(_kept(out["codes"], mask), labels),
                   rel_error(out["codebook"], codebook)), "codebook, codes")


def _bench_case(size):
    w = np.random.default_rng(0).standard_normal(size) * 0.05
    return Case({"w": w, "init": np.linspace(w.min(), w.max(), 32)},
                {"n_clusters": 32, "max_iter": 10, "tol": 0.0})


KMEANS = register(Op(
    forward=kmeans_quantize,
    primals=(Primal("w"), Primal("mask", dtype="bool", optional=True),
             Primal("init", optional=True, differentiable=False),
             Primal("noise", optional=True, differentiable=False)),
    outputs=(Output("codebook"), Output("codes", dtype="int"), Output("inertia"),
             Output("n_iter", dtype="int")),
    cases=_kmeans_cases,
    reference=_reference_kmeans,
    properties=(
        Property("inertia never increases", _inertia_never_increases,
                 "inertia after t iterations (tol = 0) is non-increasing in t = 1..6",
                 tolerance={"float64": 1e-12, "float32": 1e-5}),
        Property("codes are the nearest centroids", _codes_are_nearest,
                 "argmin_j (x_i - c_j)^2 of the returned codebook, the first on ties",
                 tolerance={"float64": 0.0, "float32": 0.0}),
        Property("affine equivariance", _affine_equivariance,
                 "a w + b: the same codes and iterations, a c + b, a^2 inertia (tol scales with "
                 "the variance)", dtypes=("float64",)),
        Property("empty_clusters='keep' matches SciPy kmeans2", _keep_matches_kmeans2,
                 "tol = 0 to convergence: centroids and codes of scipy.cluster.vq.kmeans2 "
                 "(minit='matrix', missing='warn') from the same centroids",
                 dtypes=("float64",), refimpl_only=True),
    ),
    tolerance={"float64": 1e-10, "float32": 1e-4},
    convention="Lloyd from linear/density/random (noise)/given centroids on w[mask], as "
               "scikit-learn KMeans(algorithm='lloyd', n_init=1) from the same centroids: first "
               "centroid on ties, stop on repeated codes or shift^2 <= tol var(x), empty clusters "
               "take the farthest points; codes -1 where pruned.",
    section="9.2",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((10**5,),),
    bench_anchor=Anchor("sklearn"),
))


# -- the codebook expansion and its VJP ------------------------------------------------------------


def _expand(np_, codebook, codes):
    return np_.where(codes >= 0, codebook[np.maximum(codes, 0)], 0.0)


def _reference_shared(codebook, codes, **_):
    return _expand(np, codebook, codes)


def _naive_shared(codebook, codes, **_):
    return _expand(anp, codebook, codes)


def _reference_gradient(grad, codes, *, n_clusters, **_):
    kept = codes.ravel() >= 0
    return np.bincount(codes.ravel()[kept], weights=grad.ravel()[kept], minlength=n_clusters)


def _naive_gradient(grad, codes, *, n_clusters, **_):
    one_hot = (codes.reshape(-1, 1) == np.arange(n_clusters)).astype(float)
    return anp.dot(anp.reshape(grad, (-1,)), one_hot)


def _codes(gen, k, shape):
    """Codes in ``[-1, k)``, about a fifth pruned."""
    return np.where(gen.uniform(size=shape) < 0.2, -1, gen.integers(0, k, size=shape))


_SHAPES = [(1,), (9,), (3, 4), (2, 3, 5)]


@st.composite
def _shared_cases(draw):
    gen = draw(rng())
    k = draw(st.integers(1, 8))
    return Case({"codebook": gen.standard_normal(k),
                 "codes": _codes(gen, k, draw(st.sampled_from(_SHAPES)))})


@st.composite
def _gradient_cases(draw):
    gen = draw(rng())
    k = draw(st.integers(1, 8))
    shape = draw(st.sampled_from(_SHAPES))
    return Case({"grad": gen.standard_normal(shape), "codes": _codes(gen, k, shape)},
                {"n_clusters": k})


def _pruned_are_zero(impl, case, ctx):
    W = run_outputs(SHARED, impl, case, ctx)["out"]
    return Err(float(np.max(np.abs(W[case.primals["codes"] < 0]), initial=0.0)), "pruned weights")


def _is_the_codebook_vjp(impl, case, ctx):
    """``<t, centroid_gradient(G)>`` against the central difference of ``<G, shared_weights(c + h t)>``
    (refimpl's expansion in float64): the dot-product test of the codebook expansion."""
    grad, codes = ctx.rounded(case.primals["grad"]), case.primals["codes"]
    got = run_outputs(GRADIENT, impl, case, ctx)["out"]
    gen = np.random.default_rng(4)
    c, t, h = gen.standard_normal(got.shape), gen.standard_normal(got.shape), 1e-3
    pairing = [np.sum(grad * shared_weights(c + s * h * t, codes)) for s in (1.0, -1.0)]
    expected = (pairing[0] - pairing[1]) / (2 * h)
    scale = np.linalg.norm(t) * (np.linalg.norm(got) + np.linalg.norm(grad))
    return Err(abs(np.dot(t, got) - expected) / max(scale, 1e-300), "<t, centroid_gradient(G)>")


def _pruned_contribute_nothing(impl, case, ctx):
    grad, codes = case.primals["grad"], case.primals["codes"]
    noisy = np.where(codes < 0, 1e3 * np.random.default_rng(6).standard_normal(grad.shape), grad)
    base = run_outputs(GRADIENT, impl, case, ctx)["out"]
    other = run_outputs(GRADIENT, impl, Case({**case.primals, "grad": noisy}, case.params), ctx)["out"]
    return Err(rel_error(other, base), "gradient of the pruned")


def _bench_gradient(size):
    gen = np.random.default_rng(0)
    return Case({"grad": gen.standard_normal(size), "codes": gen.integers(-1, 32, size)},
                {"n_clusters": 32})


def _shared_bench_case(size):
    """A codebook of 32 and codes of ``size``, 90 % pruned (-1)."""
    gen = np.random.default_rng(0)
    codes = np.where(gen.uniform(size=size) < 0.1, gen.integers(0, 32, size), -1)
    return Case({"codebook": gen.standard_normal(32), "codes": codes})


SHARED = register(Op(
    forward=shared_weights,
    vjp=shared_weights_vjp,
    primals=(Primal("codebook"), Primal("codes", dtype="int64")),
    cases=_shared_cases,
    reference=_reference_shared,
    naive=_naive_shared,
    linear_in=("codebook",),
    properties=(
        Property("pruned weights are zero", _pruned_are_zero, "W = 0 where codes = -1 (never the "
                 "last centroid, as negative indexing would give)"),
    ),
    tolerance={"float64": 1e-14, "float32": 1e-6},
    convention="W = codebook[codes], 0 where codes = -1; the VJP in the codebook is "
               "centroid_gradient (a grouped sum).",
    section="9.2",
    references=REFERENCES,
    bench_case=_shared_bench_case, bench_sizes=((10**5,), (10**6,)),
    bench_anchor=Anchor("definition"),
))

GRADIENT = register(Op(
    forward=centroid_gradient,
    vjp=centroid_gradient_vjp,
    primals=(Primal("grad"), Primal("codes", dtype="int64")),
    cases=_gradient_cases,
    reference=_reference_gradient,
    naive=_naive_gradient,
    linear_in=("grad",),
    properties=(
        Property("is the VJP of the codebook expansion", _is_the_codebook_vjp,
                 "<t, centroid_gradient(G)> = d/dh <G, shared_weights(c + h t)> (central "
                 "difference, refimpl's shared_weights)"),
        Property("pruned weights contribute nothing", _pruned_contribute_nothing,
                 "grad where codes = -1 replaced by noise: the same centroid gradient"),
    ),
    tolerance={"float64": 1e-12, "float32": 1e-5},
    convention="dL/dc_j = sum of dL/dW_i over codes_i = j (a sum, not a mean); codes = -1 "
               "contribute nothing.",
    section="9.2",
    references=REFERENCES,
    bench_case=_bench_gradient,
    bench_sizes=((10**5,), (10**6,)),
    bench_anchor=Anchor("bincount"),
))
