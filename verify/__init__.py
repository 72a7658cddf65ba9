"""verify: property-based verification of refimpl ops, and of candidates against them.

* :mod:`verify.registry` -- one :class:`~verify.registry.Op` record per op;
* :mod:`verify.engine` -- runs properties with hypothesis, keeps the smallest failure;
* :mod:`verify.cli` -- the ``refimpl-verify`` command (also ``python -m verify``);
* :mod:`verify.testing` -- pytest parametrisation over ops, properties and backends,
  and :func:`~verify.testing.parametrize_with_checks` for a framework's own tests;
* :mod:`verify.candidate` -- :func:`check` another framework's implementation;
* :mod:`verify.vectors` -- golden vectors for frameworks outside Python.
"""

from .candidate import Candidate, Report, check, check_all, replay
from .engine import PROFILES, Result, properties_of, run_property, run_suite
from .registry import Anchor, Case, Op, Property, get_op, register
from .registry import ops as list_ops
from .testing import parametrize_with_checks
from .vectors import VectorError, export_vectors, load_vectors

__all__ = [
    "PROFILES",
    "Anchor",
    "Candidate",
    "Case",
    "Op",
    "Property",
    "Report",
    "Result",
    "check",
    "check_all",
    "export_vectors",
    "get_op",
    "list_ops",
    "load_vectors",
    "VectorError",
    "parametrize_with_checks",
    "properties_of",
    "register",
    "replay",
    "run_property",
    "run_suite",
]
