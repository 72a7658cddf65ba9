"""nflows' layers pass refimpl's checks under the documented mapping (skipped without PyTorch and nflows).

Mapping (docs/conventions.rst, sections 3.2, 3.4, 3.5): ``AffineCouplingTransform(mask)`` is
``affine_coupling`` with the defaults (``scale="nflows"``, ``split="shift_first"``) and the
conditioner's weights loaded into ``torch.nn.Linear``; ``ActNorm``'s ``log_scale`` and ``shift`` are
refimpl's; ``LULinear``'s vectors are the entries of ``lower`` and ``upper`` on
``numpy.tril_indices(d, -1)`` and ``numpy.triu_indices(d, 1)``. Forward passes only: nflows' VJPs
are torch's autograd, outside this mapping.
"""

import numpy as np
import pytest

import verify
from verify import Case

torch = pytest.importorskip("torch")
transforms = pytest.importorskip("nflows.transforms")

CHECKS = ["matches ground truth", "log-determinant of the Jacobian"]


def _numpy(*tensors):
    return tuple(t.detach().numpy() for t in tensors)


def _torch_net(conditioner, dtype):
    modules = []
    for layer in conditioner:
        kind = type(layer).__name__
        if kind == "Linear":
            linear = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[0]).to(dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.weight))
                linear.bias.copy_(torch.from_numpy(layer.bias))
            modules.append(linear)
        else:
            modules.append({"Tanh": torch.nn.Tanh, "ReLU": torch.nn.ReLU}[kind]())
    return torch.nn.Sequential(*modules)


def nflows_affine_coupling(x, mask, conditioner, scale="nflows", split="shift_first", clamp=2.0):
    net = _torch_net(conditioner, torch.from_numpy(x).dtype)
    layer = transforms.AffineCouplingTransform(torch.from_numpy(mask.astype(np.int64)),
                                               lambda d_in, d_out: lambda h, context=None: net(h))
    return _numpy(*layer(torch.from_numpy(x)))


def nflows_actnorm(x, log_scale, shift):
    layer = transforms.ActNorm(log_scale.shape[0]).to(torch.from_numpy(x).dtype).eval()
    with torch.no_grad():
        layer.log_scale.copy_(torch.from_numpy(log_scale))
        layer.shift.copy_(torch.from_numpy(shift))
    return _numpy(*layer(torch.from_numpy(x)))


def nflows_lu_linear(x, lower, upper, unconstrained_diag, bias=None):
    d = x.shape[1]
    layer = transforms.LULinear(d).to(torch.from_numpy(x).dtype)
    with torch.no_grad():
        layer.lower_entries.copy_(torch.from_numpy(lower[np.tril_indices(d, -1)]))
        layer.upper_entries.copy_(torch.from_numpy(upper[np.triu_indices(d, 1)]))
        layer.unconstrained_upper_diag.copy_(torch.from_numpy(unconstrained_diag))
        layer.bias.copy_(torch.from_numpy(np.zeros(d, x.dtype) if bias is None else bias))
    return _numpy(*layer(torch.from_numpy(x)))


def _nflows_defaults():
    return verify.get_op("affine_coupling").cases().map(
        lambda c: Case(c.primals, {"scale": "nflows", "split": "shift_first", "clamp": 2.0}))


def _image_free(op):
    """nflows' ActNorm takes (n, c) and (n, c, H, W) inputs."""
    return lambda: verify.get_op(op).cases().filter(lambda c: c.primals["x"].ndim in (2, 4))


@pytest.mark.parametrize("op, candidate, cases", [
    ("affine_coupling", nflows_affine_coupling, _nflows_defaults),
    ("actnorm", nflows_actnorm, _image_free("actnorm")),
    ("lu_linear", nflows_lu_linear, None),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nflows_layer_passes(op, candidate, cases, dtype):
    report = verify.check(candidate, op, dtype=dtype, max_examples=10, cases=cases,
                          properties=[*CHECKS, "matches refimpl forward"])
    assert report.passed, str(report)


def test_nflows_is_not_glows_split():
    # The same candidate checked against split="interleaved" (Glow's): the conventions differ.
    glow_split = verify.get_op("affine_coupling").cases().map(
        lambda c: Case(c.primals, {"scale": "nflows", "split": "interleaved", "clamp": 2.0}))
    report = verify.check(nflows_affine_coupling, "affine_coupling", max_examples=10,
                          cases=lambda: glow_split, properties=["matches ground truth"])
    assert not report.passed
