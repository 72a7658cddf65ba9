"""What the nn and attribution client suites share: reading a record's call, checking a client.

A framework developer writes a candidate as a plain function of its own arrays;
the record (:func:`verify.get_op`) says which arguments are primals (required
first, then the optional ones by keyword), which are differentiable and how
many cotangents a VJP takes. :class:`Call` reads that once, so each framework's
autodiff VJP (``torch.autograd.grad``, ``jax.vjp``) is written once, for every
op. A network primal (``"layers"``) is a list of :mod:`refimpl.nn` layers whose
array fields are the candidate's arrays; its cotangent is the same list with
each array field replaced by its cotangent.
"""

from __future__ import annotations

import dataclasses
import time

import verify
from verify._tree import is_array, tree_leaves, tree_map

QUICK = 8  # drawn inputs per property: the quick profile (verify.PROFILES["quick"])


@dataclasses.dataclass(frozen=True)
class Call:
    """How a record calls an op: ``f(*required, **optional, **params)`` and its VJP."""

    required: tuple
    optional: tuple
    differentiable: tuple
    outputs: tuple  # the differentiable outputs' names, in the cotangents' order
    names: tuple  # every output's name, in the forward's order
    order: tuple  # every primal's name, in the record's order

    @classmethod
    def of(cls, op_name: str) -> Call:
        op = verify.get_op(op_name)
        return cls(tuple(p.name for p in op.primals if not p.optional),
                   tuple(p.name for p in op.primals if p.optional),
                   tuple(p.name for p in op.primals if p.is_differentiable),
                   tuple(o.name for o in op.differentiable_outputs),
                   tuple(o.name for o in op.outputs), tuple(op.primal_names))

    def split(self, args, kwargs):
        """``(primals by name, cotangents, params)`` of a VJP call."""
        primals = dict(zip(self.required, args))
        primals.update({k: v for k, v in kwargs.items() if k in self.optional})
        params = {k: v for k, v in kwargs.items() if k not in self.optional}
        return primals, tuple(args[len(self.required):]), params

    def given(self, primals) -> tuple:
        """The names of the primals in ``primals``, in the record's order."""
        return tuple(n for n in self.order if n in primals)

    def forward(self, fn, primals, params):
        """``fn`` called as the record calls it, the differentiable outputs as a tuple."""
        out = fn(*(primals[n] for n in self.required),
                 **{n: primals[n] for n in self.optional if n in primals}, **params)
        if len(self.names) == 1:
            return (out,)
        values = dict(zip(self.names, out)) if isinstance(out, (tuple, list)) else out
        return tuple(values[n] if isinstance(values, dict) else getattr(values, n)
                     for n in self.outputs)


def map_layer_arrays(fn, layers):
    """``layers`` with every array field ``a`` of every layer replaced by ``fn(a)``."""
    return [dataclasses.replace(layer, **{k: fn(v) for k, v in layer.arrays().items()})
            for layer in layers]


def layer_arrays(value):
    """What autodiff differentiates of a primal: the arrays of a network or a flow (every array
    field of every layer, in :func:`verify._tree.tree_leaves` order, a list), any other primal
    as it is."""
    return value if value is None or is_array(value) else tree_leaves(value)


def with_layer_arrays(value, arrays):
    """``value`` with the part :func:`layer_arrays` returned replaced by ``arrays``."""
    if value is None or is_array(value):
        return arrays
    leaves = iter(arrays)
    return tree_map(lambda _: next(leaves), value)


def timed_check(candidate, op_name, **options):
    """:func:`verify.check` in the quick profile; the report and the seconds it took."""
    start = time.perf_counter()
    report = verify.check(candidate, op_name, max_examples=options.pop("max_examples", QUICK),
                          **options)
    return report, time.perf_counter() - start


def failed_properties(report) -> set:
    """The names of the properties a report failed."""
    return {r.property for r in report.failures}
