"""Record of :mod:`refimpl.attribution.surrogate` (docs/conventions.rst, section 5.7).

Ground truth: the kernel weights from SciPy's distances (``scipy.spatial.distance``;
a zero vector has cosine similarity 0) and scikit-learn's
``Ridge(alpha, fit_intercept=True).fit(Z, y, sample_weight=weights)`` per sample,
``y`` from the naive network on the perturbed inputs. scikit-learn leaves the
intercept out of the penalty by centring ``Z`` and ``y`` on their
``sample_weight``-weighted means, as refimpl does. The property "equals the
dense weighted least-squares solution" solves the normal equations of the
intercept and coefficients together (no centring), with the weights the
implementation returned: it checks the fit apart from the kernel.
"""

from __future__ import annotations

import numpy as np
import scipy.spatial.distance
from hypothesis import strategies as st
from sklearn.linear_model import Ridge

from refimpl.attribution import LIME_DISTANCES, LIME_SPACES, lime

from ...checks import rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng
from ._networks import SMALL_BENCH_SIZES, bench_case, naive_score, network_cases

TOL = {"float64": 1e-8, "float32": 2e-3}
REFERENCES = (
    "Ribeiro et al. 2016, \"Why should I trust you?\": explaining the predictions of any "
    "classifier (KDD), LIME",
    "captum: Lime, get_exp_kernel_similarity_function; scikit-learn: Ridge (sample_weight)",
)


def _distance(u, v, kind):
    if kind == "euclidean":
        return scipy.spatial.distance.euclidean(u, v)
    if not np.any(u) or not np.any(v):
        return 1.0  # similarity 0 (scipy's cosine is undefined for a zero vector)
    return scipy.spatial.distance.cosine(u, v)


def _perturbed(x, samples, feature_mask, baseline):
    """``(N, S, *x.shape[1:])``: every sample with every perturbation applied."""
    kept = samples if feature_mask is None else samples[:, feature_mask.reshape(-1)]
    kept = kept.reshape((samples.shape[0],) + x.shape[1:])
    return np.where(kept[None], x[:, None], baseline)


def _reference(layers, x, target, samples, feature_mask=None, *, kernel_width=1.0, alpha=1.0,
               baseline=0.0, distance="cosine", space="input"):
    """Per sample: ``y`` from the naive network, SciPy's distances, scikit-learn's Ridge; the
    outputs and ``scores`` ``(N, S)``."""
    perturbed = _perturbed(x, samples, feature_mask, baseline)
    Z = samples.astype(np.float64)
    ones = np.ones(samples.shape[1])
    results = []
    for n in range(x.shape[0]):
        y = naive_score(np, layers, perturbed[n], np.full(samples.shape[0], target[n]))
        d = np.array([_distance(x[n].ravel(), p.ravel(), distance) if space == "input"
                      else _distance(ones, z, distance) for p, z in zip(perturbed[n], Z)])
        w = np.exp(-d ** 2 / (2 * kernel_width ** 2))
        model = Ridge(alpha=alpha).fit(Z, y, sample_weight=w)
        results.append((model.coef_, model.intercept_, w, y))
    coefficients, intercept, weights, scores = (np.array(r) for r in zip(*results))
    spread = coefficients if feature_mask is None else coefficients[:, feature_mask.reshape(-1)]
    return {"attribution": spread.reshape(x.shape), "coefficients": coefficients,
            "intercept": intercept, "weights": weights, "scores": scores}


def _bench_case(size):
    """The benchmarks' CNN (:func:`._networks.bench_case`), 16 features (4 x 4 patches of all
    channels), 16 random coalitions."""
    case = bench_case(size)
    side = size[1]
    patch = np.arange(side) // 4
    mask = (patch[:, None] * (side // 4) + patch[None, :]) % 16
    samples = np.random.default_rng(1).random((16, 16)) < 0.5
    return Case({**case.primals, "samples": samples,
                 "feature_mask": np.ascontiguousarray(np.broadcast_to(mask, (3, side, side)))},
                {"kernel_width": 1.0, "alpha": 1.0, "baseline": 0.0, "distance": "cosine",
                 "space": "input"})


@st.composite
def _cases(draw):
    primals = draw(network_cases(batchnorm=None, max_batch=2))
    gen = draw(rng())
    shape = primals["x"].shape[1:]
    if draw(st.booleans()):
        features = draw(st.integers(1, 4))
        primals["feature_mask"] = gen.integers(0, features, shape)
    else:
        features = int(np.prod(shape))
    primals["samples"] = gen.random((draw(st.integers(3, 12)), features)) < 0.5
    return Case(primals, {"kernel_width": draw(st.sampled_from([0.5, 1.0, 3.0])),
                          "alpha": draw(st.sampled_from([0.1, 1.0])),
                          "baseline": draw(st.sampled_from([0.0, 0.5])),
                          "distance": draw(st.sampled_from(LIME_DISTANCES)),
                          "space": draw(st.sampled_from(LIME_SPACES))})


_FIT = ("attribution", "coefficients", "intercept")


def _matches_ridge(impl, case, ctx):
    """The fit against scikit-learn's, relative to at least the RMS of the scores ``y`` (a
    coefficient that should be 0 is held to the rounding of ``y``, not to 0/0)."""
    got = run_outputs(OP, impl, case, ctx, _FIT)
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    expected = _reference(**p, **case.params)
    errors = {}
    for n, scores in enumerate(expected["scores"]):
        scale = np.sqrt(np.mean(scores ** 2))
        errors.update({f"{name} of sample {n}": rel_error(got[name][n], expected[name][n], scale)
                       for name in _FIT})
    return worst(errors)


def _dense_least_squares(impl, case, ctx):
    """Coefficients and intercept solve ``[1 Z]^T W [1 Z] c + alpha [0 I] c = [1 Z]^T W y``
    with the implementation's own weights ``W`` (dense normal equations, NumPy), relative to
    at least the RMS of ``y``."""
    got = run_outputs(OP, impl, case, ctx, ("coefficients", "intercept", "weights"))
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    samples = case.primals["samples"]
    perturbed = _perturbed(p["x"], samples, p.get("feature_mask"), case.params["baseline"])
    design = np.column_stack([np.ones(samples.shape[0]), samples.astype(np.float64)])
    penalty = case.params["alpha"] * np.diag([0.0] + [1.0] * samples.shape[1])
    errors = {}
    for n, w in enumerate(got["weights"]):
        y = naive_score(np, p["layers"], perturbed[n], np.full(samples.shape[0], p["target"][n]))
        solution = np.linalg.solve(design.T @ (w[:, None] * design) + penalty, design.T @ (w * y))
        fit = np.concatenate([[got["intercept"][n]], got["coefficients"][n]])
        errors[f"sample {n}"] = rel_error(fit, solution, scale=np.sqrt(np.mean(y ** 2)))
    return worst(errors)


OP = register(Op(
    forward=lime,
    primals=(Primal("layers", dtype="tree", differentiable=False), Primal("x"),
             Primal("target", dtype="int64"), Primal("samples", dtype="bool"),
             Primal("feature_mask", dtype="int64", optional=True)),
    # The fit is compared by "matches scikit-learn's Ridge" with the scores' scale: a coefficient
    # that is 0 (a feature the score ignores) has no relative accuracy.
    outputs=(Output("attribution", compared=False), Output("coefficients", compared=False),
             Output("intercept", compared=False), Output("weights")),
    cases=_cases,
    reference=_reference,
    properties=(Property("matches scikit-learn's Ridge", _matches_ridge,
                         "attribution, coefficients and intercept equal Ridge(alpha).fit(Z, y, "
                         "sample_weight) per sample, relative to the scores' RMS at least"),
                Property("equals the dense weighted least-squares solution", _dense_least_squares,
                         "intercept and coefficients solve the normal equations of the weighted "
                         "ridge problem (intercept unpenalised) with the returned weights"),),
    tolerance=TOL,
    convention="lime(layers, x, target, samples, feature_mask=None, kernel_width=1.0, "
               "alpha=1.0, baseline=0.0, distance='cosine', space='input'): samples (S, F) "
               "boolean keep the features z_s (feature_mask groups elements into F features, "
               "default one per element), removed ones take baseline; y_s = f_t; weights "
               "exp(-d_s^2 / (2 kernel_width^2)) with d_s the cosine (0 similarity for a zero "
               "vector) or Euclidean distance between x and the perturbed input (space='input', "
               "captum) or between 1 and z_s ('interpretable', the lime package); per sample the "
               "fit of Ridge(alpha) with sample_weight (unpenalised intercept): attribution "
               "(coefficients spread over each feature's elements), coefficients (N, F), "
               "intercept (N,), weights (N, S).",
    section="5.7",
    references=REFERENCES,
    bench_case=_bench_case, bench_sizes=SMALL_BENCH_SIZES, bench_anchor=Anchor("sklearn"),
))
