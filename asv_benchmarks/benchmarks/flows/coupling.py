"""Affine coupling: forward, inverse and VJP over the conditioner's own forward pass, same run.

A RealNVP layer on ``d`` features (half transformed) with a conditioner
``Linear(d/2, d) -> Tanh -> Linear(d, d)``, batch 256. Beyond the
conditioner the layer gathers the two halves, squashes the scale and
scatters the output back: ``track_forward_over_conditioner`` and
``track_inverse_over_conditioner`` report that overhead as a ratio to the
conditioner alone (``refimpl.nn.sequential``). With PyTorch and nflows
importable (torch==2.13.0), ``track_forward_over_nflows`` compares with
nflows' ``AffineCouplingTransform`` on the same weights (CPU, one thread).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows import affine_coupling, affine_coupling_inverse, affine_coupling_vjp
from refimpl.nn import sequential
from verify.strategies import conditioner

FEATURES = [64, 256, 1024]
BATCH = 256


def coupling_inputs(d, batch=BATCH):
    gen = np.random.default_rng(0)
    mask = np.arange(d) >= d // 2
    m = int(mask.sum())
    return gen.standard_normal((batch, d)), mask, conditioner(gen, d - m, 2 * m, d)


def nflows_twin(x, mask, net):
    """nflows' AffineCouplingTransform with the same conditioner weights, or None without torch/nflows."""
    try:
        import torch
        from nflows.transforms.coupling import AffineCouplingTransform
    except ImportError:
        return None
    torch.set_num_threads(1)
    linear1, _, linear2 = net

    def make_net(d_in, d_out):
        layers = torch.nn.Sequential(torch.nn.Linear(d_in, net[0].weight.shape[0]), torch.nn.Tanh(),
                                     torch.nn.Linear(net[0].weight.shape[0], d_out)).double()
        with torch.no_grad():
            for t, layer in ((layers[0], linear1), (layers[2], linear2)):
                t.weight.copy_(torch.from_numpy(layer.weight))
                t.bias.copy_(torch.from_numpy(layer.bias))
        return lambda inputs, context=None: layers(inputs)

    transform = AffineCouplingTransform(torch.from_numpy(mask.astype(np.int64)), make_net)
    inputs = torch.from_numpy(x)
    return lambda: transform(inputs)


class AffineCoupling:
    params = [FEATURES]
    param_names = ["d"]
    timeout = 300

    def setup(self, d):
        self.x, self.mask, self.net = coupling_inputs(d)
        self.z = affine_coupling(self.x, self.mask, self.net).z
        self.g, self.gl = np.ones_like(self.x), np.ones(BATCH)
        self.x_a = self.x[:, ~self.mask]
        self.nflows = nflows_twin(self.x, self.mask, self.net)

    def _forward(self):
        return affine_coupling(self.x, self.mask, self.net)

    def _inverse(self):
        return affine_coupling_inverse(self.z, self.mask, self.net)

    def _conditioner(self):
        return sequential(self.net, self.x_a)

    def time_forward(self, d):
        self._forward()

    def time_inverse(self, d):
        self._inverse()

    def time_vjp(self, d):
        affine_coupling_vjp(self.x, self.mask, self.net, self.g, self.gl)

    def time_baseline_conditioner(self, d):
        self._conditioner()

    def track_forward_over_conditioner(self, d):
        return common.ratio(self._forward, self._conditioner)

    def track_inverse_over_conditioner(self, d):
        return common.ratio(self._inverse, self._conditioner)

    def track_forward_over_nflows(self, d):
        if self.nflows is None:
            return float("nan")  # torch or nflows not importable in this environment
        return common.ratio(self._forward, self.nflows)

    for _name in ("forward_over_conditioner", "inverse_over_conditioner", "forward_over_nflows"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
