"""verify: property-based verification of refimpl ops, and of candidates against them.

* :mod:`verify.registry` -- one :class:`~verify.registry.Op` record per op;
* :mod:`verify.engine` -- runs properties with hypothesis, keeps the smallest failure;
* :mod:`verify.cli` -- the ``refimpl-verify`` command (also ``python -m verify``);
* :mod:`verify.testing` -- pytest parametrisation over ops, properties and backends.
"""

from .engine import PROFILES, Result, properties_of, run_property, run_suite
from .registry import Case, Op, Property, get_op, ops, register

__all__ = [
    "PROFILES",
    "Case",
    "Op",
    "Property",
    "Result",
    "get_op",
    "ops",
    "properties_of",
    "register",
    "run_property",
    "run_suite",
]
