"""Batch norm: registered properties on every backend, merging into the layer before, bad input."""

import numpy as np
import pytest

from refimpl.nn import BatchNorm, Conv2d, Linear, ReLU, merge_batchnorm
from refimpl.nn import normalization as B
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.normalization"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_merge_matches_pytorch_formula():
    gen = np.random.default_rng(2)
    w, b = gen.standard_normal((3, 4)), gen.standard_normal(3)
    g, beta = gen.uniform(1, 2, 3), gen.standard_normal(3)
    mean, var = gen.standard_normal(3), gen.uniform(1, 2, 3)
    (merged,) = merge_batchnorm([Linear(w, b), BatchNorm(g, beta, mean, var, eps=1e-3)])
    s = g / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(merged.weight, w * s[:, None], rtol=1e-15)
    np.testing.assert_allclose(merged.bias, (b - mean) * s + beta, rtol=1e-14)


def test_merge_keeps_the_convolution_geometry():
    gen = np.random.default_rng(3)
    conv = Conv2d(gen.standard_normal((2, 1, 3, 3)), None, stride=2, padding=1)
    (merged,) = merge_batchnorm([conv, BatchNorm(*[gen.uniform(1, 2, 2) for _ in range(4)])])
    assert isinstance(merged, Conv2d) and merged.stride == (2, 2) and merged.padding == (1, 1)


def test_merge_errors_name_the_layer():
    c = np.ones(3)
    conv = Conv2d(np.ones((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"layer 0 \(BatchNorm\) must directly follow"):
        merge_batchnorm([BatchNorm(c, c, c, c)])
    with pytest.raises(ValueError, match=r"layer 2 \(BatchNorm\) must directly follow"):
        merge_batchnorm([conv, ReLU(), BatchNorm(c, c, c, c)])
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) has 2 channels but layer 0 has 3"):
        merge_batchnorm([conv, BatchNorm(*[np.ones(2)] * 4)])


@pytest.mark.parametrize("make, match", [
    (lambda: BatchNorm(*[np.ones(2)] * 3, np.ones(3)), r"running_var must have shape \(C,\)"),
    (lambda: BatchNorm(*[np.ones(2)] * 4, eps=0.0), "eps must be a positive number"),
    (lambda: BatchNorm(*[np.ones(2)] * 4).forward(np.ones((2, 3))), "x must have 2 channels"),
])
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_planted_merge_bug_is_caught(monkeypatch):
    original = B._merged

    def shifted(prev, bn, index):
        merged = original(prev, bn, index)
        return B.dataclasses.replace(merged, bias=merged.bias + 0.01)

    monkeypatch.setattr(B, "_merged", shifted)
    names = {"merge_batchnorm preserves outputs"}
    assert failing_properties("sequential", among=names) == names
