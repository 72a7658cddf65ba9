"""Records of :mod:`refimpl.nn.attention` (docs/conventions.rst, section 4.9).

Ground truth is attention written from its definition in NumPy (autograd.numpy
for the naive forwards): ``exp(s)`` over the allowed keys divided by its row
sum (no shift: the cases' logits are moderate; a row without allowed keys is
0), ``s = c q k^T + B``; multi-head attention loops over the heads with
PyTorch's packed projection and mask layouts.

``scaled_dot_product_attention`` declares its ``attn_mask`` a float primal (the
generic checks differentiate it); PyTorch's single ``attn_mask`` argument also
takes booleans, and the properties exercise those on cases of their own:
ground truth with boolean and causal masks (fully masked rows included),
rows of the weights summing to 1 (``v`` the identity, so the output is the
weights), an all-True mask against none, ``is_causal`` against
``tril(ones(L, S))`` with ``L != S``, ``-inf`` float masks against boolean
ones, keys and values permuted together, and the VJP of ``q, k, v`` with a
boolean mask against autograd.
"""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.attention import (
    memory_readout,
    memory_readout_vjp,
    multi_head_attention,
    multi_head_attention_vjp,
    scaled_dot_product_attention,
    scaled_dot_product_attention_vjp,
)

from ...checks import cotangent_label, rel_error, run_outputs, run_vjp, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng
from .categorical import softmax_definition

TOL = {"float64": 1e-11, "float32": 5e-5}
REFERENCES = (
    "Vaswani et al. 2017, Attention is all you need (NeurIPS, arXiv:1706.03762)",
    "PyTorch documentation, torch.nn.functional.scaled_dot_product_attention",
    "PyTorch documentation, torch.nn.MultiheadAttention",
)


# -- ground truth ------------------------------------------------------------------------------


def attention_weights_reference(np_, q, k, scale, allowed=None, bias=None):
    """``exp(s - m) / rowsum`` over the allowed keys, ``s = scale q k^T + bias``; empty rows 0.

    ``m``, the row's largest allowed logit, cancels in the ratio; it keeps ``exp`` from
    underflowing to an all-zero row (or overflowing) when the logits are far from 0.
    """
    s = np_.matmul(q, np_.swapaxes(k, -1, -2)) * scale
    if bias is not None:
        s = s + bias  # exp(-inf) = 0: -inf entries mask by the definition itself
    m = np_.max(s if allowed is None else np_.where(allowed, s, -np.inf), axis=-1, keepdims=True)
    s = s - np_.where(np_.isfinite(m), m, 0.0)  # a row with nothing allowed keeps its zeros
    e = np_.exp(s) if allowed is None else np_.where(allowed, np_.exp(s), 0.0)
    z = np_.sum(e, axis=-1, keepdims=True)
    return e / np_.where(z > 0, z, 1.0)


def attention_reference(np_, q, k, v, attn_mask=None, is_causal=False, scale=None):
    """PyTorch's SDPA from the definition: boolean mask True = may attend, float mask added."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    allowed = np.tril(np.ones((q.shape[-2], k.shape[-2]), bool)) if is_causal else None
    boolean = attn_mask is not None and attn_mask.dtype == bool
    p = attention_weights_reference(np_, q, k, scale, attn_mask if boolean else allowed,
                                    None if boolean else attn_mask)
    return np_.matmul(p, v)


def _allowed(case):
    """The boolean "may attend" mask of an SDPA case (all True without mask or causality)."""
    q, k = case.primals["q"], case.primals["k"]
    L, S = q.shape[-2], k.shape[-2]
    mask = case.primals.get("attn_mask")
    if case.params.get("is_causal"):
        return np.tril(np.ones((L, S), bool))
    if mask is None:
        return np.ones((L, S), bool)
    return mask if mask.dtype == bool else mask != -np.inf


# -- cases -------------------------------------------------------------------------------------

# Batch (and head) axes of q, k and v that broadcast against each other.
_BATCHES = [((), (), ()), ((2,), (2,), (2,)), ((2, 1), (1, 3), (1,)), ((3,), (), (3,)),
            ((1, 2), (2, 2), ())]


@st.composite
def _sdpa_cases(draw, masks=("none", "float", "causal"), min_diagonal=False):
    """q, k, v with broadcasting batches; a mask of a kind drawn from ``masks``.

    Kinds: ``"none"``, ``"float"`` (Gaussian, of a broadcastable shape),
    ``"bool"`` (about 70 % True, in two cases of three a fully masked row),
    ``"causal"`` (``is_causal=True``). ``min_diagonal``: ``L != S`` always.
    """
    gen = draw(rng())
    bq, bk, bv = draw(st.sampled_from(_BATCHES))
    L, S = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    if min_diagonal and L == S:
        S += 1
    E, Ev = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    primals = {"q": gen.standard_normal(bq + (L, E)), "k": gen.standard_normal(bk + (S, E)),
               "v": gen.standard_normal(bv + (S, Ev))}
    params = {"scale": float(gen.uniform(0.2, 1.5))} if draw(st.booleans()) else {}
    kind = draw(st.sampled_from(masks))
    if kind == "causal":
        params["is_causal"] = True
    elif kind != "none":
        batch = np.broadcast_shapes(bq, bk, bv)
        shape = draw(st.sampled_from([(L, S), (1, S), tuple(1 for _ in batch) + (L, S),
                                      batch + (L, S)]))
        if kind == "float":
            primals["attn_mask"] = gen.standard_normal(shape)
        else:
            mask = gen.uniform(size=shape) < 0.7
            if draw(st.integers(0, 2)):  # two cases in three: a row without allowed keys
                mask[..., draw(st.integers(0, shape[-2] - 1)), :] = False
            primals["attn_mask"] = mask
    return Case(primals, params)


def _bool_cases():
    return _sdpa_cases(masks=("bool", "bool", "causal"))


def _without_masks(case):
    primals = {n: case.primals[n] for n in ("q", "k", "v")}
    return primals, {k: v for k, v in case.params.items() if k != "is_causal"}


def _plain_cases():
    return _sdpa_cases(masks=("none",))


# -- SDPA properties ---------------------------------------------------------------------------


def _sdpa(impl, case, ctx, primals=None, params=None):
    """``impl``'s forward output on ``primals``/``params`` (the case's when not given)."""
    run = Case(case.primals if primals is None else primals,
               case.params if params is None else params)
    return run_outputs(SDPA, impl, run, ctx, primals=run.primals)["out"]


def _rounded(case, ctx):
    return {n: ctx.rounded(a) for n, a in case.primals.items()}


def _boolean_ground_truth(impl, case, ctx):
    """Boolean and causal masks (fully masked rows give 0) against the definition."""
    expected = attention_reference(np, **_rounded(case, ctx), **case.params)
    return rel_error(_sdpa(impl, case, ctx), expected)


def _rows_sum_to_one(impl, case, ctx):
    """With ``v = I`` the output is the weights: 0 where masked, rows summing to 1 (0 if empty)."""
    S = case.primals["k"].shape[-2]
    weights = _sdpa(impl, case, ctx, primals={**case.primals, "v": np.eye(S)})
    allowed = np.broadcast_to(_allowed(case), weights.shape)
    expected_sums = np.any(allowed, axis=-1).astype(float)
    return max(rel_error(np.sum(weights, axis=-1), expected_sums, scale=1.0),
               float(np.max(np.abs(np.where(allowed, 0.0, weights)), initial=0.0)),
               float(np.max(-weights, initial=0.0)))


def _all_true_equals_none(impl, case, ctx):
    primals, params = _without_masks(case)
    L, S = primals["q"].shape[-2], primals["k"].shape[-2]
    ones = _sdpa(impl, case, ctx, {**primals, "attn_mask": np.ones((L, S), bool)}, params)
    return rel_error(ones, _sdpa(impl, case, ctx, primals, params))


def _causal_is_tril(impl, case, ctx):
    primals, params = _without_masks(case)
    L, S = primals["q"].shape[-2], primals["k"].shape[-2]
    tril = np.tril(np.ones((L, S), bool))
    causal = _sdpa(impl, case, ctx, primals, {**params, "is_causal": True})
    return rel_error(causal, _sdpa(impl, case, ctx, {**primals, "attn_mask": tril}, params))


def _neg_inf_equals_false(impl, case, ctx):
    """A float mask of 0 and ``-inf`` equals the boolean mask it encodes (empty rows too)."""
    mask = case.primals.get("attn_mask")
    if mask is None:  # a causal case: encode tril(ones(L, S))
        mask = _allowed(case)
    primals, params = _without_masks(case)
    additive = np.where(mask, 0.0, -np.inf)
    return rel_error(_sdpa(impl, case, ctx, {**primals, "attn_mask": additive}, params),
                     _sdpa(impl, case, ctx, {**primals, "attn_mask": mask}, params))


def _permuted_keys(impl, case, ctx):
    """Keys, values (and the mask's key axis) permuted together: the same output."""
    S = case.primals["k"].shape[-2]
    perm = np.random.default_rng(S).permutation(S)
    moved = {n: case.primals[n][..., perm, :] for n in ("k", "v")}
    mask = case.primals.get("attn_mask")
    if mask is not None and mask.shape[-1] == S:
        moved["attn_mask"] = mask[..., perm]
    permuted = _sdpa(impl, case, ctx, primals={**case.primals, **moved})
    return rel_error(permuted, _sdpa(impl, case, ctx))


def _boolean_mask_vjp(impl, case, ctx):
    """With a boolean (or causal) mask: the cotangents of q, k, v against autograd."""
    from autograd import grad

    rounded = _rounded(case, ctx)
    out = attention_reference(np, **rounded, **case.params)
    c = np.random.default_rng(7).standard_normal(out.shape)
    # In any form verify takes (tuple, NamedTuple, mapping), checked and converted by run_vjp.
    got = run_vjp(SDPA, impl, case, ctx, [c])
    expected = {}
    for name in ("q", "k", "v"):
        def pairing(x, name=name):
            return anp.sum(c * attention_reference(anp, **{**rounded, name: x}, **case.params))

        expected[name] = grad(pairing)(rounded[name])
    scale = max(max(np.linalg.norm(e) for e in expected.values()), 1e-300)
    return worst({cotangent_label(name): rel_error(got[name][0], e, scale=scale)
                  for name, e in expected.items()})


def _sdpa_numpy(q, k, v, attn_mask=None, **params):
    return attention_reference(np, q, k, v, attn_mask, **params)


def _bench_case(size):
    """``size = (n, L, E)``: queries, keys and values ``(n, L, E)``, no mask."""
    gen = np.random.default_rng(0)
    return Case({name: gen.standard_normal(size) for name in ("q", "k", "v")})


SDPA = register(Op(
    forward=scaled_dot_product_attention,
    vjp=scaled_dot_product_attention_vjp,
    primals=(Primal("q"), Primal("k"), Primal("v"), Primal("attn_mask", optional=True)),
    cases=_sdpa_cases,
    reference=_sdpa_numpy,
    naive=lambda q, k, v, attn_mask=None, **params: attention_reference(
        anp, q, k, v, attn_mask, **params),
    properties=(
        Property("boolean masks match ground truth", _boolean_ground_truth,
                 "boolean masks (True = may attend; fully masked rows give 0) and is_causal "
                 "against the definition", cases=_bool_cases),
        Property("weights sum to 1 over allowed keys", _rows_sum_to_one,
                 "with v = I the output is the weights: 0 on masked pairs, rows summing to 1 "
                 "(0 for a row without allowed keys)", cases=_bool_cases),
        Property("all-True mask equals no mask", _all_true_equals_none,
                 "a boolean mask of all True gives the unmasked output", cases=_plain_cases),
        Property("causal equals the explicit tril mask", _causal_is_tril,
                 "is_causal=True equals attn_mask = tril(ones(L, S)) (top-left), with L != S",
                 cases=lambda: _sdpa_cases(masks=("none",), min_diagonal=True)),
        Property("-inf float mask equals the boolean mask", _neg_inf_equals_false,
                 "a float mask of 0 and -inf equals the boolean mask it encodes, fully masked "
                 "rows included (0, not NaN)", cases=_bool_cases),
        Property("permuting keys and values together", _permuted_keys,
                 "permuting the keys, the values and the mask's key axis together leaves the "
                 "output unchanged",
                 cases=lambda: _sdpa_cases(masks=("none", "float", "bool"))),
        Property("vjp with a boolean mask", _boolean_mask_vjp,
                 "with boolean and causal masks, the cotangents of q, k, v equal autograd's of "
                 "the definition", cases=_bool_cases),
    ),
    tolerance=TOL,
    convention="softmax(scale q k^T + mask) v along the keys (torch.nn.functional."
               "scaled_dot_product_attention): boolean attn_mask True = may attend, a float one "
               "is added (-inf masks), is_causal = tril(ones(L, S)) top-left, scale 1/sqrt(E) by "
               "default, batch and head axes broadcast, a row without allowed keys gives 0.",
    section="4.9",
    references=REFERENCES,
    bench_case=_bench_case, bench_sizes=((8, 128, 64), (8, 512, 64)),
    bench_anchor=Anchor("definition"),
))


# -- multi-head attention ----------------------------------------------------------------------


def _mha_allowed(query, key, num_heads, key_padding_mask=None, attn_mask=None):
    """``(N, H, L, S)`` "may attend" from PyTorch's "may not attend" masks (batched arrays)."""
    n, L, S = query.shape[0], query.shape[1], key.shape[1]
    allowed = np.ones((n, num_heads, L, S), bool)
    if key_padding_mask is not None:
        allowed &= ~np.reshape(key_padding_mask, (n, 1, 1, S))
    if attn_mask is not None:
        allowed &= ~np.reshape(attn_mask, (-1, num_heads if attn_mask.ndim == 3 else 1, L, S))
    return allowed


def mha_reference(np_, query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                  out_proj_bias, num_heads, key_padding_mask=None, attn_mask=None,
                  need_weights=True, average_attn_weights=True):
    """``torch.nn.MultiheadAttention(batch_first=True)`` with a loop over the heads."""
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = (np_.reshape(x, (1,) + x.shape) for x in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask[None]
    E = query.shape[-1]
    d = E // num_heads
    Q, K, V = (np_.matmul(x, np_.transpose(in_proj_weight[i * E:(i + 1) * E]))
               + in_proj_bias[i * E:(i + 1) * E] for i, x in enumerate((query, key, value)))
    allowed = _mha_allowed(query, key, num_heads, key_padding_mask, attn_mask)
    heads, weights = [], []
    for h in range(num_heads):
        cols = slice(h * d, (h + 1) * d)
        p = attention_weights_reference(np_, Q[..., cols], K[..., cols], 1.0 / math.sqrt(d),
                                        allowed[:, h])
        heads.append(np_.matmul(p, V[..., cols]))
        weights.append(p)
    out = np_.matmul(np_.concatenate(heads, axis=-1), np_.transpose(out_proj_weight)) \
        + out_proj_bias
    w = np_.stack(weights, axis=1)
    w = np_.mean(w, axis=1) if average_attn_weights else w
    return (out[0], w[0]) if unbatched else (out, w)


@st.composite
def _mha_cases(draw, masks=True, heads=None):
    """Inputs of 0 or 1 batch axes, E = heads x (1 or 2), masks drawn (about 30 % True)."""
    gen = draw(rng())
    H, d = heads or draw(st.integers(1, 3)), draw(st.integers(1, 2))
    E = H * d
    lead = draw(st.sampled_from([(), (1,), (2,)]))
    L, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    primals = {"query": gen.standard_normal(lead + (L, E)),
               "key": gen.standard_normal(lead + (S, E)),
               "value": gen.standard_normal(lead + (S, E)),
               "in_proj_weight": gen.standard_normal((3 * E, E)) / math.sqrt(E),
               "in_proj_bias": 0.5 * gen.standard_normal(3 * E),
               "out_proj_weight": gen.standard_normal((E, E)) / math.sqrt(E),
               "out_proj_bias": 0.5 * gen.standard_normal(E)}
    if masks and draw(st.booleans()):
        primals["key_padding_mask"] = gen.uniform(size=lead + (S,)) < 0.3
    if masks and draw(st.booleans()):
        n = (lead or (1,))[0]
        shape = draw(st.sampled_from([(L, S), (n * H, L, S)]))
        primals["attn_mask"] = gen.uniform(size=shape) < 0.3
    return Case(primals, {"num_heads": H, "average_attn_weights": draw(st.booleans())})


def _mha(impl, case, ctx, primals=None):
    return run_outputs(MHA, impl, case, ctx, primals=case.primals if primals is None else primals)


def _batched_masks(case):
    """``(key_padding_mask, attn_mask)`` of a case, with the batch axis an unbatched one lacks."""
    kpm, am = case.primals.get("key_padding_mask"), case.primals.get("attn_mask")
    if case.primals["query"].ndim == 2 and kpm is not None:
        kpm = kpm[None]
    return kpm, am


def _one_head_identity(impl, case, ctx):
    """``[I; I; I]`` in, ``I`` out, zero biases, one head: plain attention, scale 1/sqrt(E)."""
    E = case.primals["query"].shape[-1]
    identity = {"in_proj_weight": np.concatenate([np.eye(E)] * 3),
                "in_proj_bias": np.zeros(3 * E), "out_proj_weight": np.eye(E),
                "out_proj_bias": np.zeros(E)}
    primals = {**case.primals, **identity}
    got = run_outputs(MHA, impl, case, ctx, ["attn_output"], primals=primals)["attn_output"]
    q, k, v = (ctx.rounded(case.primals[n]) for n in ("query", "key", "value"))
    batched = [x if x.ndim == 3 else x[None] for x in (q, k, v)]
    allowed = _mha_allowed(batched[0], batched[1], 1, *_batched_masks(case))[:, 0]
    expected = attention_reference(np, *batched, attn_mask=allowed)
    return rel_error(got, expected[0] if q.ndim == 2 else expected)


def _mha_permuted_keys(impl, case, ctx):
    """Keys, values and the masks' key axis permuted: the same output, permuted weights."""
    S = case.primals["key"].shape[-2]
    perm = np.random.default_rng(S).permutation(S)
    moved = {n: case.primals[n][..., perm, :] for n in ("key", "value")}
    for name in ("key_padding_mask", "attn_mask"):
        if case.primals.get(name) is not None:
            moved[name] = case.primals[name][..., perm]
    got = _mha(impl, case, ctx, {**case.primals, **moved})
    base = _mha(impl, case, ctx)
    return worst({"output attn_output": rel_error(got["attn_output"], base["attn_output"]),
                  "output attn_output_weights": rel_error(got["attn_output_weights"],
                                                          base["attn_output_weights"][..., perm])})


def _mha_rows_sum_to_one(impl, case, ctx):
    """The weights are 0 on masked pairs and their rows sum to 1 (0 without allowed keys)."""
    weights = _mha(impl, case, ctx)["attn_output_weights"]
    query = case.primals["query"]
    batched = [x if x.ndim == 3 else x[None] for x in (query, case.primals["key"])]
    allowed = _mha_allowed(*batched, case.params["num_heads"], *_batched_masks(case))
    expected = allowed.astype(float) / np.maximum(np.sum(allowed, -1, keepdims=True), 1)
    if case.params["average_attn_weights"]:
        allowed, expected = np.any(allowed, axis=1), np.mean(expected, axis=1)
    if query.ndim == 2:
        allowed, expected = allowed[0], expected[0]
    sums = np.sum(expected, axis=-1)  # 1 where a head may attend somewhere (or its average)
    return max(rel_error(np.sum(weights, axis=-1), sums, scale=1.0),
               float(np.max(np.abs(np.where(allowed, 0.0, weights)), initial=0.0)))


def _mha_no_masks(impl, case, ctx):
    """Masks of all False (nothing masked) equal no masks."""
    primals = {k: v for k, v in case.primals.items() if k not in ("key_padding_mask", "attn_mask")}
    query, key = primals["query"], primals["key"]
    falses = {"key_padding_mask": np.zeros(query.shape[:-2] + key.shape[-2:-1], bool),
              "attn_mask": np.zeros((query.shape[-2], key.shape[-2]), bool)}
    masked = _mha(impl, case, ctx, {**primals, **falses})
    plain = _mha(impl, case, ctx, primals)
    return worst({f"output {n}": rel_error(masked[n], plain[n]) for n in plain})


def _mha_naive(*args, **kwargs):
    return mha_reference(anp, *args, **kwargs)


def _mha_numpy(*args, **kwargs):
    return mha_reference(np, *args, **kwargs)


def _mha_bench_case(size):
    """``size = (n, L, E, heads)``: self-attention of ``n`` sequences of ``L`` tokens."""
    n, L, E, heads = size
    gen = np.random.default_rng(0)
    x = gen.standard_normal((n, L, E))
    return Case({"query": x, "key": x, "value": x,
                 "in_proj_weight": gen.standard_normal((3 * E, E)) / math.sqrt(E),
                 "in_proj_bias": gen.standard_normal(3 * E),
                 "out_proj_weight": gen.standard_normal((E, E)) / math.sqrt(E),
                 "out_proj_bias": gen.standard_normal(E)}, {"num_heads": heads})


MHA = register(Op(
    forward=multi_head_attention,
    vjp=multi_head_attention_vjp,
    primals=(Primal("query"), Primal("key"), Primal("value"), Primal("in_proj_weight"),
             Primal("in_proj_bias"), Primal("out_proj_weight"), Primal("out_proj_bias"),
             Primal("key_padding_mask", dtype="bool", optional=True),
             Primal("attn_mask", dtype="bool", optional=True)),
    outputs=(Output("attn_output"), Output("attn_output_weights")),
    cases=_mha_cases,
    reference=_mha_numpy,
    naive=_mha_naive,
    properties=(
        Property("one head with identity projections equals plain attention", _one_head_identity,
                 "in_proj_weight = [I; I; I], out_proj_weight = I, zero biases, one head: the "
                 "output is softmax(q k^T / sqrt(E)) v under the same masks",
                 cases=lambda: _mha_cases(heads=1)),
        Property("permuting keys and values together", _mha_permuted_keys,
                 "keys, values and the masks' key axis permuted together: the same output and "
                 "the weights permuted along the keys"),
        Property("weights sum to 1 over allowed keys", _mha_rows_sum_to_one,
                 "the weights are 0 where masked and each row sums to 1 (a head without allowed "
                 "keys contributes 0)"),
        Property("all-False masks equal no masks", _mha_no_masks,
                 "key_padding_mask and attn_mask of all False (True = may not attend) give the "
                 "unmasked outputs", cases=lambda: _mha_cases(masks=False)),
    ),
    tolerance=TOL,
    convention="torch.nn.MultiheadAttention with batch_first=True: in_proj_weight (3E, E) = "
               "[W_q; W_k; W_v], head h takes features h d .. (h+1) d - 1 (d = E / num_heads), "
               "scale 1/sqrt(d); boolean key_padding_mask (N, S) and attn_mask (L, S) or "
               "(N num_heads, L, S) mean True = may not attend; returns (attn_output, "
               "attn_output_weights), the weights averaged over heads when "
               "average_attn_weights; a query without allowed keys gets zero weights (PyTorch: "
               "NaN).",
    section="4.9",
    references=REFERENCES,
    bench_case=_mha_bench_case, bench_sizes=((8, 64, 64, 4), (8, 256, 256, 8)),
    bench_anchor=Anchor("definition"),
))


# -- memory readout ----------------------------------------------------------------------------


def memory_reference(np_, u, q):
    """``sum_i alpha_i u_i`` with ``alpha = exp(<u_i, q>) / sum_j exp(<u_j, q>)``."""
    alpha = softmax_definition(np_, np_.sum(u * q[..., None, :], axis=-1))
    return np_.sum(alpha[..., None] * u, axis=-2)


def _memory_numpy(u, q):
    return memory_reference(np, u, q)


def _memory_bench_case(size):
    """``size = (b, n, d)``: ``b`` queries, each reading its own memory of ``n`` rows."""
    b, n, d = size
    gen = np.random.default_rng(0)
    return Case({"u": gen.standard_normal((b, n, d)), "q": gen.standard_normal((b, d))})


@st.composite
def _memory_cases(draw):
    gen = draw(rng())
    bu, bq = draw(st.sampled_from([((), ()), ((2,), ()), ((), (3,)), ((2,), (2,)), ((1,), (2,))]))
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    return Case({"u": gen.standard_normal(bu + (n, d)), "q": gen.standard_normal(bq + (d,))})


def _as_sdpa(impl, case, ctx):
    """Equals refimpl's ``scaled_dot_product_attention(q[..., None, :], u, u, scale=1)``."""
    u, q = ctx.local(case.primals["u"]), ctx.local(case.primals["q"])
    expected = scaled_dot_product_attention(q[..., None, :], u, u, scale=1.0)[..., 0, :]
    got = run_outputs(MEMORY, impl, case, ctx)["out"]
    return rel_error(got, np.asarray(expected, np.float64))


def _identical_rows(impl, case, ctx):
    """A memory of one row repeated reads out that row, whatever the query."""
    u = case.primals["u"]
    row = np.broadcast_to(u[..., :1, :], u.shape).copy()
    got = run_outputs(MEMORY, impl, case, ctx, primals={**case.primals, "u": row})["out"]
    expected = np.broadcast_to(ctx.rounded(row)[..., 0, :], got.shape)
    return rel_error(got, expected)


MEMORY = register(Op(
    forward=memory_readout,
    vjp=memory_readout_vjp,
    primals=(Primal("u"), Primal("q")),
    cases=_memory_cases,
    reference=_memory_numpy,
    naive=lambda u, q: memory_reference(anp, u, q),
    properties=(
        Property("equals attention with keys = values = u", _as_sdpa,
                 "memory_readout(u, q) = scaled_dot_product_attention(q[None], u, u, scale=1) "
                 "(refimpl's, on NumPy copies)"),
        Property("identical rows read out that row", _identical_rows,
                 "a memory whose rows are all equal returns that row for any query"),
    ),
    tolerance=TOL,
    convention="alpha = softmax_i(<u_i, q>) (unscaled), u* = sum_i alpha_i u_i; u (..., n, d), "
               "q (..., d), batch axes broadcast.",
    section="4.9",
    references=("Sukhbaatar et al. 2015, End-to-end memory networks (NeurIPS, "
                "arXiv:1503.08895)",),
    bench_case=_memory_bench_case, bench_sizes=((64, 256, 64), (64, 2048, 64)),
    bench_anchor=Anchor("definition"),
))
