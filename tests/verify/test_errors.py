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
    assert {o.kind for o in outcomes} >= {"nan", "python list", "integer dtype"}
    failed = [f"{o.kind} in {o.argument}: {o.verdict}: {o.message}" for o in outcomes if o.failed]
    assert not failed, "\n".join(failed)


def test_every_verdict_is_known():
    assert set(FAILURES) <= {"silent", "wrong", "unclear", "raw"}
    assert len(KINDS) == len(set(KINDS))
