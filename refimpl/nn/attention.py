r"""Scaled dot-product attention, multi-head attention and soft attention over a memory, with VJPs.

Convention (docs/conventions.rst, section 4.9): PyTorch's.
``scaled_dot_product_attention`` is ``torch.nn.functional.scaled_dot_product_attention``:
``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)`` with broadcasting
batch (and head) axes; a boolean ``attn_mask`` marks the pairs that **may**
attend, a float one is added to the logits (``-inf`` entries mask);
``is_causal`` is the top-left aligned ``tril(ones(L, S))``; the scale
defaults to ``1 / sqrt(E)``. A row with no allowed key gives zeros (PyTorch's
SDPA does too; ``fully_masked="uniform"`` gives JAX's and Keras's mean of
the values). ``multi_head_attention`` is ``torch.nn.MultiheadAttention``
with ``batch_first=True``: packed ``in_proj_weight (3E, E)``, boolean
``key_padding_mask``/``attn_mask`` meaning "may **not** attend".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._results import cotangent_type
from .._validation import (
    broadcast_batch,
    dtype_name,
    require_finite,
    require_real_floating,
    require_same_dtype,
    sum_to_shape,
)
from ..backend import get_namespace
from ._unfold import require_cotangent
from .dense import linear, linear_vjp
from .categorical import probabilities, softmax_backward

__all__ = ["memory_readout", "memory_readout_vjp", "multi_head_attention",
           "multi_head_attention_vjp", "scaled_dot_product_attention",
           "scaled_dot_product_attention_vjp"]

FULLY_MASKED = ("zero", "uniform")

AttentionCotangents = cotangent_type("AttentionCotangents", "q k v", "attn_mask")
MultiheadAttentionCotangents = cotangent_type(
    "MultiheadAttentionCotangents",
    "query key value in_proj_weight in_proj_bias out_proj_weight out_proj_bias",
    "key_padding_mask attn_mask")
MemoryReadoutCotangents = cotangent_type("MemoryReadoutCotangents", "u q")


class MultiheadAttentionOutput(NamedTuple):
    """``(attn_output, attn_output_weights)`` as ``torch.nn.MultiheadAttention`` returns them."""

    attn_output: Any
    attn_output_weights: Any


# -- the kernel: one masked softmax(q k^T) v and its backward ---------------------------------


def _transpose(xp, a):
    return xp.matrix_transpose(a)


def _causal(xp, device, L, S):
    """``tril(ones(L, S))``: query ``i`` may attend to keys ``j <= i`` (top-left aligned)."""
    i = xp.reshape(xp.arange(L, device=device), (L, 1))
    return xp.reshape(xp.arange(S, device=device), (1, S)) <= i


def _logits(xp, q, k, scale, bias):
    s = (q @ _transpose(xp, k)) * scale
    return s if bias is None else s + bias


def _weights(xp, s, allowed, fully_masked):
    """The attention weights: softmax of ``s`` over the allowed keys of each row."""
    p = probabilities(xp, s, -1, allowed)
    if allowed is None or fully_masked == "zero":
        return p
    # JAX and Keras put a large finite negative number on masked logits: a row without any
    # allowed key then weighs every key equally.
    empty = ~xp.any(allowed, axis=-1, keepdims=True)
    return xp.where(empty, 1.0 / s.shape[-1], p)


def _attend(xp, q, k, v, scale, bias, allowed, fully_masked, check_logits=False):
    """``(out, p)``: ``p = softmax(scale q k^T + bias)`` over the allowed keys, ``out = p v``."""
    s = _logits(xp, q, k, scale, bias)
    if check_logits:
        _require_finite_logits(xp, s, allowed)
    p = _weights(xp, s, allowed, fully_masked)
    return p @ v, p


def _attend_backward(xp, q, k, v, p, g, scale, allowed, g_p=None):
    r"""``(dq, dk, dv, ds)`` of :func:`_attend` for ``g = dL/dout`` (and ``g_p = dL/dp``).

    .. math::  \bar V = P^T G,\quad \bar P = G V^T + \bar P_{\mathrm{extra}},\quad
               \bar S = P \odot (\bar P - \operatorname{rowsum}(P \odot \bar P)),\quad
               \bar Q = c\, \bar S K,\quad \bar K = c\, \bar S^T Q

    ``ds`` is also the cotangent of an additive mask. Masked logits, and the
    rows of ``fully_masked="uniform"`` (constant weights), get none.
    """
    dp = g @ _transpose(xp, v)
    if g_p is not None:
        dp = dp + g_p
    ds = softmax_backward(xp, p, dp)
    if allowed is not None:
        ds = xp.where(allowed, ds, 0.0)
    return (ds @ k) * scale, (_transpose(xp, ds) @ q) * scale, _transpose(xp, p) @ g, ds


# -- scaled_dot_product_attention --------------------------------------------------------------


def _check_scale(scale, E):
    if scale is None:
        return 1.0 / math.sqrt(E)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number or None (1 / sqrt(E)), got {scale!r}")
    return float(scale)


def _check_fully_masked(fully_masked):
    if fully_masked not in FULLY_MASKED:
        raise ValueError(f"fully_masked must be one of {FULLY_MASKED}, got {fully_masked!r}")


def _is_bool(x) -> bool:
    return dtype_name(x) == "bool"


def _check_float_mask(xp, attn_mask):
    """A float mask may hold ``-inf`` (masked), never NaN or ``+inf``."""
    if not bool(xp.all(xp.isfinite(attn_mask) | (attn_mask == -xp.inf))):
        raise ValueError("attn_mask must not contain NaN or +inf (-inf entries mask a pair; "
                         "pass check_finite=False to skip)")


def _check_sdpa(q, k, v, attn_mask, is_causal, fully_masked, check_finite, cotangent=None):
    """Validate; return ``(xp, device, batch shape)``."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_real_floating(name, a)
        if a.ndim < 2:
            raise ValueError(f"{name} must have shape (..., length, features), got {tuple(a.shape)}")
    xp, device = get_namespace(q, k, v, attn_mask, cotangent)
    require_same_dtype(q=q, k=k, v=v)
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k must have q's feature size E = {q.shape[-1]} (shape (..., S, E)), "
                         f"got shape {tuple(k.shape)}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v must have k's length S = {k.shape[-2]} (shape (..., S, Ev)), "
                         f"got shape {tuple(v.shape)}")
    batch = broadcast_batch(q=q.shape[:-2], k=k.shape[:-2], v=v.shape[:-2])
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {is_causal!r}")
    _check_fully_masked(fully_masked)
    if attn_mask is not None:
        _check_mask(xp, attn_mask, q, batch + (q.shape[-2], k.shape[-2]), is_causal, check_finite)
    if check_finite:
        for name, a in (("q", q), ("k", k), ("v", v)):
            require_finite(name, a)
    if cotangent is not None:
        require_cotangent(cotangent, batch + (q.shape[-2], v.shape[-1]))
        require_same_dtype(q=q, cotangent=cotangent)
    return xp, device, batch


def _check_mask(xp, attn_mask, q, weights_shape, is_causal, check_finite):
    if is_causal:
        raise ValueError("attn_mask and is_causal=True cannot both be given (as PyTorch); "
                         "combine the causal mask into attn_mask")
    if not _is_bool(attn_mask):
        if dtype_name(attn_mask) != dtype_name(q):
            raise TypeError(f"attn_mask must be boolean (True = may attend) or of q's dtype "
                            f"{dtype_name(q)} (added to the logits), got {dtype_name(attn_mask)}")
        if check_finite:
            _check_float_mask(xp, attn_mask)
    try:
        fits = broadcast_batch(weights=weights_shape, attn_mask=tuple(attn_mask.shape)) \
            == weights_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"attn_mask must broadcast to the weights' shape (..., L, S) = "
                         f"{weights_shape}, got shape {tuple(attn_mask.shape)}")


def _mask_parts(xp, device, attn_mask, is_causal, L, S):
    """``(bias, allowed)``: the additive float mask and the boolean "may attend" mask (or None)."""
    if is_causal:
        return None, _causal(xp, device, L, S)
    if attn_mask is None:
        return None, None
    if _is_bool(attn_mask):
        return None, attn_mask
    allowed = attn_mask != -xp.inf
    return xp.where(allowed, attn_mask, 0.0), allowed


def _require_finite_logits(xp, s, allowed):
    ok = xp.isfinite(s) if allowed is None else xp.isfinite(s) | ~allowed
    if not bool(xp.all(ok)):
        raise ValueError("the logits scale * q k^T + attn_mask overflow: rescale q, k or scale "
                         "(pass check_finite=False to skip)")


def scaled_dot_product_attention(q, k, v, attn_mask=None, *, is_causal=False, scale=None,
                                 fully_masked="zero", check_finite=True):
    r"""Scaled dot-product attention in PyTorch's conventions.

    .. math::  \operatorname{out} = \operatorname{softmax}_A\!\big(c\, q k^T + B\big)\, v,
               \qquad c = 1/\sqrt{E} \text{ by default}

    where the softmax runs along the keys over the allowed set ``A`` and
    ``B`` is a float ``attn_mask`` (0 without one). Convention:
    docs/conventions.rst, section 4.9.

    Parameters
    ----------
    q : (..., L, E) array
    k : (..., S, E) array
    v : (..., S, Ev) array
        Batch (and head) axes broadcast between ``q``, ``k``, ``v`` and the mask.
    attn_mask : array broadcastable to (..., L, S), optional
        Boolean: ``True`` where query ``i`` **may** attend to key ``j``. Float
        (``q``'s dtype): added to the logits; ``-inf`` entries mask.
    is_causal : bool
        Mask with ``tril(ones(L, S))`` (top-left aligned: query ``i`` sees keys
        ``j <= i`` even when ``L != S``); not together with ``attn_mask``.
    scale : float, optional
        ``c``; default ``1 / sqrt(E)``.
    fully_masked : {"zero", "uniform"}
        A row without any allowed key: zeros (PyTorch's SDPA), or the mean of
        ``v`` over all keys (JAX's and Keras's large negative mask value).
    check_finite : bool
        Raise ValueError on NaN or infinity in ``q``, ``k``, ``v`` (``-inf``
        is allowed in a float mask) and on logits that overflow.

    Returns
    -------
    out : (..., L, Ev) array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import scaled_dot_product_attention
    >>> q = np.zeros((2, 1)); k = np.zeros((3, 1)); v = np.arange(3.0).reshape(3, 1)
    >>> scaled_dot_product_attention(q, k, v).tolist()
    [[1.0], [1.0]]
    >>> scaled_dot_product_attention(q, k, v, is_causal=True).tolist()
    [[0.0], [0.5]]
    """
    xp, device, _ = _check_sdpa(q, k, v, attn_mask, is_causal, fully_masked, check_finite)
    bias, allowed = _mask_parts(xp, device, attn_mask, is_causal, q.shape[-2], k.shape[-2])
    c = _check_scale(scale, q.shape[-1])
    return _attend(xp, q, k, v, c, bias, allowed, fully_masked, check_finite)[0]


def scaled_dot_product_attention_vjp(q, k, v, cotangent, attn_mask=None, *, is_causal=False,
                                     scale=None, fully_masked="zero", check_finite=True):
    r"""Cotangents ``(q, k, v, attn_mask)`` of :func:`scaled_dot_product_attention`.

    With :math:`P` the weights, :math:`G` the cotangent and :math:`c` the scale:

    .. math::  \bar v = P^T G,\qquad \bar S = P \odot \big(G v^T - \operatorname{rowsum}(P \odot G v^T)\big),
               \qquad \bar q = c\, \bar S k,\qquad \bar k = c\, \bar S^T q,\qquad \bar B = \bar S

    each summed over the axes its primal was broadcast along. The mask's
    cotangent is ``None`` for a boolean mask or none; masked pairs get 0.
    The weights are recomputed (``L x S`` memory, as the forward).
    """
    xp, device, _ = _check_sdpa(q, k, v, attn_mask, is_causal, fully_masked, check_finite,
                                cotangent)
    bias, allowed = _mask_parts(xp, device, attn_mask, is_causal, q.shape[-2], k.shape[-2])
    c = _check_scale(scale, q.shape[-1])
    _, p = _attend(xp, q, k, v, c, bias, allowed, fully_masked, check_finite)
    dq, dk, dv, ds = _attend_backward(xp, q, k, v, p, cotangent, c, allowed)
    dmask = None if bias is None else sum_to_shape(xp, ds, tuple(attn_mask.shape))
    return AttentionCotangents(sum_to_shape(xp, dq, tuple(q.shape)),
                               sum_to_shape(xp, dk, tuple(k.shape)),
                               sum_to_shape(xp, dv, tuple(v.shape)), dmask)


# -- multi_head_attention ----------------------------------------------------------------------


def _check_mha(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
               num_heads, key_padding_mask, attn_mask, fully_masked, check_finite,
               cotangents=()):
    arrays = dict(query=query, key=key, value=value, in_proj_weight=in_proj_weight,
                  in_proj_bias=in_proj_bias, out_proj_weight=out_proj_weight,
                  out_proj_bias=out_proj_bias)
    for name, a in arrays.items():
        require_real_floating(name, a)
    xp, _ = get_namespace(*arrays.values(), key_padding_mask, attn_mask, *cotangents)
    require_same_dtype(**arrays)
    if query.ndim not in (2, 3):
        raise ValueError(f"query must have shape (N, L, E) (batch_first) or (L, E), "
                         f"got {tuple(query.shape)}")
    E = query.shape[-1]
    lead = tuple(query.shape[:-2])
    for name, a in (("key", key), ("value", value)):
        if a.ndim != query.ndim or tuple(a.shape[:-2]) != lead or a.shape[-1] != E:
            raise ValueError(f"{name} must have shape {lead + ('S', E)} (batch and E of query), "
                             f"got {tuple(a.shape)}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"value must have key's length S = {key.shape[-2]}, "
                         f"got shape {tuple(value.shape)}")
    shapes = dict(in_proj_weight=(3 * E, E), in_proj_bias=(3 * E,), out_proj_weight=(E, E),
                  out_proj_bias=(E,))
    for name, shape in shapes.items():
        if tuple(arrays[name].shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for E = {E}, "
                             f"got {tuple(arrays[name].shape)}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 \
            or E % num_heads:
        raise ValueError(f"num_heads must be a positive int dividing E = {E}, got {num_heads!r}")
    _check_fully_masked(fully_masked)
    _check_mha_masks(key_padding_mask, attn_mask, lead, query.shape[-2], key.shape[-2], num_heads)
    if check_finite:
        for name, a in arrays.items():
            require_finite(name, a)
    return xp, E // num_heads


def _check_mha_masks(key_padding_mask, attn_mask, lead, L, S, num_heads):
    """PyTorch's boolean masks: ``(N, S)`` (``(S,)`` unbatched), ``(L, S)`` or ``(N H, L, S)``."""
    n = (lead or (1,))[0]
    masks = dict(key_padding_mask=(key_padding_mask, [lead + (S,)]),
                 attn_mask=(attn_mask, [(L, S), (n * num_heads, L, S)]))
    for name, (mask, allowed_shapes) in masks.items():
        if mask is not None and (not _is_bool(mask) or tuple(mask.shape) not in allowed_shapes):
            raise ValueError(f"{name} must be a boolean array (True = may not attend) of shape "
                             f"{' or '.join(map(str, allowed_shapes))}, got {dtype_name(mask)} "
                             f"of shape {tuple(mask.shape)}")


def _heads(xp, x, num_heads):
    """``(N, T, E) -> (N, H, T, E / H)``: head ``h`` holds features ``h d .. (h + 1) d - 1``."""
    n, t, e = x.shape
    return xp.permute_dims(xp.reshape(x, (n, t, num_heads, e // num_heads)), (0, 2, 1, 3))


def _merge_heads(xp, x):
    """Inverse of :func:`_heads`."""
    n, h, t, d = x.shape
    return xp.reshape(xp.permute_dims(x, (0, 2, 1, 3)), (n, t, h * d))


def _mha_allowed(xp, key_padding_mask, attn_mask, n, num_heads, L):
    """The boolean "may attend" mask ``(N, H, L, S)`` (broadcastable), or None."""
    allowed = None
    if key_padding_mask is not None:
        allowed = xp.reshape(~key_padding_mask, (n, 1, 1, key_padding_mask.shape[-1]))
    if attn_mask is not None:
        may = ~attn_mask if attn_mask.ndim == 2 else xp.reshape(~attn_mask, (n, num_heads, L, -1))
        allowed = may if allowed is None else allowed & may
    return allowed


def _projections(in_proj_weight, in_proj_bias, E):
    """``[(W_q, b_q), (W_k, b_k), (W_v, b_v)]``: the row blocks of the packed projection."""
    return [(in_proj_weight[i * E:(i + 1) * E, :], in_proj_bias[i * E:(i + 1) * E])
            for i in range(3)]


def _batched(xp, x):
    """``x`` with a batch axis (unbatched ``(L, E)`` inputs get one of size 1)."""
    return x if x.ndim == 3 else xp.reshape(x, (1,) + tuple(x.shape))


class _Heads(NamedTuple):
    """The forward's intermediate values, kept for the backward."""

    inputs: tuple      # query, key, value, batched
    projected: tuple   # Q, K, V per head, (N, H, T, d)
    p: Any             # weights per head (N, H, L, S)
    merged: Any        # heads concatenated (N, L, E), the out-projection's input
    allowed: Any


def _mha_forward(xp, query, key, value, in_proj_weight, in_proj_bias, num_heads,
                 key_padding_mask, attn_mask, fully_masked) -> _Heads:
    inputs = tuple(_batched(xp, x) for x in (query, key, value))
    E, n, L = query.shape[-1], inputs[0].shape[0], query.shape[-2]
    projected = tuple(_heads(xp, linear(x, w, b), num_heads)
                      for x, (w, b) in zip(inputs, _projections(in_proj_weight, in_proj_bias, E)))
    allowed = _mha_allowed(xp, key_padding_mask, attn_mask, n, num_heads, L)
    out, p = _attend(xp, *projected, 1.0 / math.sqrt(E // num_heads), None, allowed, fully_masked)
    return _Heads(inputs, projected, p, _merge_heads(xp, out), allowed)


def _unbatched(x, like):
    return x if like.ndim == 3 else x[0, ...]


def _reported_weights(xp, p, query, need_weights, average_attn_weights):
    if not need_weights:
        return None
    return _unbatched(xp.mean(p, axis=1) if average_attn_weights else p, query)


def multi_head_attention(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                         out_proj_bias, num_heads, key_padding_mask=None, attn_mask=None,
                         need_weights=True, average_attn_weights=True, *, fully_masked="zero",
                         check_finite=True):
    r"""Multi-head attention in ``torch.nn.MultiheadAttention``'s layouts (``batch_first=True``).

    With :math:`d = E / H` and head :math:`h` taking features :math:`hd .. (h+1)d - 1`:

    .. math::  Q = x_q W_q^T + b_q,\ K = x_k W_k^T + b_k,\ V = x_v W_v^T + b_v,\qquad
               O_h = \operatorname{softmax}_A\!\big(Q_h K_h^T / \sqrt d\big) V_h,\qquad
               \operatorname{out} = [O_1 \dots O_H]\, W_o^T + b_o

    where ``in_proj_weight = [W_q; W_k; W_v]`` and the allowed set ``A``
    excludes the keys flagged in ``key_padding_mask`` and the pairs flagged
    in ``attn_mask``. Convention: docs/conventions.rst, section 4.9.

    Parameters
    ----------
    query : (N, L, E) or (L, E) array
    key, value : (N, S, E) or (S, E) arrays
    in_proj_weight : (3E, E) array
    in_proj_bias : (3E,) array
    out_proj_weight : (E, E) array
    out_proj_bias : (E,) array
    num_heads : int
        Divides ``E``.
    key_padding_mask : (N, S) or (S,) boolean array, optional
        ``True``: the key is padding, no query may attend to it.
    attn_mask : (L, S) or (N * num_heads, L, S) boolean array, optional
        ``True``: query ``i`` may **not** attend to key ``j`` (index
        ``n * num_heads + h`` for the 3-D form, as PyTorch).
    need_weights : bool
        Return the attention weights (else ``None`` in their place).
    average_attn_weights : bool
        Weights averaged over heads ``(N, L, S)``, else per head ``(N, H, L, S)``.
    fully_masked : {"zero", "uniform"}
        A query row without any allowed key: zero weights and head output
        (the output is then ``out_proj_bias``), or uniform weights.
        PyTorch's module gives NaN there (docs, section 4.9).
    check_finite : bool
        Raise ValueError on NaN or infinity in the float inputs.

    Returns
    -------
    MultiheadAttentionOutput
        ``(attn_output (N, L, E), attn_output_weights)``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import multi_head_attention
    >>> E = 2; x = np.arange(6.0).reshape(1, 3, E)
    >>> values_only = np.concatenate([np.zeros((2 * E, E)), np.eye(E)])  # W_q = W_k = 0
    >>> out, w = multi_head_attention(x, x, x, values_only, np.zeros(3 * E), np.eye(E),
    ...                               np.zeros(E), num_heads=1)
    >>> out.tolist(), w.shape
    ([[[2.0, 3.0], [2.0, 3.0], [2.0, 3.0]]], (1, 3, 3))
    """
    xp, _ = _check_mha(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                       out_proj_bias, num_heads, key_padding_mask, attn_mask, fully_masked,
                       check_finite)
    heads = _mha_forward(xp, query, key, value, in_proj_weight, in_proj_bias, num_heads,
                         key_padding_mask, attn_mask, fully_masked)
    out = _unbatched(linear(heads.merged, out_proj_weight, out_proj_bias), query)
    return MultiheadAttentionOutput(
        out, _reported_weights(xp, heads.p, query, need_weights, average_attn_weights))


def _weights_cotangent(xp, g, query, num_heads, average_attn_weights):
    """The cotangent of the per-head weights ``(N, H, L, S)`` from that of the reported ones."""
    if query.ndim == 2:
        g = xp.reshape(g, (1,) + tuple(g.shape))
    if average_attn_weights:  # the mean over heads spreads its cotangent evenly
        g = xp.reshape(g, (g.shape[0], 1) + tuple(g.shape[1:])) / num_heads
    return g


def multi_head_attention_vjp(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                             out_proj_bias, cotangent_output, cotangent_weights, num_heads,
                             key_padding_mask=None, attn_mask=None, need_weights=True,
                             average_attn_weights=True, *, fully_masked="zero",
                             check_finite=True):
    r"""Cotangents of :func:`multi_head_attention` for ``(dL/d attn_output, dL/d attn_output_weights)``.

    Backward through the out-projection (:func:`~refimpl.nn.linear_vjp`),
    each head's attention (docs, section 4.9; the weights' cotangent, divided
    by ``H`` when averaged, is added to :math:`\bar P`) and the three
    in-projections, whose cotangents are stacked into ``in_proj_weight``'s
    and ``in_proj_bias``'s. ``cotangent_weights`` is ``None`` (zero) or, with
    ``need_weights``, of the weights' shape. Returns one cotangent per primal;
    the boolean masks get ``None``.
    """
    g_list = [cotangent_output] + ([] if cotangent_weights is None else [cotangent_weights])
    xp, d = _check_mha(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                       out_proj_bias, num_heads, key_padding_mask, attn_mask, fully_masked,
                       check_finite, g_list)
    heads = _mha_forward(xp, query, key, value, in_proj_weight, in_proj_bias, num_heads,
                         key_padding_mask, attn_mask, fully_masked)
    out_shape = tuple(query.shape)
    require_cotangent(cotangent_output, out_shape)
    require_same_dtype(query=query, cotangent_output=cotangent_output)
    g_p = None
    if cotangent_weights is not None:
        weights = _reported_weights(xp, heads.p, query, need_weights, average_attn_weights)
        if weights is None:
            raise ValueError("cotangent_weights must be None when need_weights=False "
                             "(there are no weights)")
        require_cotangent(cotangent_weights, tuple(weights.shape))
        require_same_dtype(query=query, cotangent_weights=cotangent_weights)
        g_p = _weights_cotangent(xp, cotangent_weights, query, num_heads, average_attn_weights)
    g_merged, d_out_w, d_out_b = linear_vjp(heads.merged, out_proj_weight,
                                            _batched(xp, cotangent_output), bias=out_proj_bias)
    g_heads = _heads(xp, g_merged, num_heads)
    grads = _attend_backward(xp, *heads.projected, heads.p, g_heads, 1.0 / math.sqrt(d),
                             heads.allowed, g_p)[:3]
    E = query.shape[-1]
    pieces = [linear_vjp(x, w, _merge_heads(xp, g), bias=b) for x, (w, b), g in
              zip(heads.inputs, _projections(in_proj_weight, in_proj_bias, E), grads)]
    return MultiheadAttentionCotangents(
        *(_unbatched(piece.x, query) for piece in pieces),
        xp.concat([piece.weight for piece in pieces], axis=0),
        xp.concat([piece.bias for piece in pieces], axis=0), d_out_w, d_out_b)


# -- memory_readout ----------------------------------------------------------------------------


def _check_memory(u, q, check_finite, cotangent=None):
    require_real_floating("u", u)
    require_real_floating("q", q)
    xp, _ = get_namespace(u, q, cotangent)
    require_same_dtype(u=u, q=q)
    if u.ndim < 2:
        raise ValueError(f"u must have shape (..., n, d) (n memory rows), got {tuple(u.shape)}")
    if q.ndim < 1 or q.shape[-1] != u.shape[-1]:
        raise ValueError(f"q must have shape (..., d) with d = {u.shape[-1]} (u's row size), "
                         f"got {tuple(q.shape)}")
    batch = broadcast_batch(u=u.shape[:-2], q=q.shape[:-1])
    if check_finite:
        require_finite("u", u)
        require_finite("q", q)
    if cotangent is not None:
        require_cotangent(cotangent, batch + (u.shape[-1],))
        require_same_dtype(u=u, cotangent=cotangent)
    return xp


def _as_query(xp, q):
    """``(..., d) -> (..., 1, d)``: one query row for the attention kernel."""
    return xp.reshape(q, tuple(q.shape[:-1]) + (1, q.shape[-1]))


def memory_readout(u, q, *, check_finite=True):
    r"""Soft attention over a memory: :math:`u^* = \sum_i \alpha_i u_i`, :math:`\alpha = \operatorname{softmax}_i(\langle u_i, q\rangle)`.

    The memory rows are both keys and values and the logits are not scaled:
    ``memory_readout(u, q) = scaled_dot_product_attention(q[..., None, :], u, u,
    scale=1)[..., 0, :]``. Convention: docs/conventions.rst, section 4.9.

    Parameters
    ----------
    u : (..., n, d) array
        ``n`` memory rows.
    q : (..., d) array
        The query; batch axes broadcast with ``u``'s.
    check_finite : bool
        Raise ValueError on NaN or infinity in ``u`` or ``q``.

    Returns
    -------
    (..., d) array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import memory_readout
    >>> u = np.array([[np.log(3.0), 0.0], [0.0, 0.0]])
    >>> memory_readout(u, np.array([1.0, 0.0])).round(12).tolist()
    [0.823959216501, 0.0]
    """
    xp = _check_memory(u, q, check_finite)
    out, _ = _attend(xp, _as_query(xp, q), u, u, 1.0, None, None, "zero")
    return out[..., 0, :]


def memory_readout_vjp(u, q, cotangent, *, check_finite=True):
    r"""Cotangents ``(u, q)`` of :func:`memory_readout`.

    ``u`` is both the keys and the values, so :math:`\bar u = \bar k + \bar v`
    of the attention backward (section 4.9), :math:`\bar q = \bar S u`.
    """
    xp = _check_memory(u, q, check_finite, cotangent)
    query = _as_query(xp, q)
    _, p = _attend(xp, query, u, u, 1.0, None, None, "zero")
    g = xp.reshape(cotangent, tuple(cotangent.shape[:-1]) + (1, cotangent.shape[-1]))
    dq, dk, dv, _ = _attend_backward(xp, query, u, u, p, g, 1.0, None)
    return MemoryReadoutCotangents(sum_to_shape(xp, dk + dv, tuple(u.shape)),
                                   sum_to_shape(xp, dq[..., 0, :], tuple(q.shape)))
