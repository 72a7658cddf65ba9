"""What the framework client suites share: the calling convention, checks and planted bugs.

A client suite writes a candidate per op with the framework's own functions and takes
its VJP from the framework's autodiff. ``verify`` calls a VJP as
``vjp(*required primals, *cotangents, **optional primals, **params)``, one cotangent per
differentiable output; :func:`split_vjp_call` takes such a call apart and
:func:`differentiable_outputs` picks the outputs the cotangents belong to, so that
``torch.autograd.grad`` and ``jax.vjp`` are wrapped once per framework, not once per op.

:class:`Client` records how one op is checked: its candidate, the inputs it is checked on
when the framework only represents part of the op's domain, and the checks left out with
the reason. :class:`PlantedBug` is a realistic framework mistake and the check that must
name it. Both suites run the same profile (``REFIMPL_VERIFY_PROFILE``): the quick
profile's examples under ``ci``, so that the suites stay inside CI's time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import verify
from verify.candidate import candidate_properties
from verify.engine import PROFILES
from verify.registry import Op
from verify.testing import test_profile

DTYPES = ("float64", "float32")


def max_examples() -> int:
    """Examples per check: the quick profile's under ``ci`` (the default), else the profile's."""
    profile = test_profile()
    return PROFILES["quick" if profile == "ci" else profile]["max_examples"]


# -- the calling convention ---------------------------------------------------------------


def split_vjp_call(op: Op, args: tuple, kwargs: dict) -> tuple[dict, list, dict]:
    """``(primals by name, cotangents, params)`` of a call ``vjp(*required, *cotangents, **rest)``."""
    required = [p.name for p in op.primals if not p.optional]
    optional = {p.name for p in op.primals if p.optional}
    primals = dict(zip(required, args[:len(required)]))
    primals.update({k: v for k, v in kwargs.items() if k in optional})
    params = {k: v for k, v in kwargs.items() if k not in optional}
    return primals, list(args[len(required):]), params


def call_forward(op: Op, forward: Callable, primals: dict, params: dict):
    """``forward(*required, **optional, **params)`` from primals by name."""
    args = [primals[p.name] for p in op.primals if not p.optional]
    optional = {p.name: primals[p.name] for p in op.primals if p.optional and p.name in primals}
    return forward(*args, **optional, **params)


def differentiable_outputs(op: Op, result) -> list:
    """The outputs that take a cotangent, in output order (a single output is the result)."""
    if len(op.outputs) == 1:
        return [result]
    return [value for value, output in zip(result, op.outputs) if output.is_differentiable]


def differentiable_primals(op: Op, primals: dict) -> list[str]:
    """Names of the given primals that take a cotangent."""
    return [p.name for p in op.primals if p.name in primals and p.is_differentiable]


# -- autodiff as the VJP -------------------------------------------------------------------


def torch_autograd_vjp(op_name: str, forward: Callable) -> Callable:
    """The VJP of ``forward`` by ``torch.autograd.grad``, in verify's calling convention.

    Cotangents of primals the outputs do not depend on are zeros (``materialize_grads``).
    """
    import torch

    op = verify.get_op(op_name)

    def vjp(*args, **kwargs):
        primals, cotangents, params = split_vjp_call(op, args, kwargs)
        wrt = differentiable_primals(op, primals)
        leaves = {**primals, **{n: primals[n].detach().requires_grad_() for n in wrt}}
        outputs = differentiable_outputs(op, call_forward(op, forward, leaves, params))
        grads = torch.autograd.grad(outputs, [leaves[n] for n in wrt], cotangents,
                                    allow_unused=True, materialize_grads=True)
        return dict(zip(wrt, grads))

    vjp.__name__ = vjp.__qualname__ = f"{forward.__name__}_vjp"
    return vjp


def jax_autodiff_vjp(op_name: str, forward: Callable) -> Callable:
    """The VJP of ``forward`` by ``jax.vjp``, in verify's calling convention."""
    import jax

    op = verify.get_op(op_name)

    def vjp(*args, **kwargs):
        primals, cotangents, params = split_vjp_call(op, args, kwargs)
        wrt = differentiable_primals(op, primals)

        def outputs(*values):
            return differentiable_outputs(
                op, call_forward(op, forward, {**primals, **dict(zip(wrt, values))}, params))

        _, pullback = jax.vjp(outputs, *[primals[n] for n in wrt])
        return dict(zip(wrt, pullback(cotangents)))

    vjp.__name__ = vjp.__qualname__ = f"{forward.__name__}_vjp"
    return vjp


def jax_jit(fn: Callable) -> Callable:
    """``fn(*arrays, **keywords)`` under ``jax.jit``: keyword arrays traced, other keywords static.

    One compilation per shape, dtype and set of static keywords (``axes``, ``perm``, ...);
    the wrapper keeps ``fn``'s name, so that reproducers import it.
    """
    import functools

    import jax

    @functools.partial(jax.jit, static_argnames=("array_names", "static"))
    def compiled(args, arrays, *, array_names, static):
        return fn(*args, **dict(zip(array_names, arrays)), **dict(static))

    @functools.wraps(fn)
    def call(*args, **kwargs):
        arrays = {k: v for k, v in kwargs.items() if isinstance(v, jax.Array)}
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k not in arrays))
        return compiled(args, tuple(arrays.values()), array_names=tuple(arrays), static=static)

    return call


# -- how an op is checked -----------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """One op's candidate in a framework, and the domain it is checked on.

    ``cases`` replaces the op's strategy where the framework represents only part of the
    domain (LAPACK-form reflectors, least squares without the lasso); ``left_out`` maps
    the checks that cannot apply to the reason, so that every other check runs.
    """

    op: str
    forward: Callable
    vjp: Callable | None = None
    cases: Callable | None = None
    left_out: Mapping[str, str] = field(default_factory=dict)

    def properties(self, dtype: str) -> list[str]:
        """The checks of this op in ``dtype`` less those left out."""
        props = candidate_properties(verify.get_op(self.op))
        unknown = sorted(set(self.left_out) - {p.name for p in props})
        if unknown:
            raise ValueError(f"{self.op}: left_out names unknown checks {unknown}")
        return [p.name for p in props if dtype in p.dtypes and p.name not in self.left_out]


def check_client(client: Client, framework: str, dtype: str, **changes) -> verify.Report:
    """:func:`verify.check` of ``client`` (fields replaced by ``changes``) on ``framework``'s arrays."""
    forward = changes.pop("forward", client.forward)
    vjp = changes.pop("vjp", client.vjp)
    return verify.check(forward, client.op, vjp=vjp, dtype=dtype, from_numpy=framework,
                        max_examples=max_examples(), cases=client.cases,
                        properties=client.properties(dtype), **changes)


def assert_passes(client: Client, framework: str, dtype: str) -> verify.Report:
    report = check_client(client, framework, dtype)
    assert report.passed, str(report)
    assert all(r.examples > 0 for r in report.results), str(report)
    if client.vjp is None:
        assert verify.get_op(client.op).vjp is None, f"{client.op}: give the candidate a vjp"
    return report


@dataclass(frozen=True)
class PlantedBug:
    """A realistic mistake in a framework implementation of ``op`` and the checks that catch it.

    ``forward``/``vjp`` replace the client's (``None`` keeps the correct one);
    ``caught_by`` are properties that must fail (each named in the report).
    """

    op: str
    description: str
    caught_by: tuple[str, ...]
    forward: Callable | None = None
    vjp: Callable | None = None
    dtype: str = "float64"


def assert_caught(bug: PlantedBug, client: Client, framework: str) -> verify.Report:
    changes = {k: v for k, v in (("forward", bug.forward), ("vjp", bug.vjp)) if v is not None}
    report = check_client(client, framework, bug.dtype, **changes)
    failed = {r.property for r in report.failures}
    missing = set(bug.caught_by) - failed
    assert not missing, f"{bug.description}: not caught by {sorted(missing)}\n{report}"
    for r in report.failures:
        assert r.message and r.counterexample, r
    return report
