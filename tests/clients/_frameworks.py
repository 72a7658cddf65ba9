"""What the framework client suites share: the calling convention, checks and planted bugs.

A client suite writes a candidate per op with the framework's own functions and takes
its VJP from the framework's autodiff. ``verify`` calls a VJP as
``vjp(*required primals, *cotangents, **optional primals, **params)``, one cotangent per
differentiable output; :func:`split_vjp_call` takes such a call apart and
:func:`differentiable_outputs` picks the outputs the cotangents belong to, so that
``torch.autograd.grad`` and ``jax.vjp`` are wrapped once per framework, not once per op.

:class:`Client` records how one op is checked: its candidate, the inputs it is checked on
when the framework only represents part of the op's domain, and the checks left out with
the reason. :class:`PlantedBug` is a realistic framework mistake and the check that must
name it. Both suites run the same profile (``REFIMPL_VERIFY_PROFILE``): the quick
profile's examples under ``ci``, so that the suites stay inside CI's time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np
from hypothesis import strategies as st

import verify
from verify._tree import is_array, tree_leaves, tree_map
from verify.candidate import candidate_properties
from verify.engine import PROFILES
from verify.registry import Op
from verify.strategies import lapack_reflector_cases
from verify.testing import test_profile

DTYPES = ("float64", "float32")


def max_examples() -> int:
    """Examples per check: the quick profile's under ``ci`` (the default), else the profile's."""
    profile = test_profile()
    return PROFILES["quick" if profile == "ci" else profile]["max_examples"]


FAMILIES = ("linalg", "conv", "flows", "vi", "embedding", "analysis", "compression")

# The ops of FAMILIES that the client suites do not check, and why (nn and attribution are
# test_torch_nn.py's and test_jax_nn.py's).
_NO_FRAMEWORK_OP = "no PyTorch or JAX counterpart: {}"
WITHOUT_COUNTERPART = {
    "bipartite_matching": _NO_FRAMEWORK_OP.format("an assignment problem (scipy's linear_sum_assignment)"),
    "ibd": _NO_FRAMEWORK_OP.format("interpretable basis decomposition is an algorithm, not an op"),
    "huffman_code": _NO_FRAMEWORK_OP.format("entropy coding"),
    "huffman_encode": _NO_FRAMEWORK_OP.format("entropy coding"),
    "huffman_decode": _NO_FRAMEWORK_OP.format("entropy coding"),
    "relative_index_encode": _NO_FRAMEWORK_OP.format("sparse index coding"),
    "relative_index_decode": _NO_FRAMEWORK_OP.format("sparse index coding"),
    "compression_report": _NO_FRAMEWORK_OP.format("a size account of the coded model"),
    "kmeans_quantize": _NO_FRAMEWORK_OP.format("no k-means in either core library"),
    "tsne_affinities": _NO_FRAMEWORK_OP.format("the perplexity search is an algorithm"),
    "tsne": _NO_FRAMEWORK_OP.format("the t-SNE optimiser is an algorithm"),
    "bgmm_cavi": _NO_FRAMEWORK_OP.format("scikit-learn's BayesianGaussianMixture"),
    "bgmm_elbo": _NO_FRAMEWORK_OP.format("scikit-learn's BayesianGaussianMixture"),
    "bgmm_predict_proba": _NO_FRAMEWORK_OP.format("scikit-learn's BayesianGaussianMixture"),
    "bgmm_predict": _NO_FRAMEWORK_OP.format("scikit-learn's BayesianGaussianMixture"),
    "normal_cavi": _NO_FRAMEWORK_OP.format("closed-form coordinate ascent"),
}


def assert_every_op_accounted_for(clients: Mapping, families=FAMILIES,
                                  without: Mapping = WITHOUT_COUNTERPART) -> None:
    """Every op of ``families`` has a client or a reason in ``without``, not both."""
    ops = {op.name for op in verify.registry.ops() if op.family in families}
    assert not set(clients) & set(without)
    assert ops == set(clients) | set(without), (
        sorted(ops - set(clients) - set(without)), sorted(set(clients) | set(without) - ops))


# -- the calling convention ---------------------------------------------------------------
# A network primal (``layers``) is a list of refimpl.nn layers, a flow a layer or a
# Sequential of them: their array fields are the candidate's arrays, and their cotangent is
# the same structure with every array replaced by its cotangent.


def layer_arrays(value):
    """What autodiff differentiates of a primal: the arrays of a network or a flow (every array
    field of every layer, in :func:`verify._tree.tree_leaves` order, a list), any other primal
    as it is."""
    return value if value is None or is_array(value) else tree_leaves(value)


def with_layer_arrays(value, arrays):
    """``value`` with the part :func:`layer_arrays` returned replaced by ``arrays``."""
    if value is None or is_array(value):
        return arrays
    leaves = iter(arrays)
    return tree_map(lambda _: next(leaves), value)



def split_vjp_call(op: Op, args: tuple, kwargs: dict) -> tuple[dict, list, dict]:
    """``(primals by name, cotangents, params)`` of a call ``vjp(*required, *cotangents, **rest)``."""
    required = [p.name for p in op.primals if not p.optional]
    optional = {p.name for p in op.primals if p.optional}
    primals = dict(zip(required, args[:len(required)]))
    primals.update({k: v for k, v in kwargs.items() if k in optional})
    params = {k: v for k, v in kwargs.items() if k not in optional}
    return primals, list(args[len(required):]), params


def call_forward(op: Op, forward: Callable, primals: dict, params: dict):
    """``forward(*required, **optional, **params)`` from primals by name."""
    args = [primals[p.name] for p in op.primals if not p.optional]
    optional = {p.name: primals[p.name] for p in op.primals if p.optional and p.name in primals}
    return forward(*args, **optional, **params)


def differentiable_outputs(op: Op, result) -> list:
    """The outputs that take a cotangent, in output order (a single output is the result)."""
    if len(op.outputs) == 1:
        return [result]
    return [value for value, output in zip(result, op.outputs) if output.is_differentiable]


def differentiable_primals(op: Op, primals: dict) -> list[str]:
    """Names of the given primals that take a cotangent."""
    return [p.name for p in op.primals
            if p.name in primals and p.is_differentiable and _floating(primals[p.name])]


def _floating(value) -> bool:
    """A tree, or an array of a floating dtype in any framework (``torch.float32``,
    ``float32``): a boolean mask given for a float primal takes no cotangent."""
    return not is_array(value) or "float" in str(value.dtype)


# -- autodiff as the VJP -------------------------------------------------------------------


def torch_autograd_vjp(op_name: str, forward: Callable) -> Callable:
    """The VJP of ``forward`` by ``torch.autograd.grad``, in verify's calling convention.

    A network primal (a list of layers) is differentiated in every array of every layer and
    its cotangent is the same list of layers holding the gradients. Cotangents of primals the
    outputs do not depend on are zeros (``materialize_grads``); an output autograd does not
    track (a constant log-determinant, ``x.new_zeros(n)``) contributes nothing.
    """
    import torch

    op = verify.get_op(op_name)

    def vjp(*args, **kwargs):
        primals, cotangents, params = split_vjp_call(op, args, kwargs)
        wrt = differentiable_primals(op, primals)
        leaves = {**primals, **{n: tree_map(lambda t: t.detach().requires_grad_(), primals[n])
                                for n in wrt}}
        with torch.enable_grad():  # the caller may run under no_grad (captum, inference code)
            outputs = differentiable_outputs(op, call_forward(op, forward, leaves, params))
            tracked = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
            inputs = [t for n in wrt for t in tree_leaves(leaves[n])]
            grads = iter(torch.autograd.grad([o for o, _ in tracked], inputs,
                                             [c for _, c in tracked], allow_unused=True,
                                             materialize_grads=True))
        return {n: tree_map(lambda _: next(grads), leaves[n]) for n in wrt}

    vjp.__name__ = vjp.__qualname__ = f"{forward.__name__}_vjp"
    return vjp


def jax_autodiff_vjp(op_name: str, forward: Callable, jit: bool = True) -> Callable:
    """The VJP of ``forward`` by ``jax.vjp``, in verify's calling convention.

    Under ``jax.jit``: one compilation per shape, dtype and set of params (static: axes,
    callables, ...); else op by op (each primitive compiled once per shape). A network or flow
    primal (layers, not JAX types: ``jit=False`` only) is differentiated in its layers' arrays
    (a list) and its cotangent is the same structure of layers holding the gradients.
    """
    import jax

    op = verify.get_op(op_name)

    def pullback(values, fixed, cotangents, *, wrt, params):
        def outputs(*free):
            primals = {**fixed, **{n: with_layer_arrays(fixed.get(n), f) for n, f in zip(wrt, free)}}
            return differentiable_outputs(op, call_forward(op, forward, primals, dict(params)))

        return jax.vjp(outputs, *values)[1](cotangents)

    if jit:
        pullback = functools.partial(jax.jit, static_argnames=("wrt", "params"))(pullback)

    def vjp(*args, **kwargs):
        primals, cotangents, params = split_vjp_call(op, args, kwargs)
        wrt = tuple(differentiable_primals(op, primals))
        # A network or flow stays in fixed: its layers are rebuilt around the traced arrays.
        fixed = {k: v for k, v in primals.items() if k not in wrt or not is_array(v)}
        grads = pullback(tuple(layer_arrays(primals[n]) for n in wrt), fixed, cotangents,
                         wrt=wrt, params=tuple(sorted(params.items())))
        return {n: with_layer_arrays(primals[n], g) for n, g in zip(wrt, grads)}

    vjp.__name__ = vjp.__qualname__ = f"{forward.__name__}_vjp"
    return vjp


def jax_jit(fn: Callable) -> Callable:
    """``fn(*arrays, **keywords)`` under ``jax.jit``: keyword arrays traced, other keywords static.

    One compilation per shape, dtype and set of static keywords (``axes``, ``perm``, ...);
    the wrapper keeps ``fn``'s name, so that reproducers import it.
    """
    import functools

    import jax

    @functools.partial(jax.jit, static_argnames=("array_names", "static"))
    def compiled(args, arrays, *, array_names, static):
        return fn(*args, **dict(zip(array_names, arrays)), **dict(static))

    @functools.wraps(fn)
    def call(*args, **kwargs):
        arrays = {k: v for k, v in kwargs.items() if isinstance(v, jax.Array)}
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k not in arrays))
        return compiled(args, tuple(arrays.values()), array_names=tuple(arrays), static=static)

    return call


def jax_client(forward: Callable, op: str | None = None, *, vjp: bool = True, jit: bool = True,
               cases: Callable | None = None, shapes: int = 3, static_params: bool = True,
               **fields) -> Client:
    """``forward`` as the JAX client of ``op`` (default: its name): under :func:`jax_jit`, with
    ``jax.vjp`` (jitted too) as the VJP, checked on cases of at most ``shapes`` compilation
    keys (:func:`few_shapes`). ``jit=False`` for a candidate taking layers (not JAX types)."""
    op = op or forward.__name__
    pool = few_shapes(cases or verify.get_op(op).cases, shapes, static_params=static_params)
    return Client(op, jax_jit(forward) if jit else forward,
                  jax_autodiff_vjp(op, forward, jit) if vjp else None, cases=pool, **fields)


# -- conv and compression: index arithmetic that reads the same in torch and JAX --------------


def grid_axes(X, axes) -> tuple:
    """The grid axes of a convolution of ``X``, non-negative (all of them for ``axes=None``)."""
    return tuple(range(X.ndim)) if axes is None else tuple(a % X.ndim for a in axes)


def kernel_on(K, X, axes):
    """``K``'s grid axes placed at ``axes`` of ``X``, size 1 on the batch axes (broadcasting)."""
    shape = [1] * X.ndim
    for a, n in zip(axes, K.shape):
        shape[a] = n
    return K.reshape(shape)


def pruned_count(n: int, sparsity: float, count: str) -> int:
    """``round(s n)`` pruned as ``torch.nn.utils.prune`` counts (Python's round, half to
    even), or ``n - round((1 - s) n)`` (``count="kept"``: the kept ones rounded)."""
    return round(sparsity * n) if count == "pruned" else n - round((1.0 - sparsity) * n)


# -- attribution: refine, arithmetic that reads the same in torch and JAX ---------------------


def refine(attribution, probability):
    """The attribution times its probability, one per sample broadcast over its entries."""
    extra = attribution.ndim - probability.ndim
    return attribution * probability.reshape(probability.shape + (1,) * extra)


# -- flows: the affine coupling's conventions (docs/conventions.rst, section 3.2) ------------
# Plain slicing and elementwise calls that read the same in torch and JAX: the framework
# passes its namespace ``xp`` (exp, tanh, arctan) and its sigmoid.


def coupling_split(h, split: str):
    """``(t, u)``, the shift and the unconstrained scale, from the conditioner's ``h`` (n, 2m)."""
    if split == "interleaved":  # Glow's: channels alternate
        return h[:, 0::2], h[:, 1::2]
    m = h.shape[1] // 2
    first, second = h[:, :m], h[:, m:]
    return (first, second) if split == "shift_first" else (second, first)


def coupling_scale(u, scale: str, clamp: float, xp, sigmoid: Callable):
    """``s`` of ``u`` in the record's ``scale`` convention, as each library writes it."""
    if scale in ("nflows", "glow"):  # nflows adds a floor of 1e-3, Glow none
        return sigmoid(u + 2.0) + (1e-3 if scale == "nflows" else 0.0)
    if scale == "exp":  # Real NVP
        return xp.exp(u)
    if scale == "tanh":  # FrEIA's soft clamp
        return xp.exp(clamp * xp.tanh(u))
    return xp.exp(clamp * 0.636 * xp.arctan(u))  # FrEIA's "ATAN" soft clamp


# -- vi: the normal model's expected log joint (section 6.1) -----------------------------------


def normal_expected_log_joint(x, mean, var, e_lam, e_log_lam, *, mu0, kappa0, a0, b0):
    """``E_q`` of ``log N(x | mu, 1/lam) + log N(mu | mu0, 1/(kappa0 lam)) + log Gamma(lam | a0,
    b0)`` from ``E[lam]``, ``E[log lam]`` and ``q(mu) = N(mean, var)``, the constants of
    improper factors (``kappa0 = 0``, ``b0 = 0``) dropped: arithmetic and ``.sum()``, which
    read the same on torch tensors and JAX arrays; the suites add the entropies their way."""
    n, log_2pi = x.shape[0], math.log(2 * math.pi)
    e_sq = ((x - mean) ** 2).sum() + n * var
    elbo = 0.5 * n * (e_log_lam - log_2pi) - 0.5 * e_lam * e_sq
    elbo = elbo + 0.5 * e_log_lam - 0.5 * kappa0 * e_lam * ((mean - mu0) ** 2 + var)
    if kappa0 > 0:
        elbo = elbo + 0.5 * (math.log(kappa0) - log_2pi)
    elbo = elbo + (a0 - 1.0) * e_log_lam - b0 * e_lam
    if b0 > 0:
        elbo = elbo + a0 * math.log(b0) - math.lgamma(a0)
    return elbo


# -- flows of refimpl layers (sections 3.6-3.8) ------------------------------------------------
# A flow is a layer or a Sequential of layers, each read by its class name and fields and run
# by the framework's candidate of its op: the client module ``ops`` holds them under the
# records' names in torch and JAX alike; ``xp`` (torch or jnp) makes the per-sample zeros.


def _layer_op(ops, name: str, inverse: bool) -> Callable:
    return getattr(ops, f"{name}_inverse" if inverse else name)


def _bijector_layer(ops, layer, x, inverse):
    """``(output, logabsdet)`` of a layer wrapping another family's op (section 3.7): the op,
    and its slogdet's ``logabsdet`` (the same for every sample)."""
    kind = type(layer).__name__
    if kind == "Glow1x1":
        out = _layer_op(ops, "glow_conv1x1", inverse)(x, layer.L, layer.U, layer.s, perm=layer.perm)
        return out, ops.glow_conv1x1_slogdet(layer.s, shape=tuple(x.shape[2:]), perm=layer.perm)[1]
    if kind == "CircularConv":  # each sample convolved over all its axes
        out = _layer_op(ops, "circular_conv", inverse)(x, layer.K, axes=tuple(range(1, x.ndim)))
        return out, ops.circular_conv_slogdet(layer.K)[1]
    if kind == "PeriodicConv":
        return _layer_op(ops, "periodic_conv", inverse)(x, layer.K), ops.periodic_conv_slogdet(layer.K)[1]
    # SVDLinear: z = x W^T, svd_linear on the samples as columns
    factors = (layer.Vu, layer.s, layer.Vv)
    return _layer_op(ops, "svd_linear", inverse)(*factors, x.T).T, ops.svd_linear_slogdet(*factors)[1]


def flow_layer(ops, xp, layer, x, inverse: bool = False):
    """``(output, logdet)`` of one refimpl flow layer by the framework's candidates."""
    kind = type(layer).__name__
    if kind in ("AdditiveCoupling", "AffineCoupling"):
        settings = {k: getattr(layer, k) for k in ("scale", "split", "clamp") if hasattr(layer, k)}
        op = _layer_op(ops, "additive_coupling" if kind == "AdditiveCoupling" else "affine_coupling",
                       inverse)
        return op(x, layer.mask, layer.conditioner, **settings)
    if kind in ("Permutation", "Reverse"):
        perm = layer.perm if kind == "Permutation" else tuple(range(x.shape[1] - 1, -1, -1))
        return _layer_op(ops, "permutation", inverse)(x, perm=perm)
    if kind == "ActNorm":
        return _layer_op(ops, "actnorm", inverse)(x, layer.log_scale, layer.shift)
    if kind == "LULinear":
        return _layer_op(ops, "lu_linear", inverse)(x, layer.lower, layer.upper,
                                                    layer.unconstrained_diag, layer.bias)
    if kind == "HouseholderFlow":
        return _layer_op(ops, "householder_flow", inverse)(x, layer.V)
    out, logabsdet = _bijector_layer(ops, layer, x, inverse)
    return out, xp.broadcast_to(-logabsdet if inverse else logabsdet, (x.shape[0],))


def run_flow(ops, xp, flow, x, inverse: bool = False):
    """``(output, logdet)`` of a layer or a Sequential (``layers[0]`` first, the inverse last
    layer first), the layers' log-determinants summed."""
    layers = list(flow.layers) if type(flow).__name__ == "Sequential" else [flow]
    logdet = xp.zeros(x.shape[0], dtype=x.dtype)
    for layer in reversed(layers) if inverse else layers:
        x, layer_logdet = flow_layer(ops, xp, layer, x, inverse)
        logdet = logdet + layer_logdet
    return x, logdet


def flow_candidates(ops, xp, base_log_prob: Callable) -> tuple:
    """A framework's ``flow_forward``, ``flow_inverse``, ``log_prob`` and ``sample``:
    :func:`run_flow` both ways and ``base_log_prob(z)``, its ``log N(z_n; 0, I)`` per sample."""
    def flow_forward(flow, x):
        return run_flow(ops, xp, flow, x)

    def flow_inverse(flow, z):
        return run_flow(ops, xp, flow, z, inverse=True)

    def log_prob(flow, x):
        z, logdet = flow_forward(flow, x)
        return base_log_prob(z) + logdet

    def sample(flow, z):
        x, logdet = flow_inverse(flow, z)
        return x, base_log_prob(z) - logdet

    return flow_forward, flow_inverse, log_prob, sample


# -- inputs a framework represents

LAPACK_LEFT_OUT = {
    "transpose is the reversed product": "reverses the rows of V, which leaves LAPACK form",
    "scale invariance": "draws reflectors outside LAPACK form",
    "gradient orthogonal to v": "draws reflectors outside LAPACK form",
    # torch differentiates only the free entries (A.grad = tril(dV^T, -1)); refimpl's dV
    # also has the structural ones (test_torch.py: test_householder_gradient_is_the_free_part_of_ours).
    "vjp: autograd": "compares the structural entries of dV",
    "vjp: matches refimpl": "compares the structural entries of dV",
}


def lapack_matrix_cases():
    """``householder_matrix`` inputs in LAPACK form: the reflectors and tau of dgeqrf."""
    return lapack_reflector_cases().map(
        lambda case: verify.Case({"V": case.primals["V"], "tau": case.primals["tau"]}))


def least_squares_cases():
    return verify.get_op("channel_regression").cases().filter(lambda case: "l1" not in case.params)


# -- few shapes, for frameworks that compile per shape ---------------------------------------


def _draw(strategy, n: int) -> list:
    """The first ``n`` cases hypothesis draws from ``strategy``, deterministically."""
    from hypothesis import HealthCheck, Phase, given, settings

    drawn = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case):
        drawn.append(case)

    collect()
    return drawn


def compilation_key(case: verify.Case, static_params: bool = True) -> str:
    """What a jit compilation depends on: the primals' shapes and dtypes, and every param
    (static arguments: axes, shapes, step sizes, the target's bound methods) unless
    ``static_params`` is False (a candidate that passes its params as arrays)."""
    leaves = {name: [(np.shape(a), np.asarray(a).dtype.str) for a in tree_leaves(v)]
              for name, v in case.primals.items()}
    params = sorted(case.params.items(), key=lambda kv: kv[0]) if static_params else []
    return repr((sorted(leaves.items()), params))


def few_shapes(cases: Callable, shapes: int = 3, pool: int = 60,
               static_params: bool = True) -> Callable:
    """``cases`` drawn once, ``pool`` of them, keeping those of the first ``shapes``
    compilation keys: under ``jax.jit`` an op's check then compiles at most ``shapes``
    times per function instead of once per example (each compilation of a linear-algebra
    op costs 0.5-1 s of CPU; an example costs milliseconds)."""
    @functools.cache
    def strategy():
        keys: list[str] = []
        kept = []
        for case in _draw(cases(), pool):
            key = compilation_key(case, static_params)
            if key not in keys and len(keys) < shapes:
                keys.append(key)
            if key in keys:
                kept.append(case)
        return st.sampled_from(kept)

    return strategy


# -- how an op is checked -----------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """One op's candidate in a framework, and the domain it is checked on.

    ``cases`` replaces the op's strategy where the framework represents only part of the
    domain (LAPACK-form reflectors, least squares without the lasso); ``left_out`` maps
    the checks that cannot apply to the reason, so that every other check runs; ``rtol``
    maps a dtype to the tolerance the framework is held to where it documents a looser one
    than the record's (captum's float32 quadrature weights inside float64 attributions).
    """

    op: str
    forward: Callable
    vjp: Callable | None = None
    cases: Callable | None = None
    left_out: Mapping[str, str] = field(default_factory=dict)
    rtol: Mapping[str, float] = field(default_factory=dict)

    def properties(self, dtype: str) -> list[str]:
        """The checks of this op in ``dtype`` less those left out."""
        props = candidate_properties(verify.get_op(self.op))
        unknown = sorted(set(self.left_out) - {p.name for p in props})
        if unknown:
            raise ValueError(f"{self.op}: left_out names unknown checks {unknown}")
        return [p.name for p in props if dtype in p.dtypes and p.name not in self.left_out]


def check_client(client: Client, framework: str, dtype: str, **changes) -> verify.Report:
    """:func:`verify.check` of ``client`` (fields replaced by ``changes``) on ``framework``'s arrays."""
    options = {"forward": client.forward, "vjp": client.vjp, "cases": client.cases,
               "properties": client.properties(dtype), "rtol": client.rtol.get(dtype), **changes}
    return verify.check(options.pop("forward"), client.op, dtype=dtype, from_numpy=framework,
                        max_examples=max_examples(), **options)


def assert_passes(client: Client, framework: str, dtype: str) -> verify.Report:
    report = check_client(client, framework, dtype)
    assert report.passed, str(report)
    # A check skipped for want of a vjp runs no example: only left_out may remove one.
    assert all(r.examples > 0 for r in report.results), str(report)
    return report


@dataclass(frozen=True)
class PlantedBug:
    """A realistic mistake in a framework implementation of ``op`` and the checks that catch it.

    ``forward``/``vjp`` replace the client's (``None`` keeps the correct one);
    ``caught_by`` are properties that must fail (each named in the report); ``cases``, where
    given, replaces the client's: the inputs on which the bug shows (one of a param's values).
    """

    op: str
    description: str
    caught_by: tuple[str, ...]
    forward: Callable | None = None
    vjp: Callable | None = None
    dtype: str = "float64"
    cases: Callable | None = None


def assert_caught(bug: PlantedBug, client: Client, framework: str,
                  autodiff: Callable | None = None) -> verify.Report:
    """The checks of ``bug.caught_by`` run on the client with the bug planted: each fails,
    with a message and a counterexample (the other checks are the passing client's).

    ``autodiff(op, forward)`` is the framework's VJP of a planted forward, taken where the
    client has a VJP and the bug plants none (a wrong forward's gradient is wrong too).
    """
    if autodiff is not None and bug.forward is not None and bug.vjp is None and client.vjp:
        bug = replace(bug, vjp=autodiff(bug.op, bug.forward))
    changes = {k: v for k, v in (("forward", bug.forward), ("vjp", bug.vjp), ("cases", bug.cases))
               if v is not None}
    unknown = set(bug.caught_by) - set(client.properties(bug.dtype))
    assert not unknown, f"{bug.description}: {sorted(unknown)} are not checks of the client"
    report = check_client(client, framework, bug.dtype, properties=list(bug.caught_by),
                          shrink=False, **changes)
    failed = {r.property for r in report.failures}
    missing = set(bug.caught_by) - failed
    assert not missing, f"{bug.description}: not caught by {sorted(missing)}\n{report}"
    for r in report.failures:
        assert r.message and r.counterexample, r
    return report
