"""Attention: registered properties on every backend, conventions, planted bugs, bad input."""

import numpy as np
import pytest

from refimpl.nn import (
    memory_readout,
    multi_head_attention,
    multi_head_attention_vjp,
    scaled_dot_product_attention,
    scaled_dot_product_attention_vjp,
)
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.attention"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _qkv(seed=0, L=3, S=4, E=2, Ev=3):
    gen = np.random.default_rng(seed)
    return gen.standard_normal((L, E)), gen.standard_normal((S, E)), gen.standard_normal((S, Ev))


def test_fully_masked_row_gives_zeros_or_the_mean_of_the_values():
    q, k, v = _qkv()
    mask = np.ones((3, 4), bool)
    mask[1] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    np.testing.assert_array_equal(out[1], 0.0)
    uniform = scaled_dot_product_attention(q, k, v, attn_mask=mask, fully_masked="uniform")
    np.testing.assert_allclose(uniform[1], v.mean(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(uniform[[0, 2]], out[[0, 2]])
    G = np.ones_like(out)
    for mode in ("zero", "uniform"):
        c = scaled_dot_product_attention_vjp(q, k, v, G, attn_mask=mask, fully_masked=mode)
        np.testing.assert_array_equal(c.q[1], 0.0)  # the row's weights do not depend on q
        assert c.attn_mask is None
    c = scaled_dot_product_attention_vjp(q, k, v, G, attn_mask=mask, fully_masked="uniform")
    np.testing.assert_allclose(c.v, scaled_dot_product_attention_vjp(
        q, k, v, G, attn_mask=mask).v + 0.25 * G[1], rtol=1e-14)


def test_causal_is_top_left_aligned():
    """Query i sees keys j <= i also when L > S (the last rows see every key) and L < S."""
    q, k, v = _qkv(L=4, S=2)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(out[0], v[0], rtol=1e-14)
    np.testing.assert_allclose(out[2:], scaled_dot_product_attention(q, k, v)[2:], rtol=1e-14)
    q, k, v = _qkv(L=2, S=4)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, is_causal=True)[0], v[0],
                               rtol=1e-14)


def test_planted_bottom_right_causal_mask_is_caught(monkeypatch):
    import refimpl.nn.attention as module

    def bottom_right(xp, device, L, S):
        i = xp.reshape(xp.arange(L, device=device), (L, 1))
        return xp.reshape(xp.arange(S, device=device), (1, S)) <= i + (S - L)

    monkeypatch.setattr(module, "_causal", bottom_right)
    failed = failing_properties("scaled_dot_product_attention",
                                among={"causal equals the explicit tril mask",
                                       "boolean masks match ground truth", "matches ground truth"})
    assert {"causal equals the explicit tril mask", "boolean masks match ground truth"} <= failed


def test_planted_unnormalised_fully_masked_rows_are_caught(monkeypatch):
    """A softmax that divides 0 by 0 on rows without allowed keys: NaN, caught."""
    import refimpl.nn.attention as module

    def nan_rows(xp, x, axis=-1, allowed=None):
        e = xp.where(allowed, xp.exp(x - xp.max(x, axis=axis, keepdims=True)), 0.0) \
            if allowed is not None else xp.exp(x - xp.max(x, axis=axis, keepdims=True))
        return e / xp.sum(e, axis=axis, keepdims=True)

    monkeypatch.setattr(module, "probabilities", nan_rows)
    with np.errstate(invalid="ignore"):
        failed = failing_properties("scaled_dot_product_attention",
                                    among={"weights sum to 1 over allowed keys",
                                           "-inf float mask equals the boolean mask"})
    assert failed == {"weights sum to 1 over allowed keys", "-inf float mask equals the boolean mask"}


def test_multi_head_attention_need_weights_and_fully_masked_query():
    gen = np.random.default_rng(1)
    E, H = 4, 2
    x = gen.standard_normal((2, 3, E))
    params = [gen.standard_normal((3 * E, E)), gen.standard_normal(3 * E),
              gen.standard_normal((E, E)), gen.standard_normal(E)]
    padding = np.zeros((2, 3), bool)
    padding[0] = True  # sample 0: every key is padding
    out, w = multi_head_attention(x, x, x, *params, H, key_padding_mask=padding)
    np.testing.assert_allclose(out[0], np.broadcast_to(params[3], (3, E)), rtol=1e-14)
    np.testing.assert_array_equal(w[0], 0.0)
    out2, none = multi_head_attention(x, x, x, *params, H, key_padding_mask=padding,
                                      need_weights=False)
    assert none is None
    np.testing.assert_array_equal(out2, out)
    c = multi_head_attention_vjp(x, x, x, *params, np.ones_like(out), None, H,
                                 key_padding_mask=padding, need_weights=False)
    np.testing.assert_allclose(c.in_proj_bias[E:2 * E], 0.0, atol=1e-12)  # the key bias: 0
    assert c.key_padding_mask is None and c.attn_mask is None
    with pytest.raises(ValueError, match="cotangent_weights must be None when need_weights=False"):
        multi_head_attention_vjp(x, x, x, *params, np.ones_like(out), np.ones((2, 3, 3)), H,
                                 need_weights=False)


def test_memory_readout_of_one_row_is_that_row():
    u = np.array([[1.0, -2.0]])
    np.testing.assert_array_equal(memory_readout(u, np.array([5.0, 3.0])), u[0])


@pytest.mark.parametrize("call, error, match", [
    (lambda q, k, v: scaled_dot_product_attention(q, k[:, :1], v), ValueError,
     r"k must have q's feature size E = 2"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v[:2]), ValueError,
     r"v must have k's length S = 4"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), bool),
                                                  is_causal=True), ValueError,
     "attn_mask and is_causal=True cannot both be given"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), int)),
     TypeError, "attn_mask must be boolean .* or of q's dtype float64"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=np.ones((2, 4), bool)),
     ValueError, r"attn_mask must broadcast to the weights' shape"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=np.full((3, 4), np.inf)),
     ValueError, "attn_mask must not contain NaN or \\+inf"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v, scale=np.nan), ValueError,
     "scale must be a finite number"),
    (lambda q, k, v: scaled_dot_product_attention(q, k, v, fully_masked="nan"), ValueError,
     "fully_masked must be one of"),
    (lambda q, k, v: scaled_dot_product_attention(q * 1e200, k * 1e200, v), ValueError,
     "the logits scale \\* q k\\^T \\+ attn_mask overflow"),
    (lambda q, k, v: scaled_dot_product_attention(q, k.astype(np.float32), v), TypeError,
     "share one dtype"),
    (lambda q, k, v: scaled_dot_product_attention_vjp(q, k, v, np.ones((3, 2))), ValueError,
     r"cotangent must have the output's shape \(3, 3\)"),
    (lambda q, k, v: memory_readout(k, q[0, :1]), ValueError, "q must have shape \\(\\.\\.\\., d\\)"),
])
@pytest.mark.filterwarnings("ignore:overflow encountered")  # the overflow the error reports
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(*_qkv())


def test_bad_multi_head_input():
    x = np.ones((1, 2, 4))
    params = [np.ones((12, 4)), np.ones(12), np.ones((4, 4)), np.ones(4)]
    with pytest.raises(ValueError, match="num_heads must be a positive int dividing E = 4"):
        multi_head_attention(x, x, x, *params, 3)
    with pytest.raises(ValueError, match=r"in_proj_weight must have shape \(12, 4\)"):
        multi_head_attention(x, x, x, np.ones((4, 4)), *params[1:], 2)
    with pytest.raises(ValueError, match="key_padding_mask must be a boolean array"):
        multi_head_attention(x, x, x, *params, 2, key_padding_mask=np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"attn_mask must be a boolean array .* \(2, 2\) or "
                                         r"\(2, 2, 2\)"):
        multi_head_attention(x, x, x, *params, 2, attn_mask=np.zeros((3, 2, 2), bool))
    with pytest.raises(ValueError, match="key must have shape"):
        multi_head_attention(x, x[0], x, *params, 2)
