"""The error contract of every registered op: bad input gets a clear error naming the argument,
or a correct result; never a silent NaN, a wrong result, an unclear or a library's raw error.

The bad inputs are derived from each record (verify.errors): every op added to the
registry is covered here without new test code.
"""

import pytest

import verify
from verify.errors import FAILURES, KINDS, check_errors, draw_case


@pytest.mark.parametrize("op", verify.list_ops(), ids=lambda op: op.name)
def test_bad_input_gets_a_clear_error_or_a_correct_result(op):
    outcomes = check_errors(op, draw_case(op))
    floats = any(p.dtype == "float" for p in op.primals)
    assert {o.kind for o in outcomes} >= ({"nan", "python list", "integer dtype"} if floats
                                          else {"python list", "float dtype"})
    failed = [f"{o.kind} in {o.argument}: {o.verdict}: {o.message}" for o in outcomes if o.failed]
    assert not failed, "\n".join(failed)


def test_every_verdict_is_known():
    assert set(FAILURES) <= {"silent", "wrong", "unclear", "raw"}
    assert len(KINDS) == len(set(KINDS))


def test_an_infinity_passes_only_where_the_exact_value_is_beyond_the_float_range():
    """At ``w * 1e300`` the exact inertia (~1e600) is beyond the float range: infinity is its
    rounding, as the reference's. At ``w * 1e-300`` it is representable: infinity is silent."""
    import numpy as np

    from verify.registry import Case

    op = verify.get_op("kmeans_quantize")
    case = Case({"w": np.array([-1.0, -0.8, 0.5, 0.9, 1.2]), "init": np.array([-1.0, 1.0])},
                {"n_clusters": 2})

    def infinite_inertia(w, **kwargs):
        return op.forward(w, **kwargs)._replace(inertia=np.float64(np.inf))

    verdicts = {o.kind: o.verdict for o in check_errors(op, case) if o.argument == "w"}
    planted = {o.kind: o.verdict for o in check_errors(op, case, forward=infinite_inertia)
               if o.argument == "w"}
    assert verdicts["scaled by 1e300"] == planted["scaled by 1e300"] == "correct"
    assert verdicts["scaled by 1e-300"] == "correct"
    assert planted["scaled by 1e-300"] == "silent"
