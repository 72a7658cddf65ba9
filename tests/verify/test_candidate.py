"""verify.check / check_all / replay / parametrize_with_checks on candidates, good and bad."""

import contextlib
from functools import partial
import time
import io
import json
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import array_api_strict as xps
import hypothesis.strategies as st
import numpy as np
import pytest

import verify
from refimpl import nn
from refimpl.linalg import householder_product, householder_product_vjp
from verify.adapters import default_to_numpy
from verify.checks import compare
from verify.registry import Output
from verify.testing import _Check

OP = "householder_product"


def forward(V, X, tau=None, *, transpose=False):
    return householder_product(V, X, tau=tau, transpose=transpose, method="sequential")


def vjp(V, X, G, tau=None, *, transpose=False):
    return householder_product_vjp(V, X, G, tau=tau, transpose=transpose, method="sequential")


def matrix(V, tau=None):
    d = V.shape[-1]
    return forward(V, np.broadcast_to(np.eye(d), V.shape[:-2] + (d, d)), tau)


def negated(V, X, tau=None, *, transpose=False):
    return -forward(V, X, tau, transpose=transpose)


def perturbed(V, X, tau=None, *, transpose=False):
    return forward(V, X, tau, transpose=transpose) * (1 + 1e-9)


def _report(candidate, **kw):
    return verify.check(candidate, OP, max_examples=kw.pop("max_examples", 6), **kw)


def test_correct_candidate_passes_every_check():
    report = _report(forward, vjp=vjp)
    assert report.passed, str(report)
    names = [r.property for r in report.results]
    assert names[:6] == ["matches ground truth", "matches refimpl forward",
                         "vjp: dot-product test", "vjp: autograd", "adjoint test in X",
                         "vjp: matches refimpl"]
    own = {p.name for p in verify.get_op(OP).properties}
    refimpl_only = {p.name for p in verify.get_op(OP).properties if p.refimpl_only}
    assert set(names) >= own - refimpl_only and not set(names) & refimpl_only
    assert all(r.examples >= 6 and r.max_error <= r.tolerance for r in report.results)


def test_without_vjp_gradient_checks_are_skipped():
    report = _report(forward)
    skipped = {r.property for r in report.results if r.verdict == "skip"}
    assert skipped == {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl",
                       "adjoint test in X", "gradient orthogonal to v"}
    assert report.passed and "5 skipped" in report.summary()


def _raises(V, X, tau=None, *, transpose=False):
    raise RuntimeError("kernel not implemented")


@pytest.mark.parametrize("candidate, message", [
    (_raises, "RuntimeError: kernel not implemented"),
    (lambda V, X, tau=None, transpose=False: forward(V, X, tau, transpose=transpose)[..., :1],
     "has shape"),
    (lambda V, X, tau=None, transpose=False: forward(V, X, tau, transpose=transpose).astype(
        np.float32), "has dtype float32, expected float64"),
    (lambda V, X, tau=None, transpose=False: xps.asarray(forward(V, X, tau, transpose=transpose)),
     "in namespace array_api_strict, expected"),
    (lambda V, X, tau=None, transpose=False: forward(V, X, tau, transpose=transpose) * np.nan,
     "error nan"),
    (lambda V, X, tau=None, transpose=False: forward(V, X, tau, transpose=transpose) * np.inf,
     "error inf"),
    (lambda V, X, tau=None, transpose=False: forward(V, X, tau, transpose=transpose).tolist(),
     "not an array"),
    (lambda V, X, tau=None, transpose=False: None, "not an array but NoneType"),
    (lambda V, X, tau=None, transpose=False: SimpleNamespace(shape=X.shape, dtype=X.dtype),
     "is a SimpleNamespace, not an array of"),
    (lambda V, X, tau=None: forward(V, X, tau), "TypeError"),  # lacks the keyword params
])
def test_bad_candidate_fails_the_check_and_does_not_crash(candidate, message):
    report = _report(candidate, properties=["matches ground truth"])
    (r,) = report.results
    assert r.verdict == "FAIL" and message in r.message, r.message
    assert r.counterexample.startswith("V: shape")


@pytest.mark.parametrize("bad_vjp, message", [
    (lambda V, X, G, tau=None, transpose=False: vjp(V, X, G, tau, transpose=transpose)[:1],
     "cotangents (one per primal"),
    (lambda V, X, G, tau=None, transpose=False: vjp(V, X, G, tau, transpose=transpose)[0],
     "must return a tuple"),
    (lambda V, X, G, tau=None, transpose=False: (vjp(V, X, G, tau, transpose=transpose)[0].T,
                                                  *vjp(V, X, G, tau, transpose=transpose)[1:]),
     "cotangent dV has shape"),
])
def test_bad_vjp_fails_the_gradient_checks(bad_vjp, message):
    report = _report(forward, vjp=bad_vjp, properties=["vjp: autograd", "vjp: matches refimpl"])
    assert not report.passed
    assert all(message in r.message for r in report.results), [r.message for r in report.results]


def test_wrong_device_is_a_failure():
    """Inputs on array_api_strict's device1, output moved back to the default device."""
    def leaks(V, X, tau=None, transpose=False):
        return householder_product(V, X, tau=tau, transpose=transpose).to_device(
            xps.Device("CPU_DEVICE"))

    report = _report(leaks, from_numpy="array_api_strict:device1",
                     properties=["matches ground truth"])
    assert "is on device" in report.results[0].message


def test_candidate_in_another_framework_converts_both_ways():
    """refimpl itself on array_api_strict's second device, as a foreign framework."""
    report = _report(householder_product, vjp=householder_product_vjp, dtype="float32",
                     from_numpy="array_api_strict:device1")
    assert report.passed, str(report)
    assert report.results[0].backend == "array_api_strict:device1"


def test_adapter_errors_are_usage_errors():
    with pytest.raises(ValueError, match="unknown framework 'mxnet'"):
        _report(forward, from_numpy="mxnet")
    with pytest.raises(TypeError, match="turned a float64 array into float32"):
        _report(forward, from_numpy=lambda x: x.astype(np.float32))
    with pytest.raises(ValueError, match="unknown properties"):
        _report(forward, properties=["orthogonalty"])
    with pytest.raises(KeyError, match="no op 'householder'"):
        verify.check(forward, "householder")


def test_failure_has_smallest_input_and_a_reproducer_that_replays_it():
    report = _report(negated)
    failure = report.failures[0]
    assert "from test_candidate import negated as forward" in failure.reproducer
    assert "V: shape (1, 1)" in failure.counterexample  # shrunk to the smallest case
    namespace, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(failure.reproducer, namespace)
    assert namespace["error"] > failure.tolerance
    assert float(out.getvalue()) == namespace["error"]


def test_without_shrinking_the_first_failing_input_is_reported():
    """``shrink=False`` skips hypothesis's search for a smaller input: fewer calls of the
    candidate, the same verdict, a counterexample and a reproducer all the same."""
    calls = {True: 0, False: 0}

    def counting(shrink):
        def candidate(V, X, tau=None, *, transpose=False):
            calls[shrink] += 1
            return negated(V, X, tau, transpose=transpose)
        return candidate

    reports = {shrink: _report(counting(shrink), properties=["matches ground truth"],
                               shrink=shrink) for shrink in (True, False)}
    assert not reports[True].passed and not reports[False].passed
    assert reports[False].failures[0].counterexample and reports[False].failures[0].reproducer
    assert "V: shape (1, 1)" in reports[True].failures[0].counterexample
    assert calls[False] < calls[True], calls


def test_replay_propagates_the_candidates_exception():
    case = verify.Case({"V": np.ones((1, 2)), "X": np.ones((2, 1))}, {"transpose": False})
    with pytest.raises(RuntimeError, match="kernel not implemented"):
        verify.replay(_raises, OP, "matches ground truth", case)
    assert verify.replay(forward, OP, "matches ground truth", case) < 1e-15


def test_dot_product_test_of_a_tree_primal_without_arrays():
    # A network (or flow) of parameter-free layers: its tree primal has no array to perturb.
    case = verify.Case({"layers": [nn.ReLU()], "x": np.array([[0.5, -2.0]])})
    for check in ("vjp: dot-product test", "vjp: matches refimpl"):
        assert verify.replay(nn.sequential, "sequential", check, case, vjp=nn.sequential_vjp) < 1e-9


def test_output_scale_floors_the_relative_error():
    # A log-determinant that is exactly 0 (an orthogonal layer): rounding is measured absolutely.
    rounded, exact = np.array([1e-16, -2e-16]), np.zeros(2)
    assert compare(Output("logdet", scale=1.0), rounded, exact) < 1e-15
    assert compare(Output("logdet"), rounded, exact) > 1e100
    assert compare(Output("logdet", scale=1.0), rounded, exact, scale=1e-20) > 1e3


def test_rtol_and_atol():
    assert not _report(perturbed, properties=["matches ground truth"]).passed
    assert _report(perturbed, properties=["matches ground truth"], rtol=1e-8).passed
    # atol: ||error|| <= atol passes whatever ||expected|| is (here ~1e-9 * ||X|| < 1e-6).
    assert _report(perturbed, properties=["matches ground truth"], atol=1e-6).passed
    loose = _report(forward, vjp=vjp, rtol=1e-8, properties=["vjp: dot-product test"])
    assert loose.results[0].tolerance == pytest.approx(1e-6 * 1e-8 / 1e-12)


def test_seed_fixes_the_drawn_inputs():
    errors = [_report(perturbed, seed=s, properties=["matches ground truth"], rtol=1e-8)
              .results[0].max_error for s in (3, 3, 4)]
    assert errors[0] == errors[1] != errors[2]


def test_check_all_with_expected_failures():
    report = verify.check_all({OP: negated, "householder_matrix": matrix},
                              expected_failures={OP: "upstream bug #123"}, max_examples=4)
    assert report.op_verdicts() == {OP: "xfail", "householder_matrix": "pass"}
    assert report.passed
    assert {r.verdict for r in report.results if r.op == OP} <= {"pass", "skip", "xfail"}
    assert "expected failure: upstream bug #123" in str(report)

    xpass = verify.check_all({OP: forward}, expected_failures={OP: "fixed?"}, max_examples=4)
    assert xpass.op_verdicts() == {OP: "XPASS"} and not xpass.passed
    assert "XPASS householder_product" in str(xpass)
    with pytest.raises(ValueError, match="without a candidate"):
        verify.check_all({OP: forward}, expected_failures={"householder_matrix": "?"})


def test_report_as_json_and_junit():
    report = _report(negated, properties=["matches ground truth", "orthogonality"])
    payload = json.loads(report.to_json())
    assert payload["passed"] is False and payload["ops"] == {OP: "FAIL"}
    failed = [r for r in payload["results"] if r["verdict"] == "FAIL"]
    assert failed and failed[0]["reproducer"].startswith("import numpy as np")
    root = ET.fromstring(report.to_junit())
    suite = root.find("testsuite")
    assert suite.get("name") == OP and suite.get("tests") == "2" and suite.get("failures") == "1"
    assert root.find(".//failure").get("message").startswith("error")


CANDIDATES = {
    OP: verify.Candidate(forward, vjp=vjp),
    "householder_matrix": verify.Candidate(matrix),
}


@verify.parametrize_with_checks(CANDIDATES, max_examples=4)
def test_parametrize_with_checks(check):
    check()


@verify.parametrize_with_checks({OP: negated}, expected_failures={OP: "planted bug"},
                                max_examples=3, properties=["matches ground truth"])
def test_parametrize_with_expected_failures(check):
    check()


def test_parametrize_with_checks_ids_and_marks():
    mark = verify.parametrize_with_checks(CANDIDATES, dtypes=("float64", "float32"))
    ids = [p.id for p in mark.args[1]]
    assert "householder_product-matches_ground_truth-float64" in ids
    assert "householder_product-vjp:_dot-product_test-float64" in ids
    assert "householder_product-vjp:_dot-product_test-float32" not in ids  # float64 only
    assert len(ids) == len(set(ids))
    assert all(isinstance(p.values[0], _Check) for p in mark.args[1])


def test_default_to_numpy_falls_back_to_dlpack():
    class Foreign:  # an array type verify does not know, speaking DLPack
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    np.testing.assert_array_equal(default_to_numpy(Foreign(np.arange(3.0))), np.arange(3.0))


def overwrites_its_input(V, X, tau=None, *, transpose=False):
    out = forward(V, X, tau, transpose=transpose)
    X *= 0.0  # a candidate that reuses its input's buffer
    return out


def test_candidate_that_modifies_its_input_fails_naming_it():
    report = _report(overwrites_its_input, properties=["matches ground truth"])
    (r,) = report.results
    assert r.verdict == "FAIL" and "modified its input X in place" in r.message, r.message


def test_slow_candidate_is_stopped_with_a_clear_report():
    def hangs(V, X, tau=None, *, transpose=False):
        time.sleep(30)

    started = time.perf_counter()
    report = _report(hangs, properties=["matches ground truth"], timeout=0.2, max_examples=2)
    (r,) = report.results
    assert r.verdict == "FAIL" and "took more than 0.2 s on one input" in r.message, r.message
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize("dtype, reason", [
    ("float16", "half precision"), ("bfloat16", "bfloat16"),
    ("complex64", "defined on real arrays"), ("complex128", "defined on real arrays"),
    ("float8", "dtype must be float64 or float32"),
])
def test_unchecked_dtype_is_refused_never_passed(dtype, reason):
    with pytest.raises(ValueError, match=reason):
        verify.check(negated, OP, dtype=dtype, max_examples=2)
    with pytest.raises(ValueError, match=reason):
        verify.replay(negated, OP, "matches ground truth", verify.Case({}), dtype=dtype)


def test_a_check_that_ran_no_example_is_not_run_and_not_a_pass():
    def nothing():  # hypothesis draws no example from it
        return st.nothing()

    report = verify.check(negated, OP, vjp=vjp, cases=nothing, max_examples=2,
                          properties=["matches ground truth", "vjp: matches refimpl"])
    assert [r.verdict for r in report.results] == ["not run", "not run"]
    assert report.op_verdicts() == {OP: "not run"} and not report.passed
    assert "not run (no example ran: not a pass)" in report.summary()
    assert report.failures and json.loads(report.to_json())["passed"] is False
    assert '<failure message=' in report.to_junit()


def vjp_with_dX_off(V, X, G, tau=None, *, transpose=False):
    """A correct dV and dtau, dX off by a relative 1e-5."""
    cotangents = vjp(V, X, G, tau, transpose=transpose)
    return cotangents._replace(X=cotangents.X * (1 + 1e-5))


def vjp_slightly_off(V, X, G, tau=None, *, transpose=False):
    cotangents = vjp(V, X, G, tau, transpose=transpose)
    return cotangents._replace(V=cotangents.V * (1 + 4e-15), X=cotangents.X * (1 + 1e-13))


GRADIENTS = ["vjp: dot-product test", "vjp: matches refimpl"]


def test_a_failing_vjp_check_names_the_cotangent():
    report = _report(forward, vjp=vjp_with_dX_off, properties=GRADIENTS)
    assert [r.verdict for r in report.results] == ["FAIL", "FAIL"]
    assert all(r.message.endswith(" in dX") for r in report.results), str(report)


def test_per_output_tolerance_overrides_are_used_and_shown():
    report = _report(forward, vjp=vjp_with_dX_off, properties=GRADIENTS,
                     rtol={"dX": 1e-3, "out": 1e-9})
    assert report.passed, str(report)
    assert all(r.tolerances == {"dX": 1e-3, "output": 1e-9} for r in report.results)
    assert "(dX 1e-03, output 1e-09)" in str(report)
    assert json.loads(report.to_json())["results"][0]["tolerances"] == {"dX": 1e-3,
                                                                       "output": 1e-9}
    # dX's error (1e-13) is within the tolerance, dV's smaller one (4e-15) beyond its own.
    tight = _report(forward, vjp=vjp_slightly_off, properties=["vjp: matches refimpl"],
                    rtol={"dV": 1e-30})
    assert not tight.passed and "> tolerance 1e-30 in dV" in tight.results[0].message


def test_rtol_mapping_names_are_checked():
    assert list(verify.tolerance_keys(verify.get_op(OP))) == [OP, "out", "dV", "dX", "dtau"]
    with pytest.raises(ValueError, match=r"rtol names \['dY'\].*takes householder_product, out"):
        _report(forward, rtol={"dY": 1.0})
    with pytest.raises(ValueError, match="rtol names ops without a candidate: \\['nope'\\]"):
        verify.check_all({OP: forward}, rtol={"nope": 1.0})


def test_per_op_tolerance_in_check_all():
    candidates = {OP: verify.Candidate(forward, vjp=vjp_with_dX_off), "householder_matrix": matrix}
    report = verify.check_all(candidates, max_examples=3, properties=["matches ground truth"],
                              rtol={OP: {OP: 1e-3}, "householder_matrix": 1e-20})
    assert report.op_verdicts() == {OP: "pass", "householder_matrix": "FAIL"}
    assert [r.tolerance for r in report.results] == [1e-3, 1e-20]


@verify.parametrize_with_checks({OP: verify.Candidate(forward, vjp=vjp_with_dX_off)},
                                max_examples=3, properties=GRADIENTS, rtol={OP: {"dX": 1e-3}})
def test_parametrize_with_per_output_tolerance(check):
    check()


def _replayed(reproducer, **given):
    namespace, out = dict(given), io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(reproducer, namespace)
    return namespace["error"]


def test_reproducer_of_a_closure_says_how_to_rebuild_it():
    factor = -1.0

    def scaled(V, X, tau=None, *, transpose=False):
        return factor * forward(V, X, tau, transpose=transpose)

    failure = _report(scaled, properties=["matches ground truth"]).failures[0]
    text = failure.reproducer
    assert "forward is test_candidate.test_reproducer_of_a_closure_says_how_to_rebuild_it" \
           ".<locals>.scaled (defined at " in text
    assert "it captured factor=-1.0" in text and "forward = ...  # rebuild" in text
    rebuilt = text.replace("forward = ...", "forward = scaled_again")
    assert _replayed(rebuilt, scaled_again=scaled) == pytest.approx(2.0)


def test_reproducer_of_a_partial_and_of_layers_replays():
    failure = _report(partial(negated, transpose=False), properties=["matches ground truth"],
                      cases=lambda: verify.get_op(OP).cases().filter(
                          lambda c: not c.params["transpose"])).failures[0]
    assert "forward = functools.partial(negated, *(), **{'transpose': False})" in failure.reproducer
    assert _replayed(failure.reproducer) > failure.tolerance

    def doubled(layers, x):
        return 2 * nn.sequential(layers, x)

    tree = verify.check(doubled, "sequential", max_examples=2,
                        properties=["matches ground truth"]).failures[0]
    assert "from refimpl.nn" in tree.reproducer
    assert _replayed(tree.reproducer.replace("forward = ...", "forward = doubled"),
                     doubled=doubled) > tree.tolerance


def lapack_forward(V, X, tau=None, *, transpose=False):
    """As torch.linalg.householder_product: reflectors in LAPACK form only."""
    if V.ndim != 2 or not np.array_equal(np.tril(V), np.eye(*V.shape)):
        raise ValueError("V is not in LAPACK form")
    return forward(V, X, tau, transpose=transpose)


def lapack_vjp(V, X, G, tau=None, *, transpose=False):
    """As autograd through LAPACK's storage: no gradient at the unit diagonal and before it."""
    cotangents = vjp(V, X, G, tau, transpose=transpose)
    return cotangents._replace(V=np.triu(cotangents.V, 1))


def test_structured_cases_check_a_lapack_convention_candidate():
    report = _report(lapack_forward, vjp=lapack_vjp, cases="lapack", max_examples=4)
    assert report.passed, str(report)
    ran = {r.property for r in report.results if r.examples}
    assert {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"} <= ran
    skipped = {r.property: r.message for r in report.results if r.verdict == "skip"}
    assert skipped["scale invariance"] == "its inputs are not in lapack form"
    assert "transpose is the reversed product" in skipped
    assert "agrees with LAPACK dormqr/dorgqr" in ran  # it draws LAPACK-form reflectors itself
    # refimpl's own inputs are not in LAPACK form: the candidate refuses them
    assert not _report(lapack_forward, vjp=lapack_vjp, properties=["matches ground truth"]).passed


def test_structured_cases_still_catch_a_wrong_free_entry():
    def dV_off(V, X, G, tau=None, *, transpose=False):
        cotangents = lapack_vjp(V, X, G, tau, transpose=transpose)
        return cotangents._replace(V=cotangents.V * 1.001)

    report = _report(lapack_forward, vjp=dV_off, cases="lapack", properties=GRADIENTS + [
        "vjp: autograd"])
    assert [r.verdict for r in report.results] == ["FAIL"] * 3
    assert all(r.message.endswith("in dV") for r in report.results)
    assert "cases='lapack'" in report.results[0].reproducer
    with pytest.raises(ValueError, match="has no structured cases 'qr' \\(it has: lapack\\)"):
        _report(lapack_forward, cases="qr")


def test_golden_vectors_in_lapack_form(tmp_path):
    verify.export_vectors(tmp_path, [OP, "householder_matrix"], examples=6, cases="lapack")
    vectors = verify.load_vectors(tmp_path)
    for v in vectors:
        V = v.inputs["V"]
        assert np.array_equal(np.tril(V), np.eye(*V.shape))
        assert np.all(np.tril(v.vjp["V"]) == 0)
    assert any(np.any(v.vjp["V"] != 0) for v in vectors)
    with pytest.raises(ValueError, match="op 'relu' has no structured cases 'lapack'"):
        verify.export_vectors(tmp_path, ["relu"], cases="lapack")
