"""Forward and VJP of every registered op with a ``bench_case``, read from the registry."""

from . import common  # noqa: F401  (pins BLAS threads before NumPy is used)

import numpy as np

from verify.checks import call_forward, call_vjp, outputs_of
from verify.registry import get_op, ops

_CASES = [(op.name, size) for op in ops() if op.bench_case for size in op.bench_sizes]


def _identity(a):
    return a


class RegistryOps:
    params = [[f"{name}@{'x'.join(map(str, size))}" for name, size in _CASES]]
    param_names = ["op@size"]

    def setup(self, key):
        name, size = _CASES[self.params[0].index(key)]
        self.op = get_op(name)
        self.case = self.op.bench_case(size)
        out = outputs_of(self.op, self.forward())
        self.cotangents = [np.ones_like(np.asarray(out[o.name]))
                           for o in self.op.differentiable_outputs]
        if self.op.vjp is None:
            self.time_vjp = None

    def forward(self):
        return call_forward(self.op, self.op.forward, self.case.primals, self.case.params, _identity)

    def time_forward(self, key):
        self.forward()

    def time_vjp(self, key):
        call_vjp(self.op, self.op.vjp, self.case.primals, self.cotangents, self.case.params, _identity)
