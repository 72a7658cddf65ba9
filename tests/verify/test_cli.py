"""refimpl-verify: the suite, check, list and export-vectors; usage errors exit 2."""

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from refimpl.linalg import householder_product, householder_product_vjp
from verify.cli import main


def correct(V, X, tau=None, *, transpose=False):
    return householder_product(V, X, tau=tau, transpose=transpose)


def correct_vjp(V, X, G, tau=None, *, transpose=False):
    return householder_product_vjp(V, X, G, tau=tau, transpose=transpose)


def as_float32(x):
    return x.astype("float32")


def buggy(V, X, tau=None, *, transpose=False):
    return householder_product(V, X, tau=tau, transpose=not transpose)


NOT_CALLABLE = 3
CHECK = ["check", "--op", "householder_product", "--max-examples", "4"]


def test_check_passes_with_reports(tmp_path, capsys):
    json_path, junit_path = tmp_path / "r.json", tmp_path / "r.xml"
    code = main(CHECK + ["test_cli:correct", "--vjp", "test_cli:correct_vjp",
                         "--json", str(json_path), "--junit", str(junit_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "householder_product: test_cli:correct" in out and "0 failed" in out
    assert json.loads(json_path.read_text())["passed"] is True
    assert ET.parse(junit_path).getroot().find("testsuite").get("failures") == "0"


def test_check_failure_exits_1_with_reproducer(capsys):
    code = main(CHECK + ["test_cli:buggy", "--property", "transpose is the reversed product",
                         "--property", "matches ground truth"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL householder_product / matches ground truth" in out
    assert "from test_cli import buggy as forward" in out


@pytest.mark.parametrize("path, message", [
    ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
    ("test_cli:missing", "has no attribute 'missing'"),
    ("test_cli", "not an import path of the form"),
    ("test_cli:NOT_CALLABLE", "is a int, not a callable"),
])
def test_unresolvable_import_path_is_a_usage_error(path, message, capsys):
    assert main(CHECK + [path]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["check", "test_cli:correct", "--op", "nope"], "no op 'nope'"),
    (["check", "test_cli:correct", "--op", "householder_product", "--from-numpy", "mx"],
     "'mx' is not an import path"),
    (["check", "test_cli:correct", "--op", "householder_product", "--from-numpy",
      "torch:nodevice"], "nodevice"),
    (["export-vectors", "--out", "unused", "--op", "nope"], "no op 'nope'"),
    (["list", "--op", "nope"], "no op 'nope'"),
    (["--backend", "tensorflow"], "unknown backend"),
    (["check", "test_cli:correct", "--op", "householder_product", "--dtype", "float16"],
     "invalid choice: 'float16'"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_from_numpy_import_path(capsys):
    code = main(CHECK + ["test_cli:correct", "--from-numpy", "test_cli:as_float32"])
    assert code == 2 and "turned a float64 array into float32" in capsys.readouterr().err


def test_list_gives_signatures_and_conventions(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert ("householder_product(V, X, tau=None, transpose=...) -> out  "
            "[refimpl.linalg.householder]") in out
    assert "vjp(V, X, cotangent, tau=None, transpose=...) -> (V, X, tau)" in out
    assert "svd_linear_slogdet(Vu, s, Vv) -> sign, logabsdet" in out
    assert "convention (docs/conventions.rst: 1.1): Reflectors are the rows of V" in out
    assert "method" not in out.split("convention")[0]  # refimpl-only options are not listed


def test_export_vectors(tmp_path, capsys):
    code = main(["export-vectors", "--out", str(tmp_path), "--op", "householder_product",
                 "householder_matrix", "--examples", "2"])
    assert code == 0
    assert "wrote 4 cases for 2 ops" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == "manifest.json"


def test_suite_without_subcommand_still_runs(tmp_path, capsys):
    junit = tmp_path / "suite.xml"
    code = main(["--op", "householder_product", "--profile", "quick", "--dtype", "float64",
                 "--no-progress", "--junit", str(junit)])
    assert code == 0
    assert "householder_product" in capsys.readouterr().out
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) > 5 and all(c.find("failure") is None for c in cases)
    assert main(["--list"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["chek"], "invalid choice: 'chek'"),
    (["run", "--profile", "fast"], "invalid choice: 'fast'"),
    (["list", "--bogus"], "unrecognized arguments: --bogus"),
    (["--op", "householder_matrix", "--json", "/no/such/folder/r.json"], "does not exist"),
    (["check", "test_cli:correct", "--op", "householder_product", "--junit", "/"],
     "not a writable file path"),
    (["--threads", "0", "--op", "householder_matrix"], "--threads must be at least 1"),
])
def test_usage_errors_come_before_the_run(argv, message, capsys):
    started = time.perf_counter()
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert time.perf_counter() - started < 5  # reported up front, not after the properties


def test_report_header_names_what_ran(capsys):
    assert main(["--op", "householder_matrix", "--profile", "quick", "--dtype", "float64",
                 "--seed", "3", "--no-progress"]) == 0
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert "refimpl 0." in first and "profile quick" in first and "seed 3" in first
    assert "backends numpy" in first and "1 BLAS thread" in first
    assert second.startswith("versions: python") and "numpy" in second and "hypothesis" in second


def test_progress_shows_in_a_log(capsys):
    assert main(["--op", "householder_matrix", "--profile", "quick", "--dtype", "float64"]) == 0
    err = capsys.readouterr().err
    assert "0/4" in err and "householder_matrix" in err  # tqdm's meter, without a terminal


def test_list_and_dash_dash_list_agree(capsys):
    main(["list", "--op", "householder_matrix"])
    listed = capsys.readouterr().out
    main(["--list", "--op", "householder_matrix"])
    assert capsys.readouterr().out == listed


def test_broken_pipe_ends_quietly():
    """`refimpl-verify list | head -1`: no BrokenPipeError traceback."""
    command = [sys.executable, "-m", "verify", "list"]
    lister = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lister.stdout.close()  # the reader is gone before the first line is written
    err = lister.stderr.read().decode()
    assert lister.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
