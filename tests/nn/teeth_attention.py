"""Teeth for the attention ops: NumPy candidates (no refimpl) and planted bugs.

Read by tests/verify/test_teeth.py. The candidates compute the weights with a
shifted softmax over the allowed keys (0 for a row without any) and
backpropagate by hand::

    P = softmax(c Q K^T + B),  O = P V:
    dV = P^T G,  dP = G V^T (+ the weights' cotangent),  dS = P (dP - rowsum(P dP)),
    dQ = c dS K,  dK = c dS^T Q,  dB = dS,

summed over broadcast axes; multi-head attention wraps it in the projections
(``x W^T + b``: ``dx = G W``, ``dW = G^T x``, ``db = sum G``) and the head split.
"""

from __future__ import annotations

import math

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth, unbroadcast

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
POSITIONAL = "positional bias j / S added to the logits"
BOOL_TRUTH = "boolean masks match ground truth"


class Sdpa:
    """``scaled_dot_product_attention`` with one planted bug (or none)."""

    def __init__(self, bug=None):
        self.bug = bug

    def masks(self, L, S, attn_mask, is_causal):
        """``(bias, allowed)`` from PyTorch's arguments."""
        if is_causal:
            diagonal = S - L if self.bug == "causal aligned bottom-right" else 0
            return None, np.tril(np.ones((L, S), bool), diagonal)
        if attn_mask is None:
            return None, None
        if attn_mask.dtype == bool:
            return None, ~attn_mask if self.bug == "boolean mask inverted (True = masked)" \
                else attn_mask
        if self.bug == "-inf in a float mask added as is (NaN rows)":
            return attn_mask, None
        allowed = attn_mask != -np.inf
        return np.where(allowed, attn_mask, 0.0), allowed

    def weights(self, q, k, attn_mask, is_causal, scale):
        E, L, S = q.shape[-1], q.shape[-2], k.shape[-2]
        if scale is None:
            scale = 1.0 / (E if self.bug == "default scale 1/E" else math.sqrt(E))
        bias, allowed = self.masks(L, S, attn_mask, is_causal)
        s = np.einsum("...le,...se->...ls", q, k) * scale
        if bias is not None:
            s = s + bias
        if self.bug == POSITIONAL:
            s = s + np.arange(S) / S
        with np.errstate(invalid="ignore"):
            if allowed is None:
                e = np.exp(s - np.max(s, axis=-1, keepdims=True))
            else:
                masked = np.where(allowed, s, -np.inf)
                top = np.max(masked, axis=-1, keepdims=True)
                e = np.where(allowed, np.exp(masked - np.where(np.isfinite(top), top, 0.0)), 0.0)
            z = np.sum(e, axis=-1, keepdims=True)
            if self.bug == "masked rows weigh every key (JAX's convention)" and allowed is not None:
                e = np.where(z > 0, e, 1.0)
                z = np.sum(e, axis=-1, keepdims=True)
            if self.bug == "-inf in a float mask added as is (NaN rows)":
                return e / z, scale, allowed
            return e / np.where(z > 0, z, 1.0), scale, allowed

    def forward(self, q, k, v, attn_mask=None, *, is_causal=False, scale=None):
        p, _, _ = self.weights(q, k, attn_mask, is_causal, scale)
        return p @ v

    def vjp(self, q, k, v, G, attn_mask=None, *, is_causal=False, scale=None):
        p, c, allowed = self.weights(q, k, attn_mask, is_causal, scale)
        if self.bug == "weights of the backward ignore the mask":
            p, c, _ = Sdpa().weights(q, k, None, False, scale)
        dp = G @ np.swapaxes(v, -1, -2)
        ds = p * (dp - np.sum(p * dp, axis=-1, keepdims=True))
        dq = c * ds @ k
        dk = (1.0 if self.bug == "dk not scaled" else c) * np.swapaxes(ds, -1, -2) @ q
        dv = np.swapaxes(p, -1, -2) @ G
        dmask = None
        if attn_mask is not None and attn_mask.dtype != bool:
            dmask = unbroadcast(ds, attn_mask.shape)
            if self.bug == "mask cotangent sign flipped":
                dmask = -dmask
        return (unbroadcast(dq, q.shape), unbroadcast(dk, k.shape), unbroadcast(dv, v.shape),
                dmask)


class Mha:
    """``multi_head_attention`` through :class:`Sdpa`, with one planted bug (or none)."""

    def __init__(self, bug=None):
        self.bug = bug
        self.core = Sdpa(bug if bug == POSITIONAL else None)

    def parts(self, query, key, value, in_proj_weight, in_proj_bias, num_heads, kpm, am):
        E = query.shape[-1]
        order = (1, 0, 2) if self.bug == "in-projection blocks read as [W_k; W_q; W_v]" else (0, 1, 2)
        blocks = [(in_proj_weight[i * E:(i + 1) * E], in_proj_bias[i * E:(i + 1) * E])
                  for i in order]
        inputs = [x if x.ndim == 3 else x[None] for x in (query, key, value)]
        projected = [x @ w.T + b for x, (w, b) in zip(inputs, blocks)]
        n, L, S = inputs[0].shape[0], query.shape[-2], key.shape[-2]
        allowed = np.ones((n, num_heads, L, S), bool)
        if kpm is not None:
            allowed &= ~kpm.reshape(n, 1, 1, S)
        if am is not None:
            allowed &= ~am.reshape(-1, num_heads if am.ndim == 3 else 1, L, S)
        if self.bug == "masks read as True = may attend" and (kpm is not None or am is not None):
            allowed = ~allowed
        heads = [self.split(x, num_heads) for x in projected]
        scale = 1.0 / math.sqrt(E if self.bug == "scale 1/sqrt(E) instead of 1/sqrt(d)"
                                else E // num_heads)
        return inputs, blocks, heads, allowed, scale

    def split(self, x, num_heads):
        n, t, e = x.shape
        if self.bug == "heads interleaved (feature h + H i)":
            return x.reshape(n, t, e // num_heads, num_heads).transpose(0, 3, 1, 2)
        return x.reshape(n, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)

    def merge(self, x):
        n, h, t, d = x.shape
        if self.bug == "heads interleaved (feature h + H i)":
            return x.transpose(0, 2, 3, 1).reshape(n, t, h * d)
        return x.transpose(0, 2, 1, 3).reshape(n, t, h * d)

    def forward(self, query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                out_proj_bias, num_heads, key_padding_mask=None, attn_mask=None,
                need_weights=True, average_attn_weights=True):
        inputs, _, (Q, K, V), allowed, scale = self.parts(
            query, key, value, in_proj_weight, in_proj_bias, num_heads, key_padding_mask,
            attn_mask)
        p, _, _ = self.core.weights(Q, K, allowed, False, scale)
        out = self.merge(p @ V) @ out_proj_weight.T + out_proj_bias
        if self.bug == "weights summed over heads":
            w = p.sum(axis=1) if average_attn_weights else p
        else:
            w = p.mean(axis=1) if average_attn_weights else p
        return (out, w) if query.ndim == 3 else (out[0], w[0])

    def vjp(self, query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
            out_proj_bias, G, G_w, num_heads, key_padding_mask=None, attn_mask=None,
            need_weights=True, average_attn_weights=True):
        inputs, blocks, (Q, K, V), allowed, scale = self.parts(
            query, key, value, in_proj_weight, in_proj_bias, num_heads, key_padding_mask,
            attn_mask)
        p, _, _ = self.core.weights(Q, K, allowed, False, scale)
        G = G if G.ndim == 3 else G[None]
        G_w = G_w if query.ndim == 3 else G_w[None]
        merged = self.merge(p @ V)
        d_out_w, d_out_b = np.einsum("nle,nlf->ef", G, merged), G.sum(axis=(0, 1))
        g_heads = self.split(G @ out_proj_weight, num_heads)
        divisor = 1.0 if self.bug == "weights cotangent not divided by H" else num_heads
        g_p = G_w[:, None] / divisor if average_attn_weights else G_w
        dp = g_heads @ np.swapaxes(V, -1, -2) + g_p
        ds = p * (dp - np.sum(p * dp, axis=-1, keepdims=True))
        grads = [scale * ds @ K, scale * np.swapaxes(ds, -1, -2) @ Q,
                 np.swapaxes(p, -1, -2) @ g_heads]
        dx, dW, db = [], [], []
        for x, (w, _), g in zip(inputs, blocks, grads):
            g = self.merge(g)
            dx.append(g @ w if query.ndim == 3 else (g @ w)[0])
            dW.append(np.einsum("nte,ntf->ef", g, x))
            db.append(g.sum(axis=(0, 1)))
        if self.bug == "value bias cotangent dropped":
            db[2] = np.zeros_like(db[2])
        return (*dx, np.concatenate(dW), np.concatenate(db), d_out_w, d_out_b, None, None)


class Memory:
    """``memory_readout`` with one planted bug (or none)."""

    def __init__(self, bug=None):
        self.bug = bug

    def alpha(self, u, q):
        s = np.einsum("...nd,...d->...n", u, q)
        if self.bug == "logits scaled by 1/sqrt(d)":
            s = s / math.sqrt(u.shape[-1])
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def forward(self, u, q):
        a = self.alpha(u, q)
        if self.bug == "readout of the query-weighted rows (alpha_i <u_i, q> u_i)":
            a = a * np.einsum("...nd,...d->...n", u, q)
        return np.einsum("...n,...nd->...d", a, u)

    def vjp(self, u, q, G):
        a = self.alpha(u, q)
        g_a = np.einsum("...nd,...d->...n", u, G)
        g_s = a * (g_a - np.einsum("...n,...n->...", a, g_a)[..., None])
        du = a[..., None] * G[..., None, :]
        if self.bug != "no gradient through the weights of u":
            du = du + g_s[..., None] * q[..., None, :]
        dq = np.einsum("...n,...nd->...d", g_s, u)
        return unbroadcast(du, u.shape), unbroadcast(dq, q.shape)


def _teeth(cls, caught_by):
    return class_teeth(cls, "forward", "vjp", caught_by, caught_by)


TEETH = {
    "scaled_dot_product_attention": _teeth(Sdpa, {
        "default scale 1/E": FORWARD_CHECKS,
        "causal aligned bottom-right": {"causal equals the explicit tril mask"},
        "boolean mask inverted (True = masked)": {BOOL_TRUTH, "all-True mask equals no mask"},
        "-inf in a float mask added as is (NaN rows)": {"-inf float mask equals the boolean mask"},
        "masked rows weigh every key (JAX's convention)": {
            BOOL_TRUTH, "weights sum to 1 over allowed keys"},
        POSITIONAL: {"permuting keys and values together"},
        "weights of the backward ignore the mask": {"vjp with a boolean mask"},
        "dk not scaled": GRADIENT_CHECKS,
        "mask cotangent sign flipped": GRADIENT_CHECKS,
    }),
    "multi_head_attention": _teeth(Mha, {
        "in-projection blocks read as [W_k; W_q; W_v]": FORWARD_CHECKS,
        "heads interleaved (feature h + H i)": FORWARD_CHECKS,
        "scale 1/sqrt(E) instead of 1/sqrt(d)": FORWARD_CHECKS,
        "masks read as True = may attend": {"all-False masks equal no masks"},
        "weights summed over heads": {"weights sum to 1 over allowed keys"},
        POSITIONAL: {"permuting keys and values together"},
        "weights cotangent not divided by H": GRADIENT_CHECKS,
        "value bias cotangent dropped": GRADIENT_CHECKS,
    }),
    "memory_readout": _teeth(Memory, {
        "logits scaled by 1/sqrt(d)": FORWARD_CHECKS | {"equals attention with keys = values = u"},
        "readout of the query-weighted rows (alpha_i <u_i, q> u_i)": {
            "identical rows read out that row"},
        "no gradient through the weights of u": GRADIENT_CHECKS,
    }),
}
