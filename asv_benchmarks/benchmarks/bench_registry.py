"""Forward and VJP of every registered op with a ``bench_case``, read from the registry."""

from . import common  # noqa: F401  (pins BLAS threads before NumPy is used)

import numpy as np

from verify.registry import ops

_CASES = [(op.name, size) for op in ops() if op.bench_case for size in op.bench_sizes]


class RegistryOps:
    params = [[f"{name}@{'x'.join(map(str, size))}" for name, size in _CASES]]
    param_names = ["op@size"]

    def setup(self, key):
        name, size = _CASES[self.params[0].index(key)]
        self.op = next(op for op in ops() if op.name == name)
        case = self.op.bench_case(size)
        self.args = [case.primals[n] for n in self.op.primals]
        self.params_ = case.params
        out = self.op.forward(*self.args, **self.params_)
        self.cotangent = np.ones_like(out)

    def time_forward(self, key):
        self.op.forward(*self.args, **self.params_)

    def time_vjp(self, key):
        self.op.vjp(*self.args, self.cotangent, **self.params_)
