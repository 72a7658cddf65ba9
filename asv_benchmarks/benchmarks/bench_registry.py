"""Every registered op with a bench case, read from the registry: times and ratios to anchors.

``RegistryOps`` times the forward of each op on its first (small) bench case
(``Op.bench_case`` at ``Op.bench_sizes[0]``: at the large sizes a VJP takes
seconds, and the full suite must run in minutes), ``RegistryVJPs`` the VJP of
each op that has one. For every op with an
anchor (``Op.bench_anchor``: a GEMM of matching size, the LAPACK or SciPy
call that computes the same thing densely, a plain NumPy version) one class,
named after the op, holds ``track_<op>_over_<anchor>``: the forward's best
time over the anchor's, their repeats alternating in the same run
(:func:`common.ratio`), one value per bench size. Those ratios are what the
regression gate compares (docs/performance.rst); absolute times move with
the machine, ratios much less.

The records come from the verify installed with the commit under test, so a
record field newer than that commit reads as absent (``getattr``): its
benchmarks are missing on older commits, never an import error.
"""

import functools

from . import common
from .common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from verify.checks import call_forward, call_vjp, outputs_of
from verify.registry import get_op, ops

_CASES = [(op.name, op.bench_sizes[0]) for op in ops() if op.bench_case]


def _identity(a):
    return a


def _label(size):
    return "x".join(map(str, size))


_KEYS = [f"{name}@{_label(size)}" for name, size in _CASES]


class _RegistryCase:
    """An op's first bench case, by the key ``op@size``."""

    param_names = ["op@size"]

    def setup(self, key):
        name, size = _CASES[_KEYS.index(key)]
        self.op = get_op(name)
        self.case = self.op.bench_case(size)

    def forward(self):
        return call_forward(self.op, self.op.forward, self.case.primals, self.case.params, _identity)


class RegistryOps(_RegistryCase):
    """The forward of every op with a bench case."""

    params = [_KEYS]

    def time_forward(self, key):
        self.forward()


class RegistryVJPs(_RegistryCase):
    """The VJP of every op with a bench case and a VJP, with cotangents of ones."""

    params = [[key for key, (name, _) in zip(_KEYS, _CASES) if get_op(name).vjp is not None]]

    def setup(self, key):
        super().setup(key)
        out = outputs_of(self.op, self.forward())
        self.cotangents = [np.ones_like(np.asarray(out[o.name]))
                           for o in self.op.differentiable_outputs]

    def time_vjp(self, key):
        call_vjp(self.op, self.op.vjp, self.case.primals, self.cotangents, self.case.params, _identity)


class _OverAnchor:
    """The op's forward over its anchor, both built from the same bench case."""

    op = None
    sizes: dict = {}
    timeout = 120

    def setup(self, size):
        case = self.op.bench_case(self.sizes[size])
        self.forward = functools.partial(call_forward, self.op, self.op.forward, case.primals,
                                         case.params, _identity)
        with_reference = getattr(self.op, "anchor", None)  # Op.anchor is newer than some commits
        self.anchor = with_reference(case) if with_reference else self.op.bench_anchor.build(case)


def _over_anchor_class(op):
    """``class <OpName>(_OverAnchor)`` with the method ``track_<op>_over_<anchor>``."""

    def track(self, size):
        return common.ratio(self.forward, self.anchor)

    track.__name__ = f"track_{op.name}_over_{op.bench_anchor.name}"
    track.unit = "ratio"
    sizes = {_label(size): size for size in op.bench_sizes}
    name = "".join(part[:1].upper() + part[1:] for part in op.name.split("_"))
    return type(name, (_OverAnchor,), {
        "op": op, "sizes": sizes, "params": [list(sizes)], "param_names": ["size"],
        track.__name__: track, "__doc__": f"{op.name} over {op.bench_anchor.name}.",
    })


globals().update({cls.__name__: cls for cls in map(_over_anchor_class, (
    op for op in ops() if getattr(op, "bench_anchor", None) is not None))})
