"""PyTorch's attention, softmax and distillation pieces pass refimpl's checks as candidates.

``F.scaled_dot_product_attention`` is checked as it is (same argument names and
conventions, boolean masks included); ``nn.MultiheadAttention``'s functional
form with ``batch_first`` layouts, on cases where every query has an allowed
key: where none has, PyTorch returns NaN (docs/conventions.rst, section 4.9),
which the last test pins down. VJPs come from ``torch.autograd.grad``.
Skipped when PyTorch is not installed (``pip install torch==2.13.0``).
"""

import numpy as np
import pytest

import verify
from verify.candidate import candidate_properties
from verify.ops.nn.attention import _mha_allowed, _mha_cases

torch = pytest.importorskip("torch")
F = torch.nn.functional


def autograd_vjp(forward, n_primals):
    """``vjp(*primals, *cotangents, **kwargs)`` of ``forward`` by ``torch.autograd.grad``.

    The first ``n_primals`` arguments are the primals; floating ones get cotangents
    (None for the others, and for outputs that are None).
    """
    def vjp(*args, **kwargs):
        primals, cotangents = list(args[:n_primals]), args[n_primals:]
        masks = {k: v for k, v in kwargs.items() if torch.is_tensor(v)}
        leaves = [p.detach().requires_grad_() for p in primals]
        floats = {k: v.detach().requires_grad_() for k, v in masks.items()
                  if v.is_floating_point()}
        with torch.enable_grad():
            out = forward(*leaves, **{**kwargs, **floats})
            outs = out if isinstance(out, tuple) else (out,)
            pairs = [(o, c) for o, c in zip(outs, cotangents) if o is not None and c is not None]
            grads = torch.autograd.grad([o for o, _ in pairs], leaves + list(floats.values()),
                                        [c for _, c in pairs], allow_unused=True)
        grads = [torch.zeros_like(x) if g is None else g for g, x in
                 zip(grads, leaves + list(floats.values()))]
        named = dict(zip(floats, grads[len(leaves):]))
        return (*grads[:len(leaves)], *[named.get(k) for k in masks])

    return vjp


def test_torch_sdpa_passes_every_check():
    """Torch's function as it is: float masks, boolean masks, causal, broadcasting, VJPs."""
    for dtype in ("float64", "float32"):
        report = verify.check(F.scaled_dot_product_attention, "scaled_dot_product_attention",
                              vjp=autograd_vjp(F.scaled_dot_product_attention, 3),
                              from_numpy="torch", dtype=dtype, max_examples=15)
        assert report.passed, str(report)
        assert not any(r.skipped for r in report.results)


def torch_mha(query, key, value, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
              num_heads, key_padding_mask=None, attn_mask=None, need_weights=True,
              average_attn_weights=True):
    """``F.multi_head_attention_forward`` with batch-first inputs (it takes (L, N, E))."""
    batched = query.ndim == 3
    q, k, v = ((x.transpose(0, 1) if batched else x) for x in (query, key, value))
    out, weights = F.multi_head_attention_forward(
        q, k, v, query.shape[-1], num_heads, in_proj_weight, in_proj_bias, None, None, False,
        0.0, out_proj_weight, out_proj_bias, training=True, key_padding_mask=key_padding_mask,
        need_weights=need_weights, attn_mask=attn_mask, average_attn_weights=average_attn_weights)
    return (out.transpose(0, 1) if batched else out), weights


def _every_query_attends(case):
    query, key = case.primals["query"], case.primals["key"]
    batched = [x if x.ndim == 3 else x[None] for x in (query, key)]
    kpm, am = case.primals.get("key_padding_mask"), case.primals.get("attn_mask")
    allowed = _mha_allowed(*batched, case.params["num_heads"],
                           None if kpm is None else kpm.reshape(batched[0].shape[0], -1), am)
    return bool(np.all(np.any(allowed, axis=-1)))


def _attending_cases():
    return _mha_cases().filter(_every_query_attends)


# Its cases are its own (one head), fully masked queries included: PyTorch's NaN there is
# the deviation the last test pins down.
OWN_CASES = "one head with identity projections equals plain attention"


def test_torch_multi_head_attention_passes_where_every_query_attends():
    names = [p.name for p in candidate_properties(verify.get_op("multi_head_attention"))
             if p.name != OWN_CASES]
    report = verify.check(torch_mha, "multi_head_attention", vjp=autograd_vjp(torch_mha, 7),
                          from_numpy="torch", cases=_attending_cases, max_examples=15,
                          properties=names)
    assert report.passed, str(report)
    assert not any(r.skipped for r in report.results) and len(report.results) == len(names)


def test_torch_multi_head_attention_gives_nan_for_a_fully_masked_query():
    """The documented deviation: refimpl gives zero weights, PyTorch NaN."""
    case = verify.Case({"query": np.ones((1, 2, 2)), "key": np.ones((1, 3, 2)),
                        "value": np.ones((1, 3, 2)), "in_proj_weight": np.ones((6, 2)),
                        "in_proj_bias": np.zeros(6), "out_proj_weight": np.eye(2),
                        "out_proj_bias": np.zeros(2),
                        "key_padding_mask": np.array([[True, True, True]])},
                       {"num_heads": 1, "average_attn_weights": True})
    error = verify.replay(torch_mha, "multi_head_attention", "matches ground truth", case,
                          from_numpy="torch")
    assert np.isnan(error)


def test_torch_softmax_and_log_softmax_pass():
    for name, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        def forward(x, axis=-1, fn=fn):
            return fn(x, dim=axis)

        report = verify.check(forward, name, vjp=autograd_vjp(forward, 1), from_numpy="torch")
        assert report.passed, str(report)


def torch_distillation(student_logits, teacher_logits, labels=None, *, temperature, alpha=0.5):
    """Hinton's loss from PyTorch's pieces: T^2 KLDivLoss(batchmean) and cross_entropy."""
    soft = temperature ** 2 * F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                                       F.softmax(teacher_logits / temperature, dim=1),
                                       reduction="batchmean")
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def test_torch_distillation_loss_passes():
    for dtype in ("float64", "float32"):
        report = verify.check(torch_distillation, "distillation_loss",
                              vjp=autograd_vjp(torch_distillation, 2), from_numpy="torch",
                              dtype=dtype)
        assert report.passed, str(report)


def test_torch_memory_readout_through_sdpa_passes():
    def readout(u, q):
        return F.scaled_dot_product_attention(q[..., None, :], u, u, scale=1.0)[..., 0, :]

    report = verify.check(readout, "memory_readout", vjp=autograd_vjp(readout, 2),
                          from_numpy="torch")
    assert report.passed, str(report)
