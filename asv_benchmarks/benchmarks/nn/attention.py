"""Scaled dot-product attention: forward and VJP against plain NumPy in the same run, and memory.

The baseline is the textbook ``softmax(q k^T / sqrt(E)) v`` in plain NumPy
(and its backward from stored weights); PyTorch's
``F.scaled_dot_product_attention`` (CPU, forward and autograd backward) is
measured in the same run when it is importable. ``track_*_peak_over_weights``
reports the peak memory traced during a call in units of one ``L x L`` float64
matrix, the weights a reference that materialises them cannot do without.
Single head, ``E = 64``, float64, one BLAS thread.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import importlib.util
import math
import tracemalloc

import numpy as np

from refimpl.nn.attention import (
    multi_head_attention,
    multi_head_attention_vjp,
    scaled_dot_product_attention,
    scaled_dot_product_attention_vjp,
)

LENGTHS = [128, 256, 512, 1024, 2048]
E = 64


def inputs(L):
    gen = np.random.default_rng(0)
    return [gen.standard_normal((L, E)) for _ in range(4)]  # q, k, v and the cotangent


def numpy_forward(q, k, v):
    """The baseline: ``softmax(q k^T / sqrt(E)) v`` with the usual max shift."""
    s = q @ k.T / math.sqrt(q.shape[-1])
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v, p


def numpy_backward(q, k, v, p, g):
    """The baseline's backward from the stored weights ``p``."""
    c = 1.0 / math.sqrt(q.shape[-1])
    dp = g @ v.T
    ds = p * (dp - np.sum(p * dp, axis=-1, keepdims=True))
    return c * ds @ k, c * ds.T @ q, p.T @ g


def peak_bytes(fn) -> int:
    """Peak memory traced while ``fn`` runs (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Attention:
    params = [LENGTHS]
    param_names = ["L"]
    timeout = 600

    def setup(self, L):
        self.q, self.k, self.v, self.g = inputs(L)
        self.p = numpy_forward(self.q, self.k, self.v)[1]

    def forward(self):
        return scaled_dot_product_attention(self.q, self.k, self.v)

    def vjp(self):
        return scaled_dot_product_attention_vjp(self.q, self.k, self.v, self.g)

    def time_forward(self, L):
        self.forward()

    def time_vjp(self, L):
        self.vjp()

    def time_numpy_forward(self, L):
        numpy_forward(self.q, self.k, self.v)

    def track_forward_over_numpy(self, L):
        return common.ratio(self.forward, lambda: numpy_forward(self.q, self.k, self.v))

    def track_vjp_over_numpy_backward(self, L):
        """refimpl's VJP (which recomputes the weights) over the baseline's backward from stored ones."""
        return common.ratio(self.vjp, lambda: numpy_backward(self.q, self.k, self.v, self.p, self.g))

    def track_vjp_over_numpy_forward(self, L):
        return common.ratio(self.vjp, lambda: numpy_forward(self.q, self.k, self.v))

    def track_forward_peak_over_weights(self, L):
        return peak_bytes(self.forward) / (8 * L * L)

    def track_vjp_peak_over_weights(self, L):
        return peak_bytes(self.vjp) / (8 * L * L)

    for _name in ("forward_over_numpy", "vjp_over_numpy_backward", "vjp_over_numpy_forward",
                  "forward_peak_over_weights", "vjp_peak_over_weights"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name


class TorchAttention:
    """PyTorch's ``F.scaled_dot_product_attention`` on CPU against the same NumPy baseline."""

    params = [LENGTHS]
    param_names = ["L"]
    timeout = 600

    def setup(self, L):
        if importlib.util.find_spec("torch") is None:
            raise NotImplementedError("PyTorch is not installed")
        import torch

        torch.set_num_threads(1)
        self.torch, self.F = torch, torch.nn.functional
        self.arrays = inputs(L)
        self.tensors = [torch.from_numpy(a) for a in self.arrays]

    def torch_forward(self):
        q, k, v, _ = self.tensors
        return self.F.scaled_dot_product_attention(q, k, v)

    def torch_vjp(self):
        q, k, v, g = (t.detach().requires_grad_(i < 3) for i, t in enumerate(self.tensors))
        out = self.F.scaled_dot_product_attention(q, k, v)
        return self.torch.autograd.grad(out, (q, k, v), g)

    def track_torch_forward_over_numpy(self, L):
        q, k, v, _ = self.arrays
        return common.ratio(self.torch_forward, lambda: numpy_forward(q, k, v))

    def track_torch_vjp_over_numpy_forward(self, L):
        """Forward and backward by autograd (a VJP from scratch, as refimpl's)."""
        q, k, v, _ = self.arrays
        return common.ratio(self.torch_vjp, lambda: numpy_forward(q, k, v))

    def track_refimpl_vjp_over_torch_vjp(self, L):
        q, k, v, g = self.arrays
        return common.ratio(lambda: scaled_dot_product_attention_vjp(q, k, v, g), self.torch_vjp)

    for _name in ("torch_forward_over_numpy", "torch_vjp_over_numpy_forward",
                  "refimpl_vjp_over_torch_vjp"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name


class MultiHeadAttention:
    """A transformer-sized layer: batch 8, L = 128, E = 256, 8 heads; VJP over forward."""

    def setup(self):
        gen = np.random.default_rng(0)
        E = 256
        self.x = gen.standard_normal((8, 128, E))
        self.params = [gen.standard_normal((3 * E, E)) / 16, gen.standard_normal(3 * E),
                       gen.standard_normal((E, E)) / 16, gen.standard_normal(E)]
        self.g = gen.standard_normal((8, 128, E))

    def forward(self):
        return multi_head_attention(self.x, self.x, self.x, *self.params, 8)

    def vjp(self):
        return multi_head_attention_vjp(self.x, self.x, self.x, *self.params, self.g, None, 8)

    def time_forward(self):
        self.forward()

    def time_vjp(self):
        self.vjp()

    def track_vjp_over_forward(self):
        return common.ratio(self.vjp, self.forward)

    track_vjp_over_forward.unit = "ratio"
