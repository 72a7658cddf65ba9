"""The compression report: registered properties, hand counts, the worked example of the docs."""

import pathlib
import runpy

import numpy as np
import pytest

from refimpl.compression import compression_report, report
from verify.testing import assert_property, failing_properties, property_cases

ROOT = pathlib.Path(__file__).parents[2]


@pytest.mark.parametrize(*property_cases("compression.report"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_fixed_width_counts():
    """4 kept of 16, one filler with 2-bit gaps: 5 entries of 2 + ceil(log2 3) = 2 bits each."""
    codes = np.array([-1, 1, -1, -1, 0, 1, -1, -1, -1, -1, -1, -1, 1, -1, -1, -1])
    fixed = compression_report(codes, n_clusters=2, index_bits=2, huffman=False)
    assert [int(v) for v in fixed] == [16, 4, 5, 10, 10, 64, 84, 512]
    assert fixed.bits_per_weight == 84 / 16 and fixed.ratio == 512 / 84


def test_everything_pruned_costs_the_codebook_only():
    result = compression_report(np.full((4, 4), -1), n_clusters=3, index_bits=4, codebook_bits=16)
    assert (int(result.n_entries), int(result.bits_total)) == (0, 48)


@pytest.mark.parametrize("call, error, match", [
    (lambda: compression_report(np.array([0, 3]), n_clusters=3, index_bits=2), ValueError,
     r"codes must lie in \[-1, 3\)"),
    (lambda: compression_report(np.array([0.0]), n_clusters=3, index_bits=2), TypeError,
     "codes must have an integer dtype"),
    (lambda: compression_report(np.array([0]), n_clusters=0, index_bits=2), ValueError, "n_clusters"),
    (lambda: compression_report(np.array([0]), n_clusters=2, index_bits=0), ValueError, "index_bits"),
    (lambda: compression_report(np.array([0]), n_clusters=2, index_bits=2, huffman=1), ValueError,
     "huffman must be True or False"),
    (lambda: compression_report(np.array([0]), n_clusters=2, index_bits=2, offset="x"), ValueError,
     "offset must be one of"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_uncounted_fillers_are_caught(monkeypatch):
    original = report.relative_index_encode

    def without_fillers(mask, *, bits, offset):
        index = original(mask, bits=bits, offset=offset)
        return type(index)(index.gaps[~index.filler], index.filler[~index.filler])

    monkeypatch.setattr(report, "relative_index_encode", without_fillers)
    assert {"matches ground truth", "bit counts equal the encoded lengths"} <= failing_properties(
        "compression_report", profile="ci")


def test_the_worked_example_of_the_docs(capsys):
    """docs/examples/compression_pipeline.py runs, and the page shows its output as printed."""
    runpy.run_path(str(ROOT / "docs" / "examples" / "compression_pipeline.py"), run_name="__main__")
    printed = capsys.readouterr().out.strip().splitlines()
    page = (ROOT / "docs" / "blocks" / "compression.rst").read_text()
    assert all(f"   {line}" in page for line in printed), printed
